//! `make bench`: how fast the response is, measured on the local pipeline (moto + the real state
//! machine + the real handlers in-process). Prints a table; asserts nothing (not a timed test).
//!
//! - handler latency per function (p50 / p95 / max over every invocation);
//! - event → contained: execution start → the containment function's response;
//! - event → review gate: execution start → the task token stored.
//!
//! Numbers are emulator numbers (moto answers in ~1–50 ms per call; AWS APIs are slower).

use std::collections::BTreeMap;
use std::time::Duration;

use ir_tests::fixtures::event_text;
use ir_tests::pipeline;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("IR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let p = pipeline::start(600).await;
    let mut to_contained = Vec::new();
    let mut to_gate = Vec::new();
    for n in 0..runs {
        let id = pipeline::instance(&p.sdk).await;
        let mut event: serde_json::Value =
            serde_json::from_str(&event_text("guardduty-ec2-bitcointool-dns.json")?)?;
        event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.clone().into();
        // A distinct finding per run, so each is a new incident (not a duplicate).
        let finding = format!("b3nc4{n:027}");
        event["detail"]["id"] = finding.clone().into();
        event["detail"]["arn"] = format!("arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/{finding}").into();
        let incident = ir_core::Incident::from_event_value(event.clone())?[0]
            .incident_id
            .clone();
        let exec = p.start_execution(&format!("bench-{n}"), &event).await;
        p.settle(&exec, Some(&incident)).await;
        let d = p
            .sfn
            .describe_execution()
            .execution_arn(&exec)
            .send()
            .await?;
        let start =
            chrono::DateTime::from_timestamp(d.start_date.secs(), d.start_date.subsec_nanos())
                .unwrap_or_default();
        for c in p.invoke.calls() {
            if c.payload["decision"]["incident_id"] != incident.as_str() {
                continue;
            }
            let end = c.started_at + chrono::Duration::from_std(c.elapsed)?;
            let since = (end - start).to_std().unwrap_or_default();
            match (c.function.as_str(), c.payload["kind"].as_str()) {
                ("ir-isolate-ec2", _) => to_contained.push(since),
                ("ir-notify", Some("approval_requested")) => to_gate.push(since),
                _ => {}
            }
        }
    }
    let mut per_fn: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for c in p.invoke.calls() {
        per_fn.entry(c.function).or_default().push(c.elapsed);
    }
    println!("\n{runs} bitcoin-mining incidents through the local pipeline\n");
    println!("| measure | n | p50 ms | p95 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    for (f, mut v) in per_fn {
        v.sort();
        println!(
            "| handler `{f}` | {} | {} | {} | {} |",
            v.len(),
            ms(pct(&v, 0.5)),
            ms(pct(&v, 0.95)),
            ms(pct(&v, 1.0))
        );
    }
    for (name, mut v) in [
        ("event → contained", to_contained),
        ("event → review gate open", to_gate),
    ] {
        v.sort();
        println!(
            "| {name} | {} | {} | {} | {} |",
            v.len(),
            ms(pct(&v, 0.5)),
            ms(pct(&v, 0.95)),
            ms(pct(&v, 1.0))
        );
    }
    Ok(())
}
