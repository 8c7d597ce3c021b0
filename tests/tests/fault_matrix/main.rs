//! The fault matrix: for each playbook (EC2 isolation of a plain instance, of one a target group
//! holds with network ACL isolation on, and of one in an Auto Scaling group; IAM user quarantine;
//! S3 lockdown) and each mode (contain, release), the function is first run cleanly while its
//! mutating AWS calls are counted. Then, for every one of those calls, on a fresh resource, the
//! function is killed right after that call was applied ([`ir_tests::faults::Crash`]) and run
//! again with the same input, as the state machine's retrier does. The retry must end
//! `Completed` with the state the clean run left (read back from the emulator, ids replaced), the
//! original pre-state, each step listed once, and a release after it must give back the state the
//! resource had before.
//!
//! The matrix is printed (`-- --nocapture`) and written to `target/fault-matrix.md`.

mod ec2;
mod iam;
mod matrix;
mod s3;

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use ir_core::actions::{Approval, ContainmentError, ContainmentRecord, ContainmentRequest, Mode};
use ir_tests::fixtures::{event_json, live_triage, pre_state_store, PRE_STATE_TABLE};
use ir_tests::MotoServer;
use serde_json::{json, Value};

use ec2::{Ec2, Wiring};
use iam::Iam;
use matrix::{both_modes, every_storm};
use s3::S3;

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

    /// The id named `name` (one of the names this case's resource was given).
    fn id(&self, name: &str) -> &str {
        let found = self.ids.iter().find(|(_, n)| n == name);
        found.map(|(id, _)| id.as_str()).unwrap_or_default()
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
    /// The function, and what is special about its resources.
    fn name(&self) -> String;
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
    /// The members of [`Subject::state`] (at any depth) that only a best-effort step changes: a
    /// storm may leave them as they were while the containment completes.
    fn best_effort(&self) -> &'static [&'static str] {
        &[]
    }
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

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn ec2(world: World, wiring: Wiring) -> Ec2 {
    Ec2 { world, wiring }
}

#[tokio::test]
async fn ec2_isolation_killed_after_any_call_ends_as_the_clean_run_on_retry() {
    both_modes(ec2(world().await, Wiring::Plain)).await;
}

#[tokio::test]
async fn ec2_isolation_of_a_load_balanced_instance_with_acls_killed_after_any_call_ends_as_the_clean_run_on_retry(
) {
    both_modes(ec2(world().await, Wiring::TargetGroupAndAcls)).await;
}

#[tokio::test]
async fn ec2_isolation_of_an_auto_scaling_member_killed_after_any_call_ends_as_the_clean_run_on_retry(
) {
    both_modes(ec2(world().await, Wiring::AutoScaling)).await;
}

#[tokio::test]
async fn iam_quarantine_killed_after_any_call_ends_as_the_clean_run_on_retry() {
    both_modes(Iam(world().await)).await;
}

#[tokio::test]
async fn s3_lockdown_killed_after_any_call_ends_as_the_clean_run_on_retry() {
    both_modes(S3(world().await)).await;
}

#[tokio::test]
async fn ec2_isolation_under_storms_completes_or_fails_loudly() {
    every_storm(ec2(world().await, Wiring::Plain)).await;
}

#[tokio::test]
async fn ec2_isolation_of_a_load_balanced_instance_with_acls_under_storms_completes_or_fails_loudly(
) {
    every_storm(ec2(world().await, Wiring::TargetGroupAndAcls)).await;
}

#[tokio::test]
async fn ec2_isolation_of_an_auto_scaling_member_under_storms_completes_or_fails_loudly() {
    every_storm(ec2(world().await, Wiring::AutoScaling)).await;
}

#[tokio::test]
async fn iam_quarantine_under_storms_completes_or_fails_loudly() {
    every_storm(Iam(world().await)).await;
}

#[tokio::test]
async fn s3_lockdown_under_storms_completes_or_fails_loudly() {
    every_storm(S3(world().await)).await;
}

/// The SDK's retry quota (a token bucket) is each client set's own: a lasting storm that drains
/// one client's quota leaves a client built later with `ir_core::aws_client!` its full retries,
/// while a client sharing the drained quota gets none. (With the SDK's default, a process-wide
/// bucket per service and Region, the storms above drained each other's retries.)
#[tokio::test]
async fn a_drained_retry_quota_is_the_drained_clients_own() {
    use aws_config::retry::RetryConfig;
    use ir_tests::faults::{Storm, Weather};
    let moto = MotoServer::start().expect("moto");
    // The project's attempts, without the backoff (the quota is what is under test).
    let sdk = moto
        .sdk_config()
        .await
        .to_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(ir_core::aws::MAX_ATTEMPTS)
                .with_initial_backoff(std::time::Duration::from_millis(1))
                .with_max_backoff(std::time::Duration::from_millis(2)),
        )
        .build();
    let lasting = Storm::new(&sdk, "ssm", Weather::Unavailable, usize::MAX);
    let drained = ir_core::aws_client!(aws_sdk_ssm, &lasting.config(&sdk));
    // 500 tokens, 10 per retried 5xx: fewer than 20 failed calls of 4 retries each drain it.
    for _ in 0..20 {
        assert!(drained.describe_parameters().send().await.is_err());
    }
    let attempts = lasting.refused();
    assert!(drained.describe_parameters().send().await.is_err());
    assert_eq!(
        lasting.refused(),
        attempts + 1,
        "a drained quota retries nothing"
    );

    let short = |sdk: &SdkConfig| Storm::new(sdk, "ssm", Weather::Unavailable, 2);
    let storm = short(&sdk);
    let own = ir_core::aws_client!(aws_sdk_ssm, &storm.config(&sdk));
    own.describe_parameters()
        .send()
        .await
        .expect("a fresh quota absorbs two failed attempts");
    assert_eq!(storm.refused(), 2);

    let storm = short(&sdk);
    let sharing = aws_sdk_ssm::Client::from_conf(
        drained
            .config()
            .to_builder()
            .http_client(
                storm
                    .config(&sdk)
                    .http_client()
                    .expect("the storm's client"),
            )
            .build(),
    );
    assert!(sharing.describe_parameters().send().await.is_err());
    assert_eq!(
        storm.refused(),
        1,
        "the drained quota is shared by its config's clients"
    );
}
