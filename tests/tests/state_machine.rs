//! The real state machine (`statemachine/incident-response.asl.json`) executed by moto's Step
//! Functions, with every Lambda task served by the real Rust handlers (`ir_tests::invoke`) against
//! the same emulator. Each test follows a sample event from EventBridge input to the end state and
//! checks the exact path (states entered, from the execution history) and the resulting AWS state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use chrono::Utc;
use ir_approve::{webhook, ApproveConfig, Approver, GateStore, WebhookRequest};
use ir_core::killswitch::KillSwitch;
use ir_core::secrets::{SecretRef, SecretStore};
use ir_tests::fixtures::{
    create_incidents_table, default_protected_tags, event_json, set_kill_switch, workspace_file,
    KILL_SWITCH,
};
use ir_tests::invoke::{handler, InvokeServer};
use ir_tests::MotoServer;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EVIDENCE: &str = "ir-evidence-111122223333";
const APPROVALS: &str = "ir-approvals";
const SECRET: &str = "jira-webhook-signing-secret";
const ANALYST: &str = "5b10ac8d82e05b22cc7d4ef5";

struct World {
    // Dropped in this order: the emulator before the handlers it calls.
    _moto: MotoServer,
    invoke: InvokeServer,
    sdk: aws_config::SdkConfig,
    _jira: MockServer,
    sfn: aws_sdk_sfn::Client,
    machine: String,
}

/// The ASL with Terraform's placeholders filled the way `infra/` fills them.
fn definition(review_timeout_seconds: u32) -> String {
    let mut text =
        std::fs::read_to_string(workspace_file("statemachine/incident-response.asl.json"))
            .expect("read ASL");
    text = text.replace(
        "${review_timeout_seconds}",
        &review_timeout_seconds.to_string(),
    );
    for (var, function) in [
        ("triage_function_arn", "ir-triage"),
        ("notify_function_arn", "ir-notify"),
        ("evidence_function_arn", "ir-preserve-evidence"),
        ("isolate_ec2_function_arn", "ir-isolate-ec2"),
        ("quarantine_iam_function_arn", "ir-quarantine-iam"),
        ("lockdown_s3_function_arn", "ir-lockdown-s3"),
    ] {
        text = text.replace(
            &format!("${{{var}}}"),
            &format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        );
    }
    assert!(!text.contains("${"), "unfilled placeholder");
    text
}

