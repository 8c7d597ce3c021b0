//! The IAM permissions every function declares in code, gathered in one place: the source of
//! `infra/permissions.json`, which Terraform turns into each function's role policy.

use std::collections::BTreeMap;

use ir_core::permissions::{statements, Permission, Statement};

/// Function name → its declared permissions.
pub fn declared() -> BTreeMap<&'static str, Vec<Permission>> {
    BTreeMap::from([
        (ir_triage::FUNCTION_NAME, ir_triage::permissions()),
        (ir_isolate_ec2::FUNCTION_NAME, ir_isolate_ec2::permissions()),
        (
            ir_quarantine_iam::FUNCTION_NAME,
            ir_quarantine_iam::permissions(),
        ),
        (ir_lockdown_s3::FUNCTION_NAME, ir_lockdown_s3::permissions()),
        (
            ir_preserve_evidence::FUNCTION_NAME,
            ir_preserve_evidence::permissions(),
        ),
        (ir_notify::FUNCTION_NAME, ir_notify::permissions()),
        (ir_approve::FUNCTION_NAME, ir_approve::permissions()),
    ])
}

/// `infra/permissions.json` as the code declares it: function → IAM statements.
pub fn rendered() -> String {
    let map: BTreeMap<&str, Vec<Statement>> = declared()
        .into_iter()
        .map(|(f, p)| (f, statements(&p)))
        .collect();
    let mut text = serde_json::to_string_pretty(&map).unwrap_or_default();
    text.push('\n');
    text
}

/// The step records of `record` whose `api_call` the function `function` does not declare.
pub fn undeclared_calls(function: &str, record: &serde_json::Value) -> Vec<String> {
    let declared = declared();
    let Some(mine) = declared.get(function) else {
        return vec![format!("unknown function {function}")];
    };
    record["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["api_call"].as_str())
        .filter(|call| !ir_core::permissions::declares(mine, call))
        .map(str::to_string)
        .collect()
}

/// The member role's policy (what `infra/member/` grants in each member account) in the
/// emulator: the declared statements of `functions` that act on the resource, i.e. all but
/// those on the administrator account's own resources (kill switch, tables, evidence bucket and
/// key: named placeholders) and the role assumption itself; `tokens` name the member account.
pub fn member_policy(functions: &[&str], tokens: &[(&str, &str)]) -> String {
    let declared = declared();
    let mut statements: Vec<serde_json::Value> = Vec::new();
    for function in functions {
        let policy: serde_json::Value = serde_json::from_str(&emulator_policy_of(
            &member_permissions(&declared, function),
            tokens,
        ))
        .unwrap_or_default();
        statements.extend(policy["Statement"].as_array().cloned().unwrap_or_default());
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// What of `function`'s declarations the member role carries (see [`member_policy`]).
pub fn member_permissions(
    declared: &BTreeMap<&'static str, Vec<Permission>>,
    function: &str,
) -> Vec<Permission> {
    declared
        .get(function)
        .into_iter()
        .flatten()
        .filter(|p| !p.resource.starts_with('{') && p.action != "sts:AssumeRole")
        .cloned()
        .collect()
}

/// The policy document a function's principal gets in the emulator: its declared statements,
/// placeholders filled for the local pipeline (`tokens`: placeholder → value). moto compares
/// resource ARNs only for S3 and IAM roles (for other services the request's resource is `*`, so
/// a scoped statement could never match); there the resource becomes `*`. moto evaluates no
/// condition keys in identity policies, so conditions are left out (the Allow is then broader
/// than Terraform's), and a Deny is kept only where moto compares its resource (widened to `*`
/// it would deny everything). The declared statements themselves are what Terraform grants
/// (`infra/permissions.json`, checked by tests/permissions.rs).
pub fn emulator_policy(function: &str, tokens: &[(&str, &str)]) -> String {
    let declared = declared();
    emulator_policy_of(&declared.get(function).cloned().unwrap_or_default(), tokens)
}

fn emulator_policy_of(permissions: &[Permission], tokens: &[(&str, &str)]) -> String {
    let statements: Vec<serde_json::Value> = statements(permissions)
        .into_iter()
        .filter_map(|s| {
            let mut resource = s.resource.to_string();
            for (token, value) in tokens {
                resource = resource.replace(token, value);
            }
            let compared = !resource.contains('{')
                && (resource.starts_with("arn:aws:s3:::")
                    || (resource.starts_with("arn:aws:iam::") && resource.contains(":role/")));
            if !compared {
                if s.effect == "Deny" {
                    return None;
                }
                resource = "*".into();
            }
            Some(serde_json::json!({"Effect": s.effect, "Action": s.action, "Resource": resource}))
        })
        .collect();
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}
