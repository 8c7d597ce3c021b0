//! ir-isolate-ec2 against moto: the real triage decision for a real instance, then describe
//! calls prove isolation, idempotency, release, dry-run and live protection.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, InstanceType, Tag};
use ir_core::actions::{Approval, ContainmentRequest, Mode, RecordStatus};
use ir_core::audit::Outcome;
use ir_core::prestate::PreStateKey;
use ir_core::TriageDecision;
use ir_isolate_ec2::{IsolateConfig, Isolator};
use ir_tests::fixtures::{
    self, any_image, assert_declared, event_json, instance_profile, live_triage, set_kill_switch,
    vpc_with_subnet, KILL_SWITCH,
};
use ir_tests::MotoServer;
use ir_triage::Triage;

const KILL: &str = KILL_SWITCH;

struct World {
    _moto: MotoServer,
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
    ssm: aws_sdk_ssm::Client,
    isolator: Isolator,
    triage: Triage,
    instance_id: String,
    enis: Vec<String>,
    original_groups: BTreeMap<String, Vec<String>>,
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let triage = live_triage(&sdk, "incidents").await;

    let (vpc_id, subnet_id) = vpc_with_subnet(&ec2, "10.20").await;
    let sg = |name: &'static str| {
        let ec2 = ec2.clone();
        let vpc_id = vpc_id.clone();
        async move {
            ec2.create_security_group()
                .group_name(name)
                .description(name)
                .vpc_id(vpc_id)
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_string()
        }
    };
    let app = sg("batch-workers").await;
    let metrics = sg("internal-metrics").await;

    let profile_arn = instance_profile(&iam, "batch-role", "batch-profile").await;
    let image = any_image(&ec2).await;
    let run = ec2
        .run_instances()
        .image_id(image)
        .instance_type(InstanceType::C52xlarge)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet_id)
        .security_group_ids(&app)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .arn(&profile_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instance_id = run.instances()[0].instance_id().unwrap().to_string();
    let eni2 = ec2
        .create_network_interface()
        .subnet_id(&subnet_id)
        .groups(&app)
        .groups(&metrics)
        .send()
        .await
        .unwrap()
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();
    ec2.attach_network_interface()
        .network_interface_id(&eni2)
        .instance_id(&instance_id)
        .device_index(1)
        .send()
        .await
        .unwrap();
    let enis = eni_groups(&ec2, &instance_id).await;
    assert_eq!(enis.len(), 2, "instance has two ENIs: {enis:?}");

    let isolator = isolator(&sdk, None).await;
    World {
        _moto: moto,
        ec2,
        iam,
        ssm,
        isolator,
        triage,
        instance_id,
        enis: enis.keys().cloned().collect(),
        original_groups: enis,
    }
}

/// The isolation function wired to the emulator behind `sdk`.
async fn isolator(sdk: &aws_config::SdkConfig, forensic_ingress_cidr: Option<&str>) -> Isolator {
    fixtures::isolator(
        sdk,
        IsolateConfig {
            forensic_ingress_cidr: forensic_ingress_cidr.map(|c| c.parse().expect("CIDR")),
            ..IsolateConfig::default()
        },
    )
    .await
}

