//! The whole system on one machine: moto (with Step Functions executing ASL), the real state
//! machine definition, and every Lambda handler served in-process by [`crate::invoke`]. Used by the
//! state-machine tests and `make demo`.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use chrono::Utc;
use ir_approve::{webhook, ApproveConfig, Approver, GateStore, WebhookRequest};
use ir_core::secrets::{SecretRef, SecretStore};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::{
    create_incidents_table, pre_state_store, safety, set_kill_switch, workspace_file, KILL_SWITCH,
};
use crate::invoke::{handler, InvokeServer};

pub use crate::eventbridge::Delivery;
use crate::MotoServer;

pub const EVIDENCE: &str = "ir-evidence-111122223333";
pub const APPROVALS: &str = "ir-approvals";
pub const SECRET: &str = "jira-webhook-signing-secret";
/// The Slack incoming webhook's path on the local server.
pub const SLACK_PATH: &str = "/services/T0PIPE/B0PIPE/pipelinesecretpath";
pub const ANALYST: &str = "5b10ac8d82e05b22cc7d4ef5";
/// The state machine's name in the local pipeline.
pub const MACHINE: &str = "incident-response";

pub struct Pipeline {
    // Dropped in this order: the emulator before the handlers it calls.
    pub moto: MotoServer,
    pub invoke: InvokeServer,
    /// The harness's administrator (seeding and reading state back).
    pub sdk: aws_config::SdkConfig,
    /// ir-approve's own principal (the review webhook runs as it).
    pub as_approve: aws_config::SdkConfig,
    pub jira: MockServer,
    pub sfn: aws_sdk_sfn::Client,
    pub machine: String,
    /// ir-isolate-ec2's own principal.
    pub as_isolate: aws_config::SdkConfig,
    /// The administrator of the member account [`MEMBER_ACCOUNT`] (no member role deployed
    /// until [`Pipeline::deploy_member_role`]).
    pub member_admin: aws_credential_types::Credentials,
}

/// The incidents table triage records every finding in.
pub const INCIDENTS_TABLE: &str = "incidents";

/// The account the sample findings name (`events/`): the emulator's own resources stand for
/// it, so the functions act there with their own credentials.
pub const SAMPLE_ACCOUNT: &str = "111122223333";
/// A member account of the organization, reached through its member role.
pub const MEMBER_ACCOUNT: &str = "111111111111";
/// The member role's name (`<prefix>-member`) and the ExternalId the functions present.
pub const MEMBER_ROLE: &str = "ir-member";
pub const MEMBER_EXTERNAL_ID: &str = "ir-ext-pipeline";

/// Where a function of the pipeline acts: with its own credentials for [`SAMPLE_ACCOUNT`],
/// through [`MEMBER_ROLE`] elsewhere.
pub fn reach(as_function: &aws_config::SdkConfig) -> std::sync::Arc<ir_core::member::Reach> {
    std::sync::Arc::new(ir_core::member::Reach::new(
        as_function.clone(),
        SAMPLE_ACCOUNT,
        "aws",
        Some(ir_core::member::MemberRole {
            name: MEMBER_ROLE.into(),
            external_id: MEMBER_EXTERNAL_ID.into(),
        }),
    ))
}

/// The ASL with Terraform's placeholders filled the way `infra/` fills them (Jira configured,
/// so with the review gate).
pub fn definition(review_timeout_seconds: u32) -> String {
    definition_with(review_timeout_seconds, true)
}

