//! The matrix and the storms, for any [`Subject`].

use std::collections::BTreeSet;

use ir_core::actions::RecordStatus;
use ir_core::actions::{ContainmentError, ContainmentRecord, Mode};
use ir_core::audit::Outcome;
use ir_tests::faults::{Crash, Storm, Weather};
use serde_json::Value;

use crate::{Case, Subject};

/// One row: the call the function died after, and what the retry ended with.
struct Row {
    after: usize,
    call: String,
    retry: String,
}

/// The record's step names, ids named, sorted (keys are visited in the order IAM lists them).
fn step_names(case: &Case, rec: &ContainmentRecord) -> Vec<String> {
    let mut names: Vec<String> = rec
        .steps
        .iter()
        .map(|s| case.normal_text(&s.step))
        .collect();
    names.sort();
    names
}

/// Runs `mode` once cleanly on a fresh case (a release on a contained one), then once per
/// mutating call with a crash right after it and a retry. Returns the rows.
async fn matrix<S: Subject>(subject: &S, mode: Mode) -> Vec<Row> {
    let sdk = subject.moto().sdk_config().await;
    // Cases of a release matrix are numbered apart from a contain matrix's (one emulator).
    let offset = if mode == Mode::Release { 100 } else { 0 };
    // The request under test: a contain, or the release of a completed containment.
    let prepare = async |n: usize| {
        let case = subject.fresh(offset + n).await;
        let before = subject.state(&case).await;
        // The state the run under test starts from.
        let (request, start) = if mode == Mode::Release {
            let rec = subject.run(&sdk, case.with(Mode::Contain)).await;
            let rec = rec.expect("contain before the release");
            assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
            (case.release_of(&rec), subject.state(&case).await)
        } else {
            (case.with(Mode::Contain), before.clone())
        };
        (case, before, request, start)
    };

    let (base, base_before, request, base_start) = prepare(0).await;
    let count = Crash::new(&sdk, None);
    let clean = subject.run(&count.config(&sdk), request).await;
    let clean = clean.unwrap_or_else(|e| panic!("{} {mode:?} clean run: {e}", subject.name()));
    assert_eq!(clean.status, RecordStatus::Completed, "{:#?}", clean.steps);
    let calls = count.applied();
    assert!(
        calls.len() > 2,
        "{} {mode:?} made {calls:?}",
        subject.name()
    );
    let expected = subject.state(&base).await;
    assert_ne!(
        expected,
        base_start,
        "{} {mode:?} changed nothing",
        subject.name()
    );

    // What a clean release leaves (tags that say so, S3 versioning suspended rather than never
    // enabled, no console password: the playbooks' documented release).
    let released = if mode == Mode::Contain {
        let rec = subject.run(&sdk, base.release_of(&clean)).await;
        assert_eq!(rec.map(|r| r.status).ok(), Some(RecordStatus::Completed));
        Some(without_pre_state(subject.state(&base).await))
    } else {
        None
    };

    let mut rows = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let after = i + 1;
        let (case, before, request, _) = prepare(after).await;
        assert_eq!(
            before, base_before,
            "case {after} starts like the clean one"
        );
        let crash = Crash::new(&sdk, Some(after));
        let _ = subject.run(&crash.config(&sdk), request.clone()).await;
        assert!(
            crash.crashed(),
            "{} {mode:?}: no crash after {after}",
            subject.name()
        );
        let what = format!(
            "{} {mode:?}, killed after call {after} ({call})",
            subject.name()
        );

        let retry = subject.run(&sdk, request).await;
        let retry = retry.unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"));
        assert_eq!(
            retry.status,
            RecordStatus::Completed,
            "{what}: {:#?}",
            retry.steps
        );
        assert_eq!(
            step_names(&case, &retry),
            step_names(&base, &clean),
            "{what}: steps"
        );
        // What the clean run changed, the retry's record shows in place (changed or found
        // done), not skipped: a release reads the record to know what to undo.
        let in_place = |case: &Case, rec: &ContainmentRecord| -> BTreeSet<String> {
            rec.steps
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Succeeded | Outcome::AlreadyDone))
                .map(|s| case.normal_text(&s.step))
                .collect()
        };
        let lost: Vec<_> = in_place(&base, &clean)
            .difference(&in_place(&case, &retry))
            .cloned()
            .collect();
        assert!(
            lost.is_empty(),
            "{what}: the retry's record does not show in place {lost:?}: {:#?}",
            retry.steps
        );
        let failed: Vec<_> = retry
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Failed)
            .collect();
        assert!(failed.is_empty(), "{what}: {failed:#?}");
        assert_eq!(subject.state(&case).await, expected, "{what}: end state");

        if let Some(released) = &released {
            let rec = subject.run(&sdk, case.release_of(&retry)).await;
            let rec = rec.unwrap_or_else(|e| panic!("{what}: release: {e}"));
            assert_eq!(rec.status, RecordStatus::Completed, "{what}");
            let back = without_pre_state(subject.state(&case).await);
            assert_eq!(
                &back, released,
                "{what}: release restores as after the clean run"
            );
        }
        rows.push(Row {
            after,
            call: call.clone(),
            retry: format!(
                "{:?}, {} steps, same end state",
                retry.status,
                retry.steps.len()
            ),
        });
    }
    rows
}

