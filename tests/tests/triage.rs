//! ir-triage against a real moto server: every sample event, dedupe, the kill switch, and
//! proof that bad input leaves AWS untouched.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use ir_core::{Disposition, LoadedPolicy, Tier};
use ir_tests::fixtures::{
    count_items, create_incidents_table, event_json, event_text, expected, sample_event_files,
    set_kill_switch,
};
use ir_tests::MotoServer;
use ir_triage::{Triage, TriageConfig};

const KILL: &str = "/incident-response/kill-switch";

struct Env {
    _moto: MotoServer,
    ddb: aws_sdk_dynamodb::Client,
    ssm: aws_sdk_ssm::Client,
}

async fn env() -> Env {
    let moto = MotoServer::start().expect("moto server starts");
    let sdk = moto.sdk_config().await;
    Env {
        ddb: aws_sdk_dynamodb::Client::new(&sdk),
        ssm: aws_sdk_ssm::Client::new(&sdk),
        _moto: moto,
    }
}

impl Env {
    async fn triage(&self, table: &str, dry_run: bool) -> Triage {
        create_incidents_table(&self.ddb, table)
            .await
            .expect("create table");
        let config = TriageConfig {
            incidents_table: table.into(),
            kill_switch_parameter: KILL.into(),
            dry_run,
            state_machine_arn: None,
        };
        Triage::new(
            &config,
            LoadedPolicy::default_policy().expect("default policy"),
            self.ssm.clone(),
            self.ddb.clone(),
        )
    }

    async fn item(&self, table: &str, id: &str) -> Option<HashMap<String, AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(table)
            .key("incident_id", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item")
            .item
    }
}

fn n(item: &HashMap<String, AttributeValue>, k: &str) -> i64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{k} missing or not a number in {item:?}"))
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_decision() {
    let env = env().await;
    set_kill_switch(&env.ssm, KILL, "off").await.expect("ssm");
    let expected = expected();
    let files = sample_event_files().expect("events dir");
    assert!(
        files.len() >= 15,
        "need at least 15 sample events, have {}",
        files.len()
    );
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(
            expected.contains_key(name),
            "events/expected.json has no entry for {name}"
        );
    }
    for name in expected.keys() {
        assert!(
            names.contains(name),
            "expected.json names {name}, which is not in events/"
        );
    }

    for (i, name) in names.iter().enumerate() {
        // A fresh table per event: each is judged as the first delivery of its finding.
        let table = format!("incidents-{i}");
        let triage = env.triage(&table, false).await;
        let want = &expected[name];
        let text = event_text(name).expect("read event");
        // Truncated samples are not JSON: hand the handler what the runtime would.
        let value = serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
        let result = triage.handle(value).await;
        match (&want.error, result) {
            (Some(kind), Err(e)) => {
                assert_eq!(e.error_type(), kind, "{name}: wrong error type ({e})");
                assert_eq!(
                    count_items(&env.ddb, &table).await.unwrap(),
                    0,
                    "{name}: bad input wrote to DynamoDB"
                );
            }
            (Some(kind), Ok(out)) => panic!(
                "{name}: expected error {kind}, got {:?}",
                out.primary.disposition
            ),
            (None, Err(e)) => panic!("{name}: unexpected error {e}"),
            (None, Ok(out)) => {
                let d = &out.primary;
                assert_eq!(
                    Some(d.disposition.to_string()),
                    want.disposition,
                    "{name}: disposition ({:?})",
                    d.reasons
                );
                assert_eq!(Some(d.route.to_string()), want.route, "{name}: route");
                assert_eq!(
                    Some(d.tier.to_string()),
                    want.tier,
                    "{name}: tier ({:?})",
                    d.reasons
                );
                assert_eq!(d.protected, want.protected, "{name}: protected");
                assert!(!d.dry_run, "{name}: kill switch is off, IR_DRY_RUN unset");
                assert_eq!(d.policy_sha256.len(), 64);
                assert!(!d.audit.steps.is_empty(), "{name}: no audit steps");
                let stored = env.item(&table, &d.incident_id).await;
                match d.disposition {
                    Disposition::Respond => {
                        let item = stored
                            .unwrap_or_else(|| panic!("{name}: respond decision not recorded"));
                        assert_eq!(
                            item.get("tier")
                                .and_then(|v| v.as_s().ok())
                                .map(String::as_str),
                            Some(d.tier.to_string().as_str())
                        );
                    }
                    _ => assert!(
                        stored.is_none(),
                        "{name}: {} decision must not be recorded",
                        d.disposition
                    ),
                }
            }
        }
    }
}

