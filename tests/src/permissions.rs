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
