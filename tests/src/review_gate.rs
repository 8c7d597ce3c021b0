//! The review gate's world: moto's Step Functions, which really executes ASL, with an execution
//! paused on a `waitForTaskToken` task; ir-notify stores the token and comments on the Jira
//! ticket (a local wiremock server); ir-approve answers signed Jira webhooks. The paused task is
//! moto's `sqs:sendMessage.waitForTaskToken` integration (the world reads the token from the
//! queue and hands ir-notify exactly what the ReviewGate task passes).

use std::time::{Duration, Instant};

use crate::fixtures::{create_incidents_table, event_json, live_triage};
use crate::MotoServer;
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::Utc;
use ir_approve::{webhook, ApproveConfig, Approver, GateStore, WebhookRequest};
use ir_core::secrets::{SecretRef, SecretStore};
use ir_notify::{http_client, JiraConfig, Kind, Notifier, NotifyConfig, NotifyRequest};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const SECRET: &str = "jira-webhook-signing-secret";
/// Jira Cloud account ids, in the two forms they take.
pub const ANALYST: &str = "5b10ac8d82e05b22cc7d4ef5";
pub const LEAD: &str = "712020:cf20d007-987c-41f6-a858-a378543f8c96";
pub const TABLE: &str = "ir-approvals";
/// The ticket the Jira search finds for the incident.
pub const TICKET: &str = "SEC-42";

pub struct World {
    _moto: MotoServer,
    pub sdk: aws_config::SdkConfig,
    pub jira: MockServer,
    pub sfn: aws_sdk_sfn::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    machine_arn: String,
    pub decision: ir_core::TriageDecision,
}

pub async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    moto.configure(r#"{"stepfunctions": {"execute_state_machine": true}}"#)
        .expect("enable ASL execution");
    let sdk = moto.sdk_config().await;
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"issues": [{"key": "SEC-42"}]})),
        )
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/rest/api/3/issue/[A-Z][A-Z0-9_]*-[0-9]+/comment$",
        ))
        .respond_with(crate::payloads::strict(
            crate::payloads::Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "3"})),
        ))
        .mount(&jira)
        .await;

    let triage = live_triage(&sdk, "incidents").await;
    let decision = triage
        .handle(event_json("guardduty-iam-anomalous-behavior.json"))
        .await
        .unwrap()
        .primary;
    let ddb = ir_core::aws_client!(aws_sdk_dynamodb, &sdk);
    create_incidents_table(&ddb, TABLE).await.unwrap();
    ir_core::aws_client!(aws_sdk_ssm, &sdk)
        .put_parameter()
        .name("/ir/jira-webhook-secret")
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    ir_core::aws_client!(aws_sdk_secretsmanager, &sdk)
        .create_secret()
        .name("ir/jira")
        .secret_string(r#"{"email":"ir-bot@example.com","api_token":"tok"}"#)
        .send()
        .await
        .unwrap();

    let sqs = ir_core::aws_client!(aws_sdk_sqs, &sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("review-requests")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let definition = json!({
        "StartAt": "ReviewGate",
        "States": {
            "ReviewGate": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {"task_token.$": "$$.Task.Token", "incident_id.$": "$.incident_id"}
                },
                "TimeoutSeconds": 600,
                "ResultPath": "$.review",
                "Catch": [{"ErrorEquals": ["ReviewRejected"], "ResultPath": "$.review_error", "Next": "ReleaseContainment"}],
                "Next": "Close"
            },
            "Close": {"Type": "Pass", "Result": "closed", "ResultPath": "$.outcome", "End": true},
            "ReleaseContainment": {"Type": "Pass", "Result": "released", "ResultPath": "$.outcome", "End": true}
        }
    });
    let sfn = ir_core::aws_client!(aws_sdk_sfn, &sdk);
    let machine_arn = sfn
        .create_state_machine()
        .name("review-gate")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/ir-state-machine")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    World {
        _moto: moto,
        sdk,
        jira,
        sfn,
        sqs,
        queue_url,
        machine_arn,
        decision,
    }
}

impl World {
    pub fn gate(&self) -> GateStore {
        GateStore::new(ir_core::aws_client!(aws_sdk_dynamodb, &self.sdk), TABLE)
    }

    fn secrets(&self) -> SecretStore {
        SecretStore::new(
            ir_core::aws_client!(aws_sdk_secretsmanager, &self.sdk),
            ir_core::aws_client!(aws_sdk_ssm, &self.sdk),
        )
    }

    pub fn approver(&self) -> Approver {
        self.approver_with(
            self.sfn.clone(),
            ApproveConfig::new(
                TABLE,
                SecretRef::Ssm("/ir/jira-webhook-secret".into()),
                vec![ANALYST.into(), LEAD.into()],
            ),
        )
    }

    pub fn approver_with(&self, sfn: aws_sdk_sfn::Client, config: ApproveConfig) -> Approver {
        Approver {
            store: self.gate(),
            sfn,
            secrets: self.secrets(),
            config,
        }
    }

