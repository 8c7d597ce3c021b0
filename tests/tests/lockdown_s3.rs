//! ir-lockdown-s3 against moto: a public bucket with an existing policy and tags, the real
//! triage decision, then S3 reads prove the lockdown, the policy merge, idempotency and release.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{BucketCannedAcl, Tag, Tagging};
use ir_core::actions::{ContainmentRequest, Mode, RecordStatus};
use ir_core::audit::Outcome;
use ir_core::prestate::PreStateKey;
use ir_core::{Tier, TriageDecision};
use ir_lockdown_s3::{LockdownConfig, LockdownS3};
use ir_tests::fixtures::{
    assert_declared, event_json, live_triage, pre_state_store, safety, set_kill_switch, KILL_SWITCH,
};
use ir_tests::MotoServer;
use ir_triage::Triage;

const KILL: &str = KILL_SWITCH;
const BUCKET: &str = "acme-customer-exports";
const EVIDENCE: &str = "ir-evidence-111122223333";

struct World {
    _moto: MotoServer,
    sdk: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    ssm: aws_sdk_ssm::Client,
    lockdown: LockdownS3,
    triage: Triage,
    original_policy: serde_json::Value,
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let s3 = moto.s3_client(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let triage = live_triage(&sdk, "incidents").await;

    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3.create_bucket()
        .bucket(EVIDENCE)
        .acl(BucketCannedAcl::from("log-delivery-write"))
        .send()
        .await
        .unwrap();
    let original_policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowPartnerRead", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{BUCKET}/*")
    }]});
    s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(original_policy.to_string())
        .send()
        .await
        .unwrap();
    s3.put_bucket_tagging()
        .bucket(BUCKET)
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("data-class")
                        .value("confidential")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    World {
        lockdown: LockdownS3 {
            s3: s3.clone(),
            safety: safety(&sdk),
            pre_state: pre_state_store(&sdk).await,
            config: LockdownConfig {
                evidence_bucket: Some(EVIDENCE.into()),
                object_lock: false,
            },
        },
        triage,
        s3,
        ssm,
        original_policy,
        sdk,
        _moto: moto,
    }
}

impl World {
    async fn decision(&self) -> TriageDecision {
        self.triage
            .handle(event_json("guardduty-s3-block-public-access-disabled.json"))
            .await
            .expect("triage")
            .primary
    }

    fn request(&self, decision: TriageDecision, mode: Mode) -> ContainmentRequest {
        ContainmentRequest {
            mode,
            decision,
            approval: None,
            previous: None,
        }
    }

    async fn bpa(&self) -> Option<[bool; 4]> {
        match self
            .s3
            .get_public_access_block()
            .bucket(BUCKET)
            .send()
            .await
        {
            Ok(o) => o.public_access_block_configuration().map(|c| {
                [
                    c.block_public_acls().unwrap_or(false),
                    c.ignore_public_acls().unwrap_or(false),
                    c.block_public_policy().unwrap_or(false),
                    c.restrict_public_buckets().unwrap_or(false),
                ]
            }),
            Err(_) => None,
        }
    }

    async fn policy(&self) -> serde_json::Value {
        let p = self
            .s3
            .get_bucket_policy()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        serde_json::from_str(p.policy().unwrap()).unwrap()
    }

    async fn versioning(&self) -> Option<String> {
        let v = self
            .s3
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        v.status().map(|s| s.as_str().to_string())
    }

    async fn logging(&self) -> Option<String> {
        let l = self
            .s3
            .get_bucket_logging()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        l.logging_enabled()
            .map(|l| format!("{}/{}", l.target_bucket(), l.target_prefix()))
    }

    async fn tags(&self) -> BTreeMap<String, String> {
        let t = self
            .s3
            .get_bucket_tagging()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        t.tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }
}

