//! The fault matrix: for each playbook (EC2 isolation, IAM user quarantine, S3 lockdown) and
//! each mode (contain, release), the function is first run cleanly while its mutating AWS calls
//! are counted. Then, for every one of those calls, on a fresh resource, the function is killed
//! right after that call was applied ([`ir_tests::faults::Crash`]) and run again with the same
//! input, as the state machine's retrier does. The retry must end `Completed` with the state the
//! clean run left (read back from the emulator, ids replaced), the original pre-state, each step
//! listed once, and a release after it must give back the state the resource had before.
//!
//! The matrix is printed (`-- --nocapture`) and written to `target/fault-matrix.md`.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, InstanceAttributeName, InstanceType,
};
use aws_sdk_s3::types::{Tag, Tagging};
use ir_core::actions::RecordStatus;
use ir_core::actions::{Approval, ContainmentError, ContainmentRecord, ContainmentRequest, Mode};
use ir_core::audit::Outcome;
use ir_isolate_ec2::IsolateConfig;
use ir_lockdown_s3::{LockdownConfig, LockdownS3};
use ir_quarantine_iam::{QuarantineConfig, Quarantiner};
use ir_tests::faults::{Crash, Storm, Weather};
use ir_tests::fixtures::{
    any_image, event_json, instance_profile, isolator_as, live_triage, pre_state_store, safety,
    vpc_with_subnet, PRE_STATE_TABLE,
};
use ir_tests::MotoServer;
use serde_json::{json, Value};

/// One resource under test: the request that contains it, and the ids to replace by names when
/// comparing its state with another case's.
struct Case {
    request: ContainmentRequest,
    ids: Vec<(String, String)>,
}

impl Case {
    /// The containment of `decision`'s resource, with its ids and incident named.
    fn new(
        decision: ir_core::TriageDecision,
        approval: Option<Approval>,
        ids: Vec<(String, String)>,
    ) -> Case {
        let incident = decision.incident_id.clone();
        let mut case = Case {
            request: ContainmentRequest {
                mode: Mode::Contain,
                decision,
                approval,
                previous: None,
            },
            ids,
        };
        case.name_incident(&incident);
        case
    }

    /// Names the incident id, also as it appears without its dash (statement ids).
    fn name_incident(&mut self, incident: &str) {
        self.ids.push((incident.to_string(), "<incident>".into()));
        self.ids
            .push((incident.replace('-', ""), "<incident>".into()));
    }

    fn with(&self, mode: Mode) -> ContainmentRequest {
        ContainmentRequest {
            mode,
            ..self.request.clone()
        }
    }

    /// A release as the state machine sends it: with the record the containment returned.
    fn release_of(&self, contained: &ContainmentRecord) -> ContainmentRequest {
        ContainmentRequest {
            mode: Mode::Release,
            previous: Some(contained.clone()),
            ..self.request.clone()
        }
    }

    /// `v` with this case's ids named and timestamps blanked (also inside JSON strings, such as
    /// policy documents).
    fn normal(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.normal_text(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.normal(x)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, x)| (self.normal_text(&k), self.normal(x)))
                    .collect(),
            ),
            other => other,
        }
    }

    fn normal_text(&self, s: &str) -> String {
        if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
            return "<time>".into();
        }
        if s.starts_with('{') {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                return self.normal(inner).to_string();
            }
        }
        let mut ids = self.ids.clone();
        ids.sort_by_key(|(id, _)| std::cmp::Reverse(id.len()));
        ids.into_iter()
            .fold(s.to_string(), |s, (id, name)| s.replace(&id, &name))
    }
}

/// A playbook as the matrix drives it.
trait Subject {
    const NAME: &'static str;
    /// A fresh resource; `n` makes its names unique.
    async fn fresh(&self, n: usize) -> Case;
    /// The function, making its calls through `sdk`.
    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError>;
    /// What the playbook changes on the case's resource, read back from the emulator.
    async fn state(&self, case: &Case) -> Value;
    fn moto(&self) -> &MotoServer;
}

