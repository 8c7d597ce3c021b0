//! Fault injection with aws-smithy-mocks: what moto cannot simulate (throttling, outages,
//! access denied), and proof that bad input makes no AWS call at all.

use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use ir_core::{Disposition, LoadedPolicy};
use ir_triage::{Triage, TriageConfig};

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#;
const DENIED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"not authorized to perform: dynamodb:UpdateItem"}"#;

fn event(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(path).expect(name);
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

fn kill_switch_off() -> Rule {
    mock!(aws_sdk_ssm::Client::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(Parameter::builder().name("/ks").value("off").build())
            .build()
    })
}

fn triage(ssm_rules: &[&Rule], ddb_rules: &[&Rule]) -> Triage {
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm_rules, |c| c
        .retry_config(ir_core::aws::retry_config()));
    let ddb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, ddb_rules, |c| c
        .retry_config(ir_core::aws::retry_config()));
    let config = TriageConfig {
        incidents_table: "incidents".into(),
        kill_switch_parameter: "/ks".into(),
        dry_run: false,
        state_machine_arn: None,
    };
    Triage::new(&config, LoadedPolicy::default_policy().unwrap(), ssm, ddb)
}

#[tokio::test]
async fn malformed_events_make_no_aws_call() {
    let get = kill_switch_off();
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_output(|| UpdateItemOutput::builder().build());
    let t = triage(&[&get], &[&update]);
    for name in [
        "malformed-truncated.json",
        "malformed-unsupported-source.json",
        "malformed-guardduty-wrong-types.json",
        "malformed-guardduty-missing-resource.json",
        "malformed-securityhub-no-findings.json",
    ] {
        assert!(t.handle(event(name)).await.is_err(), "{name} accepted");
    }
    assert_eq!(get.num_calls(), 0, "kill switch read for bad input");
    assert_eq!(update.num_calls(), 0, "dedupe write for bad input");

    // The same client does make both calls for a good event (the rules are live).
    t.handle(event("guardduty-ec2-c2-activity.json"))
        .await
        .expect("good event");
    assert_eq!((get.num_calls(), update.num_calls()), (1, 1));
}

#[tokio::test]
async fn throttled_dedupe_write_is_retried_with_backoff() {
    let get = kill_switch_off();
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .output(|| UpdateItemOutput::builder().build())
        .build();
    let t = triage(&[&get], &[&update]);
    let out = t
        .handle(event("guardduty-ec2-c2-activity.json"))
        .await
        .expect("retried to success");
    assert_eq!(out.primary.disposition, Disposition::Respond);
    assert_eq!(update.num_calls(), 3);
}

#[tokio::test]
async fn access_denied_is_a_typed_error_and_not_retried() {
    let get = kill_switch_off();
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .sequence()
        .http_status(400, Some(DENIED.into()))
        .repeatedly()
        .build();
    let t = triage(&[&get], &[&update]);
    let err = t
        .handle(event("guardduty-ec2-c2-activity.json"))
        .await
        .expect_err("denied");
    assert_eq!(err.error_type(), "DedupeUnavailable");
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn unreadable_kill_switch_fails_safe_to_dry_run() {
    let get = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_status(
            500,
            Some(r#"{"__type":"InternalServerError","message":"boom"}"#.into()),
        )
        .repeatedly()
        .build();
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_output(|| UpdateItemOutput::builder().build());
    let t = triage(&[&get], &[&update]);
    let out = t
        .handle(event("guardduty-ec2-c2-activity.json"))
        .await
        .expect("triage");
    assert!(
        out.primary.dry_run && out.primary.kill_switch_engaged,
        "{:?}",
        out.primary.reasons
    );
    assert!(!out.primary.may_mutate());
    assert_eq!(get.num_calls(), ir_core::aws::MAX_ATTEMPTS as usize);
}