/// [`definition`], with or without the review gate (Terraform: `jira_url` set or not).
pub fn definition_with(review_timeout_seconds: u32, review_gate: bool) -> String {
    let mut text =
        std::fs::read_to_string(workspace_file("statemachine/incident-response.asl.json"))
            .expect("read ASL");
    text = text
        .replace(
            "${review_timeout_seconds}",
            &review_timeout_seconds.to_string(),
        )
        .replace("${review_gate}", &review_gate.to_string());
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

/// Starts everything; the review gate waits `review_timeout_seconds`; the EventBridge rules use
/// the Terraform default GuardDuty threshold.
pub async fn start(review_timeout_seconds: u32) -> Pipeline {
    start_with(review_timeout_seconds, Delivery::terraform_default()).await
}

/// [`start`], with the EventBridge rules (and triage's trusted products) deployed as the
/// Terraform variables in `delivery` say.
pub async fn start_with(review_timeout_seconds: u32, delivery: Delivery) -> Pipeline {
    start_full(review_timeout_seconds, delivery, None).await
}

/// [`start`], with evidence snapshots shared to `forensics` (Terraform `forensics_account_id`,
/// `forensics_kms_key`): each response then starts a share execution of its own.
pub async fn start_with_forensics(
    review_timeout_seconds: u32,
    forensics: ir_preserve_evidence::Forensics,
) -> Pipeline {
    start_full(
        review_timeout_seconds,
        Delivery::terraform_default(),
        Some(forensics),
    )
    .await
}

async fn start_full(
    review_timeout_seconds: u32,
    delivery: Delivery,
    forensics: Option<ir_preserve_evidence::Forensics>,
) -> Pipeline {
    let invoke = InvokeServer::start().await.expect("invoke server");
    // IAM enforced: the harness acts as an administrator, each handler as a principal holding
    // exactly the permissions its crate declares (what Terraform gives its role).
    let (moto, members) = crate::accounts::start_with_env(
        &[("IR_LAMBDA_ENDPOINT", &invoke.endpoint())],
        &[MEMBER_ACCOUNT],
    )
    .await
    .expect("moto");
    moto.configure(r#"{"stepfunctions": {"execute_state_machine": true}}"#)
        .unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = moto.s3_client(&sdk);
    let ssm = ir_core::aws_client!(aws_sdk_ssm, &sdk);
    let ddb = ir_core::aws_client!(aws_sdk_dynamodb, &sdk);
    set_kill_switch(&ssm, KILL_SWITCH, "off").await.unwrap();
    create_incidents_table(&ddb, INCIDENTS_TABLE).await.unwrap();
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
    ir_core::aws_client!(aws_sdk_secretsmanager, &sdk)
        .create_secret()
        .name("ir/jira")
        .secret_string(r#"{"email":"ir-bot@example.com","api_token":"tok"}"#)
        .send()
        .await
        .unwrap();
    let topic = ir_core::aws_client!(aws_sdk_sns, &sdk)
        .create_topic()
        .name("ir-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();

    // Jira: no ticket yet → create; comments accepted. The same local server is the Slack
    // incoming webhook.
    let jira = MockServer::start().await;
    ir_core::aws_client!(aws_sdk_secretsmanager, &sdk)
        .create_secret()
        .name("ir/slack-webhook")
        .secret_string(format!("{}{SLACK_PATH}", jira.uri()))
        .send()
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(crate::payloads::strict(
            crate::payloads::Channel::Slack,
            ResponseTemplate::new(200).set_body_string("ok"),
        ))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": []})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(crate::payloads::strict(
            crate::payloads::Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "1", "key": "SEC-42"})),
        ))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/rest/api/3/issue/SEC-42/comment$"))
        .respond_with(crate::payloads::strict(
            crate::payloads::Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "2"})),
        ))
        .mount(&jira)
        .await;

    // The handlers, wired as each main.rs wires them, against the emulator.
    let mut policy = ir_core::LoadedPolicy::default_policy().unwrap();
    // What Terraform passes as IR_TRUSTED_PRODUCTS.
    policy.add_trusted_products(&delivery.products().join(","));
    // Further findings of an event fan out to this pipeline's own state machine (created below).
    let triage_config = ir_triage::TriageConfig {
        incidents_table: INCIDENTS_TABLE.into(),
        kill_switch_parameter: KILL_SWITCH.into(),
        dry_run: false,
        state_machine_arn: Some(format!(
            "arn:aws:states:us-east-1:123456789012:stateMachine:{MACHINE}"
        )),
    };
    let as_triage = function_sdk(&moto, ir_triage::FUNCTION_NAME).await;
    let triage = std::sync::Arc::new(
        ir_triage::Triage::new(
            &triage_config,
            policy,
            ir_core::aws_client!(aws_sdk_ssm, &as_triage),
            ir_core::aws_client!(aws_sdk_dynamodb, &as_triage),
        )
        .with_fan_out(
            &triage_config,
            ir_core::aws_client!(aws_sdk_sfn, &as_triage),
        ),
    );
    invoke.register(
        "ir-triage",
        handler(move |e: Value| {
            let t = triage.clone();
            async move { t.handle(e).await }
        }),
    );
    pre_state_store(&sdk).await;
    let as_isolate = function_sdk(&moto, ir_isolate_ec2::FUNCTION_NAME).await;
    let isolator = std::sync::Arc::new(crate::fixtures::isolator_as(
        &as_isolate,
        ir_isolate_ec2::IsolateConfig::default(),
    ));
    let isolator_reach = reach(&as_isolate);
    let isolator_sdk = as_isolate.clone();
    invoke.register(
        "ir-isolate-ec2",
        handler(move |r| {
            let (i, reach) = (isolator.clone(), isolator_reach.clone());
            async move { i.handle_where_it_lives(&reach, r).await }
        }),
    );
    let as_quarantine = function_sdk(&moto, ir_quarantine_iam::FUNCTION_NAME).await;
    let quarantiner = std::sync::Arc::new(ir_quarantine_iam::Quarantiner {
        iam: ir_core::aws_client!(aws_sdk_iam, &as_quarantine),
        safety: safety(&as_quarantine),
        pre_state: crate::fixtures::pre_state_of(&as_quarantine),
        config: ir_quarantine_iam::QuarantineConfig {
            deactivate_all_keys: true,
        },
    });
    let quarantiner_reach = reach(&as_quarantine);
    invoke.register(
        "ir-quarantine-iam",
        handler(move |r| {
            let (q, reach) = (quarantiner.clone(), quarantiner_reach.clone());
            async move { q.handle_where_it_lives(&reach, r).await }
        }),
    );
    let as_lockdown = function_sdk(&moto, ir_lockdown_s3::FUNCTION_NAME).await;
    let lockdown = std::sync::Arc::new(ir_lockdown_s3::LockdownS3 {
        s3: moto.s3_client(&as_lockdown),
        safety: safety(&as_lockdown),
        pre_state: crate::fixtures::pre_state_of(&as_lockdown),
        config: ir_lockdown_s3::LockdownConfig {
            evidence_bucket: None,
            object_lock: false,
        },
    });
    let lockdown_reach = reach(&as_lockdown);
    invoke.register(
        "ir-lockdown-s3",
        handler(move |r| {
            let (l, reach) = (lockdown.clone(), lockdown_reach.clone());
            async move { l.handle_where_it_lives(&reach, r).await }
        }),
    );
    let as_evidence = function_sdk(&moto, ir_preserve_evidence::FUNCTION_NAME).await;
    let preserver = std::sync::Arc::new(ir_preserve_evidence::Preserver {
        ec2: ir_core::aws_client!(aws_sdk_ec2, &as_evidence),
        iam: ir_core::aws_client!(aws_sdk_iam, &as_evidence),
        s3: moto.s3_client(&as_evidence),
        // moto has no LookupEvents: the CloudTrail artifacts become recorded gaps.
        cloudtrail: ir_core::aws_client!(aws_sdk_cloudtrail, &as_evidence),
        config: ir_preserve_evidence::EvidenceConfig {
            bucket: EVIDENCE.into(),
            kms_key_id: None,
            retention_days: 1,
            lookback_hours: 24,
            max_trail_events: 100,
            snapshots: true,
            forensics,
        },
        share_starter: Some(ir_preserve_evidence::ShareStarter {
            sfn: ir_core::aws_client!(aws_sdk_sfn, &as_evidence),
            state_machine_arn: format!(
                "arn:aws:states:us-east-1:123456789012:stateMachine:{MACHINE}"
            ),
        }),
    });
    let preserver_reach = reach(&as_evidence);
    invoke.register(
        "ir-preserve-evidence",
        handler(move |r| {
            let (p, reach) = (preserver.clone(), preserver_reach.clone());
            async move { p.handle_request(&reach, r).await }
        }),
    );
    let notify_config = ir_notify::NotifyConfig {
        sns_topic_arn: Some(topic),
        slack_webhook: Some(SecretRef::SecretsManager("ir/slack-webhook".into())),
        jira: Some(ir_notify::JiraConfig {
            base_url: jira.uri(),
            project: "SEC".into(),
            issue_type: "Incident".into(),
            credentials: SecretRef::SecretsManager("ir/jira".into()),
        }),
        approvals_table: Some(APPROVALS.into()),
        ..ir_notify::NotifyConfig::none()
    };
    let as_notify = function_sdk(&moto, ir_notify::FUNCTION_NAME).await;
    let notifier = std::sync::Arc::new(ir_notify::Notifier {
        http: ir_notify::http_client(notify_config.http_timeout).unwrap(),
        sns: ir_core::aws_client!(aws_sdk_sns, &as_notify),
        secrets: SecretStore::new(
            ir_core::aws_client!(aws_sdk_secretsmanager, &as_notify),
            ir_core::aws_client!(aws_sdk_ssm, &as_notify),
        ),
        gate: Some(GateStore::new(
            ir_core::aws_client!(aws_sdk_dynamodb, &as_notify),
            APPROVALS,
        )),
        securityhub: None,
        config: notify_config,
    });
    invoke.register(
        "ir-notify",
        handler(move |r| {
            let n = notifier.clone();
            async move { n.handle(r).await }
        }),
    );

    let sfn = ir_core::aws_client!(aws_sdk_sfn, &sdk);
    let machine = sfn
        .create_state_machine()
        .name(MACHINE)
        .definition(definition(review_timeout_seconds))
        .role_arn("arn:aws:iam::123456789012:role/ir-state-machine")
        .send()
        .await
        .expect("the ASL is accepted")
        .state_machine_arn;
    // The EventBridge rules Terraform creates, targeting this machine.
    crate::eventbridge::create_rules(
        &moto,
        &machine,
        "arn:aws:iam::123456789012:role/ir-events",
        &delivery,
    )
    .await;
    let as_approve = function_sdk(&moto, ir_approve::FUNCTION_NAME).await;
    Pipeline {
        moto,
        invoke,
        sdk,
        as_approve,
        jira,
        sfn,
        machine,
        member_admin: members[0].clone(),
        as_isolate: isolator_sdk,
    }
}

