//! Reading the instance (no change): what the playbook works from and what it records as the
//! pre-state.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::AutoScalingInstanceDetails;

use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileAssociation, IamInstanceProfileAssociationState,
    InstanceAttributeName,
};
use ir_core::actions::ContainmentError;
use ir_core::permissions::{resource, Permission, ANY};

use crate::{err_text, Ec2PreState, InstancePreState, Isolator, Observed};

// Most EC2 and Auto Scaling Describe* calls support no resource scope.
pub(crate) const DESCRIBE_INSTANCES: Permission = Permission::new("ec2:DescribeInstances", ANY);
pub(crate) const DESCRIBE_ENIS: Permission = Permission::new("ec2:DescribeNetworkInterfaces", ANY);
/// The one Describe call EC2 authorises per instance.
pub(crate) const DESCRIBE_ATTRIBUTE: Permission =
    Permission::new("ec2:DescribeInstanceAttribute", resource::EC2_INSTANCE);
pub(crate) const DESCRIBE_PROFILE_ASSOCIATIONS: Permission =
    Permission::new("ec2:DescribeIamInstanceProfileAssociations", ANY);
pub(crate) const DESCRIBE_ASG_INSTANCES: Permission =
    Permission::new("autoscaling:DescribeAutoScalingInstances", ANY);
pub(crate) const GET_INSTANCE_PROFILE: Permission = Permission::new(
    "iam:GetInstanceProfile",
    "arn:{partition}:iam::{account}:instance-profile/*",
);

pub(crate) const PERMISSIONS: &[Permission] = &[
    DESCRIBE_INSTANCES,
    DESCRIBE_ENIS,
    DESCRIBE_ATTRIBUTE,
    DESCRIBE_PROFILE_ASSOCIATIONS,
    DESCRIBE_ASG_INSTANCES,
    GET_INSTANCE_PROFILE,
];

impl Isolator {
    /// Reads the instance, its ENIs' groups, attributes, instance profile and Auto Scaling group.
    pub(crate) async fn read_live(&self, instance_id: &str) -> Result<Observed, ContainmentError> {
        let read = ContainmentError::read;
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e)
                if crate::ec2::error_code(&e)
                    .is_some_and(|c| c.starts_with("InvalidInstanceID")) =>
            {
                return Err(ContainmentError::NotFound(instance_id.to_string()))
            }
            Err(e) => return Err(read(DESCRIBE_INSTANCES.action, err_text(e))),
        };
        let (owner, inst) = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances().iter().map(move |i| (r.owner_id(), i)))
            .find(|(_, i)| i.instance_id() == Some(instance_id))
            .ok_or_else(|| ContainmentError::NotFound(instance_id.to_string()))?;
        let owner = owner.map(str::to_string);
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
        let (eni_groups, addresses) = self.read_enis(eni_ids).await?;
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
        let (profile_association, profile_disassociating) =
            profile_associations(assoc.iam_instance_profile_associations());
        let mut role_names = Vec::new();
        // A profile being removed still counts for its roles: the credentials it delivered
        // stay valid until they expire.
        let holding = profile_association.as_ref().map(|(_, arn)| arn);
        if let Some(arn) = holding.or(profile_disassociating.as_ref()) {
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
        let auto_scaling_group = member_of(asg.auto_scaling_instances());
        // The two lookups are independent: one round, not two. Neither may stop the isolation
        // itself: a failure is recorded by its step. The ACLs are read whatever
        // IR_NACL_ISOLATION says: the pre-state records the deny rules already there, and
        // release removes the response's own even after the setting was turned off.
        let vpc = Filter::builder().name("vpc-id").values(&vpc_id).build();
        let (targets, acls) = futures::join!(
            self.target_registrations(&vpc_id, instance_id, &addresses),
            self.network_acls(vpc)
        );
        let (target_registrations, target_lookup_failed) = found_or_why(targets);
        let (network_acls, acl_lookup_failed) = found_or_why(acls);
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
            profile_disassociating,
            role_names,
            auto_scaling_group,
            target_registrations,
            target_lookup_failed,
            addresses,
            network_acls,
            acl_lookup_failed,
            owner,
        })
    }

    /// Each ENI's security groups and every address (IPv4 and IPv6, and delegated prefixes as
    /// CIDRs) of the instance, read from
    /// the ENIs themselves (the instance view can lag behind ENI changes).
    async fn read_enis(
        &self,
        eni_ids: Vec<String>,
    ) -> Result<(BTreeMap<String, Vec<String>>, Vec<String>), ContainmentError> {
        let mut eni_groups = BTreeMap::new();
        let mut addresses = Vec::new();
        if eni_ids.is_empty() {
            return Ok((eni_groups, addresses));
        }
        let enis = self
            .ec2
            .describe_network_interfaces()
            .set_network_interface_ids(Some(eni_ids))
            .send()
            .await
            .map_err(|e| ContainmentError::read(DESCRIBE_ENIS.action, err_text(e)))?;
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
            addresses.extend(
                n.private_ip_addresses()
                    .iter()
                    .filter_map(|a| a.private_ip_address().map(str::to_string)),
            );
            addresses.extend(
                n.ipv6_addresses()
                    .iter()
                    .filter_map(|a| a.ipv6_address().map(str::to_string)),
            );
            // Prefix delegation (EKS, prefix-mode nodes): the pods' addresses, as CIDRs.
            addresses.extend(
                n.ipv4_prefixes()
                    .iter()
                    .filter_map(|p| p.ipv4_prefix().map(str::to_string)),
            );
            addresses.extend(
                n.ipv6_prefixes()
                    .iter()
                    .filter_map(|p| p.ipv6_prefix().map(str::to_string)),
            );
        }
        addresses.sort();
        addresses.dedup();
        Ok((eni_groups, addresses))
    }
}