/// ENI id → sorted group ids, read from the ENIs.
async fn eni_groups(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> BTreeMap<String, Vec<String>> {
    let out = ec2
        .describe_network_interfaces()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(instance_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.network_interfaces()
        .iter()
        .map(|n| {
            let mut g: Vec<String> = n
                .groups()
                .iter()
                .map(|g| g.group_id().unwrap().to_string())
                .collect();
            g.sort();
            (n.network_interface_id().unwrap().to_string(), g)
        })
        .collect()
}

impl World {
    /// The real triage decision for the bitcoin-mining sample, pointed at this instance.
    async fn decision(&self, event: &str) -> TriageDecision {
        let mut e = event_json(event);
        e["detail"]["resource"]["instanceDetails"]["instanceId"] = self.instance_id.clone().into();
        self.triage.handle(e).await.expect("triage").primary
    }

    fn request(&self, decision: TriageDecision, mode: Mode) -> ContainmentRequest {
        ContainmentRequest {
            mode,
            decision,
            approval: None,
            previous: None,
        }
    }

    async fn bool_attr(&self, a: InstanceAttributeName) -> bool {
        let o = self
            .ec2
            .describe_instance_attribute()
            .instance_id(&self.instance_id)
            .attribute(a.clone())
            .send()
            .await
            .unwrap();
        match a {
            InstanceAttributeName::DisableApiTermination => o
                .disable_api_termination()
                .and_then(|v| v.value())
                .unwrap_or(false),
            _ => o
                .disable_api_stop()
                .and_then(|v| v.value())
                .unwrap_or(false),
        }
    }

    async fn shutdown(&self) -> String {
        let o = self
            .ec2
            .describe_instance_attribute()
            .instance_id(&self.instance_id)
            .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .send()
            .await
            .unwrap();
        o.instance_initiated_shutdown_behavior()
            .and_then(|v| v.value())
            .unwrap_or_default()
            .to_string()
    }

    async fn profile_associated(&self) -> bool {
        let o = self
            .ec2
            .describe_iam_instance_profile_associations()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .values(&self.instance_id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        o.iam_instance_profile_associations()
            .iter()
            .any(|a| a.state().map(|s| s.as_str()) != Some("disassociated"))
    }

    async fn tags(&self) -> BTreeMap<String, String> {
        let o = self
            .ec2
            .describe_instances()
            .instance_ids(&self.instance_id)
            .send()
            .await
            .unwrap();
        o.reservations()[0].instances()[0]
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    async fn role_policies(&self) -> Vec<String> {
        self.iam
            .list_role_policies()
            .role_name("batch-role")
            .send()
            .await
            .unwrap()
            .policy_names()
            .to_vec()
    }
}

#[tokio::test]
async fn isolation_covers_every_eni_is_idempotent_and_release_restores() {
    let w = world().await;
    let decision = w.decision("guardduty-ec2-bitcointool-dns.json").await;
    assert_eq!(decision.tier.to_string(), "auto");

    let rec = w
        .isolator
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("contain");
    assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);

    // Every ENI now has exactly the isolation group, which allows nothing.
    let after = eni_groups(&w.ec2, &w.instance_id).await;
    let isolation = after.values().next().unwrap().clone();
    assert_eq!(isolation.len(), 1);
    for (eni, groups) in &after {
        assert_eq!(groups, &isolation, "{eni} not isolated");
    }
    let sg = w
        .ec2
        .describe_security_groups()
        .group_ids(&isolation[0])
        .send()
        .await
        .unwrap();
    let sg = &sg.security_groups()[0];
    assert!(sg.group_name().unwrap().starts_with("ir-isolation-"));
    assert!(
        sg.ip_permissions().is_empty(),
        "isolation group has ingress: {:?}",
        sg.ip_permissions()
    );
    assert!(
        sg.ip_permissions_egress().is_empty(),
        "isolation group has egress: {:?}",
        sg.ip_permissions_egress()
    );
    // The untrack step happened before the isolation step on each ENI.
    for eni in &w.enis {
        let pos = |p: &str| {
            rec.steps
                .iter()
                .position(|s| s.step == format!("{p}-{eni}"))
                .unwrap()
        };
        assert!(pos("untrack") < pos("isolate"));
    }
    // The untrack group allows everything over IPv4 and IPv6: a flow over IPv6 must not stay
    // tracked (and alive) through the swap.
    let groups = w.ec2.describe_security_groups().send().await.unwrap();
    let untrack = groups
        .security_groups()
        .iter()
        .find(|g| g.group_name().is_some_and(|n| n.starts_with("ir-untrack-")))
        .expect("untrack group");
    for rules in [untrack.ip_permissions(), untrack.ip_permissions_egress()] {
        let all = |p: &&aws_sdk_ec2::types::IpPermission| p.ip_protocol() == Some("-1");
        assert!(
            rules.iter().filter(all).any(|p| p
                .ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))),
            "{rules:?}"
        );
        assert!(
            rules.iter().filter(all).any(|p| p
                .ipv6_ranges()
                .iter()
                .any(|r| r.cidr_ipv6() == Some("::/0"))),
            "no IPv6 all-traffic rule: {rules:?}"
        );
    }

    assert!(
        w.bool_attr(InstanceAttributeName::DisableApiTermination)
            .await
    );
    assert!(w.bool_attr(InstanceAttributeName::DisableApiStop).await);
    assert_eq!(w.shutdown().await, "stop");
    assert!(
        !w.profile_associated().await,
        "instance profile still associated"
    );
    // Only this instance's credentials are denied (`ec2:SourceInstanceARN`): other instances
    // sharing the role keep working; a TokenIssueTime deny would cut the whole fleet off AWS.
    let revoke = format!("ir-revoke-instance-{}", w.instance_id);
    assert_eq!(w.role_policies().await, std::slice::from_ref(&revoke));
    let doc = w
        .iam
        .get_role_policy()
        .role_name("batch-role")
        .policy_name(&revoke)
        .send()
        .await
        .unwrap();
    let doc = percent_encoding::percent_decode_str(doc.policy_document()).decode_utf8_lossy();
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("policy JSON");
    let incident = &decision.incident;
    assert_eq!(
        doc["Statement"][0]["Condition"]["ArnLike"]["ec2:SourceInstanceARN"],
        format!(
            "arn:{}:ec2:*:{}:instance/{}",
            incident.partition, incident.account_id, w.instance_id
        )
    );
    // A session someone named after the instance (AssumeRole lets the caller pick the name).
    assert_eq!(
        doc["Statement"][1]["Condition"]["StringLike"]["aws:userid"],
        format!("*:{}", w.instance_id)
    );
    assert!(!doc.to_string().contains("aws:TokenIssueTime"), "{doc}");
    let tags = w.tags().await;
    assert_eq!(tags.get("ir:status").map(String::as_str), Some("isolated"));
    assert_eq!(tags.get("ir:incident-id"), Some(&decision.incident_id));
    // The original state is in the pre-state table, not in a tag anyone could rewrite.
    assert!(tags.keys().all(|k| !k.starts_with("ir:pre")), "{tags:?}");
    let key = PreStateKey::new(
        &decision.incident.account_id,
        &decision.incident.region,
        &w.instance_id,
    );
    let stored = w
        .isolator
        .pre_state
        .get(&key)
        .await
        .unwrap()
        .expect("stored pre-state");
    assert_eq!(stored.state, rec.pre_state);
    assert_eq!(stored.incident_id, decision.incident_id);
    assert!(!stored.released);
    // Termination protection holds: the instance cannot be terminated.
    assert!(w
        .ec2
        .terminate_instances()
        .instance_ids(&w.instance_id)
        .send()
        .await
        .is_err());

    // Same request again: same state, a clean record with nothing changed.
    let again = w
        .isolator
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("repeat");
    assert_eq!(again.status, RecordStatus::Completed);
    assert!(
        again.steps.iter().all(|s| s.outcome != Outcome::Succeeded),
        "repeat changed something: {:#?}",
        again.steps
    );
    assert_eq!(eni_groups(&w.ec2, &w.instance_id).await, after);
    // The repeat still knows the original state.
    assert_eq!(again.pre_state["eni_groups"], rec.pre_state["eni_groups"]);

    // False positive: release restores what was there.
    let mut release = w.request(decision, Mode::Release);
    release.previous = Some(rec);
    let rel = w.isolator.handle(release).await.expect("release");
    assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rel);
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    assert_eq!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);
    assert!(
        !w.bool_attr(InstanceAttributeName::DisableApiTermination)
            .await
    );
    assert!(!w.bool_attr(InstanceAttributeName::DisableApiStop).await);
    assert_ne!(w.shutdown().await, "");
    assert!(w.profile_associated().await, "profile not re-associated");
    assert!(w
        .role_policies()
        .await
        .iter()
        .all(|p| !p.starts_with("ir-revoke-instance-")));
    let tags = w.tags().await;
    assert_eq!(tags.get("ir:status").map(String::as_str), Some("released"));
    let stored = w
        .isolator
        .pre_state
        .get(&key)
        .await
        .unwrap()
        .expect("stored pre-state");
    assert!(
        stored.released,
        "release marks the stored pre-state released"
    );
}

