//! IAM permissions declared in code, next to the calls that need them.
//!
//! Every AWS call a function makes is declared as a [`Permission`] constant beside the code that
//! makes it; a containment step records that constant's action as its `api_call`. Each Lambda
//! crate exports `PERMISSIONS` (the union for its function), `infra/permissions.json` is
//! generated from those exports (`cargo run -p ir-tests --bin permissions`), and Terraform builds
//! each function's role policy from that file. Tests fail when the committed file differs from
//! the code, and when a function records an `api_call` it does not declare.
//!
//! Resource templates use placeholders Terraform fills in: `{partition}`, `{account}`,
//! `{region}`, `{prefix}` (the deployment's name prefix) and named resources such as
//! `{incidents_table}`; see `infra/main.tf` (`permission_tokens`) for the full list.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One IAM action on one resource pattern, allowed (or, for a guard rail, denied), optionally
/// only under one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Permission {
    /// `service:Action`, exactly as IAM names it.
    pub action: &'static str,
    /// ARN template (placeholders in braces) or `*` for actions that support no resource scope.
    pub resource: &'static str,
    pub effect: Effect,
    /// `(operator, key, value)`, e.g. `("StringEquals", "iam:PassedToService", "ec2.amazonaws.com")`.
    pub condition: Option<(&'static str, &'static str, &'static str)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

impl Permission {
    pub const fn new(action: &'static str, resource: &'static str) -> Permission {
        Permission {
            action,
            resource,
            effect: Effect::Allow,
            condition: None,
        }
    }

    /// An explicit Deny (a guard rail no other grant can lift): e.g. the function's IAM calls on
    /// the incident-response roles themselves.
    pub const fn deny(action: &'static str, resource: &'static str) -> Permission {
        Permission {
            action,
            resource,
            effect: Effect::Deny,
            condition: None,
        }
    }

    /// The same permission, only when `key` `operator` `value`.
    pub const fn when(
        self,
        operator: &'static str,
        key: &'static str,
        value: &'static str,
    ) -> Permission {
        Permission {
            condition: Some((operator, key, value)),
            ..self
        }
    }
}

/// Resource-level permissions do not exist for the action (e.g. `ec2:Describe*`): `*`.
pub const ANY: &str = "*";

/// Resource templates shared by several crates.
pub mod resource {
    pub const KILL_SWITCH: &str = "{kill_switch_parameter}";
    pub const PRE_STATE_TABLE: &str = "{pre_state_table}";
    pub const INCIDENTS_TABLE: &str = "{incidents_table}";
    pub const STATE_MACHINE: &str = "{state_machine}";
    pub const APPROVALS_TABLE: &str = "{approvals_table}";
    /// The secrets Terraform is configured with (SSM parameters / Secrets Manager secrets).
    pub const SSM_SECRETS: &str = "{ssm_secrets}";
    pub const SECRETS_MANAGER_SECRETS: &str = "{secretsmanager_secrets}";
    pub const IAM_USER: &str = "arn:{partition}:iam::{account}:user/*";
    pub const IAM_ROLE: &str = "arn:{partition}:iam::{account}:role/*";
    pub const EC2_INSTANCE: &str = "arn:{partition}:ec2:{region}:{account}:instance/*";
    pub const EC2_ENI: &str = "arn:{partition}:ec2:{region}:{account}:network-interface/*";
    pub const EC2_SECURITY_GROUP: &str = "arn:{partition}:ec2:{region}:{account}:security-group/*";
    pub const EC2_VPC: &str = "arn:{partition}:ec2:{region}:{account}:vpc/*";
    pub const EC2_VOLUME: &str = "arn:{partition}:ec2:{region}:{account}:volume/*";
    pub const EC2_SNAPSHOT: &str = "arn:{partition}:ec2:{region}::snapshot/*";
    pub const S3_BUCKET: &str = "arn:{partition}:s3:::*";
}

/// The incident-response roles themselves (`<prefix>-*`): a function that changes IAM roles is
/// denied changing these, so neither a bug nor a crafted finding can turn it on its own kind.
pub const SELF_ROLES: &str = "arn:{partition}:iam::{account}:role/{prefix}-*";

/// The kill switch read before any mutating step.
pub const KILL_SWITCH_READ: Permission = Permission::new("ssm:GetParameter", resource::KILL_SWITCH);

/// The union of several declaration groups, sorted and without duplicates.
pub fn union(groups: &[&[Permission]]) -> Vec<Permission> {
    let set: BTreeSet<Permission> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    set.into_iter().collect()
}

/// Whether `action` is allowed by `permissions` (a guard-rail Deny of it does not count).
pub fn declares(permissions: &[Permission], action: &str) -> bool {
    permissions
        .iter()
        .any(|p| p.action == action && p.effect == Effect::Allow)
}

/// One IAM policy statement; fields in the order IAM documents them, whatever serde_json's
/// map ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub effect: &'static str,
    pub action: Vec<&'static str>,
    pub resource: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<&'static str, BTreeMap<&'static str, &'static str>>>,
}

