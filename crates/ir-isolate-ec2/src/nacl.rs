//! Network ACLs (EC2 API): the optional subnet-level cut, `IR_NACL_ISOLATION`.
//!
//! Security groups cannot cut flows that NAT gateways, load balancers, Transit Gateway or
//! interface endpoints track for the instance. A network ACL is stateless and is evaluated
//! where traffic enters or leaves a subnet, so a deny for the instance's own addresses in the
//! ACL of every subnet of its VPC cuts every flow that crosses into another subnet (the NAT
//! gateway's, the load balancer's, the endpoint's), established or not. An ingress rule
//! matches the packet's source and an egress rule its destination: `deny <address>/32` both
//! ways blocks packets from and to the instance and nothing else, so the other instances of
//! the subnets keep working. It cannot cut what never leaves the instance's subnet, nor what
//! ACLs never filter (Route 53 Resolver, instance metadata, Time Sync).
//!
//! Rules are evaluated lowest number first and the first match wins, so each deny takes the
//! lowest free number below every allow rule whose CIDR holds the address; when there is none
//! (or the ACL is full, or it belongs to another account: a shared VPC), AWS's limit is recorded
//! as a refusal for that ACL and the playbook goes on.

use std::net::IpAddr;

use aws_sdk_ec2::types::{Filter, NetworkAcl, RuleAction};
use ir_core::actions::{ContainmentError, Runner, StepFailed, StepResult};
use ir_core::permissions::{Permission, ANY};
use serde::{Deserialize, Serialize};

use crate::{ec2::error_code, err_text, Ec2PreState, Isolator, Observed};

const NETWORK_ACL: &str = "arn:{partition}:ec2:{region}:{account}:network-acl/*";
pub(crate) const DESCRIBE_NETWORK_ACLS: Permission =
    Permission::new("ec2:DescribeNetworkAcls", ANY);
pub(crate) const CREATE_ENTRY: Permission =
    Permission::new("ec2:CreateNetworkAclEntry", NETWORK_ACL);
pub(crate) const DELETE_ENTRY: Permission =
    Permission::new("ec2:DeleteNetworkAclEntry", NETWORK_ACL);

pub(crate) const PERMISSIONS: &[Permission] = &[DESCRIBE_NETWORK_ACLS, CREATE_ENTRY, DELETE_ENTRY];

/// The highest number a rule can have (32767 and above are the default `*` rules).
const LAST_RULE: i32 = 32766;
/// Times a deny is planned again when another response took the chosen number first.
const ATTEMPTS: usize = 3;

/// One rule of a network ACL that denies all traffic from (ingress) or to (egress) one
/// address: the only kind this module creates or removes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DenyEntry {
    #[serde(rename = "a")]
    pub acl: String,
    #[serde(rename = "r")]
    pub rule: i32,
    #[serde(rename = "e")]
    pub egress: bool,
    /// `<address>/32` or `<address>/128`.
    #[serde(rename = "c")]
    pub cidr: String,
}

/// A rule as read from the ACL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    number: i32,
    egress: bool,
    allow: bool,
    all_protocols: bool,
    cidr: Option<ipnet::IpNet>,
}

/// An ACL of the instance's VPC as read now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Acl {
    id: String,
    owner: Option<String>,
    rules: Vec<Rule>,
}

/// `<address>/32` (IPv4) or `<address>/128` (IPv6); `None` for what is not an address.
pub(crate) fn host_cidr(address: &str) -> Option<ipnet::IpNet> {
    address.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
}

fn acl_of(acl: &NetworkAcl) -> Option<Acl> {
    let rules = acl
        .entries()
        .iter()
        .filter_map(|e| {
            let cidr = e.cidr_block().or(e.ipv6_cidr_block());
            Some(Rule {
                number: e.rule_number()?,
                egress: e.egress().unwrap_or(false),
                allow: e.rule_action() == Some(&RuleAction::Allow),
                all_protocols: e.protocol() == Some("-1"),
                cidr: cidr.and_then(|c| c.parse().ok()),
            })
        })
        .collect();
    Some(Acl {
        id: acl.network_acl_id()?.to_string(),
        owner: acl.owner_id().map(str::to_string),
        rules,
    })
}

