//! Findings that arrive together, for the concurrency tests (`state_machine_concurrency.rs`)
//! and the bench's burst: different GuardDuty findings about given instances, numbered so each
//! is a new finding, and what the executions they start did.

use std::time::{Duration, Instant};

use ir_core::actions::ContainmentRecord;
use ir_core::audit::Outcome;
use serde_json::Value;

use crate::fixtures::event_json;
use crate::pipeline::{Pipeline, SAMPLE_ACCOUNT};

/// Auto-tier EC2 samples: different findings GuardDuty raises for one instance.
pub const SAMPLES: [&str; 3] = [
    "guardduty-ec2-bitcointool-dns.json",
    "guardduty-ec2-c2-activity.json",
    "guardduty-ec2-tor-client.json",
];

/// Finding `n` (a sample, by `n`) about `instance`, with its own event and finding ids.
pub fn finding(n: usize, instance: &str) -> Value {
    let mut e = event_json(SAMPLES[n % SAMPLES.len()]);
    e["id"] = format!("0d4b3b7e-0000-4000-8000-{n:012}").into();
    e["detail"]["resource"]["instanceDetails"]["instanceId"] = instance.into();
    e["detail"]["id"] = format!("burst{n:04}").into();
    e["detail"]["arn"] =
        format!("arn:aws:guardduty:us-east-1:{SAMPLE_ACCOUNT}:detector/d/finding/burst{n:04}")
            .into();
    e
}

/// Waits until `count` executions exist (at most `within`), and returns them.
pub async fn executions(w: &Pipeline, count: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let arns = w.execution_arns().await;
        if arns.len() >= count || Instant::now() > deadline {
            assert_eq!(arns.len(), count, "one execution per finding");
            return arns;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The incident an execution responds to (from its input).
pub async fn incident_of(w: &Pipeline, exec: &str) -> String {
    let input = w
        .sfn
        .describe_execution()
        .execution_arn(exec)
        .send()
        .await
        .expect("DescribeExecution")
        .input
        .unwrap_or_default();
    let event: Value = serde_json::from_str(&input).expect("the execution's input is the event");
    let incidents = ir_core::Incident::from_event_value(event).expect("a finding event");
    incidents[0].incident_id.clone()
}

/// How many ENIs a containment record's steps moved into the isolation group.
pub fn isolations(r: &ContainmentRecord) -> usize {
    r.steps
        .iter()
        .filter(|s| s.step.starts_with("isolate-eni-") && s.outcome == Outcome::Succeeded)
        .count()
}