/// The placeholders of the declared permissions, filled for the local pipeline.
const TOKENS: &[(&str, &str)] = &[
    ("{partition}", "aws"),
    ("{account}", "123456789012"),
    ("{region}", "us-east-1"),
    ("{prefix}", "ir"),
    ("{evidence_bucket}", EVIDENCE),
];

/// A new principal (IAM user `<name>`) holding exactly `function`'s declared permissions.
pub async fn function_principal(
    moto: &MotoServer,
    name: &str,
    function: &str,
) -> aws_credential_types::Credentials {
    let policy = crate::permissions::emulator_policy(function, TOKENS);
    moto.principal(name, &policy)
        .await
        .expect("function principal")
}

/// SDK configuration signing as `function`'s own principal: exactly its declared permissions
/// (on a server started with [`MotoServer::start_enforcing_iam`]).
pub async fn function_sdk(moto: &MotoServer, function: &str) -> aws_config::SdkConfig {
    let credentials = function_principal(moto, &format!("fn-{function}"), function).await;
    moto.sdk_config_as(credentials).await
}

impl Pipeline {
    /// Puts `event` on the default event bus, as GuardDuty or Security Hub would, and returns the
    /// execution the rules started (`None`: no rule matched, nothing started).
    pub async fn put_event(&self, event: &Value) -> Option<String> {
        let before = self.execution_arns().await;
        crate::eventbridge::put_event(&self.moto, event).await;
        let after = self.execution_arns().await;
        let mut new = after.into_iter().filter(|a| !before.contains(a));
        let exec = new.next();
        assert!(new.next().is_none(), "one event started one execution");
        exec
    }

