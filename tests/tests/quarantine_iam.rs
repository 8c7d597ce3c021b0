//! ir-quarantine-iam against moto: real triage decisions for real principals, then IAM reads
//! prove the quarantine, idempotency, release, dry-run and the never-touch cases.

use std::collections::BTreeMap;

use ir_core::actions::{Approval, ContainmentRequest, Mode, RecordStatus};
use ir_core::audit::Outcome;
use ir_core::prestate::PreStateKey;
use ir_core::{Tier, TriageDecision};
use ir_quarantine_iam::{QuarantineConfig, Quarantiner};
use ir_tests::fixtures::{assert_declared, event_json, live_triage, pre_state_store, safety};
use ir_tests::MotoServer;
use ir_triage::Triage;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

struct World {
    _moto: MotoServer,
    iam: aws_sdk_iam::Client,
    quarantiner: Quarantiner,
    triage: Triage,
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&sdk);

    let triage = live_triage(&sdk, "incidents").await;
    World {
        quarantiner: Quarantiner {
            iam: iam.clone(),
            safety: safety(&sdk),
            pre_state: pre_state_store(&sdk).await,
            config: QuarantineConfig {
                deactivate_all_keys: true,
            },
        },
        triage,
        iam,
        _moto: moto,
    }
}

impl World {
    /// A user with two active keys and a console password; returns the key ids.
    async fn user(&self, name: &str) -> Vec<String> {
        self.iam.create_user().user_name(name).send().await.unwrap();
        let mut keys = Vec::new();
        for _ in 0..2 {
            let k = self
                .iam
                .create_access_key()
                .user_name(name)
                .send()
                .await
                .unwrap();
            keys.push(k.access_key().unwrap().access_key_id().to_string());
        }
        self.iam
            .create_login_profile()
            .user_name(name)
            .password("Initial-Passw0rd!")
            .send()
            .await
            .unwrap();
        keys
    }

    async fn decide(
        &self,
        event: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> TriageDecision {
        let mut e = event_json(event);
        edit(&mut e);
        self.triage.handle(e).await.expect("triage").primary
    }

    async fn keys(&self, user: &str) -> BTreeMap<String, String> {
        let o = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .unwrap();
        o.access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap().to_string(),
                    k.status().unwrap().as_str().to_string(),
                )
            })
            .collect()
    }

    async fn user_tags(&self, user: &str) -> BTreeMap<String, String> {
        let o = self
            .iam
            .list_user_tags()
            .user_name(user)
            .send()
            .await
            .unwrap();
        o.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }

    async fn has_password(&self, user: &str) -> bool {
        self.iam
            .get_login_profile()
            .user_name(user)
            .send()
            .await
            .is_ok()
    }
}

fn approved(decision: TriageDecision, mode: Mode) -> ContainmentRequest {
    ContainmentRequest {
        mode,
        decision,
        approval: Some(Approval {
            approver: "analyst@example.com".into(),
            at: chrono::Utc::now(),
        }),
        previous: None,
    }
}