struct World {
    moto: MotoServer,
    sdk: SdkConfig,
    triage: ir_triage::Triage,
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let triage = live_triage(&sdk, "incidents").await;
    pre_state_store(&sdk).await;
    World { moto, sdk, triage }
}

impl World {
    /// The decision for `event` edited by `edit`, as a new finding (id from `n`).
    async fn decide(
        &self,
        event: &str,
        n: usize,
        edit: impl FnOnce(&mut Value),
    ) -> ir_core::TriageDecision {
        let mut e = event_json(event);
        let finding = format!("fa17{n:028}");
        e["detail"]["id"] = finding.clone().into();
        e["detail"]["arn"] = format!(
            "arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/{finding}"
        )
        .into();
        edit(&mut e);
        self.triage.handle(e).await.expect("triage").primary
    }

    /// The pre-state items of the case's resource (not its lease), normalised.
    async fn pre_states(&self, case: &Case, resource: &str) -> Value {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let out = ddb
            .scan()
            .table_name(PRE_STATE_TABLE)
            .send()
            .await
            .expect("scan");
        let mut found = BTreeMap::new();
        for item in out.items() {
            let key = item["resource"].as_s().expect("key");
            let mine =
                key.ends_with(&format!("/{resource}")) || key.contains(&format!("/{resource}/"));
            if key.starts_with("lease/") || !mine {
                continue;
            }
            let state = item
                .get("state")
                .and_then(|s| s.as_s().ok())
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .unwrap_or(Value::Null);
            found.insert(case.normal_text(key), case.normal(state));
        }
        json!(found)
    }
}

fn approval() -> Option<Approval> {
    Some(Approval {
        approver: "analyst@example.com".into(),
        at: chrono::Utc::now(),
    })
}

// ---- EC2 -------------------------------------------------------------------------------------

struct Ec2(World);

impl Subject for Ec2 {
    const NAME: &'static str = "ir-isolate-ec2";