#[tokio::test]
async fn same_finding_via_guardduty_and_security_hub_is_one_incident() {
    let env = env().await;
    let triage = env.triage("incidents", false).await;
    let gd = triage
        .handle(event_json(
            "guardduty-iam-instance-credential-exfiltration.json",
        ))
        .await
        .expect("gd");
    let sh = triage
        .handle(event_json(
            "securityhub-imported-guardduty-credential-exfiltration.json",
        ))
        .await
        .expect("sh");
    assert_eq!(gd.primary.incident_id, sh.primary.incident_id);
    assert_eq!(
        gd.primary.incident.finding_type,
        sh.primary.incident.finding_type
    );
    assert_eq!(gd.primary.disposition, Disposition::Respond);
    assert_eq!(sh.primary.disposition, Disposition::Duplicate);
    assert_eq!(count_items(&env.ddb, "incidents").await.unwrap(), 1);
}

#[tokio::test]
async fn repeats_are_duplicates_until_the_window_ends() {
    let env = env().await;
    let triage = env.triage("incidents", false).await;
    let event = event_json("guardduty-ec2-bitcointool-dns.json");
    let t0 = Utc::now();
    let first = triage.handle_at(event.clone(), t0).await.expect("first");
    assert_eq!(first.primary.disposition, Disposition::Respond);
    for k in 1..=3 {
        let again = triage
            .handle_at(event.clone(), t0 + Duration::minutes(k))
            .await
            .expect("repeat");
        assert_eq!(again.primary.disposition, Disposition::Duplicate);
        assert_eq!(again.primary.incident_id, first.primary.incident_id);
    }
    let item = env
        .item("incidents", &first.primary.incident_id)
        .await
        .expect("recorded");
    assert_eq!(n(&item, "triage_count"), 1);
    assert_eq!(n(&item, "repeat_count"), 3);
    let count = event["detail"]["service"]["count"].as_i64().unwrap_or(1);
    assert_eq!(n(&item, "occurrences"), count);

    // GuardDuty re-publishes the finding as it recurs (a higher count); an older copy arriving
    // late is counted too but never lowers the figure.
    let with_count = |c: i64| {
        let mut e = event.clone();
        e["detail"]["service"]["count"] = c.into();
        e
    };
    for c in [count + 5, count + 2] {
        let again = triage
            .handle_at(with_count(c), t0 + Duration::minutes(5))
            .await
            .expect("updated copy");
        assert_eq!(again.primary.disposition, Disposition::Duplicate);
    }
    let item = env
        .item("incidents", &first.primary.incident_id)
        .await
        .expect("recorded");
    assert_eq!(n(&item, "repeat_count"), 5);
    assert_eq!(n(&item, "occurrences"), count + 5);

    // After the 24 h window the same finding starts a new response.
    let later = triage
        .handle_at(event, t0 + Duration::hours(25))
        .await
        .expect("later");
    assert_eq!(later.primary.disposition, Disposition::Respond);
    let item = env
        .item("incidents", &first.primary.incident_id)
        .await
        .expect("recorded");
    assert_eq!(n(&item, "triage_count"), 2);
}

#[tokio::test]
async fn kill_switch_forces_dry_run_and_a_live_repeat_escalates() {
    let env = env().await;
    let triage = env.triage("incidents", false).await;
    let event = event_json("guardduty-ec2-tor-client.json");

    set_kill_switch(&env.ssm, KILL, "on").await.expect("ssm");
    let dry = triage.handle(event.clone()).await.expect("dry");
    assert_eq!(dry.primary.disposition, Disposition::Respond);
    assert!(dry.primary.dry_run && dry.primary.kill_switch_engaged);
    assert!(!dry.primary.may_mutate());
    assert!(dry
        .primary
        .reasons
        .iter()
        .any(|r| r.contains("kill switch")));

    // Still engaged: a repeat is a duplicate of the dry run.
    let dup = triage.handle(event.clone()).await.expect("dup");
    assert_eq!(dup.primary.disposition, Disposition::Duplicate);

    // Released: the repeat must now respond for real, not be swallowed as a duplicate.
    set_kill_switch(&env.ssm, KILL, "off").await.expect("ssm");
    let live = triage.handle(event.clone()).await.expect("live");
    assert_eq!(live.primary.disposition, Disposition::Respond);
    assert!(!live.primary.dry_run && !live.primary.kill_switch_engaged);
    assert!(live.primary.may_mutate());
    assert!(live.primary.reasons.iter().any(|r| r.contains("escalates")));

    // An unrecognised value fails safe to dry-run.
    set_kill_switch(&env.ssm, KILL, "maybe").await.expect("ssm");
    let odd = triage
        .handle(event_json("guardduty-ec2-c2-activity.json"))
        .await
        .expect("odd");
    assert!(odd.primary.dry_run && odd.primary.kill_switch_engaged);
}