    /// The incident's gate status.
    pub async fn gate_status(&self) -> Option<String> {
        self.gate()
            .status(&self.decision.incident_id)
            .await
            .expect("gate table")
    }

    fn notifier(&self) -> Notifier {
        let config = NotifyConfig {
            jira: Some(JiraConfig {
                base_url: self.jira.uri(),
                project: "SEC".into(),
                issue_type: "Incident".into(),
                credentials: SecretRef::SecretsManager("ir/jira".into()),
            }),
            approvals_table: Some(TABLE.into()),
            ..NotifyConfig::none()
        };
        Notifier {
            http: http_client(config.http_timeout).unwrap(),
            sns: ir_core::aws_client!(aws_sdk_sns, &self.sdk),
            secrets: self.secrets(),
            gate: Some(self.gate()),
            securityhub: None,
            config,
        }
    }

    /// Starts an execution and opens its review gate on [`TICKET`] the way the ReviewGate task
    /// does, waiting 600 s; returns the execution ARN and the token.
    pub async fn paused_execution(&self, name: &str) -> (String, String) {
        self.paused_on(name, None, 600).await
    }

    /// [`World::paused_execution`] on `ticket` (when the state machine knows it) and a gate
    /// that waits `timeout` seconds.
    pub async fn paused_on(
        &self,
        name: &str,
        ticket: Option<&str>,
        timeout: i64,
    ) -> (String, String) {
        let exec = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.machine_arn)
            .name(name)
            .input(json!({"incident_id": self.decision.incident_id}).to_string())
            .send()
            .await
            .unwrap()
            .execution_arn;
        let deadline = Instant::now() + Duration::from_secs(20);
        let token = loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .send()
                .await
                .unwrap();
            if let Some(m) = out.messages().first() {
                let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                break body["task_token"].as_str().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the execution never reached the gate"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let result = self
            .notifier()
            .handle(NotifyRequest {
                kind: Kind::ApprovalRequested,
                decision: Some(self.decision.clone()),
                containment: vec![],
                evidence: None,
                failure: None,
                review: None,
                ticket: ticket.map(String::from),
                task_token: Some(token.clone()),
                execution: Some(exec.clone()),
                review_timeout_seconds: Some(timeout),
                event: None,
            })
            .await
            .expect("gate opened");
        assert!(result.gate_registered);
        assert_eq!(result.ticket.as_deref(), Some(ticket.unwrap_or(TICKET)));
        (exec, token)
    }

    pub async fn status(&self, exec: &str) -> (ExecutionStatus, Option<String>) {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await
            .unwrap();
        (out.status, out.output)
    }

    pub async fn finished(&self, exec: &str) -> (ExecutionStatus, Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, output) = self.status(exec).await;
            if status != ExecutionStatus::Running {
                return (
                    status,
                    output
                        .map(|o| serde_json::from_str(&o).unwrap())
                        .unwrap_or(Value::Null),
                );
            }
            assert!(Instant::now() < deadline, "execution still running");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A signed-ready `jira:issue_updated` delivery of a workflow transition to `to_status` by
    /// `account`, sent at `sent_ms`.
    pub fn webhook(&self, to_status: &str, account: &str, sent_ms: i64) -> Vec<u8> {
        self.update("issue_generic", to_status, account, sent_ms)
    }

    /// [`World::webhook`] of the update kind `event_type` (`issue_event_type_name`).
    pub fn update(
        &self,
        event_type: &str,
        to_status: &str,
        account: &str,
        sent_ms: i64,
    ) -> Vec<u8> {
        json!({
            "timestamp": sent_ms,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": event_type,
            "user": {"accountId": account, "displayName": "Dana Analyst", "active": true},
            "issue": {"id": "10042", "key": "SEC-42",
                      "fields": {"summary": "Review needed", "labels": ["incident-response", self.decision.incident_id]}},
            "changelog": {"id": "20001", "items": [{"field": "status", "fieldtype": "jira",
                          "from": "10000", "fromString": "Awaiting review", "to": "10001", "toString": to_status}]}
        })
        .to_string()
        .into_bytes()
    }
}

pub async fn deliver(
    a: &Approver,
    body: &[u8],
    signature: Option<String>,
    id: &str,
) -> ir_approve::WebhookResponse {
    a.handle(WebhookRequest {
        signature: signature.as_deref(),
        delivery_id: Some(id),
        retry: None,
        body,
    })
    .await
}

/// Jira's retry number `retry` of delivery `id`, arriving at `at`.
pub async fn redeliver(
    a: &Approver,
    body: &[u8],
    id: &str,
    retry: &str,
    at: chrono::DateTime<Utc>,
) -> ir_approve::WebhookResponse {
    let signature = sign(body);
    a.handle_at(
        WebhookRequest {
            signature: signature.as_deref(),
            delivery_id: Some(id),
            retry: Some(retry),
            body,
        },
        at,
    )
    .await
}

pub fn sign(body: &[u8]) -> Option<String> {
    Some(webhook::sign(SECRET.as_bytes(), body))
}
