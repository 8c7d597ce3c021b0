//! Isolation, in order: the isolation groups and the two-step swap on every ENI, then what keeps
//! the instance (its memory and disks) alive, out of its Auto Scaling group, without role
//! credentials, and marked.

use aws_sdk_iam::error::ProvideErrorMetadata;
use ir_core::actions::{
    revoke_instance_credentials_policy, revoke_instance_policy_name, ContainmentRequest, Runner,
    StepFailed, StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::permissions::{resource, Permission};
use ir_core::playbook::Playbook;
use ir_core::prestate::PreStateKey;

use crate::{ec2, err_text, Ec2PreState, Isolator, Observed};

pub(crate) const SET_INSTANCE_PROTECTION: Permission = Permission::new(
    "autoscaling:SetInstanceProtection",
    "arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
);
pub(crate) const DETACH_INSTANCES: Permission = Permission::new(
    "autoscaling:DetachInstances",
    "arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*",
);
pub(crate) const PUT_ROLE_POLICY: Permission =
    Permission::new("iam:PutRolePolicy", resource::IAM_ROLE);
pub(crate) const GET_ROLE_POLICY: Permission =
    Permission::new("iam:GetRolePolicy", resource::IAM_ROLE);
pub(crate) const DISASSOCIATE_PROFILE: Permission =
    Permission::new("ec2:DisassociateIamInstanceProfile", resource::EC2_INSTANCE);

pub(crate) const PERMISSIONS: &[Permission] = &[
    SET_INSTANCE_PROTECTION,
    DETACH_INSTANCES,
    PUT_ROLE_POLICY,
    GET_ROLE_POLICY,
    DISASSOCIATE_PROFILE,
];

impl Isolator {
    /// The isolation steps, in order.
    pub(crate) async fn isolate(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        // Out of its Auto Scaling group first: an isolated instance fails its health checks, and
        // Auto Scaling would terminate it (termination protection does not stop that).
        self.leave_auto_scaling(runner, instance_id, obs, pre)
            .await?;
        // Then out of the load balancers, whose flows security groups do not cut.
        self.leave_target_groups(runner, instance_id, obs, pre)
            .await?;
        self.swap_enis(runner, obs, &pre.vpc_id).await?;
        // With IR_NACL_ISOLATION, the subnet-level cut of what the groups cannot cut.
        self.deny_in_acls(runner, obs).await?;
        self.keep_alive(runner, instance_id, obs).await?;
        let revoke = Revocation {
            policy: revoke_instance_credentials_policy(
                &req.decision.incident.partition,
                &req.decision.incident.account_id,
                instance_id,
            ),
            pre_state: self.pre_state_key(req, &instance_id.to_owned()),
        };
        self.cut_role_credentials(runner, &revoke, instance_id, obs, pre)
            .await?;
        self.tag_isolated(runner, &req.decision.incident_id, instance_id, obs)
            .await
    }

    /// Steps `ensure-isolation-group`, `ensure-untracked-group`, then per ENI `untrack-<eni>` and
    /// `isolate-<eni>`: tracked connections (a live attacker session) are cut, not kept.
    async fn swap_enis(
        &self,
        runner: &mut Runner,
        obs: &Observed,
        vpc: &str,
    ) -> Result<(), StepFailed> {
        // 2–4. Isolation groups and the two-step swap on every ENI.
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
            self.untrack(runner, eni, groups, &untrack, isolated)
                .await?;
            if let Err(failed) = self.isolate_eni(runner, eni, &isolation, isolated).await {
                // The ENI is in the allow-all untrack group: never leave it there.
                self.close_untracked(runner, eni, groups, &isolation).await;
                return Err(failed);
            }
        }
        Ok(())
    }

    /// Step `untrack-<eni>`: the ENI's groups → the untrack group (all traffic, so every
    /// connection becomes untracked and the next swap cuts it).
    async fn untrack(
        &self,
        runner: &mut Runner,
        eni: &str,
        groups: &[String],
        untrack: &str,
        isolated: bool,
    ) -> Result<(), StepFailed> {
        runner
            .step(
                &format!("untrack-{eni}"),
                &ec2::MODIFY_ENI,
                eni,
                format!("groups → [{untrack}]"),
                || async {
                    if isolated {
                        return Ok(StepResult::AlreadyDone("already isolated".into()));
                    }
                    self.set_groups(eni, &[untrack.to_string()]).await?;
                    Ok(StepResult::Changed(format!(
                        "{} → [{untrack}]",
                        groups.join(",")
                    )))
                },
            )
            .await
    }

    /// Step `isolate-<eni>`: the ENI's groups → the isolation group.
    async fn isolate_eni(
        &self,
        runner: &mut Runner,
        eni: &str,
        isolation: &str,
        isolated: bool,
    ) -> Result<(), StepFailed> {
        runner
            .step(
                &format!("isolate-{eni}"),
                &ec2::MODIFY_ENI,
                eni,
                format!("groups → [{isolation}]"),
                || async {
                    if isolated {
                        return Ok(StepResult::AlreadyDone(format!("groups are [{isolation}]")));
                    }
                    self.set_groups(eni, &[isolation.to_string()]).await?;
                    Ok(StepResult::Changed(format!("groups → [{isolation}]")))
                },
            )
            .await
    }

    /// Step `close-untracked-<eni>`, after `isolate-<eni>` failed: the isolation group once
    /// more, else the ENI's original groups, so it is never left in the allow-all group. The
    /// playbook still ends failed (the original error is what it reports).
    async fn close_untracked(
        &self,
        runner: &mut Runner,
        eni: &str,
        original: &[String],
        isolation: &str,
    ) {
        let step = format!("close-untracked-{eni}");
        let plan = format!(
            "groups → [{isolation}], else back to [{}]",
            original.join(",")
        );
        let result = runner
            .step(&step, &ec2::MODIFY_ENI, eni, plan, || async {
                if self.set_groups(eni, &[isolation.to_string()]).await.is_ok() {
                    return Ok(StepResult::Changed(format!("groups → [{isolation}]")));
                }
                self.set_groups(eni, original).await?;
                Ok(StepResult::Changed(format!(
                    "isolation failed again; groups back to [{}]",
                    original.join(",")
                )))
            })
            .await;
        if let Err(e) = result {
            tracing::error!(eni, error = %e, "ENI left in the untrack group: fix by hand");
        }
    }

    /// Steps `enable-termination-protection`, `enable-stop-protection`, `shutdown-behaviour-stop`.
    async fn keep_alive(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        // 5. Keep the instance (and its memory and disks) alive.
        let cur = &obs.instance;
        self.set_protection(runner, instance_id, "enable", cur, true, true)
            .await?;
        runner
            .step(
                "shutdown-behaviour-stop",
                &ec2::MODIFY_INSTANCE,
                instance_id,
                "InstanceInitiatedShutdownBehavior=stop".into(),
                || async {
                    if cur.shutdown_behavior == "stop" {
                        return Ok(StepResult::AlreadyDone("already stop".into()));
                    }
                    Ok(match self.set_shutdown(instance_id, "stop").await? {
                        Some(refused) => StepResult::Refused(refused),
                        None => StepResult::Changed(format!("{} → stop", cur.shutdown_behavior)),
                    })
                },
            )
            .await?;
        Ok(())
    }

    /// Steps `asg-protect-from-scale-in`, `asg-detach` (desired capacity kept): Auto Scaling must
    /// not replace-and-terminate the instance.
    async fn leave_auto_scaling(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        // 6. Auto Scaling must not replace-and-terminate it.
        match (&obs.auto_scaling_group, &pre.auto_scaling_group) {
            (None, Some(asg)) => detached_earlier(runner, instance_id, asg).await?,
            (Some(asg), _) => {
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
            (None, None) => runner.skip(
                "asg-detach",
                instance_id,
                "not in an Auto Scaling group".into(),
            ),
        }
        Ok(())
    }

    /// Steps `revoke-instance-credentials-<role>` then `disassociate-instance-profile`: the role
    /// credentials this instance holds (and an attacker may have copied) die, wherever they are
    /// used; the other instances sharing the role keep theirs; the instance gets no new ones.
    ///
    /// The roles are those of the recorded pre-state as well as the live ones: a run that died
    /// after the disassociation (or a later incident's) sees no profile any more, and must still
    /// revoke, and record, what the instance held. A live role the stored pre-state lacks (the
    /// instance came to hold it since an earlier incident recorded it) is added to the stored
    /// record before its policy is put, so a retry and the release know it too.
    async fn cut_role_credentials(
        &self,
        runner: &mut Runner,
        revoke: &Revocation,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        let name = revoke_instance_policy_name(instance_id);
        let mut roles: Vec<&String> = pre.role_names.iter().collect();
        roles.extend(
            obs.role_names
                .iter()
                .filter(|r| !pre.role_names.contains(r)),
        );
        for role in roles {
            let recorded = pre.role_names.contains(role);
            let name = &name;
            runner
                .step(
                    &format!("revoke-instance-credentials-{role}"),
                    &PUT_ROLE_POLICY,
                    role,
                    format!("{name}: deny the credentials of {instance_id}"),
                    || async move {
                        if !recorded {
                            self.record_role(&revoke.pre_state, role).await?;
                        }
                        // A role the instance no longer holds (a repeat, or a retry after the
                        // profile was removed) may carry the policy already.
                        let check_first = !obs.role_names.contains(role);
                        self.revoke_on(role, name, &revoke.policy, check_first)
                            .await
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
            // An earlier attempt (or incident) removed the profile the pre-state records, or
            // EC2 is still removing it.
            None if pre.instance.instance_profile_arn.is_some()
                || obs.profile_disassociating.is_some() =>
            {
                let done = match &obs.profile_disassociating {
                    Some(arn) => format!("{arn} being disassociated"),
                    None => "no instance profile associated any more".into(),
                };
                runner
                    .step(
                        "disassociate-instance-profile",
                        &DISASSOCIATE_PROFILE,
                        instance_id,
                        "no instance profile associated".into(),
                        || async { Ok(StepResult::AlreadyDone(done)) },
                    )
                    .await?
            }
            None => runner.skip(
                "disassociate-instance-profile",
                instance_id,
                "no instance profile associated".into(),
            ),
        }
        Ok(())
    }

    /// Step `tag-isolated`.
    async fn tag_isolated(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        instance_id: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        // 8. Mark it.
        let done = obs.tags.get(TAG_STATUS).map(String::as_str) == Some("isolated")
            && obs.tags.get(TAG_INCIDENT).map(String::as_str) == Some(incident_id);
        runner
            .step(
                "tag-isolated",
                &ec2::TAG_INSTANCE,
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
}

/// What `cut_role_credentials` puts on each role, and where it records a role it adds.
struct Revocation {
    policy: String,
    pre_state: PreStateKey,
}

impl Isolator {
    /// Adds `role` to the stored pre-state's `role_names` (see [`ir_core::prestate::PreStateStore::extend`]).
    async fn record_role(&self, key: &PreStateKey, role: &str) -> Result<(), String> {
        match self
            .pre_state
            .extend(key, "role_names", &[role.to_string()])
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "the pre-state of {} is no longer held: {role} not recorded",
                key.as_str()
            )),
            Err(e) => Err(format!("{role} not recorded in the pre-state: {e}")),
        }
    }

    /// Puts the revoke policy `name` on `role`. With `check_first`, reads it first and changes
    /// nothing when it is there already. A role deleted since the pre-state was recorded is
    /// done: its sessions died with it.
    async fn revoke_on(
        &self,
        role: &str,
        name: &str,
        policy: &str,
        check_first: bool,
    ) -> Result<StepResult, String> {
        if check_first {
            let out = self
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await;
            match out {
                Ok(out) if same_document(out.policy_document(), policy) => {
                    return Ok(StepResult::AlreadyDone(format!("{name} on {role}")))
                }
                Ok(_) => {}
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(err_text(e)),
            }
        }
        let out = self
            .iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(policy)
            .send()
            .await;
        match out {
            Ok(_) => Ok(StepResult::Changed(format!("{name} on {role}"))),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(StepResult::AlreadyDone(format!(
                "role {role} no longer exists"
            ))),
            Err(e) => Err(err_text(e)),
        }
    }
}

/// Whether IAM's (URL-encoded) policy document is `policy`.
fn same_document(stored: &str, policy: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(stored).decode_utf8_lossy();
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    parse(&decoded).is_some_and(|d| Some(d) == parse(policy))
}

/// Steps `asg-protect-from-scale-in` and `asg-detach` when the group the stored pre-state names
/// no longer holds the instance (or it is being detached): the containment that recorded it, or
/// an earlier attempt of this one that died before it returned, detached it (the protection goes
/// with the membership).
async fn detached_earlier(
    runner: &mut Runner,
    instance_id: &str,
    asg: &str,
) -> Result<(), StepFailed> {
    for (step, permission) in [
        ("asg-protect-from-scale-in", &SET_INSTANCE_PROTECTION),
        ("asg-detach", &DETACH_INSTANCES),
    ] {
        runner
            .step(
                step,
                permission,
                asg,
                format!("{step} {instance_id}"),
                || async {
                    Ok(StepResult::AlreadyDone(format!(
                        "{instance_id} no longer in {asg} (detached since the pre-state was recorded)"
                    )))
                },
            )
            .await?;
    }
    Ok(())
}