#[tokio::test]
async fn lockdown_merges_the_policy_is_idempotent_and_release_restores() {
    let w = world().await;
    let decision = w.decision().await;
    assert_eq!(decision.tier, Tier::Auto);
    assert_eq!(w.bpa().await, None);

    let rec = w
        .lockdown
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("contain");
    assert_declared(ir_lockdown_s3::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    assert_eq!(w.bpa().await, Some([true; 4]));
    let policy = w.policy().await;
    let stmts = policy["Statement"].as_array().unwrap();
    assert_eq!(stmts.len(), 2, "{policy}");
    assert_eq!(
        stmts[0], w.original_policy["Statement"][0],
        "existing statement must be kept unchanged"
    );
    let deny = &stmts[1];
    assert_eq!(deny["Effect"], "Deny");
    // By the user's unique id, under a condition: S3 never has to resolve a principal ARN.
    assert_eq!(deny["Principal"], "*");
    assert_eq!(
        deny["Condition"]["StringLike"]["aws:userid"],
        "AIDAQEXAMPLEUSER0005"
    );
    assert_eq!(w.versioning().await.as_deref(), Some("Enabled"));
    assert_eq!(
        w.logging().await,
        Some(format!("{EVIDENCE}/access-logs/{BUCKET}/"))
    );
    let tags = w.tags().await;
    assert_eq!(
        tags.get("data-class").map(String::as_str),
        Some("confidential"),
        "existing tags must be kept"
    );
    assert_eq!(
        tags.get("ir:status").map(String::as_str),
        Some("locked-down")
    );
    assert!(tags.keys().all(|k| !k.starts_with("ir:pre")), "{tags:?}");
    let key = PreStateKey::new(
        &decision.incident.account_id,
        "global",
        &format!("s3/{BUCKET}"),
    );
    let stored = w
        .lockdown
        .pre_state
        .get(&key)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.state, rec.pre_state);
    assert!(rec
        .steps
        .iter()
        .any(|s| s.step == "object-lock" && s.outcome == Outcome::Skipped));

    let again = w
        .lockdown
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("repeat");
    assert_eq!(again.status, RecordStatus::Completed);
    assert!(
        again.steps.iter().all(|s| s.outcome != Outcome::Succeeded),
        "{:#?}",
        again.steps
    );
    assert_eq!(w.policy().await, policy);
    assert_eq!(again.pre_state, rec.pre_state);

    let rel = w
        .lockdown
        .handle(w.request(decision, Mode::Release))
        .await
        .expect("release");
    assert_declared(ir_lockdown_s3::FUNCTION_NAME, &rel);
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    assert_eq!(w.bpa().await, None);
    assert_eq!(w.policy().await, w.original_policy);
    assert_eq!(w.versioning().await.as_deref(), Some("Suspended"));
    assert_eq!(w.logging().await, None);
    let tags = w.tags().await;
    assert_eq!(
        tags.get("data-class").map(String::as_str),
        Some("confidential")
    );
    assert_eq!(tags.get("ir:status").map(String::as_str), Some("released"));
    let stored = w
        .lockdown
        .pre_state
        .get(&key)
        .await
        .unwrap()
        .expect("stored");
    assert!(stored.released);
}

#[tokio::test]
async fn kill_switch_plans_and_a_protected_bucket_waits_for_an_analyst() {
    let w = world().await;
    let decision = w.decision().await;
    set_kill_switch(&w.ssm, KILL, "on").await.unwrap();
    let rec = w
        .lockdown
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("plan");
    assert_eq!(rec.status, RecordStatus::Planned);
    assert!(rec
        .steps
        .iter()
        .any(|s| s.step == "deny-principal" && s.outcome == Outcome::DryRun));
    assert_eq!(w.bpa().await, None);
    assert_eq!(w.policy().await, w.original_policy);
    assert_eq!(w.versioning().await, None);

    set_kill_switch(&w.ssm, KILL, "off").await.unwrap();
    w.s3.put_bucket_tagging()
        .bucket(BUCKET)
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("ir:protected")
                        .value("true")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let rec = w
        .lockdown
        .handle(w.request(decision, Mode::Contain))
        .await
        .expect("escalated");
    assert_eq!(rec.status, RecordStatus::AwaitingApproval);
    assert!(rec.reason.as_deref().unwrap().contains("ir:protected=true"));
    assert_eq!(w.bpa().await, None);
    assert_eq!(w.policy().await, w.original_policy);
}