    async fn fresh(&self, n: usize) -> Case {
        let ec2 = aws_sdk_ec2::Client::new(&self.0.sdk);
        let iam = aws_sdk_iam::Client::new(&self.0.sdk);
        let (vpc, subnet) = vpc_with_subnet(&ec2, &format!("10.{n}")).await;
        let app = ec2
            .create_security_group()
            .group_name("app")
            .description("app")
            .vpc_id(&vpc)
            .send()
            .await
            .expect("app group");
        let app = app.group_id().expect("group id").to_string();
        let role = format!("worker-role-{n}");
        let profile = format!("worker-profile-{n}");
        let profile_arn = instance_profile(&iam, &role, &profile).await;
        let run = ec2
            .run_instances()
            .image_id(any_image(&ec2).await)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnet)
            .security_group_ids(&app)
            .iam_instance_profile(
                IamInstanceProfileSpecification::builder()
                    .arn(&profile_arn)
                    .build(),
            )
            .send()
            .await
            .expect("instance");
        let instance = &run.instances()[0];
        let id = instance.instance_id().expect("instance id").to_string();
        let mut ids = vec![
            (id.clone(), "<instance>".to_string()),
            (vpc, "<vpc>".into()),
            (subnet, "<subnet>".into()),
            (app, "<app-group>".into()),
            (profile_arn, "<profile-arn>".into()),
            (role, "<role>".into()),
            (profile, "<profile>".into()),
        ];
        if let Some(ip) = instance.private_ip_address() {
            ids.push((ip.to_string(), "<ip>".into()));
        }
        for (i, eni) in instance.network_interfaces().iter().enumerate() {
            let eni = eni.network_interface_id().expect("ENI id");
            ids.push((eni.to_string(), format!("<eni-{i}>")));
        }
        let assoc = ec2
            .describe_iam_instance_profile_associations()
            .filters(Filter::builder().name("instance-id").values(&id).build())
            .send()
            .await
            .expect("associations");
        for a in assoc.iam_instance_profile_associations() {
            ids.push((
                a.association_id().unwrap_or_default().into(),
                "<assoc>".into(),
            ));
        }
        let decision = self
            .0
            .decide("guardduty-ec2-c2-activity.json", n, |e| {
                e["detail"]["resource"]["instanceDetails"]["instanceId"] = id.clone().into();
            })
            .await;
        Case::new(decision, None, ids)
    }

    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        isolator_as(sdk, IsolateConfig::default())
            .handle(request)
            .await
    }

    async fn state(&self, case: &Case) -> Value {
        let ec2 = aws_sdk_ec2::Client::new(&self.0.sdk);
        let iam = aws_sdk_iam::Client::new(&self.0.sdk);
        let id = &case.ids[0].0;
        let out = ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("describe");
        let instance = &out.reservations()[0].instances()[0];
        let enis: Vec<Vec<String>> = instance
            .network_interfaces()
            .iter()
            .map(|n| {
                let mut g: Vec<String> = n
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_name().map(str::to_string))
                    .collect();
                g.sort();
                g
            })
            .collect();
        let tags: BTreeMap<String, String> = instance
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let mut attributes = BTreeMap::new();
        for name in [
            InstanceAttributeName::DisableApiTermination,
            InstanceAttributeName::InstanceInitiatedShutdownBehavior,
        ] {
            let a = ec2
                .describe_instance_attribute()
                .instance_id(id)
                .attribute(name.clone())
                .send()
                .await
                .expect("attribute");
            let value = match name {
                InstanceAttributeName::DisableApiTermination => {
                    format!("{:?}", a.disable_api_termination().and_then(|v| v.value()))
                }
                _ => format!(
                    "{:?}",
                    a.instance_initiated_shutdown_behavior()
                        .and_then(|v| v.value())
                ),
            };
            attributes.insert(name.as_str().to_string(), value);
        }
        let assoc = ec2
            .describe_iam_instance_profile_associations()
            .filters(Filter::builder().name("instance-id").values(id).build())
            .send()
            .await
            .expect("associations");
        let profiles: Vec<String> = assoc
            .iam_instance_profile_associations()
            .iter()
            .map(|a| {
                let arn = a.iam_instance_profile().and_then(|p| p.arn());
                format!("{:?} {}", a.state(), arn.unwrap_or_default())
            })
            .collect();
        let vpc = &case.ids[1].0;
        let groups = ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .send()
            .await
            .expect("groups");
        let rules = |perms: &[aws_sdk_ec2::types::IpPermission]| -> Vec<String> {
            let mut v: Vec<String> = perms
                .iter()
                .map(|p| {
                    let cidrs: Vec<_> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
                    let v6: Vec<_> = p
                        .ipv6_ranges()
                        .iter()
                        .filter_map(|r| r.cidr_ipv6())
                        .collect();
                    let (proto, from, to) = (p.ip_protocol(), p.from_port(), p.to_port());
                    format!("{proto:?} {from:?}-{to:?} {cidrs:?} {v6:?}")
                })
                .collect();
            v.sort();
            v
        };
        let ir_groups: BTreeMap<String, Value> = groups
            .security_groups()
            .iter()
            .filter(|g| g.group_name().is_some_and(|n| n.starts_with("ir-")))
            .map(|g| {
                let name = g.group_name().unwrap_or_default().to_string();
                let ingress = rules(g.ip_permissions());
                let egress = rules(g.ip_permissions_egress());
                (name, json!({"in": ingress, "out": egress}))
            })
            .collect();
        let role_tags = iam
            .list_role_tags()
            .role_name(&case.ids[5].0)
            .send()
            .await
            .expect("role tags");
        let role_tags: BTreeMap<String, String> = role_tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let role = &case.ids[5].0;
        let mut policies = BTreeMap::new();
        let names = iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("role policies");
        for name in names.policy_names() {
            let doc = iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .expect("role policy");
            let text = percent_decode(doc.policy_document());
            policies.insert(name.clone(), text);
        }
        let state = json!({
            "enis": enis, "tags": tags, "attributes": attributes,
            "profile_associations": profiles, "role_policies": policies,
            "ir_groups": ir_groups, "role_tags": role_tags,
            "pre_state": self.0.pre_states(case, id).await,
        });
        case.normal(state)
    }

    fn moto(&self) -> &MotoServer {
        &self.0.moto
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

// ---- IAM -------------------------------------------------------------------------------------

struct Iam(World);

impl Subject for Iam {
    const NAME: &'static str = "ir-quarantine-iam";

    async fn fresh(&self, n: usize) -> Case {
        let iam = aws_sdk_iam::Client::new(&self.0.sdk);
        let user = format!("deploy-bot-{n}");
        iam.create_user()
            .user_name(&user)
            .send()
            .await
            .expect("user");
        let mut ids = vec![(user.clone(), "<user>".to_string())];
        for k in 0..2 {
            let key = iam
                .create_access_key()
                .user_name(&user)
                .send()
                .await
                .expect("key");
            let id = key.access_key().expect("key").access_key_id().to_string();
            ids.push((id, format!("<key-{k}>")));
        }
        iam.create_login_profile()
            .user_name(&user)
            .password("Initial-Passw0rd!")
            .send()
            .await
            .expect("login profile");
        let leaked = ids[2].0.clone();
        let decision = self
            .0
            .decide("guardduty-iam-anomalous-behavior.json", n, |e| {
                let details = &mut e["detail"]["resource"]["accessKeyDetails"];
                details["accessKeyId"] = leaked.into();
                details["userName"] = user.clone().into();
            })
            .await;
        Case::new(decision, approval(), ids)
    }

    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        Quarantiner {
            iam: aws_sdk_iam::Client::new(sdk),
            safety: safety(sdk),
            pre_state: ir_tests::fixtures::pre_state_of(sdk),
            config: QuarantineConfig {
                deactivate_all_keys: true,
            },
        }
        .handle(request)
        .await
    }

    async fn state(&self, case: &Case) -> Value {
        let iam = aws_sdk_iam::Client::new(&self.0.sdk);
        let user = &case.ids[0].0;
        let keys = iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("keys");
        let keys: BTreeMap<String, String> = keys
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap_or_default().to_string(),
                    format!("{:?}", k.status()),
                )
            })
            .collect();
        let login = iam.get_login_profile().user_name(user).send().await.is_ok();
        let tags = iam
            .list_user_tags()
            .user_name(user)
            .send()
            .await
            .expect("tags");
        let tags: BTreeMap<String, String> = tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let names = iam
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("user policies");
        let mut policies = BTreeMap::new();
        for name in names.policy_names() {
            let doc = iam
                .get_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await
                .expect("user policy");
            policies.insert(name.clone(), percent_decode(doc.policy_document()));
        }
        let attached = iam
            .list_attached_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("attached");
        let attached: Vec<String> = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_name().map(str::to_string))
            .collect();
        let state = json!({
            "keys": keys, "login_profile": login, "tags": tags,
            "inline_policies": policies, "attached_policies": attached,
            "pre_state": self.0.pre_states(case, user).await,
        });
        case.normal(state)
    }

    fn moto(&self) -> &MotoServer {
        &self.0.moto
    }
}