/// What a lookup found, or (nothing and) why it failed.
fn found_or_why<T>(result: Result<Vec<T>, ContainmentError>) -> (Vec<T>, Option<String>) {
    match result {
        Ok(found) => (found, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

/// The Auto Scaling group that holds the instance. One being detached (`Detaching`, until its
/// load balancers have drained it, then `Detached`) is listed still, but is leaving:
/// DetachInstances would refuse it, and the group no longer replaces it.
pub(crate) fn member_of(instances: &[AutoScalingInstanceDetails]) -> Option<String> {
    instances
        .iter()
        .filter(|i| !i.lifecycle_state().is_some_and(|s| s.starts_with("Detach")))
        .find_map(|i| i.auto_scaling_group_name().map(str::to_string))
}

/// The pre-isolation state as observed now (what `record-pre-state` records unless an earlier
/// response recorded the original first).
pub(crate) fn observed_pre_state(instance_id: &str, obs: &Observed) -> Ec2PreState {
    Ec2PreState {
        instance_id: instance_id.to_string(),
        vpc_id: obs.vpc_id.clone(),
        instance: obs.instance.clone(),
        eni_groups: obs.eni_groups.clone(),
        role_names: obs.role_names.clone(),
        auto_scaling_group: obs.auto_scaling_group.clone(),
        target_registrations: obs.target_registrations.clone(),
        addresses: obs.addresses.clone(),
        acl_denies_before: crate::nacl::preexisting(&obs.network_acls, &obs.addresses),
    }
}

/// The instance's profile associations as EC2 lists them: the live one (`associating` or
/// `associated`: association id and profile ARN), and the profile of one EC2 is still removing
/// (`disassociating`). `disassociated` ones are history.
fn profile_associations(
    list: &[IamInstanceProfileAssociation],
) -> (Option<(String, String)>, Option<String>) {
    let state = |a: &IamInstanceProfileAssociation| a.state().cloned();
    let arn = |a: &IamInstanceProfileAssociation| {
        a.iam_instance_profile()
            .and_then(|p| p.arn())
            .map(str::to_string)
    };
    let live = list
        .iter()
        .filter(|a| {
            !matches!(
                state(a),
                Some(IamInstanceProfileAssociationState::Disassociating)
                    | Some(IamInstanceProfileAssociationState::Disassociated)
            )
        })
        .find_map(|a| Some((a.association_id()?.to_string(), arn(a)?)));
    let leaving = list
        .iter()
        .filter(|a| state(a) == Some(IamInstanceProfileAssociationState::Disassociating))
        .find_map(arn);
    (live, leaving)
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::IamInstanceProfile;

    use super::*;

    fn member(state: &str) -> AutoScalingInstanceDetails {
        AutoScalingInstanceDetails::builder()
            .instance_id("i-1")
            .auto_scaling_group_name("workers")
            .availability_zone("us-east-1a")
            .lifecycle_state(state)
            .health_status("HEALTHY")
            .protected_from_scale_in(false)
            .build()
    }

    #[test]
    fn an_instance_being_detached_is_no_longer_the_groups() {
        for state in ["InService", "Standby", "Pending", "Terminating:Wait"] {
            assert_eq!(
                member_of(&[member(state)]).as_deref(),
                Some("workers"),
                "{state}"
            );
        }
        for state in ["Detaching", "Detached"] {
            assert_eq!(member_of(&[member(state)]), None, "{state}");
        }
        assert_eq!(member_of(&[]), None);
    }

    fn association(id: &str, profile: &str, state: &str) -> IamInstanceProfileAssociation {
        IamInstanceProfileAssociation::builder()
            .association_id(id)
            .iam_instance_profile(
                IamInstanceProfile::builder()
                    .arn(format!(
                        "arn:aws:iam::111122223333:instance-profile/{profile}"
                    ))
                    .build(),
            )
            .state(IamInstanceProfileAssociationState::from(state))
            .build()
    }

    #[test]
    fn a_profile_being_removed_is_not_the_live_one_but_is_reported() {
        let arn = |p: &str| format!("arn:aws:iam::111122223333:instance-profile/{p}");
        let list = [
            association("a-1", "old", "disassociated"),
            association("a-2", "leaving", "disassociating"),
            association("a-3", "new", "associating"),
        ];
        assert_eq!(
            profile_associations(&list),
            (Some(("a-3".into(), arn("new"))), Some(arn("leaving")))
        );
        assert_eq!(
            profile_associations(&list[..2]),
            (None, Some(arn("leaving")))
        );
        assert_eq!(profile_associations(&list[..1]), (None, None));
        let associated = [association("a-4", "web", "associated")];
        assert_eq!(
            profile_associations(&associated),
            (Some(("a-4".into(), arn("web"))), None)
        );
    }
}