#[tokio::test]
async fn missing_kill_switch_parameter_is_disengaged_and_ir_dry_run_forces_dry_run() {
    let env = env().await;
    let triage = env.triage("incidents", false).await;
    let out = triage
        .handle(event_json("guardduty-ec2-c2-activity.json"))
        .await
        .expect("triage");
    assert!(!out.primary.kill_switch_engaged && !out.primary.dry_run);

    let forced = env.triage("incidents-dry", true).await;
    let out = forced
        .handle(event_json("guardduty-ec2-c2-activity.json"))
        .await
        .expect("triage");
    assert!(out.primary.dry_run && !out.primary.kill_switch_engaged);
    assert!(out.primary.reasons.iter().any(|r| r.contains("IR_DRY_RUN")));
}

#[tokio::test]
async fn an_account_the_policy_holds_to_dry_run_gets_a_planned_only_decision() {
    let env = env().await;
    create_incidents_table(&env.ddb, "incidents").await.unwrap();
    let mut policy = LoadedPolicy::default_policy().unwrap();
    policy.policy.accounts.dry_run = vec!["111122223333".into()];
    let config = TriageConfig {
        incidents_table: "incidents".into(),
        kill_switch_parameter: KILL.into(),
        dry_run: false,
        state_machine_arn: None,
    };
    let triage = Triage::new(&config, policy, env.ssm.clone(), env.ddb.clone());
    let out = triage
        .handle(event_json("guardduty-ec2-c2-activity.json"))
        .await
        .expect("triage");
    assert_eq!(out.primary.incident.account_id, "111122223333");
    assert!(out.primary.dry_run && !out.primary.kill_switch_engaged);
    assert!(out
        .primary
        .reasons
        .iter()
        .any(|r| r.contains("accounts.dry_run")));
}

#[tokio::test]
async fn a_missing_dedupe_table_is_a_typed_retryable_error() {
    let env = env().await;
    let config = TriageConfig {
        incidents_table: "no-such-table".into(),
        kill_switch_parameter: KILL.into(),
        dry_run: false,
        state_machine_arn: None,
    };
    let triage = Triage::new(
        &config,
        LoadedPolicy::default_policy().unwrap(),
        env.ssm.clone(),
        env.ddb.clone(),
    );
    let err = triage
        .handle(event_json("guardduty-ec2-c2-activity.json"))
        .await
        .expect_err("no table");
    assert_eq!(err.error_type(), "DedupeUnavailable");
}

#[tokio::test]
async fn protected_and_manual_decisions_never_allow_mutation() {
    let env = env().await;
    let triage = env.triage("incidents", false).await;
    for name in [
        "guardduty-iam-root-credential-usage.json",
        "guardduty-eks-privileged-container.json",
    ] {
        let out = triage.handle(event_json(name)).await.expect(name);
        assert_eq!(out.primary.tier, Tier::Manual, "{name}");
        assert!(!out.primary.may_mutate(), "{name}");
    }
    // A protected resource waits for an analyst (escalated, not skipped).
    let out = triage
        .handle(event_json("guardduty-ec2-protected-cryptomining.json"))
        .await
        .expect("protected");
    assert_eq!(out.primary.tier, Tier::Approval);
    assert!(out.primary.protected);
    assert!(!out.primary.may_mutate());
}

#[tokio::test]
async fn only_the_first_finding_of_an_event_is_recorded_so_the_others_can_be_sent_alone() {
    let env = env().await;
    let triage = env.triage("incidents", false).await;
    // An analyst sends two findings to the custom action at once.
    let mut event = event_json("securityhub-custom-action-contain-ec2.json");
    let mut second = event["detail"]["findings"][0].clone();
    let id = second["Id"].as_str().unwrap().to_string();
    second["Id"] = format!("{id}-second").into();
    event["detail"]["findings"]
        .as_array_mut()
        .unwrap()
        .push(second.clone());
    let t0 = Utc::now();
    let out = triage.handle_at(event.clone(), t0).await.expect("triaged");
    assert_eq!(out.primary.disposition, Disposition::Respond);
    assert_eq!(out.related.len(), 1);
    let other = &out.related[0];
    assert_ne!(other.incident_id, out.primary.incident_id);
    assert!(
        other
            .reasons
            .iter()
            .any(|r| r.contains("not the event's first finding")),
        "{:?}",
        other.reasons
    );
    assert!(env
        .item("incidents", &out.primary.incident_id)
        .await
        .is_some());
    assert!(
        env.item("incidents", &other.incident_id).await.is_none(),
        "a finding nothing responded to is not recorded as handled"
    );

    // Sent on its own, the second finding gets its response.
    let mut alone = event.clone();
    alone["detail"]["findings"] = serde_json::json!([second]);
    let again = triage
        .handle_at(alone, t0 + Duration::minutes(1))
        .await
        .expect("triaged");
    assert_eq!(again.primary.incident_id, other.incident_id);
    assert_eq!(again.primary.disposition, Disposition::Respond);
    assert!(env.item("incidents", &other.incident_id).await.is_some());
}

