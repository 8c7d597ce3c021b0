//! Organization-wide response: a finding delivered in the administrator account A (us-east-1)
//! about an instance in member account B (eu-west-1) is contained in B, through B's member role,
//! assumed with the ExternalId and a session named after the incident; the pre-state stays in
//! A. IAM is enforced: the function signs as its own principal in A, and acts in B with exactly
//! the member role's policy. A member without the role is a typed `MemberAccessDenied` before
//! any call on the resource.

use aws_config::{Region, SdkConfig};
use ir_core::actions::{ContainmentError, ContainmentRequest, Mode, RecordStatus};
use ir_core::member::{MemberRole, Reach};
use ir_isolate_ec2::IsolateConfig;
use ir_tests::accounts::{self, ADMINISTRATOR_ACCOUNT};
use ir_tests::fixtures::{
    assert_declared, eni_group_names, event_json, instance_in, isolator_as, live_triage,
    pre_state_store, vpc_with_subnet,
};
use ir_tests::permissions::member_policy;
use ir_tests::pipeline::function_sdk;
use ir_tests::MotoServer;

const MEMBER: &str = "111111111111";
/// A member account that never deployed infra/member.
const WITHOUT_ROLE: &str = "222222222222";
const MEMBER_REGION: &str = "eu-west-1";
const EXTERNAL_ID: &str = "ir-7d1c2e";
/// `<prefix>-member`, the name the declared sts:AssumeRole permission allows.
const MEMBER_ROLE: &str = "ir-member";

struct Org {
    _moto: MotoServer,
    admin: SdkConfig,
    /// B's administrator, in B's Region.
    in_member: SdkConfig,
    /// ir-isolate-ec2's own principal in A.
    function: SdkConfig,
    triage: ir_triage::Triage,
    instance_id: String,
}

fn in_region(sdk: SdkConfig, region: &str) -> SdkConfig {
    sdk.into_builder()
        .region(Region::new(region.to_string()))
        .build()
}

/// Deploys what infra/member deploys in B: the role trusting the function's principal in A,
/// with the ExternalId, carrying the member policy.
async fn member_role(in_member: &SdkConfig) {
    let iam = aws_sdk_iam::Client::new(in_member);
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": format!("arn:aws:iam::{ADMINISTRATOR_ACCOUNT}:user/fn-{}", ir_isolate_ec2::FUNCTION_NAME)},
        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]});
    iam.create_role()
        .role_name(MEMBER_ROLE)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
    let tokens = [
        ("{partition}", "aws"),
        ("{account}", MEMBER),
        ("{region}", MEMBER_REGION),
        ("{prefix}", "ir"),
    ];
    iam.put_role_policy()
        .role_name(MEMBER_ROLE)
        .policy_name("declared")
        .policy_document(member_policy(&[ir_isolate_ec2::FUNCTION_NAME], &tokens))
        .send()
        .await
        .unwrap();
}

async fn org() -> Org {
    org_with(&[]).await
}

/// [`org`], with extra environment for the emulator.
async fn org_with(env: &[(&str, &str)]) -> Org {
    let (moto, members) = accounts::start_with_env(env, &[MEMBER])
        .await
        .expect("moto");
    let admin = moto.sdk_config().await;
    let in_member = in_region(moto.sdk_config_as(members[0].clone()).await, MEMBER_REGION);
    let ec2 = aws_sdk_ec2::Client::new(&in_member);
    let (_, subnet) = vpc_with_subnet(&ec2, "10.60").await;
    let (instance_id, _) = instance_in(&ec2, &subnet).await;
    member_role(&in_member).await;
    pre_state_store(&admin).await;
    Org {
        triage: live_triage(&admin, "incidents").await,
        function: function_sdk(&moto, ir_isolate_ec2::FUNCTION_NAME).await,
        _moto: moto,
        admin,
        in_member,
        instance_id,
    }
}

impl Org {
    fn reach(&self, member: Option<MemberRole>) -> Reach {
        Reach::new(self.function.clone(), ADMINISTRATOR_ACCOUNT, "aws", member)
    }

    fn member_role() -> Option<MemberRole> {
        Some(MemberRole {
            name: MEMBER_ROLE.into(),
            external_id: EXTERNAL_ID.into(),
        })
    }

    /// The real triage decision (in A) for a C&C finding on `instance` in `account`, eu-west-1.
    async fn request(&self, account: &str, instance: &str) -> ContainmentRequest {
        let mut e = event_json("guardduty-ec2-c2-activity.json");
        e["account"] = account.into();
        e["region"] = MEMBER_REGION.into();
        e["detail"]["accountId"] = account.into();
        e["detail"]["region"] = MEMBER_REGION.into();
        e["detail"]["resource"]["instanceDetails"]["instanceId"] = instance.into();
        ContainmentRequest {
            mode: Mode::Contain,
            decision: self.triage.handle(e).await.expect("triage").primary,
            approval: None,
            previous: None,
        }
    }
}

