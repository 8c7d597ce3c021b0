//! The executed state machine under findings that arrive together: twenty different GuardDuty
//! findings about one instance, put on the bus at once, start twenty executions; the resource
//! lease (`ir_core::lease`) and the state machine's `ResourceBusy` retry make them isolate the
//! instance exactly once, from its original state, and every execution ends with the same
//! containment referenced (and says so on its ticket).

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::actions::ContainmentRecord;
use ir_core::prestate::PreStateKey;
use ir_tests::burst::{finding, incident_of, isolations};
use ir_tests::fixtures::pre_state_of;
use ir_tests::pipeline::{instance, start as world, Pipeline, SAMPLE_ACCOUNT};
use serde_json::Value;

/// Waits for the executions the findings started.
async fn executions(w: &Pipeline, count: usize) -> Vec<String> {
    ir_tests::burst::executions(w, count, Duration::from_secs(60)).await
}

/// In `make test`; the bench runs more.
const FINDINGS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_findings_on_one_instance_at_once_isolate_it_once() {
    let w = world(600).await;
    let id = instance(&w.sdk).await;
    let events: Vec<Value> = (0..FINDINGS).map(|n| finding(n, &id)).collect();
    ir_tests::eventbridge::put_events(&w.moto, &events).await;

    let execs = executions(&w, FINDINGS).await;
    let mut incidents = Vec::new();
    for exec in &execs {
        let incident = incident_of(&w, exec).await;
        // Paused at the review gate (tier auto: contained first).
        // Executions wait their turn for the lease: moto sleeps out the ASL's backoff.
        let status = w
            .settle_within(exec, Some(&incident), Duration::from_secs(300))
            .await;
        assert_eq!(status, ExecutionStatus::Running, "{:?}", w.path(exec).await);
        assert_eq!(w.gate_status(&incident).await.as_deref(), Some("pending"));
        incidents.push(incident);
    }

    let calls: Vec<_> = w
        .invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == "ir-isolate-ec2")
        .collect();
    let busy = calls
        .iter()
        .filter(|c| c.error_type.as_deref() == Some("ResourceBusy"))
        .count();
    let other_failures: Vec<_> = calls
        .iter()
        .filter(|c| c.error_type.as_deref().is_some_and(|t| t != "ResourceBusy"))
        .map(|c| c.error_message.clone())
        .collect();
    assert!(other_failures.is_empty(), "{other_failures:?}");
    assert!(busy > 0, "twenty at once: some waited for the lease");
    let records: Vec<ContainmentRecord> = calls
        .iter()
        .filter_map(|c| c.output.clone())
        .map(|o| serde_json::from_value(o).expect("containment record"))
        .collect();
    assert_eq!(
        records.len(),
        FINDINGS,
        "one completed containment run per execution"
    );

    // Exactly one isolation; every execution references the same containment.
    // (The instance has one ENI.)
    assert_eq!(records.iter().map(isolations).sum::<usize>(), 1);
    let by = records[0].contained_by.clone().expect("contained_by");
    assert!(incidents.contains(&by.incident_id));
    for r in &records {
        assert_eq!(r.contained_by.as_ref(), Some(&by), "{}", r.incident_id);
        assert_eq!(r.pre_state, records[0].pre_state, "one original pre-state");
    }
    // The recorded pre-state is the original one (no isolation group in it), by the first.
    let key = PreStateKey::new(SAMPLE_ACCOUNT, "us-east-1", &id);
    let stored = pre_state_of(&w.sdk)
        .get(&key)
        .await
        .unwrap()
        .expect("pre-state");
    assert_eq!(stored.incident_id, by.incident_id);
    assert!(
        !stored.state.to_string().contains("ir-isolation-"),
        "{}",
        stored.state
    );

    // Each joined incident's ticket names the incident whose containment it shares.
    let joined = format!("already contained by incident {}", by.incident_id);
    let bodies: Vec<String> = w
        .jira
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let linked = bodies.iter().filter(|b| b.contains(&joined)).count();
    assert!(
        linked >= FINDINGS - 1,
        "{linked} Jira bodies link the containment"
    );
}

/// How many times the replay test delivers one finding (the bench delivers 100).
const REPLAYS: usize = 20;

/// One response, one ticket, one containment and one evidence chain; every delivery triaged
/// and counted, the highest occurrence count kept (`ir_tests::replay` reads them back).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_finding_delivered_many_times_and_republished_is_one_response() {
    let w = world(600).await;
    let r = ir_tests::replay::replay(&w, REPLAYS).await;
    assert_eq!(r.deliveries, REPLAYS + 1);
    assert_eq!(r.failures(), Vec::<String>::new(), "{r:#?}");
}