#[tokio::test]
async fn user_quarantine_denies_deactivates_disables_console_and_release_restores() {
    let w = world().await;
    let keys = w.user("deploy-bot").await;
    let leaked = keys[1].clone();
    let decision = w
        .decide("guardduty-iam-anomalous-behavior.json", |e| {
            e["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = leaked.clone().into();
        })
        .await;
    assert_eq!(decision.tier, Tier::Approval);

    // Without approval nothing happens.
    let mut unapproved = approved(decision.clone(), Mode::Contain);
    unapproved.approval = None;
    let rec = w.quarantiner.handle(unapproved).await.unwrap();
    assert_eq!(rec.status, RecordStatus::Skipped);
    assert!(w.keys("deploy-bot").await.values().all(|s| s == "Active"));

    let rec = w
        .quarantiner
        .handle(approved(decision.clone(), Mode::Contain))
        .await
        .expect("contain");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);

    // Inline deny-all with a TokenIssueTime cut-off.
    let name = "ir-quarantine";
    let pol = w
        .iam
        .get_user_policy()
        .user_name("deploy-bot")
        .policy_name(name)
        .send()
        .await
        .expect("policy present");
    let doc = pol.policy_document();
    let doc: serde_json::Value =
        serde_json::from_str(&urlencoding_decode(doc)).expect("policy JSON");
    let stmts = doc["Statement"].as_array().unwrap();
    assert!(stmts
        .iter()
        .any(|s| s["Effect"] == "Deny" && s["Action"] == "*" && s.get("Condition").is_none()));
    assert!(stmts
        .iter()
        .any(|s| s["Condition"]["DateLessThan"]["aws:TokenIssueTime"].is_string()));
    // Every key inactive, the finding's key first; nothing deleted.
    let now = w.keys("deploy-bot").await;
    assert_eq!(now.len(), 2);
    assert!(now.values().all(|s| s == "Inactive"), "{now:?}");
    let key_steps: Vec<&str> = rec
        .steps
        .iter()
        .filter(|s| s.step.starts_with("deactivate-key-"))
        .map(|s| s.step.as_str())
        .collect();
    assert_eq!(key_steps[0], format!("deactivate-key-{leaked}"));
    assert!(
        !w.has_password("deploy-bot").await,
        "console password still set"
    );
    assert!(
        w.iam
            .get_user()
            .user_name("deploy-bot")
            .send()
            .await
            .is_ok(),
        "user must not be deleted"
    );
    let tags = w.user_tags("deploy-bot").await;
    assert_eq!(
        tags.get("ir:status").map(String::as_str),
        Some("quarantined")
    );
    assert!(tags.keys().all(|k| !k.starts_with("ir:pre")), "{tags:?}");
    let key = PreStateKey::new(&decision.incident.account_id, "global", "user/deploy-bot");
    let stored = w
        .quarantiner
        .pre_state
        .get(&key)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.state, rec.pre_state);

    // Idempotent: nothing changes the second time, and the original state is still known.
    let again = w
        .quarantiner
        .handle(approved(decision.clone(), Mode::Contain))
        .await
        .expect("repeat");
    assert_eq!(again.status, RecordStatus::Completed);
    assert!(
        again.steps.iter().all(|s| s.outcome != Outcome::Succeeded),
        "{:#?}",
        again.steps
    );
    assert_eq!(again.pre_state, rec.pre_state);
    assert!(again.pre_state["k"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| v == "Active"));

    // Release.
    let rel = w
        .quarantiner
        .handle(approved(decision, Mode::Release))
        .await
        .expect("release");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rel);
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    assert!(w
        .iam
        .get_user_policy()
        .user_name("deploy-bot")
        .policy_name(name)
        .send()
        .await
        .is_err());
    assert!(w.keys("deploy-bot").await.values().all(|s| s == "Active"));
    let tags = w.user_tags("deploy-bot").await;
    assert_eq!(tags.get("ir:status").map(String::as_str), Some("released"));
    let stored = w
        .quarantiner
        .pre_state
        .get(&key)
        .await
        .unwrap()
        .expect("stored");
    assert!(stored.released);
    assert!(rel
        .steps
        .iter()
        .any(|s| s.step == "restore-console" && s.outcome == Outcome::Skipped));
}

/// The role's inline policy `name`, decoded.
async fn role_policy(w: &World, role: &str, name: &str) -> serde_json::Value {
    let pol = w
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("no policy {name} on {role}: {e:?}"));
    serde_json::from_str(&urlencoding_decode(pol.policy_document())).expect("policy JSON")
}