async fn world(review_timeout_seconds: u32) -> World {
    let invoke = InvokeServer::start().await.expect("invoke server");
    let moto =
        MotoServer::start_with_env(&[("IR_LAMBDA_ENDPOINT", &invoke.endpoint())]).expect("moto");
    moto.configure(r#"{"stepfunctions": {"execute_state_machine": true}}"#)
        .unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = moto.s3_client(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    set_kill_switch(&ssm, KILL_SWITCH, "off").await.unwrap();
    create_incidents_table(&ddb, "incidents").await.unwrap();
    create_incidents_table(&ddb, APPROVALS).await.unwrap();
    s3.create_bucket()
        .bucket(EVIDENCE)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
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
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name("ir-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();

    // Jira: no ticket yet → create; comments accepted.
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": []})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "1", "key": "SEC-42"})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/rest/api/3/issue/SEC-42/comment$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "2"})))
        .mount(&jira)
        .await;

    // The handlers, wired as each main.rs wires them, against the emulator.
    let policy = ir_core::LoadedPolicy::default_policy().unwrap();
    let triage = std::sync::Arc::new(ir_triage::Triage::new(
        &ir_triage::TriageConfig {
            incidents_table: "incidents".into(),
            kill_switch_parameter: KILL_SWITCH.into(),
            dry_run: false,
        },
        policy,
        ssm.clone(),
        ddb.clone(),
    ));
    invoke.register(
        "ir-triage",
        handler(move |e: Value| {
            let t = triage.clone();
            async move { t.handle(e).await }
        }),
    );
    let kill = || KillSwitch::new(ssm.clone(), KILL_SWITCH);
    let isolator = std::sync::Arc::new(ir_isolate_ec2::Isolator {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
        kill_switch: kill(),
        config: ir_isolate_ec2::IsolateConfig {
            kill_switch_parameter: KILL_SWITCH.into(),
            dry_run: false,
            forensic_ingress_cidr: None,
        },
        protected_tags: default_protected_tags(),
    });
    invoke.register(
        "ir-isolate-ec2",
        handler(move |r| {
            let i = isolator.clone();
            async move { i.handle(r).await }
        }),
    );
    let quarantiner = std::sync::Arc::new(ir_quarantine_iam::Quarantiner {
        iam: aws_sdk_iam::Client::new(&sdk),
        kill_switch: kill(),
        config: ir_quarantine_iam::QuarantineConfig {
            kill_switch_parameter: KILL_SWITCH.into(),
            dry_run: false,
            deactivate_all_keys: true,
        },
        protected_tags: default_protected_tags(),
    });
    invoke.register(
        "ir-quarantine-iam",
        handler(move |r| {
            let q = quarantiner.clone();
            async move { q.handle(r).await }
        }),
    );
    let lockdown = std::sync::Arc::new(ir_lockdown_s3::LockdownS3 {
        s3: s3.clone(),
        kill_switch: kill(),
        config: ir_lockdown_s3::LockdownConfig {
            kill_switch_parameter: KILL_SWITCH.into(),
            dry_run: false,
            evidence_bucket: None,
            object_lock: false,
        },
        protected_tags: default_protected_tags(),
    });
    invoke.register(
        "ir-lockdown-s3",
        handler(move |r| {
            let l = lockdown.clone();
            async move { l.handle(r).await }
        }),
    );
    let preserver = std::sync::Arc::new(ir_preserve_evidence::Preserver {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
        s3: s3.clone(),
        // moto has no LookupEvents: the CloudTrail artifacts become recorded gaps.
        cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
        config: ir_preserve_evidence::EvidenceConfig {
            bucket: EVIDENCE.into(),
            kms_key_id: None,
            retention_days: 1,
            lookback_hours: 24,
            max_trail_events: 100,
            snapshots: true,
        },
    });
    invoke.register(
        "ir-preserve-evidence",
        handler(move |r| {
            let p = preserver.clone();
            async move { p.handle(r).await }
        }),
    );
    let notify_config = ir_notify::NotifyConfig {
        sns_topic_arn: Some(topic),
        jira: Some(ir_notify::JiraConfig {
            base_url: jira.uri(),
            project: "SEC".into(),
            issue_type: "Incident".into(),
            credentials: SecretRef::SecretsManager("ir/jira".into()),
        }),
        approvals_table: Some(APPROVALS.into()),
        ..ir_notify::NotifyConfig::none()
    };
    let notifier = std::sync::Arc::new(ir_notify::Notifier {
        http: ir_notify::http_client(notify_config.http_timeout).unwrap(),
        sns: aws_sdk_sns::Client::new(&sdk),
        secrets: SecretStore::new(aws_sdk_secretsmanager::Client::new(&sdk), ssm.clone()),
        gate: Some(GateStore::new(ddb.clone(), APPROVALS)),
        config: notify_config,
    });
    invoke.register(
        "ir-notify",
        handler(move |r| {
            let n = notifier.clone();
            async move { n.handle(r).await }
        }),
    );

    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machine = sfn
        .create_state_machine()
        .name("incident-response")
        .definition(definition(review_timeout_seconds))
        .role_arn("arn:aws:iam::123456789012:role/ir-state-machine")
        .send()
        .await
        .expect("the ASL is accepted")
        .state_machine_arn;
    World {
        _moto: moto,
        invoke,
        sdk,
        _jira: jira,
        sfn,
        machine,
    }
}

impl World {
    async fn start(&self, name: &str, event: &Value) -> String {
        self.sfn
            .start_execution()
            .state_machine_arn(&self.machine)
            .name(name)
            .input(event.to_string())
            .send()
            .await
            .unwrap()
            .execution_arn
    }

    /// States entered, in order.
    async fn path(&self, exec: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .sfn
                .get_execution_history()
                .execution_arn(exec)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            for e in out.events() {
                if matches!(
                    e.r#type(),
                    HistoryEventType::TaskStateEntered
                        | HistoryEventType::ChoiceStateEntered
                        | HistoryEventType::PassStateEntered
                        | HistoryEventType::ParallelStateEntered
                        | HistoryEventType::SucceedStateEntered
                        | HistoryEventType::FailStateEntered
                ) {
                    if let Some(d) = e.state_entered_event_details() {
                        names.push(d.name().to_string());
                    }
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return names;
            }
        }
    }

    async fn gate_status(&self, incident: &str) -> Option<String> {
        GateStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), APPROVALS)
            .status(incident)
            .await
            .unwrap()
    }

    /// Waits until the execution ends, or pauses at the review gate with the token stored.
    async fn settle(&self, exec: &str, incident: Option<&str>) -> ExecutionStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self
                .sfn
                .describe_execution()
                .execution_arn(exec)
                .send()
                .await
                .unwrap()
                .status;
            if status != ExecutionStatus::Running {
                return status;
            }
            if let Some(i) = incident {
                if self.gate_status(i).await.as_deref() == Some("pending") {
                    return status;
                }
            }
            assert!(
                Instant::now() < deadline,
                "execution neither ended nor reached the gate: {:?}",
                self.path(exec).await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn review(
        &self,
        incident: &str,
        to_status: &str,
        delivery: &str,
    ) -> ir_approve::WebhookResponse {
        let body = json!({
            "timestamp": Utc::now().timestamp_millis(),
            "webhookEvent": "jira:issue_updated",
            "user": {"accountId": ANALYST, "displayName": "Dana Analyst"},
            "issue": {"key": "SEC-42", "fields": {"labels": ["incident-response", incident]}},
            "changelog": {"items": [{"field": "status", "fromString": "Awaiting review", "toString": to_status}]}
        })
        .to_string();
        let approver = Approver {
            store: GateStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), APPROVALS),
            sfn: self.sfn.clone(),
            secrets: SecretStore::new(
                aws_sdk_secretsmanager::Client::new(&self.sdk),
                aws_sdk_ssm::Client::new(&self.sdk),
            ),
            config: ApproveConfig {
                table: APPROVALS.into(),
                webhook_secret: SecretRef::Ssm("/ir/jira-webhook-secret".into()),
                approve_status: "Approved".into(),
                reject_status: "Rejected".into(),
                approvers: vec![ANALYST.into()],
                max_age_seconds: 300,
            },
        };
        let sig = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        approver
            .handle(WebhookRequest {
                signature: Some(&sig),
                delivery_id: Some(delivery),
                body: body.as_bytes(),
            })
            .await
    }

    fn functions_called(&self) -> Vec<(String, Option<String>)> {
        self.invoke
            .calls()
            .into_iter()
            .map(|c| (c.function, c.error_type))
            .collect()
    }
}

