//! The IAM calls the contain and release steps share: tags and the per-incident inline policy.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::{StatusType, Tag};
use chrono::Utc;
use ir_core::actions::revoke_older_sessions_policy;
use ir_core::permissions::{resource, Permission};

use crate::{Quarantiner, Target};

pub(crate) const USER: &str = resource::IAM_USER;
pub(crate) const ROLE: &str = resource::IAM_ROLE;

pub(crate) const TAG_USER: Permission = Permission::new("iam:TagUser", USER);
pub(crate) const TAG_ROLE: Permission = Permission::new("iam:TagRole", ROLE);
pub(crate) const UPDATE_ACCESS_KEY: Permission = Permission::new("iam:UpdateAccessKey", USER);

pub(crate) const PERMISSIONS: &[Permission] = &[TAG_USER, TAG_ROLE, UPDATE_ACCESS_KEY];

pub(crate) fn err_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_iam::error::DisplayErrorContext(e).to_string()
}

/// IAM's error code for a missing user, role, login profile or policy.
pub(crate) fn is_no_such_entity<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("NoSuchEntity")
}

/// The inline policy quarantine attaches: one per principal, whatever the number of incidents,
/// so repeated findings never grow the principal's inline policies towards IAM's aggregate quota
/// (2,048 characters for a user, 10,240 for a role).
pub(crate) const QUARANTINE_POLICY: &str = "ir-quarantine";

/// Deny everything, and explicitly every session issued before `cutoff`.
pub(crate) fn quarantine_policy(cutoff: chrono::DateTime<Utc>) -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(&revoke_older_sessions_policy(cutoff)).unwrap_or_default();
    if let Some(stmts) = doc["Statement"].as_array_mut() {
        stmts.insert(
            0,
            serde_json::json!({"Sid": "IncidentResponseQuarantineDenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"}),
        );
    }
    doc.to_string()
}

impl Quarantiner {
    /// Adds `tags` to the user or role (`iam:TagUser` / `iam:TagRole`).
    pub(crate) async fn tag(&self, target: &Target, tags: &[(&str, &str)]) -> Result<(), String> {
        let tags: Vec<Tag> = tags
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(*k).value(*v).build().ok())
            .collect();
        match target {
            Target::User { name, .. } => self
                .iam
                .tag_user()
                .user_name(name)
                .set_tags(Some(tags))
                .send()
                .await
                .map(|_| ())
                .map_err(err_text),
            Target::Role { name, .. } => self
                .iam
                .tag_role()
                .role_name(name)
                .set_tags(Some(tags))
                .send()
                .await
                .map(|_| ())
                .map_err(err_text),
        }
    }

    /// Sets one access key's status (`iam:UpdateAccessKey`).
    pub(crate) async fn set_key_status(
        &self,
        user: &str,
        key: &str,
        status: StatusType,
    ) -> Result<(), String> {
        self.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(status)
            .send()
            .await
            .map(|_| ())
            .map_err(err_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_policy_denies_all_then_older_sessions() {
        let doc: serde_json::Value =
            serde_json::from_str(&quarantine_policy(Utc::now())).expect("json");
        let stmts = doc["Statement"].as_array().expect("statements");
        assert_eq!(stmts[0]["Action"], "*");
        assert_eq!(stmts[0]["Effect"], "Deny");
        assert!(stmts.len() >= 2, "the TokenIssueTime statement is kept");
    }
}
