//! ir-isolate-ec2: network-isolate a compromised instance without destroying it, and undo it.
//!
//! Contain, in order (each step recorded; dry-run records the plan):
//! 1. `record-pre-state`: the instance's protection flags, shutdown behaviour, instance profile
//!    and each ENI's security groups — the state `release` restores — into the pre-state table
//!    ([`ir_core::prestate`]), unless an earlier response recorded them (the stored original
//!    wins, so a repeat never records the isolated state as "original");
//! 2. `ensure-isolation-group`: security group `ir-isolation-<vpc>` in the instance's VPC, no
//!    ingress (except `IR_FORENSIC_INGRESS_CIDR` on TCP 22, if set), default egress revoked;
//! 3. `ensure-untracked-group`: `ir-untrack-<vpc>`, all traffic in and out from 0.0.0.0/0, which
//!    makes connections untracked;
//! 4. per ENI, `untrack-<eni>` then `isolate-<eni>`: swap to the untracked group, then to the
//!    isolation group, so established (tracked) attacker sessions are cut rather than kept alive;
//! 5. `enable-termination-protection`, `enable-stop-protection`, `shutdown-behaviour-stop`;
//! 6. Auto Scaling: `asg-protect-from-scale-in`, `asg-detach` (desired capacity kept, so a
//!    replacement launches and the compromised instance is not terminated);
//! 7. `revoke-role-sessions` (inline Deny-all for sessions issued before now on the instance
//!    profile's roles), then `disassociate-instance-profile`;
//! 8. `tag-isolated`: `ir:status=isolated`, `ir:incident-id`.
//!
//! Release restores ENI groups, flags, shutdown behaviour and the instance profile, removes the
//! revoke policy, tags `ir:status=released` and marks the stored pre-state released. It does not
//! re-attach the instance to its Auto Scaling group (that would change capacity): the record
//! says so.
//!
//! Every AWS call is declared as a [`Permission`] beside the code that makes it; [`permissions`]
//! is the function's whole IAM policy.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, Filter, InstanceAttributeName, IpPermission, IpRange,
    ResourceType, Tag, TagSpecification,
};
use chrono::Utc;
use ir_core::actions::{
    revoke_older_sessions_policy, revoke_policy_name, ContainmentError, ContainmentRecord,
    ContainmentRequest, Runner, Safety, StepFailed, StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::incident::Resource;
use ir_core::permissions::{resource, union, Permission, ANY, KILL_SWITCH_READ};
use ir_core::playbook::{Playbook, Refusal};
use ir_core::prestate::{PreStateKey, PreStateStore};
use ir_core::ConfigError;
use serde::{Deserialize, Serialize};

pub const FUNCTION_NAME: &str = "ir-isolate-ec2";

// observe (most EC2 and Auto Scaling Describe* calls support no resource scope)
const DESCRIBE_INSTANCES: Permission = Permission::new("ec2:DescribeInstances", ANY);
const DESCRIBE_ENIS: Permission = Permission::new("ec2:DescribeNetworkInterfaces", ANY);
/// The one Describe call EC2 authorises per instance.
const DESCRIBE_ATTRIBUTE: Permission =
    Permission::new("ec2:DescribeInstanceAttribute", resource::EC2_INSTANCE);
const DESCRIBE_PROFILE_ASSOCIATIONS: Permission =
    Permission::new("ec2:DescribeIamInstanceProfileAssociations", ANY);
const DESCRIBE_SECURITY_GROUPS: Permission = Permission::new("ec2:DescribeSecurityGroups", ANY);
const DESCRIBE_ASG_INSTANCES: Permission =
    Permission::new("autoscaling:DescribeAutoScalingInstances", ANY);
const GET_INSTANCE_PROFILE: Permission = Permission::new(
    "iam:GetInstanceProfile",
    "arn:{partition}:iam::{account}:instance-profile/*",
);
const OBSERVE: &[Permission] = &[
    DESCRIBE_INSTANCES,
    DESCRIBE_ENIS,
    DESCRIBE_ATTRIBUTE,
    DESCRIBE_PROFILE_ASSOCIATIONS,
    DESCRIBE_SECURITY_GROUPS,
    DESCRIBE_ASG_INSTANCES,
    GET_INSTANCE_PROFILE,
];
// isolation groups (created in the instance's VPC, tagged at creation)
const CREATE_SECURITY_GROUP: Permission =
    Permission::new("ec2:CreateSecurityGroup", resource::EC2_VPC);
const CREATE_SECURITY_GROUP_SG: Permission =
    Permission::new("ec2:CreateSecurityGroup", resource::EC2_SECURITY_GROUP);
const TAG_NEW_GROUP: Permission = Permission::new("ec2:CreateTags", resource::EC2_SECURITY_GROUP);
const AUTHORIZE_INGRESS: Permission = Permission::new(
    "ec2:AuthorizeSecurityGroupIngress",
    resource::EC2_SECURITY_GROUP,
);
const AUTHORIZE_EGRESS: Permission = Permission::new(
    "ec2:AuthorizeSecurityGroupEgress",
    resource::EC2_SECURITY_GROUP,
);
const REVOKE_INGRESS: Permission = Permission::new(
    "ec2:RevokeSecurityGroupIngress",
    resource::EC2_SECURITY_GROUP,
);
const REVOKE_EGRESS: Permission = Permission::new(
    "ec2:RevokeSecurityGroupEgress",
    resource::EC2_SECURITY_GROUP,
);
const GROUPS: &[Permission] = &[
    CREATE_SECURITY_GROUP,
    CREATE_SECURITY_GROUP_SG,
    TAG_NEW_GROUP,
    AUTHORIZE_INGRESS,
    AUTHORIZE_EGRESS,
    REVOKE_INGRESS,
    REVOKE_EGRESS,
];
// the instance, its ENIs, its Auto Scaling group and its roles
/// The ENI, and the groups it is given (IAM checks both resource types).
const MODIFY_ENI: Permission =
    Permission::new("ec2:ModifyNetworkInterfaceAttribute", resource::EC2_ENI);
const MODIFY_ENI_GROUPS: Permission = Permission::new(
    "ec2:ModifyNetworkInterfaceAttribute",
    resource::EC2_SECURITY_GROUP,
);
const MODIFY_INSTANCE: Permission =
    Permission::new("ec2:ModifyInstanceAttribute", resource::EC2_INSTANCE);
const TAG_INSTANCE: Permission = Permission::new("ec2:CreateTags", resource::EC2_INSTANCE);
const SET_INSTANCE_PROTECTION: Permission = Permission::new(
    "autoscaling:SetInstanceProtection",
    "arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
);
const DETACH_INSTANCES: Permission = Permission::new(
    "autoscaling:DetachInstances",
    "arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
);
const PUT_ROLE_POLICY: Permission = Permission::new("iam:PutRolePolicy", resource::IAM_ROLE);
const DELETE_ROLE_POLICY: Permission = Permission::new("iam:DeleteRolePolicy", resource::IAM_ROLE);
const DISASSOCIATE_PROFILE: Permission =
    Permission::new("ec2:DisassociateIamInstanceProfile", resource::EC2_INSTANCE);
const ASSOCIATE_PROFILE: Permission =
    Permission::new("ec2:AssociateIamInstanceProfile", resource::EC2_INSTANCE);
/// Re-associating the original profile passes its role to EC2.
const PASS_ROLE: Permission = Permission::new("iam:PassRole", resource::IAM_ROLE);
const CHANGE: &[Permission] = &[
    MODIFY_ENI,
    MODIFY_ENI_GROUPS,
    MODIFY_INSTANCE,
    TAG_INSTANCE,
    SET_INSTANCE_PROTECTION,
    DETACH_INSTANCES,
    PUT_ROLE_POLICY,
    DELETE_ROLE_POLICY,
    DISASSOCIATE_PROFILE,
    ASSOCIATE_PROFILE,
    PASS_ROLE,
];

/// Every AWS call this function makes.
pub fn permissions() -> Vec<Permission> {
    union(&[
        &[KILL_SWITCH_READ],
        ir_core::prestate::PERMISSIONS,
        OBSERVE,
        GROUPS,
        CHANGE,
    ])
}

#[derive(Debug, Clone, PartialEq)]
pub struct IsolateConfig {
    /// `IR_FORENSIC_INGRESS_CIDR`: lets responders reach the instance on TCP 22.
    pub forensic_ingress_cidr: Option<ipnet::IpNet>,
}

impl IsolateConfig {
    pub fn from_env() -> Result<IsolateConfig, ConfigError> {
        let cidr = match std::env::var("IR_FORENSIC_INGRESS_CIDR") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(
                |e: ipnet::AddrParseError| ConfigError::Invalid {
                    name: "IR_FORENSIC_INGRESS_CIDR",
                    value: v.clone(),
                    message: e.to_string(),
                },
            )?),
            _ => None,
        };
        Ok(IsolateConfig {
            forensic_ingress_cidr: cidr,
        })
    }
}

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
}

