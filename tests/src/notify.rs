//! ir-notify's world: SNS through moto (delivered to an SQS queue and read back), secrets from
//! moto's Secrets Manager and SSM, and Slack / PagerDuty / Jira as one local HTTP server
//! (wiremock) that records every request, so the payloads are asserted as the services would
//! receive them; every body a test reads back is checked against its channel's definition
//! ([`crate::payloads`]).

use chrono::Utc;
use ir_core::actions::{ContainmentRecord, Mode, RecordStatus};
use ir_core::audit::{Outcome, StepRecord};
use ir_core::incident::SeverityLabel;
use ir_core::secrets::{SecretRef, SecretStore};
use ir_core::TriageDecision;
use ir_notify::{http_client, JiraConfig, Kind, Notifier, NotifyConfig, NotifyRequest};
use serde_json::{json, Value};
use wiremock::MockServer;

use crate::fixtures::{event_json, live_triage};
use crate::payloads::assert_valid;
use crate::MotoServer;

pub const SLACK_PATH: &str = "/services/T0000/B0000/slacksecretpath";
pub const PD_KEY: &str = "R0UTINGKEYSECRET0000000000000000";
pub const JIRA_TOKEN: &str = "ATATT-jira-api-token-secret";

pub struct World {
    _moto: MotoServer,
    pub sdk: aws_config::SdkConfig,
    pub http: MockServer,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    topic_arn: String,
    pub decision: TriageDecision,
}

pub async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let http = MockServer::start().await;
    let triage = live_triage(&sdk, "incidents").await;
    let decision = triage
        .handle(event_json("guardduty-ec2-bitcointool-dns.json"))
        .await
        .unwrap()
        .primary;

    let sns = ir_core::aws_client!(aws_sdk_sns, &sdk);
    let sqs = ir_core::aws_client!(aws_sdk_sqs, &sdk);
    let topic_arn = sns
        .create_topic()
        .name("ir-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name("ir-alerts-inbox")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();

    let sm = ir_core::aws_client!(aws_sdk_secretsmanager, &sdk);
    sm.create_secret()
        .name("ir/slack-webhook")
        .secret_string(format!("{}{SLACK_PATH}", http.uri()))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("ir/jira")
        .secret_string(json!({"email": "ir-bot@example.com", "api_token": JIRA_TOKEN}).to_string())
        .send()
        .await
        .unwrap();
    ir_core::aws_client!(aws_sdk_ssm, &sdk)
        .put_parameter()
        .name("/ir/pagerduty-routing-key")
        .value(PD_KEY)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    World {
        _moto: moto,
        sdk,
        http,
        sqs,
        queue_url,
        topic_arn,
        decision,
    }
}

impl World {
    pub fn config(&self) -> NotifyConfig {
        NotifyConfig {
            sns_topic_arn: Some(self.topic_arn.clone()),
            slack_webhook: Some(SecretRef::SecretsManager("ir/slack-webhook".into())),
            pagerduty_routing_key: Some(SecretRef::Ssm("/ir/pagerduty-routing-key".into())),
            pagerduty_url: format!("{}/v2/enqueue", self.http.uri()),
            pagerduty_min_severity: SeverityLabel::High,
            jira: Some(JiraConfig {
                base_url: self.http.uri(),
                project: "SEC".into(),
                issue_type: "Incident".into(),
                credentials: SecretRef::SecretsManager("ir/jira".into()),
            }),
            ..NotifyConfig::none()
        }
    }

    pub fn notifier(&self, config: NotifyConfig) -> Notifier {
        Notifier {
            http: http_client(config.http_timeout).unwrap(),
            sns: ir_core::aws_client!(aws_sdk_sns, &self.sdk),
            secrets: SecretStore::new(
                ir_core::aws_client!(aws_sdk_secretsmanager, &self.sdk),
                ir_core::aws_client!(aws_sdk_ssm, &self.sdk),
            ),
            gate: None,
            securityhub: None,
            config,
        }
    }

    pub async fn requests(&self, p: &str) -> Vec<(wiremock::Request, Value)> {
        self.http
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == p)
            .map(|r| {
                let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if let Some(channel) = crate::payloads::channel_of(&r) {
                    assert_valid(channel, &format!("{} {p}", r.method), &body);
                }
                (r, body)
            })
            .collect()
    }

    pub async fn sns_messages(&self) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

/// The report of channel `name` in `result`.
pub fn channel<'a>(
    result: &'a ir_notify::NotifyResult,
    name: &str,
) -> &'a ir_notify::ChannelReport {
    result
        .channels
        .iter()
        .find(|c| c.channel == name)
        .unwrap_or_else(|| panic!("no {name} report: {:?}", result.channels))
}

pub fn request(kind: Kind, decision: TriageDecision) -> NotifyRequest {
    NotifyRequest {
        kind,
        decision: Some(decision),
        containment: vec![],
        evidence: None,
        failure: None,
        review: None,
        ticket: None,
        task_token: None,
        execution: None,
        review_timeout_seconds: None,
        event: None,
    }
}

pub fn isolation_record(incident_id: &str) -> ContainmentRecord {
    let now = Utc::now();
    ContainmentRecord {
        incident_id: incident_id.into(),
        function: "ir-isolate-ec2".into(),
        mode: Mode::Contain,
        status: RecordStatus::Completed,
        dry_run: false,
        reason: None,
        steps: vec![StepRecord {
            step: "isolate-enis".into(),
            api_call: Some("ec2:ModifyNetworkInterfaceAttribute".into()),
            target: Some("eni-0abc".into()),
            outcome: Outcome::Succeeded,
            detail: Some("eni-0abc → sg-isolation".into()),
            at: now,
        }],
        pre_state: json!({}),
        failed_step: None,
        error: None,
        started_at: now,
        finished_at: now,
        contained_by: None,
    }
}