#[tokio::test]
async fn stolen_instance_credentials_are_revoked_for_that_instance_only_and_released() {
    let w = world().await;
    w.iam
        .create_role()
        .role_name("etl-runner-role")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    // InstanceCredentialExfiltration: the session is the instance's (`AROA…:i-0d4e…`).
    let decision = w
        .decide(
            "guardduty-iam-instance-credential-exfiltration.json",
            |_| {},
        )
        .await;
    assert_eq!(decision.tier, Tier::Auto, "{:?}", decision.reasons);
    let req = ContainmentRequest {
        mode: Mode::Contain,
        decision: decision.clone(),
        approval: None,
        previous: None,
    };
    let rec = w.quarantiner.handle(req).await.expect("contain");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    // Only that instance's credentials are denied: the rest of the fleet sharing the role keeps
    // working (a TokenIssueTime deny on the role would cut every instance off AWS).
    let names = w
        .iam
        .list_role_policies()
        .role_name("etl-runner-role")
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec();
    assert_eq!(
        names,
        ["ir-quarantine-instance-i-0d4e5f6a7b8c90004"],
        "{names:?}"
    );
    let doc = role_policy(&w, "etl-runner-role", &names[0]).await;
    let st = &doc["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert_eq!(st["Action"], "*");
    // In any Region: the finding may come from another Region than the instance.
    assert_eq!(
        st["Condition"]["ArnLike"]["ec2:SourceInstanceARN"],
        "arn:aws:ec2:*:111122223333:instance/i-0d4e5f6a7b8c90004"
    );
    // And any session of the role named after the instance: whoever calls AssumeRole picks the
    // session name, so `i-…` alone proves nothing; `aws:userid` is `<role id>:<session>`.
    assert_eq!(
        doc["Statement"][1]["Condition"]["StringLike"]["aws:userid"],
        "*:i-0d4e5f6a7b8c90004"
    );
    assert!(!doc.to_string().contains("aws:TokenIssueTime"), "{doc}");
    let tags = w
        .iam
        .list_role_tags()
        .role_name("etl-runner-role")
        .send()
        .await
        .unwrap();
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.key() == "ir:status" && t.value() == "quarantined"));
    // A repeat adds nothing towards the role's inline-policy quota.
    let again = w
        .quarantiner
        .handle(ContainmentRequest {
            mode: Mode::Contain,
            decision: decision.clone(),
            approval: None,
            previous: None,
        })
        .await
        .expect("repeat");
    assert!(again.steps.iter().all(|s| s.outcome != Outcome::Succeeded));

    let req = ContainmentRequest {
        mode: Mode::Release,
        decision,
        approval: None,
        previous: Some(rec),
    };
    let rel = w.quarantiner.handle(req).await.expect("release");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rel);
    assert_eq!(rel.status, RecordStatus::Completed);
    assert!(w
        .iam
        .list_role_policies()
        .role_name("etl-runner-role")
        .send()
        .await
        .unwrap()
        .policy_names()
        .is_empty());
}

#[tokio::test]
async fn a_role_wide_revocation_waits_for_approval_then_denies_older_sessions() {
    let w = world().await;
    w.iam
        .create_role()
        .role_name("etl-runner-role")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    // The same finding for a person's session: revoking it revokes every session of the role.
    let decision = w
        .decide("guardduty-iam-instance-credential-exfiltration.json", |e| {
            e["detail"]["resource"]["accessKeyDetails"]["principalId"] =
                "AROAQEXAMPLEROLE0004:alice@example.com".into();
        })
        .await;
    assert_eq!(decision.tier, Tier::Approval, "{:?}", decision.reasons);
    assert!(
        decision.reasons.iter().any(|r| r.contains("every session")),
        "{:?}",
        decision.reasons
    );
    let waiting = w
        .quarantiner
        .handle(ContainmentRequest {
            mode: Mode::Contain,
            decision: decision.clone(),
            approval: None,
            previous: None,
        })
        .await
        .expect("gate");
    assert_eq!(
        waiting.status,
        RecordStatus::Skipped,
        "{:#?}",
        waiting.steps
    );
    let rec = w
        .quarantiner
        .handle(ContainmentRequest {
            mode: Mode::Contain,
            decision: decision.clone(),
            approval: Some(Approval {
                approver: "analyst".into(),
                at: chrono::Utc::now(),
            }),
            previous: None,
        })
        .await
        .expect("contain");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
    let name = "ir-quarantine";
    let doc = role_policy(&w, "etl-runner-role", name).await;
    assert!(doc.to_string().contains("aws:TokenIssueTime"), "{doc}");
}

#[tokio::test]
async fn many_incidents_on_one_user_keep_one_quarantine_policy_within_the_inline_quota() {
    // IAM refuses a user's inline policies past 2,048 characters in all (strict mode too): a
    // policy per incident would stop quarantining a user after seven findings.
    let w = world().await;
    w.user("deploy-bot").await;
    for n in 0..9 {
        let decision = w
            .decide("guardduty-iam-anomalous-behavior.json", |e| {
                let id = format!("{n:032x}");
                e["detail"]["id"] = id.clone().into();
                e["detail"]["arn"] = format!(
                    "arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/{id}"
                )
                .into();
            })
            .await;
        let rec = w
            .quarantiner
            .handle(approved(decision, Mode::Contain))
            .await
            .unwrap_or_else(|e| panic!("incident {n}: {e}"));
        assert_eq!(rec.status, RecordStatus::Completed, "incident {n}");
    }
    let names = w
        .iam
        .list_user_policies()
        .user_name("deploy-bot")
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec();
    assert_eq!(names, ["ir-quarantine"]);
}