/// The live view of the instance this run works from.
#[derive(Debug, Clone)]
pub struct Observed {
    vpc_id: String,
    tags: BTreeMap<String, String>,
    eni_groups: BTreeMap<String, Vec<String>>,
    instance: InstancePreState,
    profile_association: Option<(String, String)>,
    role_names: Vec<String>,
    auto_scaling_group: Option<String>,
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
        observed_pre_state(instance_id, obs)
    }

    async fn contain(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        instance_id: &String,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        self.isolate(runner, &req.decision.incident_id, instance_id, obs, pre)
            .await
    }

    async fn release(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        instance_id: &String,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        self.restore(runner, &req.decision.incident_id, instance_id, obs, pre)
            .await
    }
}

#[derive(Debug, Clone)]
pub struct Isolator {
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub iam: aws_sdk_iam::Client,
    pub safety: Safety,
    pub pre_state: PreStateStore,
    pub config: IsolateConfig,
}

impl Isolator {
    /// The Lambda handler body: the shared playbook skeleton ([`ir_core::playbook::run`]).
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run(self, req).await
    }

    /// Reads the instance, its ENIs' groups, attributes, instance profile and Auto Scaling group.
    async fn read_live(&self, instance_id: &str) -> Result<Observed, ContainmentError> {
        let read = |what: &str, e: String| ContainmentError::Read {
            what: what.to_string(),
            message: e,
        };
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if error_code(&e).is_some_and(|c| c.starts_with("InvalidInstanceID")) => {
                return Err(ContainmentError::NotFound(instance_id.to_string()))
            }
            Err(e) => return Err(read(DESCRIBE_INSTANCES.action, err_text(e))),
        };
        let inst = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .ok_or_else(|| ContainmentError::NotFound(instance_id.to_string()))?;
        let vpc_id = inst
            .vpc_id()
            .ok_or_else(|| read("instance VPC", "instance is not in a VPC".into()))?
            .to_string();
        let tags = inst
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        let eni_ids: Vec<String> = inst
            .network_interfaces()
            .iter()
            .filter_map(|n| n.network_interface_id().map(str::to_string))
            .collect();
        // ENI groups from the ENIs themselves (the instance view can lag behind ENI changes).
        let mut eni_groups = BTreeMap::new();
        if !eni_ids.is_empty() {
            let enis = self
                .ec2
                .describe_network_interfaces()
                .set_network_interface_ids(Some(eni_ids))
                .send()
                .await
                .map_err(|e| read(DESCRIBE_ENIS.action, err_text(e)))?;
            for n in enis.network_interfaces() {
                let Some(id) = n.network_interface_id() else {
                    continue;
                };
                eni_groups.insert(
                    id.to_string(),
                    n.groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_string))
                        .collect(),
                );
            }
        }
        let attr = |name: InstanceAttributeName| {
            self.ec2
                .describe_instance_attribute()
                .instance_id(instance_id)
                .attribute(name)
                .send()
        };
        let termination = attr(InstanceAttributeName::DisableApiTermination)
            .await
            .map_err(|e| read("DisableApiTermination", err_text(e)))?
            .disable_api_termination()
            .and_then(|v| v.value())
            .unwrap_or(false);
        // Not every endpoint knows stop protection; unknown means "not enabled".
        let stop = match attr(InstanceAttributeName::DisableApiStop).await {
            Ok(o) => o
                .disable_api_stop()
                .and_then(|v| v.value())
                .unwrap_or(false),
            Err(e) => {
                tracing::warn!(error = %err_text(e), "could not read DisableApiStop; assuming off");
                false
            }
        };
        let shutdown = attr(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .await
            .map_err(|e| read("InstanceInitiatedShutdownBehavior", err_text(e)))?
            .instance_initiated_shutdown_behavior()
            .and_then(|v| v.value())
            .unwrap_or("stop")
            .to_string();
        let assoc = self
            .ec2
            .describe_iam_instance_profile_associations()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .values(instance_id)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| read(DESCRIBE_PROFILE_ASSOCIATIONS.action, err_text(e)))?;
        let profile_association = assoc
            .iam_instance_profile_associations()
            .iter()
            .filter(|a| a.state().map(|s| s.as_str()) != Some("disassociated"))
            .find_map(|a| {
                Some((
                    a.association_id()?.to_string(),
                    a.iam_instance_profile()?.arn()?.to_string(),
                ))
            });
        let mut role_names = Vec::new();
        if let Some((_, arn)) = &profile_association {
            let name = arn.rsplit('/').next().unwrap_or(arn);
            let p = self
                .iam
                .get_instance_profile()
                .instance_profile_name(name)
                .send()
                .await
                .map_err(|e| read(GET_INSTANCE_PROFILE.action, err_text(e)))?;
            if let Some(ip) = p.instance_profile() {
                role_names = ip
                    .roles()
                    .iter()
                    .map(|r| r.role_name().to_string())
                    .collect();
            }
        }
        let asg = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| read(DESCRIBE_ASG_INSTANCES.action, err_text(e)))?;
        let auto_scaling_group = asg
            .auto_scaling_instances()
            .iter()
            .find_map(|i| i.auto_scaling_group_name().map(str::to_string));
        Ok(Observed {
            vpc_id,
            tags,
            eni_groups,
            instance: InstancePreState {
                termination_protection: termination,
                stop_protection: stop,
                shutdown_behavior: shutdown,
                instance_profile_arn: profile_association.as_ref().map(|(_, a)| a.clone()),
            },
            profile_association,
            role_names,
            auto_scaling_group,
        })
    }

    /// Finds or creates the group `name` in `vpc_id` and makes its rules what isolation needs:
    /// the isolation group allows nothing (but SSH from the forensic CIDR, if set), the untrack
    /// group allows everything. An existing group's rules are checked, not trusted: a response
    /// that died between creating and configuring it, or a hand-added rule, is corrected here.
    async fn ensure_group(
        &self,
        runner: &mut Runner,
        step: &str,
        vpc_id: &str,
        name: &str,
        description: &str,
        untracked: bool,
    ) -> Result<Option<String>, StepFailed> {
        let existing = find_group(&self.ec2, vpc_id, name)
            .await
            .map_err(|message| StepFailed {
                step: step.into(),
                message,
            })?;
        let mut found = existing.clone();
        let forensic = self.config.forensic_ingress_cidr.map(|c| c.to_string());
        let ec2 = &self.ec2;
        let plan = format!("security group {name} in {vpc_id}");
        runner
            .step(step, &CREATE_SECURITY_GROUP, vpc_id, plan, || async {
                let (id, created) = match existing {
                    Some(id) => (id, false),
                    None => {
                        let out = ec2
                            .create_security_group()
                            .group_name(name)
                            .description(description)
                            .vpc_id(vpc_id)
                            .tag_specifications(
                                TagSpecification::builder()
                                    .resource_type(ResourceType::SecurityGroup)
                                    .tags(
                                        Tag::builder()
                                            .key("ir:purpose")
                                            .value(if untracked { "untrack" } else { "isolation" })
                                            .build(),
                                    )
                                    .build(),
                            )
                            .send()
                            .await;
                        match out {
                            Ok(out) => (
                                out.group_id()
                                    .ok_or("CreateSecurityGroup returned no id")?
                                    .to_string(),
                                true,
                            ),
                            // Another response in this VPC created it a moment ago (two
                            // incidents at once): use that group.
                            Err(e) if error_code(&e) == Some("InvalidGroup.Duplicate") => (
                                find_group(ec2, vpc_id, name)
                                    .await?
                                    .ok_or("security group reported as duplicate but not found")?,
                                false,
                            ),
                            Err(e) => return Err(err_text(e)),
                        }
                    }
                };
                found = Some(id.clone());
                let corrected = enforce_rules(ec2, &id, untracked, forensic.as_deref()).await?;
                Ok(if created {
                    StepResult::Changed(format!("created {name} ({id})"))
                } else if corrected.is_empty() {
                    StepResult::AlreadyDone(format!("{name} is {id}, rules as expected"))
                } else {
                    StepResult::Changed(format!(
                        "{name} is {id}; corrected its rules: {}",
                        corrected.join(", ")
                    ))
                })
            })
            .await?;
        Ok(found)
    }

    async fn set_groups(&self, eni: &str, groups: &[String]) -> Result<(), String> {
        self.ec2
            .modify_network_interface_attribute()
            .network_interface_id(eni)
            .set_groups(Some(groups.to_vec()))
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    async fn set_bool_attr(
        &self,
        instance_id: &str,
        attr: InstanceAttributeName,
        value: bool,
    ) -> Result<(), String> {
        let v = AttributeBooleanValue::builder().value(value).build();
        let req = self
            .ec2
            .modify_instance_attribute()
            .instance_id(instance_id);
        let req = match attr {
            InstanceAttributeName::DisableApiStop => req.disable_api_stop(v),
            _ => req.disable_api_termination(v),
        };
        req.send().await.map_err(err_text)?;
        Ok(())
    }

    /// Sets termination and stop protection, one recorded step each (`<verb>-termination-protection`,
    /// `<verb>-stop-protection`), leaving a flag alone when it already has the wanted value.
    async fn set_protection(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        verb: &str,
        cur: &InstancePreState,
        termination: bool,
        stop: bool,
    ) -> Result<(), StepFailed> {
        for (name, attr, now, want) in [
            (
                "termination-protection",
                InstanceAttributeName::DisableApiTermination,
                cur.termination_protection,
                termination,
            ),
            (
                "stop-protection",
                InstanceAttributeName::DisableApiStop,
                cur.stop_protection,
                stop,
            ),
        ] {
            let label = attr.as_str().to_string();
            runner
                .step(
                    &format!("{verb}-{name}"),
                    &MODIFY_INSTANCE,
                    instance_id,
                    format!("{label}={want}"),
                    || async {
                        if now == want {
                            return Ok(StepResult::AlreadyDone(format!("{label} already {want}")));
                        }
                        self.set_bool_attr(instance_id, attr.clone(), want).await?;
                        Ok(StepResult::Changed(format!("{label}={want}")))
                    },
                )
                .await?;
        }
        Ok(())
    }

    async fn set_shutdown(&self, instance_id: &str, value: &str) -> Result<(), String> {
        self.ec2
            .modify_instance_attribute()
            .instance_id(instance_id)
            .instance_initiated_shutdown_behavior(AttributeValue::builder().value(value).build())
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    async fn tag(&self, resource: &str, tags: &[(&str, &str)]) -> Result<(), String> {
        self.ec2
            .create_tags()
            .resources(resource)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    /// The isolation steps.
    async fn isolate(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        // 2–4. Isolation groups and the two-step swap on every ENI.
        let vpc = &pre.vpc_id;
        let isolation = self
            .ensure_group(
                runner,
                "ensure-isolation-group",
                vpc,
                &format!("ir-isolation-{vpc}"),
                "Incident response isolation: no traffic",
                false,
            )
            .await?;
        let untrack = self
            .ensure_group(
                runner,
                "ensure-untracked-group",
                vpc,
                &format!("ir-untrack-{vpc}"),
                "Incident response: untrack connections before isolation",
                true,
            )
            .await?;
        let isolation = isolation.unwrap_or_else(|| "<isolation group>".into());
        let untrack = untrack.unwrap_or_else(|| "<untracked group>".into());
        for (eni, groups) in &obs.eni_groups {
            let isolated = groups.len() == 1 && groups[0] == isolation;
            runner
                .step(
                    &format!("untrack-{eni}"),
                    &MODIFY_ENI,
                    eni,
                    format!("groups → [{untrack}]"),
                    || async {
                        if isolated {
                            return Ok(StepResult::AlreadyDone("already isolated".into()));
                        }
                        self.set_groups(eni, std::slice::from_ref(&untrack)).await?;
                        Ok(StepResult::Changed(format!(
                            "{} → [{untrack}]",
                            groups.join(",")
                        )))
                    },
                )
                .await?;
            runner
                .step(
                    &format!("isolate-{eni}"),
                    &MODIFY_ENI,
                    eni,
                    format!("groups → [{isolation}]"),
                    || async {
                        if isolated {
                            return Ok(StepResult::AlreadyDone(format!(
                                "groups are [{isolation}]"
                            )));
                        }
                        self.set_groups(eni, std::slice::from_ref(&isolation))
                            .await?;
                        Ok(StepResult::Changed(format!("groups → [{isolation}]")))
                    },
                )
                .await?;
        }

        // 5. Keep the instance (and its memory and disks) alive.
        let cur = &obs.instance;
        self.set_protection(runner, instance_id, "enable", cur, true, true)
            .await?;
        runner
            .step(
                "shutdown-behaviour-stop",
                &MODIFY_INSTANCE,
                instance_id,
                "InstanceInitiatedShutdownBehavior=stop".into(),
                || async {
                    if cur.shutdown_behavior == "stop" {
                        return Ok(StepResult::AlreadyDone("already stop".into()));
                    }
                    self.set_shutdown(instance_id, "stop").await?;
                    Ok(StepResult::Changed(format!(
                        "{} → stop",
                        cur.shutdown_behavior
                    )))
                },
            )
            .await?;

        // 6. Auto Scaling must not replace-and-terminate it.
        match &obs.auto_scaling_group {
            Some(asg) => {
                let a = &self.autoscaling;
                runner
                    .step(
                        "asg-protect-from-scale-in",
                        &SET_INSTANCE_PROTECTION,
                        asg,
                        format!("protect {instance_id}"),
                        || async {
                            a.set_instance_protection()
                                .auto_scaling_group_name(asg)
                                .instance_ids(instance_id)
                                .protected_from_scale_in(true)
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!(
                                "{instance_id} protected from scale-in"
                            )))
                        },
                    )
                    .await?;
                runner
                    .step(
                        "asg-detach",
                        &DETACH_INSTANCES,
                        asg,
                        format!("detach {instance_id}, keep desired capacity"),
                        || async {
                            a.detach_instances()
                                .auto_scaling_group_name(asg)
                                .instance_ids(instance_id)
                                .should_decrement_desired_capacity(false)
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!(
                                "detached from {asg}; a replacement keeps capacity"
                            )))
                        },
                    )
                    .await?;
            }
            None => runner.skip(
                "asg-detach",
                instance_id,
                "not in an Auto Scaling group".into(),
            ),
        }

        // 7. Stolen role credentials die; the instance gets no new ones.
        let cutoff = Utc::now();
        for role in &obs.role_names {
            let policy = revoke_older_sessions_policy(cutoff);
            let name = revoke_policy_name(incident_id);
            runner
                .step(
                    &format!("revoke-role-sessions-{role}"),
                    &PUT_ROLE_POLICY,
                    role,
                    format!("{name}: deny sessions issued before {cutoff}"),
                    || async {
                        self.iam
                            .put_role_policy()
                            .role_name(role)
                            .policy_name(&name)
                            .policy_document(&policy)
                            .send()
                            .await
                            .map_err(err_text)?;
                        Ok(StepResult::Changed(format!("{name} on {role}")))
                    },
                )
                .await?;
        }
        match &obs.profile_association {
            Some((assoc, arn)) => {
                runner
                    .step(
                        "disassociate-instance-profile",
                        &DISASSOCIATE_PROFILE,
                        instance_id,
                        format!("remove {arn}"),
                        || async {
                            self.ec2
                                .disassociate_iam_instance_profile()
                                .association_id(assoc)
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!("removed {arn}")))
                        },
                    )
                    .await?
            }
            None => runner.skip(
                "disassociate-instance-profile",
                instance_id,
                "no instance profile associated".into(),
            ),
        }

        // 8. Mark it.
        let done = obs.tags.get(TAG_STATUS).map(String::as_str) == Some("isolated")
            && obs.tags.get(TAG_INCIDENT).map(String::as_str) == Some(incident_id);
        runner
            .step(
                "tag-isolated",
                &TAG_INSTANCE,
                instance_id,
                format!("{TAG_STATUS}=isolated, {TAG_INCIDENT}={incident_id}"),
                || async {
                    if done {
                        return Ok(StepResult::AlreadyDone("already tagged".into()));
                    }
                    self.tag(
                        instance_id,
                        &[(TAG_STATUS, "isolated"), (TAG_INCIDENT, incident_id)],
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
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        for (eni, groups) in &pre.eni_groups {
            let now = obs.eni_groups.get(eni).cloned().unwrap_or_default();
            runner
                .step(
                    &format!("restore-groups-{eni}"),
                    &MODIFY_ENI,
                    eni,
                    format!("groups → [{}]", groups.join(",")),
                    || async {
                        if &now == groups {
                            return Ok(StepResult::AlreadyDone("groups already restored".into()));
                        }
                        self.set_groups(eni, groups).await?;
                        Ok(StepResult::Changed(format!(
                            "[{}] → [{}]",
                            now.join(","),
                            groups.join(",")
                        )))
                    },
                )
                .await?;
        }
        let want = &pre.instance;
        let cur = &obs.instance;
        self.set_protection(
            runner,
            instance_id,
            "restore",
            cur,
            want.termination_protection,
            want.stop_protection,
        )
        .await?;
        runner
            .step(
                "restore-shutdown-behaviour",
                &MODIFY_INSTANCE,
                instance_id,
                format!(
                    "InstanceInitiatedShutdownBehavior={}",
                    want.shutdown_behavior
                ),
                || async {
                    if cur.shutdown_behavior == want.shutdown_behavior {
                        return Ok(StepResult::AlreadyDone("unchanged".into()));
                    }
                    self.set_shutdown(instance_id, &want.shutdown_behavior)
                        .await?;
                    Ok(StepResult::Changed(format!("→ {}", want.shutdown_behavior)))
                },
            )
            .await?;
        match (&want.instance_profile_arn, &obs.profile_association) {
            (Some(arn), None) => {
                runner
                    .step(
                        "reassociate-instance-profile",
                        &ASSOCIATE_PROFILE,
                        instance_id,
                        format!("associate {arn}"),
                        || async {
                            self.ec2
                                .associate_iam_instance_profile()
                                .instance_id(instance_id)
                                .iam_instance_profile(
                                    aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                                        .arn(arn)
                                        .build(),
                                )
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!("associated {arn}")))
                        },
                    )
                    .await?;
                let name = arn.rsplit('/').next().unwrap_or(arn);
                let roles = self
                    .iam
                    .get_instance_profile()
                    .instance_profile_name(name)
                    .send()
                    .await
                    .map(|p| {
                        p.instance_profile()
                            .map(|ip| {
                                ip.roles()
                                    .iter()
                                    .map(|r| r.role_name().to_string())
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default()
                    })
                    .map_err(|e| StepFailed {
                        step: "reassociate-instance-profile".into(),
                        message: err_text(e),
                    })?;
                for role in roles {
                    let policy = revoke_policy_name(incident_id);
                    runner
                        .step(
                            &format!("remove-revoke-policy-{role}"),
                            &DELETE_ROLE_POLICY,
                            &role,
                            format!("delete {policy}"),
                            || async {
                                match self
                                    .iam
                                    .delete_role_policy()
                                    .role_name(&role)
                                    .policy_name(&policy)
                                    .send()
                                    .await
                                {
                                    Ok(_) => Ok(StepResult::Changed(format!("deleted {policy}"))),
                                    Err(e)
                                        if e.as_service_error().and_then(|se| {
                                            aws_sdk_iam::error::ProvideErrorMetadata::code(se)
                                        }) == Some("NoSuchEntity") =>
                                    {
                                        Ok(StepResult::AlreadyDone("no revoke policy".into()))
                                    }
                                    Err(e) => Err(err_text(e)),
                                }
                            },
                        )
                        .await?;
                }
            }
            (Some(_), Some(_)) => runner.skip(
                "reassociate-instance-profile",
                instance_id,
                "a profile is already associated".into(),
            ),
            (None, _) => runner.skip(
                "reassociate-instance-profile",
                instance_id,
                "no profile before isolation".into(),
            ),
        }
        if let Some(asg) = &pre.auto_scaling_group {
            runner.skip(
                "asg-reattach",
                asg,
                format!("not re-attached automatically (would change capacity): aws autoscaling attach-instances --auto-scaling-group-name {asg} --instance-ids {instance_id}"),
            );
        }
        runner
            .step(
                "tag-released",
                &TAG_INSTANCE,
                instance_id,
                format!("{TAG_STATUS}=released"),
                || async {
                    self.tag(
                        instance_id,
                        &[(TAG_STATUS, "released"), (TAG_INCIDENT, incident_id)],
                    )
                    .await?;
                    Ok(StepResult::Changed("released".into()))
                },
            )
            .await
    }
}

/// The pre-isolation state as observed now (what `record-pre-state` records unless an earlier
/// response recorded the original first).
fn observed_pre_state(instance_id: &str, obs: &Observed) -> Ec2PreState {
    Ec2PreState {
        instance_id: instance_id.to_string(),
        vpc_id: obs.vpc_id.clone(),
        instance: obs.instance.clone(),
        eni_groups: obs.eni_groups.clone(),
        role_names: obs.role_names.clone(),
        auto_scaling_group: obs.auto_scaling_group.clone(),
    }
}

/// The id of the security group `name` in `vpc_id`, if it exists.
async fn find_group(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    name: &str,
) -> Result<Option<String>, String> {
    Ok(ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .map_err(err_text)?
        .security_groups()
        .iter()
        .find_map(|g| g.group_id().map(str::to_string)))
}

fn error_code<E: aws_sdk_ec2::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_ec2::error::SdkError<E, R>,
) -> Option<&str> {
    e.as_service_error().and_then(|se| se.code())
}

