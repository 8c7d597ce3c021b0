//! Read-only collectors: each returns the JSON of one artifact, built from describe/get calls.
//! Nothing here changes the resource. Artifacts carry no collection time, so the same AWS state
//! gives the same bytes (and the same SHA-256): repeats are recognised as unchanged.

/// The read-only calls of the collectors.
pub const PERMISSIONS: &[ir_core::permissions::Permission] = {
    use ir_core::permissions::resource::{IAM_ROLE, IAM_USER, S3_BUCKET};
    use ir_core::permissions::{Permission, ANY};
    &[
        Permission::new("ec2:DescribeInstances", ANY),
        Permission::new("ec2:DescribeSecurityGroups", ANY),
        Permission::new("ec2:DescribeFlowLogs", ANY),
        Permission::new("cloudtrail:LookupEvents", ANY),
        Permission::new("iam:GetUser", IAM_USER),
        Permission::new("iam:ListAccessKeys", IAM_USER),
        Permission::new("iam:GetAccessKeyLastUsed", IAM_USER),
        Permission::new("iam:GetLoginProfile", IAM_USER),
        Permission::new("iam:ListGroupsForUser", IAM_USER),
        Permission::new("iam:ListAttachedUserPolicies", IAM_USER),
        Permission::new("iam:ListUserPolicies", IAM_USER),
        Permission::new("iam:GetUserPolicy", IAM_USER),
        Permission::new("iam:GetRole", IAM_ROLE),
        Permission::new("iam:ListAttachedRolePolicies", IAM_ROLE),
        Permission::new("iam:ListRolePolicies", IAM_ROLE),
        Permission::new("iam:GetRolePolicy", IAM_ROLE),
        Permission::new("s3:GetBucketPolicy", S3_BUCKET),
        Permission::new("s3:GetBucketPublicAccessBlock", S3_BUCKET),
        Permission::new("s3:GetBucketAcl", S3_BUCKET),
        Permission::new("s3:GetBucketVersioning", S3_BUCKET),
        Permission::new("s3:GetBucketLogging", S3_BUCKET),
        Permission::new("s3:GetEncryptionConfiguration", S3_BUCKET),
        Permission::new("s3:GetBucketTagging", S3_BUCKET),
        Permission::new("s3:GetBucketLocation", S3_BUCKET),
    ]
};