#[tokio::test]
async fn root_and_service_linked_roles_are_never_touched() {
    let w = world().await;
    let mut root = w
        .decide("guardduty-iam-root-credential-usage.json", |_| {})
        .await;
    root.tier = Tier::Auto; // even if a decision said so
    let rec = w
        .quarantiner
        .handle(approved(root, Mode::Contain))
        .await
        .unwrap();
    assert_eq!(rec.status, RecordStatus::Skipped);
    assert!(rec.reason.unwrap().contains("root"));

    w.iam
        .create_role()
        .role_name("AWSServiceRoleForExample")
        .path("/aws-service-role/example.amazonaws.com/")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    let mut slr = w
        .decide("guardduty-iam-instance-credential-exfiltration.json", |e| {
            e["detail"]["resource"]["accessKeyDetails"]["userName"] =
                "AWSServiceRoleForExample".into();
        })
        .await;
    slr.tier = Tier::Auto;
    let rec = w
        .quarantiner
        .handle(approved(slr, Mode::Contain))
        .await
        .unwrap();
    assert_eq!(rec.status, RecordStatus::Skipped);
    assert!(rec.reason.unwrap().contains("service-linked"));
    assert!(w
        .iam
        .list_role_policies()
        .role_name("AWSServiceRoleForExample")
        .send()
        .await
        .unwrap()
        .policy_names()
        .is_empty());
}

#[tokio::test]
async fn dry_run_plans_every_key_and_changes_nothing() {
    let mut w = world().await;
    w.quarantiner.safety.forced_dry_run = true;
    let keys = w.user("deploy-bot").await;
    let decision = w
        .decide("guardduty-iam-anomalous-behavior.json", |_| {})
        .await;
    let rec = w
        .quarantiner
        .handle(approved(decision, Mode::Contain))
        .await
        .expect("plan");
    assert_eq!(rec.status, RecordStatus::Planned);
    for k in &keys {
        assert!(rec
            .steps
            .iter()
            .any(|s| s.step == format!("deactivate-key-{k}") && s.outcome == Outcome::DryRun));
    }
    assert!(w.keys("deploy-bot").await.values().all(|s| s == "Active"));
    assert!(w.has_password("deploy-bot").await);
    assert!(w.user_tags("deploy-bot").await.is_empty());
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[tokio::test]
async fn release_skips_a_key_deleted_since_containment_and_still_finishes() {
    let w = world().await;
    let keys = w.user("deploy-bot").await;
    let decision = w
        .decide("guardduty-iam-anomalous-behavior.json", |_| {})
        .await;
    let rec = w
        .quarantiner
        .handle(approved(decision.clone(), Mode::Contain))
        .await
        .expect("contain");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rec);
    assert_eq!(rec.status, RecordStatus::Completed);
    w.iam
        .delete_access_key()
        .user_name("deploy-bot")
        .access_key_id(&keys[0])
        .send()
        .await
        .unwrap();
    let rel = w
        .quarantiner
        .handle(approved(decision, Mode::Release))
        .await
        .expect("release");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rel);
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    let skipped = format!("reactivate-key-{}", keys[0]);
    assert!(rel
        .steps
        .iter()
        .any(|s| s.step == skipped && s.outcome == Outcome::Skipped));
    assert_eq!(
        w.keys("deploy-bot").await.get(&keys[1]).map(String::as_str),
        Some("Active")
    );
    assert_eq!(
        w.user_tags("deploy-bot")
            .await
            .get("ir:status")
            .map(String::as_str),
        Some("released")
    );
}

