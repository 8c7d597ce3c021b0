//! ir-notify: tells people. One [`message::Message`] per request, rendered to every configured
//! channel concurrently — SNS, Slack (incoming webhook, Block Kit), PagerDuty Events API v2 (only
//! at or above `IR_PAGERDUTY_MIN_SEVERITY`) and Jira (REST API v3: the incident ticket is created
//! once, labelled with the incident id; every later notification is a comment on it).
//!
//! A channel that fails is reported as `failed` in the result and does not stop the others; the
//! function fails (`AllChannelsFailed`) only when every configured channel failed, so a retry
//! cannot duplicate a message that went out.
//!
//! `approval_requested` is the review gate's task (`waitForTaskToken`): it finds or creates the
//! ticket, stores the task token in the gate table keyed by incident (ir-approve reads it when
//! the Jira webhook arrives), then comments that approval is pending. The token goes to DynamoDB
//! only — never to Jira, Slack or a log line. Without a ticket or the table the gate cannot be
//! answered, so that kind fails with `GateUnavailable`.
//!
//! Security Hub is told too ([`securityhub`]): the finding's workflow status goes to `NOTIFIED`
//! when the incident opens and `RESOLVED` when an analyst approves the containment, with a note
//! at every step. It is a record, not a channel people read, so it does not count towards
//! `AllChannelsFailed`.
//!
//! Secrets (Slack URL, PagerDuty routing key, Jira credentials) come from Secrets Manager or SSM
//! ([`ir_core::secrets`]).

pub mod jira;
pub mod message;
pub mod render;
pub mod safe;
pub mod securityhub;

use std::time::Duration;

use chrono::Utc;
use ir_core::config::{env_bool_strict, env_or};
use ir_core::gate::{GateStore, PendingGate};
use ir_core::incident::SeverityLabel;
use ir_core::secrets::{SecretRef, SecretStore};
use ir_core::ConfigError;
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};

pub use message::{Kind, Message, NotifyRequest};

pub const FUNCTION_NAME: &str = "ir-notify";

