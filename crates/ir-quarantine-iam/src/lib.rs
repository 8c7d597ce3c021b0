//! ir-quarantine-iam: cut off a compromised IAM user or role without deleting anything, and undo it.
//!
//! Users, contain:
//! 1. `record-pre-state`: tag the user `ir:pre-quarantine` (JSON: each access key's status, and
//!    whether a console password existed with its creation date);
//! 2. `deny-all`: inline policy `ir-quarantine-<incident>` — Deny `*`, plus a Deny for sessions
//!    issued before now (`aws:TokenIssueTime`), so existing sessions die with it;
//! 3. `deactivate-key-<id>`: the finding's key first, then (unless `IR_DEACTIVATE_ALL_KEYS=false`)
//!    every other active key — set `Inactive`, never deleted;
//! 4. `disable-console`: delete the login profile (the password is a credential, not evidence;
//!    its creation date is kept in the pre-state) — the user, keys and policies stay;
//! 5. `tag-quarantined`: `ir:status=quarantined`, `ir:incident-id`.
//!
//! Roles, contain: `record-pre-state`, `revoke-sessions` (inline Deny for sessions issued before
//! now), `tag-quarantined`. Root and service-linked roles are never changed: the record is
//! `skipped` with an escalation reason.
//!
//! Release removes the inline policy, re-activates the keys that were active, tags
//! `ir:status=released` and removes the pre-state tag. It cannot restore a deleted password: the
//! record says to issue a new one.

use std::collections::BTreeMap;

use aws_sdk_iam::types::{StatusType, Tag};
use chrono::Utc;
use ir_core::actions::{
    recorded_pre_state, revoke_older_sessions_policy, ContainmentError, ContainmentRecord,
    ContainmentRequest, LiveTags, Mode, Runner, Start, StepFailed, StepResult, TAG_INCIDENT,
    TAG_STATUS,
};
use ir_core::config::{env_bool_strict, env_or};
use ir_core::incident::Resource;
use ir_core::killswitch::{KillSwitch, DEFAULT_KILL_SWITCH_PARAMETER};
use ir_core::policy::TagMatch;
use ir_core::ConfigError;
use serde::{Deserialize, Serialize};

pub const FUNCTION_NAME: &str = "ir-quarantine-iam";
/// Tag holding the pre-quarantine state (JSON).
pub const TAG_PRE_STATE: &str = "ir:pre-quarantine";

#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineConfig {
    pub kill_switch_parameter: String,
    pub dry_run: bool,
    /// `IR_DEACTIVATE_ALL_KEYS` (default true): all keys, not only the finding's.
    pub deactivate_all_keys: bool,
}

impl QuarantineConfig {
    pub fn from_env() -> Result<QuarantineConfig, ConfigError> {
        Ok(QuarantineConfig {
            kill_switch_parameter: env_or(
                "IR_KILL_SWITCH_PARAMETER",
                DEFAULT_KILL_SWITCH_PARAMETER,
            ),
            dry_run: env_bool_strict("IR_DRY_RUN")?.unwrap_or(false),
            deactivate_all_keys: env_bool_strict("IR_DEACTIVATE_ALL_KEYS")?.unwrap_or(true),
        })
    }
}

/// State before quarantine (stored as the `ir:pre-quarantine` tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamPreState {
    /// Access key id → `Active` / `Inactive` (users only).
    #[serde(rename = "k", default)]
    pub keys: BTreeMap<String, String>,
    /// Creation date of the console password, if the user had one.
    #[serde(rename = "c", default)]
    pub console_password_created: Option<String>,
}

/// The principal a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    User { name: String, key: Option<String> },
    Role { name: String },
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::User { name, .. } => format!("user/{name}"),
            Target::Role { name } => format!("role/{name}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Observed {
    tags: BTreeMap<String, String>,
    keys: BTreeMap<String, String>,
    console_password_created: Option<String>,
    inline_policies: Vec<String>,
    service_linked: bool,
}

fn err_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_iam::error::DisplayErrorContext(e).to_string()
}

fn policy_name(incident_id: &str) -> String {
    format!("ir-quarantine-{incident_id}")
}