// ---- S3 --------------------------------------------------------------------------------------

const EVIDENCE: &str = "ir-evidence-111122223333";

struct S3(World);

impl Subject for S3 {
    const NAME: &'static str = "ir-lockdown-s3";

    async fn fresh(&self, n: usize) -> Case {
        let s3 = self.0.moto.s3_client(&self.0.sdk);
        if n == 0 {
            s3.create_bucket()
                .bucket(EVIDENCE)
                .acl(aws_sdk_s3::types::BucketCannedAcl::from(
                    "log-delivery-write",
                ))
                .send()
                .await
                .expect("evidence bucket");
        }
        let bucket = format!("acme-exports-{n}");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        let policy = json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowPartnerRead", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
        }]});
        s3.put_bucket_policy()
            .bucket(&bucket)
            .policy(policy.to_string())
            .send()
            .await
            .expect("policy");
        let tag = Tag::builder()
            .key("data-class")
            .value("confidential")
            .build()
            .expect("tag");
        s3.put_bucket_tagging()
            .bucket(&bucket)
            .tagging(Tagging::builder().tag_set(tag).build().expect("tagging"))
            .send()
            .await
            .expect("tags");
        let decision = self
            .0
            .decide("guardduty-s3-block-public-access-disabled.json", n, |e| {
                let details = &mut e["detail"]["resource"]["s3BucketDetails"][0];
                details["name"] = bucket.clone().into();
                details["arn"] = format!("arn:aws:s3:::{bucket}").into();
            })
            .await;
        Case::new(decision, None, vec![(bucket, "<bucket>".to_string())])
    }

    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        LockdownS3 {
            s3: self.0.moto.s3_client(sdk),
            safety: safety(sdk),
            pre_state: ir_tests::fixtures::pre_state_of(sdk),
            config: LockdownConfig {
                evidence_bucket: Some(EVIDENCE.into()),
                object_lock: false,
            },
        }
        .handle(request)
        .await
    }

    async fn state(&self, case: &Case) -> Value {
        let s3 = self.0.moto.s3_client(&self.0.sdk);
        let bucket = &case.ids[0].0;
        let bpa = s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
            .ok()
            .and_then(|o| o.public_access_block_configuration().cloned())
            .map(|c| format!("{c:?}"));
        let policy = s3
            .get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .ok()
            .and_then(|o| o.policy().map(str::to_string));
        let versioning = s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .expect("versioning");
        let logging = s3
            .get_bucket_logging()
            .bucket(bucket)
            .send()
            .await
            .expect("logging");
        let tags = s3
            .get_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map(|t| {
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        let state = json!({
            "public_access_block": bpa, "policy": policy,
            "versioning": format!("{:?}", versioning.status()),
            "logging": format!("{:?}", logging.logging_enabled().map(|l| l.target_bucket())),
            "tags": tags,
            "pre_state": self.0.pre_states(case, bucket).await,
        });
        case.normal(state)
    }

    fn moto(&self) -> &MotoServer {
        &self.0.moto
    }
}

// ---- the matrix ------------------------------------------------------------------------------

/// One row: the call the function died after, and what the retry ended with.
struct Row {
    after: usize,
    call: String,
    retry: String,
}

/// The record's step names, ids named, sorted (keys are visited in the order IAM lists them).
fn step_names(case: &Case, rec: &ContainmentRecord) -> Vec<String> {
    let mut names: Vec<String> = rec
        .steps
        .iter()
        .map(|s| case.normal_text(&s.step))
        .collect();
    names.sort();
    names
}

/// Runs `mode` once cleanly on a fresh case (a release on a contained one), then once per
/// mutating call with a crash right after it and a retry. Returns the rows.
async fn matrix<S: Subject>(subject: &S, mode: Mode) -> Vec<Row> {
    let sdk = subject.moto().sdk_config().await;
    // Cases of a release matrix are numbered apart from a contain matrix's (one emulator).
    let offset = if mode == Mode::Release { 100 } else { 0 };
    // The request under test: a contain, or the release of a completed containment.
    let prepare = async |n: usize| {
        let case = subject.fresh(offset + n).await;
        let before = subject.state(&case).await;
        // The state the run under test starts from.
        let (request, start) = if mode == Mode::Release {
            let rec = subject.run(&sdk, case.with(Mode::Contain)).await;
            let rec = rec.expect("contain before the release");
            assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
            (case.release_of(&rec), subject.state(&case).await)
        } else {
            (case.with(Mode::Contain), before.clone())
        };
        (case, before, request, start)
    };

    let (base, base_before, request, base_start) = prepare(0).await;
    let count = Crash::new(&sdk, None);
    let clean = subject.run(&count.config(&sdk), request).await;
    let clean = clean.unwrap_or_else(|e| panic!("{} {mode:?} clean run: {e}", S::NAME));
    assert_eq!(clean.status, RecordStatus::Completed, "{:#?}", clean.steps);
    let calls = count.applied();
    assert!(calls.len() > 2, "{} {mode:?} made {calls:?}", S::NAME);
    let expected = subject.state(&base).await;
    assert_ne!(expected, base_start, "{} {mode:?} changed nothing", S::NAME);

    // What a clean release leaves (tags that say so, S3 versioning suspended rather than never
    // enabled, no console password: the playbooks' documented release).
    let released = if mode == Mode::Contain {
        let rec = subject.run(&sdk, base.release_of(&clean)).await;
        assert_eq!(rec.map(|r| r.status).ok(), Some(RecordStatus::Completed));
        Some(without_pre_state(subject.state(&base).await))
    } else {
        None
    };

    let mut rows = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let after = i + 1;
        let (case, before, request, _) = prepare(after).await;
        assert_eq!(
            before, base_before,
            "case {after} starts like the clean one"
        );
        let crash = Crash::new(&sdk, Some(after));
        let _ = subject.run(&crash.config(&sdk), request.clone()).await;
        assert!(
            crash.crashed(),
            "{} {mode:?}: no crash after {after}",
            S::NAME
        );
        let what = format!("{} {mode:?}, killed after call {after} ({call})", S::NAME);

        let retry = subject.run(&sdk, request).await;
        let retry = retry.unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"));
        assert_eq!(
            retry.status,
            RecordStatus::Completed,
            "{what}: {:#?}",
            retry.steps
        );
        assert_eq!(
            step_names(&case, &retry),
            step_names(&base, &clean),
            "{what}: steps"
        );
        // What the clean run changed, the retry's record shows in place (changed or found
        // done), not skipped: a release reads the record to know what to undo.
        let in_place = |case: &Case, rec: &ContainmentRecord| -> BTreeSet<String> {
            rec.steps
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Succeeded | Outcome::AlreadyDone))
                .map(|s| case.normal_text(&s.step))
                .collect()
        };
        let lost: Vec<_> = in_place(&base, &clean)
            .difference(&in_place(&case, &retry))
            .cloned()
            .collect();
        assert!(
            lost.is_empty(),
            "{what}: the retry's record does not show in place {lost:?}: {:#?}",
            retry.steps
        );
        let failed: Vec<_> = retry
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Failed)
            .collect();
        assert!(failed.is_empty(), "{what}: {failed:#?}");
        assert_eq!(subject.state(&case).await, expected, "{what}: end state");

        if let Some(released) = &released {
            let rec = subject.run(&sdk, case.release_of(&retry)).await;
            let rec = rec.unwrap_or_else(|e| panic!("{what}: release: {e}"));
            assert_eq!(rec.status, RecordStatus::Completed, "{what}");
            let back = without_pre_state(subject.state(&case).await);
            assert_eq!(
                &back, released,
                "{what}: release restores as after the clean run"
            );
        }
        rows.push(Row {
            after,
            call: call.clone(),
            retry: format!(
                "{:?}, {} steps, same end state",
                retry.status,
                retry.steps.len()
            ),
        });
    }
    rows
}

