//! ir-isolate-ec2 where real instances and real APIs make it hard: a Spot instance (AWS refuses
//! termination protection), and a swap that fails half-way (the ENI must not stay in the
//! allow-all untrack group, injected by an interceptor on the EC2 client). Strict mode refuses
//! what AWS refuses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_ec2::operation::modify_network_interface_attribute::ModifyNetworkInterfaceAttributeInput;
use aws_sdk_ec2::types::{
    IamInstanceProfileSpecification, InstanceMarketOptionsRequest, InstanceType, MarketType,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use ir_core::actions::{ContainmentRequest, Mode, RecordStatus};
use ir_core::audit::Outcome;
use ir_isolate_ec2::{IsolateConfig, Isolator};
use ir_tests::fixtures::{
    any_image, assert_declared, event_json, instance_profile, live_triage, pre_state_store, safety,
    vpc_with_subnet,
};
use ir_tests::MotoServer;

/// Fails the `nth` ModifyNetworkInterfaceAttribute call (1-based) before it is sent.
#[derive(Debug, Clone)]
struct FailNth {
    nth: usize,
    seen: Arc<AtomicUsize>,
}

impl Intercept for FailNth {
    fn name(&self) -> &'static str {
        "FailNth"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let is_op = context
            .input()
            .downcast_ref::<ModifyNetworkInterfaceAttributeInput>()
            .is_some();
        if is_op && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            return Err("injected failure (connection reset)".into());
        }
        Ok(())
    }
}

struct Setup {
    _moto: MotoServer,
    sdk: aws_config::SdkConfig,
    ec2: aws_sdk_ec2::Client,
    instance_id: String,
    decision: ir_core::TriageDecision,
}

/// One instance with an instance profile in its own VPC, and the triage decision of a C&C
/// finding on it (tier auto).
async fn setup(spot: bool) -> Setup {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let (vpc_id, subnet_id) = vpc_with_subnet(&ec2, "10.40").await;
    let app = ec2
        .create_security_group()
        .group_name("app")
        .description("app")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap();
    let app = app.group_id().unwrap().to_string();
    let profile_arn = instance_profile(&iam, "worker-role", "worker-profile").await;
    let image = any_image(&ec2).await;
    let mut run = ec2
        .run_instances()
        .image_id(image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet_id)
        .security_group_ids(&app)
        .iam_instance_profile(
            IamInstanceProfileSpecification::builder()
                .arn(&profile_arn)
                .build(),
        );
    if spot {
        run = run.instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .build(),
        );
    }
    let run = run.send().await.unwrap();
    let instance_id = run.instances()[0].instance_id().unwrap().to_string();
    let triage = live_triage(&sdk, "incidents").await;
    let mut e = event_json("guardduty-ec2-c2-activity.json");
    e["detail"]["resource"]["instanceDetails"]["instanceId"] = instance_id.clone().into();
    let decision = triage.handle(e).await.expect("triage").primary;
    Setup {
        _moto: moto,
        sdk,
        ec2,
        instance_id,
        decision,
    }
}

async fn isolator(s: &Setup, ec2: aws_sdk_ec2::Client) -> Isolator {
    Isolator {
        ec2,
        autoscaling: aws_sdk_autoscaling::Client::new(&s.sdk),
        elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&s.sdk),
        iam: aws_sdk_iam::Client::new(&s.sdk),
        safety: safety(&s.sdk),
        pre_state: pre_state_store(&s.sdk).await,
        config: IsolateConfig::default(),
    }
}

fn contain(decision: &ir_core::TriageDecision) -> ContainmentRequest {
    ContainmentRequest {
        mode: Mode::Contain,
        decision: decision.clone(),
        approval: None,
        previous: None,
    }
}