#[tokio::test]
async fn kill_switch_returns_the_exact_plan_and_changes_nothing() {
    let w = world().await;
    let decision = w.decision("guardduty-ec2-bitcointool-dns.json").await;
    set_kill_switch(&w.ssm, KILL, "on").await.unwrap();
    let rec = w
        .isolator
        .handle(w.request(decision, Mode::Contain))
        .await
        .expect("plan");
    assert_eq!(rec.status, RecordStatus::Planned);
    assert!(rec.dry_run);
    assert!(rec.reason.as_deref().unwrap_or("").contains("kill switch"));
    let planned: Vec<&str> = rec
        .steps
        .iter()
        .filter(|s| s.outcome == Outcome::DryRun)
        .map(|s| s.step.as_str())
        .collect();
    for eni in &w.enis {
        assert!(
            planned.contains(&format!("isolate-{eni}").as_str()),
            "{planned:?}"
        );
    }
    assert!(planned.contains(&"enable-termination-protection"));
    assert!(planned.contains(&"disassociate-instance-profile"));
    assert!(rec.steps.iter().all(|s| s.outcome != Outcome::Succeeded));
    assert_eq!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);
    assert!(
        !w.bool_attr(InstanceAttributeName::DisableApiTermination)
            .await
    );
    assert!(w.profile_associated().await);
    assert!(!w.tags().await.contains_key("ir:status"));
}

