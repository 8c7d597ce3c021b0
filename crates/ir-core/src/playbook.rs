//! The one skeleton every containment playbook runs through:
//! target → observe → never-touch check → safety gate ([`Runner::begin`]: live protected tag,
//! kill switch, tier and approval, dry-run) → pre-state (recorded before any change, or read
//! back for a release) → the playbook's steps → the record.
//!
//! A playbook only says what it acts on, what it reads, what state it keeps and which steps it
//! takes; the order above, the pre-state table and the record are the same for all of them.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::actions::{
    ContainmentError, ContainmentRecord, ContainmentRequest, Mode, RecordStatus, Runner, Safety,
    Start, StepFailed,
};
use crate::killswitch::KillSwitchState;
use crate::lease::{Ending, Taken};
use crate::prestate::{PreStateKey, PreStateStore};

/// How a request ends before the playbook observes anything.
#[derive(Debug)]
pub enum Refusal {
    /// Never changed automatically (root user, …): a `skipped` record with this reason.
    NeverTouch(String),
    /// Not a resource this function handles.
    Error(ContainmentError),
}

/// One containment playbook.
pub trait Playbook: Sync {
    /// What a request is about (an instance id, a principal, a bucket).
    type Target: Send + Sync;
    /// The live view the playbook works from.
    type Observed: Send + Sync;
    /// What `release` restores; kept in the pre-state table.
    type PreState: Serialize + DeserializeOwned + Send + Sync;

    /// The function's name, in records and the audit trail.
    const FUNCTION: &'static str;

    /// The safety inputs (kill switch, forced dry-run, protected tags).
    fn safety(&self) -> &Safety;
    /// Where the pre-state is kept.
    fn pre_state_store(&self) -> &PreStateStore;

    /// The target of `request`, or why there is none.
    fn target(&self, request: &ContainmentRequest) -> Result<Self::Target, Refusal>;

    /// Reads the resource (no change).
    fn observe(
        &self,
        target: &Self::Target,
    ) -> impl Future<Output = Result<Self::Observed, ContainmentError>> + Send;

    /// A reason never to change this resource, found by observing it (e.g. a service-linked
    /// role): the record is `skipped` with it.
    fn never_touch(&self, _target: &Self::Target, _observed: &Self::Observed) -> Option<String> {
        None
    }

    /// The resource's live tags (for the protected-tag check).
    fn live_tags<'a>(&self, observed: &'a Self::Observed) -> &'a BTreeMap<String, String>;

    /// The pre-state item of this resource.
    fn pre_state_key(&self, request: &ContainmentRequest, target: &Self::Target) -> PreStateKey;

    /// What the lease ([`crate::lease`]) serialises on: the resource itself by default; a
    /// playbook whose change belongs to another resource's containment names that one (an
    /// instance session's revocation is the instance's).
    fn lease_key(&self, request: &ContainmentRequest, target: &Self::Target) -> PreStateKey {
        self.pre_state_key(request, target)
    }

    /// The pre-state as observed now.
    fn observed_pre_state(
        &self,
        target: &Self::Target,
        observed: &Self::Observed,
    ) -> Self::PreState;

    /// The containment steps, in order; `pre` is the original state (recorded now or earlier).
    fn contain(
        &self,
        runner: &mut Runner,
        request: &ContainmentRequest,
        target: &Self::Target,
        observed: &Self::Observed,
        pre: &Self::PreState,
    ) -> impl Future<Output = Result<(), StepFailed>> + Send;

    /// The release steps, restoring `pre`.
    fn release(
        &self,
        runner: &mut Runner,
        request: &ContainmentRequest,
        target: &Self::Target,
        observed: &Self::Observed,
        pre: &Self::PreState,
    ) -> impl Future<Output = Result<(), StepFailed>> + Send;
}

