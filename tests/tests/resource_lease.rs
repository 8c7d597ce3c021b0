//! One response per resource at a time (`ir_core::lease`), against moto with the real
//! ir-isolate-ec2 playbook: a resource another incident's run holds is `ResourceBusy` and left
//! untouched; a lease whose holder died is taken over after it expires; a second incident joins
//! the first one's containment (one isolation, the original pre-state, one `contained_by`); and
//! a release restores only when the last incident holding the containment is released.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use chrono::{Duration, Utc};
use ir_core::actions::RecordStatus;
use ir_core::actions::{Approval, ContainmentError, ContainmentRecord, ContainmentRequest, Mode};
use ir_core::audit::Outcome;
use ir_core::prestate::{PreStateKey, PreStateStore};
use ir_core::TriageDecision;
use ir_isolate_ec2::{IsolateConfig, Isolator};
use ir_tests::fixtures::{self, event_json, live_triage};
use ir_tests::pipeline::{instance, SAMPLE_ACCOUNT};
use ir_tests::MotoServer;
use ir_triage::Triage;

struct World {
    _moto: MotoServer,
    ec2: aws_sdk_ec2::Client,
    isolator: Isolator,
    store: PreStateStore,
    triage: Triage,
    instance_id: String,
}

async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let triage = live_triage(&sdk, "incidents").await;
    let isolator = fixtures::isolator(&sdk, IsolateConfig::default()).await;
    World {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        store: fixtures::pre_state_of(&sdk),
        instance_id: instance(&sdk).await,
        isolator,
        triage,
        _moto: moto,
    }
}

/// The samples of different findings GuardDuty raises for one instance.
const EC2_SAMPLES: [&str; 4] = [
    "guardduty-ec2-bitcointool-dns.json",
    "guardduty-ec2-c2-activity.json",
    "guardduty-ec2-tor-client.json",
    "guardduty-ec2-ssh-bruteforce-outbound.json",
];

impl World {
    /// The real triage decision for finding `n` (a distinct finding id) about the instance.
    async fn decision(&self, n: usize) -> TriageDecision {
        let mut e = event_json(EC2_SAMPLES[n % EC2_SAMPLES.len()]);
        e["detail"]["resource"]["instanceDetails"]["instanceId"] = self.instance_id.clone().into();
        e["detail"]["id"] = format!("lease{n:04}").into();
        e["detail"]["arn"] =
            format!("arn:aws:guardduty:us-east-1:{SAMPLE_ACCOUNT}:detector/d/finding/lease{n:04}")
                .into();
        let d = self.triage.handle(e).await.expect("triage").primary;
        assert_eq!(
            d.disposition,
            ir_core::Disposition::Respond,
            "{:?}",
            d.reasons
        );
        d
    }

    fn key(&self) -> PreStateKey {
        PreStateKey::new(SAMPLE_ACCOUNT, "us-east-1", &self.instance_id)
    }

    async fn run(
        &self,
        decision: &TriageDecision,
        mode: Mode,
    ) -> Result<ContainmentRecord, ContainmentError> {
        self.isolator
            .handle(ContainmentRequest {
                mode,
                decision: decision.clone(),
                // Some samples are tier approval: every run here is approved (or auto).
                approval: Some(Approval {
                    approver: "5b10ac8d82e05b22cc7d4ef5".into(),
                    at: Utc::now(),
                }),
                previous: None,
            })
            .await
    }

    /// What the state machine does: run, and on `ResourceBusy` wait and run again.
    async fn run_until_free(&self, decision: &TriageDecision) -> (ContainmentRecord, u32) {
        let mut busy = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match self.run(decision, Mode::Contain).await {
                Err(ContainmentError::Busy { .. }) => {
                    busy += 1;
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{} never got the lease",
                        decision.incident_id
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => return (other.expect("contain"), busy),
            }
        }
    }

    /// ENI id → sorted group names.
    async fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let enis = self
            .ec2
            .describe_network_interfaces()
            .filters(
                Filter::builder()
                    .name("attachment.instance-id")
                    .values(&self.instance_id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        enis.network_interfaces()
            .iter()
            .map(|n| {
                let mut g: Vec<String> = n
                    .groups()
                    .iter()
                    .map(|g| g.group_name().unwrap_or_default().to_string())
                    .collect();
                g.sort();
                (n.network_interface_id().unwrap().to_string(), g)
            })
            .collect()
    }

    async fn isolated(&self) -> bool {
        self.groups()
            .await
            .values()
            .all(|g| g.iter().all(|n| n.starts_with("ir-isolation-")))
    }
}

/// Steps that changed an ENI's groups (the isolation itself).
fn isolations(record: &ContainmentRecord) -> usize {
    record
        .steps
        .iter()
        .filter(|s| s.step.starts_with("isolate-eni-") && s.outcome == Outcome::Succeeded)
        .count()
}

fn step<'a>(record: &'a ContainmentRecord, name: &str) -> Option<&'a ir_core::audit::StepRecord> {
    record.steps.iter().find(|s| s.step == name)
}

