//! The executed state machine across accounts and Regions: a finding delivered in the
//! administrator account (us-east-1) about an instance in member account B (eu-west-1) is
//! contained in B through its member role, and the evidence lands in the administrator's
//! bucket; a member account without the role ends in the failure notification, which says
//! what to fix. IAM is enforced everywhere (each function as its own principal in A, the
//! member role's policy in B).

use aws_sdk_sfn::types::ExecutionStatus;
use ir_tests::fixtures::{eni_group_names, event_json};
use ir_tests::pipeline::{
    instance, relocate_finding, start as world, Pipeline, EVIDENCE, MEMBER_ACCOUNT,
};
use serde_json::Value;

const REGION: &str = "eu-west-1";

/// The bitcoin-mining GuardDuty sample, about instance `id` in `account`, `REGION`.
fn bitcoin_in(account: &str, id: &str) -> Value {
    let mut event = event_json("guardduty-ec2-bitcointool-dns.json");
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.into();
    relocate_finding(&mut event, account, REGION);
    event
}

fn calls_of(w: &Pipeline, kind: &str) -> Vec<Value> {
    w.invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == "ir-notify" && c.payload["kind"] == kind)
        .map(|c| c.payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_account_finding_is_contained_there_and_its_evidence_lands_in_the_administrator_bucket(
) {
    let w = world(600).await;
    w.deploy_member_role().await;
    let in_member = w.in_member(REGION).await;
    let id = instance(&in_member).await;
    let event = bitcoin_in(MEMBER_ACCOUNT, &id);
    let incident = ir_core::Incident::from_event_value(event.clone()).unwrap()[0]
        .incident_id
        .clone();
    let exec = w.start_execution("member-account", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running,
        "waits at the review gate: {:?}",
        w.path(&exec).await
    );
    let groups = eni_group_names(&aws_sdk_ec2::Client::new(&in_member), &id).await;
    assert!(
        !groups.is_empty() && groups.iter().all(|g| g.starts_with("ir-isolation-")),
        "isolated in {MEMBER_ACCOUNT}, {REGION}: {groups:?}"
    );
    // The evidence is in the administrator account's bucket, and notes where it came from.
    let s3 = w.moto.s3_client(&w.sdk);
    let objects = s3
        .list_objects_v2()
        .bucket(EVIDENCE)
        .prefix(format!("incidents/{incident}/"))
        .send()
        .await
        .unwrap();
    assert!(
        objects
            .contents()
            .iter()
            .any(|o| o.key().is_some_and(|k| k.contains("/manifests/"))),
        "{objects:?}"
    );
    assert!(
        calls_of(&w, "failed").is_empty(),
        "{:#?}",
        calls_of(&w, "failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_account_without_the_role_ends_in_the_failure_notification_with_what_to_fix() {
    let w = world(600).await;
    // No member role deployed in the member account.
    let in_member = w.in_member(REGION).await;
    let id = instance(&in_member).await;
    let exec = w
        .start_execution("member-without-role", &bitcoin_in(MEMBER_ACCOUNT, &id))
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    // (moto 5.2.1 stops recording a Parallel's history at a branch's failure: what ran is read
    // from the calls.)
    let sent = calls_of(&w, "failed")
        .into_iter()
        .next()
        .expect("a failure notification");
    let failure = sent["failure"].to_string();
    assert!(
        failure.contains("MemberAccessDenied") && failure.contains("infra/member"),
        "{sent:#}"
    );
    assert!(
        eni_group_names(&aws_sdk_ec2::Client::new(&in_member), &id)
            .await
            .iter()
            .all(|g| !g.starts_with("ir-")),
        "nothing changed in the member account"
    );
}