/// The names of the groups on the instance's (only) ENI.
async fn eni_group_names(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Vec<String> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    let instance = &out.reservations()[0].instances()[0];
    let eni = &instance.network_interfaces()[0];
    eni.groups()
        .iter()
        .map(|g| g.group_name().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_spot_instance_is_isolated_though_aws_refuses_termination_protection() {
    let s = setup(true).await;
    let isolator = isolator(&s, s.ec2.clone()).await;
    let rec = isolator
        .handle(contain(&s.decision))
        .await
        .expect("contain");
    assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    let step = |name: &str| {
        rec.steps
            .iter()
            .find(|st| st.step == name)
            .unwrap_or_else(|| panic!("no step {name}: {:#?}", rec.steps))
    };
    let protection = step("enable-termination-protection");
    assert_eq!(protection.outcome, Outcome::Skipped);
    assert!(
        protection
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("UnsupportedOperation"),
        "{protection:?}"
    );
    // Everything after it still ran: the instance is isolated and has no role credentials.
    for later in ["disassociate-instance-profile", "tag-isolated"] {
        assert_eq!(step(later).outcome, Outcome::Succeeded, "{later}");
    }
    let names = eni_group_names(&s.ec2, &s.instance_id).await;
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("ir-isolation-"), "{names:?}");
}

#[tokio::test]
async fn a_swap_that_fails_half_way_never_leaves_the_eni_in_the_untrack_group() {
    let s = setup(false).await;
    // The first ENI change (to the untrack group) goes through; the second (to the isolation
    // group) fails as a dropped connection would.
    let failing = aws_sdk_ec2::config::Builder::from(&s.sdk)
        .interceptor(FailNth {
            nth: 2,
            seen: Arc::default(),
        })
        .build();
    let isolator = isolator(&s, aws_sdk_ec2::Client::from_conf(failing)).await;
    let err = isolator
        .handle(contain(&s.decision))
        .await
        .expect_err("the isolate step failed");
    let msg = err.to_string();
    let json = msg
        .split_once(": ")
        .map(|(_, j)| j)
        .expect("record in the error");
    let record: serde_json::Value = serde_json::from_str(json).expect("record JSON");
    assert!(
        record["failed_step"]
            .as_str()
            .is_some_and(|s| s.starts_with("isolate-eni-")),
        "{record:#}"
    );
    let names = eni_group_names(&s.ec2, &s.instance_id).await;
    assert!(
        names.iter().all(|n| !n.starts_with("ir-untrack-")),
        "the ENI was left in the allow-all untrack group: {names:?}"
    );
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("ir-isolation-"), "{names:?}");
    let closed = record["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|st| {
            st["step"]
                .as_str()
                .is_some_and(|n| n.starts_with("close-untracked-"))
        })
        .expect("a close-untracked step");
    assert_eq!(closed["outcome"], "succeeded", "{closed:#}");
}

#[tokio::test]
async fn a_retry_after_the_role_was_deleted_still_completes_the_isolation() {
    let s = setup(false).await;
    pre_state_store(&s.sdk).await;
    // The first attempt dies right after recording the pre-state (the lease, then the record):
    // the instance's role is in it.
    let crash = ir_tests::faults::Crash::new(&s.sdk, Some(2));
    let dying = ir_tests::fixtures::isolator_as(&crash.config(&s.sdk), IsolateConfig::default());
    let _ = dying.handle(contain(&s.decision)).await;
    assert_eq!(crash.applied(), ["dynamodb:UpdateItem", "dynamodb:PutItem"]);
    // Before the retry, someone deletes the role (out of its profile first, as IAM requires).
    let iam = aws_sdk_iam::Client::new(&s.sdk);
    iam.remove_role_from_instance_profile()
        .instance_profile_name("worker-profile")
        .role_name("worker-role")
        .send()
        .await
        .unwrap();
    iam.delete_role()
        .role_name("worker-role")
        .send()
        .await
        .unwrap();

    let isolator = isolator(&s, s.ec2.clone()).await;
    let rec = isolator
        .handle(contain(&s.decision))
        .await
        .expect("the retry completes");
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    let revoke = rec
        .steps
        .iter()
        .find(|st| st.step == "revoke-instance-credentials-worker-role")
        .expect("the recorded role is still revoked (or found gone)");
    assert_eq!(revoke.outcome, Outcome::AlreadyDone, "{revoke:?}");
    assert!(revoke
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("no longer exists"));
    let names = eni_group_names(&s.ec2, &s.instance_id).await;
    assert!(names[0].starts_with("ir-isolation-"), "{names:?}");
}