#[tokio::test]
async fn a_protected_tag_found_live_escalates_and_an_approval_contains() {
    let w = world().await;
    let decision = w.decision("guardduty-ec2-bitcointool-dns.json").await;
    assert!(
        !decision.protected,
        "the finding itself carried no protected tag"
    );
    // Whoever controls the instance can tag it: the tag brings an analyst in, it does not opt
    // the instance out.
    w.ec2
        .create_tags()
        .resources(&w.instance_id)
        .tags(Tag::builder().key("ir:protected").value("true").build())
        .send()
        .await
        .unwrap();
    let rec = w
        .isolator
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("escalated");
    assert_eq!(rec.status, RecordStatus::AwaitingApproval);
    let reason = rec.reason.as_deref().unwrap();
    assert!(reason.contains("ir:protected=true"), "{reason}");
    assert!(reason.contains("analyst"), "{reason}");
    assert_eq!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);
    assert!(w.profile_associated().await);

    let mut approved = w.request(decision, Mode::Contain);
    approved.approval = Some(Approval {
        approver: "analyst@example.com".into(),
        at: chrono::Utc::now(),
    });
    let rec = w.isolator.handle(approved).await.expect("contain");
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    assert_ne!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);
}

#[tokio::test]
async fn approval_tier_waits_for_an_analyst() {
    let w = world().await;
    // Outbound SSH brute force: the default policy says approval.
    let decision = w
        .decision("guardduty-ec2-ssh-bruteforce-outbound.json")
        .await;
    assert_eq!(decision.tier.to_string(), "approval");
    let rec = w
        .isolator
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("skip");
    assert_eq!(rec.status, RecordStatus::Skipped);
    assert_eq!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);

    let mut approved = w.request(decision, Mode::Contain);
    approved.approval = Some(Approval {
        approver: "analyst@example.com".into(),
        at: chrono::Utc::now(),
    });
    let rec = w.isolator.handle(approved).await.expect("contain");
    assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed);
    assert_ne!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);
}

