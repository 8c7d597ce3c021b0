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
//! 3. checked for age: `timestamp` older than `IR_WEBHOOK_MAX_AGE_SECONDS` (or in the future) →
//!    401;
//! 4. ignored (202) unless it is a transition to the approve or reject status on a ticket
//!    labelled with an incident id;
//! 5. checked against the allowed approvers (`IR_APPROVERS`, Jira account ids or emails) → 403;
//! 6. checked for replay: the delivery id (`X-Atlassian-Webhook-Identifier`) is recorded with a
//!    conditional write → 409 when seen before;
//! 7. applied: the pending gate is claimed in one conditional write (→ 409 when nothing is
//!    pending for that incident and ticket), then `SendTaskSuccess` (approved: approver and time)
//!    or `SendTaskFailure` with error `ReviewRejected` (the state machine releases containment).
//!    A token Step Functions no longer knows (timed out) → 410; a transient failure puts the gate
//!    back to pending and answers 503 so Jira's retry can succeed.
//!
//! The task token never appears in a response, a log line or the ticket.

pub mod webhook;

use chrono::{DateTime, Duration, Utc};
use ir_core::audit::{AuditTrail, Outcome};
use ir_core::config::{env_or, env_required};
use ir_core::secrets::{SecretRef, SecretStore};
use ir_core::ConfigError;
use serde::{Deserialize, Serialize};
use serde_json::json;

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

#[derive(Debug, Clone, PartialEq)]
pub struct ApproveConfig {
    /// `IR_APPROVALS_TABLE` (required).
    pub table: String,
    /// `IR_JIRA_WEBHOOK_SECRET` (required): `secretsmanager:<id>` or `ssm:<name>`.
    pub webhook_secret: SecretRef,
    /// `IR_JIRA_APPROVE_STATUS` (default `Approved`).
    pub approve_status: String,
    /// `IR_JIRA_REJECT_STATUS` (default `Rejected`).
    pub reject_status: String,
    /// `IR_APPROVERS` (required): comma-separated Jira account ids or email addresses.
    pub approvers: Vec<String>,
    /// `IR_WEBHOOK_MAX_AGE_SECONDS` (default 300).
    pub max_age_seconds: i64,
}

impl ApproveConfig {
    pub fn from_env() -> Result<ApproveConfig, ConfigError> {
        let webhook_secret = SecretRef::from_env("IR_JIRA_WEBHOOK_SECRET")?
            .ok_or(ConfigError::Missing("IR_JIRA_WEBHOOK_SECRET"))?;
        let approvers = parse_approvers(&env_required("IR_APPROVERS")?);
        if approvers.is_empty() {
            return Err(ConfigError::Missing("IR_APPROVERS"));
        }
        let max_age = env_or("IR_WEBHOOK_MAX_AGE_SECONDS", "300");
        let max_age_seconds = max_age
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| ConfigError::Invalid {
                name: "IR_WEBHOOK_MAX_AGE_SECONDS",
                value: max_age.clone(),
                message: "expected a positive number of seconds".into(),
            })?;
        Ok(ApproveConfig {
            table: env_required("IR_APPROVALS_TABLE")?,
            webhook_secret,
            approve_status: env_or("IR_JIRA_APPROVE_STATUS", "Approved"),
            reject_status: env_or("IR_JIRA_REJECT_STATUS", "Rejected"),
            approvers,
            max_age_seconds,
        })
    }
}

pub fn parse_approvers(list: &str) -> Vec<String> {
    ir_core::config::csv_list(list)
}

