//! `make bench`: how fast the response is, measured on the local pipeline (moto + the real state
//! machine + the real handlers in-process). Prints a table; asserts nothing (not a timed test).
//!
//! - handler latency per function (p50 / p95 / max over every invocation);
//! - event → contained: execution start → the containment function's response;
//! - event → review gate: execution start → the task token stored;
//! - cold start per function: each Lambda binary launched as Lambda launches it, against a local
//!   Runtime API ([`ir_tests::runtime_api`]), timed from process launch to the runtime asking
//!   for its first event (init) and to its first response. The event is one the pipeline run
//!   handed that function (so containment sees an already-contained resource: a repeat), for
//!   ir-approve an unsigned webhook delivery (answered 401). Binaries come from
//!   `IR_BENCH_BIN_DIR` (default `target/debug`; `make bench` builds them).
//!
//! Numbers are emulator numbers (moto answers in ~1–50 ms per call; AWS APIs are slower).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ir_tests::binaries;
use ir_tests::fixtures::event_text;
use ir_tests::pipeline::{self, Pipeline};
use serde_json::Value;

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

/// One row of the latency table: n, p50, p95, max.
fn latency_row(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "| {name} | {} | {} | {} | {} |",
        v.len(),
        ms(pct(&v, 0.5)),
        ms(pct(&v, 0.95)),
        ms(pct(&v, 1.0))
    );
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
    // One leaked access key (approved in Jira) and one public bucket, so every function ran.
    let key_id = ir_tests::pipeline::user_with_key(&p.sdk, "deploy-bot").await;
    p.moto
        .s3_client(&p.sdk)
        .create_bucket()
        .bucket("acme-customer-exports")
        .send()
        .await?;
    let mut leaked: Value =
        serde_json::from_str(&event_text("guardduty-iam-anomalous-behavior.json")?)?;
    leaked["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key_id.into();
    let public: Value = serde_json::from_str(&event_text(
        "guardduty-s3-block-public-access-disabled.json",
    )?)?;
    for (name, event) in [("bench-iam", &leaked), ("bench-s3", &public)] {
        let incident = ir_core::Incident::from_event_value(event.clone())?[0]
            .incident_id
            .clone();
        let exec = p.start_execution(name, event).await;
        p.settle(&exec, Some(&incident)).await;
        if name == "bench-iam" {
            p.review(&incident, "Approved", "bench-delivery-1").await;
            p.settle(&exec, None).await;
        }
    }

    let mut per_fn: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for c in p.invoke.calls() {
        per_fn.entry(c.function).or_default().push(c.elapsed);
    }
    println!("\n{runs} bitcoin-mining incidents, one leaked key (approved), one public bucket through the local pipeline\n");
    println!("| measure | n | p50 ms | p95 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    for (f, v) in per_fn {
        latency_row(&format!("handler `{f}`"), v);
    }
    latency_row("event → instance isolated (auto tier)", to_contained);
    latency_row("event → review gate open", to_gate);
    member_hop(&p).await;
    cold_starts(&p).await?;
    Ok(())
}

/// What reaching a member account costs before the first call there: the AssumeRole of a new
/// incident's session, and the kept credentials of a known one.
async fn member_hop(p: &Pipeline) {
    p.deploy_member_role().await;
    let reach = pipeline::reach(&p.as_isolate);
    let place = ir_core::member::Place {
        partition: "aws".into(),
        account: pipeline::MEMBER_ACCOUNT.into(),
        region: "eu-west-1".into(),
    };
    let n = 20;
    let (mut fresh, mut kept) = (Vec::new(), Vec::new());
    for i in 0..n {
        let started = Instant::now();
        reach
            .sdk_for(&place, &format!("bench-hop-{i}"))
            .await
            .expect("member role");
        fresh.push(started.elapsed());
        let started = Instant::now();
        reach
            .sdk_for(&place, "bench-hop-0")
            .await
            .expect("member role");
        kept.push(started.elapsed());
    }
    latency_row("member role: AssumeRole for a new incident", fresh);
    latency_row("member role: credentials kept for the incident", kept);
}

async fn cold_starts(p: &Pipeline) -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("IR_BENCH_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = binaries::bin_dir();
    println!(
        "\nCold start: each Lambda binary in {}, launched {runs} times\n",
        dir.display()
    );
    println!(
        "| function | n | init p50 ms | first response p50 ms | first response max ms | peak memory MiB | answer |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for function in binaries::FUNCTIONS {
        let binary = dir.join(function);
        if !binary.exists() {
            println!(
                "| `{function}` | 0 | SKIPPED: {} not built (cargo build --bins) | | | | |",
                binary.display()
            );
            continue;
        }
        // A repeat of what the pipeline run handed this function (not the approval request).
        let event = binaries::events_for(p, function, usize::MAX)
            .into_iter()
            .find(|e| e["kind"].as_str() != Some("approval_requested"))
            .unwrap_or(Value::Null);
        let env = binaries::function_env(p, function).await?;
        let (mut init, mut first, mut peak) = (Vec::new(), Vec::new(), 0);
        let mut answer = String::new();
        for _ in 0..runs {
            let c =
                ir_tests::runtime_api::cold_start(&binary, &env, &event, Duration::from_secs(60))
                    .await?;
            init.push(c.init);
            first.push(c.first_response);
            peak = peak.max(c.peak_rss_kib);
            answer = match &c.outcome {
                Ok(v) if v.get("statusCode").is_some() => format!("HTTP {}", v["statusCode"]),
                Ok(_) => "ok".into(),
                Err(e) => binaries::error_type(e),
            };
        }
        init.sort();
        first.sort();
        println!(
            "| `{function}` | {runs} | {} | {} | {} | {:.1} | {answer} |",
            ms(pct(&init, 0.5)),
            ms(pct(&first, 0.5)),
            ms(pct(&first, 1.0)),
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