/// An IAM client whose `GetInstanceProfile` answers like AWS and whose `PutRolePolicy` follows
/// `put`: real EC2 state in moto, an injected IAM fault in the middle of the playbook.
fn iam_with(put: &aws_smithy_mocks::Rule, get: &aws_smithy_mocks::Rule) -> aws_sdk_iam::Client {
    aws_smithy_mocks::mock_client!(
        aws_sdk_iam,
        aws_smithy_mocks::RuleMode::MatchAny,
        [get, put],
        |c| c.retry_config(ir_core::aws::retry_config())
    )
}

fn get_profile_rule() -> aws_smithy_mocks::Rule {
    use aws_sdk_iam::operation::get_instance_profile::GetInstanceProfileOutput;
    use aws_sdk_iam::types::{InstanceProfile, Role};
    aws_smithy_mocks::mock!(aws_sdk_iam::Client::get_instance_profile).then_output(|| {
        let now = aws_smithy_types::DateTime::from_secs(1_700_000_000);
        let role = Role::builder()
            .path("/")
            .role_name("batch-role")
            .role_id("AROAEXAMPLE")
            .arn("arn:aws:iam::123456789012:role/batch-role")
            .create_date(now)
            .build()
            .unwrap();
        GetInstanceProfileOutput::builder()
            .instance_profile(
                InstanceProfile::builder()
                    .path("/")
                    .instance_profile_name("batch-profile")
                    .instance_profile_id("AIPAEXAMPLE")
                    .arn("arn:aws:iam::123456789012:instance-profile/batch-profile")
                    .create_date(now)
                    .roles(role)
                    .build()
                    .unwrap(),
            )
            .build()
    })
}

const IAM_THROTTLED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>";
const IAM_DENIED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform iam:PutRolePolicy</Message></Error><RequestId>2</RequestId></ErrorResponse>";

#[tokio::test]
async fn a_throttled_step_is_retried_and_the_playbook_completes() {
    let mut w = world().await;
    let decision = w.decision("guardduty-ec2-bitcointool-dns.json").await;
    let get = get_profile_rule();
    let put = aws_smithy_mocks::mock!(aws_sdk_iam::Client::put_role_policy)
        .sequence()
        .http_status(400, Some(IAM_THROTTLED.into()))
        .times(2)
        .output(|| aws_sdk_iam::operation::put_role_policy::PutRolePolicyOutput::builder().build())
        .build();
    w.isolator.iam = iam_with(&put, &get);
    let rec = w
        .isolator
        .handle(w.request(decision, Mode::Contain))
        .await
        .expect("completes");
    assert_eq!(rec.status, RecordStatus::Completed);
    assert_eq!(put.num_calls(), 3, "two throttles, then success");
    assert!(!w.profile_associated().await);
}

