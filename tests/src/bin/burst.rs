//! `make burst` (part of `make bench`): different findings over many instances, put on the bus
//! as fast as the local stack takes them: ten entries per `PutEvents`, each refill as large as
//! the window has room for, with at most `IR_BURST_WINDOW` (default 40) executions between
//! their start and their review gate at once. An instance's findings are adjacent in the
//! sequence, so they arrive close together and contend for its lease.
//! (All at once, moto's single process falls so far behind that handlers pass their Lambda
//! timeout; on AWS the services scale instead.) Every execution runs the real state machine with
//! the real handlers in-process, as `make test`'s executed tests do;
//! `state_machine_concurrency.rs` is its small form. `IR_BURST_FINDINGS` (default 1,000)
//! findings over `IR_BURST_RESOURCES` (default 200) instances, one ENI each.
//!
//! Checks, and exits 1 when one fails: one execution per finding, every instance isolated
//! exactly once, every finding recorded in the incidents table, every incident's evidence
//! stored, every execution paused at its review gate, no function call failed for a reason
//! other than `ResourceBusy` (waiting for the lease). Reports findings/s (the first put → the
//! last review gate opened), event → contained per instance (its first execution's start → the
//! run that isolated it) and event → evidence per incident, the bench process's peak memory (the
//! handlers all run in it), then each function's own: its binary replays a sample of the events
//! the burst handed that function, one at a time, against a local Runtime API
//! ([`binaries::memory`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use ir_core::actions::ContainmentRecord;
use ir_tests::binaries;
use ir_tests::burst::{finding, incident_of, isolations};
use ir_tests::pipeline::{self, Pipeline};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Peak resident memory of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    ir_tests::runtime_api::peak_rss_kib("self") as f64 / 1024.0
}

/// Peak memory of each function's own binary (`IR_BENCH_BIN_DIR`, default `target/debug`) over
/// up to `IR_BURST_MEMORY_EVENTS` (default 50) of the events the burst handed it, replayed one at
/// a time to one process, as one Lambda execution environment takes them. The burst's resources
/// are contained by then, so containment events are repeats.
async fn memory_per_function(p: &Pipeline) {
    let most = env_number("IR_BURST_MEMORY_EVENTS", 50);
    let configured = binaries::configured_memory_mib();
    println!(
        "\nPeak memory per function: each binary in {} over up to {most} of the burst's events for it, one process each, one event at a time\n",
        binaries::bin_dir().display()
    );
    println!("| function | events | peak memory MiB | configured MiB | function errors |");
    println!("| --- | --- | --- | --- | --- |");
    for function in binaries::FUNCTIONS {
        let events = binaries::events_for(p, function, most);
        if events.is_empty() {
            println!("| `{function}` | 0 | no event for it in the burst | | |");
            continue;
        }
        match binaries::memory(p, function, &events).await {
            Ok(Some(m)) => println!(
                "| `{function}` | {} | {:.1} | {configured} | {}{} |",
                m.events,
                m.peak_mib,
                m.errors,
                m.first_error.map(|e| format!(" ({e})")).unwrap_or_default()
            ),
            Ok(None) => {
                println!("| `{function}` | 0 | SKIPPED: not built (cargo build --bins) | | |")
            }
            // A report, not a check: say so and go on to the checks.
            Err(e) => println!(
                "| `{function}` | {} | not measured: {e} | | |",
                events.len()
            ),
        }
    }
}

/// Whether an execution is paused at its review gate or has ended.
async fn settled(p: &Pipeline, exec: &str, incident: &str) -> Option<ExecutionStatus> {
    let status = p.status(exec).await;
    let at_gate = p.gate_status(incident).await.as_deref() == Some("pending");
    (status != ExecutionStatus::Running || at_gate).then_some(status)
}

