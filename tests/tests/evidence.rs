//! ir-preserve-evidence against moto: a real instance with two volumes, a flow log, a locked
//! and KMS-encrypted evidence bucket; S3 and EC2 reads prove what was preserved. CloudTrail
//! LookupEvents is not implemented by moto, so it comes from an aws-smithy-mocks client in the
//! success tests and from moto itself (HTTP 500) in the gap test.

use std::collections::BTreeSet;

use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsOutput;
use aws_sdk_cloudtrail::types::Event;
use aws_sdk_ec2::types::{Filter, Tag, TagSpecification};
use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption};
use ir_core::TriageDecision;
use ir_preserve_evidence::{
    EvidenceConfig, EvidenceRecord, EvidenceRequest, EvidenceStatus, Manifest, Preserver,
};
use ir_tests::fixtures::{event_json, live_triage};
use ir_tests::MotoServer;
use sha2::{Digest, Sha256};

const EVIDENCE: &str = "ir-evidence-111122223333";

struct World {
    _moto: MotoServer,
    sdk: aws_config::SdkConfig,
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    triage: ir_triage::Triage,
    kms_key: String,
    instance_id: String,
    volumes: BTreeSet<String>,
    flow_log: String,
}

fn cloudtrail_mock() -> aws_sdk_cloudtrail::Client {
    let rule = aws_smithy_mocks::mock!(aws_sdk_cloudtrail::Client::lookup_events)
        .sequence()
        .output(|| {
            LookupEventsOutput::builder()
                .events(
                    Event::builder()
                        .event_id("9f1c-0001")
                        .event_name("RunInstances")
                        .event_source("ec2.amazonaws.com")
                        .event_time(aws_smithy_types::DateTime::from_secs(1_763_700_000))
                        .username("deploy-bot")
                        .access_key_id("AKIAQEXAMPLELEAKED05")
                        .cloud_trail_event(
                            r#"{"eventVersion":"1.09","eventName":"RunInstances","sourceIPAddress":"198.51.100.23"}"#,
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    aws_smithy_mocks::mock_client!(
        aws_sdk_cloudtrail,
        aws_smithy_mocks::RuleMode::MatchAny,
        [&rule]
    )
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let s3 = moto.s3_client(&sdk);
    let kms = aws_sdk_kms::Client::new(&sdk);
    let triage = live_triage(&sdk, "incidents").await;

    let kms_key = kms
        .create_key()
        .description("evidence")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    s3.create_bucket()
        .bucket(EVIDENCE)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    s3.create_bucket()
        .bucket("flow-logs-archive")
        .send()
        .await
        .unwrap();

    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let run = ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(Tag::builder().key("Name").value("batch-worker-7").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let inst = &run.instances()[0];
    let instance_id = inst.instance_id().unwrap().to_string();
    let vpc_id = inst.vpc_id().unwrap().to_string();
    let az = inst
        .placement()
        .unwrap()
        .availability_zone()
        .unwrap()
        .to_string();
    let data = ec2
        .create_volume()
        .availability_zone(az)
        .size(50)
        .send()
        .await
        .unwrap();
    ec2.attach_volume()
        .volume_id(data.volume_id().unwrap())
        .instance_id(&instance_id)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    let volumes: BTreeSet<String> = ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(&instance_id)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .volumes()
        .iter()
        .map(|v| v.volume_id().unwrap().to_string())
        .collect();
    assert_eq!(volumes.len(), 2, "root and data volume: {volumes:?}");
    let flow = ec2
        .create_flow_logs()
        .resource_ids(&vpc_id)
        .resource_type(aws_sdk_ec2::types::FlowLogsResourceType::Vpc)
        .traffic_type(aws_sdk_ec2::types::TrafficType::All)
        .log_destination_type(aws_sdk_ec2::types::LogDestinationType::S3)
        .log_destination("arn:aws:s3:::flow-logs-archive")
        .send()
        .await
        .unwrap();
    let flow_log = flow.flow_log_ids()[0].clone();
    World {
        _moto: moto,
        sdk,
        ec2,
        s3,
        triage,
        kms_key,
        instance_id,
        volumes,
        flow_log,
    }
}

impl World {
    fn preserver(&self, cloudtrail: aws_sdk_cloudtrail::Client) -> Preserver {
        Preserver {
            ec2: self.ec2.clone(),
            iam: aws_sdk_iam::Client::new(&self.sdk),
            s3: self.s3.clone(),
            cloudtrail,
            config: EvidenceConfig {
                bucket: EVIDENCE.into(),
                kms_key_id: Some(self.kms_key.clone()),
                retention_days: 30,
                lookback_hours: 24,
                max_trail_events: 100,
                snapshots: true,
                forensics: None,
            },
            share_starter: None,
        }
    }

    async fn decision(
        &self,
        event: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> TriageDecision {
        let mut e = event_json(event);
        edit(&mut e);
        self.triage.handle(e).await.expect("triage").primary
    }

    async fn ec2_decision(&self) -> TriageDecision {
        let id = self.instance_id.clone();
        self.decision("guardduty-ec2-bitcointool-dns.json", |e| {
            e["detail"]["resource"]["instanceDetails"]["instanceId"] = id.into();
        })
        .await
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        self.s3
            .get_object()
            .bucket(EVIDENCE)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    async fn manifest_keys(&self, incident_id: &str) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(EVIDENCE)
            .prefix("incidents/")
            .send()
            .await
            .unwrap();
        // incidents/<account>/<region>/<id>/manifests/...
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .filter(|k| k.contains(&format!("/{incident_id}/manifests/")))
            .collect();
        keys.sort();
        keys
    }

    async fn evidence_snapshots(&self, incident_id: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
        self.ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("tag:ir:incident-id")
                    .values(incident_id)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .snapshots()
            .to_vec()
    }

    /// Reads the manifest back and checks every artifact against its recorded hash and size.
    async fn verify(&self, record: &EvidenceRecord) -> (Manifest, Vec<u8>) {
        let key = record.manifest_key.clone().expect("manifest key");
        let bytes = self.object(&key).await;
        assert_eq!(
            Some(hex::encode(Sha256::digest(&bytes))),
            record.manifest_sha256,
            "the manifest hash in the record is the hash of the stored manifest"
        );
        let m: Manifest = serde_json::from_slice(&bytes).unwrap();
        for a in &m.artifacts {
            let body = self.object(&a.key).await;
            assert_eq!(hex::encode(Sha256::digest(&body)), a.sha256, "{}", a.name);
            assert_eq!(body.len() as u64, a.size, "{}", a.name);
        }
        (m, bytes)
    }
}

#[tokio::test]
async fn ec2_evidence_is_hashed_locked_encrypted_snapshotted_and_idempotent() {
    let w = world().await;
    let decision = w.ec2_decision().await;
    let incident = decision.incident_id.clone();
    let preserver = w.preserver(cloudtrail_mock());

    let first = preserver
        .handle(EvidenceRequest {
            decision: decision.clone(),
        })
        .await
        .expect("preserve");
    assert_eq!(first.status, EvidenceStatus::Preserved, "{:?}", first.gaps);
    assert_eq!(first.sequence, 1);
    let (m1, m1_bytes) = w.verify(&first).await;
    assert!(m1.previous.is_none(), "the first manifest starts the chain");
    let names: BTreeSet<&str> = m1.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "finding",
            "ec2-instance",
            "ec2-security-groups",
            "log-locations",
            "cloudtrail-resource",
        ]),
    );

    // The artifacts say what was there.
    let inst: serde_json::Value = serde_json::from_slice(
        &w.object(
            &m1.artifacts
                .iter()
                .find(|a| a.name == "ec2-instance")
                .unwrap()
                .key,
        )
        .await,
    )
    .unwrap();
    assert_eq!(inst["instance_id"], w.instance_id.as_str());
    assert_eq!(inst["tags"]["Name"], "batch-worker-7");
    let logs = String::from_utf8(
        w.object(
            &m1.artifacts
                .iter()
                .find(|a| a.name == "log-locations")
                .unwrap()
                .key,
        )
        .await,
    )
    .unwrap();
    assert!(
        logs.contains(&w.flow_log) && logs.contains("flow-logs-archive"),
        "{logs}"
    );
    let trail: serde_json::Value = serde_json::from_slice(
        &w.object(
            &m1.artifacts
                .iter()
                .find(|a| a.name == "cloudtrail-resource")
                .unwrap()
                .key,
        )
        .await,
    )
    .unwrap();
    assert_eq!(trail["lookup"]["attribute"], "ResourceName");
    assert_eq!(trail["lookup"]["value"], w.instance_id.as_str());
    assert_eq!(
        trail["events"][0]["record"]["sourceIPAddress"],
        "198.51.100.23"
    );

    // One tagged snapshot per attached volume.
    let snaps = w.evidence_snapshots(&incident).await;
    let snapped: BTreeSet<String> = snaps
        .iter()
        .map(|s| s.volume_id().unwrap().to_string())
        .collect();
    assert_eq!(snapped, w.volumes);
    for s in &snaps {
        let tags: BTreeSet<(String, String)> = s
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        assert!(tags.contains(&("ir:evidence".into(), "true".into())));
        assert!(tags.contains(&("ir:source-instance".into(), w.instance_id.clone())));
    }
    assert_eq!(
        first.snapshot_ids.iter().collect::<BTreeSet<_>>(),
        snaps
            .iter()
            .map(|s| s.snapshot_id().unwrap().to_string())
            .collect::<BTreeSet<_>>()
            .iter()
            .collect()
    );

    // Every object: COMPLIANCE retention, SSE-KMS with the configured key; a locked version
    // cannot be deleted.
    let manifest_key = first.manifest_key.clone().unwrap();
    let head =
        w.s3.head_object()
            .bucket(EVIDENCE)
            .key(&manifest_key)
            .send()
            .await
            .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert!(head.object_lock_retain_until_date().is_some());
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert!(head
        .ssekms_key_id()
        .unwrap_or_default()
        .contains(&w.kms_key));
    let version = head.version_id().expect("versioned").to_string();
    let delete =
        w.s3.delete_object()
            .bucket(EVIDENCE)
            .key(&manifest_key)
            .version_id(version)
            .send()
            .await;
    assert!(
        delete.is_err(),
        "a locked evidence version must not be deletable"
    );
    assert_eq!(
        w.object(&manifest_key).await,
        m1_bytes,
        "still there, unchanged"
    );

    // The same finding again: nothing new is written, no second snapshot.
    let again = preserver
        .handle(EvidenceRequest {
            decision: decision.clone(),
        })
        .await
        .unwrap();
    assert_eq!(again.status, EvidenceStatus::Unchanged);
    assert_eq!(again.manifest_sha256, first.manifest_sha256);
    assert_eq!(w.manifest_keys(&incident).await.len(), 1);
    assert_eq!(w.evidence_snapshots(&incident).await.len(), 2);

    // The instance changes (containment tags it): the next manifest chains to the first.
    w.ec2
        .create_tags()
        .resources(&w.instance_id)
        .tags(Tag::builder().key("ir:status").value("isolated").build())
        .send()
        .await
        .unwrap();
    let second = preserver
        .handle(EvidenceRequest { decision })
        .await
        .unwrap();
    assert_eq!(second.status, EvidenceStatus::Preserved);
    assert_eq!(second.sequence, 2);
    let (m2, _) = w.verify(&second).await;
    let prev = m2.previous.expect("chained");
    assert_eq!(prev.key, manifest_key);
    assert_eq!(prev.sha256, hex::encode(Sha256::digest(&m1_bytes)));
    let reused = |name: &str| {
        m1.artifacts.iter().find(|a| a.name == name).unwrap().key
            == m2.artifacts.iter().find(|a| a.name == name).unwrap().key
    };
    assert!(
        reused("finding"),
        "unchanged artifacts are referenced, not rewritten"
    );
    assert!(
        !reused("ec2-instance"),
        "the changed instance is a new artifact"
    );
    assert_eq!(w.manifest_keys(&incident).await.len(), 2);
    assert_eq!(w.evidence_snapshots(&incident).await.len(), 2);
}

#[tokio::test]
async fn an_unavailable_source_is_a_recorded_gap_and_the_rest_is_preserved() {
    let w = world().await;
    let decision = w.ec2_decision().await;
    // moto does not implement LookupEvents: a real HTTP 500 from the emulator.
    let preserver = w.preserver(aws_sdk_cloudtrail::Client::new(&w.sdk));
    let record = preserver
        .handle(EvidenceRequest { decision })
        .await
        .expect("a gap does not fail the function");
    assert_eq!(record.status, EvidenceStatus::Partial);
    let gaps: Vec<&str> = record.gaps.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(gaps, ["cloudtrail-resource"]);
    assert_eq!(record.gaps[0].source, ["cloudtrail:LookupEvents"]);
    let (m, _) = w.verify(&record).await;
    assert_eq!(m.gaps, record.gaps, "the manifest names what is missing");
    assert!(m.artifacts.iter().any(|a| a.name == "ec2-instance"));
    assert_eq!(record.snapshot_ids.len(), 2);
}

#[tokio::test]
async fn iam_user_and_bucket_configuration_are_preserved() {
    let w = world().await;
    let iam = aws_sdk_iam::Client::new(&w.sdk);
    iam.create_user()
        .user_name("deploy-bot")
        .send()
        .await
        .unwrap();
    iam.create_access_key()
        .user_name("deploy-bot")
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name("deploy-bot")
        .policy_name("deploy")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let preserver = w.preserver(cloudtrail_mock());
    let user = w
        .decision("guardduty-iam-anomalous-behavior.json", |_| {})
        .await;
    let record = preserver
        .handle(EvidenceRequest { decision: user })
        .await
        .unwrap();
    assert_eq!(
        record.status,
        EvidenceStatus::Preserved,
        "{:?}",
        record.gaps
    );
    let (m, _) = w.verify(&record).await;
    let names: BTreeSet<&str> = m.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.is_superset(&BTreeSet::from([
            "iam-user",
            "cloudtrail-principal",
            "cloudtrail-resource"
        ])),
        "{names:?}"
    );
    let u: serde_json::Value = serde_json::from_slice(
        &w.object(
            &m.artifacts
                .iter()
                .find(|a| a.name == "iam-user")
                .unwrap()
                .key,
        )
        .await,
    )
    .unwrap();
    assert_eq!(u["user_name"], "deploy-bot");
    assert_eq!(u["access_keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        u["inline_policies"]["deploy"]["Statement"][0]["Action"],
        "s3:*"
    );
    let trail: serde_json::Value = serde_json::from_slice(
        &w.object(
            &m.artifacts
                .iter()
                .find(|a| a.name == "cloudtrail-principal")
                .unwrap()
                .key,
        )
        .await,
    )
    .unwrap();
    assert_eq!(trail["lookup"]["attribute"], "AccessKeyId");
    assert_eq!(trail["lookup"]["value"], "AKIAQEXAMPLELEAKED05");
    assert!(record.snapshot_ids.is_empty());

    w.s3.create_bucket()
        .bucket("acme-customer-exports")
        .send()
        .await
        .unwrap();
    w.s3.put_bucket_logging()
        .bucket("acme-customer-exports")
        .bucket_logging_status(
            aws_sdk_s3::types::BucketLoggingStatus::builder()
                .logging_enabled(
                    aws_sdk_s3::types::LoggingEnabled::builder()
                        .target_bucket("flow-logs-archive")
                        .target_prefix("s3/")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .ok();
    let bucket = w
        .decision("guardduty-s3-block-public-access-disabled.json", |_| {})
        .await;
    let record = preserver
        .handle(EvidenceRequest { decision: bucket })
        .await
        .unwrap();
    let (m, _) = w.verify(&record).await;
    let b: serde_json::Value = serde_json::from_slice(
        &w.object(
            &m.artifacts
                .iter()
                .find(|a| a.name == "s3-bucket")
                .unwrap()
                .key,
        )
        .await,
    )
    .unwrap();
    assert_eq!(b["bucket"], "acme-customer-exports");
    assert!(
        b["policy"].is_null() && b["public_access_block"].is_null(),
        "{b}"
    );
    assert!(m.artifacts.iter().any(|a| a.name == "log-locations"));
}

#[tokio::test]
async fn a_decision_without_a_response_preserves_nothing() {
    let w = world().await;
    let mut decision = w.ec2_decision().await;
    decision.disposition = ir_core::Disposition::Suppressed;
    let record = w
        .preserver(cloudtrail_mock())
        .handle(EvidenceRequest {
            decision: decision.clone(),
        })
        .await
        .unwrap();
    assert_eq!(record.status, EvidenceStatus::Skipped);
    assert!(w.manifest_keys(&decision.incident_id).await.is_empty());
    assert!(w.evidence_snapshots(&decision.incident_id).await.is_empty());
}

/// A snapshot that is still pending is neither shared nor copied: the round asks for another
/// one (the state machine waits five minutes), and after the last round it is recorded as not
/// shared, to be shared by hand. (moto completes snapshots at once, so EC2 is an
/// aws-smithy-mocks client answering `pending` here; the evidence chain is moto's S3.)
#[tokio::test]
async fn a_pending_snapshot_waits_for_another_round_and_the_last_round_records_it_unshared() {
    use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
    use aws_sdk_ec2::types::{Snapshot, SnapshotState};
    use ir_preserve_evidence::share::{ShareState, MAX_ROUNDS};
    use ir_preserve_evidence::{Forensics, ShareRequest};
    let w = world().await;
    let decision = w.ec2_decision().await;
    let record = w
        .preserver(cloudtrail_mock())
        .handle(EvidenceRequest {
            decision: decision.clone(),
        })
        .await
        .unwrap();
    assert!(!record.snapshot_ids.is_empty());
    let incident = decision.incident.incident_id.clone();
    let pending =
        aws_smithy_mocks::mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(move || {
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            DescribeSnapshotsOutput::builder()
                .snapshots(
                    Snapshot::builder()
                        .snapshot_id("snap-0123456789abcdef0")
                        .state(SnapshotState::Pending)
                        .encrypted(false)
                        .tags(tag("ir:evidence", "true"))
                        .tags(tag("ir:incident-id", &incident))
                        .build(),
                )
                .build()
        });
    let ec2 = aws_smithy_mocks::mock_client!(
        aws_sdk_ec2,
        aws_smithy_mocks::RuleMode::MatchAny,
        [&pending]
    );
    let mut preserver = w.preserver(cloudtrail_mock());
    preserver.config.forensics = Some(Forensics {
        account: "444455556666".into(),
        kms_key: None,
    });
    let round = |round: u32| ShareRequest {
        incident: decision.incident.clone(),
        round,
    };
    let first = preserver.share(&ec2, round(0)).await.unwrap();
    assert!(first.shares.iter().all(|s| s.state == ShareState::Pending));
    assert_eq!(first.shares.len(), record.snapshot_ids.len());
    assert_eq!(first.share_snapshots.map(|r| r.round), Some(1));
    let last = preserver.share(&ec2, round(MAX_ROUNDS - 1)).await.unwrap();
    assert!(last.share_snapshots.is_none(), "no further round");
    assert!(
        last.shares
            .iter()
            .all(|s| s.state == ShareState::Failed && s.detail.contains("by hand")),
        "{:?}",
        last.shares
    );
    // Both outcomes are in the chain: the last manifest names the shares' artifact.
    assert_ne!(first.manifest_key, last.manifest_key);
}
