//! The gate table (DynamoDB, key `incident_id`): one item per incident holding the paused
//! execution's task token, plus one item per webhook delivery (`delivery#<id>`: `processing`
//! under a lease, then `done` with its result) so that a delivery acts once however often Jira
//! sends it. Items expire through the table's TTL attribute `expires_at`.
//!
//! The task token is only ever read back by [`GateStore::claim`], which also moves the gate out
//! of `pending` in the same conditional write, so one token is used at most once.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::permissions::{resource::APPROVALS_TABLE, Permission};

const PUT: Permission = Permission::new("dynamodb:PutItem", APPROVALS_TABLE);
const GET: Permission = Permission::new("dynamodb:GetItem", APPROVALS_TABLE);
const UPDATE: Permission = Permission::new("dynamodb:UpdateItem", APPROVALS_TABLE);
const DELETE: Permission = Permission::new("dynamodb:DeleteItem", APPROVALS_TABLE);
/// What [`GateStore::register`] needs (ir-notify).
pub const REGISTER_PERMISSIONS: &[Permission] = &[PUT];
/// What claiming a gate and the delivery replay store need (ir-approve).
pub const ANSWER_PERMISSIONS: &[Permission] = &[GET, PUT, UPDATE, DELETE];

/// Gate status values stored in `status`.
pub const PENDING: &str = "pending";
/// Delivery states stored in `delivery_state`.
const PROCESSING: &str = "processing";
const DONE: &str = "done";

/// An analyst's decision, as one webhook delivery brings it.
#[derive(Debug, Clone, Copy)]
pub struct GateDecision<'a> {
    pub incident_id: &'a str,
    pub ticket_key: &'a str,
    /// `approved` or `rejected`.
    pub status: &'a str,
    /// The analyst's Jira account id.
    pub by: &'a str,
    /// The delivery that brought it (the key of its delivery record, the same for Jira's
    /// retries of it).
    pub delivery: &'a str,
    /// When Jira sent the delivery (its `timestamp`): a transition made before the gate asked
    /// for a review cannot answer it.
    pub sent: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// How far Jira's clock may run behind ours when comparing a transition with the request.
const CLOCK_SKEW_MS: i64 = 60_000;

/// A claimed gate's status while its decision is being applied.
pub fn claimed_status(verdict: &str) -> String {
    match verdict {
        "approved" => "approving".into(),
        "rejected" => "rejecting".into(),
        other => format!("{other}-claimed"),
    }
}

/// A claimed gate.
pub struct Claim {
    pub task_token: String,
    /// The gate was already claimed by this same delivery and its decision not yet applied (an
    /// earlier attempt failed, or stopped, after claiming): its resume call may have been made.
    pub retried: bool,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("task_token", &"***")
            .field("retried", &self.retried)
            .finish()
    }
}

/// What the delivery record says about a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// First seen now (or taken over from an attempt that died): process it.
    New,
    /// Processed before, with this result.
    Done(String),
    /// Another attempt is processing it now.
    InProgress,
}

/// A gate waiting for an analyst.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingGate {
    pub incident_id: String,
    /// The Step Functions task token (never logged, never sent to Jira).
    pub task_token: String,
    /// The Jira issue the analyst transitions.
    pub ticket_key: String,
    pub execution: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// When the state machine gives up waiting (the ReviewGate timeout).
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for PendingGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingGate")
            .field("incident_id", &self.incident_id)
            .field("task_token", &"***")
            .field("ticket_key", &self.ticket_key)
            .field("execution", &self.execution)
            .field("requested_at", &self.requested_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no pending review for incident {incident_id} on ticket {ticket_key} asked before this transition")]
    NotPending {
        incident_id: String,
        ticket_key: String,
    },
    /// Another delivery claimed the gate and its decision is not applied yet.
    #[error("another decision on incident {0} is being applied")]
    Busy(String),
    /// This delivery's decision was applied already.
    #[error("this decision on incident {0} was already applied")]
    Applied(String),
    #[error("gate table unavailable: {0}")]
    Unavailable(String),
}

fn unavailable<E: std::error::Error>(e: E) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

#[derive(Debug, Clone)]
pub struct GateStore {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl GateStore {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        GateStore {
            ddb,
            table: table.into(),
        }
    }

    /// Stores (or replaces) the incident's pending gate. A later execution for the same
    /// incident supersedes an older token, which then simply times out.
    pub async fn register(&self, gate: &PendingGate) -> Result<(), StoreError> {
        let mut put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("incident_id", s(&gate.incident_id))
            .item("status", s(PENDING))
            .item("task_token", s(&gate.task_token))
            .item("ticket_key", s(&gate.ticket_key))
            .item("requested_at", s(gate.requested_at.to_rfc3339()))
            .item("requested_ms", n(gate.requested_at.timestamp_millis()))
            .item("expires_at", n(gate.expires_at.timestamp()));
        if let Some(exec) = &gate.execution {
            put = put.item("execution", s(exec));
        }
        put.send().await.map_err(unavailable)?;
        Ok(())
    }