#[tokio::test]
async fn a_hard_failure_reports_which_steps_completed() {
    let mut w = world().await;
    let decision = w.decision("guardduty-ec2-bitcointool-dns.json").await;
    let get = get_profile_rule();
    let put = aws_smithy_mocks::mock!(aws_sdk_iam::Client::put_role_policy)
        .sequence()
        .http_status(403, Some(IAM_DENIED.into()))
        .repeatedly()
        .build();
    w.isolator.iam = iam_with(&put, &get);
    let err = w
        .isolator
        .handle(w.request(decision, Mode::Contain))
        .await
        .expect_err("partial");
    assert_eq!(err.error_type(), "ContainmentFailed");
    let ir_core::actions::ContainmentError::Partial(rec) = &err else {
        panic!("{err}")
    };
    assert_eq!(rec.status, RecordStatus::Partial);
    assert_eq!(
        rec.failed_step.as_deref(),
        Some("revoke-instance-credentials-batch-role")
    );
    assert!(rec.error.as_deref().unwrap().contains("AccessDenied"));
    assert_eq!(put.num_calls(), 1, "access denied is not retried");
    let done = rec.completed_steps();
    for eni in &w.enis {
        assert!(
            done.contains(&format!("isolate-{eni}").as_str()),
            "{done:?}"
        );
    }
    assert!(done.contains(&"enable-termination-protection"));
    assert!(
        !done.contains(&"disassociate-instance-profile"),
        "must stop at the failed step"
    );
    // What the record says happened did happen; what it says did not, did not.
    assert_ne!(eni_groups(&w.ec2, &w.instance_id).await, w.original_groups);
    assert!(w.profile_associated().await);
    // The Lambda error message carries the partial record as JSON for the failure notification.
    let msg = err.to_string();
    let json = msg.split_once(": ").map(|(_, j)| j).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(json).expect("record JSON in the error");
    assert_eq!(
        parsed["failed_step"],
        "revoke-instance-credentials-batch-role"
    );
}

#[tokio::test]
async fn an_auto_scaling_instance_is_detached_with_capacity_kept_and_not_terminated() {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let asg = aws_sdk_autoscaling::Client::new(&sdk);
    let triage = live_triage(&sdk, "incidents").await;
    let vpc_id = ec2
        .create_vpc()
        .cidr_block("10.30.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let subnet_id = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.30.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    ec2.create_launch_template()
        .launch_template_name("workers")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("workers")
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name("workers")
                .build(),
        )
        .min_size(1)
        .max_size(2)
        .desired_capacity(1)
        .vpc_zone_identifier(&subnet_id)
        .send()
        .await
        .unwrap();
    let group = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("workers")
        .send()
        .await
        .unwrap();
    let instance_id = group.auto_scaling_groups()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_string();

    let isolator = isolator(&sdk, Some("192.0.2.10/32")).await;
    let mut e = event_json("guardduty-ec2-c2-activity.json");
    e["detail"]["resource"]["instanceDetails"]["instanceId"] = instance_id.clone().into();
    let decision = triage.handle(e).await.expect("triage").primary;
    let rec = isolator
        .handle(ContainmentRequest {
            mode: Mode::Contain,
            decision,
            approval: None,
            previous: None,
        })
        .await
        .expect("contain");
    assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    for step in ["asg-protect-from-scale-in", "asg-detach"] {
        assert!(
            rec.steps
                .iter()
                .any(|s| s.step == step && s.outcome == Outcome::Succeeded),
            "{step}"
        );
    }
    // Out of the group before the swap: once isolated, the instance fails its health checks
    // and Auto Scaling would terminate it (termination protection does not stop that).
    let pos = |prefix: &str| rec.steps.iter().position(|s| s.step.starts_with(prefix));
    assert!(
        pos("asg-detach") < pos("untrack-") && pos("untrack-").is_some(),
        "{:#?}",
        rec.steps
    );
    let member = asg
        .describe_auto_scaling_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    assert!(
        member.auto_scaling_instances().is_empty(),
        "still in the group"
    );
    let group = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("workers")
        .send()
        .await
        .unwrap();
    assert_eq!(
        group.auto_scaling_groups()[0].desired_capacity(),
        Some(1),
        "capacity must be kept"
    );
    let state = ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let state = state.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_string();
    assert_eq!(state, "running");
    // The forensic CIDR is the only way in.
    let groups = eni_groups(&ec2, &instance_id).await;
    let sg_id = groups.values().next().unwrap()[0].clone();
    let sg = ec2
        .describe_security_groups()
        .group_ids(sg_id)
        .send()
        .await
        .unwrap();
    let ingress = sg.security_groups()[0].ip_permissions();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0].from_port(), Some(22));
    assert_eq!(ingress[0].ip_ranges()[0].cidr_ip(), Some("192.0.2.10/32"));
    assert!(sg.security_groups()[0].ip_permissions_egress().is_empty());
}

