//! Elastic Load Balancing (v2): the target groups the instance is registered in. Isolation takes
//! it out of them before the security-group swap (a load balancer would keep sending users to
//! an instance that can no longer answer, and its flows are tracked whatever the groups say);
//! release puts the recorded registrations back.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetGroup, TargetHealthStateEnum, TargetTypeEnum,
};
use futures::{StreamExt, TryStreamExt};
use ir_core::actions::{ContainmentError, Runner, StepFailed, StepResult};
use ir_core::permissions::{Permission, ANY};
use serde::{Deserialize, Serialize};

use crate::{ec2::error_code, err_text, Ec2PreState, Isolator, Observed};

/// Elastic Load Balancing Describe* calls support no resource scope.
pub(crate) const DESCRIBE_TARGET_GROUPS: Permission =
    Permission::new("elasticloadbalancing:DescribeTargetGroups", ANY);
pub(crate) const DESCRIBE_TARGET_HEALTH: Permission =
    Permission::new("elasticloadbalancing:DescribeTargetHealth", ANY);
const TARGET_GROUP: &str =
    "arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/*/*";
pub(crate) const DEREGISTER_TARGETS: Permission =
    Permission::new("elasticloadbalancing:DeregisterTargets", TARGET_GROUP);
pub(crate) const REGISTER_TARGETS: Permission =
    Permission::new("elasticloadbalancing:RegisterTargets", TARGET_GROUP);

pub(crate) const PERMISSIONS: &[Permission] = &[
    DESCRIBE_TARGET_GROUPS,
    DESCRIBE_TARGET_HEALTH,
    DEREGISTER_TARGETS,
    REGISTER_TARGETS,
];

/// DescribeTargetGroups' largest page (API reference: PageSize, 1–400).
const PAGE_SIZE: i32 = 400;
/// DescribeTargetHealth calls in flight at once while looking for the instance.
const CONCURRENT_LOOKUPS: usize = 8;

/// One registration of the instance (or one of its addresses) in a target group, as
/// DescribeTargetHealth reports it: exactly what RegisterTargets needs to put it back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Registration {
    #[serde(rename = "g")]
    pub target_group_arn: String,
    /// The instance id (target type `instance`) or one of its addresses (target type `ip`).
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(rename = "z", default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

impl Registration {
    fn description(&self) -> TargetDescription {
        TargetDescription::builder()
            .id(&self.id)
            .set_port(self.port)
            .set_availability_zone(self.availability_zone.clone())
            .build()
    }

    fn label(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.id),
            None => self.id.clone(),
        }
    }
}

/// A target group's name, from its ARN (`…:targetgroup/<name>/<id>`): names are unique per
/// account and region, so it makes a readable step name.
fn group_name(arn: &str) -> &str {
    arn.rsplit('/').nth(1).unwrap_or(arn)
}

/// Registrations grouped per target group, in a stable order.
fn by_group(regs: &[Registration]) -> BTreeMap<&str, Vec<&Registration>> {
    let mut groups: BTreeMap<&str, Vec<&Registration>> = BTreeMap::new();
    for r in regs {
        groups.entry(&r.target_group_arn).or_default().push(r);
    }
    groups
}

fn labels(regs: &[&Registration]) -> String {
    regs.iter()
        .map(|r| r.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a target group could hold the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    /// An `instance` group of its VPC: by instance id.
    InstanceId,
    /// An `ip` group of its VPC: by any of its addresses.
    Address,
    /// An `ip` group of another VPC: only targets registered as outside that VPC
    /// (Availability Zone `all`, e.g. across a peering). Private ranges overlap between VPCs:
    /// the same address inside that VPC is another host.
    AddressFromOutside,
}

fn may_hold(group: &TargetGroup, vpc_id: &str) -> Option<Holds> {
    let same_vpc = group.vpc_id() == Some(vpc_id);
    match group.target_type() {
        Some(TargetTypeEnum::Instance) if same_vpc => Some(Holds::InstanceId),
        Some(TargetTypeEnum::Ip) if same_vpc => Some(Holds::Address),
        Some(TargetTypeEnum::Ip) => Some(Holds::AddressFromOutside),
        _ => None,
    }
}

/// Whether target `id` (in availability zone `zone`) is the instance or one of its addresses
/// (`addresses`: IPs and, for prefix delegation, CIDRs).
fn is_ours(
    holds: Holds,
    id: &str,
    zone: Option<&str>,
    instance_id: &str,
    addresses: &[String],
) -> bool {
    let address = || {
        id.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            addresses
                .iter()
                .any(|a| a == id || a.parse::<ipnet::IpNet>().is_ok_and(|net| net.contains(&ip)))
        })
    };
    match holds {
        Holds::InstanceId => id == instance_id,
        Holds::Address => address(),
        Holds::AddressFromOutside => zone == Some("all") && address(),
    }
}