    /// Claims the pending gate for one decision in one conditional write and returns its task
    /// token: the gate moves to `approving`/`rejecting` ([`claimed_status`]) and names the
    /// delivery. Only a pending gate of this ticket, not expired, asked before the transition
    /// was made, can be claimed, or one this same delivery claimed and did not apply
    /// ([`Claim::retried`]: Jira's retry after a failure). Otherwise: `Busy` while another
    /// delivery's decision is being applied, `Applied` when this one's was, else `NotPending`.
    pub async fn claim(&self, decision: &GateDecision<'_>) -> Result<Claim, StoreError> {
        let claimed = claimed_status(decision.status);
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("incident_id", s(decision.incident_id))
            .update_expression(
                "SET #st = :claimed, decided_by = :by, decided_at = :at, decided_delivery = :delivery",
            )
            .condition_expression(
                "ticket_key = :ticket AND expires_at > :now \
                 AND (attribute_not_exists(requested_ms) OR requested_ms <= :sent) \
                 AND (#st = :pending OR (#st = :claimed AND decided_delivery = :delivery))",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":claimed", s(&claimed))
            .expression_attribute_values(":by", s(decision.by))
            .expression_attribute_values(":at", s(decision.at.to_rfc3339()))
            .expression_attribute_values(":delivery", s(decision.delivery))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":ticket", s(decision.ticket_key))
            .expression_attribute_values(":now", n(decision.at.timestamp()))
            .expression_attribute_values(
                ":sent",
                n(decision.sent.timestamp_millis() + CLOCK_SKEW_MS),
            )
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match out {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                let task_token = get_s(&old, "task_token").ok_or_else(|| {
                    StoreError::Unavailable("claimed gate has no task token".into())
                })?;
                Ok(Claim {
                    task_token,
                    retried: get_s(&old, "status").as_deref() != Some(PENDING),
                })
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(self.why_not_claimed(decision).await)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn why_not_claimed(&self, decision: &GateDecision<'_>) -> StoreError {
        let item = match self.item(decision.incident_id).await {
            Ok(item) => item.unwrap_or_default(),
            Err(e) => return e,
        };
        let status = get_s(&item, "status").unwrap_or_default();
        let mine = get_s(&item, "decided_delivery").as_deref() == Some(decision.delivery);
        let same_ticket = get_s(&item, "ticket_key").as_deref() == Some(decision.ticket_key);
        if mine && status == decision.status {
            StoreError::Applied(decision.incident_id.into())
        } else if same_ticket
            && !mine
            && (status == claimed_status("approved") || status == claimed_status("rejected"))
        {
            StoreError::Busy(decision.incident_id.into())
        } else {
            StoreError::NotPending {
                incident_id: decision.incident_id.into(),
                ticket_key: decision.ticket_key.into(),
            }
        }
    }

    async fn item(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("incident_id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Ends the decision `delivery` claimed: the gate's final status (`approved`/`rejected`
    /// once the execution was resumed, `expired` when Step Functions no longer knew the token).
    /// Only the claim of that delivery is changed; a gate registered since is left alone.
    pub async fn settle(
        &self,
        incident_id: &str,
        delivery: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("incident_id", s(incident_id))
            .update_expression("SET #st = :to")
            .condition_expression("decided_delivery = :delivery")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":to", s(status))
            .expression_attribute_values(":delivery", s(delivery))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The gate's status, if there is a gate for the incident.
    pub async fn status(&self, incident_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .item(incident_id)
            .await?
            .as_ref()
            .and_then(|i| get_s(i, "status")))
    }

    /// Starts processing a webhook delivery: records `delivery#<id>` as `processing` until
    /// `lease_until`, unless it is already recorded. A delivery whose processing finished is
    /// [`Delivery::Done`] with its result; one still being processed (its lease has not run out)
    /// is [`Delivery::InProgress`]; one whose lease ran out (the function died) is taken over.
    pub async fn begin_delivery(
        &self,
        delivery_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        let key = format!("delivery#{delivery_id}");
        let out = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("incident_id", s(&key))
            .item("delivery_state", s(PROCESSING))
            .item("lease_until", n(lease_until.timestamp()))
            .item("expires_at", n(keep_until.timestamp()))
            .condition_expression(
                "attribute_not_exists(incident_id) OR \
                 (delivery_state = :processing AND lease_until < :now)",
            )
            .expression_attribute_values(":processing", s(PROCESSING))
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(Delivery::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                self.recorded_delivery(&key).await
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn recorded_delivery(&self, key: &str) -> Result<Delivery, StoreError> {
        let Some(item) = self.item(key).await? else {
            // Forgotten between the two calls: the other attempt failed; Jira retries.
            return Ok(Delivery::InProgress);
        };
        Ok(match get_s(&item, "delivery_state").as_deref() {
            Some(PROCESSING) => Delivery::InProgress,
            // Records written before delivery states existed were finished deliveries.
            _ => Delivery::Done(get_s(&item, "result").unwrap_or_else(|| "processed".into())),
        })
    }

    /// Records the final result of a delivery, so a repeat of it is answered as a duplicate.
    pub async fn finish_delivery(&self, delivery_id: &str, result: &str) -> Result<(), StoreError> {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("incident_id", s(format!("delivery#{delivery_id}")))
            .update_expression("SET delivery_state = :done, #result = :result")
            .condition_expression("attribute_exists(incident_id)")
            .expression_attribute_names("#result", "result")
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":result", s(result))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Forgets a delivery (its processing failed transiently, so Jira's retry must be accepted).
    pub async fn forget_delivery(&self, delivery_id: &str) -> Result<(), StoreError> {
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("incident_id", s(format!("delivery#{delivery_id}")))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
