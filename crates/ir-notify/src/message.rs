//! One message model for every channel, built from the state machine's request with every
//! finding-derived string cleaned and bounded ([`crate::safe`]); its renderings are in
//! [`crate::render`].

use chrono::{DateTime, Utc};
use ir_core::actions::ContainmentRecord;
use ir_core::audit::Outcome;
use ir_core::incident::SeverityLabel;
use ir_core::TriageDecision;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::safe::{clean, non_blank, DESCRIPTION_MAX, DETAIL_MAX, FIELD_MAX};

/// What happened, i.e. which notification this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A new incident: detection, triage, evidence and containment so far. Opens the ticket.
    Opened,
    /// The review gate is waiting: stores the task token, says so on the ticket.
    ApprovalRequested,
    /// An analyst approved: the incident is closed as contained.
    Approved,
    /// An analyst rejected: containment was released.
    Released,
    /// Nobody reviewed before the gate's timeout: containment stays, escalate.
    ReviewTimedOut,
    /// A step of the state machine failed (its Catch path).
    Failed,
    /// No review gate is deployed (no Jira): what tier auto contained stays; what needed an
    /// approval was not changed and is for people now.
    NoReview,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Opened => "opened",
            Kind::ApprovalRequested => "approval_requested",
            Kind::Approved => "approved",
            Kind::Released => "released",
            Kind::ReviewTimedOut => "review_timed_out",
            Kind::Failed => "failed",
            Kind::NoReview => "no_review",
        }
    }

    /// Whether this ends the incident (PagerDuty resolve).
    pub fn resolves(self) -> bool {
        matches!(self, Kind::Approved | Kind::Released)
    }
}

/// Where the evidence went (the part of ir-preserve-evidence's record a notification shows).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EvidenceRef {
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub manifest_key: Option<String>,
    #[serde(default)]
    pub manifest_sha256: Option<String>,
    #[serde(default)]
    pub artifact_count: Option<usize>,
    #[serde(default)]
    pub snapshot_ids: Vec<String>,
    #[serde(default)]
    pub gaps: Vec<Value>,
    /// `failed` when the evidence branch failed (the state machine's record of it).
    #[serde(default)]
    pub status: Option<String>,
}

/// A failed state (the `Catch` output: `Error` and `Cause`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, alias = "Error")]
    pub error: String,
    #[serde(default, alias = "Cause")]
    pub cause: String,
    /// The state that failed, when the state machine says.
    #[serde(default)]
    pub state: Option<String>,
}

/// The review outcome (ir-approve's task output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRef {
    pub review: String,
    pub approver: String,
    #[serde(default)]
    pub approver_name: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// Input of ir-notify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyRequest {
    pub kind: Kind,
    /// The triage decision; absent only for a `failed` notification when triage itself failed
    /// (malformed or unsupported event), which then goes to SNS, Slack and PagerDuty, not Jira.
    #[serde(default)]
    pub decision: Option<TriageDecision>,
    /// Containment records so far (contain, or contain + release).
    #[serde(default)]
    pub containment: Vec<ContainmentRecord>,
    #[serde(default)]
    pub evidence: Option<EvidenceRef>,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub review: Option<ReviewRef>,
    /// The Jira issue key, once known (otherwise found by the incident label).
    #[serde(default)]
    pub ticket: Option<String>,
    /// `approval_requested` only: `$$.Task.Token` of the ReviewGate state.
    #[serde(default)]
    pub task_token: Option<String>,
    /// `approval_requested` only: `$$.Execution.Id`.
    #[serde(default)]
    pub execution: Option<String>,
    /// `approval_requested` only: how long the gate waits (its `TimeoutSeconds`).
    #[serde(default)]
    pub review_timeout_seconds: Option<i64>,
    /// `failed` before triage only: the execution's input (`$$.Execution.Input`), whose
    /// EventBridge event id (or hash) keys the page, so unrelated failures are not folded into
    /// one alert.
    #[serde(default)]
    pub event: Option<Value>,
}

