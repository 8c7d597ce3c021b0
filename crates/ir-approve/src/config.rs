//! ir-approve's settings, read once at cold start; a bad value stops the function there with a
//! clear error instead of answering every webhook wrongly.

use ir_core::config::{csv_list, env_or, env_required};
use ir_core::secrets::SecretRef;
use ir_core::ConfigError;

/// The `issue_event_type_name`s of a workflow transition: the event a transition fires is the
/// one its "Fire event" post function names, by default the generic event; the others are
/// Jira's system events a transition may be set to fire. `issue_moved` (a move to another
/// project, whose changelog also carries a status) and every other update are not decisions.
pub const DEFAULT_TRANSITION_EVENTS: &str =
    "issue_generic,issue_resolved,issue_closed,issue_reopened,issue_work_started,issue_work_stopped";

/// Jira Cloud's account ids are at most 128 characters (REST API v3, `accountId`).
const ACCOUNT_ID_MAX: usize = 128;

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
    /// `IR_APPROVERS` (required): comma-separated Jira account ids. Emails are refused: Jira
    /// Cloud's deliveries carry the user's `accountId` only.
    pub approvers: Vec<String>,
    /// `IR_WEBHOOK_MAX_AGE_SECONDS` (default 300): how old a first delivery may be.
    pub max_age_seconds: i64,
    /// `IR_WEBHOOK_RETRY_WINDOW_SECONDS` (default 2400): how old a delivery Jira marks as a retry
    /// (`X-Atlassian-Webhook-Retry`) may be. Jira retries for up to about 30 minutes and keeps
    /// the original body, so its `timestamp` is that of the first attempt.
    pub retry_window_seconds: i64,
    /// `IR_JIRA_TRANSITION_EVENTS` (default [`DEFAULT_TRANSITION_EVENTS`]).
    pub transition_events: Vec<String>,
}

impl ApproveConfig {
    /// The three required settings, everything else at its default.
    pub fn new(table: &str, webhook_secret: SecretRef, approvers: Vec<String>) -> ApproveConfig {
        ApproveConfig {
            table: table.to_string(),
            webhook_secret,
            approve_status: "Approved".into(),
            reject_status: "Rejected".into(),
            approvers,
            max_age_seconds: 300,
            retry_window_seconds: 2400,
            transition_events: csv_list(DEFAULT_TRANSITION_EVENTS),
        }
    }

    pub fn from_env() -> Result<ApproveConfig, ConfigError> {
        let webhook_secret = SecretRef::from_env("IR_JIRA_WEBHOOK_SECRET")?
            .ok_or(ConfigError::Missing("IR_JIRA_WEBHOOK_SECRET"))?;
        let approvers = parse_approvers(&env_required("IR_APPROVERS")?)?;
        let defaults = ApproveConfig::new(
            &env_required("IR_APPROVALS_TABLE")?,
            webhook_secret,
            approvers,
        );
        let max_age_seconds = seconds("IR_WEBHOOK_MAX_AGE_SECONDS", defaults.max_age_seconds)?;
        let retry_window_seconds = seconds(
            "IR_WEBHOOK_RETRY_WINDOW_SECONDS",
            defaults.retry_window_seconds,
        )?;
        if retry_window_seconds < max_age_seconds {
            return Err(ConfigError::Invalid {
                name: "IR_WEBHOOK_RETRY_WINDOW_SECONDS",
                value: retry_window_seconds.to_string(),
                message: "must be at least IR_WEBHOOK_MAX_AGE_SECONDS".into(),
            });
        }
        let transition_events = csv_list(&env_or(
            "IR_JIRA_TRANSITION_EVENTS",
            DEFAULT_TRANSITION_EVENTS,
        ));
        if transition_events.is_empty() {
            return Err(ConfigError::Invalid {
                name: "IR_JIRA_TRANSITION_EVENTS",
                value: env_or("IR_JIRA_TRANSITION_EVENTS", ""),
                message: "names no event: every delivery would be ignored".into(),
            });
        }
        Ok(ApproveConfig {
            approve_status: env_or("IR_JIRA_APPROVE_STATUS", &defaults.approve_status),
            reject_status: env_or("IR_JIRA_REJECT_STATUS", &defaults.reject_status),
            max_age_seconds,
            retry_window_seconds,
            transition_events,
            ..defaults
        })
    }
}

fn seconds(name: &'static str, default: i64) -> Result<i64, ConfigError> {
    let value = env_or(name, &default.to_string());
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| ConfigError::Invalid {
            name,
            value: value.clone(),
            message: "expected a positive number of seconds".into(),
        })
}

/// The allowed approvers: Jira Cloud account ids (`5b10ac8d82e05b22cc7d4ef5`,
/// `712020:cf20d007-…`, `qm:…`). An email address is refused with the reason: current Jira Cloud
/// hides `emailAddress` in webhook deliveries, so it could never match.
pub fn parse_approvers(list: &str) -> Result<Vec<String>, ConfigError> {
    let approvers = csv_list(list);
    if approvers.is_empty() {
        return Err(ConfigError::Missing("IR_APPROVERS"));
    }
    for a in &approvers {
        account_id(a).map_err(|message| ConfigError::Invalid {
            name: "IR_APPROVERS",
            value: a.clone(),
            message,
        })?;
    }
    Ok(approvers)
}

fn account_id(id: &str) -> Result<(), String> {
    if id.contains('@') {
        return Err(
            "an email address: Jira Cloud webhooks carry the user's accountId only \
                    (its privacy model hides emailAddress), so give the account id, the last \
                    part of the user's profile URL (…/jira/people/<accountId>)"
                .into(),
        );
    }
    if id.len() > ACCOUNT_ID_MAX {
        return Err(format!(
            "longer than {ACCOUNT_ID_MAX} characters, not a Jira account id"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
    {
        return Err("not a Jira account id (letters, digits, `:`, `-`, `_`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_are_account_ids_and_an_email_is_refused_with_the_reason() {
        assert_eq!(
            parse_approvers(
                "5b10ac8d82e05b22cc7d4ef5, 712020:cf20d007-987c-41f6-a858-a378543f8c96,qm:a1-b2"
            )
            .unwrap()
            .len(),
            3
        );
        let err = parse_approvers("5b10ac8d82e05b22cc7d4ef5,lead@example.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lead@example.com") && err.contains("accountId only"),
            "{err}"
        );
        assert!(parse_approvers("Dana Analyst").is_err());
        assert!(parse_approvers(&"a".repeat(129)).is_err());
        assert_eq!(
            parse_approvers(" , "),
            Err(ConfigError::Missing("IR_APPROVERS"))
        );
    }
}
