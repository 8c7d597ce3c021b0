//! `make fuzz` (part of `make bench`): the fuzz pass of `tests/tests/fuzz.rs` at full size.
//! `IR_FUZZ_INPUTS` inputs (default 10,000,000) for each of the two targets, the triage handler
//! and the Jira webhook handler, one thread each, from a seed that changes per run
//! (`IR_FUZZ_SEED` to repeat one). Prints inputs/s and the verdicts; exits 1 on the first
//! failure (a panic, an untyped rejection, or an AWS call for a rejected input), with the
//! input proptest shrank it to.

use std::collections::BTreeMap;
use std::time::Instant;

use ir_fuzz::targets::{webhook_seeds, TriageTarget, Verdict, WebhookTarget, APPROVER, SENT_MS};
use ir_fuzz::{run, seeds_in, shared_dir, workspace_dir};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

type Outcome = (&'static str, Result<BTreeMap<Verdict, u64>, String>, f64);

fn fuzz(
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    inputs: u32,
    seed: u64,
    mut check: impl FnMut(&[u8]) -> Result<Verdict, String>,
) -> Outcome {
    let started = Instant::now();
    let mut seen = BTreeMap::new();
    let result = run(seeds, inputs, seed, |input| {
        *seen.entry(check(input)?).or_insert(0) += 1;
        Ok(())
    });
    (name, result.map(|()| seen), started.elapsed().as_secs_f64())
}

fn main() {
    let inputs = env_number("IR_FUZZ_INPUTS", 10_000_000).min(u32::MAX as u64) as u32;
    let seed = env_number(
        "IR_FUZZ_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
    );
    let shared = shared_dir();
    let mut findings = seeds_in(&workspace_dir().join("events"));
    let mut deliveries = Vec::new();
    match &shared {
        Some(dir) => {
            findings.extend(seeds_in(&dir.join("real-findings/events")));
            deliveries = seeds_in(&dir.join("real-jira-webhooks"));
        }
        None => {
            println!("SKIPPED: ../shared is absent: seeds are events/ and the built-in review only")
        }
    }
    println!(
        "fuzz: {inputs} inputs per target, seed {seed}, {} finding seeds, {} webhook seeds",
        findings.len(),
        webhook_seeds(&deliveries).len()
    );
    // A panic is a finding here, reported by proptest with the shrunk input; keep the hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let triage = std::thread::spawn(move || {
        let target = TriageTarget::new();
        fuzz("triage handler", findings, inputs, seed, |i| {
            target.check(i)
        })
    });
    let webhook = std::thread::spawn(move || {
        let target = WebhookTarget::new(APPROVER, SENT_MS);
        fuzz(
            "Jira webhook handler",
            webhook_seeds(&deliveries),
            inputs,
            seed,
            |i| target.check(i, i.len() % 3 != 0),
        )
    });
    let mut failed = false;
    println!("\n| target | inputs | inputs/s | verdicts | result |\n|---|---|---|---|---|");
    for handle in [triage, webhook] {
        let Ok((name, result, seconds)) = handle.join() else {
            println!("| a fuzz thread died | | | | FAILED |");
            failed = true;
            continue;
        };
        let rate = inputs as f64 / seconds.max(1e-9);
        match result {
            Ok(seen) => println!("| {name} | {inputs} | {rate:.0} | {seen:?} | 0 failures |"),
            Err(why) => {
                failed = true;
                println!("| {name} | | | | FAILED: {why} |");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