/// A second incident for an already quarantined user (another finding, arriving later) must
/// not record the quarantined state as "original"; a tag planted on the user plays no part.
#[tokio::test]
async fn a_later_incident_keeps_the_first_recorded_pre_state_and_planted_tags_are_ignored() {
    let w = world().await;
    let keys = w.user("ci-runner").await;
    let decision = w
        .decide("guardduty-iam-anomalous-behavior.json", |e| {
            e["detail"]["resource"]["accessKeyDetails"]["userName"] = "ci-runner".into();
            e["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = keys[0].clone().into();
        })
        .await;
    let first = w
        .quarantiner
        .handle(approved(decision.clone(), Mode::Contain))
        .await
        .expect("first contain");
    assert_eq!(first.status, RecordStatus::Completed, "{:#?}", first.steps);
    assert!(w.keys("ci-runner").await.values().all(|s| s == "Inactive"));

    // The attacker plants what an older version read back as the pre-state.
    w.iam
        .tag_user()
        .user_name("ci-runner")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("ir:pre-quarantine")
                .value("planted")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("tag");

    let mut other = decision.clone();
    other.incident_id = format!("{}-later", decision.incident_id);
    let second = w
        .quarantiner
        .handle(approved(other.clone(), Mode::Contain))
        .await
        .expect("second contain");
    let record_step = second
        .steps
        .iter()
        .find(|s| s.step == "record-pre-state")
        .expect("record-pre-state step");
    assert_eq!(record_step.outcome, Outcome::AlreadyDone, "{record_step:?}");
    assert_eq!(second.pre_state, first.pre_state);
    assert!(second.pre_state["k"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| v == "Active"));

    // Both incidents hold the one containment, the first's.
    let by = |r: &ir_core::actions::ContainmentRecord| {
        r.contained_by.as_ref().map(|c| c.incident_id.clone())
    };
    assert_eq!(by(&first), Some(decision.incident_id.clone()));
    assert_eq!(by(&second), by(&first));
    assert!(second.steps.iter().any(|s| s.step == "join-containment"
        && s.detail
            .as_deref()
            .unwrap_or("")
            .contains(&decision.incident_id)));

    // Releasing the first incident (a false positive) keeps the user quarantined: the later
    // incident still relies on it.
    let kept = w
        .quarantiner
        .handle(approved(decision.clone(), Mode::Release))
        .await
        .expect("release first");
    assert_eq!(kept.status, RecordStatus::Completed, "{:#?}", kept.steps);
    let keep = kept.steps.iter().find(|s| s.step == "keep-containment");
    assert!(
        keep.is_some_and(|s| s
            .detail
            .as_deref()
            .unwrap_or("")
            .contains(&other.incident_id)),
        "{:#?}",
        kept.steps
    );
    assert!(w.keys("ci-runner").await.values().all(|s| s == "Inactive"));

    // Release by the last holder restores the first-recorded original: keys active again.
    let rel = w
        .quarantiner
        .handle(approved(other, Mode::Release))
        .await
        .expect("release");
    assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rel);
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    assert!(w.keys("ci-runner").await.values().all(|s| s == "Active"));
}

/// Two instances sharing one role, each with its stolen session: two incidents, two revoke
/// policies, each on the instance's own lease. Releasing one incident removes its instance's
/// policy only; the other instance stays cut off until its own release.
#[tokio::test]
async fn two_instance_sessions_on_one_role_are_released_one_by_one() {
    let w = world().await;
    w.iam
        .create_role()
        .role_name("etl-runner-role")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    const A: &str = "i-0d4e5f6a7b8c90004";
    const B: &str = "i-0d4e5f6a7b8c90005";
    let first = w
        .decide(
            "guardduty-iam-instance-credential-exfiltration.json",
            |_| {},
        )
        .await;
    let second = w
        .decide("guardduty-iam-instance-credential-exfiltration.json", |e| {
            *e = serde_json::from_str(&e.to_string().replace(A, B)).unwrap();
            e["detail"]["id"] = "second-session".into();
            e["detail"]["arn"] = format!("{}-second", e["detail"]["arn"].as_str().unwrap()).into();
        })
        .await;
    assert_ne!(first.incident_id, second.incident_id);
    let request = |d: &TriageDecision, mode| ContainmentRequest {
        mode,
        decision: d.clone(),
        approval: None,
        previous: None,
    };
    for d in [&first, &second] {
        let rec = w
            .quarantiner
            .handle(request(d, Mode::Contain))
            .await
            .unwrap();
        assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
        // Each is its own containment, not a join of the other's.
        assert_eq!(
            rec.contained_by.map(|c| c.incident_id),
            Some(d.incident_id.clone())
        );
    }
    let policies = || async {
        w.iam
            .list_role_policies()
            .role_name("etl-runner-role")
            .send()
            .await
            .unwrap()
            .policy_names()
            .to_vec()
    };
    let name = ir_core::actions::quarantine_instance_policy_name;
    assert_eq!(policies().await, [name(A), name(B)]);

    let rel = w
        .quarantiner
        .handle(request(&first, Mode::Release))
        .await
        .unwrap();
    assert_eq!(rel.status, RecordStatus::Completed, "{:#?}", rel.steps);
    assert_eq!(
        policies().await,
        [name(B)],
        "only the first instance's policy is removed"
    );
    w.quarantiner
        .handle(request(&second, Mode::Release))
        .await
        .unwrap();
    assert!(policies().await.is_empty());
}