/// IAM policy statements: one per effect, resource template and condition, actions sorted, so
/// the rendering is stable.
pub fn statements(permissions: &[Permission]) -> Vec<Statement> {
    type Key = (
        Effect,
        &'static str,
        Option<(&'static str, &'static str, &'static str)>,
    );
    let mut grouped: BTreeMap<Key, BTreeSet<&'static str>> = BTreeMap::new();
    for p in permissions {
        grouped
            .entry((p.effect, p.resource, p.condition))
            .or_default()
            .insert(p.action);
    }
    grouped
        .into_iter()
        .map(|((effect, resource, condition), actions)| Statement {
            effect: match effect {
                Effect::Allow => "Allow",
                Effect::Deny => "Deny",
            },
            action: actions.into_iter().collect(),
            resource,
            condition: condition.map(|(operator, key, value)| {
                BTreeMap::from([(operator, BTreeMap::from([(key, value)]))])
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Permission = Permission::new("iam:GetUser", resource::IAM_USER);
    const B: Permission = Permission::new("iam:ListUserTags", resource::IAM_USER);
    const C: Permission = Permission::new("ec2:DescribeInstances", ANY);

    #[test]
    fn union_sorts_and_dedupes() {
        let u = union(&[&[B, A], &[A, C]]);
        assert_eq!(u, vec![C, A, B]);
        assert!(declares(&u, "iam:GetUser"));
        assert!(!declares(&u, "iam:TagUser"));
        assert!(!declares(
            &[Permission::deny("iam:TagUser", resource::IAM_USER)],
            "iam:TagUser"
        ));
    }

    #[test]
    fn conditions_and_denies_are_statements_of_their_own() {
        const PASS: Permission = Permission::new("iam:PassRole", resource::IAM_ROLE).when(
            "StringEquals",
            "iam:PassedToService",
            "ec2.amazonaws.com",
        );
        const GUARD: Permission = Permission::deny(
            "iam:PutRolePolicy",
            "arn:{partition}:iam::{account}:role/{prefix}-*",
        );
        let s = serde_json::to_string(&statements(&[PASS, GUARD])).unwrap();
        assert_eq!(
            s,
            r#"[{"Effect":"Allow","Action":["iam:PassRole"],"Resource":"arn:{partition}:iam::{account}:role/*","Condition":{"StringEquals":{"iam:PassedToService":"ec2.amazonaws.com"}}},{"Effect":"Deny","Action":["iam:PutRolePolicy"],"Resource":"arn:{partition}:iam::{account}:role/{prefix}-*"}]"#
        );
    }

    #[test]
    fn statements_group_actions_by_resource() {
        let s = serde_json::to_string(&statements(&[B, C, A])).unwrap();
        assert_eq!(
            s,
            r#"[{"Effect":"Allow","Action":["ec2:DescribeInstances"],"Resource":"*"},{"Effect":"Allow","Action":["iam:GetUser","iam:ListUserTags"],"Resource":"arn:{partition}:iam::{account}:user/*"}]"#
        );
    }
}