/// Runs `playbook` for `request`: the Lambda handler body of every containment function.
///
/// The resource's lease ([`crate::lease`]) is taken before the playbook observes it and given
/// back when the record is made, so two incidents about one resource never run at once.
pub async fn run<P: Playbook>(
    playbook: &P,
    request: ContainmentRequest,
) -> Result<ContainmentRecord, ContainmentError> {
    let started = Utc::now();
    let target = match playbook.target(&request) {
        Ok(t) => t,
        Err(Refusal::NeverTouch(reason)) => {
            return Ok(Runner::skipped(P::FUNCTION, &request, reason, started))
        }
        Err(Refusal::Error(e)) => return Err(e),
    };
    // A skip the request alone decides (not `respond`, tier manual, tier approval without an
    // approval) comes before the lease: such runs never wait for one. An escalation (protected)
    // observes first, as the full gate does.
    if let Start::Skipped(record) = Runner::start(
        P::FUNCTION,
        &request,
        None,
        &KillSwitchState::Disengaged,
        false,
        started,
    ) {
        if record.status == RecordStatus::Skipped {
            return Ok(*record);
        }
    }
    let key = playbook.pre_state_key(&request, &target);
    let lease = playbook.lease_key(&request, &target);
    let store = playbook.pre_state_store();
    let incident = request.decision.incident_id.clone();
    let taken = take_lease(store, &lease, &incident).await?;
    let result = run_leased(playbook, &request, &target, &key, &taken, started).await;
    let ending = ending_of(&request, &taken, &result);
    let ended = store
        .end_lease(&lease, &incident, P::FUNCTION, ending, Utc::now())
        .await;
    match (result, ended) {
        (Ok(mut record), Ok(contained_by)) => {
            record.contained_by = contained_by.filter(|_| ending == Ending::Contained);
            record.into_result()
        }
        // Nothing changed the holding: the lease expires by itself.
        (Ok(record), Err(e)) if ending == Ending::Unchanged => {
            tracing::warn!(resource = %lease.as_str(), error = %e, "could not give the lease back");
            record.into_result()
        }
        (Ok(record), Err(e)) => Err(lease_not_recorded(record, &lease, e)),
        (Err(e), _) => Err(e),
    }
}

/// Takes the lease of the resource at `key`, or says who holds it.
async fn take_lease(
    store: &PreStateStore,
    key: &PreStateKey,
    incident: &str,
) -> Result<Taken, ContainmentError> {
    match store.take_lease(key, incident, Utc::now()).await {
        Ok(Ok(taken)) => {
            if let Some(previous) = &taken.took_over {
                tracing::warn!(resource = %key.as_str(), previous = %previous, "took over an expired lease");
            }
            Ok(taken)
        }
        Ok(Err(busy)) => Err(ContainmentError::Busy {
            resource: key.as_str().to_string(),
            owner: busy.owner,
            until: busy.until,
        }),
        Err(e) => Err(ContainmentError::read("resource lease", e.to_string())),
    }
}

/// What the run did to the resource's holding.
fn ending_of(
    request: &ContainmentRequest,
    taken: &Taken,
    result: &Result<ContainmentRecord, ContainmentError>,
) -> Ending {
    let Ok(record) = result else {
        return Ending::Unchanged;
    };
    if record.dry_run || record.status != RecordStatus::Completed || record.failed_step.is_some() {
        return Ending::Unchanged;
    }
    match request.mode {
        Mode::Contain => Ending::Contained,
        Mode::Release if others_holding(taken, &request.decision.incident_id).is_empty() => {
            Ending::Restored
        }
        Mode::Release => Ending::Kept,
    }
}

/// The other incidents whose completed containment holds the resource.
fn others_holding<'a>(taken: &'a Taken, incident: &str) -> Vec<&'a str> {
    taken
        .holders
        .iter()
        .map(String::as_str)
        .filter(|h| *h != incident)
        .collect()
}

/// A completed run whose holding could not be written: failed, with the record of what it did,
/// so the failure notification says it (the lease expires by itself).
fn lease_not_recorded(
    mut record: ContainmentRecord,
    key: &PreStateKey,
    e: crate::prestate::PreStateError,
) -> ContainmentError {
    const STEP: &str = "record-holding";
    record.steps.push(crate::audit::StepRecord {
        step: STEP.into(),
        api_call: Some(crate::prestate::UPDATE.action.into()),
        target: Some(crate::lease::key(key)),
        outcome: crate::audit::Outcome::Failed,
        detail: Some(e.to_string()),
        at: Utc::now(),
    });
    record.status = RecordStatus::Partial;
    record.failed_step = Some(STEP.into());
    record.error = Some(e.to_string());
    ContainmentError::Partial(Box::new(record))
}

