//! ir-isolate-ec2: network-isolate a compromised instance without destroying it, and undo it.
//!
//! Contain, in order (each step recorded; dry-run records the plan):
//! 1. `record-pre-state`: the instance's protection flags, shutdown behaviour, instance
//!    profile, each ENI's security groups and the target groups it is registered in — the state
//!    `release` restores — into the pre-state table ([`ir_core::prestate`]), unless an earlier
//!    response recorded them (the stored original wins, so a repeat never records the isolated
//!    state as "original");
//! 2. Auto Scaling: `asg-protect-from-scale-in`, `asg-detach` (desired capacity kept, so a
//!    replacement launches; detaching also deregisters it from the group's load balancers and
//!    target groups). This comes before the swap: an isolated instance fails its health checks
//!    and Auto Scaling would terminate it, which termination protection does not prevent.
//!    Then `deregister-<target group>` for every target group the instance (or one of its
//!    addresses, for `ip` groups) is still registered in: a load balancer's flows are tracked
//!    whatever the security groups say. A group (or Auto Scaling group) the stored pre-state
//!    names that no longer holds the instance is recorded as done: a retry of an attempt that
//!    died after leaving it still lists the step, so its record is the clean run's;
//! 3. `ensure-isolation-group`: security group `ir-isolation-<vpc>` in the instance's VPC, no
//!    ingress (except `IR_FORENSIC_INGRESS_CIDR` on TCP 22, if set), default egress revoked;
//! 4. `ensure-untracked-group`: `ir-untrack-<vpc>`, all traffic in and out from `0.0.0.0/0` and
//!    `::/0`, which makes connections untracked;
//! 5. per ENI, `untrack-<eni>` then `isolate-<eni>`: swap to the untracked group, then to the
//!    isolation group, so established (tracked) attacker sessions are cut rather than kept
//!    alive. If `isolate-<eni>` fails, `close-untracked-<eni>` puts the isolation group (else the
//!    original groups) back at once: an ENI is never left in the allow-all group.
//!    With `IR_NACL_ISOLATION`, then `nacl-deny-<acl>` for every network ACL of the VPC: deny
//!    rules for each of the instance's addresses, in front of the allows (see `nacl.rs` for
//!    what that cuts and what AWS may refuse);
//! 6. `enable-termination-protection`, `enable-stop-protection`, `shutdown-behaviour-stop`. What
//!    AWS refuses for the instance (termination protection on Spot, `stop` on an instance-store
//!    root) is recorded as skipped with AWS's answer, and the playbook goes on;
//! 7. `revoke-instance-credentials-<role>`: inline policy `ir-revoke-instance-<instance>` on
//!    each of the instance profile's roles, denying everything to the credentials delivered to
//!    this instance (`ec2:SourceInstanceARN`), wherever they are used, and to any session of the
//!    role named after it; the rest of the fleet sharing the role is untouched. The roles are
//!    the stored pre-state's and the live ones; a live role the stored record lacks is added to
//!    it first ([`ir_core::prestate::PreStateStore::extend`]), so a retry and the release know
//!    it. Then `disassociate-instance-profile`;
//! 8. `tag-isolated`: `ir:status=isolated`, `ir:incident-id`.
//!
//! Release restores ENI groups (and removes the network ACL deny rules the response added),
//! flags, shutdown behaviour and the instance profile, removes the instance's revoke policy
//! from the recorded roles, registers a standalone instance in its recorded target groups
//! again (`register-<target group>`), tags `ir:status=released` and marks the stored pre-state
//! released. It does not re-attach the instance to its Auto Scaling group (that would change
//! capacity, and re-attaching brings back its target groups): the record says so.
//!
//! Every AWS call is declared as a [`Permission`] beside the code that makes it; [`permissions`]
//! is the function's whole IAM policy.

mod config;
mod contain;
mod ec2;
mod elbv2;
mod nacl;
mod observe;
mod release;

use std::collections::BTreeMap;

use ir_core::actions::{
    ContainmentError, ContainmentRecord, ContainmentRequest, Runner, Safety, StepFailed,
};
use ir_core::incident::Resource;
use ir_core::member::Reach;
use ir_core::permissions::{union, Permission, KILL_SWITCH_READ, SELF_ROLES};
use ir_core::playbook::{Playbook, Refusal, Relocatable};
use ir_core::prestate::{PreStateKey, PreStateStore};
use serde::{Deserialize, Serialize};

pub use config::IsolateConfig;
pub use elbv2::Registration;
pub use nacl::DenyEntry;

pub const FUNCTION_NAME: &str = "ir-isolate-ec2";

/// Every AWS call this function makes.
pub fn permissions() -> Vec<Permission> {
    union(&[
        &[KILL_SWITCH_READ, ir_core::member::ASSUME_MEMBER_ROLE],
        ir_core::prestate::PERMISSIONS,
        observe::PERMISSIONS,
        ec2::PERMISSIONS,
        elbv2::PERMISSIONS,
        nacl::PERMISSIONS,
        contain::PERMISSIONS,
        release::PERMISSIONS,
        GUARD_RAILS,
    ])
}

/// Never on the incident-response roles themselves, whatever else allows it.
const GUARD_RAILS: &[Permission] = &[
    Permission::deny("iam:PutRolePolicy", SELF_ROLES),
    Permission::deny("iam:DeleteRolePolicy", SELF_ROLES),
    Permission::deny("iam:PassRole", SELF_ROLES),
];