impl Isolator {
    /// Every live registration of the instance (by id) or of its addresses. Targets already
    /// draining are leaving and do not count.
    pub(crate) async fn target_registrations(
        &self,
        vpc_id: &str,
        instance_id: &str,
        addresses: &[String],
    ) -> Result<Vec<Registration>, ContainmentError> {
        let groups = self.candidate_groups(vpc_id).await?;
        let found: Vec<Vec<Registration>> = futures::stream::iter(groups)
            .map(|(arn, holds)| self.registered_in(arn, holds, instance_id, addresses))
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .try_collect()
            .await?;
        let mut found: Vec<Registration> = found.into_iter().flatten().collect();
        found.sort();
        Ok(found)
    }

    async fn candidate_groups(
        &self,
        vpc_id: &str,
    ) -> Result<Vec<(String, Holds)>, ContainmentError> {
        let mut pages = self
            .elbv2
            .describe_target_groups()
            .page_size(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| ContainmentError::read(DESCRIBE_TARGET_GROUPS.action, err_text(e)))?;
            arns.extend(
                page.target_groups().iter().filter_map(|g| {
                    Some((g.target_group_arn()?.to_string(), may_hold(g, vpc_id)?))
                }),
            );
        }
        Ok(arns)
    }

    async fn registered_in(
        &self,
        arn: String,
        holds: Holds,
        instance_id: &str,
        addresses: &[String],
    ) -> Result<Vec<Registration>, ContainmentError> {
        let out = match self
            .elbv2
            .describe_target_health()
            .target_group_arn(&arn)
            .send()
            .await
        {
            Ok(out) => out,
            // Deleted between the two calls: it holds nothing.
            Err(e) if error_code(&e) == Some("TargetGroupNotFound") => return Ok(Vec::new()),
            Err(e) => {
                return Err(ContainmentError::read(
                    DESCRIBE_TARGET_HEALTH.action,
                    err_text(e),
                ))
            }
        };
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                !matches!(
                    d.target_health().and_then(|h| h.state()),
                    Some(
                        TargetHealthStateEnum::Draining | TargetHealthStateEnum::UnhealthyDraining
                    )
                )
            })
            .filter_map(|d| d.target())
            .filter(|t| {
                t.id().is_some_and(|id| {
                    is_ours(holds, id, t.availability_zone(), instance_id, addresses)
                })
            })
            .map(|t| Registration {
                target_group_arn: arn.clone(),
                id: t.id().unwrap_or_default().to_string(),
                port: t.port(),
                // Not accepted for `instance` targets (TargetDescription).
                availability_zone: t
                    .availability_zone()
                    .filter(|_| holds != Holds::InstanceId)
                    .map(str::to_string),
            })
            .collect())
    }

    /// Steps `deregister-<target group>`: out of every target group it is registered in, before
    /// the swap. An ALB's open connections drain for the group's deregistration delay and the
    /// swap cuts them; an NLB's tracked flows can go on until idle (the network ACL step cuts
    /// them from other subnets). A failure here is recorded and isolation goes on: the swap
    /// matters more than the load balancer.
    pub(crate) async fn leave_target_groups(
        &self,
        runner: &mut Runner,
        instance_id: &str,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        if let Some(why) = &obs.target_lookup_failed {
            runner.skip(
                "deregister-targets",
                instance_id,
                format!("could not list the target groups, so none was left: {why}"),
            );
            return Ok(());
        }
        // In the stored pre-state but no longer live: the containment that recorded them, or an
        // earlier attempt of this one that died before it returned, deregistered them (or the
        // group is gone). That record may be lost, so this one says so.
        let gone: Vec<Registration> = pre
            .target_registrations
            .iter()
            .filter(|r| {
                !obs.target_registrations
                    .iter()
                    .any(|l| l.target_group_arn == r.target_group_arn)
            })
            .cloned()
            .collect();
        if obs.target_registrations.is_empty() && gone.is_empty() {
            runner.skip(
                "deregister-targets",
                instance_id,
                "registered in no target group".into(),
            );
            return Ok(());
        }
        for (arn, regs) in by_group(&obs.target_registrations) {
            self.deregister(runner, arn, &regs).await?;
        }
        for (arn, regs) in by_group(&gone) {
            runner
                .step(
                    &format!("deregister-{}", group_name(arn)),
                    &DEREGISTER_TARGETS,
                    arn,
                    format!("deregister {}", labels(&regs)),
                    || async {
                        Ok(StepResult::AlreadyDone(format!(
                            "{} no longer registered (deregistered since the pre-state was recorded)",
                            labels(&regs)
                        )))
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Step `deregister-<target group>` for the live registrations `regs` in group `arn`.
    async fn deregister(
        &self,
        runner: &mut Runner,
        arn: &str,
        regs: &[&Registration],
    ) -> Result<(), StepFailed> {
        runner
            .step(
                &format!("deregister-{}", group_name(arn)),
                &DEREGISTER_TARGETS,
                arn,
                format!("deregister {}", labels(regs)),
                || async {
                    let out = self
                        .elbv2
                        .deregister_targets()
                        .target_group_arn(arn)
                        .set_targets(Some(regs.iter().map(|r| r.description()).collect()))
                        .send()
                        .await;
                    Ok(match out {
                        Ok(_) => StepResult::Changed(format!(
                            "deregistered {}; open connections drain",
                            labels(regs)
                        )),
                        Err(e) => StepResult::Refused(format!(
                            "still registered, isolation goes on: {}",
                            err_text(e)
                        )),
                    })
                },
            )
            .await?;
        Ok(())
    }

    /// Steps `register-<target group>`: the recorded registrations back. AWS's refusal (the
    /// group is gone, the instance is not running) is recorded and release goes on.
    pub(crate) async fn rejoin_target_groups(
        &self,
        runner: &mut Runner,
        obs: &Observed,
        pre: &Ec2PreState,
    ) -> Result<(), StepFailed> {
        for (arn, regs) in by_group(&pre.target_registrations) {
            let missing: Vec<&Registration> = regs
                .iter()
                .copied()
                .filter(|r| !obs.target_registrations.contains(r))
                .collect();
            runner
                .step(
                    &format!("register-{}", group_name(arn)),
                    &REGISTER_TARGETS,
                    arn,
                    format!("register {}", labels(&regs)),
                    || async {
                        if missing.is_empty() {
                            return Ok(StepResult::AlreadyDone("already registered".into()));
                        }
                        self.register(arn, &missing).await
                    },
                )
                .await?;
        }
        Ok(())
    }

    async fn register(&self, arn: &str, regs: &[&Registration]) -> Result<StepResult, String> {
        let out = self
            .elbv2
            .register_targets()
            .target_group_arn(arn)
            .set_targets(Some(regs.iter().map(|r| r.description()).collect()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(StepResult::Changed(format!("registered {}", labels(regs)))),
            Err(e)
                if matches!(
                    error_code(&e),
                    Some("InvalidTarget" | "TargetGroupNotFound")
                ) =>
            {
                Ok(StepResult::Refused(err_text(e)))
            }
            Err(e) => Err(err_text(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_name_is_the_group_name() {
        let arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-blue/50dc6c495c0c9188";
        assert_eq!(group_name(arn), "web-blue");
    }

    #[test]
    fn an_address_in_another_vpc_is_another_host_unless_registered_from_outside() {
        let ours = vec!["10.0.1.7".to_string(), "10.0.2.16/28".to_string()];
        let i = "i-0abc";
        assert!(is_ours(Holds::InstanceId, i, None, i, &ours));
        assert!(is_ours(Holds::Address, "10.0.1.7", None, i, &ours));
        assert!(
            is_ours(Holds::Address, "10.0.2.20", None, i, &ours),
            "a delegated prefix"
        );
        assert!(!is_ours(Holds::Address, "10.0.1.8", None, i, &ours));
        assert!(!is_ours(
            Holds::AddressFromOutside,
            "10.0.1.7",
            Some("eu-west-1a"),
            i,
            &ours
        ));
        assert!(is_ours(
            Holds::AddressFromOutside,
            "10.0.1.7",
            Some("all"),
            i,
            &ours
        ));
    }

    #[test]
    fn a_port_override_is_kept_for_register_and_deregister() {
        let r = Registration {
            target_group_arn: "arn".into(),
            id: "10.0.1.7".into(),
            port: Some(8443),
            availability_zone: Some("all".into()),
        };
        let d = r.description();
        assert_eq!(
            (d.id(), d.port(), d.availability_zone()),
            (Some("10.0.1.7"), Some(8443), Some("all"))
        );
        assert_eq!(r.label(), "10.0.1.7:8443");
    }
}
