//! ir-quarantine-iam: cut off a compromised IAM user or role without deleting anything, and undo it.
//!
//! Users, contain:
//! 1. `record-pre-state`: the user's state (each access key's status, and whether a console
//!    password existed with its creation date) into the pre-state table
//!    ([`ir_core::prestate`]), unless an earlier response recorded it first;
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
//! Release removes the inline policy, re-activates the keys that were active in the stored
//! pre-state, tags `ir:status=released` and marks the stored pre-state released. It cannot
//! restore a deleted password: the record says to issue a new one.
//!
//! Every AWS call is declared as a [`Permission`] beside the code that makes it; [`PERMISSIONS`]
//! is the function's whole IAM policy.

use std::collections::BTreeMap;

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::{StatusType, Tag};
use chrono::Utc;
use ir_core::actions::{
    revoke_older_sessions_policy, ContainmentError, ContainmentRecord, ContainmentRequest, Runner,
    Safety, StepFailed, StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::config::env_bool_strict;
use ir_core::incident::Resource;
use ir_core::permissions::{resource, union, Permission, KILL_SWITCH_READ};
use ir_core::playbook::{Playbook, Refusal};
use ir_core::prestate::{PreStateKey, PreStateStore};
use ir_core::ConfigError;
use serde::{Deserialize, Serialize};

pub const FUNCTION_NAME: &str = "ir-quarantine-iam";

const USER: &str = resource::IAM_USER;
const ROLE: &str = resource::IAM_ROLE;
// observe
const GET_USER: Permission = Permission::new("iam:GetUser", USER);
const LIST_USER_TAGS: Permission = Permission::new("iam:ListUserTags", USER);
const LIST_ACCESS_KEYS: Permission = Permission::new("iam:ListAccessKeys", USER);
const GET_LOGIN_PROFILE: Permission = Permission::new("iam:GetLoginProfile", USER);
const LIST_USER_POLICIES: Permission = Permission::new("iam:ListUserPolicies", USER);
const GET_ROLE: Permission = Permission::new("iam:GetRole", ROLE);
const LIST_ROLE_TAGS: Permission = Permission::new("iam:ListRoleTags", ROLE);
const LIST_ROLE_POLICIES: Permission = Permission::new("iam:ListRolePolicies", ROLE);
const OBSERVE: &[Permission] = &[
    GET_USER,
    LIST_USER_TAGS,
    LIST_ACCESS_KEYS,
    GET_LOGIN_PROFILE,
    LIST_USER_POLICIES,
    GET_ROLE,
    LIST_ROLE_TAGS,
    LIST_ROLE_POLICIES,
];
// contain
const PUT_USER_POLICY: Permission = Permission::new("iam:PutUserPolicy", USER);
const PUT_ROLE_POLICY: Permission = Permission::new("iam:PutRolePolicy", ROLE);
const UPDATE_ACCESS_KEY: Permission = Permission::new("iam:UpdateAccessKey", USER);
const DELETE_LOGIN_PROFILE: Permission = Permission::new("iam:DeleteLoginProfile", USER);
const TAG_USER: Permission = Permission::new("iam:TagUser", USER);
const TAG_ROLE: Permission = Permission::new("iam:TagRole", ROLE);
const CONTAIN: &[Permission] = &[
    PUT_USER_POLICY,
    PUT_ROLE_POLICY,
    UPDATE_ACCESS_KEY,
    DELETE_LOGIN_PROFILE,
    TAG_USER,
    TAG_ROLE,
];
// release
const DELETE_USER_POLICY: Permission = Permission::new("iam:DeleteUserPolicy", USER);
const DELETE_ROLE_POLICY: Permission = Permission::new("iam:DeleteRolePolicy", ROLE);
const RELEASE: &[Permission] = &[DELETE_USER_POLICY, DELETE_ROLE_POLICY];

/// Every AWS call this function makes.
pub fn permissions() -> Vec<Permission> {
    union(&[
        &[KILL_SWITCH_READ],
        ir_core::prestate::PERMISSIONS,
        OBSERVE,
        CONTAIN,
        RELEASE,
    ])
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineConfig {
    /// `IR_DEACTIVATE_ALL_KEYS` (default true): all keys, not only the finding's.
    pub deactivate_all_keys: bool,
}

impl QuarantineConfig {
    pub fn from_env() -> Result<QuarantineConfig, ConfigError> {
        Ok(QuarantineConfig {
            deactivate_all_keys: env_bool_strict("IR_DEACTIVATE_ALL_KEYS")?.unwrap_or(true),
        })
    }
}

/// State before quarantine (kept in the pre-state table).
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
pub enum Target {
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

    /// The declared permission of the user or role variant of a call.
    fn call(&self, user: &'static Permission, role: &'static Permission) -> &'static Permission {
        match self {
            Target::User { .. } => user,
            Target::Role { .. } => role,
        }
    }
}

/// The live view of the principal.
#[derive(Debug, Clone)]
pub struct Observed {
    tags: BTreeMap<String, String>,
    keys: BTreeMap<String, String>,
    console_password_created: Option<String>,
    inline_policies: Vec<String>,
    service_linked: bool,
}

fn err_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_iam::error::DisplayErrorContext(e).to_string()
}

/// IAM's error code for a missing user, role, login profile or policy.
fn is_no_such_entity<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("NoSuchEntity")
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

impl Playbook for Quarantiner {
    type Target = Target;
    type Observed = Observed;
    type PreState = IamPreState;
    const FUNCTION: &'static str = FUNCTION_NAME;

