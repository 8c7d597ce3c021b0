//! EventBridge in the emulator, with the rules Terraform creates: the patterns come from
//! `infra/event-rules.json.tftpl` (one source for both), the calls go over plain HTTP (JSON 1.1
//! protocol) to keep the EventBridge SDK out of the build. moto delivers to a Step Functions
//! target only with `tests/moto_launcher.py`'s patch (moto 5.2.1 answers 500 there).

use crate::MotoServer;
use serde_json::{json, Value};

use crate::fixtures::{terraform_between, workspace_file};

/// How the rules are deployed: the `min_guardduty_severity` and `trusted_securityhub_products`
/// Terraform variables.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub min_guardduty_severity: u32,
    /// `guardduty_types_any_severity`.
    pub guardduty_types_any_severity: Vec<String>,
    /// Trusted besides `aws/guardduty`.
    pub trusted_products: Vec<String>,
}

impl Delivery {
    /// Terraform's defaults.
    pub fn terraform_default() -> Delivery {
        Delivery {
            min_guardduty_severity: terraform_default_min_severity(),
            guardduty_types_any_severity: terraform_default_types_any_severity(),
            trusted_products: Vec::new(),
        }
    }

    /// Every trusted product, as Terraform's `local.trusted_products`.
    pub fn products(&self) -> Vec<String> {
        let mut all = vec!["aws/guardduty".to_string()];
        for p in &self.trusted_products {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        all
    }
}

/// The rules as Terraform creates them: (name, description, pattern), with the GuardDuty
/// threshold and the trusted products filled in.
pub fn rules(delivery: &Delivery) -> Vec<(String, String, Value)> {
    let products: Vec<Value> = delivery
        .products()
        .iter()
        .map(|p| json!({ "suffix": format!(":product/{p}") }))
        .collect();
    let text = std::fs::read_to_string(workspace_file("infra/event-rules.json.tftpl"))
        .expect("infra/event-rules.json.tftpl")
        .replace(
            "${min_guardduty_severity}",
            &delivery.min_guardduty_severity.to_string(),
        )
        .replace(
            "${guardduty_type_prefixes}",
            &Value::Array(
                delivery
                    .guardduty_types_any_severity
                    .iter()
                    .map(|t| json!({ "prefix": t }))
                    .collect(),
            )
            .to_string(),
        )
        .replace(
            "${trusted_product_arns}",
            &Value::Array(products).to_string(),
        )
        .replace(
            "${custom_action_arns}",
            &Value::Array(
                terraform_custom_action_ids()
                    .iter()
                    .map(|id| json!({ "suffix": format!(":action/custom/{id}") }))
                    .collect(),
            )
            .to_string(),
        );
    let rules: serde_json::Map<String, Value> =
        serde_json::from_str(&text).expect("the rules template is JSON once filled");
    rules
        .into_iter()
        // Terraform leaves this rule out when the list is empty (EventBridge refuses `[]`).
        .filter(|(name, _)| {
            name != "guardduty-policy-types" || !delivery.guardduty_types_any_severity.is_empty()
        })
        .map(|(name, r)| {
            let description = r["description"].as_str().unwrap_or_default().to_string();
            (name, description, r["pattern"].clone())
        })
        .collect()
}

/// SigV4 headers for an EventBridge request signed as `credentials` (moto checks signatures
/// when it enforces IAM, and picks the service from the credential scope).
fn signed_headers(
    credentials: &aws_credential_types::Credentials,
    region: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("events")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = sign(request, &params)
        .expect("SigV4 signature")
        .into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One EventBridge API call (`action` as in `AWSEvents.<action>`), signed as the server's
/// harness credentials.
pub async fn call(moto: &MotoServer, action: &str, body: Value) -> Value {
    call_in(moto, "us-east-1", action, body).await
}

/// [`call`] in `region`.
pub async fn call_in(moto: &MotoServer, region: &str, action: &str, body: Value) -> Value {
    let url = format!("{}/", moto.endpoint());
    let body = body.to_string();
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let headers = vec![
        ("host", host),
        ("x-amz-target", format!("AWSEvents.{action}")),
        ("content-type", "application/x-amz-json-1.1".to_string()),
    ];
    let mut request = reqwest::Client::new().post(&url).body(body.clone());
    for (k, v) in &headers {
        if *k != "host" {
            request = request.header(*k, v);
        }
    }
    for (k, v) in signed_headers(moto.credentials(), region, &url, &headers, body.as_bytes()) {
        request = request.header(k, v);
    }
    let resp = request
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

/// The ids of the Security Hub custom actions Terraform creates (`local.custom_actions` in
/// infra/functions.tf).
pub fn terraform_custom_action_ids() -> Vec<String> {
    let block = terraform_between("functions.tf", "custom_actions = {", "\n  }");
    // `"${local.action_id_prefix}Contain"`, the prefix being "IR" for the default name prefix.
    block
        .lines()
        .filter_map(|l| {
            l.trim()
                .split_once("= {")
                .map(|(id, _)| id.trim().to_string())
        })
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.trim_matches('"')
                .replace("${local.action_id_prefix}", "IR")
        })
        .collect()
}

/// The default of the `guardduty_types_any_severity` Terraform variable (infra/variables.tf).
pub fn terraform_default_types_any_severity() -> Vec<String> {
    let variable = terraform_between(
        "variables.tf",
        "variable \"guardduty_types_any_severity\"",
        "\n}",
    );
    let (_, list) = variable
        .split_once("default = [")
        .expect("the variable has a list default");
    list.split(']')
        .next()
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().trim_end_matches(',').trim_matches('"'))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The default of the `min_guardduty_severity` Terraform variable (infra/variables.tf).
pub fn terraform_default_min_severity() -> u32 {
    terraform_between("variables.tf", "variable \"min_guardduty_severity\"", "\n}")
        .lines()
        .find_map(|l| l.trim().strip_prefix("default"))
        .and_then(|rest| rest.trim().trim_start_matches('=').trim().parse().ok())
        .expect("the variable has a numeric default")
}

/// Creates every rule with `state_machine_arn` as its target (through `role_arn`), as Terraform
/// does with `delivery`'s variables.
pub async fn create_rules(
    moto: &MotoServer,
    state_machine_arn: &str,
    role_arn: &str,
    delivery: &Delivery,
) {
    for (name, description, pattern) in rules(delivery) {
        let rule = format!("ir-{name}");
        call(
            moto,
            "PutRule",
            json!({"Name": rule, "Description": description, "EventPattern": pattern.to_string()}),
        )
        .await;
        call(
            moto,
            "PutTargets",
            json!({"Rule": rule, "Targets": [{"Id": "response", "Arn": state_machine_arn, "RoleArn": role_arn}]}),
        )
        .await;
    }
}

/// PutEvents on the default bus: the entry is the event as its service emits it.
pub async fn put_event(moto: &MotoServer, event: &Value) {
    put_event_in(moto, "us-east-1", event).await
}

/// Puts `events` on the default bus of us-east-1 as fast as PutEvents takes them: ten entries
/// per call (its limit), the calls at once.
pub async fn put_events(moto: &MotoServer, events: &[Value]) {
    let calls = events.chunks(10).map(|chunk| async move {
        let entries: Vec<Value> = chunk.iter().map(entry).collect();
        let out = call_in(
            moto,
            "us-east-1",
            "PutEvents",
            json!({ "Entries": entries }),
        )
        .await;
        assert_eq!(out["FailedEntryCount"], 0, "{out}");
    });
    futures::future::join_all(calls).await;
}

/// The PutEvents entry of an EventBridge event.
fn entry(event: &Value) -> Value {
    json!({
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": event["detail"].to_string(),
        "Resources": event["resources"].as_array().cloned().unwrap_or_default(),
    })
}

/// [`put_event`] on the default bus of `region`.
pub async fn put_event_in(moto: &MotoServer, region: &str, event: &Value) {
    let out = call_in(
        moto,
        region,
        "PutEvents",
        json!({ "Entries": [entry(event)] }),
    )
    .await;
    assert_eq!(out["FailedEntryCount"], 0, "{out}");
}