/// The review outcome, as sent to the state machine (SendTaskSuccess output, or the
/// SendTaskFailure cause).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub incident_id: String,
    /// `approved` or `rejected`.
    pub review: String,
    /// Jira account id (or email) of the analyst.
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
        let resp = self.decide(req, now).await;
        tracing::info!(
            function = FUNCTION_NAME,
            status = resp.status,
            result = resp.result(),
            delivery = req.delivery_id.unwrap_or(""),
            "webhook handled"
        );
        resp
    }

    async fn decide(&self, req: WebhookRequest<'_>, now: DateTime<Utc>) -> WebhookResponse {
        // 1. signature
        let secret = match self.secrets.get(&self.config.webhook_secret).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "webhook secret unavailable");
                return WebhookResponse::new(503, "unavailable", "webhook secret unavailable");
            }
        };
        if let Err(e) = webhook::verify(secret.expose().as_bytes(), req.body, req.signature) {
            return WebhookResponse::new(401, "unauthorized", e.to_string());
        }
        // 2. parse
        let hook: webhook::JiraWebhook = match serde_json::from_slice(req.body) {
            Ok(h) => h,
            Err(e) => {
                return WebhookResponse::new(400, "bad_request", format!("not a Jira webhook: {e}"))
            }
        };
        // 3. age
        let Some(sent) = DateTime::<Utc>::from_timestamp_millis(hook.timestamp) else {
            return WebhookResponse::new(400, "bad_request", "timestamp out of range");
        };
        let age = now - sent;
        if age > Duration::seconds(self.config.max_age_seconds) || age < Duration::seconds(-60) {
            return WebhookResponse::new(
                401,
                "stale",
                format!("delivery sent at {sent} is outside the accepted window"),
            );
        }
        // 4. relevance
        let status = hook.new_status().unwrap_or_default();
        let approved = if status.eq_ignore_ascii_case(&self.config.approve_status) {
            true
        } else if status.eq_ignore_ascii_case(&self.config.reject_status) {
            false
        } else {
            return WebhookResponse::new(202, "ignored", "not a review transition");
        };
        let (Some(incident_id), Some(issue)) = (hook.incident_id(), hook.issue.as_ref()) else {
            return WebhookResponse::new(202, "ignored", "the issue has no incident label");
        };
        let mut audit = AuditTrail::new(FUNCTION_NAME, incident_id);
        // 5. approver
        let user = hook.user.as_ref();
        let who = user
            .and_then(|u| u.account_id.clone().or_else(|| u.email_address.clone()))
            .unwrap_or_default();
        let allowed = user.is_some_and(|u| {
            self.config.approvers.iter().any(|a| {
                u.account_id.as_deref() == Some(a.as_str())
                    || u.email_address
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(a))
            })
        });
        if !allowed {
            audit.record(
                "check-approver",
                None,
                Some(&issue.key),
                Outcome::Skipped,
                Some(format!("`{who}` is not an allowed approver")),
            );
            return WebhookResponse::new(403, "forbidden", format!("`{who}` may not review"));
        }
        // 6. replay
        let Some(delivery) = req.delivery_id.filter(|d| !d.trim().is_empty()) else {
            return WebhookResponse::new(400, "bad_request", "no delivery identifier");
        };
        let keep_until = now + Duration::seconds(self.config.max_age_seconds * 2);
        match self.store.record_delivery(delivery, keep_until).await {
            Ok(()) => {}
            Err(StoreError::Replayed(_)) => {
                return WebhookResponse::new(409, "replayed", "delivery already processed")
            }
            Err(e) => return WebhookResponse::new(503, "unavailable", e.to_string()),
        }
        // 7. claim and resume
        let verdict = if approved { "approved" } else { "rejected" };
        let token = match self
            .store
            .claim(incident_id, &issue.key, verdict, &who, now)
            .await
        {
            Ok(t) => t,
            Err(e @ StoreError::NotPending { .. }) => {
                return WebhookResponse::new(409, "not_pending", e.to_string())
            }
            Err(e) => {
                let _ = self.store.forget_delivery(delivery).await;
                return WebhookResponse::new(503, "unavailable", e.to_string());
            }
        };
        let review = Review {
            incident_id: incident_id.to_string(),
            review: verdict.to_string(),
            approver: who.clone(),
            approver_name: user.and_then(|u| u.display_name.clone()),
            ticket: issue.key.clone(),
            decided_at: now,
        };
        let review_json = serde_json::to_string(&review).unwrap_or_default();
        let sent = if approved {
            self.sfn
                .send_task_success()
                .task_token(&token)
                .output(&review_json)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let gone = e.as_service_error().is_some_and(|se| {
                        se.is_task_timed_out()
                            || se.is_invalid_token()
                            || se.is_task_does_not_exist()
                    });
                    (gone, aws_sdk_sfn::error::DisplayErrorContext(e).to_string())
                })
        } else {
            self.sfn
                .send_task_failure()
                .task_token(&token)
                .error(REJECTED_ERROR)
                .cause(&review_json)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let gone = e.as_service_error().is_some_and(|se| {
                        se.is_task_timed_out()
                            || se.is_invalid_token()
                            || se.is_task_does_not_exist()
                    });
                    (gone, aws_sdk_sfn::error::DisplayErrorContext(e).to_string())
                })
        };
        let api = if approved {
            "states:SendTaskSuccess"
        } else {
            "states:SendTaskFailure"
        };
        match sent {
            Ok(()) => {
                audit.record(
                    "resume-execution",
                    Some(api),
                    Some(&issue.key),
                    Outcome::Succeeded,
                    Some(format!("{verdict} by {who}")),
                );
                WebhookResponse {
                    status: 200,
                    body: json!({"result": verdict, "incident_id": incident_id,
                                 "approver": who, "ticket": issue.key}),
                }
            }
            Err((true, message)) => {
                let _ = self.store.set_status(incident_id, "expired").await;
                audit.record(
                    "resume-execution",
                    Some(api),
                    Some(&issue.key),
                    Outcome::Failed,
                    Some(format!("review gate expired: {message}")),
                );
                WebhookResponse::new(410, "expired", "the review gate is no longer waiting")
            }
            Err((false, message)) => {
                let _ = self.store.set_status(incident_id, store::PENDING).await;
                let _ = self.store.forget_delivery(delivery).await;
                audit.record(
                    "resume-execution",
                    Some(api),
                    Some(&issue.key),
                    Outcome::Failed,
                    Some(message.clone()),
                );
                WebhookResponse::new(503, "unavailable", message)
            }
        }
    }
}
