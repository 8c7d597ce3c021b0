//! Jira webhooks: signature verification and the parts of the payload the gate reads.
//!
//! Jira Cloud admin webhooks registered with a secret sign the raw body with HMAC-SHA256 and send
//! `X-Hub-Signature: sha256=<hex>`; `X-Atlassian-Webhook-Identifier` names the delivery and is
//! unchanged across Jira's retries, which also carry `X-Atlassian-Webhook-Retry` (the retry
//! count); the body carries `timestamp` (epoch milliseconds), unchanged across retries too.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-hub-signature";
pub const DELIVERY_HEADER: &str = "x-atlassian-webhook-identifier";
pub const RETRY_HEADER: &str = "x-atlassian-webhook-retry";
/// The `webhookEvent` of every issue update (transitions, edits, moves, assignments…).
pub const ISSUE_UPDATED: &str = "jira:issue_updated";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed (no X-Hub-Signature header)")]
    Missing,
    #[error("the signature header is not `sha256=<hex>`")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The key of a delivery's record: SHA-256 of its signed body, which Jira's retries repeat
/// byte for byte.
pub fn delivery_key(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(body))
}

/// `sha256=<hex>` of `body` under `secret` (what Jira sends; used by tests and tooling).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `header` against the body in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_sig = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let sig = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

/// The fields of a `jira:issue_updated` webhook the gate uses (everything else is ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JiraWebhook {
    pub webhook_event: String,
    /// What kind of update (`issue_generic` for a workflow transition by default,
    /// `issue_moved`, `issue_assigned`, …).
    #[serde(rename = "issue_event_type_name", default)]
    pub issue_event_type: Option<String>,
    /// Epoch milliseconds.
    pub timestamp: i64,
    pub user: Option<JiraUser>,
    pub issue: Option<JiraIssue>,
    pub changelog: Option<Changelog>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JiraUser {
    pub account_id: Option<String>,
    pub email_address: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JiraIssue {
    pub key: String,
    #[serde(default)]
    pub fields: IssueFields,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IssueFields {
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Changelog {
    #[serde(default)]
    pub items: Vec<ChangeItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChangeItem {
    pub field: String,
    #[serde(rename = "fromString")]
    pub from_string: Option<String>,
    #[serde(rename = "toString")]
    pub to_string: Option<String>,
}

impl JiraWebhook {
    /// Whether this is an issue update of one of the `transition_events` kinds.
    pub fn is_transition(&self, transition_events: &[String]) -> bool {
        self.webhook_event == ISSUE_UPDATED
            && self
                .issue_event_type
                .as_deref()
                .is_some_and(|t| transition_events.iter().any(|e| e == t))
    }

    /// The status the issue moved to in this delivery, if it was a status transition.
    pub fn new_status(&self) -> Option<&str> {
        self.changelog
            .as_ref()?
            .items
            .iter()
            .find(|i| i.field.eq_ignore_ascii_case("status"))?
            .to_string
            .as_deref()
    }

    /// The incident id from the issue's labels (ir-notify labels every ticket `inc-…`).
    pub fn incident_id(&self) -> Option<&str> {
        self.issue
            .as_ref()?
            .fields
            .labels
            .iter()
            .map(String::as_str)
            .find(|l| l.starts_with("inc-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tamper() {
        let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
        let sig = sign(b"s3cret", body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(verify(b"s3cret", body, Some(&sig)), Ok(()));
        assert_eq!(
            verify(b"other", body, Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", b"{}", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"s3cret", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"s3cret", body, Some("sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s3cret", body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
    }
}

#[cfg(test)]
mod payload_tests {
    use super::*;

    #[test]
    fn reads_the_transition_and_the_incident_label() {
        let hook: JiraWebhook = serde_json::from_value(serde_json::json!({
            "timestamp": 1, "webhookEvent": "jira:issue_updated",
            "issue": {"key": "SEC-1", "fields": {"labels": ["incident-response", "inc-abc"]}},
            "changelog": {"items": [{"field": "assignee", "toString": "Dana"},
                                     {"field": "status", "fromString": "Open", "toString": "Approved"}]}
        }))
        .unwrap();
        assert_eq!(hook.new_status(), Some("Approved"));
        assert_eq!(hook.incident_id(), Some("inc-abc"));
        let transitions = vec!["issue_generic".to_string()];
        assert!(
            !hook.is_transition(&transitions),
            "no issue_event_type_name: not known to be a transition"
        );
        let typed = |event: &str, kind: &str| -> JiraWebhook {
            serde_json::from_value(serde_json::json!({
                "timestamp": 1, "webhookEvent": event, "issue_event_type_name": kind}))
            .unwrap()
        };
        assert!(typed("jira:issue_updated", "issue_generic").is_transition(&transitions));
        assert!(!typed("jira:issue_updated", "issue_moved").is_transition(&transitions));
        assert!(!typed("jira:issue_created", "issue_generic").is_transition(&transitions));
        let comment: JiraWebhook = serde_json::from_value(
            serde_json::json!({"timestamp": 1, "webhookEvent": "comment_created"}),
        )
        .unwrap();
        assert_eq!(comment.new_status(), None);
        assert_eq!(comment.incident_id(), None);
    }
}
