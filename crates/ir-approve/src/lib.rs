//! ir-approve: the human review gate's webhook.
//!
//! The state machine pauses at `ReviewGate` (`waitForTaskToken`); ir-notify stores the task token
//! in the gate table ([`GateStore::register`]) and tells the Jira ticket that approval is
//! pending. When an analyst moves the ticket to the approve or reject status, Jira calls this
//! function's URL. In order, the webhook is:
//!
//! 1. verified: HMAC-SHA256 of the raw body with the Jira webhook secret (`X-Hub-Signature`) →
//!    401 when missing or wrong;
//! 2. parsed → 400 when it is not a Jira webhook;
//! 3. checked for age: `timestamp` older than `IR_WEBHOOK_MAX_AGE_SECONDS`, or for a delivery
//!    Jira marks as a retry (`X-Atlassian-Webhook-Retry`) older than
//!    `IR_WEBHOOK_RETRY_WINDOW_SECONDS`, or in the future → 401 `stale`;
//! 4. ignored (202) unless it is a `jira:issue_updated` delivery of a workflow transition
//!    (`issue_event_type_name` in `IR_JIRA_TRANSITION_EVENTS`) to the approve or reject status,
//!    on a ticket labelled with an incident id;
//! 5. checked against the allowed approvers (`IR_APPROVERS`, Jira account ids) → 403;
//! 6. checked against the delivery record, keyed by SHA-256 of the signed body (Jira's retries
//!    repeat it; the identifier and retry headers are not signed): a delivery already answered
//!    → 200 `duplicate` (Jira stops retrying, nothing is done again); one another attempt is
//!    processing now → 409 `in_progress` (Jira retries later);
//! 7. applied: the pending gate, asked before the transition was made, is claimed in one
//!    conditional write (`approving`/`rejecting`; → 409 `in_progress` while another delivery's
//!    claim is being applied, 202 `not_pending` when nothing is pending for that incident and
//!    ticket), then `SendTaskSuccess` (approved: approver and time) or `SendTaskFailure` with
//!    error `ReviewRejected` (the state machine releases containment), and the gate is
//!    `approved`/`rejected`. A token Step Functions no longer knows (timed out) → 410,
//!    `expired`; a transient failure keeps the claim, forgets the delivery record and answers
//!    503, so that Jira's retry of that delivery resumes.
//!
//! Jira retries a delivery answered 408, 409, 425, 429 or 5xx, so every final outcome above is
//! answered with another status. The task token never appears in a response, a log line or the
//! ticket.

pub mod config;
pub mod sfn;
pub mod webhook;

use chrono::{DateTime, Duration, Utc};
use ir_core::audit::{AuditTrail, Outcome};
use ir_core::gate::{Delivery, GateDecision};
use ir_core::secrets::SecretStore;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use config::{parse_approvers, ApproveConfig};
pub use ir_core::gate::{self as store, GateStore, PendingGate, StoreError};

pub const FUNCTION_NAME: &str = "ir-approve";

/// Every AWS call this function makes. A task token names no resource ARN IAM can scope, so
/// the task callbacks are limited to this deployment's state machine's executions' activities
/// by the token itself (`*` is the only resource the actions support).
pub fn permissions() -> Vec<ir_core::permissions::Permission> {
    use ir_core::permissions::Permission;
    ir_core::permissions::union(&[
        ir_core::secrets::PERMISSIONS,
        ir_core::gate::ANSWER_PERMISSIONS,
        &[
            Permission::new("states:SendTaskSuccess", ir_core::permissions::ANY),
            Permission::new("states:SendTaskFailure", ir_core::permissions::ANY),
        ],
    ])
}
/// The error the state machine's ReviewGate Catch matches for a rejection.
pub const REJECTED_ERROR: &str = "ReviewRejected";

