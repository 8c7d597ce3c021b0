//! The bucket-policy document: this playbook's Deny statement, merged beside every existing
//! statement and removed again on release (pure functions, no AWS call).

use ir_core::incident::{Incident, PrincipalKind};

/// The statement id this playbook owns in a bucket policy.
pub fn deny_sid(incident_id: &str) -> String {
    // Sids are alphanumeric.
    format!("IRDeny{}", incident_id.replace('-', ""))
}

/// S3's limit on a bucket policy, counted without insignificant whitespace.
pub const POLICY_MAX_BYTES: usize = 20 * 1024;

/// Whom the Deny names. It never names a principal ARN in `Principal`: S3 resolves such ARNs
/// when the policy is put and refuses the whole policy (`MalformedPolicy`) when one does not
/// resolve, as a role ARN built without the role's path (IAM Identity Center roles live under
/// `/aws-reserved/sso.amazonaws.com/`) or a principal of another account does. Instead the
/// statement denies `Principal: *` under a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyTarget {
    /// `aws:userid` patterns: a user's unique id (`AIDA…`), or every session of a role
    /// (`AROA…:*`). Unique ids are the same whatever the path or account.
    UserId(String),
    /// `aws:PrincipalArn` patterns, when the finding gives a name but no unique id: the
    /// principal with or without a path, in the bucket's account.
    PrincipalArn(Vec<String>),
}

impl DenyTarget {
    fn condition(&self) -> serde_json::Value {
        match self {
            DenyTarget::UserId(id) => serde_json::json!({"StringLike": {"aws:userid": id}}),
            DenyTarget::PrincipalArn(arns) => {
                serde_json::json!({"ArnLike": {"aws:PrincipalArn": arns}})
            }
        }
    }
}

impl std::fmt::Display for DenyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyTarget::UserId(id) => write!(f, "aws:userid {id}"),
            DenyTarget::PrincipalArn(arns) => write!(f, "aws:PrincipalArn {}", arns.join(" | ")),
        }
    }
}

/// An IAM unique id (`AIDA…`, `AROA…`): upper-case letters and digits.
fn is_unique_id(id: &str) -> bool {
    (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// An IAM user or role name, or a session name: `[\w+=,.@-]`, so no wildcard can reach the
/// policy from a finding.
fn is_iam_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// Whom to deny, from the finding's principal; `Err` says why there is no one to deny safely.
pub fn offending_principal(incident: &Incident) -> Result<DenyTarget, String> {
    let p = incident
        .principal
        .as_ref()
        .ok_or("the finding names no IAM principal to deny")?;
    let kind = match p.kind {
        PrincipalKind::IamUser => "user",
        PrincipalKind::AssumedRole | PrincipalKind::Role => "role",
        other => {
            return Err(format!(
                "a {other:?} principal cannot be denied in a bucket policy"
            ))
        }
    };
    if let Some(id) = p.principal_id.as_deref() {
        let unique = id.split_once(':').map_or(id, |(u, _)| u);
        if is_unique_id(unique) {
            return Ok(DenyTarget::UserId(if kind == "role" {
                format!("{unique}:*")
            } else {
                unique.to_string()
            }));
        }
    }
    let name = p
        .name
        .as_deref()
        .ok_or("the finding names the principal by neither unique id nor name")?;
    if !is_iam_name(name) {
        return Err(format!("`{name}` is not an IAM {kind} name: not denied"));
    }
    let (partition, account) = (&incident.partition, &incident.account_id);
    if !matches!(partition.as_str(), "aws" | "aws-cn" | "aws-us-gov")
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "`{partition}`/`{account}` is not an AWS partition and account id: not denied"
        ));
    }
    Ok(DenyTarget::PrincipalArn(vec![
        format!("arn:{partition}:iam::{account}:{kind}/{name}"),
        format!("arn:{partition}:iam::{account}:{kind}/*/{name}"),
    ]))
}

/// `policy` with a Deny for `target` added under `sid` (unless a statement with that Sid is
/// already there). Every existing statement is kept as it is.
pub fn merge_deny(
    policy: Option<&serde_json::Value>,
    sid: &str,
    target: &DenyTarget,
    bucket: &str,
    partition: &str,
) -> serde_json::Value {
    let mut doc = policy
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []}));
    let statement = serde_json::json!({
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [format!("arn:{partition}:s3:::{bucket}"), format!("arn:{partition}:s3:::{bucket}/*")],
        "Condition": target.condition()
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

/// The policy's size as S3 counts it (compact JSON).
pub fn policy_size(policy: &serde_json::Value) -> usize {
    policy.to_string().len()
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

    const USER: fn() -> DenyTarget = || DenyTarget::UserId("AIDAEXAMPLEUSER00001".into());

    #[test]
    fn merge_keeps_every_statement_and_is_idempotent() {
        let existing = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AllowCdn", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        ]});
        let merged = merge_deny(Some(&existing), "IRDenyX", &USER(), "b", "aws");
        let stmts = merged["Statement"].as_array().unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0], existing["Statement"][0]);
        assert_eq!(
            stmts[1]["Condition"]["StringLike"]["aws:userid"],
            "AIDAEXAMPLEUSER00001"
        );
        assert_eq!(
            merge_deny(Some(&merged), "IRDenyX", &USER(), "b", "aws"),
            merged
        );
        assert_eq!(remove_statement(&merged, "IRDenyX"), Some(existing.clone()));
        assert_eq!(
            remove_statement(&merge_deny(None, "IRDenyX", &USER(), "b", "aws"), "IRDenyX"),
            None
        );
        // A single-object Statement is kept too.
        let single = serde_json::json!({"Version": "2012-10-17", "Statement": existing["Statement"][0].clone()});
        assert_eq!(
            merge_deny(Some(&single), "IRDenyX", &USER(), "b", "aws")["Statement"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // The partition comes from the finding.
        let cn = merge_deny(None, "IRDenyX", &USER(), "b", "aws-cn");
        assert_eq!(cn["Statement"][0]["Resource"][0], "arn:aws-cn:s3:::b");
    }

    #[test]
    fn names_are_checked_before_they_reach_a_policy() {
        assert!(is_iam_name("deploy-bot"));
        assert!(is_iam_name("AWSReservedSSO_Admin_0123"));
        assert!(!is_iam_name("*"));
        assert!(!is_iam_name("a b"));
        assert!(!is_iam_name(""));
        assert!(is_unique_id("AROAQEXAMPLEROLE0004"));
        assert!(!is_unique_id("AROA*"));
        assert!(!is_unique_id("aroaqexamplerole0004"));
    }
}