/// `v` without the members named `keys`, at any depth.
fn without(v: Value, keys: &[&str]) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, x)| (k, without(x, keys)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| without(x, keys)).collect()),
        other => other,
    }
}

/// The resource's own state (a release marks the pre-state item released, and keeps it).
fn without_pre_state(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("pre_state");
    }
    v
}

fn report(name: &str, mode: Mode, rows: &[Row]) {
    let mut text =
        format!("\n### {name}, {mode:?}\n\n| killed after | call | retry |\n|---|---|---|\n");
    for r in rows {
        text.push_str(&format!("| {} | {} | {} |\n", r.after, r.call, r.retry));
    }
    println!("{text}");
    append_report(&text);
}

/// Appends to `target/fault-matrix.md` (best effort: the report is for reading, not checking).
fn append_report(text: &str) {
    let path = ir_tests::fixtures::workspace_file("target/fault-matrix.md");
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
}

pub(crate) async fn both_modes<S: Subject>(subject: S) {
    for mode in [Mode::Contain, Mode::Release] {
        let rows = matrix(&subject, mode).await;
        report(&subject.name(), mode, &rows);
    }
}

// ---- storms ----------------------------------------------------------------------------------

/// Every service the clean containment calls gets two storms, each on a fresh resource: a short
/// one (two failed attempts per call, which the SDK's retries absorb: the run completes as the
/// clean one) and one that lasts the whole run (the service's throttling error, or a bare 503
/// every other service). A lasting storm must end in an error, never in `Completed` with the
/// resource half-contained; once it passes, the state machine's retry completes it.
async fn storms<S: Subject>(subject: &S) -> Vec<String> {
    let sdk = subject.moto().sdk_config().await;
    let base = subject.fresh(200).await;
    let count = Crash::new(&sdk, None);
    let clean = subject
        .run(&count.config(&sdk), base.with(Mode::Contain))
        .await;
    assert_eq!(clean.map(|r| r.status).ok(), Some(RecordStatus::Completed));
    let expected = subject.state(&base).await;
    let mut rows = Vec::new();
    let services = count.services();
    let weathers = [Weather::Throttling, Weather::Unavailable];
    let storms = services.iter().flat_map(|s| weathers.map(|w| (s, w)));
    for (service, weather) in storms {
        for failures in [2, usize::MAX] {
            let case = subject.fresh(201 + rows.len()).await;
            let before = subject.state(&case).await;
            // Under the storm, a counter of what reached the emulator.
            let applied = Crash::new(&sdk, None);
            let storm = Storm::new(&applied.config(&sdk), service, weather, failures);
            let run = subject
                .run(&storm.config(&sdk), case.with(Mode::Contain))
                .await;
            let what = format!("{} {service} {weather:?} x{failures}", subject.name());
            let ended = match (&run, failures) {
                (Ok(rec), 2) => {
                    assert_eq!(
                        rec.status,
                        RecordStatus::Completed,
                        "{what}: {:#?}",
                        rec.steps
                    );
                    assert_eq!(subject.state(&case).await, expected, "{what}: end state");
                    "completed as the clean run".to_string()
                }
                // The kill switch unreadable counts as engaged: only a plan, nothing changed.
                (Ok(rec), _) if rec.status == RecordStatus::Planned => {
                    assert_eq!(
                        subject.state(&case).await,
                        before,
                        "{what}: planned, yet changed"
                    );
                    let retry = subject.run(&sdk, case.with(Mode::Contain)).await;
                    assert_eq!(
                        retry.map(|r| r.status).ok(),
                        Some(RecordStatus::Completed),
                        "{what}"
                    );
                    assert_eq!(
                        subject.state(&case).await,
                        expected,
                        "{what}: after the retry"
                    );
                    "planned only (kill switch unreadable), then completed on retry".to_string()
                }
                // A best-effort step (target groups, Auto Scaling) that could not run is skipped
                // and says why; the rest of the containment goes on.
                (Ok(rec), _) if rec.status == RecordStatus::Completed => {
                    let says = rec.steps.iter().find(|st| {
                        st.outcome == Outcome::Skipped
                            && st
                                .detail
                                .as_deref()
                                .unwrap_or_default()
                                .contains(&format!("{service}:"))
                    });
                    let Some(step) = says else {
                        panic!(
                            "{what}: completed without saying what the storm stopped: {:#?}",
                            rec.steps
                        )
                    };
                    // Everything but what that step would have changed (and recorded) is as
                    // the clean run left it.
                    let keys = subject.best_effort();
                    assert_eq!(
                        without(subject.state(&case).await, keys),
                        without(expected.clone(), keys),
                        "{what}: end state"
                    );
                    format!("completed; `{}` skipped, saying why", step.step)
                }
                (Ok(rec), _) => panic!(
                    "{what}: a lasting storm ended {:?}: {:#?}",
                    rec.status, rec.steps
                ),
                (Err(e), 2) => panic!("{what}: retries did not absorb a short storm: {e}"),
                (Err(e), _) => {
                    let changed = changes(&applied);
                    match e {
                        // The record says how far it got: a failed step, and no more changed
                        // steps than calls that changed something.
                        ContainmentError::Partial(rec) => {
                            assert!(rec.failed_step.is_some(), "{what}: {:#?}", rec.steps);
                            let steps = rec.steps.iter().filter(|st| {
                                st.outcome == Outcome::Succeeded
                                    && st
                                        .api_call
                                        .as_deref()
                                        .is_some_and(|c| !c.starts_with("dynamodb:"))
                            });
                            let steps = steps.count();
                            assert!(
                                steps <= changed.len(),
                                "{what}: {steps} changed steps, {changed:?}"
                            );
                        }
                        // Any other error comes before the first change.
                        _ => {
                            assert!(changed.is_empty(), "{what}: {e} after {changed:?}");
                            assert_eq!(subject.state(&case).await, before, "{what}: changed");
                        }
                    }
                    let retry = subject.run(&sdk, case.with(Mode::Contain)).await;
                    let retry = retry.unwrap_or_else(|e| panic!("{what}: retry after: {e}"));
                    assert_eq!(retry.status, RecordStatus::Completed, "{what}");
                    assert_eq!(
                        subject.state(&case).await,
                        expected,
                        "{what}: after the retry"
                    );
                    format!("{}, then completed on retry", e.error_type())
                }
            };
            assert!(storm.refused() > 0, "{what}: the storm never hit");
            rows.push(format!(
                "| {service} | {weather:?} | {} | {ended} |",
                if failures == 2 {
                    "2 attempts per call".to_string()
                } else {
                    "lasting".to_string()
                }
            ));
        }
    }
    rows
}

/// The changes that reached the resource (not the pre-state table's lease and records).
fn changes(applied: &Crash) -> Vec<String> {
    let calls = applied.applied().into_iter();
    calls.filter(|c| !c.starts_with("dynamodb:")).collect()
}

fn report_storms(name: &str, rows: &[String]) {
    let mut text = format!(
        "\n### {name}, storms\n\n| service | answer | length | ended |\n|---|---|---|---|\n"
    );
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    println!("{text}");
    append_report(&text);
}

/// The storms on `subject`, reported.
pub(crate) async fn every_storm<S: Subject>(subject: S) {
    let rows = storms(&subject).await;
    report_storms(&subject.name(), &rows);
}