#[tokio::test]
async fn a_member_account_instance_is_isolated_where_it_lives_through_the_member_role() {
    let w = org().await;
    let req = w.request(MEMBER, &w.instance_id).await;
    assert_eq!(req.decision.incident.account_id, MEMBER);
    assert_eq!(req.decision.incident.region, MEMBER_REGION);
    let incident_id = req.decision.incident_id.clone();
    let isolator = isolator_as(&w.function, IsolateConfig::default());
    let reach = w.reach(Org::member_role());
    let rec = isolator
        .handle_where_it_lives(&reach, req)
        .await
        .expect("contain in B");
    assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);

    // In B, eu-west-1: the instance is isolated and marked.
    let ec2 = aws_sdk_ec2::Client::new(&w.in_member);
    let out = ec2
        .describe_instances()
        .instance_ids(&w.instance_id)
        .send()
        .await
        .unwrap();
    let instance = &out.reservations()[0].instances()[0];
    let groups = eni_group_names(&ec2, &w.instance_id).await;
    assert_eq!(groups.len(), 1);
    assert!(groups[0].starts_with("ir-isolation-"), "{groups:?}");
    assert!(instance
        .tags()
        .iter()
        .any(|t| t.key() == Some("ir:status") && t.value() == Some("isolated")));
    // The pre-state is in A's table, keyed by B and its Region.
    let ddb = aws_sdk_dynamodb::Client::new(&w.admin);
    let items = ddb
        .scan()
        .table_name(ir_tests::fixtures::PRE_STATE_TABLE)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("resource")?.as_s().ok().cloned())
        .collect();
    let key = format!("{MEMBER}/{MEMBER_REGION}/{}", w.instance_id);
    assert!(keys.contains(&key), "{key} not in {keys:?}");
    // B's CloudTrail would show the session: it is named after the incident.
    let place = ir_core::member::Place {
        partition: "aws".into(),
        account: MEMBER.into(),
        region: MEMBER_REGION.into(),
    };
    let there = reach.sdk_for(&place, &incident_id).await.unwrap();
    let me = aws_sdk_sts::Client::new(&there)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(MEMBER));
    assert!(
        me.arn().is_some_and(
            |a| a.ends_with(&format!("/{}", ir_core::member::session_name(&incident_id)))
        ),
        "{:?}",
        me.arn()
    );
}

#[tokio::test]
async fn a_member_without_the_role_or_a_wrong_external_id_is_a_typed_refusal_before_any_change() {
    let w = org().await;
    let isolator = isolator_as(&w.function, IsolateConfig::default());
    let expect_unreachable = |result: Result<_, ContainmentError>, wanted: &str| match result {
        Err(e @ ContainmentError::Unreachable(_)) => {
            assert_eq!(e.error_type(), wanted, "{e}");
            e.to_string()
        }
        other => panic!("expected {wanted}, got {other:?}"),
    };
    let req = w.request(WITHOUT_ROLE, "i-0123456789abcdef0").await;
    let why = expect_unreachable(
        isolator
            .handle_where_it_lives(&w.reach(Org::member_role()), req)
            .await,
        "MemberAccessDenied",
    );
    assert!(why.contains("infra/member"), "{why}");

    let wrong_id = Some(MemberRole {
        name: MEMBER_ROLE.into(),
        external_id: "guessed".into(),
    });
    let req = w.request(MEMBER, &w.instance_id).await;
    expect_unreachable(
        isolator
            .handle_where_it_lives(&w.reach(wrong_id), req.clone())
            .await,
        "MemberAccessDenied",
    );
    expect_unreachable(
        isolator.handle_where_it_lives(&w.reach(None), req).await,
        "CrossAccountNotConfigured",
    );
    // Nothing changed in B.
    let ec2 = aws_sdk_ec2::Client::new(&w.in_member);
    let out = ec2
        .describe_instances()
        .instance_ids(&w.instance_id)
        .send()
        .await
        .unwrap();
    let instance = &out.reservations()[0].instances()[0];
    assert!(!instance.tags().iter().any(|t| t.key() == Some("ir:status")));
    let groups = eni_group_names(&ec2, &w.instance_id).await;
    assert!(groups.iter().all(|g| !g.starts_with("ir-")), "{groups:?}");
}

/// A Region the member account has not enabled (STS there answers RegionDisabledException) and
/// a finding from another partition are typed refusals before anything is tried there.
#[tokio::test]
async fn a_region_the_member_has_not_enabled_and_another_partition_are_typed_refusals() {
    let disabled = format!("{MEMBER}:{MEMBER_REGION}");
    let w = org_with(&[("STRICT_DISABLED_REGIONS", &disabled)]).await;
    let isolator = isolator_as(&w.function, IsolateConfig::default());
    let req = w.request(MEMBER, &w.instance_id).await;
    match isolator
        .handle_where_it_lives(&w.reach(Org::member_role()), req.clone())
        .await
    {
        Err(e @ ContainmentError::Unreachable(_)) => {
            assert_eq!(e.error_type(), "RegionNotEnabled", "{e}");
            assert!(e.to_string().contains(MEMBER_REGION), "{e}");
        }
        other => panic!("expected RegionNotEnabled, got {other:?}"),
    }
    let mut other = req;
    other.decision.incident.partition = "aws-cn".into();
    match isolator
        .handle_where_it_lives(&w.reach(Org::member_role()), other)
        .await
    {
        Err(e @ ContainmentError::Unreachable(_)) => {
            assert_eq!(e.error_type(), "OtherPartition", "{e}")
        }
        other => panic!("expected OtherPartition, got {other:?}"),
    }
    let ec2 = aws_sdk_ec2::Client::new(&w.in_member);
    let groups = eni_group_names(&ec2, &w.instance_id).await;
    assert!(groups.iter().all(|g| !g.starts_with("ir-")), "{groups:?}");
}
