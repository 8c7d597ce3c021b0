//! Release (a false positive): the quarantine policy goes, the keys that were active before
//! come back. A deleted console password cannot be restored: the record says how to issue one.

use aws_sdk_iam::types::StatusType;
use ir_core::actions::{Runner, StepFailed, StepResult, TAG_INCIDENT, TAG_STATUS};
use ir_core::permissions::Permission;

use crate::iam::{err_text, ROLE, TAG_ROLE, TAG_USER, UPDATE_ACCESS_KEY, USER};
use crate::{IamPreState, Observed, Quarantiner, Target};

pub(crate) const DELETE_USER_POLICY: Permission = Permission::new("iam:DeleteUserPolicy", USER);
pub(crate) const DELETE_ROLE_POLICY: Permission = Permission::new("iam:DeleteRolePolicy", ROLE);

pub(crate) const PERMISSIONS: &[Permission] = &[DELETE_USER_POLICY, DELETE_ROLE_POLICY];

impl Quarantiner {
    /// The release steps, in order.
    pub(crate) async fn restore(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        target: &Target,
        obs: &Observed,
        pre: &IamPreState,
    ) -> Result<(), StepFailed> {
        self.remove_policy(runner, target, obs).await?;
        if let Target::User { name, .. } = target {
            self.reactivate_keys(runner, name, obs, pre).await?;
            note_console(runner, name, obs, pre);
        }
        self.tag_released(runner, incident_id, target).await
    }

    /// Step `remove-quarantine-policy`: delete the principal's quarantine (or instance revoke)
    /// policy.
    async fn remove_policy(
        &self,
        runner: &mut Runner,
        target: &Target,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let name = target.policy_name();
        let has_policy = obs.inline_policies.contains(&name);
        runner
            .step(
                "remove-quarantine-policy",
                target.call(&DELETE_USER_POLICY, &DELETE_ROLE_POLICY),
                &target.label(),
                format!("delete {name}"),
                || async {
                    if !has_policy {
                        return Ok(StepResult::AlreadyDone("no quarantine policy".into()));
                    }
                    self.delete_policy(target, &name).await?;
                    Ok(StepResult::Changed(format!("{name} deleted")))
                },
            )
            .await
    }

    async fn delete_policy(&self, target: &Target, policy: &str) -> Result<(), String> {
        match target {
            Target::User { name, .. } => self
                .iam
                .delete_user_policy()
                .user_name(name)
                .policy_name(policy)
                .send()
                .await
                .map(|_| ())
                .map_err(err_text),
            Target::Role { name, .. } => self
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .map(|_| ())
                .map_err(err_text),
        }
    }

    /// Steps `reactivate-key-<id>`: every key that was `Active` in the stored pre-state and
    /// still exists.
    async fn reactivate_keys(
        &self,
        runner: &mut Runner,
        user: &str,
        obs: &Observed,
        pre: &IamPreState,
    ) -> Result<(), StepFailed> {
        for (k, status) in &pre.keys {
            if status != "Active" {
                continue;
            }
            let Some(now) = obs.keys.get(k).cloned() else {
                runner.skip(
                    &format!("reactivate-key-{k}"),
                    k,
                    "the key was deleted since containment; nothing to re-activate".into(),
                );
                continue;
            };
            runner
                .step(
                    &format!("reactivate-key-{k}"),
                    &UPDATE_ACCESS_KEY,
                    k,
                    "status → Active".into(),
                    || async {
                        if now == "Active" {
                            return Ok(StepResult::AlreadyDone("already Active".into()));
                        }
                        self.set_key_status(user, k, StatusType::Active).await?;
                        Ok(StepResult::Changed("Inactive → Active".into()))
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Step `tag-released`: `ir:status=released`.
    async fn tag_released(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        target: &Target,
    ) -> Result<(), StepFailed> {
        runner
            .step(
                "tag-released",
                target.call(&TAG_USER, &TAG_ROLE),
                &target.label(),
                format!("{TAG_STATUS}=released"),
                || async {
                    self.tag(
                        target,
                        &[(TAG_STATUS, "released"), (TAG_INCIDENT, incident_id)],
                    )
                    .await?;
                    Ok(StepResult::Changed("released".into()))
                },
            )
            .await
    }
}

/// Step `restore-console` (skipped): a deleted password cannot come back.
fn note_console(runner: &mut Runner, user: &str, obs: &Observed, pre: &IamPreState) {
    if pre.console_password_created.is_some() && obs.console_password_created.is_none() {
        runner.skip(
            "restore-console",
            &format!("user/{user}"),
            format!("the console password cannot be restored: issue a new one (aws iam create-login-profile --user-name {user} --password-reset-required)"),
        );
    }
}