/// The channel-neutral message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub incident_id: String,
    pub kind: Kind,
    pub severity: SeverityLabel,
    pub headline: String,
    pub summary: String,
    /// Label/value pairs (account, region, resource, finding type, route, tier, …).
    pub facts: Vec<(String, String)>,
    /// One line per action taken (or planned, or skipped).
    pub actions: Vec<String>,
    /// What the reader has to do, if anything.
    pub call_to_action: Option<String>,
    pub finding_type: String,
    pub resource: String,
    pub account_id: String,
    /// PagerDuty's `dedup_key`: the incident id, or for a failure before triage a key of the
    /// failed event ([`failed_event_key`]).
    pub dedup_key: String,
}

/// At most this many action lines in a message (a long partial record stays readable and
/// within every channel's size limit).
const ACTIONS_MAX: usize = 50;

/// What starts a summary the finding wrote (its description).
pub const REPORTED: &str = "Reported by the finding:";

/// A fact's label when its value is text the finding carries (the attacker may have written it).
fn reported(label: &str) -> String {
    format!("{label} (from the finding)")
}

/// A key stable per failed event: `failed-event-<id>` for an EventBridge event (its `id`),
/// otherwise `failed-input-<sha256>` of the input (or, without one, of the failure).
pub fn failed_event_key(event: Option<&Value>, failure: &Failure) -> String {
    let id = event
        .and_then(|e| e.get("id"))
        .and_then(Value::as_str)
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if let Some(id) = id {
        return format!("failed-event-{id}");
    }
    let digest = match event {
        Some(e) => Sha256::digest(e.to_string().as_bytes()),
        None => Sha256::digest(format!("{}\n{}", failure.error, failure.cause).as_bytes()),
    };
    format!("failed-input-{}", &hex::encode(digest)[..32])
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "done",
        Outcome::AlreadyDone => "already in place",
        Outcome::DryRun => "planned (dry-run)",
        Outcome::Skipped => "skipped",
        Outcome::Failed => "FAILED",
    }
}