/// Puts the findings on the bus in sequence, ten per `PutEvents`, keeping at most `window`
/// executions between their start and their review gate (or end): as fast as the local stack
/// takes them (all at once, moto's single process falls behind and Lambda timeouts fire).
/// Returns every execution with its incident, and its status and time when it settled.
async fn deliver(
    p: &Pipeline,
    events: &[serde_json::Value],
    window: usize,
    within: Duration,
) -> Vec<((String, String), (ExecutionStatus, Instant))> {
    let deadline = Instant::now() + within;
    let (mut put, mut known) = (0_usize, std::collections::HashSet::new());
    let (mut running, mut done) = (Vec::new(), Vec::new());
    while done.len() < events.len() && Instant::now() < deadline {
        let room = window.saturating_sub(put.saturating_sub(done.len()));
        if room > 0 && put < events.len() {
            let end = (put + room).min(events.len());
            ir_tests::eventbridge::put_events(&p.moto, &events[put..end]).await;
            put = end;
        }
        // EventBridge has started their executions when PutEvents answers; list until every
        // put finding has one.
        let mut found = false;
        if known.len() < put {
            for exec in p.execution_arns().await {
                if known.insert(exec.clone()) {
                    let incident = incident_of(p, &exec).await;
                    running.push((exec, incident));
                    found = true;
                }
            }
        }
        // Everything put and settled, and nothing new started: a finding that started no
        // execution fails the "one execution per finding" check, not the deadline.
        if put == events.len() && running.is_empty() && !found {
            break;
        }
        let mut still = Vec::new();
        for (exec, incident) in running {
            match settled(p, &exec, &incident).await {
                Some(status) => done.push(((exec, incident), (status, Instant::now()))),
                None => still.push((exec, incident)),
            }
        }
        running = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let now = Instant::now();
    done.extend(
        running
            .into_iter()
            .map(|e| (e, (ExecutionStatus::TimedOut, now))),
    );
    done
}

/// The failure events of an execution's history (the first page), for a report.
async fn failed_events(p: &Pipeline, exec: &str) -> Vec<String> {
    let out = p
        .sfn
        .get_execution_history()
        .execution_arn(exec)
        .max_results(1000)
        .send()
        .await;
    let Ok(out) = out else {
        return vec![format!("{exec}: history unreadable")];
    };
    out.events()
        .iter()
        .filter(|e| {
            let t = e.r#type().as_str();
            t.ends_with("Failed") || t.ends_with("TimedOut")
        })
        .map(|e| format!("    {e:?}").chars().take(600).collect())
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let findings = env_number("IR_BURST_FINDINGS", 1_000);
    let resources = env_number("IR_BURST_RESOURCES", 200).clamp(1, findings.max(1));
    let window = env_number("IR_BURST_WINDOW", 40).max(1);
    // The review gate stays open longer than the whole delivery may take.
    let p = pipeline::start(5 * 3600).await;
    let mut instances = Vec::with_capacity(resources);
    for _ in 0..resources {
        instances.push(pipeline::instance(&p.sdk).await);
    }
    // An instance's findings are adjacent, so they arrive within one window and contend for
    // its lease.
    let instance_for = |n: usize| &instances[n * resources / findings.max(1)];
    let events: Vec<_> = (0..findings).map(|n| finding(n, instance_for(n))).collect();
    let mut instance_of = HashMap::new();
    for (n, e) in events.iter().enumerate() {
        let incident = ir_core::Incident::from_event_value(e.clone())?[0]
            .incident_id
            .clone();
        instance_of.insert(incident, instance_for(n).clone());
    }

    let clock = Instant::now();
    let put_at = chrono::Utc::now();
    let delivered = deliver(&p, &events, window, Duration::from_secs(4 * 3600)).await;
    let last = delivered
        .iter()
        .map(|(_, (_, at))| *at)
        .max()
        .unwrap_or(clock);
    let elapsed = last.duration_since(clock);
    let execs: Vec<(String, String)> = delivered.into_iter().map(|(e, _)| e).collect();
    ir_tests::payloads::assert_received_valid(&p.jira).await;

    // Execution start → the first response of a function for that incident.
    let mut started = HashMap::new();
    for (exec, incident) in &execs {
        let d = p
            .sfn
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await?;
        let at = chrono::DateTime::from_timestamp(d.start_date.secs(), d.start_date.subsec_nanos())
            .unwrap_or_default();
        started.insert(incident.clone(), at);
    }
    let calls = p.invoke.calls();
    let mut busy = 0;
    let mut failures = Vec::new();
    // Per instance: the isolation's end; per incident: evidence stored, review gate open.
    let mut isolated: HashMap<String, (usize, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    let mut evidence_at = HashMap::new();
    let mut gate_at = Vec::new();
    for c in &calls {
        let end = c.started_at + chrono::Duration::from_std(c.elapsed)?;
        match c.error_type.as_deref() {
            Some("ResourceBusy") if c.function == "ir-isolate-ec2" => busy += 1,
            Some(other) => failures.push(format!("{}: {other}", c.function)),
            None => {}
        }
        let incident = c.payload["decision"]["incident_id"]
            .as_str()
            .unwrap_or_default();
        match (c.function.as_str(), &c.output) {
            ("ir-isolate-ec2", Some(output)) => {
                let record: ContainmentRecord = serde_json::from_value(output.clone())?;
                let instance = instance_of.get(incident).cloned().unwrap_or_default();
                // Only a run that isolated is a latency sample (a joining run changes nothing).
                let n = isolations(&record);
                if n > 0 {
                    let entry = isolated.entry(instance).or_insert((0, end));
                    *entry = (entry.0 + n, end);
                }
            }
            // Evidence stored: a manifest written, or one already there for this incident.
            ("ir-preserve-evidence", Some(output))
                if matches!(
                    output["status"].as_str(),
                    Some("preserved" | "partial" | "unchanged")
                ) =>
            {
                evidence_at.entry(incident.to_string()).or_insert(end);
            }
            ("ir-notify", Some(_)) if c.payload["kind"] == "approval_requested" => {
                gate_at.push(end)
            }
            _ => {}
        }
    }
    // Event → contained, per instance: its first execution's start → the isolation.
    let mut first_start: HashMap<&str, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for (incident, at) in &started {
        if let Some(instance) = instance_of.get(incident) {
            let e = first_start.entry(instance.as_str()).or_insert(*at);
            *e = (*e).min(*at);
        }
    }
    let since = |from: Option<&chrono::DateTime<chrono::Utc>>,
                 to: chrono::DateTime<chrono::Utc>| {
        from.and_then(|f| (to - *f).to_std().ok())
    };
    let mut contained: Vec<Duration> = isolated
        .iter()
        .filter_map(|(instance, (_, end))| since(first_start.get(instance.as_str()), *end))
        .collect();
    contained.sort();
    let mut evidence: Vec<Duration> = evidence_at
        .iter()
        .filter_map(|(incident, end)| since(started.get(incident), *end))
        .collect();
    evidence.sort();
    // Throughput: the first put → the last review gate opened.
    let last_gate = gate_at.iter().max().copied();
    let elapsed = last_gate
        .and_then(|g| (g - put_at).to_std().ok())
        .unwrap_or(elapsed);
    let isolated: HashMap<String, usize> = isolated.into_iter().map(|(k, (n, _))| (k, n)).collect();

    let not_once: Vec<_> = instances
        .iter()
        .filter(|i| isolated.get(*i).copied().unwrap_or(0) != 1)
        .collect();
    // Every finding's incident in the incidents table (all pages).
    let ddb = aws_sdk_dynamodb::Client::new(&p.sdk);
    let pages = ddb
        .scan()
        .table_name(pipeline::INCIDENTS_TABLE)
        .into_paginator()
        .send();
    let pages: Vec<_> = pages.collect::<Result<Vec<_>, _>>().await?;
    let stored: std::collections::HashSet<String> = pages
        .iter()
        .flat_map(|p| p.items())
        .filter_map(|i| i.get("incident_id").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    let unrecorded = instance_of.keys().filter(|i| !stored.contains(*i)).count();
    let recorded = findings - unrecorded;
    // Read again now: an execution paused at its gate may have failed since.
    let mut not_at_gate = 0;
    let mut ended: std::collections::BTreeMap<String, usize> = Default::default();
    let mut samples = Vec::new();
    for (exec, incident) in &execs {
        let d = p
            .sfn
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await?;
        let at_gate = p.gate_status(incident).await.as_deref() == Some("pending");
        if d.status != ExecutionStatus::Running || !at_gate {
            not_at_gate += 1;
            let why = format!("{:?} {}", d.status, if at_gate { "" } else { "(no gate)" });
            if !ended.contains_key(&why) {
                let cause = d.cause.as_deref().unwrap_or_default();
                samples.push(format!("{exec}: {why} {:?}: {cause:.300}", d.error));
                samples.extend(failed_events(&p, exec).await);
            }
            *ended.entry(why).or_insert(0) += 1;
        }
    }
    let no_evidence = instance_of
        .keys()
        .filter(|i| !evidence_at.contains_key(*i))
        .count();

    println!(
        "\n{findings} findings over {resources} instances, at most {window} executions short of their gate at once\n"
    );
    println!("| measure | value |\n| --- | --- |");
    println!(
        "| findings/s (put → the last review gate opened) | {:.1} |",
        findings as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| event → contained p50 / p99 ms, per instance (its first execution's start → its isolation; n={}) | {} / {} |",
        contained.len(),
        ms(pct(&contained, 0.5)),
        ms(pct(&contained, 0.99))
    );
    println!(
        "| event → evidence p50 / p99 ms, per incident (execution start → evidence stored; n={}) | {} / {} |",
        evidence.len(),
        ms(pct(&evidence, 0.5)),
        ms(pct(&evidence, 0.99))
    );
    println!("| containment calls that waited for the lease (`ResourceBusy`) | {busy} |");
    println!(
        "| instances isolated exactly once | {} / {resources} |",
        resources - not_once.len()
    );
    println!("| incident records (DynamoDB) | {recorded} |");
    println!(
        "| incidents with evidence stored | {} |",
        findings - no_evidence
    );
    println!("| executions not paused at their gate | {not_at_gate} |");
    println!(
        "| failed function calls (other than `ResourceBusy`) | {} |",
        failures.len()
    );
    println!(
        "| peak memory of the bench process (all handlers in-process) | {:.0} MiB |",
        peak_rss_mib()
    );
    memory_per_function(&p).await;

    let mut ok = true;
    for (what, fine) in [
        ("one execution per finding", execs.len() == findings),
        ("every instance isolated exactly once", not_once.is_empty()),
        ("every finding recorded", unrecorded == 0),
        ("every incident's evidence stored", no_evidence == 0),
        ("every execution at its gate", not_at_gate == 0),
        ("no failure but ResourceBusy", failures.is_empty()),
    ] {
        if !fine {
            ok = false;
            println!("FAILED: {what}");
        }
    }
    for f in failures.iter().take(10) {
        println!("  {f}");
    }
    for (why, n) in &ended {
        println!("  executions not at their gate: {n} {why}");
    }
    for s in &samples {
        println!("  {s}");
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