/// The resource's own state (a release marks the pre-state item released, and keeps it).
fn without_pre_state(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("pre_state");
    }
    v
}

fn report(name: &str, mode: Mode, rows: &[Row]) {
    let mut text =
        format!("\n### {name}, {mode:?}\n\n| killed after | call | retry |\n|---|---|---|\n");
    for r in rows {
        text.push_str(&format!("| {} | {} | {} |\n", r.after, r.call, r.retry));
    }
    println!("{text}");
    append_report(&text);
}

/// Appends to `target/fault-matrix.md` (best effort: the report is for reading, not checking).
fn append_report(text: &str) {
    let path = ir_tests::fixtures::workspace_file("target/fault-matrix.md");
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
}

async fn both_modes<S: Subject>(subject: S) {
    for mode in [Mode::Contain, Mode::Release] {
        let rows = matrix(&subject, mode).await;
        report(S::NAME, mode, &rows);
    }
}

#[tokio::test]
async fn ec2_isolation_killed_after_any_call_ends_as_the_clean_run_on_retry() {
    both_modes(Ec2(world().await)).await;
}

#[tokio::test]
async fn iam_quarantine_killed_after_any_call_ends_as_the_clean_run_on_retry() {
    both_modes(Iam(world().await)).await;
}

#[tokio::test]
async fn s3_lockdown_killed_after_any_call_ends_as_the_clean_run_on_retry() {
    both_modes(S3(world().await)).await;
}