impl Acl {
    /// Our kind of rule (deny, all protocols) for exactly `cidr` in that direction.
    fn denies(&self, egress: bool, cidr: &ipnet::IpNet) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| {
                r.egress == egress
                    && !r.allow
                    && r.all_protocols
                    && r.cidr.as_ref() == Some(cidr)
                    && r.number <= LAST_RULE
            })
            .collect()
    }

    /// The first allow rule that could match packets from/to an address of `cidr`.
    fn first_allow(&self, egress: bool, cidr: &ipnet::IpNet) -> i32 {
        self.rules
            .iter()
            .filter(|r| r.egress == egress && r.allow)
            .filter(|r| {
                r.cidr
                    .is_some_and(|c| c.contains(&cidr.addr()) || cidr.contains(&c.addr()))
            })
            .map(|r| r.number)
            .min()
            .unwrap_or(LAST_RULE + 1)
    }

    /// The entries still needed so every address is denied both ways before any allow that
    /// could match it, or why that cannot be done in this ACL.
    pub(crate) fn plan(&self, cidrs: &[ipnet::IpNet]) -> Result<Vec<DenyEntry>, String> {
        let mut planned: Vec<DenyEntry> = Vec::new();
        for egress in [false, true] {
            for cidr in cidrs {
                let before = self.first_allow(egress, cidr);
                // No allow can match: the default `*` rule already denies it.
                if before > LAST_RULE || self.denies(egress, cidr).iter().any(|r| r.number < before)
                {
                    continue;
                }
                let taken = |n: i32| {
                    self.rules
                        .iter()
                        .any(|r| r.egress == egress && r.number == n)
                        || planned.iter().any(|p| p.egress == egress && p.rule == n)
                };
                let Some(rule) = (1..before).find(|n| !taken(*n)) else {
                    return Err(format!(
                        "no free rule number below {}'s first {} allow rule ({before}) for {cidr}",
                        self.id,
                        direction(egress)
                    ));
                };
                planned.push(DenyEntry {
                    acl: self.id.clone(),
                    rule,
                    egress,
                    cidr: cidr.to_string(),
                });
            }
        }
        Ok(planned)
    }

    /// Our kind of rule for the recorded addresses that was not there before the response.
    fn added(&self, cidrs: &[ipnet::IpNet], before: &[DenyEntry]) -> Vec<DenyEntry> {
        let mut added = Vec::new();
        for egress in [false, true] {
            for cidr in cidrs {
                for r in self.denies(egress, cidr) {
                    let entry = DenyEntry {
                        acl: self.id.clone(),
                        rule: r.number,
                        egress,
                        cidr: cidr.to_string(),
                    };
                    if !before.contains(&entry) {
                        added.push(entry);
                    }
                }
            }
        }
        added
    }
}

fn direction(egress: bool) -> &'static str {
    if egress {
        "outbound"
    } else {
        "inbound"
    }
}

