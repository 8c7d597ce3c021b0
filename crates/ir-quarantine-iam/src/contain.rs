//! Quarantine, in order: the deny policy first (it cuts every credential at once), then the
//! user's keys and console password, then the marker tags.

use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, Utc};
use ir_core::actions::{
    revoke_instance_credentials_policy, revoke_older_sessions_policy, Runner, StepFailed,
    StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::incident::Incident;
use ir_core::permissions::Permission;

use crate::iam::{
    err_text, quarantine_policy, QUARANTINE_POLICY, ROLE, TAG_ROLE, TAG_USER, UPDATE_ACCESS_KEY,
    USER,
};
use crate::{Observed, Quarantiner, Target};

pub(crate) const PUT_USER_POLICY: Permission = Permission::new("iam:PutUserPolicy", USER);
pub(crate) const PUT_ROLE_POLICY: Permission = Permission::new("iam:PutRolePolicy", ROLE);
pub(crate) const DELETE_LOGIN_PROFILE: Permission = Permission::new("iam:DeleteLoginProfile", USER);

pub(crate) const PERMISSIONS: &[Permission] =
    &[PUT_USER_POLICY, PUT_ROLE_POLICY, DELETE_LOGIN_PROFILE];

impl Quarantiner {
    /// The quarantine steps, in order.
    pub(crate) async fn quarantine(
        &self,
        runner: &mut Runner,
        incident: &Incident,
        target: &Target,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let cutoff = Utc::now();
        let (incident_id, partition, account) = (
            incident.incident_id.as_str(),
            incident.partition.as_str(),
            incident.account_id.as_str(),
        );
        match target {
            Target::User { name, key } => {
                self.deny_user(runner, name, obs, cutoff).await?;
                self.deactivate_keys(runner, name, key.as_deref(), obs)
                    .await?;
                self.disable_console(runner, name, obs).await?;
            }
            Target::Role {
                name,
                instance: Some(id),
            } => {
                let policy = target.policy_name();
                let doc = revoke_instance_credentials_policy(partition, account, id);
                self.revoke_instance_credentials(runner, &policy, name, id, &doc, obs)
                    .await?;
            }
            Target::Role { name, .. } => {
                self.revoke_role_sessions(runner, name, obs, cutoff).await?;
            }
        }
        self.tag_quarantined(runner, incident_id, target, obs).await
    }

    /// Step `deny-all`: inline policy `ir-quarantine` on the user (Deny `*` covers every later
    /// incident too: a repeat finds it in place).
    async fn deny_user(
        &self,
        runner: &mut Runner,
        user: &str,
        obs: &Observed,
        cutoff: DateTime<Utc>,
    ) -> Result<(), StepFailed> {
        let name = QUARANTINE_POLICY;
        let in_place = obs.inline_policies.iter().any(|p| p == name);
        let doc = quarantine_policy(cutoff);
        runner
            .step(
                "deny-all",
                &PUT_USER_POLICY,
                &format!("user/{user}"),
                format!("{name}: Deny * and sessions issued before {cutoff}"),
                || async {
                    if in_place {
                        return Ok(StepResult::AlreadyDone(format!("{name} in place")));
                    }
                    self.iam
                        .put_user_policy()
                        .user_name(user)
                        .policy_name(name)
                        .policy_document(&doc)
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed(format!("{name} attached")))
                },
            )
            .await
    }

    /// Steps `deactivate-key-<id>`: the finding's key first, then (unless configured not to)
    /// every other key. Keys are set `Inactive`, never deleted.
    async fn deactivate_keys(
        &self,
        runner: &mut Runner,
        user: &str,
        key: Option<&str>,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let mut order: Vec<&String> = obs
            .keys
            .keys()
            .filter(|k| Some(k.as_str()) == key)
            .collect();
        if self.config.deactivate_all_keys {
            order.extend(obs.keys.keys().filter(|k| Some(k.as_str()) != key));
        }
        if let Some(k) = key.filter(|k| !obs.keys.contains_key(*k)) {
            runner.skip(
                &format!("deactivate-key-{k}"),
                &format!("user/{user}"),
                "the finding's key does not belong to this user (already deleted?)".into(),
            );
        }
        for k in order {
            let active = obs.keys.get(k).map(String::as_str) == Some("Active");
            runner
                .step(
                    &format!("deactivate-key-{k}"),
                    &UPDATE_ACCESS_KEY,
                    k,
                    "status → Inactive".into(),
                    || async {
                        if !active {
                            return Ok(StepResult::AlreadyDone("already Inactive".into()));
                        }
                        self.set_key_status(user, k, StatusType::Inactive).await?;
                        Ok(StepResult::Changed("Active → Inactive".into()))
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Step `disable-console`: delete the login profile (the user, keys and policies stay; the
    /// password's creation date is in the pre-state).
    async fn disable_console(
        &self,
        runner: &mut Runner,
        user: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let has_password = obs.console_password_created.is_some();
        runner
            .step(
                "disable-console",
                &DELETE_LOGIN_PROFILE,
                &format!("user/{user}"),
                "remove the console password (user, keys and policies stay)".into(),
                || async {
                    if !has_password {
                        return Ok(StepResult::AlreadyDone("no console password".into()));
                    }
                    self.iam
                        .delete_login_profile()
                        .user_name(user)
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed("console password removed".into()))
                },
            )
            .await
    }

    /// Step `revoke-sessions`: inline policy `ir-quarantine` on the role, denying sessions issued
    /// before now. A later incident moves the cutoff forward (the same one policy): sessions an
    /// attacker opened since the first revocation die too.
    async fn revoke_role_sessions(
        &self,
        runner: &mut Runner,
        role: &str,
        obs: &Observed,
        cutoff: DateTime<Utc>,
    ) -> Result<(), StepFailed> {
        let name = QUARANTINE_POLICY;
        let in_place = obs.inline_policies.iter().any(|p| p == name);
        let doc = revoke_older_sessions_policy(cutoff);
        runner
            .step(
                "revoke-sessions",
                &PUT_ROLE_POLICY,
                &format!("role/{role}"),
                format!("{name}: deny sessions issued before {cutoff}"),
                || async {
                    self.iam
                        .put_role_policy()
                        .role_name(role)
                        .policy_name(name)
                        .policy_document(&doc)
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed(if in_place {
                        format!("{name}: cutoff moved to {cutoff}")
                    } else {
                        format!("{name} attached")
                    }))
                },
            )
            .await
    }

    /// Step `revoke-instance-credentials`: inline Deny on the role for the credentials delivered
    /// to one instance, wherever they are used; the role's other sessions keep working.
    async fn revoke_instance_credentials(
        &self,
        runner: &mut Runner,
        name: &str,
        role: &str,
        instance: &str,
        doc: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let in_place = obs.inline_policies.iter().any(|p| p == name);
        runner
            .step(
                "revoke-instance-credentials",
                &PUT_ROLE_POLICY,
                &format!("role/{role}"),
                format!("{name}: deny the credentials of {instance} and sessions named after it"),
                || async {
                    if in_place {
                        return Ok(StepResult::AlreadyDone(format!("{name} in place")));
                    }
                    self.iam
                        .put_role_policy()
                        .role_name(role)
                        .policy_name(name)
                        .policy_document(doc)
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed(format!("{name} attached")))
                },
            )
            .await
    }

    /// Step `tag-quarantined`: `ir:status=quarantined`, `ir:incident-id`.
    async fn tag_quarantined(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        target: &Target,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let tagged = obs.tags.get(TAG_STATUS).map(String::as_str) == Some("quarantined")
            && obs.tags.get(TAG_INCIDENT).map(String::as_str) == Some(incident_id);
        runner
            .step(
                "tag-quarantined",
                target.call(&TAG_USER, &TAG_ROLE),
                &target.label(),
                format!("{TAG_STATUS}=quarantined, {TAG_INCIDENT}={incident_id}"),
                || async {
                    if tagged {
                        return Ok(StepResult::AlreadyDone("already tagged".into()));
                    }
                    self.tag(
                        target,
                        &[(TAG_STATUS, "quarantined"), (TAG_INCIDENT, incident_id)],
                    )
                    .await?;
                    Ok(StepResult::Changed("tagged".into()))
                },
            )
            .await
    }
}