/// Every AWS call this function makes (the Security Hub update in any region of the account).
pub fn permissions() -> Vec<ir_core::permissions::Permission> {
    use ir_core::permissions::Permission;
    ir_core::permissions::union(&[
        ir_core::secrets::PERMISSIONS,
        ir_core::gate::REGISTER_PERMISSIONS,
        &[
            Permission::new("sns:Publish", "{alerts_topic}"),
            securityhub::BATCH_UPDATE_FINDINGS,
        ],
    ])
}
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Jira settings (all of `IR_JIRA_URL`, `IR_JIRA_PROJECT`, `IR_JIRA_CREDENTIALS_SECRET`, or none).
#[derive(Debug, Clone, PartialEq)]
pub struct JiraConfig {
    pub base_url: String,
    pub project: String,
    /// `IR_JIRA_ISSUE_TYPE` (default `Task`).
    pub issue_type: String,
    /// A JSON secret `{"email": "...", "api_token": "..."}`.
    pub credentials: SecretRef,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// `IR_SNS_TOPIC_ARN`.
    pub sns_topic_arn: Option<String>,
    /// `IR_SLACK_WEBHOOK_SECRET`: the secret holds the incoming-webhook URL.
    pub slack_webhook: Option<SecretRef>,
    /// `IR_PAGERDUTY_ROUTING_KEY_SECRET`: the secret holds the Events API v2 routing key.
    pub pagerduty_routing_key: Option<SecretRef>,
    /// `IR_PAGERDUTY_URL` (default the public Events API v2 endpoint).
    pub pagerduty_url: String,
    /// `IR_PAGERDUTY_MIN_SEVERITY` (default `CRITICAL`).
    pub pagerduty_min_severity: SeverityLabel,
    pub jira: Option<JiraConfig>,
    /// `IR_JIRA_APPROVE_STATUS` / `IR_JIRA_REJECT_STATUS` (defaults `Approved` / `Rejected`).
    pub approve_status: String,
    pub reject_status: String,
    /// `IR_APPROVALS_TABLE`: the gate table (needed for `approval_requested`).
    pub approvals_table: Option<String>,
    /// `IR_HTTP_TIMEOUT_SECONDS` (default 5): per HTTP request.
    pub http_timeout: Duration,
    /// `IR_SECURITYHUB_UPDATE` (default true): move the finding's workflow status and add notes.
    pub securityhub_update: bool,
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_severity(value: &str) -> Result<SeverityLabel, ConfigError> {
    serde_json::from_value(serde_json::Value::String(value.trim().to_ascii_uppercase())).map_err(
        |_| ConfigError::Invalid {
            name: "IR_PAGERDUTY_MIN_SEVERITY",
            value: value.to_string(),
            message: "expected LOW, MEDIUM, HIGH or CRITICAL".into(),
        },
    )
}

impl NotifyConfig {
    pub fn from_env() -> Result<NotifyConfig, ConfigError> {
        let jira = match (
            optional("IR_JIRA_URL"),
            optional("IR_JIRA_PROJECT"),
            SecretRef::from_env("IR_JIRA_CREDENTIALS_SECRET")?,
        ) {
            (None, None, None) => None,
            (Some(base_url), Some(project), Some(credentials)) => Some(JiraConfig {
                base_url: base_url.trim_end_matches('/').to_string(),
                project,
                issue_type: env_or("IR_JIRA_ISSUE_TYPE", "Task"),
                credentials,
            }),
            (None, _, _) => return Err(ConfigError::Missing("IR_JIRA_URL")),
            (_, None, _) => return Err(ConfigError::Missing("IR_JIRA_PROJECT")),
            (_, _, None) => return Err(ConfigError::Missing("IR_JIRA_CREDENTIALS_SECRET")),
        };
        let timeout = env_or("IR_HTTP_TIMEOUT_SECONDS", "5");
        let secs = timeout
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=30).contains(s))
            .ok_or_else(|| ConfigError::Invalid {
                name: "IR_HTTP_TIMEOUT_SECONDS",
                value: timeout.clone(),
                message: "expected 1 to 30 seconds".into(),
            })?;
        Ok(NotifyConfig {
            sns_topic_arn: optional("IR_SNS_TOPIC_ARN"),
            slack_webhook: SecretRef::from_env("IR_SLACK_WEBHOOK_SECRET")?,
            pagerduty_routing_key: SecretRef::from_env("IR_PAGERDUTY_ROUTING_KEY_SECRET")?,
            pagerduty_url: env_or("IR_PAGERDUTY_URL", PAGERDUTY_EVENTS_URL),
            pagerduty_min_severity: parse_severity(&env_or(
                "IR_PAGERDUTY_MIN_SEVERITY",
                "CRITICAL",
            ))?,
            jira,
            approve_status: env_or("IR_JIRA_APPROVE_STATUS", "Approved"),
            reject_status: env_or("IR_JIRA_REJECT_STATUS", "Rejected"),
            approvals_table: optional("IR_APPROVALS_TABLE"),
            http_timeout: Duration::from_secs(secs),
            securityhub_update: env_bool_strict("IR_SECURITYHUB_UPDATE")?.unwrap_or(true),
        })
    }

    /// A configuration with every channel off (set the fields you need).
    pub fn none() -> NotifyConfig {
        NotifyConfig {
            sns_topic_arn: None,
            slack_webhook: None,
            pagerduty_routing_key: None,
            pagerduty_url: PAGERDUTY_EVENTS_URL.into(),
            pagerduty_min_severity: SeverityLabel::Critical,
            jira: None,
            approve_status: "Approved".into(),
            reject_status: "Rejected".into(),
            approvals_table: None,
            http_timeout: Duration::from_secs(5),
            securityhub_update: false,
        }
    }

    /// Required setting check used by `main`: at least one channel.
    pub fn require_a_channel(&self) -> Result<(), ConfigError> {
        if self.sns_topic_arn.is_none()
            && self.slack_webhook.is_none()
            && self.pagerduty_routing_key.is_none()
            && self.jira.is_none()
        {
            return Err(ConfigError::Missing(
                "a channel (IR_SNS_TOPIC_ARN, IR_SLACK_WEBHOOK_SECRET, IR_PAGERDUTY_ROUTING_KEY_SECRET or IR_JIRA_URL)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    Sent,
    /// Not configured, or not for this message (e.g. PagerDuty below its severity).
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelReport {
    pub channel: String,
    pub status: ChannelStatus,
    pub detail: String,
}

impl ChannelReport {
    fn new(channel: &str, status: ChannelStatus, detail: impl Into<String>) -> Self {
        ChannelReport {
            channel: channel.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// What ir-notify returns (the state machine keeps `ticket` for later notifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyResult {
    pub incident_id: String,
    pub kind: Kind,
    pub ticket: Option<String>,
    /// `approval_requested`: the task token is stored and the gate can be answered.
    pub gate_registered: bool,
    pub channels: Vec<ChannelReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the review gate cannot be opened: {0}")]
    GateUnavailable(String),
    #[error("every configured channel failed: {}", serde_json::to_string(.0).unwrap_or_default())]
    AllChannelsFailed(Vec<ChannelReport>),
}

impl From<NotifyError> for Diagnostic {
    fn from(e: NotifyError) -> Diagnostic {
        let error_type = match &e {
            NotifyError::BadRequest(_) => "BadRequest",
            NotifyError::GateUnavailable(_) => "GateUnavailable",
            NotifyError::AllChannelsFailed(_) => "AllChannelsFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

pub struct Notifier {
    pub config: NotifyConfig,
    pub http: reqwest::Client,
    pub sns: aws_sdk_sns::Client,
    pub secrets: SecretStore,
    pub gate: Option<GateStore>,
    /// Set when `securityhub_update` is on.
    pub securityhub: Option<aws_sdk_securityhub::Client>,
}

/// An HTTP client with the configured timeout and no redirects (a webhook URL that redirects is
/// not followed with the payload).
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aws-incident-response/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn http_error(e: reqwest::Error) -> String {
    // Without the URL: a Slack webhook URL is itself a secret.
    e.without_url().to_string()
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<u16, String> {
    let resp = http.post(url).json(body).send().await.map_err(http_error)?;
    let status = resp.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

impl Notifier {
    pub async fn handle(&self, req: NotifyRequest) -> Result<NotifyResult, NotifyError> {
        if req.decision.is_none() && req.kind != Kind::Failed {
            return Err(NotifyError::BadRequest(format!(
                "`{}` needs the triage decision",
                req.kind.as_str()
            )));
        }
        if req.kind == Kind::ApprovalRequested {
            if req.task_token.as_deref().is_none_or(str::is_empty) {
                return Err(NotifyError::BadRequest(
                    "approval_requested needs task_token ($$.Task.Token)".into(),
                ));
            }
            if self.gate.is_none() || self.config.jira.is_none() {
                return Err(NotifyError::GateUnavailable(
                    "the review gate needs Jira and IR_APPROVALS_TABLE configured".into(),
                ));
            }
        }
        let msg = Message::from_request(
            &req,
            &self.config.approve_status,
            &self.config.reject_status,
        );
        let (jira, sns, slack, pd) = futures::join!(
            self.jira(&req, &msg),
            self.sns(&msg),
            self.slack(&msg),
            self.pagerduty(&msg),
        );
        let (jira_report, ticket, gate_registered) = jira?;
        let mut channels = vec![jira_report, sns, slack, pd];
        // After Jira, so the note can name the ticket.
        let securityhub = match (&self.securityhub, self.config.securityhub_update) {
            (Some(client), true) => match securityhub::finding_update(&req, ticket.as_deref()) {
                Some(update) => securityhub::apply(client, &update).await,
                None => {
                    ChannelReport::new("securityhub", ChannelStatus::Skipped, "nothing to record")
                }
            },
            _ => ChannelReport::new("securityhub", ChannelStatus::Skipped, "not configured"),
        };
        let people = channels.len();
        channels.push(securityhub);
        for c in &channels {
            tracing::info!(
                function = FUNCTION_NAME,
                incident_id = %msg.incident_id,
                kind = msg.kind.as_str(),
                channel = %c.channel,
                status = ?c.status,
                detail = %c.detail,
                "notification"
            );
        }
        let attempted = channels[..people]
            .iter()
            .filter(|c| c.status != ChannelStatus::Skipped)
            .count();
        let failed = channels[..people]
            .iter()
            .filter(|c| c.status == ChannelStatus::Failed)
            .count();
        if attempted > 0 && failed == attempted {
            return Err(NotifyError::AllChannelsFailed(channels));
        }
        Ok(NotifyResult {
            incident_id: msg.incident_id.clone(),
            kind: msg.kind,
            ticket,
            gate_registered,
            channels,
        })
    }

    async fn sns(&self, msg: &Message) -> ChannelReport {
        let Some(topic) = &self.config.sns_topic_arn else {
            return ChannelReport::new("sns", ChannelStatus::Skipped, "not configured");
        };
        let attr = |v: &str| {
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
        };
        let mut publish = self
            .sns
            .publish()
            .topic_arn(topic)
            .subject(msg.sns_subject())
            .message(msg.text());
        for (k, v) in [
            ("incident_id", msg.incident_id.as_str()),
            ("kind", msg.kind.as_str()),
            ("severity", &msg.severity.to_string()),
        ] {
            match attr(v) {
                Ok(a) => publish = publish.message_attributes(k, a),
                Err(e) => return ChannelReport::new("sns", ChannelStatus::Failed, e.to_string()),
            }
        }
        match publish.send().await {
            Ok(out) => ChannelReport::new(
                "sns",
                ChannelStatus::Sent,
                format!("message {}", out.message_id.unwrap_or_default()),
            ),
            Err(e) => ChannelReport::new(
                "sns",
                ChannelStatus::Failed,
                aws_sdk_sns::error::DisplayErrorContext(e).to_string(),
            ),
        }
    }

    async fn slack(&self, msg: &Message) -> ChannelReport {
        let Some(secret) = &self.config.slack_webhook else {
            return ChannelReport::new("slack", ChannelStatus::Skipped, "not configured");
        };
        let url = match self.secrets.get(secret).await {
            Ok(u) => u,
            Err(e) => return ChannelReport::new("slack", ChannelStatus::Failed, e.to_string()),
        };
        match post_json(&self.http, url.expose(), &msg.slack()).await {
            Ok(code) => ChannelReport::new("slack", ChannelStatus::Sent, format!("HTTP {code}")),
            Err(e) => ChannelReport::new("slack", ChannelStatus::Failed, e),
        }
    }

    async fn pagerduty(&self, msg: &Message) -> ChannelReport {
        let Some(secret) = &self.config.pagerduty_routing_key else {
            return ChannelReport::new("pagerduty", ChannelStatus::Skipped, "not configured");
        };
        if msg.severity < self.config.pagerduty_min_severity {
            return ChannelReport::new(
                "pagerduty",
                ChannelStatus::Skipped,
                format!(
                    "severity {} is below {}",
                    msg.severity, self.config.pagerduty_min_severity
                ),
            );
        }
        if msg.kind == Kind::ApprovalRequested {
            return ChannelReport::new(
                "pagerduty",
                ChannelStatus::Skipped,
                "the incident is already paged; the review request goes to Jira and chat",
            );
        }
        let key = match self.secrets.get(secret).await {
            Ok(k) => k,
            Err(e) => return ChannelReport::new("pagerduty", ChannelStatus::Failed, e.to_string()),
        };
        let event = msg.pagerduty(key.expose());
        let action = event["event_action"]
            .as_str()
            .unwrap_or("trigger")
            .to_string();
        match post_json(&self.http, &self.config.pagerduty_url, &event).await {
            Ok(code) => ChannelReport::new(
                "pagerduty",
                ChannelStatus::Sent,
                format!("{action} dedup_key {} (HTTP {code})", msg.dedup_key),
            ),
            Err(e) => ChannelReport::new("pagerduty", ChannelStatus::Failed, e),
        }
    }

    /// Jira: find or create the ticket, register the gate (approval), comment. Returns the
    /// report, the ticket key and whether the gate was registered. `Err` only when the review
    /// gate could not be opened.
    async fn jira(
        &self,
        req: &NotifyRequest,
        msg: &Message,
    ) -> Result<(ChannelReport, Option<String>, bool), NotifyError> {
        let approval = req.kind == Kind::ApprovalRequested;
        if req.decision.is_none() {
            return Ok((
                ChannelReport::new(
                    "jira",
                    ChannelStatus::Skipped,
                    "no incident to file (triage failed)",
                ),
                req.ticket.clone(),
                false,
            ));
        }
        let Some(cfg) = &self.config.jira else {
            return Ok((
                ChannelReport::new("jira", ChannelStatus::Skipped, "not configured"),
                req.ticket.clone(),
                false,
            ));
        };
        let creds = match self.secrets.get(&cfg.credentials).await {
            Ok(c) => c,
            Err(e) if approval => return Err(NotifyError::GateUnavailable(e.to_string())),
            Err(e) => {
                return Ok((
                    ChannelReport::new("jira", ChannelStatus::Failed, e.to_string()),
                    req.ticket.clone(),
                    false,
                ))
            }
        };
        let client = match jira::JiraClient::new(&self.http, cfg, &creds) {
            Ok(c) => c,
            Err(e) if approval => return Err(NotifyError::GateUnavailable(e)),
            Err(e) => {
                return Ok((
                    ChannelReport::new("jira", ChannelStatus::Failed, e),
                    req.ticket.clone(),
                    false,
                ))
            }
        };
        let ticket = client.ensure_ticket(req.ticket.as_deref(), msg).await;
        let (key, created) = match ticket {
            Ok(t) => t,
            Err(e) if approval => return Err(NotifyError::GateUnavailable(e)),
            Err(e) => {
                return Ok((
                    ChannelReport::new("jira", ChannelStatus::Failed, e),
                    req.ticket.clone(),
                    false,
                ))
            }
        };
        let mut gate_registered = false;
        if approval {
            let (Some(gate), Some(token)) = (&self.gate, &req.task_token) else {
                return Err(NotifyError::GateUnavailable("no gate table".into()));
            };
            let now = Utc::now();
            let timeout = req.review_timeout_seconds.unwrap_or(86_400).max(60);
            gate.register(&PendingGate {
                incident_id: msg.incident_id.clone(),
                task_token: token.clone(),
                ticket_key: key.clone(),
                execution: req.execution.clone(),
                requested_at: now,
                expires_at: now + chrono::Duration::seconds(timeout),
            })
            .await
            .map_err(|e| NotifyError::GateUnavailable(e.to_string()))?;
            gate_registered = true;
        }
        let report = if created {
            ChannelReport::new("jira", ChannelStatus::Sent, format!("created {key}"))
        } else {
            match client.comment(&key, msg).await {
                Ok(()) => {
                    ChannelReport::new("jira", ChannelStatus::Sent, format!("commented on {key}"))
                }
                Err(e) if approval => return Err(NotifyError::GateUnavailable(e)),
                Err(e) => ChannelReport::new("jira", ChannelStatus::Failed, e),
            }
        };
        Ok((report, Some(key), gate_registered))
    }
}
