//! The bucket-policy document: this playbook's Deny statement, merged beside every existing
//! statement and removed again on release (pure functions, no AWS call).

use ir_core::incident::{Incident, PrincipalKind};

/// The statement id this playbook owns in a bucket policy.
pub fn deny_sid(incident_id: &str) -> String {
    // Sids are alphanumeric.
    format!("IRDeny{}", incident_id.replace('-', ""))
}

/// The ARN of the principal that acted, where the finding names one S3 can deny.
pub fn offending_principal_arn(incident: &Incident) -> Option<String> {
    let p = incident.principal.as_ref()?;
    let name = p.name.as_ref()?;
    let kind = match p.kind {
        PrincipalKind::IamUser => "user",
        PrincipalKind::AssumedRole | PrincipalKind::Role => "role",
        _ => return None,
    };
    Some(format!(
        "arn:{}:iam::{}:{kind}/{name}",
        incident.partition, incident.account_id
    ))
}

/// `policy` with a Deny for `principal` added under `sid` (unless a statement with that Sid is
/// already there). Every existing statement is kept as it is.
pub fn merge_deny(
    policy: Option<&serde_json::Value>,
    sid: &str,
    principal: &str,
    bucket: &str,
) -> serde_json::Value {
    let mut doc = policy
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []}));
    let statement = serde_json::json!({
        "Sid": sid,
        "Effect": "Deny",
        "Principal": {"AWS": principal},
        "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
    });
    match doc.get_mut("Statement") {
        Some(serde_json::Value::Array(stmts)) => {
            if !stmts.iter().any(|s| s["Sid"] == sid) {
                stmts.push(statement);
            }
        }
        // A single statement object is legal policy grammar: keep it, add ours beside it.
        Some(single @ serde_json::Value::Object(_)) => {
            let existing = single.take();
            *single = serde_json::Value::Array(vec![existing, statement]);
        }
        _ => doc["Statement"] = serde_json::Value::Array(vec![statement]),
    }
    doc
}

/// `policy` without the statement `sid`; `None` when nothing else is left.
pub fn remove_statement(policy: &serde_json::Value, sid: &str) -> Option<serde_json::Value> {
    let mut doc = policy.clone();
    let stmts: Vec<serde_json::Value> = match doc.get("Statement") {
        Some(serde_json::Value::Array(s)) => {
            s.iter().filter(|s| s["Sid"] != sid).cloned().collect()
        }
        Some(s @ serde_json::Value::Object(_)) if s["Sid"] != sid => vec![s.clone()],
        _ => vec![],
    };
    if stmts.is_empty() {
        return None;
    }
    doc["Statement"] = serde_json::Value::Array(stmts);
    Some(doc)
}

pub(crate) fn has_statement(policy: Option<&serde_json::Value>, sid: &str) -> bool {
    match policy.and_then(|p| p.get("Statement")) {
        Some(serde_json::Value::Array(s)) => s.iter().any(|s| s["Sid"] == sid),
        Some(s @ serde_json::Value::Object(_)) => s["Sid"] == sid,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_every_statement_and_is_idempotent() {
        let existing = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AllowCdn", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        ]});
        let merged = merge_deny(Some(&existing), "IRDenyX", "arn:aws:iam::1:user/u", "b");
        let stmts = merged["Statement"].as_array().unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0], existing["Statement"][0]);
        assert_eq!(
            merge_deny(Some(&merged), "IRDenyX", "arn:aws:iam::1:user/u", "b"),
            merged
        );
        assert_eq!(remove_statement(&merged, "IRDenyX"), Some(existing.clone()));
        assert_eq!(
            remove_statement(&merge_deny(None, "IRDenyX", "p", "b"), "IRDenyX"),
            None
        );
        // A single-object Statement is kept too.
        let single = serde_json::json!({"Version": "2012-10-17", "Statement": existing["Statement"][0].clone()});
        assert_eq!(
            merge_deny(Some(&single), "IRDenyX", "p", "b")["Statement"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