use aws_sdk_ec2::types::Filter;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn ec2_err<E: std::error::Error>(e: E) -> String {
    aws_sdk_ec2::error::DisplayErrorContext(e).to_string()
}
fn iam_err<E: std::error::Error>(e: E) -> String {
    aws_sdk_iam::error::DisplayErrorContext(e).to_string()
}
fn s3_err<E: std::error::Error>(e: E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

fn ts(d: Option<&aws_smithy_types::DateTime>) -> Value {
    d.and_then(|d| DateTime::<Utc>::from_timestamp(d.secs(), d.subsec_nanos()))
        .map(|d| Value::String(d.to_rfc3339()))
        .unwrap_or(Value::Null)
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Value {
    let mut m = serde_json::Map::new();
    for t in tags {
        if let (Some(k), Some(v)) = (t.key(), t.value()) {
            m.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(m)
}

/// IAM policy documents come back URL-encoded.
fn policy_doc(doc: &str) -> Value {
    let decoded = percent_decode(doc);
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The instance as DescribeInstances reports it: state, network, profile, volumes, tags.
pub async fn ec2_instance(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<(Value, Vec<(String, String)>, Option<String>, Vec<String>), String> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(ec2_err)?;
    let inst = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .ok_or_else(|| format!("instance {instance_id} not found"))?;
    let enis: Vec<Value> = inst
        .network_interfaces()
        .iter()
        .map(|n| {
            json!({
                "network_interface_id": n.network_interface_id(),
                "subnet_id": n.subnet_id(),
                "vpc_id": n.vpc_id(),
                "private_ip": n.private_ip_address(),
                "public_ip": n.association().and_then(|a| a.public_ip()),
                "mac": n.mac_address(),
                "groups": n.groups().iter().map(|g| g.group_id()).collect::<Vec<_>>(),
                "source_dest_check": n.source_dest_check(),
            })
        })
        .collect();
    let volumes: Vec<(String, String)> = inst
        .block_device_mappings()
        .iter()
        .filter_map(|b| {
            Some((
                b.ebs()?.volume_id()?.to_string(),
                b.device_name().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let groups: Vec<String> = inst
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    let v = json!({
        "instance_id": inst.instance_id(),
        "state": inst.state().and_then(|s| s.name()).map(|n| n.as_str()),
        "instance_type": inst.instance_type().map(|t| t.as_str()),
        "image_id": inst.image_id(),
        "launch_time": ts(inst.launch_time()),
        "key_name": inst.key_name(),
        "vpc_id": inst.vpc_id(),
        "subnet_id": inst.subnet_id(),
        "private_ip": inst.private_ip_address(),
        "public_ip": inst.public_ip_address(),
        "iam_instance_profile": inst.iam_instance_profile().and_then(|p| p.arn()),
        "security_groups": groups,
        "network_interfaces": enis,
        "block_devices": volumes.iter().map(|(v, d)| json!({"volume_id": v, "device": d})).collect::<Vec<_>>(),
        "metadata_options": inst.metadata_options().map(|m| json!({
            "http_tokens": m.http_tokens().map(|t| t.as_str()),
            "http_endpoint": m.http_endpoint().map(|t| t.as_str()),
        })),
        "tags": ec2_tags(inst.tags()),
    });
    Ok((v, volumes, inst.vpc_id().map(str::to_string), groups))
}

/// The rules of the instance's security groups at collection time.
pub async fn security_groups(
    ec2: &aws_sdk_ec2::Client,
    group_ids: &[String],
) -> Result<Value, String> {
    if group_ids.is_empty() {
        return Ok(json!([]));
    }
    let out = ec2
        .describe_security_groups()
        .set_group_ids(Some(group_ids.to_vec()))
        .send()
        .await
        .map_err(ec2_err)?;
    let perm = |p: &aws_sdk_ec2::types::IpPermission| {
        json!({
            "protocol": p.ip_protocol(),
            "from_port": p.from_port(),
            "to_port": p.to_port(),
            "cidrs": p.ip_ranges().iter().map(|r| r.cidr_ip()).collect::<Vec<_>>(),
            "ipv6_cidrs": p.ipv6_ranges().iter().map(|r| r.cidr_ipv6()).collect::<Vec<_>>(),
            "groups": p.user_id_group_pairs().iter().map(|g| g.group_id()).collect::<Vec<_>>(),
        })
    };
    let mut groups: Vec<Value> = out
        .security_groups()
        .iter()
        .map(|g| {
            json!({
                "group_id": g.group_id(),
                "group_name": g.group_name(),
                "vpc_id": g.vpc_id(),
                "ingress": g.ip_permissions().iter().map(perm).collect::<Vec<_>>(),
                "egress": g.ip_permissions_egress().iter().map(perm).collect::<Vec<_>>(),
            })
        })
        .collect();
    groups.sort_by_key(|g| g["group_id"].as_str().unwrap_or_default().to_string());
    Ok(Value::Array(groups))
}

/// VPC flow logs covering the instance's VPC, subnets or ENIs.
pub async fn flow_logs(
    ec2: &aws_sdk_ec2::Client,
    resource_ids: Vec<String>,
) -> Result<Value, String> {
    if resource_ids.is_empty() {
        return Ok(json!([]));
    }
    let out = ec2
        .describe_flow_logs()
        .filter(
            Filter::builder()
                .name("resource-id")
                .set_values(Some(resource_ids))
                .build(),
        )
        .send()
        .await
        .map_err(ec2_err)?;
    let mut logs: Vec<Value> = out
        .flow_logs()
        .iter()
        .map(|f| {
            json!({
                "flow_log_id": f.flow_log_id(),
                "resource_id": f.resource_id(),
                "traffic_type": f.traffic_type().map(|t| t.as_str()),
                "destination_type": f.log_destination_type().map(|t| t.as_str()),
                "destination": f.log_destination(),
                "log_group": f.log_group_name(),
                "status": f.flow_log_status(),
            })
        })
        .collect();
    logs.sort_by_key(|l| l["flow_log_id"].as_str().unwrap_or_default().to_string());
    Ok(Value::Array(logs))
}

/// The user: keys (with last use), console access, groups, managed and inline policies, tags.
pub async fn iam_user(iam: &aws_sdk_iam::Client, user: &str) -> Result<Value, String> {
    let u = iam
        .get_user()
        .user_name(user)
        .send()
        .await
        .map_err(iam_err)?;
    let u = u.user().ok_or_else(|| format!("user {user} not found"))?;
    let keys_out = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(iam_err)?;
    let mut keys = Vec::new();
    for k in keys_out.access_key_metadata() {
        let last_used = match k.access_key_id() {
            Some(id) => iam
                .get_access_key_last_used()
                .access_key_id(id)
                .send()
                .await
                .ok()
                .and_then(|o| o.access_key_last_used().cloned()),
            None => None,
        };
        keys.push(json!({
            "access_key_id": k.access_key_id(),
            "status": k.status().map(|s| s.as_str()),
            "created": ts(k.create_date()),
            "last_used": last_used.as_ref().map(|l| json!({
                "at": ts(l.last_used_date()),
                "service": l.service_name(),
                "region": l.region(),
            })),
        }));
    }
    let login = match iam.get_login_profile().user_name(user).send().await {
        Ok(o) => json!({"console_access": true,
                        "created": ts(o.login_profile().map(|p| p.create_date()))}),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_no_such_entity_exception()) =>
        {
            json!({"console_access": false})
        }
        Err(e) => return Err(iam_err(e)),
    };
    let groups = iam
        .list_groups_for_user()
        .user_name(user)
        .send()
        .await
        .map_err(iam_err)?;
    let attached = iam
        .list_attached_user_policies()
        .user_name(user)
        .send()
        .await
        .map_err(iam_err)?;
    let inline_names = iam
        .list_user_policies()
        .user_name(user)
        .send()
        .await
        .map_err(iam_err)?;
    let mut inline = serde_json::Map::new();
    for name in inline_names.policy_names() {
        let p = iam
            .get_user_policy()
            .user_name(user)
            .policy_name(name)
            .send()
            .await
            .map_err(iam_err)?;
        inline.insert(name.clone(), policy_doc(p.policy_document()));
    }
    let mut tags = serde_json::Map::new();
    for t in u.tags() {
        tags.insert(t.key().to_string(), Value::String(t.value().to_string()));
    }
    Ok(json!({
        "user_name": u.user_name(),
        "arn": u.arn(),
        "user_id": u.user_id(),
        "created": ts(Some(u.create_date())),
        "password_last_used": ts(u.password_last_used()),
        "login_profile": login,
        "access_keys": keys,
        "groups": groups.groups().iter().map(|g| g.group_name()).collect::<Vec<_>>(),
        "attached_policies": attached.attached_policies().iter().map(|p| p.policy_arn()).collect::<Vec<_>>(),
        "inline_policies": inline,
        "tags": tags,
    }))
}

/// The role: trust policy, managed and inline policies, tags, last use.
pub async fn iam_role(iam: &aws_sdk_iam::Client, role: &str) -> Result<Value, String> {
    let r = iam
        .get_role()
        .role_name(role)
        .send()
        .await
        .map_err(iam_err)?;
    let r = r.role().ok_or_else(|| format!("role {role} not found"))?;
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(iam_err)?;
    let inline_names = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(iam_err)?;
    let mut inline = serde_json::Map::new();
    for name in inline_names.policy_names() {
        let p = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .map_err(iam_err)?;
        inline.insert(name.clone(), policy_doc(p.policy_document()));
    }
    let mut tags = serde_json::Map::new();
    for t in r.tags() {
        tags.insert(t.key().to_string(), Value::String(t.value().to_string()));
    }
    Ok(json!({
        "role_name": r.role_name(),
        "arn": r.arn(),
        "role_id": r.role_id(),
        "path": r.path(),
        "created": ts(Some(r.create_date())),
        "trust_policy": r.assume_role_policy_document().map(policy_doc),
        "max_session_duration": r.max_session_duration(),
        "last_used": r.role_last_used().map(|l| json!({"at": ts(l.last_used_date()), "region": l.region()})),
        "attached_policies": attached.attached_policies().iter().map(|p| p.policy_arn()).collect::<Vec<_>>(),
        "inline_policies": inline,
        "tags": tags,
    }))
}

/// The bucket's access configuration. Settings a bucket does not have are `null`.
pub async fn s3_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(Value, Value), String> {
    let missing = |code: Option<&str>| {
        matches!(
            code,
            Some(
                "NoSuchBucketPolicy"
                    | "NoSuchPublicAccessBlockConfiguration"
                    | "ServerSideEncryptionConfigurationNotFoundError"
                    | "NoSuchTagSet"
                    | "ObjectLockConfigurationNotFoundError"
            )
        )
    };
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let location = s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(s3_err)?;
    let policy = match s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(o) => o
            .policy()
            .map(|p| serde_json::from_str(p).unwrap_or(Value::String(p.to_string())))
            .unwrap_or(Value::Null),
        Err(e) if missing(e.code()) => Value::Null,
        Err(e) => return Err(s3_err(e)),
    };
    let pab = match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(o) => o
            .public_access_block_configuration()
            .map(|c| {
                json!({
                    "block_public_acls": c.block_public_acls(),
                    "ignore_public_acls": c.ignore_public_acls(),
                    "block_public_policy": c.block_public_policy(),
                    "restrict_public_buckets": c.restrict_public_buckets(),
                })
            })
            .unwrap_or(Value::Null),
        Err(e) if missing(e.code()) => Value::Null,
        Err(e) => return Err(s3_err(e)),
    };
    let acl = s3
        .get_bucket_acl()
        .bucket(bucket)
        .send()
        .await
        .map_err(s3_err)?;
    let grants: Vec<Value> = acl
        .grants()
        .iter()
        .map(|g| {
            let grantee = g.grantee();
            json!({
                "permission": g.permission().map(|p| p.as_str()),
                "grantee_type": grantee.map(|x| x.r#type().as_str()),
                "grantee": grantee.and_then(|x| x.uri().or(x.id()).or(x.email_address())),
            })
        })
        .collect();
    let versioning = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(s3_err)?;
    let logging = s3
        .get_bucket_logging()
        .bucket(bucket)
        .send()
        .await
        .map_err(s3_err)?;
    let logging = logging
        .logging_enabled()
        .map(|l| json!({"target_bucket": l.target_bucket(), "target_prefix": l.target_prefix()}))
        .unwrap_or(Value::Null);
    let encryption = match s3.get_bucket_encryption().bucket(bucket).send().await {
        Ok(o) => o
            .server_side_encryption_configuration()
            .map(|c| {
                Value::Array(
                    c.rules()
                        .iter()
                        .map(|r| {
                            let d = r.apply_server_side_encryption_by_default();
                            json!({
                                "algorithm": d.map(|d| d.sse_algorithm().as_str()),
                                "kms_key": d.and_then(|d| d.kms_master_key_id()),
                            })
                        })
                        .collect(),
                )
            })
            .unwrap_or(Value::Null),
        Err(e) if missing(e.code()) => Value::Null,
        Err(e) => return Err(s3_err(e)),
    };
    let tags = match s3.get_bucket_tagging().bucket(bucket).send().await {
        Ok(o) => {
            let mut m = serde_json::Map::new();
            for t in o.tag_set() {
                m.insert(t.key().to_string(), Value::String(t.value().to_string()));
            }
            Value::Object(m)
        }
        Err(e) if missing(e.code()) => json!({}),
        Err(e) => return Err(s3_err(e)),
    };
    let config = json!({
        "bucket": bucket,
        "region": location.location_constraint().map(|l| l.as_str()).filter(|l| !l.is_empty()).unwrap_or("us-east-1"),
        "policy": policy,
        "public_access_block": pab,
        "acl_grants": grants,
        "owner": acl.owner().and_then(|o| o.id()),
        "versioning": versioning.status().map(|s| s.as_str()),
        "mfa_delete": versioning.mfa_delete().map(|s| s.as_str()),
        "logging": logging,
        "encryption": encryption,
        "tags": tags,
    });
    Ok((config, logging))
}

/// One CloudTrail LookupEvents query (at most `max` events), events oldest first, each the raw
/// `CloudTrailEvent` record (parsed) with its id.
pub async fn cloudtrail_events(
    ct: &aws_sdk_cloudtrail::Client,
    key: aws_sdk_cloudtrail::types::LookupAttributeKey,
    value: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max: usize,
) -> Result<Value, String> {
    use aws_sdk_cloudtrail::types::LookupAttribute;
    let attr = LookupAttribute::builder()
        .attribute_key(key.clone())
        .attribute_value(value)
        .build()
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    let mut truncated = false;
    loop {
        let out = ct
            .lookup_events()
            .lookup_attributes(attr.clone())
            .start_time(aws_smithy_types::DateTime::from_secs(start.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(end.timestamp()))
            .max_results(50)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| aws_sdk_cloudtrail::error::DisplayErrorContext(e).to_string())?;
        for e in out.events() {
            let raw = e
                .cloud_trail_event()
                .map(|r| serde_json::from_str(r).unwrap_or(Value::String(r.to_string())))
                .unwrap_or(Value::Null);
            events.push(json!({
                "event_id": e.event_id(),
                "event_name": e.event_name(),
                "event_time": ts(e.event_time()),
                "event_source": e.event_source(),
                "username": e.username(),
                "access_key_id": e.access_key_id(),
                "record": raw,
            }));
        }
        token = out.next_token().map(str::to_string);
        if events.len() >= max {
            truncated = token.is_some() || events.len() > max;
            events.truncate(max);
            break;
        }
        if token.is_none() {
            break;
        }
    }
    events.sort_by(|a, b| {
        (a["event_time"].as_str(), a["event_id"].as_str())
            .cmp(&(b["event_time"].as_str(), b["event_id"].as_str()))
    });
    Ok(json!({
        // The window ends at the artifact's `collected_at` (in the manifest), so the same
        // events give the same bytes on a repeat.
        "lookup": {"attribute": key.as_str(), "value": value, "start": start.to_rfc3339()},
        "truncated": truncated,
        "events": events,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_iam_documents() {
        assert_eq!(
            super::policy_doc("%7B%22Version%22%3A%222012-10-17%22%7D"),
            serde_json::json!({"Version": "2012-10-17"})
        );
        assert_eq!(super::percent_decode("a%2"), "a%2");
    }
}