/// The only security group of the instance's ENIs, with its (ingress, egress) rules.
async fn isolation_group(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> (
    String,
    Vec<aws_sdk_ec2::types::IpPermission>,
    Vec<aws_sdk_ec2::types::IpPermission>,
) {
    let groups = eni_groups(ec2, instance_id).await;
    let ids: std::collections::BTreeSet<_> = groups.values().flatten().cloned().collect();
    assert_eq!(
        ids.len(),
        1,
        "{instance_id} is in one group only: {groups:?}"
    );
    let id = ids.into_iter().next().unwrap();
    let sg = ec2
        .describe_security_groups()
        .group_ids(&id)
        .send()
        .await
        .unwrap();
    let sg = &sg.security_groups()[0];
    (
        id.clone(),
        sg.ip_permissions().to_vec(),
        sg.ip_permissions_egress().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_incidents_in_one_vpc_at_once_share_one_isolation_group_whose_rules_are_enforced() {
    let w = world().await;
    // A second compromised instance in the same subnet, with its own finding.
    let first = w
        .ec2
        .describe_instances()
        .instance_ids(&w.instance_id)
        .send()
        .await
        .unwrap();
    let first = &first.reservations()[0].instances()[0];
    let second = w
        .ec2
        .run_instances()
        .image_id(first.image_id().unwrap())
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(first.subnet_id().unwrap())
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let a = w.decision("guardduty-ec2-bitcointool-dns.json").await;
    let mut e = event_json("guardduty-ec2-c2-activity.json");
    e["detail"]["resource"]["instanceDetails"]["instanceId"] = second.clone().into();
    let b = w.triage.handle(e).await.expect("triage").primary;
    assert_ne!(a.incident_id, b.incident_id);

    // Both responses look for the VPC's isolation group before either creates it.
    let (ra, rb) = tokio::join!(
        w.isolator.handle(w.request(a.clone(), Mode::Contain)),
        w.isolator.handle(w.request(b, Mode::Contain)),
    );
    let (ra, rb) = (ra.expect("first"), rb.expect("second"));
    assert_eq!(ra.status, RecordStatus::Completed, "{:#?}", ra.steps);
    assert_eq!(rb.status, RecordStatus::Completed, "{:#?}", rb.steps);
    let (ga, ingress, egress) = isolation_group(&w.ec2, &w.instance_id).await;
    let (gb, _, _) = isolation_group(&w.ec2, &second).await;
    assert_eq!(ga, gb, "one isolation group per VPC");
    assert!(
        ingress.is_empty() && egress.is_empty(),
        "{ingress:?} {egress:?}"
    );

    // Someone opens the isolation group (or a response died between creating and closing it):
    // the next run finds it and closes it again instead of trusting its name.
    w.ec2
        .authorize_security_group_egress()
        .group_id(&ga)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .description("opened by hand")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    w.ec2
        .authorize_security_group_ingress()
        .group_id(&ga)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let again = w
        .isolator
        .handle(w.request(a, Mode::Contain))
        .await
        .expect("repeat");
    assert_eq!(again.status, RecordStatus::Completed, "{:#?}", again.steps);
    let step = again
        .steps
        .iter()
        .find(|s| s.step == "ensure-isolation-group")
        .unwrap();
    assert_eq!(step.outcome, Outcome::Succeeded, "{step:#?}");
    let (_, ingress, egress) = isolation_group(&w.ec2, &w.instance_id).await;
    assert!(ingress.is_empty(), "ingress left open: {ingress:?}");
    assert!(egress.is_empty(), "egress left open: {egress:?}");
}