impl Message {
    /// Builds the message, with approve/reject status names for the call to action.
    pub fn from_request(req: &NotifyRequest, approve: &str, reject: &str) -> Message {
        let Some(d) = &req.decision else {
            return Message::before_triage(req);
        };
        let inc = &d.incident;
        // Finding-derived text, cleaned and bounded before anything is rendered (crate::safe).
        let resource = inc
            .resources
            .first()
            .map(|r| clean(&r.display_id(), FIELD_MAX))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "unknown resource".into());
        let finding_type = clean(&inc.finding_type, FIELD_MAX);
        let title = Some(clean(inc.title.as_deref().unwrap_or_default(), FIELD_MAX))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| finding_type.clone());
        let headline = match req.kind {
            Kind::Opened => format!("[{}] {} on {}", inc.severity.label, title, resource),
            Kind::ApprovalRequested => format!("Review needed: {title} on {resource}"),
            Kind::Approved => format!("Approved and closed: {title} on {resource}"),
            Kind::Released if ir_core::lease::kept_for_others(&req.containment) => format!(
                "Rejected; containment kept, other incidents rely on it: {title} on {resource}"
            ),
            Kind::Released => format!("Rejected, containment released: {title} on {resource}"),
            Kind::ReviewTimedOut => format!("Review timed out: {title} on {resource}"),
            Kind::Failed => format!("Incident response FAILED: {title} on {resource}"),
            Kind::NoReview => format!("Closed without review: {title} on {resource}"),
        };
        let mut summary = inc
            .description
            .as_deref()
            .and_then(non_blank)
            .map(|d| format!("{REPORTED} {}", clean(d, DESCRIPTION_MAX)))
            .unwrap_or_else(|| format!("{} reported {finding_type}", inc.product));
        if d.dry_run {
            summary.push_str(" (dry-run: nothing was changed)");
        }
        let mut facts = vec![
            ("Incident".to_string(), d.incident_id.clone()),
            (
                "Severity".to_string(),
                format!("{} ({:.1})", inc.severity.label, inc.severity.score),
            ),
            (reported("Finding type"), finding_type.clone()),
            (reported("Resource"), resource.clone()),
            (
                "Account / region".to_string(),
                clean(&format!("{} / {}", inc.account_id, inc.region), FIELD_MAX),
            ),
            (
                "Response".to_string(),
                format!("route {}, tier {}, {}", d.route, d.tier, d.disposition),
            ),
        ];
        if let Some(name) = inc
            .principal
            .as_ref()
            .and_then(|p| p.name.as_deref().and_then(non_blank))
        {
            facts.push((reported("Principal"), clean(name, FIELD_MAX)));
        }
        if let Some(ip) = inc.remote.as_ref().and_then(|r| r.ip) {
            facts.push(("Remote IP".to_string(), ip.to_string()));
        }
        if let Some(first) = inc.first_seen {
            facts.push(("First seen".to_string(), first.to_rfc3339()));
        }
        let mut actions = Vec::new();
        // A containment branch that failed hands over no record; its error carries the partial
        // one (what completed, what failed).
        let partial: Vec<ContainmentRecord> = match (&req.failure, req.containment.is_empty()) {
            (Some(f), true) => ContainmentRecord::from_failure_cause(&f.cause)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        for rec in req.containment.iter().chain(&partial) {
            for s in &rec.steps {
                actions.push(format!(
                    "{}: {} — {}{}",
                    rec.function,
                    s.step,
                    outcome_word(s.outcome),
                    s.detail
                        .as_deref()
                        .map(|d| format!(" ({})", clean(d, 120)))
                        .unwrap_or_default()
                ));
            }
            if let Some(reason) = &rec.reason {
                actions.push(format!("{}: {:?} — {}", rec.function, rec.status, reason));
            }
        }
        if let Some(ev) = &req.evidence {
            if ev.status.as_deref() == Some("failed") {
                actions.push("evidence: preservation FAILED (see the failure below)".into());
            }
            if let (Some(b), Some(k)) = (&ev.bucket, &ev.manifest_key) {
                actions.push(format!(
                    "evidence: {} artifacts, manifest s3://{b}/{k} (sha256 {})",
                    ev.artifact_count.unwrap_or_default(),
                    ev.manifest_sha256.as_deref().unwrap_or("?")
                ));
            }
            if !ev.snapshot_ids.is_empty() {
                actions.push(format!(
                    "evidence: EBS snapshots {}",
                    ev.snapshot_ids.join(", ")
                ));
            }
            if !ev.gaps.is_empty() {
                actions.push(format!(
                    "evidence: {} artifact(s) could not be collected",
                    ev.gaps.len()
                ));
            }
        }
        if let Some(f) = &req.failure {
            actions.push(format!(
                "FAILED{}: {} — {}",
                f.state
                    .as_deref()
                    .map(|s| format!(" in {s}"))
                    .unwrap_or_default(),
                f.error,
                clean(&f.cause, DETAIL_MAX)
            ));
        }
        if let Some(r) = &req.review {
            actions.push(format!(
                "review: {} by {} at {}",
                r.review,
                r.approver_name
                    .as_deref()
                    .and_then(non_blank)
                    .unwrap_or(&r.approver),
                r.decided_at.to_rfc3339()
            ));
        }
        let call_to_action = match req.kind {
            Kind::ApprovalRequested => Some(format!(
                "Review the containment: move the ticket to `{approve}` to keep it and close, or `{reject}` to release it."
            )),
            Kind::ReviewTimedOut => Some("Nobody reviewed in time: containment stays in place; review the ticket now.".into()),
            Kind::Failed => Some("Automated response did not complete: investigate and contain manually.".into()),
            Kind::NoReview => Some("No review gate is deployed (Jira not configured): what was contained stays in place; anything awaiting an approval (tier approval, a protected resource) was not changed: review and contain it by hand.".into()),
            Kind::Opened if d.tier == ir_core::Tier::Manual => {
                Some("Manual tier: no automatic containment. Investigate now.".into())
            }
            _ => None,
        };
        facts.retain(|(_, v)| !v.trim().is_empty());
        // Step details, reasons, AWS messages and the reviewer's Jira name can carry
        // finding-derived or outside text too.
        let mut actions: Vec<String> = actions
            .iter()
            .map(|a| clean(a, DETAIL_MAX + FIELD_MAX))
            .collect();
        if actions.len() > ACTIONS_MAX {
            let more = actions.len() - (ACTIONS_MAX - 1);
            actions.truncate(ACTIONS_MAX - 1);
            actions.push(format!(
                "… and {more} more steps (see the incident's audit record)"
            ));
        }
        let headline = clean(&headline, 2 * FIELD_MAX);
        Message {
            incident_id: d.incident_id.clone(),
            dedup_key: d.incident_id.clone(),
            kind: req.kind,
            severity: inc.severity.label,
            headline,
            summary,
            facts,
            actions,
            call_to_action,
            finding_type: inc.finding_type.clone(),
            resource,
            account_id: inc.account_id.clone(),
        }
    }

    /// The response failed before there was an incident (triage rejected or could not read the
    /// event).
    fn before_triage(req: &NotifyRequest) -> Message {
        let f = req.failure.clone().unwrap_or_default();
        let error = non_blank(&clean(&f.error, FIELD_MAX))
            .unwrap_or("unknown error")
            .to_string();
        let key = failed_event_key(req.event.as_ref(), &f);
        Message {
            incident_id: "unknown".into(),
            kind: req.kind,
            severity: SeverityLabel::High,
            headline: format!("Incident response FAILED before triage: {error}"),
            summary: "An event reached the incident-response state machine but could not be triaged; nothing was contained.".into(),
            facts: vec![("Error".into(), error.clone()), ("Event".into(), key.clone())],
            actions: vec![format!("FAILED: {error} — {}", clean(&f.cause, DETAIL_MAX))],
            call_to_action: Some("Check the event and the triage function's logs; triage and contain manually if it is a real finding.".into()),
            finding_type: "unknown".into(),
            resource: "unknown".into(),
            account_id: "unknown".into(),
            dedup_key: key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe::truncate;
    use serde_json::json;

    #[test]
    fn truncation_keeps_limits_and_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        let t = truncate(&"é".repeat(200), 100);
        assert_eq!(t.chars().count(), 100);
        assert!(t.ends_with('…'));
    }

    #[test]
    fn pagerduty_resolves_when_the_incident_ends() {
        let mut m = Message {
            incident_id: "inc-1".into(),
            kind: Kind::Approved,
            severity: SeverityLabel::Critical,
            headline: "h".into(),
            summary: "s".into(),
            facts: vec![],
            actions: vec![],
            call_to_action: None,
            finding_type: "t".into(),
            resource: "i-1".into(),
            account_id: "1".into(),
            dedup_key: "inc-1".into(),
        };
        assert_eq!(
            m.pagerduty("k"),
            json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "inc-1"})
        );
        m.kind = Kind::Opened;
        m.severity = SeverityLabel::Medium;
        assert_eq!(m.pagerduty("k")["payload"]["severity"], "warning");
        m.kind = Kind::Failed;
        assert_eq!(m.pagerduty("k")["payload"]["severity"], "critical");
        m.headline = format!("ünïcode {}", "x".repeat(200));
        let subject = m.sns_subject();
        assert!(subject.len() <= 100 && subject.is_ascii(), "{subject}");
    }
}
