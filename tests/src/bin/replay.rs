//! `make replay` (part of `make bench`): one finding delivered `IR_REPLAYS` (default 100) times
//! at once and its re-published copy once, through the executed state machine with the real
//! handlers in-process (`state_machine_concurrency.rs` is its small form). Prints what the
//! deliveries did and exits 1 unless it is one response (one ticket, one containment, one
//! evidence chain without gaps) with every delivery counted in the incident record.

use ir_tests::pipeline;
use ir_tests::replay::replay;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let copies = std::env::var("IR_REPLAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let p = pipeline::start(3600).await;
    let r = replay(&p, copies).await;
    println!("\none finding delivered {copies} times at once, plus its re-published copy\n");
    println!("| measure | value |\n| --- | --- |");
    for (what, value) in [
        ("executions started", r.deliveries.to_string()),
        (
            "responses (the rest ended at `NoResponse`)",
            r.responses.to_string(),
        ),
        ("triage runs", r.triaged.to_string()),
        (
            "containment runs / evidence runs / Jira tickets",
            format!("{} / {} / {}", r.containments, r.evidence_runs, r.tickets),
        ),
        (
            "evidence manifests, chained without a gap",
            format!("{:?}", r.manifests),
        ),
        (
            "incident record: triage_count / repeat_count / occurrences",
            format!(
                "{} / {} / {} (highest count {})",
                r.triage_count, r.repeat_count, r.occurrences, r.highest_count
            ),
        ),
        (
            "put → every execution settled",
            format!("{:.1} s", r.elapsed.as_secs_f64()),
        ),
    ] {
        println!("| {what} | {value} |");
    }
    let failures = r.failures();
    for f in &failures {
        println!("FAILED: {f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
