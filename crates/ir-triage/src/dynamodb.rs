//! The incidents table as ir-triage's idempotency record: one conditional `UpdateItem` per
//! incident decides new, escalated or duplicate, and repeats are counted on it.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Duration, Utc};
use ir_core::{Incident, Tier};

use crate::TriageError;

/// The dedupe record's conditional update.
pub(crate) const UPDATE_INCIDENT: ir_core::permissions::Permission =
    ir_core::permissions::Permission::new(
        "dynamodb:UpdateItem",
        ir_core::permissions::resource::INCIDENTS_TABLE,
    );

/// How a repeat of an incident compares with what was recorded before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeOutcome {
    /// First time inside the window.
    New,
    /// Seen before, but this response is stronger (live after dry-run, or a higher tier).
    Escalated { previous_rank: i64 },
    /// Seen before at an equal or stronger response.
    Duplicate,
}

/// Ranks a response so a repeat proceeds only when it escalates: a live response outranks any
/// dry run; within each, a more autonomous tier outranks a less autonomous one.
pub fn response_rank(tier: Tier, dry_run: bool) -> i64 {
    let tier_rank = match tier {
        Tier::Manual => 1,
        Tier::Approval => 2,
        Tier::Auto => 3,
    };
    if dry_run {
        tier_rank
    } else {
        10 + tier_rank
    }
}

/// The incidents table, used as an idempotency record: one conditional write per incident.
#[derive(Debug, Clone)]
pub struct DedupeStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DedupeStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DedupeStore {
            client,
            table: table.into(),
        }
    }

    /// Records the incident unless it is already recorded, unexpired, at an equal or higher
    /// response rank. One `UpdateItem` with a condition: atomic under concurrent deliveries.
    pub async fn record(
        &self,
        incident: &Incident,
        tier: Tier,
        dry_run: bool,
        now: DateTime<Utc>,
        window_hours: u32,
    ) -> Result<DedupeOutcome, TriageError> {
        let rank = response_rank(tier, dry_run);
        let expires_at = now + Duration::hours(i64::from(window_hours));
        let s = |v: &str| AttributeValue::S(v.to_string());
        let n = |v: i64| AttributeValue::N(v.to_string());
        let values: HashMap<String, AttributeValue> = [
            (":now", n(now.timestamp())),
            (":now_iso", s(&now.to_rfc3339())),
            (":exp", n(expires_at.timestamp())),
            (":rank", n(rank)),
            (":one", n(1)),
            (":fk", s(&incident.finding_key)),
            (":ft", s(&incident.finding_type)),
            (":tier", s(&tier.to_string())),
            (":dry", AttributeValue::Bool(dry_run)),
            (":sev", s(&incident.severity.label.to_string())),
            (":occ", n(occurrences(incident))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("incident_id", s(&incident.incident_id))
            .update_expression(
                "SET finding_key = :fk, finding_type = :ft, severity = :sev, tier = :tier, \
                 dry_run = :dry, response_rank = :rank, expires_at = :exp, \
                 last_triaged_at = :now_iso, #occ = :occ, \
                 first_triaged_at = if_not_exists(first_triaged_at, :now_iso) \
                 ADD triage_count :one",
            )
            .condition_expression(
                "attribute_not_exists(incident_id) OR expires_at < :now OR response_rank < :rank",
            )
            .set_expression_attribute_values(Some(values))
            .expression_attribute_names("#occ", "occurrences")
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .await;
        match result {
            Ok(out) => {
                let previous = out
                    .attributes()
                    .and_then(|a| a.get("response_rank"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok());
                let expired = out
                    .attributes()
                    .and_then(|a| a.get("expires_at"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|e| e < now.timestamp());
                Ok(match previous {
                    Some(p) if !expired => DedupeOutcome::Escalated { previous_rank: p },
                    _ => DedupeOutcome::New,
                })
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    self.count_repeat(incident, now).await;
                    Ok(DedupeOutcome::Duplicate)
                }
                _ => Err(TriageError::Dedupe {
                    table: self.table.clone(),
                    message: aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string(),
                }),
            },
        }
    }

    /// Best effort: counts a suppressed repeat on the record (never fails the triage), and keeps
    /// the highest occurrence count the finding reported (GuardDuty re-publishes a finding as it
    /// recurs; copies can arrive out of order).
    async fn count_repeat(&self, incident: &Incident, now: DateTime<Utc>) {
        let mut result = self
            .repeat(incident, now, Some(occurrences(incident)))
            .await;
        if conditional(&result) {
            // An older copy (fewer occurrences): count it without lowering the figure.
            result = self.repeat(incident, now, None).await;
        }
        if let Err(e) = &result {
            if !conditional(&result) {
                tracing::warn!(incident_id = %incident.incident_id, error = %aws_sdk_dynamodb::error::DisplayErrorContext(e), "could not count repeat");
            }
        }
    }

    /// One counted repeat; with `occurrences`, only if that is no lower than the recorded one.
    async fn repeat(
        &self,
        incident: &Incident,
        now: DateTime<Utc>,
        occurrences: Option<i64>,
    ) -> Result<(), aws_sdk_dynamodb::error::SdkError<UpdateItemError>> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                "incident_id",
                AttributeValue::S(incident.incident_id.clone()),
            )
            .expression_attribute_values(":t", AttributeValue::S(now.to_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        let update = match occurrences {
            Some(o) => update
                .update_expression("SET last_repeat_at = :t, #occ = :occ ADD repeat_count :one")
                .condition_expression(
                    "attribute_exists(incident_id) AND \
                     (attribute_not_exists(#occ) OR #occ <= :occ)",
                )
                .expression_attribute_names("#occ", "occurrences")
                .expression_attribute_values(":occ", AttributeValue::N(o.to_string())),
            None => update
                .update_expression("SET last_repeat_at = :t ADD repeat_count :one")
                .condition_expression("attribute_exists(incident_id)"),
        };
        update.send().await.map(|_| ())
    }
}

/// The finding's own occurrence count (GuardDuty `service.count`), as recorded.
fn occurrences(incident: &Incident) -> i64 {
    i64::try_from(incident.occurrences).unwrap_or(i64::MAX)
}

/// The update's condition did not hold.
fn conditional(result: &Result<(), aws_sdk_dynamodb::error::SdkError<UpdateItemError>>) -> bool {
    matches!(
        result.as_ref().map_err(|e| e.as_service_error()),
        Err(Some(UpdateItemError::ConditionalCheckFailedException(_)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_outranks_dry_run_and_tiers_order() {
        assert!(response_rank(Tier::Manual, false) > response_rank(Tier::Auto, true));
        assert!(response_rank(Tier::Auto, false) > response_rank(Tier::Approval, false));
        assert!(response_rank(Tier::Approval, true) > response_rank(Tier::Manual, true));
    }
}