/// [`run`] once the lease is held: observe, gate, pre-state, steps.
async fn run_leased<P: Playbook>(
    playbook: &P,
    request: &ContainmentRequest,
    target: &P::Target,
    key: &PreStateKey,
    taken: &Taken,
    started: chrono::DateTime<Utc>,
) -> Result<ContainmentRecord, ContainmentError> {
    let me = request.decision.incident_id.as_str();
    let observed = playbook.observe(target).await?;
    if let Some(reason) = playbook.never_touch(target, &observed) {
        return Ok(Runner::skipped(P::FUNCTION, request, reason, started));
    }
    let tags = playbook.live_tags(&observed);
    let (mut runner, dry_run) =
        match Runner::begin(P::FUNCTION, request, tags, playbook.safety(), started).await {
            Start::Skipped(record) => return Ok(*record),
            Start::Run { runner, reason } => (runner, reason),
        };
    let others = others_holding(taken, me);
    if request.mode == Mode::Release && !others.is_empty() {
        keep_contained(&mut runner, key, &others);
        return Ok(runner.finish(
            request.mode,
            started,
            serde_json::Value::Null,
            Ok(()),
            dry_run,
        ));
    }
    let now = playbook.observed_pre_state(target, &observed);
    let store = playbook.pre_state_store();
    let (pre, result) = match request.mode {
        Mode::Contain => match store.record_step(&mut runner, key, now).await {
            Ok(pre) => {
                let result = playbook
                    .contain(&mut runner, request, target, &observed, &pre)
                    .await;
                if result.is_ok() {
                    joined(&mut runner, key, taken, me);
                }
                (Some(pre), result)
            }
            Err(failed) => (None, Err(failed)),
        },
        Mode::Release => {
            let previous = request.previous.as_ref().map(|p| &p.pre_state);
            let pre = store
                .for_release(key, previous, now)
                .await
                .map_err(|e| ContainmentError::read("pre-state", e.to_string()))?;
            let mut result = playbook
                .release(&mut runner, request, target, &observed, &pre)
                .await;
            if result.is_ok() {
                result = store.release_step(&mut runner, key).await;
            }
            (Some(pre), result)
        }
    };
    let pre = serde_json::to_value(&pre).unwrap_or(serde_json::Value::Null);
    Ok(runner.finish(request.mode, started, pre, result, dry_run))
}

/// `live`, or `dry_run` when the runner only plans.
fn planned_or(runner: &Runner, live: crate::audit::Outcome) -> crate::audit::Outcome {
    if runner.dry_run {
        crate::audit::Outcome::DryRun
    } else {
        live
    }
}

/// Step `keep-containment`: a release while other incidents' containment holds the resource
/// restores nothing; it only ends this incident's hold.
fn keep_contained(runner: &mut Runner, key: &PreStateKey, others: &[&str]) {
    let outcome = planned_or(runner, crate::audit::Outcome::Skipped);
    runner.trail.record(
        crate::lease::KEEP_STEP,
        None,
        Some(key.as_str()),
        outcome,
        Some(format!(
            "kept contained: incident(s) {} still rely on this containment; it is restored \
             when the last of them is released",
            others.join(", ")
        )),
    );
}

/// Step `join-containment`: the resource was already contained by another incident, whose
/// containment this one re-checked step by step and now shares.
fn joined(runner: &mut Runner, key: &PreStateKey, taken: &Taken, me: &str) {
    let Some(by) = taken.contained_by.as_ref().filter(|c| c.incident_id != me) else {
        return;
    };
    let outcome = planned_or(runner, crate::audit::Outcome::AlreadyDone);
    runner.trail.record(
        crate::lease::JOIN_STEP,
        None,
        Some(key.as_str()),
        outcome,
        Some(format!(
            "already contained by incident {} ({}, {}); every step re-checked (each says what \
             it found), this incident shares that containment",
            by.incident_id, by.function, by.at
        )),
    );
}

/// A playbook that can be pointed at another account and Region: the same settings, with the
/// clients that touch the resource built from `sdk` (kill switch and pre-state stay where they
/// are).
pub trait Relocatable: Playbook + Sized {
    fn relocated(&self, sdk: &aws_config::SdkConfig) -> Self;
}

/// [`run`] where the request's resource lives: its Region, and its account through the member
/// role ([`crate::member`]). A place that cannot be reached is a typed error before any call
/// on the resource.
pub async fn run_where_it_lives<P: Relocatable>(
    playbook: &P,
    reach: &crate::member::Reach,
    request: ContainmentRequest,
) -> Result<ContainmentRecord, ContainmentError> {
    let place = crate::member::Place::of(&request.decision.incident)?;
    let sdk = reach.sdk_for(&place, &request.decision.incident_id).await?;
    run(&playbook.relocated(&sdk), request).await
}