/// The review outcome, as sent to the state machine (SendTaskSuccess output, or the
/// SendTaskFailure cause).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub incident_id: String,
    /// `approved` or `rejected`.
    pub review: String,
    /// Jira account id of the analyst.
    pub approver: String,
    pub approver_name: Option<String>,
    pub ticket: String,
    pub decided_at: DateTime<Utc>,
}

/// One webhook delivery, as the HTTP front hands it over.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub signature: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    /// `X-Atlassian-Webhook-Retry`: how many times Jira has retried this delivery.
    pub retry: Option<&'a str>,
    pub body: &'a [u8],
}

/// The HTTP answer: a status code and a small JSON body (never the token).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

impl WebhookResponse {
    fn new(status: u16, result: &str, message: impl Into<String>) -> Self {
        WebhookResponse {
            status,
            body: json!({"result": result, "message": message.into()}),
        }
    }

    pub fn result(&self) -> &str {
        self.body["result"].as_str().unwrap_or_default()
    }
}

/// How long one attempt holds a delivery before Jira's retry may take it over: longer than the
/// function's timeout (60 s), so a live attempt is never overtaken.
const DELIVERY_LEASE_SECONDS: i64 = 90;

/// A review transition, as one delivery brings it.
struct Transition<'h> {
    approved: bool,
    incident_id: &'h str,
    ticket: &'h str,
    user: &'h webhook::JiraUser,
    account_id: &'h str,
}

impl Transition<'_> {
    fn verdict(&self) -> &'static str {
        if self.approved {
            "approved"
        } else {
            "rejected"
        }
    }
}

type Answer<T> = Result<T, WebhookResponse>;

/// The statuses Jira Cloud retries a delivery on (its webhook retry policy).
pub fn jira_retries(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429 | 500..=599)
}

pub struct Approver {
    pub store: GateStore,
    pub sfn: aws_sdk_sfn::Client,
    pub secrets: SecretStore,
    pub config: ApproveConfig,
}

impl Approver {
    pub async fn handle(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        self.handle_at(req, Utc::now()).await
    }

    pub async fn handle_at(&self, req: WebhookRequest<'_>, now: DateTime<Utc>) -> WebhookResponse {
        let resp = match self.decide(req, now).await {
            Ok(resp) | Err(resp) => resp,
        };
        tracing::info!(
            function = FUNCTION_NAME,
            status = resp.status,
            result = resp.result(),
            delivery = req.delivery_id.unwrap_or(""),
            retry = req.retry.unwrap_or(""),
            "webhook handled"
        );
        resp
    }

    async fn decide(&self, req: WebhookRequest<'_>, now: DateTime<Utc>) -> Answer<WebhookResponse> {
        self.verify(req).await?;
        let hook: webhook::JiraWebhook = serde_json::from_slice(req.body).map_err(|e| {
            WebhookResponse::new(400, "bad_request", format!("not a Jira webhook: {e}"))
        })?;
        let sent = self.check_age(&hook, req.retry, now)?;
        let transition = self.transition(&hook)?;
        let mut audit = AuditTrail::new(FUNCTION_NAME, transition.incident_id);
        self.check_approver(&transition, &mut audit)?;
        if req.delivery_id.is_none_or(|d| d.trim().is_empty()) {
            return Err(WebhookResponse::new(
                400,
                "bad_request",
                "no delivery identifier",
            ));
        }
        // Keyed by the signed body, which Jira's retries repeat: the identifier and retry
        // headers are not signed, so a copy under a new identifier is the same delivery.
        let delivery = webhook::delivery_key(req.body);
        self.begin(&delivery, sent, now).await?;
        let resp = self
            .apply(&transition, &delivery, sent, now, &mut audit)
            .await;
        if jira_retries(resp.status) {
            // Not an answer yet: Jira's retry of this delivery must be processed anew.
            let _ = self.store.forget_delivery(&delivery).await;
        } else if let Err(e) = self.store.finish_delivery(&delivery, resp.result()).await {
            tracing::warn!(error = %e, delivery, "the delivery's result was not recorded");
        }
        Ok(resp)
    }