fn incident_of(event: &Value) -> String {
    ir_core::Incident::from_event_value(event.clone()).unwrap()[0]
        .incident_id
        .clone()
}

const OPENING: [&str; 5] = [
    "Triage",
    "Respond?",
    "Initialise",
    "NotifyOpened",
    "PreserveAndContain",
];

fn expected(tail: &[&str]) -> Vec<String> {
    OPENING.iter().chain(tail).map(|s| s.to_string()).collect()
}

/// Runs an instance, returns its id.
async fn instance(sdk: &aws_config::SdkConfig) -> String {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    ec2.run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ec2_auto_contains_then_an_approval_closes() {
    let w = world(600).await;
    let id = instance(&w.sdk).await;
    let mut event = event_json("guardduty-ec2-bitcointool-dns.json");
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.clone().into();
    let incident = incident_of(&event);
    let exec = w.start("bitcoin", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    let mut path = w.path(&exec).await;
    path.retain(|s| !["PreserveEvidence", "Route", "IsolateEC2"].contains(&s.as_str()));
    assert_eq!(path, expected(&["Collect", "ReviewGate"]));
    // Contained before review (tier auto): every ENI holds only the isolation group.
    let ec2 = aws_sdk_ec2::Client::new(&w.sdk);
    let inst = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let groups: Vec<String> = inst.reservations()[0].instances()[0].network_interfaces()[0]
        .groups()
        .iter()
        .map(|g| g.group_name().unwrap_or_default().to_string())
        .collect();
    assert!(
        groups.iter().all(|g| g.starts_with("ir-isolation-")),
        "{groups:?}"
    );
    let r = w.review(&incident, "Approved", "d-1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 3..],
        ["ContainAfterApproval?", "NotifyApproved", "Closed"]
    );
    let called: Vec<String> = w
        .functions_called()
        .into_iter()
        .map(|(f, e)| {
            assert!(e.is_none(), "{f} failed: {e:?}");
            f
        })
        .collect();
    for f in [
        "ir-triage",
        "ir-notify",
        "ir-preserve-evidence",
        "ir-isolate-ec2",
    ] {
        assert!(called.iter().any(|c| c == f), "{f} never ran: {called:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iam_approval_tier_contains_only_after_approval() {
    let w = world(600).await;
    let iam = aws_sdk_iam::Client::new(&w.sdk);
    iam.create_user()
        .user_name("deploy-bot")
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("deploy-bot")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    let mut event = event_json("guardduty-iam-anomalous-behavior.json");
    event["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key_id.clone().into();
    let incident = incident_of(&event);
    let exec = w.start("leaked-key", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    let status = |iam: aws_sdk_iam::Client| async move {
        iam.list_access_keys()
            .user_name("deploy-bot")
            .send()
            .await
            .unwrap()
            .access_key_metadata()[0]
            .status()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(
        status(iam.clone()).await,
        "Active",
        "tier approval: nothing changes before review"
    );
    let r = w.review(&incident, "Approved", "d-2").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 4..],
        [
            "ContainAfterApproval?",
            "QuarantineIAMApproved",
            "NotifyApproved",
            "Closed"
        ]
    );
    assert_eq!(
        status(iam).await,
        "Inactive",
        "contained after the approval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_rejected_review_releases_the_lockdown() {
    let w = world(600).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&w.sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("acme-customer-exports")
        .send()
        .await
        .unwrap();
    let event = event_json("guardduty-s3-block-public-access-disabled.json");
    let incident = incident_of(&event);
    let exec = w.start("public-bucket", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    assert!(
        s3.get_public_access_block()
            .bucket("acme-customer-exports")
            .send()
            .await
            .is_ok(),
        "locked down"
    );
    let r = w.review(&incident, "Rejected", "d-3").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 4..],
        ["Release?", "ReleaseS3", "NotifyReleased", "Released"]
    );
    assert!(
        s3.get_public_access_block()
            .bucket("acme-customer-exports")
            .send()
            .await
            .is_err(),
        "released: no configuration, as before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suppressed_malformed_and_failing_events_take_their_paths() {
    let w = world(600).await;
    // Suppressed: ends quietly.
    let exec = w
        .start(
            "scanner",
            &event_json("guardduty-ec2-portprobe-from-scanner.json"),
        )
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    assert_eq!(w.path(&exec).await, ["Triage", "Respond?", "NoResponse"]);
    // Malformed: triage's typed error → failure notification → failed execution.
    let exec = w
        .start(
            "malformed",
            &event_json("malformed-guardduty-wrong-types.json"),
        )
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    assert_eq!(
        w.path(&exec).await,
        ["Triage", "NotifyTriageFailed", "ResponseFailed"]
    );
    // The instance named by the finding does not exist: containment fails, the failure is
    // notified with what completed, the execution fails.
    let exec = w
        .start("gone", &event_json("guardduty-ec2-tor-client.json"))
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    let path = w.path(&exec).await;
    assert_eq!(path[..5], OPENING);
    assert_eq!(path[path.len() - 2..], ["NotifyFailed", "ResponseFailed"]);
    let calls = w.functions_called();
    assert!(
        calls
            .iter()
            .any(|(f, e)| f == "ir-triage" && e.as_deref() == Some("MalformedFinding")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(f, e)| f == "ir-isolate-ec2" && e.as_deref() == Some("ResourceNotFound")),
        "{calls:?}"
    );
    let notified: Vec<Value> = w
        .invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == "ir-notify" && c.payload["kind"] == "failed")
        .map(|c| c.payload)
        .collect();
    assert_eq!(
        notified.len(),
        2,
        "one failure notification per failed execution"
    );
    assert!(
        notified
            .iter()
            .any(|p| p["failure"]["Error"] == "ResourceNotFound"),
        "{notified:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unanswered_review_times_out_and_escalates() {
    let w = world(3).await;
    let id = instance(&w.sdk).await;
    let mut event = event_json("guardduty-ec2-bitcointool-dns.json");
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.into();
    let exec = w.start("nobody-home", &event).await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 3..],
        ["ReviewGate", "NotifyReviewTimedOut", "ReviewTimedOut"]
    );
    let kinds: BTreeMap<String, usize> = w
        .invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == "ir-notify")
        .fold(BTreeMap::new(), |mut m, c| {
            *m.entry(c.payload["kind"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
            m
        });
    assert_eq!(kinds.get("review_timed_out"), Some(&1), "{kinds:?}");
}
