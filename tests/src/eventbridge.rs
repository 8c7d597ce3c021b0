//! EventBridge in the emulator, with the rules Terraform creates: the patterns come from
//! `infra/event-rules.json.tftpl` (one source for both), the calls go over plain HTTP (JSON 1.1
//! protocol) to keep the EventBridge SDK out of the build. moto delivers to a Step Functions
//! target only with `tests/moto_launcher.py`'s patch (moto 5.2.1 answers 500 there).

use serde_json::{json, Value};

use crate::fixtures::workspace_file;

/// The rules as Terraform creates them: (name, description, pattern), with the GuardDuty
/// threshold filled in.
pub fn rules(min_guardduty_severity: u32) -> Vec<(String, String, Value)> {
    let text = std::fs::read_to_string(workspace_file("infra/event-rules.json.tftpl"))
        .expect("infra/event-rules.json.tftpl")
        .replace(
            "${min_guardduty_severity}",
            &min_guardduty_severity.to_string(),
        );
    let rules: serde_json::Map<String, Value> =
        serde_json::from_str(&text).expect("the rules template is JSON once filled");
    rules
        .into_iter()
        .map(|(name, r)| {
            let description = r["description"].as_str().unwrap_or_default().to_string();
            (name, description, r["pattern"].clone())
        })
        .collect()
}

/// One EventBridge API call (`action` as in `AWSEvents.<action>`).
pub async fn call(endpoint: &str, action: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("x-amz-target", format!("AWSEvents.{action}"))
        .header("content-type", "application/x-amz-json-1.1")
        // moto picks the service from the credential scope; it does not check the signature.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("EventBridge {action}: {e}"));
    let status = resp.status();
    let out: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(
        status.is_success(),
        "EventBridge {action}: HTTP {status} {out}"
    );
    out
}

/// The default of the `min_guardduty_severity` Terraform variable (infra/variables.tf).
pub fn terraform_default_min_severity() -> u32 {
    let text =
        std::fs::read_to_string(workspace_file("infra/variables.tf")).expect("infra/variables.tf");
    let block = text
        .split("variable \"min_guardduty_severity\"")
        .nth(1)
        .expect("the variable is declared");
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("default"))
        .and_then(|rest| rest.trim().trim_start_matches('=').trim().parse().ok())
        .expect("the variable has a numeric default")
}

/// Creates every rule with `state_machine_arn` as its target (through `role_arn`), as Terraform
/// does, with GuardDuty findings of `min_guardduty_severity` and above.
pub async fn create_rules(
    endpoint: &str,
    state_machine_arn: &str,
    role_arn: &str,
    min_guardduty_severity: u32,
) {
    for (name, description, pattern) in rules(min_guardduty_severity) {
        let rule = format!("ir-{name}");
        call(
            endpoint,
            "PutRule",
            json!({"Name": rule, "Description": description, "EventPattern": pattern.to_string()}),
        )
        .await;
        call(
            endpoint,
            "PutTargets",
            json!({"Rule": rule, "Targets": [{"Id": "response", "Arn": state_machine_arn, "RoleArn": role_arn}]}),
        )
        .await;
    }
}

/// PutEvents on the default bus: the entry is the event as its service emits it.
pub async fn put_event(endpoint: &str, event: &Value) {
    let entry = json!({
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": event["detail"].to_string(),
        "Resources": event["resources"].as_array().cloned().unwrap_or_default(),
    });
    let out = call(endpoint, "PutEvents", json!({ "Entries": [entry] })).await;
    assert_eq!(out["FailedEntryCount"], 0, "{out}");
}