/// A policy that names organizational units: triage reads where the finding's account sits
/// (ListParents up to the root, as the management account), so a nested OU of production gets
/// the production rule; where the tree cannot be read (outside any organization) nothing is
/// automatic.
#[tokio::test]
async fn organizational_units_are_read_from_organizations_and_unknown_ones_hold_back() {
    use aws_sdk_organizations::types::OrganizationFeatureSet;
    let env = env().await;
    create_incidents_table(&env.ddb, "incidents").await.unwrap();
    let org = aws_sdk_organizations::Client::new(&env._moto.sdk_config().await);
    let policy = |prod: &str| {
        LoadedPolicy::from_toml(
            &format!(
                "[[rules]]\nname = \"production-waits\"\ntier = \"approval\"\norganizational_units = [\"{prod}\"]\n\n\
                 [[rules]]\nname = \"c2\"\ntier = \"auto\"\nfinding_types = [\"Backdoor:EC2/C&CActivity*\"]\n"
            ),
            "test",
        )
        .unwrap()
    };
    let config = TriageConfig {
        incidents_table: "incidents".into(),
        kill_switch_parameter: KILL.into(),
        dry_run: false,
        state_machine_arn: None,
    };
    let triage = |p: LoadedPolicy| {
        Triage::new(&config, p, env.ssm.clone(), env.ddb.clone()).with_organizations(org.clone())
    };
    let finding = |account: &str, id: &str| {
        let mut e = event_json("guardduty-ec2-c2-activity.json");
        e["detail"]["accountId"] = account.into();
        e["detail"]["id"] = id.into();
        e
    };
    // Outside any organization: unknown, so notify-only, with the reason.
    let out = triage(policy("ou-ab12-prod0001"))
        .handle(finding("111122223333", "no-org"))
        .await
        .unwrap();
    assert_eq!(out.primary.tier, Tier::Manual);
    assert!(
        out.primary
            .reasons
            .iter()
            .any(|r| r.contains("AWSOrganizationsNotInUseException")),
        "{:?}",
        out.primary.reasons
    );

    org.create_organization()
        .feature_set(OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let roots = org.list_roots().send().await.unwrap();
    let root = roots.roots()[0].id().unwrap().to_string();
    let ou = |parent: String, name: &'static str| {
        let org = org.clone();
        async move {
            let out = org
                .create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send()
                .await
                .unwrap();
            out.organizational_unit().unwrap().id().unwrap().to_string()
        }
    };
    let prod = ou(root.clone(), "Production").await;
    let payments = ou(prod.clone(), "Payments").await;
    let sandbox = ou(root.clone(), "Sandbox").await;
    let account = |name: &'static str, to: String| {
        let (org, root) = (org.clone(), root.clone());
        async move {
            let created = org
                .create_account()
                .email(format!("{name}@example.com"))
                .account_name(name)
                .send()
                .await
                .unwrap();
            let id = created
                .create_account_status()
                .unwrap()
                .account_id()
                .unwrap()
                .to_string();
            org.move_account()
                .account_id(&id)
                .source_parent_id(root)
                .destination_parent_id(to)
                .send()
                .await
                .unwrap();
            id
        }
    };
    let in_payments = account("payments", payments.clone()).await;
    let in_sandbox = account("sandbox", sandbox).await;

    let t = triage(policy(&prod));
    let out = t
        .handle(finding(&in_payments, "in-payments"))
        .await
        .unwrap();
    assert_eq!(
        (out.primary.tier, out.primary.matched_rule.as_deref()),
        (Tier::Approval, Some("production-waits")),
        "{:?}",
        out.primary.reasons
    );
    let path = format!("account {in_payments} is in {root} / {prod} / {payments}");
    assert!(
        out.primary.reasons.contains(&path),
        "{:?}",
        out.primary.reasons
    );
    let out = t.handle(finding(&in_sandbox, "in-sandbox")).await.unwrap();
    assert_eq!(out.primary.tier, Tier::Auto, "{:?}", out.primary.reasons);
}