    /// The ARN of every execution of the state machine.
    pub async fn execution_arns(&self) -> Vec<String> {
        let pages = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.machine)
            .max_results(1000)
            .into_paginator()
            .send();
        let pages: Vec<_> = pages
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("ListExecutions");
        pages
            .iter()
            .flat_map(|p| p.executions())
            .map(|e| e.execution_arn().to_string())
            .collect()
    }

    /// Starts an execution with `event` as input (what the EventBridge target does).
    pub async fn start_execution(&self, name: &str, event: &Value) -> String {
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
    pub async fn path(&self, exec: &str) -> Vec<String> {
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

    /// The execution's status (Running while Step Functions cannot say).
    pub async fn status(&self, exec: &str) -> aws_sdk_sfn::types::ExecutionStatus {
        self.sfn
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await
            .map(|d| d.status)
            .unwrap_or(aws_sdk_sfn::types::ExecutionStatus::Running)
    }

    pub async fn gate_status(&self, incident: &str) -> Option<String> {
        GateStore::new(ir_core::aws_client!(aws_sdk_dynamodb, &self.sdk), APPROVALS)
            .status(incident)
            .await
            .unwrap()
    }

    /// Waits until the execution ends, or pauses at the review gate with the token stored.
    /// Whether ir-notify is (or within five seconds was) called with `kind`: the review gate
    /// is pending as soon as ir-notify has written it, a moment before its invocation returns
    /// and is recorded.
    pub async fn notified(&self, kind: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self
                .invoke
                .calls()
                .iter()
                .any(|c| c.function == "ir-notify" && c.payload["kind"] == kind);
            if seen || Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn settle(&self, exec: &str, incident: Option<&str>) -> ExecutionStatus {
        self.settle_within(exec, incident, Duration::from_secs(60))
            .await
    }

    /// [`Pipeline::settle`], waiting up to `wait`.
    pub async fn settle_within(
        &self,
        exec: &str,
        incident: Option<&str>,
        wait: Duration,
    ) -> ExecutionStatus {
        let deadline = Instant::now() + wait;
        loop {
            let status = self
                .sfn
                .describe_execution()
                .execution_arn(exec)
                .send()
                .await
                .unwrap()
                .status;
            let at_gate = match incident {
                Some(i) => self.gate_status(i).await.as_deref() == Some("pending"),
                None => false,
            };
            if status != ExecutionStatus::Running || at_gate {
                // Whatever ir-notify sent on the way is what Jira would have taken.
                crate::payloads::assert_received_valid(&self.jira).await;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "execution neither ended nor reached the gate: {:?}",
                self.path(exec).await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn review(
        &self,
        incident: &str,
        to_status: &str,
        delivery: &str,
    ) -> ir_approve::WebhookResponse {
        let body = json!({
            "timestamp": Utc::now().timestamp_millis(),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": ANALYST, "displayName": "Dana Analyst"},
            "issue": {"key": "SEC-42", "fields": {"labels": ["incident-response", incident]}},
            "changelog": {"items": [{"field": "status", "fromString": "Awaiting review", "toString": to_status}]}
        })
        .to_string();
        let approver = Approver {
            store: GateStore::new(
                ir_core::aws_client!(aws_sdk_dynamodb, &self.as_approve),
                APPROVALS,
            ),
            sfn: ir_core::aws_client!(aws_sdk_sfn, &self.as_approve),
            secrets: SecretStore::new(
                ir_core::aws_client!(aws_sdk_secretsmanager, &self.as_approve),
                ir_core::aws_client!(aws_sdk_ssm, &self.as_approve),
            ),
            config: ApproveConfig::new(
                APPROVALS,
                SecretRef::Ssm("/ir/jira-webhook-secret".into()),
                vec![ANALYST.into()],
            ),
        };
        let sig = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        approver
            .handle(WebhookRequest {
                signature: Some(&sig),
                delivery_id: Some(delivery),
                retry: None,
                body: body.as_bytes(),
            })
            .await
    }

    pub fn functions_called(&self) -> Vec<(String, Option<String>)> {
        self.invoke
            .calls()
            .into_iter()
            .map(|c| (c.function, c.error_type))
            .collect()
    }
}

/// `event` (a GuardDuty finding) as if raised in `account`, `region`.
pub fn relocate_finding(event: &mut Value, account: &str, region: &str) {
    event["account"] = account.into();
    event["region"] = region.into();
    event["detail"]["accountId"] = account.into();
    event["detail"]["region"] = region.into();
    // The finding's ARN names its Region and account too (and is its identity: another
    // account's finding is another incident).
    if let Some(arn) = event["detail"]["arn"].as_str() {
        let mut parts: Vec<String> = arn.splitn(6, ':').map(String::from).collect();
        if parts.len() == 6 {
            parts[3] = region.into();
            parts[4] = account.into();
            event["detail"]["arn"] = parts.join(":").into();
        }
    }
}

impl Pipeline {
    /// SDK configuration acting in [`MEMBER_ACCOUNT`] (its administrator), in `region`.
    pub async fn in_member(&self, region: &str) -> aws_config::SdkConfig {
        self.moto
            .sdk_config_as(self.member_admin.clone())
            .await
            .into_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build()
    }

    /// Deploys in [`MEMBER_ACCOUNT`] what `infra/member/` deploys: [`MEMBER_ROLE`], trusted by
    /// the four acting functions' principals with [`MEMBER_EXTERNAL_ID`], holding their declared
    /// statements on resources.
    pub async fn deploy_member_role(&self) {
        let acting = [
            ir_isolate_ec2::FUNCTION_NAME,
            ir_quarantine_iam::FUNCTION_NAME,
            ir_lockdown_s3::FUNCTION_NAME,
            ir_preserve_evidence::FUNCTION_NAME,
        ];
        let principals: Vec<String> = acting
            .iter()
            .map(|f| format!("arn:aws:iam::123456789012:user/fn-{f}"))
            .collect();
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": principals},
            "Condition": {"StringEquals": {"sts:ExternalId": MEMBER_EXTERNAL_ID}}}]});
        let iam = ir_core::aws_client!(aws_sdk_iam, &self.in_member("us-east-1").await);
        iam.create_role()
            .role_name(MEMBER_ROLE)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("member role");
        let tokens = [
            ("{partition}", "aws"),
            ("{account}", MEMBER_ACCOUNT),
            ("{region}", "*"),
            ("{prefix}", "ir"),
        ];
        iam.put_role_policy()
            .role_name(MEMBER_ROLE)
            .policy_name("declared")
            .policy_document(crate::permissions::member_policy(&acting, &tokens))
            .send()
            .await
            .expect("member role policy");
    }
}

/// Runs an instance, returns its id.
pub async fn instance(sdk: &aws_config::SdkConfig) -> String {
    let ec2 = ir_core::aws_client!(aws_sdk_ec2, sdk);
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

/// Creates user `name` with one access key (the key a finding says leaked); returns the key id.
pub async fn user_with_key(sdk: &aws_config::SdkConfig, name: &str) -> String {
    let iam = ir_core::aws_client!(aws_sdk_iam, sdk);
    iam.create_user().user_name(name).send().await.unwrap();
    iam.create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .access_key()
        .unwrap()
        .access_key_id()
        .to_string()
}