    fn safety(&self) -> &Safety {
        &self.safety
    }

    fn pre_state_store(&self) -> &PreStateStore {
        &self.pre_state
    }

    fn target(&self, req: &ContainmentRequest) -> Result<Target, Refusal> {
        match req.decision.incident.primary_resource() {
            Some(Resource::IamUser {
                user_name,
                access_key_id,
            }) => Ok(Target::User {
                name: user_name.clone(),
                key: access_key_id.clone(),
            }),
            Some(Resource::IamRole { role_name, .. }) => Ok(Target::Role {
                name: role_name.clone(),
            }),
            Some(Resource::RootUser { .. }) => Err(Refusal::NeverTouch(
                "the root user is never changed automatically: escalate to the account owner"
                    .into(),
            )),
            other => Err(Refusal::Error(ContainmentError::WrongResource(
                other
                    .map(|r| r.display_id())
                    .unwrap_or_else(|| "none".into()),
            ))),
        }
    }

    async fn observe(&self, target: &Target) -> Result<Observed, ContainmentError> {
        self.read_live(target).await
    }

    fn never_touch(&self, target: &Target, obs: &Observed) -> Option<String> {
        obs.service_linked.then(|| {
            format!(
                "{} is a service-linked role: never changed automatically",
                target.label()
            )
        })
    }

    fn live_tags<'a>(&self, obs: &'a Observed) -> &'a BTreeMap<String, String> {
        &obs.tags
    }

    fn pre_state_key(&self, req: &ContainmentRequest, target: &Target) -> PreStateKey {
        // IAM is global: one item per principal, whichever region the finding came from.
        PreStateKey::new(&req.decision.incident.account_id, "global", &target.label())
    }

    fn observed_pre_state(&self, _target: &Target, obs: &Observed) -> IamPreState {
        IamPreState {
            keys: obs.keys.clone(),
            console_password_created: obs.console_password_created.clone(),
        }
    }

    async fn contain(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        target: &Target,
        obs: &Observed,
        _pre: &IamPreState,
    ) -> Result<(), StepFailed> {
        self.quarantine(runner, &req.decision.incident_id, target, obs)
            .await
    }

    async fn release(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        target: &Target,
        obs: &Observed,
        pre: &IamPreState,
    ) -> Result<(), StepFailed> {
        self.restore(runner, &req.decision.incident_id, target, obs, pre)
            .await
    }
}

#[derive(Debug, Clone)]
pub struct Quarantiner {
    pub iam: aws_sdk_iam::Client,
    pub safety: Safety,
    pub pre_state: PreStateStore,
    pub config: QuarantineConfig,
}

impl Quarantiner {
    /// The Lambda handler body: the shared playbook skeleton ([`ir_core::playbook::run`]).
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run(self, req).await
    }

    /// Reads the principal, its keys, console password, inline policies and tags.
    async fn read_live(&self, target: &Target) -> Result<Observed, ContainmentError> {
        let read = |what: &str, e: String| ContainmentError::Read {
            what: what.to_string(),
            message: e,
        };
        let pairs = |tags: &[Tag]| -> BTreeMap<String, String> {
            tags.iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        };
        match target {
            Target::User { name, .. } => {
                if let Err(e) = self.iam.get_user().user_name(name).send().await {
                    return Err(if is_no_such_entity(&e) {
                        ContainmentError::NotFound(target.label())
                    } else {
                        read(GET_USER.action, err_text(e))
                    });
                }
                let tags = self
                    .iam
                    .list_user_tags()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| read(LIST_USER_TAGS.action, err_text(e)))?;
                let keys = self
                    .iam
                    .list_access_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| read(LIST_ACCESS_KEYS.action, err_text(e)))?;
                let console_password_created =
                    match self.iam.get_login_profile().user_name(name).send().await {
                        Ok(o) => o.login_profile().map(|p| p.create_date().to_string()),
                        Err(e) if is_no_such_entity(&e) => None,
                        Err(e) => return Err(read(GET_LOGIN_PROFILE.action, err_text(e))),
                    };
                let inline = self
                    .iam
                    .list_user_policies()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| read(LIST_USER_POLICIES.action, err_text(e)))?;
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
                        return Err(if is_no_such_entity(&e) {
                            ContainmentError::NotFound(target.label())
                        } else {
                            read(GET_ROLE.action, err_text(e))
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
                    .map_err(|e| read(LIST_ROLE_TAGS.action, err_text(e)))?;
                let inline = self
                    .iam
                    .list_role_policies()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| read(LIST_ROLE_POLICIES.action, err_text(e)))?;
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

    /// The quarantine steps.
    async fn quarantine(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        target: &Target,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let label = target.label();
        let name = policy_name(incident_id);
        let has_policy = obs.inline_policies.contains(&name);
        let cutoff = Utc::now();
        match target {
            Target::User { name: user, key } => {
                let doc = quarantine_policy(cutoff);
                runner
                    .step(
                        "deny-all",
                        &PUT_USER_POLICY,
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
                            &UPDATE_ACCESS_KEY,
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
                        &DELETE_LOGIN_PROFILE,
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
                        &PUT_ROLE_POLICY,
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
                target.call(&TAG_USER, &TAG_ROLE),
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

    /// The release steps.
    async fn restore(
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
                target.call(&DELETE_USER_POLICY, &DELETE_ROLE_POLICY),
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
                        &UPDATE_ACCESS_KEY,
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
                target.call(&TAG_USER, &TAG_ROLE),
                &label,
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
