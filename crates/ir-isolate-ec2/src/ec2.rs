//! The EC2 calls the steps share: the isolation groups (found or created, their rules enforced),
//! ENI group swaps, instance attributes and tags.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, Filter, InstanceAttributeName, IpPermission, IpRange,
    ResourceType, Tag, TagSpecification,
};
use ir_core::actions::{Runner, StepFailed, StepResult};
use ir_core::permissions::{resource, Permission, ANY};

use crate::{err_text, InstancePreState, Isolator};

pub(crate) const DESCRIBE_SECURITY_GROUPS: Permission =
    Permission::new("ec2:DescribeSecurityGroups", ANY);
pub(crate) const CREATE_SECURITY_GROUP: Permission =
    Permission::new("ec2:CreateSecurityGroup", resource::EC2_VPC);
pub(crate) const CREATE_SECURITY_GROUP_SG: Permission =
    Permission::new("ec2:CreateSecurityGroup", resource::EC2_SECURITY_GROUP);
/// Tags only as part of creating the group (TagSpecifications), not on any group.
pub(crate) const TAG_NEW_GROUP: Permission = Permission::new(
    "ec2:CreateTags",
    resource::EC2_SECURITY_GROUP,
)
.when("StringEquals", "ec2:CreateAction", "CreateSecurityGroup");
pub(crate) const AUTHORIZE_INGRESS: Permission = Permission::new(
    "ec2:AuthorizeSecurityGroupIngress",
    resource::EC2_SECURITY_GROUP,
);
pub(crate) const AUTHORIZE_EGRESS: Permission = Permission::new(
    "ec2:AuthorizeSecurityGroupEgress",
    resource::EC2_SECURITY_GROUP,
);
pub(crate) const REVOKE_INGRESS: Permission = Permission::new(
    "ec2:RevokeSecurityGroupIngress",
    resource::EC2_SECURITY_GROUP,
);
pub(crate) const REVOKE_EGRESS: Permission = Permission::new(
    "ec2:RevokeSecurityGroupEgress",
    resource::EC2_SECURITY_GROUP,
);
/// The ENI, and the groups it is given (IAM checks both resource types).
pub(crate) const MODIFY_ENI: Permission =
    Permission::new("ec2:ModifyNetworkInterfaceAttribute", resource::EC2_ENI);
pub(crate) const MODIFY_ENI_GROUPS: Permission = Permission::new(
    "ec2:ModifyNetworkInterfaceAttribute",
    resource::EC2_SECURITY_GROUP,
);
pub(crate) const MODIFY_INSTANCE: Permission =
    Permission::new("ec2:ModifyInstanceAttribute", resource::EC2_INSTANCE);
pub(crate) const TAG_INSTANCE: Permission =
    Permission::new("ec2:CreateTags", resource::EC2_INSTANCE);

pub(crate) const PERMISSIONS: &[Permission] = &[
    DESCRIBE_SECURITY_GROUPS,
    CREATE_SECURITY_GROUP,
    CREATE_SECURITY_GROUP_SG,
    TAG_NEW_GROUP,
    AUTHORIZE_INGRESS,
    AUTHORIZE_EGRESS,
    REVOKE_INGRESS,
    REVOKE_EGRESS,
    MODIFY_ENI,
    MODIFY_ENI_GROUPS,
    MODIFY_INSTANCE,
    TAG_INSTANCE,
];

