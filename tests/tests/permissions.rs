//! The permissions each function declares in code are the ones Terraform grants: the committed
//! `infra/permissions.json` is exactly what the code declares, every declared action is a real
//! `service:Action` name, and Terraform builds the role policies from that file.

use ir_tests::fixtures::workspace_file;

#[test]
fn committed_permissions_json_is_what_the_code_declares() {
    let committed = std::fs::read_to_string(workspace_file("infra/permissions.json"))
        .expect("infra/permissions.json");
    let rendered = ir_tests::permissions::rendered();
    assert!(
        committed == rendered,
        "infra/permissions.json is stale: run `cargo run -p ir-tests --bin permissions > infra/permissions.json`\n{rendered}"
    );
}

#[test]
fn every_declared_action_is_an_iam_action_name() {
    for (function, permissions) in ir_tests::permissions::declared() {
        assert!(!permissions.is_empty(), "{function} declares nothing");
        for p in permissions {
            let (service, action) = p.action.split_once(':').expect("service:Action");
            assert!(
                !service.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && action
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_uppercase())
                    && action.chars().all(|c| c.is_ascii_alphanumeric()),
                "{function}: `{}` is not an IAM action name",
                p.action
            );
            assert!(
                p.resource == "*" || p.resource.starts_with("arn:") || p.resource.starts_with('{'),
                "{function}: resource `{}`",
                p.resource
            );
        }
    }
}

#[test]
fn terraform_builds_every_role_policy_from_the_declarations() {
    let main = std::fs::read_to_string(workspace_file("infra/main.tf")).expect("main.tf");
    assert!(main.contains(r#"jsondecode(file("${path.module}/permissions.json"))"#));
    for function in ir_tests::permissions::declared().keys() {
        assert!(
            main.contains(&format!(
                r#"statements = local.declared_statements["{function}"]"#
            )),
            "{function}'s role policy is not built from permissions.json"
        );
    }
    // No hand-written Action list is left beside the declarations (the CloudWatch Logs statement
    // is the Lambda runtime's, not the code's).
    let functions = main
        .split_once("  functions = {")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .map(|(block, _)| block)
        .expect("the functions block of main.tf");
    let hand_written = functions
        .lines()
        .filter(|l| l.contains("Action") && l.contains('"') && l.contains(':'))
        .filter(|l| !l.contains("logs:"))
        .collect::<Vec<_>>();
    assert!(hand_written.is_empty(), "{hand_written:#?}");
}

#[test]
fn a_step_recording_an_undeclared_call_is_caught() {
    let record = serde_json::json!({"steps": [
        {"step": "deny-all", "api_call": "iam:PutUserPolicy"},
        {"step": "tag", "api_call": "iam:TagUser/TagRole"},
    ]});
    assert_eq!(
        ir_tests::permissions::undeclared_calls("ir-quarantine-iam", &record),
        vec!["iam:TagUser/TagRole".to_string()]
    );
}
