//! The executed state machine across accounts and Regions: a finding delivered in the
//! administrator account (us-east-1) about an instance in member account B (eu-west-1) is
//! contained in B through its member role, and the evidence lands in the administrator's
//! bucket; a member account without the role ends in the failure notification, which says
//! what to fix. IAM is enforced everywhere (each function as its own principal in A, the
//! member role's policy in B).

use aws_sdk_sfn::types::ExecutionStatus;
use ir_tests::fixtures::{eni_group_names, event_json};
use ir_tests::pipeline::{
    instance, relocate_finding, start as world, start_with_forensics, Pipeline, EVIDENCE, MACHINE,
    MEMBER_ACCOUNT,
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
        .prefix(format!("incidents/{MEMBER_ACCOUNT}/{REGION}/{incident}/"))
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

/// With a forensics account configured, the response starts a share execution of its own:
/// in member account B, the unencrypted root volume's snapshot is shared with the forensics
/// account, and the data volume's (encrypted with B's default `aws/ebs` key, which cannot be
/// shared) is copied under the forensics account's key and the copy shared; the shares are an
/// artifact of the evidence chain in A's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_evidence_snapshots_reach_the_forensics_account_encrypted_ones_as_copies_under_its_key(
) {
    const FORENSICS: &str = "444455556666";
    let w = start_with_forensics(
        600,
        ir_preserve_evidence::Forensics {
            account: FORENSICS.into(),
            kms_key: Some(format!(
                "arn:aws:kms:{{region}}:{FORENSICS}:key/mrk-forensics"
            )),
        },
    )
    .await;
    w.deploy_member_role().await;
    let in_member = w.in_member(REGION).await;
    let ec2 = aws_sdk_ec2::Client::new(&in_member);
    let id = instance(&in_member).await;
    let described = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let zone = described.reservations()[0].instances()[0]
        .placement()
        .and_then(|p| p.availability_zone())
        .unwrap()
        .to_string();
    let data = ec2
        .create_volume()
        .availability_zone(zone)
        .size(8)
        .encrypted(true)
        .send()
        .await
        .unwrap()
        .volume_id
        .unwrap();
    ec2.attach_volume()
        .volume_id(&data)
        .instance_id(&id)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    let event = bitcoin_in(MEMBER_ACCOUNT, &id);
    let incident = ir_core::Incident::from_event_value(event.clone()).unwrap()[0]
        .incident_id
        .clone();
    let exec = w.start_execution("member-forensics", &event).await;
    let status = w.settle(&exec, Some(&incident)).await;
    let d = w
        .sfn
        .describe_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status,
        ExecutionStatus::Running,
        "{:?} {:?} {:?}",
        w.path(&exec).await,
        d.error(),
        d.cause()
    );
    let share =
        format!("arn:aws:states:us-east-1:123456789012:execution:{MACHINE}:share-{incident}");
    assert_eq!(
        w.settle(&share, None).await,
        ExecutionStatus::Succeeded,
        "{:?}",
        w.path(&share).await
    );

    let snapshots = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:ir:incident-id")
                .values(&incident)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tag = |s: &aws_sdk_ec2::types::Snapshot, k: &str| {
        s.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value().map(String::from))
    };
    let shared_with = |snapshot: String| {
        let ec2 = ec2.clone();
        async move {
            let a = ec2
                .describe_snapshot_attribute()
                .snapshot_id(snapshot)
                .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .unwrap();
            a.create_volume_permissions()
                .iter()
                .filter_map(|p| p.user_id().map(String::from))
                .collect::<Vec<_>>()
        }
    };
    let all = snapshots.snapshots();
    let (copies, originals): (Vec<_>, Vec<_>) =
        all.iter().partition(|s| tag(s, "ir:copy-of").is_some());
    assert_eq!((originals.len(), copies.len()), (2, 1), "{all:#?}");
    let encrypted = originals
        .iter()
        .find(|s| s.encrypted() == Some(true))
        .expect("the data volume's snapshot");
    let plain = originals
        .iter()
        .find(|s| s.encrypted() != Some(true))
        .expect("the root volume's snapshot");
    let output = w
        .sfn
        .describe_execution()
        .execution_arn(&share)
        .send()
        .await
        .unwrap()
        .output
        .unwrap_or_default();
    assert_eq!(
        shared_with(plain.snapshot_id().unwrap().into()).await,
        [FORENSICS],
        "{output}"
    );
    assert!(
        shared_with(encrypted.snapshot_id().unwrap().into())
            .await
            .is_empty(),
        "never the aws/ebs-encrypted original"
    );
    let copy = copies[0];
    assert_eq!(tag(copy, "ir:copy-of").as_deref(), encrypted.snapshot_id());
    assert_eq!(
        copy.kms_key_id(),
        Some(format!("arn:aws:kms:{REGION}:{FORENSICS}:key/mrk-forensics").as_str())
    );
    assert_eq!(
        shared_with(copy.snapshot_id().unwrap().into()).await,
        [FORENSICS]
    );

    // Recorded in the chain: the latest manifest names the shares.
    let s3 = w.moto.s3_client(&w.sdk);
    let manifests = s3
        .list_objects_v2()
        .bucket(EVIDENCE)
        .prefix(format!(
            "incidents/{MEMBER_ACCOUNT}/{REGION}/{incident}/manifests/"
        ))
        .send()
        .await
        .unwrap();
    let latest = manifests
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .max()
        .unwrap()
        .to_string();
    let body = s3
        .get_object()
        .bucket(EVIDENCE)
        .key(latest)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        manifest["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "snapshot-shares"),
        "{manifest:#}"
    );
}