impl Isolator {
    /// Finds or creates the group `name` in `vpc_id` and makes its rules what isolation needs:
    /// the isolation group allows nothing (but SSH from the forensic CIDR, if set), the untrack
    /// group allows everything. An existing group's rules are checked, not trusted: a response
    /// that died between creating and configuring it, or a hand-added rule, is corrected here.
    pub(crate) async fn ensure_group(
        &self,
        runner: &mut Runner,
        step: &str,
        vpc_id: &str,
        name: &str,
        description: &str,
        untracked: bool,
    ) -> Result<Option<String>, StepFailed> {
        let existing = find_group(&self.ec2, vpc_id, name)
            .await
            .map_err(|message| StepFailed {
                step: step.into(),
                message,
            })?;
        let mut found = existing.clone();
        let forensic = self.config.forensic_ingress_cidr.map(|c| c.to_string());
        let ec2 = &self.ec2;
        let plan = format!("security group {name} in {vpc_id}");
        runner
            .step(step, &CREATE_SECURITY_GROUP, vpc_id, plan, || async {
                let (id, created) = match existing {
                    Some(id) => (id, false),
                    None => {
                        let out = ec2
                            .create_security_group()
                            .group_name(name)
                            .description(description)
                            .vpc_id(vpc_id)
                            .tag_specifications(
                                TagSpecification::builder()
                                    .resource_type(ResourceType::SecurityGroup)
                                    .tags(
                                        Tag::builder()
                                            .key("ir:purpose")
                                            .value(if untracked { "untrack" } else { "isolation" })
                                            .build(),
                                    )
                                    .build(),
                            )
                            .send()
                            .await;
                        match out {
                            Ok(out) => (
                                out.group_id()
                                    .ok_or("CreateSecurityGroup returned no id")?
                                    .to_string(),
                                true,
                            ),
                            // Another response in this VPC created it a moment ago (two
                            // incidents at once): use that group.
                            Err(e) if error_code(&e) == Some("InvalidGroup.Duplicate") => (
                                find_group(ec2, vpc_id, name)
                                    .await?
                                    .ok_or("security group reported as duplicate but not found")?,
                                false,
                            ),
                            Err(e) => return Err(err_text(e)),
                        }
                    }
                };
                found = Some(id.clone());
                let corrected = enforce_rules(ec2, &id, untracked, forensic.as_deref()).await?;
                Ok(if created {
                    StepResult::Changed(format!("created {name} ({id})"))
                } else if corrected.is_empty() {
                    StepResult::AlreadyDone(format!("{name} is {id}, rules as expected"))
                } else {
                    StepResult::Changed(format!(
                        "{name} is {id}; corrected its rules: {}",
                        corrected.join(", ")
                    ))
                })
            })
            .await?;
        Ok(found)
    }