/// A rule change whose error `tolerated` means the rule is already as wanted (another response
/// in the same VPC changed it first) counts as done.
fn tolerating<T, E, R>(
    result: Result<T, aws_sdk_ec2::error::SdkError<E, R>>,
    tolerated: &str,
) -> Result<(), String>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Err(e) if error_code(&e) != Some(tolerated) => Err(err_text(e)),
        _ => Ok(()),
    }
}

const DUPLICATE: &str = "InvalidPermission.Duplicate";
const NOT_FOUND: &str = "InvalidPermission.NotFound";

/// A permission reduced to what identifies it (no descriptions), as Revoke* expects.
fn bare(p: &IpPermission) -> IpPermission {
    let mut b = IpPermission::builder().set_ip_protocol(p.ip_protocol().map(str::to_string));
    b = b.set_from_port(p.from_port()).set_to_port(p.to_port());
    for r in p.ip_ranges() {
        b = b.ip_ranges(
            IpRange::builder()
                .set_cidr_ip(r.cidr_ip().map(str::to_string))
                .build(),
        );
    }
    for r in p.ipv6_ranges() {
        b = b.ipv6_ranges(
            aws_sdk_ec2::types::Ipv6Range::builder()
                .set_cidr_ipv6(r.cidr_ipv6().map(str::to_string))
                .build(),
        );
    }
    for g in p.user_id_group_pairs() {
        b = b.user_id_group_pairs(
            aws_sdk_ec2::types::UserIdGroupPair::builder()
                .set_group_id(g.group_id().map(str::to_string))
                .build(),
        );
    }
    for l in p.prefix_list_ids() {
        b = b.prefix_list_ids(
            aws_sdk_ec2::types::PrefixListId::builder()
                .set_prefix_list_id(l.prefix_list_id().map(str::to_string))
                .build(),
        );
    }
    b.build()
}

