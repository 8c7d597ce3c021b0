//! One response per resource at a time, and one containment shared by every incident about it.
//!
//! GuardDuty and Security Hub often raise several findings for one instance within seconds, and
//! each is an incident of its own. Without a lease their playbooks would run at once on the same
//! resource (two ENI swaps, two pre-states read half-way through the other's change). So before
//! a playbook observes the resource, [`run`](crate::playbook::run) takes the resource's lease: a
//! conditional write with an expiry, keyed `lease/<account>/<region>/<resource>` in the pre-state
//! table (which only the IR functions write).
//!
//! - Free (or held by this incident already: a retried invocation; or expired: its holder died
//!   and its own retries gave up) → this run proceeds.
//! - Held by another incident → [`ContainmentError::Busy`](crate::actions::ContainmentError)
//!   (`ResourceBusy`), which the state machine retries with backoff until the holder is done.
//!   The next run then re-observes the resource and re-applies every step (each finds it already
//!   done, unless someone undid it meanwhile), and its record names the incident whose
//!   containment it joined ([`ContainedBy`]).
//!
//! The item also lists the incidents whose live containment completed (`holders`). A release
//! only restores the resource when it is the last holder's: releasing one false positive never
//! lifts the containment another incident still relies on.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::prestate::{PreStateError, PreStateKey, PreStateStore};

/// The step a release records when other incidents still hold the containment.
pub const KEEP_STEP: &str = "keep-containment";
/// The step a containment records when it joined another incident's.
pub const JOIN_STEP: &str = "join-containment";

/// Whether a release in `records` left the containment in place for other incidents.
pub fn kept_for_others(records: &[crate::actions::ContainmentRecord]) -> bool {
    records
        .iter()
        .any(|r| r.steps.iter().any(|s| s.step == KEEP_STEP))
}

/// How long a lease lasts: above the containment functions' Lambda timeout (300 s, see
/// `infra/main.tf`), so a live run is never taken over; a run that died is taken over after it.
pub const LEASE_SECONDS: i64 = 330;

/// The incident whose completed containment holds the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainedBy {
    pub incident_id: String,
    pub function: String,
    /// When that containment completed.
    pub at: String,
}

/// What the lease item said when this run took it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// The containment already in place, if any (another incident's or this one's).
    pub contained_by: Option<ContainedBy>,
    /// Incidents whose completed containment relies on the resource staying contained.
    pub holders: Vec<String>,
    /// The holder of an expired lease this run took over (it died mid-run).
    pub took_over: Option<String>,
}

/// Another incident's run holds the resource now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub owner: String,
    pub until: i64,
}

/// How a run ends, for the lease item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A live containment completed: this incident holds the resource contained.
    Contained,
    /// A release restored the resource: nobody holds it any more.
    Restored,
    /// A release left the resource contained for the other holders.
    Kept,
    /// Nothing changed the holding (dry-run, skipped, failed part-way).
    Unchanged,
}

/// The lease key of a pre-state key.
pub fn key(pre_state: &PreStateKey) -> String {
    format!("lease/{}", pre_state.as_str())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn contained_by(item: &HashMap<String, AttributeValue>) -> Option<ContainedBy> {
    Some(ContainedBy {
        incident_id: text(item, "contained_by")?,
        function: text(item, "contained_function").unwrap_or_default(),
        at: text(item, "contained_at").unwrap_or_default(),
    })
}

fn holders(item: &HashMap<String, AttributeValue>) -> Vec<String> {
    let mut h = item
        .get("holders")
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    h.sort();
    h
}

fn until(item: &HashMap<String, AttributeValue>) -> i64 {
    item.get("lease_until")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl PreStateStore {
    /// Takes the lease of `pre_state`'s resource for `incident_id` at `now`.
    pub async fn take_lease(
        &self,
        pre_state: &PreStateKey,
        incident_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Taken, Busy>, PreStateError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("resource", s(&key(pre_state)))
            .update_expression("SET #o = :me, lease_until = :until, leased_at = :at")
            .condition_expression("attribute_not_exists(#o) OR #o = :me OR lease_until < :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(incident_id))
            .expression_attribute_values(
                ":until",
                AttributeValue::N((now.timestamp() + LEASE_SECONDS).to_string()),
            )
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":at", s(&now.to_rfc3339()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(out) => {
                let old = out.attributes().cloned().unwrap_or_default();
                let previous = text(&old, "owner").filter(|o| o != incident_id);
                Ok(Ok(Taken {
                    contained_by: contained_by(&old),
                    holders: holders(&old),
                    took_over: previous,
                }))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let item = c.item().cloned().unwrap_or_default();
                    Ok(Err(Busy {
                        owner: text(&item, "owner").unwrap_or_else(|| "another incident".into()),
                        until: until(&item),
                    }))
                }
                _ => Err(crate::prestate::unavailable(e)),
            },
        }
    }

    /// Gives the lease back, recording how the run ended. Returns the containment in place
    /// afterwards. A lease this run no longer owns (taken over after expiry) is left alone.
    pub async fn end_lease(
        &self,
        pre_state: &PreStateKey,
        incident_id: &str,
        function: &str,
        ending: Ending,
        now: DateTime<Utc>,
    ) -> Result<Option<ContainedBy>, PreStateError> {
        let me = AttributeValue::Ss(vec![incident_id.to_string()]);
        let update = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("resource", s(&key(pre_state)))
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(incident_id))
            .return_values(ReturnValue::AllNew);
        let update = match ending {
            Ending::Contained => update
                .update_expression(
                    "SET contained_by = if_not_exists(contained_by, :me), \
                     contained_function = if_not_exists(contained_function, :f), \
                     contained_at = if_not_exists(contained_at, :at) \
                     ADD holders :set REMOVE #o, lease_until",
                )
                .expression_attribute_values(":f", s(function))
                .expression_attribute_values(":at", s(&now.to_rfc3339()))
                .expression_attribute_values(":set", me),
            Ending::Restored => update.update_expression(
                "REMOVE #o, lease_until, contained_by, contained_function, contained_at, holders",
            ),
            Ending::Kept => update
                .update_expression("DELETE holders :set REMOVE #o, lease_until")
                .expression_attribute_values(":set", me),
            Ending::Unchanged => update.update_expression("REMOVE #o, lease_until"),
        };
        match update.send().await {
            Ok(out) => Ok(out.attributes().and_then(contained_by)),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                tracing::warn!(resource = %pre_state.as_str(), incident_id, "lease was taken over before this run ended");
                Ok(None)
            }
            Err(e) => Err(crate::prestate::unavailable(e)),
        }
    }
}
