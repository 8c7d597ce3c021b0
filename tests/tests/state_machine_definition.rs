//! The state machine definition against the Lambda settings Terraform deploys: every Task waits
//! longer than its function may run (so the Lambda timeout fires first and is retried, rather
//! than Step Functions abandoning a containment half-way), and every Task retries what a
//! timed-out or crashed sandbox raises. Every handler is idempotent, so a retry is safe.

use ir_tests::fixtures::{lambda_timeouts, workspace_file};
use serde_json::Value;

/// Errors Lambda raises for a sandbox that timed out or died, and for throttling.
const TRANSIENT: [&str; 7] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "Lambda.ClientExecutionTimeoutException",
    "Sandbox.Timedout",
];

/// Every state of the definition, with the states of Parallel branches.
fn states(asl: &Value) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (name, state) in asl["States"].as_object().expect("States") {
        for branch in state["Branches"].as_array().into_iter().flatten() {
            all.extend(states(branch));
        }
        all.push((name.clone(), state.clone()));
    }
    all
}

/// `${isolate_ec2_function_arn}` → `ir-isolate-ec2`.
fn function_of(task: &Value) -> Option<String> {
    let arn = task["Parameters"]["FunctionName"].as_str()?;
    let name = arn.strip_prefix("${")?.strip_suffix("_function_arn}")?;
    let name = if name == "evidence" {
        "preserve_evidence"
    } else {
        name
    };
    Some(format!("ir-{}", name.replace('_', "-")))
}

/// The definition, its placeholders filled as Terraform fills them.
fn definition() -> Value {
    let template =
        std::fs::read_to_string(workspace_file("statemachine/incident-response.asl.json"))
            .expect("ASL");
    serde_json::from_str(
        &template
            .replace("${review_timeout_seconds}", "86400")
            .replace("${review_gate}", "true"),
    )
    .expect("ASL JSON")
}

#[test]
fn every_task_outlasts_its_lambda_and_retries_a_timed_out_sandbox() {
    let asl = definition();
    let timeouts = lambda_timeouts();
    assert!(timeouts["ir-isolate-ec2"] >= 300, "{timeouts:?}");
    let tasks: Vec<_> = states(&asl)
        .into_iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .collect();
    assert!(tasks.len() >= 15, "{} tasks", tasks.len());
    for (name, task) in tasks {
        let function = function_of(&task).unwrap_or_else(|| panic!("{name}: no function"));
        let lambda = *timeouts
            .get(&function)
            .unwrap_or_else(|| panic!("{name}: no Lambda timeout for {function}"));
        let state = task["TimeoutSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no TimeoutSeconds"));
        assert!(
            state > lambda,
            "{name}: TimeoutSeconds {state} must exceed {function}'s {lambda} s"
        );
        let retried: Vec<&str> = task["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        for error in TRANSIENT {
            assert!(retried.contains(&error), "{name} does not retry {error}");
        }
        assert!(
            !retried.contains(&"States.Timeout"),
            "{name}: a timed-out task (the review gate) must not be retried"
        );
    }
}

/// The containment functions (their Tasks take a resource's lease).
const CONTAINMENT: [&str; 3] = ["ir-isolate-ec2", "ir-quarantine-iam", "ir-lockdown-s3"];

/// The longest a retrier waits in all, before jitter: each delay is
/// `IntervalSeconds × BackoffRate^n`, capped at `MaxDelaySeconds`.
fn total_backoff(retrier: &Value) -> f64 {
    let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
    let rate = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
    let cap = retrier["MaxDelaySeconds"].as_f64().unwrap_or(f64::MAX);
    let attempts = retrier["MaxAttempts"].as_i64().unwrap_or(3);
    (0..attempts)
        .map(|n| (interval * rate.powi(n as i32)).min(cap))
        .sum()
}

#[test]
fn every_containment_task_waits_out_another_incidents_lease() {
    let asl = definition();
    let lease = ir_core::lease::LEASE_SECONDS as f64;
    let timeouts = lambda_timeouts();
    let mut checked = 0;
    for (name, task) in states(&asl) {
        let Some(function) = function_of(&task).filter(|f| CONTAINMENT.contains(&f.as_str()))
        else {
            continue;
        };
        // A live run is never taken over: the function stops before its lease ends.
        assert!((timeouts[&function] as f64) < lease, "{function}");
        let busy = task["Retry"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["ErrorEquals"] == serde_json::json!(["ResourceBusy"]))
            .unwrap_or_else(|| panic!("{name} does not retry ResourceBusy"));
        // With full jitter a wait averages half its delay: on average the retries outlast a
        // holder that died at the start of its lease.
        let jitter = if busy["JitterStrategy"] == "FULL" {
            0.5
        } else {
            1.0
        };
        let expected = total_backoff(busy) * jitter;
        assert!(
            expected > lease,
            "{name}: {expected} s of retries, lease {lease} s"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 9,
        "contain, contain-after-approval and release, per playbook"
    );
}