/// Deny everything, and explicitly every session issued before `cutoff`.
fn quarantine_policy(cutoff: chrono::DateTime<Utc>) -> String {
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

#[derive(Debug, Clone)]
pub struct Quarantiner {
    pub iam: aws_sdk_iam::Client,
    pub kill_switch: KillSwitch,
    pub config: QuarantineConfig,
    pub protected_tags: Vec<TagMatch>,
}

impl Quarantiner {
    /// The Lambda handler body.
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        let started = Utc::now();
        let target =
            match req.decision.incident.primary_resource() {
                Some(Resource::IamUser {
                    user_name,
                    access_key_id,
                }) => Target::User {
                    name: user_name.clone(),
                    key: access_key_id.clone(),
                },
                Some(Resource::IamRole { role_name, .. }) => Target::Role {
                    name: role_name.clone(),
                },
                Some(Resource::RootUser { .. }) => return Ok(Runner::skipped(
                    FUNCTION_NAME,
                    &req,
                    "the root user is never changed automatically: escalate to the account owner"
                        .into(),
                    started,
                )),
                other => {
                    return Err(ContainmentError::WrongResource(
                        other
                            .map(|r| r.display_id())
                            .unwrap_or_else(|| "none".into()),
                    ))
                }
            };
        let obs = self.observe(&target).await?;
        if obs.service_linked {
            return Ok(Runner::skipped(
                FUNCTION_NAME,
                &req,
                format!(
                    "{} is a service-linked role: never changed automatically",
                    target.label()
                ),
                started,
            ));
        }
        let live = LiveTags {
            tags: &obs.tags,
            protected: &self.protected_tags,
        };
        let (mut runner, dry_run) = match Runner::begin(
            FUNCTION_NAME,
            &req,
            live,
            &self.kill_switch,
            self.config.dry_run,
            started,
        )
        .await
        {
            Start::Skipped(record) => return Ok(record),
            Start::Run { runner, reason } => (runner, reason),
        };
        // The original state: from the tag an earlier run left, else what is there now.
        let pre = recorded_pre_state(
            &obs.tags,
            TAG_PRE_STATE,
            IamPreState {
                keys: obs.keys.clone(),
                console_password_created: obs.console_password_created.clone(),
            },
        )?;
        let incident_id = req.decision.incident_id.clone();
        let result = match req.mode {
            Mode::Contain => {
                self.contain(&mut runner, &incident_id, &target, &obs, &pre)
                    .await
            }
            Mode::Release => {
                self.release(&mut runner, &incident_id, &target, &obs, &pre)
                    .await
            }
        };
        let record = runner.finish(
            req.mode,
            started,
            serde_json::to_value(&pre).unwrap_or_default(),
            result,
            dry_run,
        );
        record.into_result()
    }

    async fn observe(&self, target: &Target) -> Result<Observed, ContainmentError> {
        let read = |what: &str, e: String| ContainmentError::Read {
            what: what.to_string(),
            message: e,
        };
        let not_found = |e: &str| e.contains("NoSuchEntity");
        let pairs = |tags: &[Tag]| -> BTreeMap<String, String> {
            tags.iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        };
        match target {
            Target::User { name, .. } => {
                if let Err(e) = self.iam.get_user().user_name(name).send().await {
                    let e = err_text(e);
                    return Err(if not_found(&e) {
                        ContainmentError::NotFound(target.label())
                    } else {
                        read("iam:GetUser", e)
                    });
                }
                let tags = self
                    .iam
                    .list_user_tags()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| read("iam:ListUserTags", err_text(e)))?;
                let keys = self
                    .iam
                    .list_access_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| read("iam:ListAccessKeys", err_text(e)))?;
                let console_password_created =
                    match self.iam.get_login_profile().user_name(name).send().await {
                        Ok(o) => o.login_profile().map(|p| p.create_date().to_string()),
                        Err(e) if not_found(&err_text(&e)) => None,
                        Err(e) => return Err(read("iam:GetLoginProfile", err_text(e))),
                    };
                let inline = self
                    .iam
                    .list_user_policies()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| read("iam:ListUserPolicies", err_text(e)))?;
                Ok(Observed {
                    tags: pairs(tags.tags()),
                    keys: keys
                        .access_key_metadata()
                        .iter()
                        .filter_map(|k| {
                            Some((
                                k.access_key_id()?.to_string(),
                                k.status()?.as_str().to_string(),
                            ))
                        })
                        .collect(),
                    console_password_created,
                    inline_policies: inline.policy_names().to_vec(),
                    service_linked: false,
                })
            }
            Target::Role { name } => {
                let role = match self.iam.get_role().role_name(name).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let e = err_text(e);
                        return Err(if not_found(&e) {
                            ContainmentError::NotFound(target.label())
                        } else {
                            read("iam:GetRole", e)
                        });
                    }
                };
                let service_linked = name.starts_with("AWSServiceRoleFor")
                    || role
                        .role()
                        .is_some_and(|r| r.path().starts_with("/aws-service-role/"));
                let tags = self
                    .iam
                    .list_role_tags()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| read("iam:ListRoleTags", err_text(e)))?;
                let inline = self
                    .iam
                    .list_role_policies()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| read("iam:ListRolePolicies", err_text(e)))?;
                Ok(Observed {
                    tags: pairs(tags.tags()),
                    keys: BTreeMap::new(),
                    console_password_created: None,
                    inline_policies: inline.policy_names().to_vec(),
                    service_linked,
                })
            }
        }
    }

    async fn tag(&self, target: &Target, tags: &[(&str, &str)]) -> Result<(), String> {
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
            Target::Role { name } => self
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

    async fn untag(&self, target: &Target, key: &str) -> Result<(), String> {
        match target {
            Target::User { name, .. } => self
                .iam
                .untag_user()
                .user_name(name)
                .tag_keys(key)
                .send()
                .await
                .map(|_| ())
                .map_err(err_text),
            Target::Role { name } => self
                .iam
                .untag_role()
                .role_name(name)
                .tag_keys(key)
                .send()
                .await
                .map(|_| ())
                .map_err(err_text),
        }
    }

    async fn contain(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        target: &Target,
        obs: &Observed,
        pre: &IamPreState,
    ) -> Result<(), StepFailed> {
        let label = target.label();
        let pre_json = serde_json::to_string(pre).unwrap_or_default();
        let recorded = obs.tags.contains_key(TAG_PRE_STATE);
        runner
            .step(
                "record-pre-state",
                "iam:TagUser/TagRole",
                &label,
                format!("{TAG_PRE_STATE}={pre_json}"),
                || async {
                    if recorded {
                        return Ok(StepResult::AlreadyDone("pre-state already recorded".into()));
                    }
                    self.tag(target, &[(TAG_PRE_STATE, &pre_json)]).await?;
                    Ok(StepResult::Changed("recorded".into()))
                },
            )
            .await?;

        let name = policy_name(incident_id);
        let has_policy = obs.inline_policies.contains(&name);
        let cutoff = Utc::now();
        match target {
            Target::User { name: user, key } => {
                let doc = quarantine_policy(cutoff);
                runner
                    .step(
                        "deny-all",
                        "iam:PutUserPolicy",
                        &label,
                        format!("{name}: Deny * and sessions issued before {cutoff}"),
                        || async {
                            if has_policy {
                                return Ok(StepResult::AlreadyDone(format!("{name} in place")));
                            }
                            self.iam
                                .put_user_policy()
                                .user_name(user)
                                .policy_name(&name)
                                .policy_document(&doc)
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!("{name} attached")))
                        },
                    )
                    .await?;
                // The finding's key first, then the rest.
                let mut order: Vec<&String> = obs
                    .keys
                    .keys()
                    .filter(|k| Some(*k) == key.as_ref())
                    .collect();
                if self.config.deactivate_all_keys {
                    order.extend(obs.keys.keys().filter(|k| Some(*k) != key.as_ref()));
                }
                if let Some(k) = key.as_ref().filter(|k| !obs.keys.contains_key(*k)) {
                    runner.skip(
                        &format!("deactivate-key-{k}"),
                        &label,
                        "the finding's key does not belong to this user (already deleted?)".into(),
                    );
                }
                for k in order {
                    let active = obs.keys.get(k).map(String::as_str) == Some("Active");
                    runner
                        .step(
                            &format!("deactivate-key-{k}"),
                            "iam:UpdateAccessKey",
                            k,
                            "status → Inactive".into(),
                            || async {
                                if !active {
                                    return Ok(StepResult::AlreadyDone("already Inactive".into()));
                                }
                                self.iam
                                    .update_access_key()
                                    .user_name(user)
                                    .access_key_id(k)
                                    .status(StatusType::Inactive)
                                    .send()
                                    .await
                                    .map_err(err_text)?;
                                Ok(StepResult::Changed("Active → Inactive".into()))
                            },
                        )
                        .await?;
                }
                let has_password = obs.console_password_created.is_some();
                runner
                    .step(
                        "disable-console",
                        "iam:DeleteLoginProfile",
                        &label,
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
                    .await?;
            }
            Target::Role { name: role } => {
                let doc = revoke_older_sessions_policy(cutoff);
                runner
                    .step(
                        "revoke-sessions",
                        "iam:PutRolePolicy",
                        &label,
                        format!("{name}: deny sessions issued before {cutoff}"),
                        || async {
                            if has_policy {
                                return Ok(StepResult::AlreadyDone(format!("{name} in place")));
                            }
                            self.iam
                                .put_role_policy()
                                .role_name(role)
                                .policy_name(&name)
                                .policy_document(&doc)
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!("{name} attached")))
                        },
                    )
                    .await?;
            }
        }

        let tagged = obs.tags.get(TAG_STATUS).map(String::as_str) == Some("quarantined")
            && obs.tags.get(TAG_INCIDENT).map(String::as_str) == Some(incident_id);
        runner
            .step(
                "tag-quarantined",
                "iam:TagUser/TagRole",
                &label,
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

    async fn release(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        target: &Target,
        obs: &Observed,
        pre: &IamPreState,
    ) -> Result<(), StepFailed> {
        let label = target.label();
        let name = policy_name(incident_id);
        let has_policy = obs.inline_policies.contains(&name);
        runner
            .step(
                "remove-quarantine-policy",
                "iam:DeleteUserPolicy/DeleteRolePolicy",
                &label,
                format!("delete {name}"),
                || async {
                    if !has_policy {
                        return Ok(StepResult::AlreadyDone("no quarantine policy".into()));
                    }
                    match target {
                        Target::User { name: u, .. } => self
                            .iam
                            .delete_user_policy()
                            .user_name(u)
                            .policy_name(&name)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(err_text),
                        Target::Role { name: r } => self
                            .iam
                            .delete_role_policy()
                            .role_name(r)
                            .policy_name(&name)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(err_text),
                    }?;
                    Ok(StepResult::Changed(format!("{name} deleted")))
                },
            )
            .await?;
        if let Target::User { name: user, .. } = target {
            for (k, status) in &pre.keys {
                let now = obs.keys.get(k).cloned();
                if status != "Active" {
                    continue;
                }
                if now.is_none() {
                    runner.skip(
                        &format!("reactivate-key-{k}"),
                        k,
                        "the key was deleted since containment; nothing to re-activate".into(),
                    );
                    continue;
                }
                runner
                    .step(
                        &format!("reactivate-key-{k}"),
                        "iam:UpdateAccessKey",
                        k,
                        "status → Active".into(),
                        || async {
                            match now.as_deref() {
                                Some("Active") => {
                                    Ok(StepResult::AlreadyDone("already Active".into()))
                                }
                                _ => {
                                    self.iam
                                        .update_access_key()
                                        .user_name(user)
                                        .access_key_id(k)
                                        .status(StatusType::Active)
                                        .send()
                                        .await
                                        .map_err(err_text)?;
                                    Ok(StepResult::Changed("Inactive → Active".into()))
                                }
                            }
                        },
                    )
                    .await?;
            }
            if pre.console_password_created.is_some() && obs.console_password_created.is_none() {
                runner.skip(
                    "restore-console",
                    &label,
                    format!("the console password cannot be restored: issue a new one (aws iam create-login-profile --user-name {user} --password-reset-required)"),
                );
            }
        }
        runner
            .step(
                "tag-released",
                "iam:TagUser/TagRole",
                &label,
                format!("{TAG_STATUS}=released; remove {TAG_PRE_STATE}"),
                || async {
                    self.tag(
                        target,
                        &[(TAG_STATUS, "released"), (TAG_INCIDENT, incident_id)],
                    )
                    .await?;
                    self.untag(target, TAG_PRE_STATE).await?;
                    Ok(StepResult::Changed("released".into()))
                },
            )
            .await
    }
}