fn describe(entries: &[DenyEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("#{} {} {}", e.rule, direction(e.egress), e.cidr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The addresses as CIDRs (a host's `/32` or `/128`; a delegated prefix as it is).
pub(crate) fn cidrs(addresses: &[String]) -> Vec<ipnet::IpNet> {
    addresses
        .iter()
        .filter_map(|a| a.parse::<ipnet::IpNet>().ok().or_else(|| host_cidr(a)))
        .collect()
}

/// Entries of the kind this module creates that exist before the response (release leaves
/// them).
pub(crate) fn preexisting(acls: &[Acl], addresses: &[String]) -> Vec<DenyEntry> {
    let cidrs = cidrs(addresses);
    acls.iter().flat_map(|a| a.added(&cidrs, &[])).collect()
}

impl Isolator {
    /// Every network ACL of the VPC.
    pub(crate) async fn network_acls(&self, filter: Filter) -> Result<Vec<Acl>, ContainmentError> {
        let mut pages = self
            .ec2
            .describe_network_acls()
            .filters(filter)
            .into_paginator()
            .send();
        let mut acls = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| ContainmentError::read(DESCRIBE_NETWORK_ACLS.action, err_text(e)))?;
            acls.extend(page.network_acls().iter().filter_map(acl_of));
        }
        Ok(acls)
    }

    /// Steps `nacl-deny-<acl>`, one per network ACL of the VPC, when `IR_NACL_ISOLATION` is on.
    pub(crate) async fn deny_in_acls(
        &self,
        runner: &mut Runner,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        if !self.config.nacl_isolation {
            return Ok(());
        }
        if let Some(why) = &obs.acl_lookup_failed {
            runner.skip(
                "nacl-deny",
                &obs.vpc_id,
                format!("could not read the VPC's network ACLs, none changed: {why}"),
            );
            return Ok(());
        }
        let cidrs = cidrs(&obs.addresses);
        for acl in &obs.network_acls {
            let plan = match acl.plan(&cidrs) {
                Ok(p) if p.is_empty() => "already denied".to_string(),
                Ok(p) => format!("deny {}", describe(&p)),
                Err(why) => why,
            };
            runner
                .step(
                    &format!("nacl-deny-{}", acl.id),
                    &CREATE_ENTRY,
                    &acl.id,
                    plan,
                    || self.deny_in(acl, obs.owner.as_deref(), &cidrs),
                )
                .await?;
        }
        Ok(())
    }

    async fn deny_in(
        &self,
        acl: &Acl,
        account: Option<&str>,
        cidrs: &[ipnet::IpNet],
    ) -> Result<StepResult, String> {
        // In a shared VPC the ACLs are the VPC owner's, not the instance's account's.
        if acl.owner.is_some() && account.is_some() && acl.owner.as_deref() != account {
            return Ok(StepResult::Refused(format!(
                "{} belongs to account {} (a shared VPC): only its owner can change it",
                acl.id,
                acl.owner.as_deref().unwrap_or_default()
            )));
        }
        let mut acl = acl.clone();
        let mut created = Vec::new();
        for _ in 0..ATTEMPTS {
            let planned = match acl.plan(cidrs) {
                Ok(p) => p,
                Err(why) => return Ok(StepResult::Refused(why)),
            };
            match self.create_entries(&planned, &mut created).await {
                Ok(()) if created.is_empty() => {
                    return Ok(StepResult::AlreadyDone("already denied".into()))
                }
                Ok(()) => {
                    return Ok(StepResult::Changed(format!(
                        "denied {}",
                        describe(&created)
                    )))
                }
                Err(CreateError::Taken) => acl = self.reread(&acl.id).await?,
                Err(CreateError::Full(answer)) => {
                    return Ok(StepResult::Refused(format!(
                        "{answer}; created before the limit: [{}]",
                        describe(&created)
                    )))
                }
                // The ACL step adds to the swap, it must not stop the playbook.
                Err(CreateError::Other(e)) => {
                    return Ok(StepResult::Refused(format!(
                        "{e}; created before: [{}]",
                        describe(&created)
                    )))
                }
            }
        }
        Err(format!(
            "{}: rule numbers kept being taken by other changes",
            acl.id
        ))
    }

    async fn create_entries(
        &self,
        planned: &[DenyEntry],
        created: &mut Vec<DenyEntry>,
    ) -> Result<(), CreateError> {
        for e in planned {
            let v6 = e.cidr.contains(':');
            let out = self
                .ec2
                .create_network_acl_entry()
                .network_acl_id(&e.acl)
                .rule_number(e.rule)
                .protocol("-1")
                .rule_action(RuleAction::Deny)
                .egress(e.egress)
                .set_cidr_block((!v6).then(|| e.cidr.clone()))
                .set_ipv6_cidr_block(v6.then(|| e.cidr.clone()))
                .send()
                .await;
            match out {
                Ok(_) => created.push(e.clone()),
                Err(err) => {
                    return Err(match error_code(&err) {
                        Some("NetworkAclEntryAlreadyExists") => CreateError::Taken,
                        Some("NetworkAclEntryLimitExceeded") => CreateError::Full(err_text(err)),
                        _ => CreateError::Other(err_text(err)),
                    })
                }
            }
        }
        Ok(())
    }

    async fn reread(&self, acl_id: &str) -> Result<Acl, String> {
        let filter = Filter::builder()
            .name("network-acl-id")
            .values(acl_id)
            .build();
        self.network_acls(filter)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{acl_id} is gone"))
    }

    /// Steps `nacl-remove-<acl>`: the deny rules for the recorded addresses that were not there
    /// before the response (whatever `IR_NACL_ISOLATION` says now: it may have been on then).
    /// `denied` are the ACLs the containment's record shows it added deny rules to: one of them
    /// without such a rule left is recorded as done (an earlier attempt of this release removed
    /// them), so a retried release's record still says so.
    pub(crate) async fn remove_acl_denies(
        &self,
        runner: &mut Runner,
        obs: &Observed,
        pre: &Ec2PreState,
        denied: &[String],
    ) -> Result<(), StepFailed> {
        if let Some(why) = &obs.acl_lookup_failed {
            runner.skip(
                "nacl-remove",
                &pre.vpc_id,
                format!(
                    "could not read the VPC's network ACLs: remove deny rules for [{}] by hand: {why}",
                    pre.addresses.join(", ")
                ),
            );
            return Ok(());
        }
        let cidrs = cidrs(&pre.addresses);
        for acl in &obs.network_acls {
            let added = acl.added(&cidrs, &pre.acl_denies_before);
            if added.is_empty() {
                if denied.contains(&acl.id) {
                    removed_earlier(runner, &acl.id).await?;
                }
                continue;
            }
            runner
                .step(
                    &format!("nacl-remove-{}", acl.id),
                    &DELETE_ENTRY,
                    &acl.id,
                    format!("remove {}", describe(&added)),
                    || self.delete_entries(added.clone()),
                )
                .await?;
        }
        Ok(())
    }

    async fn delete_entries(&self, entries: Vec<DenyEntry>) -> Result<StepResult, String> {
        for e in &entries {
            let out = self
                .ec2
                .delete_network_acl_entry()
                .network_acl_id(&e.acl)
                .rule_number(e.rule)
                .egress(e.egress)
                .send()
                .await;
            match out {
                Err(err) if error_code(&err) != Some("InvalidNetworkAclEntry.NotFound") => {
                    return Err(err_text(err))
                }
                _ => {}
            }
        }
        Ok(StepResult::Changed(format!(
            "removed {}",
            describe(&entries)
        )))
    }
}

/// Step `nacl-remove-<acl>` when no deny rule the response added is left in `acl`.
async fn removed_earlier(runner: &mut Runner, acl: &str) -> Result<(), StepFailed> {
    runner
        .step(
            &format!("nacl-remove-{acl}"),
            &DELETE_ENTRY,
            acl,
            "remove the response's deny rules".into(),
            || async {
                Ok(StepResult::AlreadyDone(
                    "no deny rule the response added is left".into(),
                ))
            },
        )
        .await?;
    Ok(())
}

enum CreateError {
    /// Another change took the rule number (`NetworkAclEntryAlreadyExists`): plan again.
    Taken,
    /// The ACL holds as many rules as its quota allows.
    Full(String),
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(number: i32, egress: bool, allow: bool, cidr: &str) -> Rule {
        Rule {
            number,
            egress,
            allow,
            all_protocols: true,
            cidr: cidr.parse().ok(),
        }
    }

    /// A dual-stack VPC's default ACL: allow all at 100 (IPv4) and 101 (IPv6), the `*` denies,
    /// both ways.
    fn default_acl() -> Acl {
        let mut rules = Vec::new();
        for egress in [false, true] {
            rules.push(rule(100, egress, true, "0.0.0.0/0"));
            rules.push(rule(101, egress, true, "::/0"));
            rules.push(rule(32767, egress, false, "0.0.0.0/0"));
            rules.push(rule(32768, egress, false, "::/0"));
        }
        Acl {
            id: "acl-1".into(),
            owner: None,
            rules,
        }
    }

    fn hosts(a: &[&str]) -> Vec<ipnet::IpNet> {
        a.iter().filter_map(|a| host_cidr(a)).collect()
    }

    #[test]
    fn each_address_is_denied_both_ways_at_the_lowest_free_numbers() {
        let mut acl = default_acl();
        acl.rules.push(rule(1, false, false, "198.51.100.0/24"));
        let plan = acl.plan(&hosts(&["10.0.1.7", "2001:db8::7"])).unwrap();
        let got: Vec<_> = plan
            .iter()
            .map(|e| (e.rule, e.egress, e.cidr.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, false, "10.0.1.7/32"),
                (3, false, "2001:db8::7/128"),
                (1, true, "10.0.1.7/32"),
                (2, true, "2001:db8::7/128"),
            ]
        );
    }

    #[test]
    fn a_deny_already_in_front_of_the_allows_is_not_planned_again() {
        let mut acl = default_acl();
        acl.rules.push(rule(5, false, false, "10.0.1.7/32"));
        acl.rules.push(rule(6, true, false, "10.0.1.7/32"));
        assert_eq!(acl.plan(&hosts(&["10.0.1.7"])), Ok(vec![]));
        // Behind an allow that matches the address it does nothing: a new one goes in front.
        acl.rules.push(rule(2, true, true, "10.0.0.0/16"));
        let plan = acl.plan(&hosts(&["10.0.1.7"])).unwrap();
        assert_eq!((plan.len(), plan[0].rule, plan[0].egress), (1, 1, true));
    }

    #[test]
    fn an_allow_that_cannot_match_the_address_does_not_bound_the_number() {
        let mut acl = default_acl();
        acl.rules.push(rule(1, false, true, "192.0.2.0/24"));
        let plan = acl.plan(&hosts(&["10.0.1.7"])).unwrap();
        assert_eq!(plan[0].rule, 2);
    }

    #[test]
    fn where_no_allow_can_match_the_default_deny_already_does_and_nothing_is_added() {
        let acl = Acl {
            id: "acl-2".into(),
            owner: None,
            rules: vec![rule(100, false, true, "192.0.2.0/24")],
        };
        assert_eq!(acl.plan(&hosts(&["10.0.1.7"])), Ok(vec![]));
    }

    #[test]
    fn a_delegated_prefix_is_denied_as_a_whole_in_front_of_allows_that_overlap_it() {
        let mut acl = default_acl();
        acl.rules.push(rule(3, true, true, "10.0.2.20/32"));
        let prefix = cidrs(&["10.0.2.16/28".to_string()]);
        let plan = acl.plan(&prefix).unwrap();
        let egress: Vec<_> = plan.iter().filter(|e| e.egress).collect();
        assert_eq!(
            (egress[0].rule, egress[0].cidr.as_str()),
            (1, "10.0.2.16/28")
        );
    }

    #[test]
    fn no_free_number_before_the_first_allow_is_a_refusal_not_a_useless_rule() {
        let mut acl = default_acl();
        acl.rules.push(rule(1, false, true, "0.0.0.0/0"));
        let why = acl.plan(&hosts(&["10.0.1.7"])).unwrap_err();
        assert!(why.contains("first inbound allow rule (1)"), "{why}");
    }

    #[test]
    fn release_removes_only_what_the_response_added() {
        let mut acl = default_acl();
        acl.rules.push(rule(1, false, false, "10.0.1.7/32"));
        acl.rules.push(rule(2, false, false, "10.0.1.7/32"));
        acl.rules.push(rule(1, true, false, "10.0.9.9/32"));
        let before = vec![DenyEntry {
            acl: "acl-1".into(),
            rule: 1,
            egress: false,
            cidr: "10.0.1.7/32".into(),
        }];
        let added = acl.added(&hosts(&["10.0.1.7"]), &before);
        assert_eq!(added.len(), 1);
        assert_eq!((added[0].rule, added[0].egress), (2, false));
    }
}
