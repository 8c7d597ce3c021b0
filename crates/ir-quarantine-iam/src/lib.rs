//! ir-quarantine-iam: cut off a compromised IAM user or role without deleting anything, and undo it.
//!
//! Users, contain:
//! 1. `record-pre-state`: the user's state (each access key's status, and whether a console
//!    password existed with its creation date) into the pre-state table
//!    ([`ir_core::prestate`]), unless an earlier response recorded it first;
//! 2. `deny-all`: inline policy `ir-quarantine` (one per principal, whatever the number of
//!    incidents) — Deny `*`, plus a Deny for sessions issued before now (`aws:TokenIssueTime`),
//!    so existing sessions die with it;
//! 3. `deactivate-key-<id>`: the finding's key first, then (unless `IR_DEACTIVATE_ALL_KEYS=false`)
//!    every other active key — set `Inactive`, never deleted;
//! 4. `disable-console`: delete the login profile (the password is a credential, not evidence;
//!    its creation date is kept in the pre-state) — the user, keys and policies stay;
//! 5. `tag-quarantined`: `ir:status=quarantined`, `ir:incident-id`.
//!
//! Roles, contain: `record-pre-state`, then for an EC2 instance's session (instance-profile
//! credentials, e.g. `InstanceCredentialExfiltration`) `revoke-instance-credentials`: inline
//! policy `ir-quarantine-instance-<instance>` denying everything to that instance's credentials
//! (`ec2:SourceInstanceARN`), so the rest of the fleet sharing the role keeps working (the
//! document of ir-isolate-ec2's `ir-revoke-instance-<instance>`, under this playbook's own name:
//! each release removes only its own); for any
//! other session `revoke-sessions` (inline Deny for every session of the role issued before now,
//! which triage caps at `defaults.role_wide_revocation_max_tier`, approval by default); then
//! `tag-quarantined`. Root and service-linked roles are never changed: the record is
//! `skipped` with an escalation reason.
//!
//! Release removes the inline policy, re-activates the keys that were active in the stored
//! pre-state, tags `ir:status=released` and marks the stored pre-state released. It cannot
//! restore a deleted password: the record says to issue a new one.
//!
//! Every AWS call is declared as a [`Permission`] beside the code that makes it; [`permissions`]
//! is the function's whole IAM policy.

mod config;
mod contain;
mod iam;
mod observe;
mod release;

use std::collections::BTreeMap;

use ir_core::actions::{
    instance_session, quarantine_instance_policy_name, ContainmentError, ContainmentRecord,
    ContainmentRequest, Runner, Safety, StepFailed,
};
use ir_core::incident::Resource;
use ir_core::permissions::{union, Permission, KILL_SWITCH_READ, SELF_ROLES};
use ir_core::playbook::{Playbook, Refusal};
use ir_core::prestate::{PreStateKey, PreStateStore};
use serde::{Deserialize, Serialize};

pub use config::QuarantineConfig;

pub const FUNCTION_NAME: &str = "ir-quarantine-iam";

/// Every AWS call this function makes.
pub fn permissions() -> Vec<Permission> {
    union(&[
        &[KILL_SWITCH_READ, ir_core::member::ASSUME_MEMBER_ROLE],
        ir_core::prestate::PERMISSIONS,
        observe::PERMISSIONS,
        iam::PERMISSIONS,
        contain::PERMISSIONS,
        release::PERMISSIONS,
        GUARD_RAILS,
    ])
}

/// Never on the incident-response roles themselves, whatever else allows it.
const GUARD_RAILS: &[Permission] = &[
    Permission::deny("iam:PutRolePolicy", SELF_ROLES),
    Permission::deny("iam:DeleteRolePolicy", SELF_ROLES),
    Permission::deny("iam:TagRole", SELF_ROLES),
];

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
    User {
        name: String,
        key: Option<String>,
    },
    Role {
        name: String,
        /// The instance whose role credentials the finding is about (an instance-profile
        /// session, named after the instance): only those are revoked, not every session of the
        /// role.
        instance: Option<String>,
    },
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::User { name, .. } => format!("user/{name}"),
            Target::Role { name, .. } => format!("role/{name}"),
        }
    }

    /// The inline policy this playbook puts on the principal: one per principal, or for an
    /// instance session one per instance (not ir-isolate-ec2's: each playbook's release removes
    /// only its own).
    fn policy_name(&self) -> String {
        match self {
            Target::Role {
                instance: Some(id), ..
            } => quarantine_instance_policy_name(id),
            _ => iam::QUARANTINE_POLICY.to_string(),
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
            Some(Resource::IamRole {
                role_name,
                session_name,
                ..
            }) => {
                let instance = session_name
                    .as_deref()
                    .and_then(instance_session)
                    .map(String::from);
                Ok(Target::Role {
                    name: role_name.clone(),
                    instance,
                })
            }
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
        // IAM is global: one item per principal, whichever region the finding came from; an
        // instance session's revocation has its own (one per instance), so two sessions of one
        // role are contained and released one by one.
        let account = &req.decision.incident.account_id;
        match target {
            Target::Role {
                name,
                instance: Some(id),
            } => PreStateKey::new(account, "global", &format!("role/{name}/instance/{id}")),
            _ => PreStateKey::new(account, "global", &target.label()),
        }
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
        self.quarantine(runner, &req.decision.incident, target, obs)
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
    /// The playbook in this function's own account and Region: the shared skeleton
    /// ([`ir_core::playbook::run`]).
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run(self, req).await
    }

    /// The Lambda handler body: the playbook where the resource lives (its Region, and its
    /// account through the member role).
    pub async fn handle_where_it_lives(
        &self,
        reach: &ir_core::member::Reach,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run_where_it_lives(self, reach, req).await
    }
}

impl ir_core::playbook::Relocatable for Quarantiner {
    fn relocated(&self, sdk: &aws_config::SdkConfig) -> Quarantiner {
        Quarantiner {
            iam: ir_core::aws_client!(aws_sdk_iam, sdk),
            ..self.clone()
        }
    }
}