/// The bucket the playbook exists for: its policy is public. With Block Public Access's
/// `BlockPublicPolicy` on, S3 refuses any policy that still holds a public statement (strict
/// mode's `s3-block-public-policy`), so the Deny must be merged before Block Public Access; and a
/// release must restore Block Public Access before putting the original public policy back.
#[tokio::test]
async fn a_public_bucket_policy_gets_the_deny_before_block_public_access() {
    let w = world().await;
    let public = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{BUCKET}/*")
    }]});
    w.s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(public.to_string())
        .send()
        .await
        .expect("public policy without Block Public Access");
    let decision = w.decision().await;
    let rec = w
        .lockdown
        .handle(w.request(decision.clone(), Mode::Contain))
        .await
        .expect("contain");
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    let order: Vec<&str> = rec.steps.iter().map(|s| s.step.as_str()).collect();
    let pos = |name: &str| order.iter().position(|s| *s == name).expect(name);
    assert!(
        pos("deny-principal") < pos("block-public-access"),
        "{order:?}"
    );
    assert_eq!(w.bpa().await, Some([true; 4]));
    let policy = w.policy().await;
    let statements = policy["Statement"].as_array().expect("statements");
    assert_eq!(
        statements[0], public["Statement"][0],
        "the public statement is kept"
    );
    assert!(statements.iter().any(|s| s["Effect"] == "Deny"));

    let mut release = w.request(decision, Mode::Release);
    release.previous = Some(rec);
    let rel = w.lockdown.handle(release).await.expect("release");
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    assert_eq!(w.bpa().await, None);
    assert_eq!(w.policy().await, public);
}

/// The S3 finding with its bucket renamed and its principal an IAM Identity Center session in
/// the emulator's own account (`123456789012`).
fn sso_finding(bucket: &str) -> serde_json::Value {
    let mut e = event_json("guardduty-s3-block-public-access-disabled.json");
    let d = &mut e["detail"];
    d["accountId"] = "123456789012".into();
    d["resource"]["s3BucketDetails"][0]["name"] = bucket.into();
    d["resource"]["s3BucketDetails"][0]["arn"] = format!("arn:aws:s3:::{bucket}").into();
    d["resource"]["accessKeyDetails"] = serde_json::json!({
        "accessKeyId": "ASIAQEXAMPLESSO00001",
        "principalId": "AROAQEXAMPLESSO00001:alice@example.com",
        "userName": "AWSReservedSSO_Admin_0123",
        "userType": "AssumedRole"
    });
    e
}

#[tokio::test]
async fn an_identity_center_role_is_denied_by_unique_id_and_cross_region_logging_is_skipped() {
    let w = world().await;
    // The role lives under a path: `arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123`
    // names no role, and S3 refuses a policy naming it (strict `s3-bucket-policy-principal`).
    let iam = aws_sdk_iam::Client::new(&w.sdk);
    iam.create_role()
        .role_name("AWSReservedSSO_Admin_0123")
        .path("/aws-reserved/sso.amazonaws.com/")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:saml-provider/AWSSSO"},"Action":"sts:AssumeRoleWithSAML"}]}"#)
        .send()
        .await
        .unwrap();
    let bucket = "eu-analytics-exports";
    w.s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let decision = w
        .triage
        .handle(sso_finding(bucket))
        .await
        .expect("triage")
        .primary;
    let rec = w
        .lockdown
        .handle(w.request(decision, Mode::Contain))
        .await
        .expect("contain");
    assert_declared(ir_lockdown_s3::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    let step = |name: &str| rec.steps.iter().find(|s| s.step == name).unwrap().clone();
    assert_eq!(step("deny-principal").outcome, Outcome::Succeeded);
    let policy: serde_json::Value = serde_json::from_str(
        w.s3.get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["Statement"][0]["Condition"]["StringLike"]["aws:userid"], "AROAQEXAMPLESSO00001:*",
        "every session of the role, whatever its path: {policy}"
    );
    // The evidence bucket is in us-east-1: S3 refuses cross-Region logging; recorded, not fatal.
    let logging = step("enable-access-logging");
    assert_eq!(logging.outcome, Outcome::Skipped, "{logging:?}");
    assert!(
        logging
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("CrossLocationLoggingProhibitted"),
        "{logging:?}"
    );
    assert_eq!(step("enable-versioning").outcome, Outcome::Succeeded);
}

#[tokio::test]
async fn a_deny_that_would_pass_the_20_kb_policy_limit_is_skipped_and_the_rest_still_runs() {
    let w = world().await;
    // A bucket policy just under S3's 20 KB: the Deny would push it over (PolicyTooLarge).
    let mut statements = Vec::new();
    let mut big = serde_json::json!({});
    while big.to_string().len() < 20_300 {
        let i = statements.len();
        statements.push(
            serde_json::json!({"Sid": format!("Partner{i:03}"), "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::4444555{i:05}:root")},
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{BUCKET}/p{i:03}/*")}),
        );
        big = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
    }
    let size = big.to_string().len();
    assert!(size < 20_480, "{size}");
    w.s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(big.to_string())
        .send()
        .await
        .unwrap();
    let rec = w
        .lockdown
        .handle(w.request(w.decision().await, Mode::Contain))
        .await
        .expect("contain");
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    let deny = rec
        .steps
        .iter()
        .find(|s| s.step == "deny-principal")
        .unwrap();
    assert_eq!(deny.outcome, Outcome::Skipped);
    assert!(
        deny.detail.as_deref().unwrap().contains("20480"),
        "{deny:?}"
    );
    assert_eq!(w.policy().await, big, "the policy is left as it was");
    assert_eq!(w.bpa().await, Some([true; 4]));
}
