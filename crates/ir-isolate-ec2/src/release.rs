//! Release (a false positive): the state recorded before isolation comes back. The instance is
//! not re-attached to its Auto Scaling group (that would change capacity): the record says how.

use aws_sdk_iam::error::ProvideErrorMetadata;
use ir_core::actions::{
    revoke_instance_policy_name, ContainmentRecord, ContainmentRequest, Runner, StepFailed,
    StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::audit::Outcome;
use ir_core::permissions::{resource, Permission};

use crate::{ec2, err_text, Ec2PreState, Isolator, Observed};

pub(crate) const ASSOCIATE_PROFILE: Permission =
    Permission::new("ec2:AssociateIamInstanceProfile", resource::EC2_INSTANCE);
/// Re-associating the original profile passes its role to EC2.
pub(crate) const PASS_ROLE: Permission = Permission::new("iam:PassRole", resource::IAM_ROLE).when(
    "StringEquals",
    "iam:PassedToService",
    "ec2.amazonaws.com",
);
pub(crate) const DELETE_ROLE_POLICY: Permission =
    Permission::new("iam:DeleteRolePolicy", resource::IAM_ROLE);

pub(crate) const PERMISSIONS: &[Permission] = &[ASSOCIATE_PROFILE, PASS_ROLE, DELETE_ROLE_POLICY];

impl Isolator {
    /// The release steps, in order.
    pub(crate) async fn restore(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        let incident_id = req.decision.incident_id.as_str();
        self.restore_groups(runner, obs, pre).await?;
        let denied = acls_denied_in(req.previous.as_ref());
        self.remove_acl_denies(runner, obs, pre, &denied).await?;
        self.restore_instance(runner, instance_id, obs, pre).await?;
        let roles = revoked_roles(pre, req.previous.as_ref());
        self.restore_profile(runner, instance_id, obs, pre, &roles)
            .await?;
        match &pre.auto_scaling_group {
            Some(asg) => runner.skip(
                "asg-reattach",
                asg,
                format!("not re-attached automatically (would change capacity; re-attaching also registers it with the group's target groups): aws autoscaling attach-instances --auto-scaling-group-name {asg} --instance-ids {instance_id}"),
            ),
            None => self.rejoin_target_groups(runner, obs, pre).await?,
        }
        self.tag_released(runner, incident_id, instance_id).await
    }

    /// Steps `restore-groups-<eni>`.
    async fn restore_groups(
        &self,
        runner: &mut Runner,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        for (eni, groups) in &pre.eni_groups {
            let now = obs.eni_groups.get(eni).cloned().unwrap_or_default();
            runner
                .step(
                    &format!("restore-groups-{eni}"),
                    &ec2::MODIFY_ENI,
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
        Ok(())
    }

    /// Steps `restore-termination-protection`, `restore-stop-protection`,
    /// `restore-shutdown-behaviour`.
    async fn restore_instance(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
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
                &ec2::MODIFY_INSTANCE,
                instance_id,
                format!(
                    "InstanceInitiatedShutdownBehavior={}",
                    want.shutdown_behavior
                ),
                || async {
                    if cur.shutdown_behavior == want.shutdown_behavior {
                        return Ok(StepResult::AlreadyDone("unchanged".into()));
                    }
                    let want_value = &want.shutdown_behavior;
                    Ok(match self.set_shutdown(instance_id, want_value).await? {
                        Some(refused) => StepResult::Refused(refused),
                        None => StepResult::Changed(format!("→ {want_value}")),
                    })
                },
            )
            .await?;
        Ok(())
    }

    /// Steps `reassociate-instance-profile`, then `remove-revoke-policy-<role>` on every role
    /// the containment revoked on ([`revoked_roles`]).
    async fn restore_profile(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
        roles: &[String],
    ) -> Result<(), StepFailed> {
        self.reassociate_profile(runner, instance_id, obs, pre)
            .await?;
        let policy = revoke_instance_policy_name(instance_id);
        for role in roles {
            runner
                .step(
                    &format!("remove-revoke-policy-{role}"),
                    &DELETE_ROLE_POLICY,
                    role,
                    format!("delete {policy}"),
                    || async {
                        let out = self
                            .iam
                            .delete_role_policy()
                            .role_name(role)
                            .policy_name(&policy)
                            .send()
                            .await;
                        match out {
                            Ok(_) => Ok(StepResult::Changed(format!("deleted {policy}"))),
                            Err(e) if e.code() == Some("NoSuchEntity") => {
                                Ok(StepResult::AlreadyDone("no revoke policy".into()))
                            }
                            Err(e) => Err(err_text(e)),
                        }
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Step `reassociate-instance-profile`: the profile recorded before isolation.
    async fn reassociate_profile(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        let live = obs.profile_association.as_ref().map(|(_, arn)| arn);
        match (&pre.instance.instance_profile_arn, live) {
            (Some(arn), Some(now)) if now != arn => {
                runner.skip(
                    "reassociate-instance-profile",
                    instance_id,
                    format!("another profile is associated: {now}"),
                );
                Ok(())
            }
            // Not associated yet, being associated by an earlier attempt of this release, or
            // blocked by an association EC2 is still removing.
            (Some(arn), live) => {
                runner
                    .step(
                        "reassociate-instance-profile",
                        &ASSOCIATE_PROFILE,
                        instance_id,
                        format!("associate {arn}"),
                        || self.associate(instance_id, arn, live.is_some(), obs),
                    )
                    .await
            }
            (None, _) => {
                runner.skip(
                    "reassociate-instance-profile",
                    instance_id,
                    "no profile before isolation".into(),
                );
                Ok(())
            }
        }
    }

    /// The closure of `reassociate-instance-profile`: `arn` associated already (`done`), or
    /// associated now. EC2 refuses an association while another is being removed
    /// (`IncorrectState`): the step fails, so the release is retried, rather than claim it
    /// restored.
    async fn associate(
        &self,
        instance_id: &str,
        arn: &str,
        done: bool,
        obs: &Observed,
    ) -> Result<StepResult, String> {
        if done {
            return Ok(StepResult::AlreadyDone(format!("{arn} associated")));
        }
        if let Some(leaving) = &obs.profile_disassociating {
            return Err(format!(
                "{leaving} is still being disassociated; {arn} can be associated once it is gone"
            ));
        }
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
    }

    /// Step `tag-released`.
    async fn tag_released(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        instance_id: &str,
    ) -> Result<(), StepFailed> {
        runner
            .step(
                "tag-released",
                &ec2::TAG_INSTANCE,
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

/// The roles whose revoke policy a release removes: those recorded before isolation, and those
/// the containment's own record (`previous`, from the state machine) says it revoked on (a
/// role the instance held only at containment time, not in the recorded pre-state).
fn revoked_roles(pre: &Ec2PreState, previous: Option<&ContainmentRecord>) -> Vec<String> {
    let mut roles = pre.role_names.clone();
    let recorded = previous.into_iter().flat_map(|p| &p.steps).filter(|s| {
        s.step.starts_with("revoke-instance-credentials-") && s.outcome == Outcome::Succeeded
    });
    for role in recorded.filter_map(|s| s.target.clone()) {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles
}

/// The network ACLs the containment's record shows it added deny rules to. (A deny found in
/// place may be one that was there before the response, which release leaves.)
fn acls_denied_in(previous: Option<&ContainmentRecord>) -> Vec<String> {
    let steps = previous.into_iter().flat_map(|p| &p.steps);
    steps
        .filter(|s| s.step.starts_with("nacl-deny-") && s.outcome == Outcome::Succeeded)
        .filter_map(|s| s.target.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir_core::audit::AuditTrail;

    fn pre(roles: &[&str]) -> Ec2PreState {
        serde_json::from_value(serde_json::json!({
            "instance_id": "i-1", "vpc_id": "vpc-1",
            "instance": {"t": false, "s": false, "b": "stop"},
            "eni_groups": {}, "role_names": roles, "auto_scaling_group": null
        }))
        .expect("pre-state")
    }

    #[test]
    fn release_removes_the_revoke_policy_from_every_role_the_containment_revoked_on() {
        let mut trail = AuditTrail::new("ir-isolate-ec2", "inc-1");
        let revoke = |trail: &mut AuditTrail, role: &str, outcome| {
            let step = format!("revoke-instance-credentials-{role}");
            trail.record(&step, None, Some(role), outcome, None);
        };
        revoke(&mut trail, "recorded", Outcome::Succeeded);
        revoke(&mut trail, "live-only", Outcome::Succeeded);
        revoke(&mut trail, "planned", Outcome::DryRun);
        let previous: ContainmentRecord = serde_json::from_value(serde_json::json!({
            "incident_id": "inc-1", "function": "ir-isolate-ec2", "mode": "contain",
            "status": "completed", "dry_run": false, "reason": null,
            "steps": trail.steps, "pre_state": null, "failed_step": null, "error": null,
            "started_at": "2026-12-02T00:00:00Z", "finished_at": "2026-12-02T00:00:01Z"
        }))
        .expect("record");
        assert_eq!(
            revoked_roles(&pre(&["recorded"]), Some(&previous)),
            ["recorded", "live-only"]
        );
        assert_eq!(revoked_roles(&pre(&["recorded"]), None), ["recorded"]);
    }
}