fn all_traffic() -> IpPermission {
    IpPermission::builder()
        .ip_protocol("-1")
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

fn is_all_traffic(p: &IpPermission) -> bool {
    p.ip_protocol() == Some("-1")
        && p.ip_ranges()
            .iter()
            .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
}

fn forensic_ssh(cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .description("forensic access")
                .build(),
        )
        .build()
}

/// Exactly SSH from `cidr`, nothing else.
fn is_forensic_ssh(p: &IpPermission, cidr: &str) -> bool {
    p.ip_protocol() == Some("tcp")
        && p.from_port() == Some(22)
        && p.to_port() == Some(22)
        && p.ip_ranges().len() == 1
        && p.ip_ranges()[0].cidr_ip() == Some(cidr)
        && p.ipv6_ranges().is_empty()
        && p.user_id_group_pairs().is_empty()
        && p.prefix_list_ids().is_empty()
}

/// Brings group `id`'s rules to what it is for and returns what it changed. Isolation
/// (`untracked` false): no egress; no ingress but SSH from `forensic`. Untrack: all traffic in
/// and out (extra rules are harmless there). Safe to run from two responses at once: a rule the
/// other removed or added first is not an error.
async fn enforce_rules(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    untracked: bool,
    forensic: Option<&str>,
) -> Result<Vec<String>, String> {
    let out = ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(err_text)?;
    let group = out
        .security_groups()
        .first()
        .ok_or_else(|| format!("security group {id} not found"))?;
    let mut changed = Vec::new();
    if untracked {
        if !group.ip_permissions().iter().any(is_all_traffic) {
            let r = ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .ip_permissions(all_traffic())
                .send()
                .await;
            tolerating(r, DUPLICATE)?;
            changed.push("allowed all ingress".to_string());
        }
        if !group.ip_permissions_egress().iter().any(is_all_traffic) {
            let r = ec2
                .authorize_security_group_egress()
                .group_id(id)
                .ip_permissions(all_traffic())
                .send()
                .await;
            tolerating(r, DUPLICATE)?;
            changed.push("allowed all egress".to_string());
        }
        return Ok(changed);
    }
    for p in group.ip_permissions_egress() {
        let r = ec2
            .revoke_security_group_egress()
            .group_id(id)
            .ip_permissions(bare(p))
            .send()
            .await;
        tolerating(r, NOT_FOUND)?;
        changed.push(format!("revoked egress {}", describe_permission(p)));
    }
    let mut has_forensic = false;
    for p in group.ip_permissions() {
        if forensic.is_some_and(|c| is_forensic_ssh(p, c)) {
            has_forensic = true;
            continue;
        }
        let r = ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .ip_permissions(bare(p))
            .send()
            .await;
        tolerating(r, NOT_FOUND)?;
        changed.push(format!("revoked ingress {}", describe_permission(p)));
    }
    if let (Some(cidr), false) = (forensic, has_forensic) {
        let r = ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .ip_permissions(forensic_ssh(cidr))
            .send()
            .await;
        tolerating(r, DUPLICATE)?;
        changed.push(format!("allowed SSH from {cidr}"));
    }
    Ok(changed)
}

/// `tcp 22-22 from 10.0.0.0/8, sg-1` for notes.
fn describe_permission(p: &IpPermission) -> String {
    let proto = match p.ip_protocol() {
        Some("-1") | None => "all".to_string(),
        Some(x) => x.to_string(),
    };
    let ports = match (p.from_port(), p.to_port()) {
        (Some(f), Some(t)) if f >= 0 => format!(" {f}-{t}"),
        _ => String::new(),
    };
    let peers: Vec<&str> = p
        .ip_ranges()
        .iter()
        .filter_map(|r| r.cidr_ip())
        .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
        .chain(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()))
        .chain(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| l.prefix_list_id()),
        )
        .collect();
    format!("{proto}{ports} {}", peers.join(", "))
}
