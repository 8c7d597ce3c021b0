//! Hostile input, a short fixed-seed fuzz pass (`ir-fuzz`, `tests/fuzz/`): the triage handler and the
//! Jira webhook handler, over the sample events, the real findings and the real Jira deliveries
//! in `../shared` (skipped loudly when absent), mutated. Zero panics; every rejected input gets
//! a typed error and makes no AWS call. The bench's `fuzz` binary runs the same over millions.

use std::collections::BTreeMap;

use ir_fuzz::targets::{webhook_seeds, TriageTarget, Verdict, WebhookTarget, APPROVER, SENT_MS};
use ir_fuzz::{run, seeds_in};
use ir_tests::fixtures::events_dir;
use ir_tests::shared;

const CASES: u32 = 2_000;
const SEED: u64 = 0x1c1d_e7e5;

fn finding_seeds() -> Vec<Vec<u8>> {
    let mut seeds = seeds_in(&events_dir());
    match shared::dir() {
        Some(dir) => seeds.extend(seeds_in(&dir.join("real-findings/events"))),
        None => shared::skipped("fuzz (triage)", "real-findings/events"),
    }
    seeds
}

/// Runs `check` over the pass and returns how many inputs got each verdict.
fn pass(
    seeds: Vec<Vec<u8>>,
    mut check: impl FnMut(&[u8]) -> Result<Verdict, String>,
) -> BTreeMap<Verdict, usize> {
    let mut seen = BTreeMap::new();
    let result = run(seeds, CASES, SEED, |input| {
        let verdict = check(input)?;
        *seen.entry(verdict).or_insert(0) += 1;
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    seen
}

#[test]
fn hostile_findings_get_a_typed_error_and_no_aws_call() {
    let seeds = finding_seeds();
    assert!(seeds.len() >= 20, "{} finding seeds", seeds.len());
    let target = TriageTarget::new();
    let seen = pass(seeds, |input| target.check(input));
    println!("triage: {seen:?}");
    // The mutations reach both sides of the parser (not only inputs it refuses at once).
    for verdict in [Verdict::Accepted, Verdict::Rejected, Verdict::NotJson] {
        assert!(
            seen.get(&verdict).copied().unwrap_or(0) > CASES as usize / 50,
            "{seen:?}"
        );
    }
}

#[test]
fn hostile_webhook_deliveries_are_refused_without_touching_dynamodb_or_step_functions() {
    let real = match shared::dir() {
        Some(dir) => seeds_in(&dir.join("real-jira-webhooks")),
        None => {
            shared::skipped("fuzz (webhook)", "real-jira-webhooks");
            Vec::new()
        }
    };
    let target = WebhookTarget::new(APPROVER, SENT_MS);
    // Two inputs in three are signed with the webhook secret, so the parser behind the
    // signature check is reached.
    let seen = pass(webhook_seeds(&real), |input| {
        target.check(input, input.len() % 3 != 0)
    });
    println!("webhook: {seen:?}");
    for verdict in [Verdict::Accepted, Verdict::Rejected] {
        assert!(
            seen.get(&verdict).copied().unwrap_or(0) > CASES as usize / 50,
            "{seen:?}"
        );
    }
}

#[test]
fn the_targets_catch_a_call_made_for_bad_input() {
    // A good review is accepted and reaches DynamoDB: the call counter is live, so a refused
    // input that called AWS would be caught.
    let target = WebhookTarget::new(APPROVER, SENT_MS);
    let review = ir_fuzz::targets::review_delivery().to_string();
    assert_eq!(
        target.check(review.as_bytes(), false),
        Ok(Verdict::Rejected)
    );
    assert_eq!(target.calls(), 0, "an unsigned delivery calls nothing");
    assert_eq!(target.check(review.as_bytes(), true), Ok(Verdict::Accepted));
    assert!(
        target.calls() > 0,
        "a signed review reaches the gate's table"
    );
    let triage = TriageTarget::new();
    assert_eq!(triage.check(b"{\"detail\": 1}"), Ok(Verdict::Rejected));
    assert_eq!(triage.calls(), 0, "a refused event calls nothing");
    let event = std::fs::read(events_dir().join("guardduty-ec2-c2-activity.json")).expect("sample");
    assert_eq!(triage.check(&event), Ok(Verdict::Accepted));
    assert!(triage.calls() > 0, "a good finding is recorded");
}