#[tokio::test]
async fn a_held_resource_is_busy_and_untouched_and_a_dead_holders_lease_is_taken_over() {
    let w = world().await;
    let before = w.groups().await;
    let d = w.decision(0).await;

    // Another incident's run holds the instance now: nothing is read or changed.
    let held = w
        .store
        .take_lease(&w.key(), "inc-other", Utc::now())
        .await
        .unwrap();
    assert!(held.is_ok(), "{held:?}");
    let err = w.run(&d, Mode::Contain).await.expect_err("busy");
    assert_eq!(err.error_type(), "ResourceBusy", "{err}");
    assert!(err.to_string().contains("inc-other"), "{err}");
    assert_eq!(w.groups().await, before);
    assert!(
        w.store.get(&w.key()).await.unwrap().is_none(),
        "no pre-state recorded"
    );

    // That run died: once its lease has expired, the next run takes it over and contains.
    let expired = w
        .store
        .take_lease(&w.key(), "inc-other", Utc::now() - Duration::seconds(1000))
        .await
        .unwrap();
    assert!(
        expired.is_ok(),
        "the holder renews its own lease: {expired:?}"
    );
    let record = w.run(&d, Mode::Contain).await.expect("contain");
    assert_eq!(
        record.status,
        RecordStatus::Completed,
        "{:#?}",
        record.steps
    );
    assert!(w.isolated().await);
    assert_eq!(
        record.contained_by.as_ref().map(|c| c.incident_id.as_str()),
        Some(d.incident_id.as_str())
    );
    // The lease is free again: the next incident is not kept waiting.
    let next = w
        .store
        .take_lease(&w.key(), "inc-next", Utc::now())
        .await
        .unwrap();
    let taken = next.expect("free after the run");
    assert_eq!(taken.holders, vec![d.incident_id.clone()]);
}

#[tokio::test]
async fn incidents_at_once_on_one_instance_isolate_it_once_and_share_that_containment() {
    let w = world().await;
    let original = w.groups().await;
    let mut decisions = Vec::new();
    for n in 0..6 {
        decisions.push(w.decision(n).await);
    }
    let runs = futures::future::join_all(decisions.iter().map(|d| w.run_until_free(d))).await;
    let waited: u32 = runs.iter().map(|(_, b)| b).sum();
    assert!(
        waited > 0,
        "six runs at once: some must have waited for the lease"
    );
    let records: Vec<ContainmentRecord> = runs.into_iter().map(|(r, _)| r).collect();

    assert!(w.isolated().await);
    let eni_count = original.len();
    let total: usize = records.iter().map(isolations).sum();
    assert_eq!(total, eni_count, "exactly one isolation of each ENI");
    let first = records
        .iter()
        .find(|r| isolations(r) > 0)
        .expect("the isolating run");
    let by = first.contained_by.clone().expect("contained_by");
    assert_eq!(by.incident_id, first.incident_id);
    for r in &records {
        assert_eq!(r.status, RecordStatus::Completed, "{:#?}", r.steps);
        assert_eq!(r.contained_by.as_ref(), Some(&by), "{}", r.incident_id);
        // The pre-state every run worked from is the original one.
        assert_eq!(r.pre_state, first.pre_state);
        if r.incident_id != by.incident_id {
            let join = step(r, "join-containment").expect("join-containment");
            assert_eq!(join.outcome, Outcome::AlreadyDone);
            assert!(join.detail.as_deref().unwrap().contains(&by.incident_id));
        }
    }
    let stored = w.store.get(&w.key()).await.unwrap().expect("pre-state");
    assert_eq!(stored.incident_id, by.incident_id);
    assert_eq!(stored.state, first.pre_state);

    // Releasing all but one keeps it isolated; the last release restores the original groups.
    let (last, rest) = decisions.split_last().unwrap();
    for d in rest {
        let r = w.run(d, Mode::Release).await.expect("release");
        assert_eq!(r.status, RecordStatus::Completed, "{:#?}", r.steps);
        let keep = step(&r, "keep-containment").expect("keep-containment");
        assert_eq!(keep.outcome, Outcome::Skipped);
        assert!(
            w.isolated().await,
            "{} released, others still hold it",
            d.incident_id
        );
    }
    let r = w.run(last, Mode::Release).await.expect("last release");
    assert_eq!(r.status, RecordStatus::Completed, "{:#?}", r.steps);
    assert!(step(&r, "keep-containment").is_none());
    assert_eq!(w.groups().await, original);
    // Released: a new incident records afresh and holds it alone.
    assert!(w.store.get(&w.key()).await.unwrap().unwrap().released);
}