/// Instance-level state before isolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePreState {
    #[serde(rename = "t")]
    pub termination_protection: bool,
    #[serde(rename = "s")]
    pub stop_protection: bool,
    #[serde(rename = "b")]
    pub shutdown_behavior: String,
    #[serde(rename = "p", default)]
    pub instance_profile_arn: Option<String>,
}

/// Everything `release` needs (kept in the pre-state table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec2PreState {
    pub instance_id: String,
    pub vpc_id: String,
    pub instance: InstancePreState,
    /// ENI id → its security groups before isolation.
    pub eni_groups: BTreeMap<String, Vec<String>>,
    pub role_names: Vec<String>,
    pub auto_scaling_group: Option<String>,
    /// Where load balancers sent traffic to it (empty in records from before this field).
    #[serde(rename = "tg", default)]
    pub target_registrations: Vec<Registration>,
    /// Every address of the instance (IPv4 and IPv6; delegated prefixes as CIDRs) before
    /// isolation.
    #[serde(rename = "ip", default)]
    pub addresses: Vec<String>,
    /// Network ACL rules denying one of those addresses that were there before the response
    /// (release leaves them).
    #[serde(rename = "na", default)]
    pub acl_denies_before: Vec<DenyEntry>,
}

/// The live view of the instance this run works from.
#[derive(Debug, Clone)]
pub struct Observed {
    vpc_id: String,
    tags: BTreeMap<String, String>,
    eni_groups: BTreeMap<String, Vec<String>>,
    instance: InstancePreState,
    /// The live (associating or associated) profile association: id, profile ARN.
    profile_association: Option<(String, String)>,
    /// The profile of an association EC2 is still removing (`disassociating`).
    profile_disassociating: Option<String>,
    role_names: Vec<String>,
    auto_scaling_group: Option<String>,
    target_registrations: Vec<Registration>,
    /// Why the target groups could not be listed (then none is left or recorded).
    target_lookup_failed: Option<String>,
    addresses: Vec<String>,
    /// The VPC's network ACLs.
    network_acls: Vec<nacl::Acl>,
    /// Why they could not be read.
    acl_lookup_failed: Option<String>,
    /// The account the instance belongs to (its reservation's owner).
    owner: Option<String>,
}

fn err_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_ec2::error::DisplayErrorContext(e).to_string()
}

impl Playbook for Isolator {
    type Target = String;
    type Observed = Observed;
    type PreState = Ec2PreState;
    const FUNCTION: &'static str = FUNCTION_NAME;

    fn safety(&self) -> &Safety {
        &self.safety
    }

    fn pre_state_store(&self) -> &PreStateStore {
        &self.pre_state
    }

    fn target(&self, req: &ContainmentRequest) -> Result<String, Refusal> {
        match req.decision.incident.primary_resource() {
            Some(Resource::Ec2Instance { instance_id, .. }) => Ok(instance_id.clone()),
            other => Err(Refusal::Error(ContainmentError::WrongResource(
                other
                    .map(|r| r.display_id())
                    .unwrap_or_else(|| "none".into()),
            ))),
        }
    }

    async fn observe(&self, instance_id: &String) -> Result<Observed, ContainmentError> {
        self.read_live(instance_id).await
    }

    fn live_tags<'a>(&self, obs: &'a Observed) -> &'a BTreeMap<String, String> {
        &obs.tags
    }

    fn pre_state_key(&self, req: &ContainmentRequest, instance_id: &String) -> PreStateKey {
        let incident = &req.decision.incident;
        PreStateKey::new(&incident.account_id, &incident.region, instance_id)
    }

    fn observed_pre_state(&self, instance_id: &String, obs: &Observed) -> Ec2PreState {
        observe::observed_pre_state(instance_id, obs)
    }

    async fn contain(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        instance_id: &String,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        self.isolate(runner, req, instance_id, obs, pre).await
    }

    async fn release(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        instance_id: &String,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        self.restore(runner, req, instance_id, obs, pre).await
    }
}

#[derive(Debug, Clone)]
pub struct Isolator {
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub iam: aws_sdk_iam::Client,
    pub safety: Safety,
    pub pre_state: PreStateStore,
    pub config: IsolateConfig,
}

impl Isolator {
    /// The playbook in this function's own account and Region: the shared skeleton
    /// ([`ir_core::playbook::run`]).
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run(self, req).await
    }

    /// The Lambda handler body: the playbook where the instance lives (its Region, and its
    /// account through the member role).
    pub async fn handle_where_it_lives(
        &self,
        reach: &Reach,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run_where_it_lives(self, reach, req).await
    }
}

impl Relocatable for Isolator {
    fn relocated(&self, sdk: &aws_config::SdkConfig) -> Isolator {
        Isolator {
            ec2: ir_core::aws_client!(aws_sdk_ec2, sdk),
            autoscaling: ir_core::aws_client!(aws_sdk_autoscaling, sdk),
            elbv2: ir_core::aws_client!(aws_sdk_elasticloadbalancingv2, sdk),
            iam: ir_core::aws_client!(aws_sdk_iam, sdk),
            ..self.clone()
        }
    }
}
