//! The review gate end to end against moto's Step Functions, which really executes ASL: an
//! execution pauses on a `waitForTaskToken` task, ir-notify stores the token and comments on the
//! Jira ticket (a local wiremock server), and a signed Jira webhook handled by ir-approve resumes
//! it. The paused task here is moto's `sqs:sendMessage.waitForTaskToken` integration (the test
//! reads the token from the queue and hands ir-notify exactly what the ReviewGate task passes).

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use chrono::Utc;
use ir_approve::{webhook, ApproveConfig, Approver, GateStore, PendingGate, WebhookRequest};
use ir_core::secrets::{SecretRef, SecretStore};
use ir_notify::{http_client, JiraConfig, Kind, Notifier, NotifyConfig, NotifyRequest};
use ir_tests::fixtures::{create_incidents_table, event_json, live_triage};
use ir_tests::MotoServer;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "jira-webhook-signing-secret";
const ANALYST: &str = "5b10ac8d82e05b22cc7d4ef5";
const TABLE: &str = "ir-approvals";

struct World {
    _moto: MotoServer,
    sdk: aws_config::SdkConfig,
    jira: MockServer,
    sfn: aws_sdk_sfn::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    machine_arn: String,
    decision: ir_core::TriageDecision,
}

async fn world() -> World {
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
        .and(path("/rest/api/3/issue/SEC-42/comment"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "3"})))
        .mount(&jira)
        .await;

    let triage = live_triage(&sdk, "incidents").await;
    let decision = triage
        .handle(event_json("guardduty-iam-anomalous-behavior.json"))
        .await
        .unwrap()
        .primary;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    create_incidents_table(&ddb, TABLE).await.unwrap();
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/ir/jira-webhook-secret")
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("ir/jira")
        .secret_string(r#"{"email":"ir-bot@example.com","api_token":"tok"}"#)
        .send()
        .await
        .unwrap();

    let sqs = aws_sdk_sqs::Client::new(&sdk);
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
    let sfn = aws_sdk_sfn::Client::new(&sdk);
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
    fn gate(&self) -> GateStore {
        GateStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), TABLE)
    }

    fn secrets(&self) -> SecretStore {
        SecretStore::new(
            aws_sdk_secretsmanager::Client::new(&self.sdk),
            aws_sdk_ssm::Client::new(&self.sdk),
        )
    }

    fn approver(&self) -> Approver {
        Approver {
            store: self.gate(),
            sfn: self.sfn.clone(),
            secrets: self.secrets(),
            config: ApproveConfig {
                table: TABLE.into(),
                webhook_secret: SecretRef::Ssm("/ir/jira-webhook-secret".into()),
                approve_status: "Approved".into(),
                reject_status: "Rejected".into(),
                approvers: vec![ANALYST.into(), "lead@example.com".into()],
                max_age_seconds: 300,
            },
        }
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
            sns: aws_sdk_sns::Client::new(&self.sdk),
            secrets: self.secrets(),
            gate: Some(self.gate()),
            securityhub: None,
            config,
        }
    }

    /// Starts an execution and opens its review gate the way the ReviewGate task does; returns
    /// the execution ARN and the token.
    async fn paused_execution(&self, name: &str) -> (String, String) {
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
                ticket: None,
                task_token: Some(token.clone()),
                execution: Some(exec.clone()),
                review_timeout_seconds: Some(600),
            })
            .await
            .expect("gate opened");
        assert!(result.gate_registered);
        assert_eq!(result.ticket.as_deref(), Some("SEC-42"));
        (exec, token)
    }

    async fn status(&self, exec: &str) -> (ExecutionStatus, Option<String>) {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await
            .unwrap();
        (out.status, out.output)
    }

    async fn finished(&self, exec: &str) -> (ExecutionStatus, Value) {
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

    fn webhook(&self, to_status: &str, account: &str, sent_ms: i64) -> Vec<u8> {
        json!({
            "timestamp": sent_ms,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
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

async fn deliver(
    a: &Approver,
    body: &[u8],
    signature: Option<String>,
    id: &str,
) -> ir_approve::WebhookResponse {
    a.handle(WebhookRequest {
        signature: signature.as_deref(),
        delivery_id: Some(id),
        body,
    })
    .await
}

fn sign(body: &[u8]) -> Option<String> {
    Some(webhook::sign(SECRET.as_bytes(), body))
}

#[tokio::test]
async fn an_approved_ticket_resumes_the_execution_and_bad_deliveries_do_not() {
    let w = world().await;
    let (exec, token) = w.paused_execution("inc-approve-1").await;

    // The ticket says approval is pending; the token is only in the gate table.
    let comments: Vec<String> = w
        .jira
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/rest/api/3/issue/SEC-42/comment")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].contains("Approved") && comments[0].contains("Rejected"),
        "{}",
        comments[0]
    );
    assert!(
        !comments[0].contains(&token),
        "the task token must never reach Jira"
    );
    assert_eq!(
        w.gate()
            .status(&w.decision.incident_id)
            .await
            .unwrap()
            .as_deref(),
        Some("pending")
    );

    let a = w.approver();
    let now = Utc::now().timestamp_millis();
    let good = w.webhook("Approved", ANALYST, now);

    let r = deliver(&a, &good, None, "d-unsigned").await;
    assert_eq!((r.status, r.result()), (401, "unauthorized"));
    let forged = Some(webhook::sign(b"guessed-secret", &good));
    let r = deliver(&a, &good, forged, "d-forged").await;
    assert_eq!((r.status, r.result()), (401, "unauthorized"));
    let tampered = w.webhook("Approved", "attacker-account", now);
    let r = deliver(&a, &tampered, sign(&good), "d-tampered").await;
    assert_eq!(
        (r.status, r.result()),
        (401, "unauthorized"),
        "signature is over the exact body"
    );
    let stale = w.webhook("Approved", ANALYST, now - 10 * 60 * 1000);
    let r = deliver(&a, &stale, sign(&stale), "d-stale").await;
    assert_eq!((r.status, r.result()), (401, "stale"));
    let intruder = w.webhook("Approved", "557058:not-an-approver", now);
    let r = deliver(&a, &intruder, sign(&intruder), "d-intruder").await;
    assert_eq!((r.status, r.result()), (403, "forbidden"));
    let other = w.webhook("In Progress", ANALYST, now);
    let r = deliver(&a, &other, sign(&other), "d-other").await;
    assert_eq!((r.status, r.result()), (202, "ignored"));
    assert_eq!(
        w.status(&exec).await.0,
        ExecutionStatus::Running,
        "nothing above resumed the execution"
    );
    assert_eq!(
        w.gate()
            .status(&w.decision.incident_id)
            .await
            .unwrap()
            .as_deref(),
        Some("pending")
    );

    let r = deliver(&a, &good, sign(&good), "d-approve").await;
    assert_eq!((r.status, r.result()), (200, "approved"), "{:?}", r.body);
    assert!(!r.body.to_string().contains(&token));
    let (status, output) = w.finished(&exec).await;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(output["outcome"], "closed");
    assert_eq!(output["review"]["review"], "approved");
    assert_eq!(output["review"]["approver"], ANALYST);
    assert_eq!(output["review"]["ticket"], "SEC-42");
    assert_eq!(
        w.gate()
            .status(&w.decision.incident_id)
            .await
            .unwrap()
            .as_deref(),
        Some("approved")
    );

    // Jira retries the same delivery; someone moves the ticket again: neither acts twice.
    let r = deliver(&a, &good, sign(&good), "d-approve").await;
    assert_eq!((r.status, r.result()), (409, "replayed"));
    let r = deliver(&a, &good, sign(&good), "d-approve-again").await;
    assert_eq!((r.status, r.result()), (409, "not_pending"));
}

#[tokio::test]
async fn a_rejected_ticket_fails_the_gate_into_the_release_path() {
    let w = world().await;
    let (exec, _) = w.paused_execution("inc-reject-1").await;
    let body = w.webhook("Rejected", ANALYST, Utc::now().timestamp_millis());
    let r = deliver(&w.approver(), &body, sign(&body), "d-reject").await;
    assert_eq!((r.status, r.result()), (200, "rejected"), "{:?}", r.body);
    let (status, output) = w.finished(&exec).await;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(output["outcome"], "released", "{output}");
    assert_eq!(output["review_error"]["Error"], ir_approve::REJECTED_ERROR);
    assert_eq!(
        w.gate()
            .status(&w.decision.incident_id)
            .await
            .unwrap()
            .as_deref(),
        Some("rejected")
    );
}

#[tokio::test]
async fn a_gate_step_functions_no_longer_waits_on_is_expired_not_retried() {
    let w = world().await;
    let now = Utc::now();
    w.gate()
        .register(&PendingGate {
            incident_id: w.decision.incident_id.clone(),
            task_token: "AAAAKgAAAAIAAAAAAAAAAbogus-timed-out-token".into(),
            ticket_key: "SEC-42".into(),
            execution: None,
            requested_at: now,
            expires_at: now + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    let body = w.webhook("Approved", ANALYST, now.timestamp_millis());
    let r = deliver(&w.approver(), &body, sign(&body), "d-late").await;
    assert_eq!((r.status, r.result()), (410, "expired"), "{:?}", r.body);
    assert_eq!(
        w.gate()
            .status(&w.decision.incident_id)
            .await
            .unwrap()
            .as_deref(),
        Some("expired")
    );
}