    /// Step 1, the HMAC signature over the exact body.
    async fn verify(&self, req: WebhookRequest<'_>) -> Answer<()> {
        let secret = self
            .secrets
            .get(&self.config.webhook_secret)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "webhook secret unavailable");
                WebhookResponse::new(503, "unavailable", "webhook secret unavailable")
            })?;
        webhook::verify(secret.expose().as_bytes(), req.body, req.signature)
            .map_err(|e| WebhookResponse::new(401, "unauthorized", e.to_string()))
    }

    /// Step 3, the delivery's age: Jira's retries keep the first attempt's `timestamp`, so a
    /// retry may be as old as the retry window. Returns when it was sent.
    fn check_age(
        &self,
        hook: &webhook::JiraWebhook,
        retry: Option<&str>,
        now: DateTime<Utc>,
    ) -> Answer<DateTime<Utc>> {
        let sent = DateTime::<Utc>::from_timestamp_millis(hook.timestamp)
            .ok_or_else(|| WebhookResponse::new(400, "bad_request", "timestamp out of range"))?;
        let retried = retry
            .and_then(|r| r.trim().parse::<u32>().ok())
            .is_some_and(|n| n > 0);
        let window = if retried {
            self.config.retry_window_seconds
        } else {
            self.config.max_age_seconds
        };
        let age = now - sent;
        if age > Duration::seconds(window) || age < Duration::seconds(-60) {
            return Err(WebhookResponse::new(
                401,
                "stale",
                format!("delivery sent at {sent} is outside the accepted window"),
            ));
        }
        Ok(sent)
    }

    /// Step 4: only a workflow transition to the approve or reject status of an incident's ticket.
    fn transition<'h>(&self, hook: &'h webhook::JiraWebhook) -> Answer<Transition<'h>> {
        let ignored = |why: &str| WebhookResponse::new(202, "ignored", why);
        if !hook.is_transition(&self.config.transition_events) {
            return Err(ignored("not a workflow transition of an issue"));
        }
        let status = hook.new_status().unwrap_or_default();
        let approved = if status.eq_ignore_ascii_case(&self.config.approve_status) {
            true
        } else if status.eq_ignore_ascii_case(&self.config.reject_status) {
            false
        } else {
            return Err(ignored("not a review transition"));
        };
        let (Some(incident_id), Some(issue)) = (hook.incident_id(), hook.issue.as_ref()) else {
            return Err(ignored("the issue has no incident label"));
        };
        let Some(user) = hook.user.as_ref() else {
            return Err(WebhookResponse::new(
                403,
                "forbidden",
                "the delivery names no user",
            ));
        };
        Ok(Transition {
            approved,
            incident_id,
            ticket: &issue.key,
            user,
            account_id: user.account_id.as_deref().unwrap_or_default(),
        })
    }

    /// Step 5: the user is an allowed approver, by Jira account id.
    fn check_approver(&self, t: &Transition<'_>, audit: &mut AuditTrail) -> Answer<()> {
        let who = t.account_id;
        if !who.is_empty() && self.config.approvers.iter().any(|a| a == who) {
            return Ok(());
        }
        audit.record(
            "check-approver",
            None,
            Some(t.ticket),
            Outcome::Skipped,
            Some(format!("`{who}` is not an allowed approver")),
        );
        Err(WebhookResponse::new(
            403,
            "forbidden",
            format!("`{who}` may not review"),
        ))
    }

    /// Step 6, the delivery record: a delivery acts once, however often Jira sends it.
    async fn begin(&self, delivery: &str, sent: DateTime<Utc>, now: DateTime<Utc>) -> Answer<()> {
        // Kept past the last moment a retry of it would be accepted.
        let keep_until = sent + Duration::seconds(self.config.retry_window_seconds * 2);
        let lease_until = now + Duration::seconds(DELIVERY_LEASE_SECONDS);
        match self
            .store
            .begin_delivery(delivery, now, lease_until, keep_until)
            .await
        {
            Ok(Delivery::New) => Ok(()),
            Ok(Delivery::Done(result)) => Err(WebhookResponse {
                status: 200,
                body: json!({"result": "duplicate", "original": result,
                             "message": "delivery already processed; nothing done again"}),
            }),
            Ok(Delivery::InProgress) => Err(WebhookResponse::new(
                409,
                "in_progress",
                "another attempt of this delivery is being processed",
            )),
            Err(e) => Err(WebhookResponse::new(503, "unavailable", e.to_string())),
        }
    }

    /// Step 7: claim the pending gate and resume the execution.
    async fn apply(
        &self,
        t: &Transition<'_>,
        delivery: &str,
        sent: DateTime<Utc>,
        now: DateTime<Utc>,
        audit: &mut AuditTrail,
    ) -> WebhookResponse {
        let verdict = t.verdict();
        let decision = GateDecision {
            incident_id: t.incident_id,
            ticket_key: t.ticket,
            status: verdict,
            by: t.account_id,
            delivery,
            sent,
            at: now,
        };
        let claim = match self.store.claim(&decision).await {
            Ok(c) => c,
            Err(e @ StoreError::Busy(_)) => {
                return WebhookResponse::new(409, "in_progress", e.to_string())
            }
            Err(e @ StoreError::Applied(_)) => {
                return WebhookResponse::new(200, "duplicate", e.to_string())
            }
            Err(e @ StoreError::NotPending { .. }) => {
                return WebhookResponse::new(202, "not_pending", e.to_string())
            }
            Err(e) => return WebhookResponse::new(503, "unavailable", e.to_string()),
        };
        let review = Review {
            incident_id: t.incident_id.to_string(),
            review: verdict.to_string(),
            approver: t.account_id.to_string(),
            approver_name: t.user.display_name.clone(),
            ticket: t.ticket.to_string(),
            decided_at: now,
        };
        let review_json = serde_json::to_string(&review).unwrap_or_default();
        let sent = sfn::resume(&self.sfn, &claim.task_token, t.approved, &review_json).await;
        let (outcome, detail, final_status, resp) = match sent {
            Ok(()) => (
                Outcome::Succeeded,
                format!("{verdict} by {}", t.account_id),
                Some(verdict),
                WebhookResponse {
                    status: 200,
                    body: json!({"result": verdict, "incident_id": t.incident_id,
                                 "approver": t.account_id, "ticket": t.ticket}),
                },
            ),
            // This delivery claimed the gate before and its resume may have taken effect (the
            // answer was lost): the token being gone is most likely that resume; if the gate
            // timed out meanwhile instead, the state machine's timeout path has escalated.
            Err(e) if e.gone && claim.retried => (
                Outcome::AlreadyDone,
                format!(
                    "{verdict} by {}: the token is gone, so an earlier attempt's resume took \
                     effect or the gate timed out meanwhile: {}",
                    t.account_id, e.message
                ),
                Some(verdict),
                WebhookResponse::new(200, "duplicate", "the review was already applied"),
            ),
            Err(e) if e.gone => (
                Outcome::Failed,
                format!("review gate expired: {}", e.message),
                Some("expired"),
                WebhookResponse::new(410, "expired", "the review gate is no longer waiting"),
            ),
            // The claim stays this delivery's: Jira's retry of it resumes, others wait (409).
            Err(e) => (
                Outcome::Failed,
                e.message.clone(),
                None,
                WebhookResponse::new(503, "unavailable", e.message),
            ),
        };
        if let Some(status) = final_status {
            if let Err(e) = self.store.settle(t.incident_id, delivery, status).await {
                tracing::warn!(error = %e, status, "the gate's final status was not recorded");
            }
        }
        audit.record(
            "resume-execution",
            Some(sfn::action(t.approved)),
            Some(t.ticket),
            outcome,
            Some(detail),
        );
        resp
    }
}