    pub(crate) async fn set_groups(&self, eni: &str, groups: &[String]) -> Result<(), String> {
        self.ec2
            .modify_network_interface_attribute()
            .network_interface_id(eni)
            .set_groups(Some(groups.to_vec()))
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    pub(crate) async fn set_bool_attr(
        &self,
        instance_id: &str,
        attr: InstanceAttributeName,
        value: bool,
    ) -> Result<StepResult, String> {
        let v = AttributeBooleanValue::builder().value(value).build();
        let req = self
            .ec2
            .modify_instance_attribute()
            .instance_id(instance_id);
        let req = match attr {
            InstanceAttributeName::DisableApiStop => req.disable_api_stop(v),
            _ => req.disable_api_termination(v),
        };
        let label = attr.as_str();
        match req.send().await {
            Ok(_) => Ok(StepResult::Changed(format!("{label}={value}"))),
            Err(e) if is_unsupported(&e) => Ok(StepResult::Refused(err_text(e))),
            Err(e) => Err(err_text(e)),
        }
    }

    /// Sets termination and stop protection, one recorded step each (`<verb>-termination-protection`,
    /// `<verb>-stop-protection`), leaving a flag alone when it already has the wanted value.
    pub(crate) async fn set_protection(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        verb: &str,
        cur: &InstancePreState,
        termination: bool,
        stop: bool,
    ) -> Result<(), StepFailed> {
        for (name, attr, now, want) in [
            (
                "termination-protection",
                InstanceAttributeName::DisableApiTermination,
                cur.termination_protection,
                termination,
            ),
            (
                "stop-protection",
                InstanceAttributeName::DisableApiStop,
                cur.stop_protection,
                stop,
            ),
        ] {
            let label = attr.as_str().to_string();
            runner
                .step(
                    &format!("{verb}-{name}"),
                    &MODIFY_INSTANCE,
                    instance_id,
                    format!("{label}={want}"),
                    || async {
                        if now == want {
                            return Ok(StepResult::AlreadyDone(format!("{label} already {want}")));
                        }
                        self.set_bool_attr(instance_id, attr.clone(), want).await
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Sets the shutdown behaviour; AWS refuses `stop` for some instances (Spot, instance-store
    /// root), which is recorded and not fatal.
    pub(crate) async fn set_shutdown(
        &self,
        instance_id: &str,
        value: &str,
    ) -> Result<Option<String>, String> {
        let out = self
            .ec2
            .modify_instance_attribute()
            .instance_id(instance_id)
            .instance_initiated_shutdown_behavior(AttributeValue::builder().value(value).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(None),
            Err(e) if is_unsupported(&e) => Ok(Some(err_text(e))),
            Err(e) => Err(err_text(e)),
        }
    }

    pub(crate) async fn tag(&self, resource: &str, tags: &[(&str, &str)]) -> Result<(), String> {
        self.ec2
            .create_tags()
            .resources(resource)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }
}

/// The id of the security group `name` in `vpc_id`, if it exists.
pub(crate) async fn find_group(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    name: &str,
) -> Result<Option<String>, String> {
    Ok(ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .map_err(err_text)?
        .security_groups()
        .iter()
        .find_map(|g| g.group_id().map(str::to_string)))
}

/// EC2's codes for a change it never allows on this kind of instance (termination protection
/// or `stop` shutdown behaviour on a Spot instance, `stop` on an instance-store root): the
/// playbook records the refusal and goes on, it must not stop before the credential steps.
pub(crate) fn is_unsupported<E: aws_sdk_ec2::error::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(
        e.code(),
        Some(
            "UnsupportedOperation" | "UnsupportedInstanceAttribute" | "InvalidParameterCombination"
        )
    )
}

pub(crate) fn error_code<E: aws_sdk_ec2::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_ec2::error::SdkError<E, R>,
) -> Option<&str> {
    e.as_service_error().and_then(|se| se.code())
}

/// A rule change whose error `tolerated` means the rule is already as wanted (another response
/// in the same VPC changed it first) counts as done.
pub(crate) fn tolerating<T, E, R>(
    result: Result<T, aws_sdk_ec2::error::SdkError<E, R>>,
    tolerated: &str,
) -> Result<(), String>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Err(e) if error_code(&e) != Some(tolerated) => Err(err_text(e)),
        _ => Ok(()),
    }
}

const DUPLICATE: &str = "InvalidPermission.Duplicate";
const NOT_FOUND: &str = "InvalidPermission.NotFound";

/// A permission reduced to what identifies it (no descriptions), as Revoke* expects.
pub(crate) fn bare(p: &IpPermission) -> IpPermission {
    let mut b = IpPermission::builder().set_ip_protocol(p.ip_protocol().map(str::to_string));
    b = b.set_from_port(p.from_port()).set_to_port(p.to_port());
    for r in p.ip_ranges() {
        b = b.ip_ranges(
            IpRange::builder()
                .set_cidr_ip(r.cidr_ip().map(str::to_string))
                .build(),
        );
    }
    for r in p.ipv6_ranges() {
        b = b.ipv6_ranges(
            aws_sdk_ec2::types::Ipv6Range::builder()
                .set_cidr_ipv6(r.cidr_ipv6().map(str::to_string))
                .build(),
        );
    }
    for g in p.user_id_group_pairs() {
        b = b.user_id_group_pairs(
            aws_sdk_ec2::types::UserIdGroupPair::builder()
                .set_group_id(g.group_id().map(str::to_string))
                .build(),
        );
    }
    for l in p.prefix_list_ids() {
        b = b.prefix_list_ids(
            aws_sdk_ec2::types::PrefixListId::builder()
                .set_prefix_list_id(l.prefix_list_id().map(str::to_string))
                .build(),
        );
    }
    b.build()
}

/// All protocols from/to anywhere: `0.0.0.0/0`, or `::/0` with `ipv6` (one rule each, so that
/// a group holding only one of them can get the other without a duplicate-rule refusal).
pub(crate) fn all_traffic(ipv6: bool) -> IpPermission {
    let b = IpPermission::builder().ip_protocol("-1");
    if ipv6 {
        b.ipv6_ranges(
            aws_sdk_ec2::types::Ipv6Range::builder()
                .cidr_ipv6("::/0")
                .build(),
        )
        .build()
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()
    }
}

/// Whether `p` allows all protocols from/to anywhere over IPv4 (or IPv6).
pub(crate) fn is_all_traffic(p: &IpPermission, ipv6: bool) -> bool {
    p.ip_protocol() == Some("-1")
        && if ipv6 {
            p.ipv6_ranges()
                .iter()
                .any(|r| r.cidr_ipv6() == Some("::/0"))
        } else {
            p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
        }
}

pub(crate) fn forensic_ssh(cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .description("forensic access")
                .build(),
        )
        .build()
}

/// Exactly SSH from `cidr`, nothing else.
pub(crate) fn is_forensic_ssh(p: &IpPermission, cidr: &str) -> bool {
    p.ip_protocol() == Some("tcp")
        && p.from_port() == Some(22)
        && p.to_port() == Some(22)
        && p.ip_ranges().len() == 1
        && p.ip_ranges()[0].cidr_ip() == Some(cidr)
        && p.ipv6_ranges().is_empty()
        && p.user_id_group_pairs().is_empty()
        && p.prefix_list_ids().is_empty()
}

/// Brings group `id`'s rules to what it is for and returns what it changed. Isolation
/// (`untracked` false): no egress; no ingress but SSH from `forensic`. Untrack: all traffic in
/// and out (extra rules are harmless there). Safe to run from two responses at once: a rule the
/// other removed or added first is not an error.
pub(crate) async fn enforce_rules(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    untracked: bool,
    forensic: Option<&str>,
) -> Result<Vec<String>, String> {
    let out = ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(err_text)?;
    let group = out
        .security_groups()
        .first()
        .ok_or_else(|| format!("security group {id} not found"))?;
    let mut changed = Vec::new();
    if untracked {
        return allow_everything(ec2, group).await;
    }
    for p in group.ip_permissions_egress() {
        let r = ec2
            .revoke_security_group_egress()
            .group_id(id)
            .ip_permissions(bare(p))
            .send()
            .await;
        tolerating(r, NOT_FOUND)?;
        changed.push(format!("revoked egress {}", describe_permission(p)));
    }
    let mut has_forensic = false;
    for p in group.ip_permissions() {
        if forensic.is_some_and(|c| is_forensic_ssh(p, c)) {
            has_forensic = true;
            continue;
        }
        let r = ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .ip_permissions(bare(p))
            .send()
            .await;
        tolerating(r, NOT_FOUND)?;
        changed.push(format!("revoked ingress {}", describe_permission(p)));
    }
    if let (Some(cidr), false) = (forensic, has_forensic) {
        let r = ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .ip_permissions(forensic_ssh(cidr))
            .send()
            .await;
        tolerating(r, DUPLICATE)?;
        changed.push(format!("allowed SSH from {cidr}"));
    }
    Ok(changed)
}

/// The untrack group: all traffic in and out, IPv4 and IPv6 (a flow over IPv6 that stayed
/// tracked would survive the swap). Extra rules are harmless there.
async fn allow_everything(
    ec2: &aws_sdk_ec2::Client,
    group: &aws_sdk_ec2::types::SecurityGroup,
) -> Result<Vec<String>, String> {
    let id = group.group_id().unwrap_or_default();
    let mut changed = Vec::new();
    for (ipv6, family) in [(false, "IPv4"), (true, "IPv6")] {
        if !group
            .ip_permissions()
            .iter()
            .any(|p| is_all_traffic(p, ipv6))
        {
            let r = ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .ip_permissions(all_traffic(ipv6))
                .send()
                .await;
            tolerating(r, DUPLICATE)?;
            changed.push(format!("allowed all {family} ingress"));
        }
        if !group
            .ip_permissions_egress()
            .iter()
            .any(|p| is_all_traffic(p, ipv6))
        {
            let r = ec2
                .authorize_security_group_egress()
                .group_id(id)
                .ip_permissions(all_traffic(ipv6))
                .send()
                .await;
            tolerating(r, DUPLICATE)?;
            changed.push(format!("allowed all {family} egress"));
        }
    }
    Ok(changed)
}

/// `tcp 22-22 from 10.0.0.0/8, sg-1` for notes.
pub(crate) fn describe_permission(p: &IpPermission) -> String {
    let proto = match p.ip_protocol() {
        Some("-1") | None => "all".to_string(),
        Some(x) => x.to_string(),
    };
    let ports = match (p.from_port(), p.to_port()) {
        (Some(f), Some(t)) if f >= 0 => format!(" {f}-{t}"),
        _ => String::new(),
    };
    let peers: Vec<&str> = p
        .ip_ranges()
        .iter()
        .filter_map(|r| r.cidr_ip())
        .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
        .chain(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()))
        .chain(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| l.prefix_list_id()),
        )
        .collect();
    format!("{proto}{ports} {}", peers.join(", "))
}