// ---- storms ----------------------------------------------------------------------------------

/// Every service the clean containment calls gets two storms, each on a fresh resource: a short
/// one (two failed attempts per call, which the SDK's retries absorb: the run completes as the
/// clean one) and one that lasts the whole run (the service's throttling error, or a bare 503
/// every other service). A lasting storm must end in an error, never in `Completed` with the
/// resource half-contained; once it passes, the state machine's retry completes it.
async fn storms<S: Subject>(subject: &S) -> Vec<String> {
    let sdk = subject.moto().sdk_config().await;
    let base = subject.fresh(200).await;
    let count = Crash::new(&sdk, None);
    let clean = subject
        .run(&count.config(&sdk), base.with(Mode::Contain))
        .await;
    assert_eq!(clean.map(|r| r.status).ok(), Some(RecordStatus::Completed));
    let expected = subject.state(&base).await;
    let mut rows = Vec::new();
    let services = count.services();
    let weathers = [Weather::Throttling, Weather::Unavailable];
    let storms = services.iter().flat_map(|s| weathers.map(|w| (s, w)));
    for (service, weather) in storms {
        for failures in [2, usize::MAX] {
            let case = subject.fresh(201 + rows.len()).await;
            let before = subject.state(&case).await;
            // Under the storm, a counter of what reached the emulator.
            let applied = Crash::new(&sdk, None);
            let storm = Storm::new(&applied.config(&sdk), service, weather, failures);
            let run = subject
                .run(&storm.config(&sdk), case.with(Mode::Contain))
                .await;
            let what = format!("{} {service} {weather:?} x{failures}", S::NAME);
            let ended = match (&run, failures) {
                (Ok(rec), 2) => {
                    assert_eq!(
                        rec.status,
                        RecordStatus::Completed,
                        "{what}: {:#?}",
                        rec.steps
                    );
                    assert_eq!(subject.state(&case).await, expected, "{what}: end state");
                    "completed as the clean run".to_string()
                }
                // The kill switch unreadable counts as engaged: only a plan, nothing changed.
                (Ok(rec), _) if rec.status == RecordStatus::Planned => {
                    assert_eq!(
                        subject.state(&case).await,
                        before,
                        "{what}: planned, yet changed"
                    );
                    let retry = subject.run(&sdk, case.with(Mode::Contain)).await;
                    assert_eq!(
                        retry.map(|r| r.status).ok(),
                        Some(RecordStatus::Completed),
                        "{what}"
                    );
                    assert_eq!(
                        subject.state(&case).await,
                        expected,
                        "{what}: after the retry"
                    );
                    "planned only (kill switch unreadable), then completed on retry".to_string()
                }
                // A best-effort step (target groups, Auto Scaling) that could not run is skipped
                // and says why; the rest of the containment goes on.
                (Ok(rec), _) if rec.status == RecordStatus::Completed => {
                    let says = rec.steps.iter().find(|st| {
                        st.outcome == Outcome::Skipped
                            && st
                                .detail
                                .as_deref()
                                .unwrap_or_default()
                                .contains(&format!("{service}:"))
                    });
                    let Some(step) = says else {
                        panic!(
                            "{what}: completed without saying what the storm stopped: {:#?}",
                            rec.steps
                        )
                    };
                    assert_eq!(subject.state(&case).await, expected, "{what}: end state");
                    format!("completed; `{}` skipped, saying why", step.step)
                }
                (Ok(rec), _) => panic!(
                    "{what}: a lasting storm ended {:?}: {:#?}",
                    rec.status, rec.steps
                ),
                (Err(e), 2) => panic!("{what}: retries did not absorb a short storm: {e}"),
                (Err(e), _) => {
                    let changed = changes(&applied);
                    match e {
                        // The record says how far it got: a failed step, and no more changed
                        // steps than calls that changed something.
                        ContainmentError::Partial(rec) => {
                            assert!(rec.failed_step.is_some(), "{what}: {:#?}", rec.steps);
                            let steps = rec.steps.iter().filter(|st| {
                                st.outcome == Outcome::Succeeded
                                    && st
                                        .api_call
                                        .as_deref()
                                        .is_some_and(|c| !c.starts_with("dynamodb:"))
                            });
                            let steps = steps.count();
                            assert!(
                                steps <= changed.len(),
                                "{what}: {steps} changed steps, {changed:?}"
                            );
                        }
                        // Any other error comes before the first change.
                        _ => {
                            assert!(changed.is_empty(), "{what}: {e} after {changed:?}");
                            assert_eq!(subject.state(&case).await, before, "{what}: changed");
                        }
                    }
                    let retry = subject.run(&sdk, case.with(Mode::Contain)).await;
                    let retry = retry.unwrap_or_else(|e| panic!("{what}: retry after: {e}"));
                    assert_eq!(retry.status, RecordStatus::Completed, "{what}");
                    assert_eq!(
                        subject.state(&case).await,
                        expected,
                        "{what}: after the retry"
                    );
                    format!("{}, then completed on retry", e.error_type())
                }
            };
            assert!(storm.refused() > 0, "{what}: the storm never hit");
            rows.push(format!(
                "| {service} | {weather:?} | {} | {ended} |",
                if failures == 2 {
                    "2 attempts per call".to_string()
                } else {
                    "lasting".to_string()
                }
            ));
        }
    }
    rows
}

/// The changes that reached the resource (not the pre-state table's lease and records).
fn changes(applied: &Crash) -> Vec<String> {
    let calls = applied.applied().into_iter();
    calls.filter(|c| !c.starts_with("dynamodb:")).collect()
}

fn report_storms(name: &str, rows: &[String]) {
    let mut text = format!(
        "\n### {name}, storms\n\n| service | answer | length | ended |\n|---|---|---|---|\n"
    );
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    println!("{text}");
    append_report(&text);
}

#[tokio::test]
async fn ec2_isolation_under_storms_completes_or_fails_loudly() {
    let rows = storms(&Ec2(world().await)).await;
    report_storms(Ec2::NAME, &rows);
}

#[tokio::test]
async fn iam_quarantine_under_storms_completes_or_fails_loudly() {
    let rows = storms(&Iam(world().await)).await;
    report_storms(Iam::NAME, &rows);
}

#[tokio::test]
async fn s3_lockdown_under_storms_completes_or_fails_loudly() {
    let rows = storms(&S3(world().await)).await;
    report_storms(S3::NAME, &rows);
}
