//! The two handlers the fuzz pass drives, each with mocked AWS clients (aws-smithy-mocks) that
//! count every call. A call no rule expects panics, and a panic fails the pass.
//!
//! - [`TriageTarget`]: `Triage::handle_at` on the input parsed as JSON (bytes that are not JSON
//!   never reach the handler: the Lambda runtime refuses them). A rejected input must be a
//!   `FindingError` and must come before any AWS call.
//! - [`WebhookTarget`]: `Approver::handle_at` on the input as the body, signed with the
//!   webhook secret or not, at the time the seed delivery was sent. A delivery refused as
//!   malformed, unsigned, stale, not a review, or from someone else (400, 401, 403, or 202
//!   `ignored`) must make no DynamoDB or Step Functions call.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// What a handler made of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Not JSON: the Lambda runtime refuses it before the handler.
    NotJson,
    /// Refused with a typed error (triage) or a 4xx / `ignored` answer (webhook), and no AWS
    /// call other than the webhook secret's.
    Rejected,
    /// Accepted: the handler went on to AWS (mocked).
    Accepted,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn calls(rules: &[Rule]) -> usize {
    rules.iter().map(Rule::num_calls).sum()
}

/// The DynamoDB calls the functions make, all answered with success: `UpdateItem` with
/// `update` (the gate's claim reads the pending gate's old attributes), the others empty.
fn ddb_rules(update: fn() -> UpdateItemOutput) -> Vec<Rule> {
    vec![
        mock!(aws_sdk_dynamodb::Client::update_item).then_output(update),
        mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build()),
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build()),
        mock!(aws_sdk_dynamodb::Client::delete_item)
            .then_output(|| DeleteItemOutput::builder().build()),
    ]
}

fn ddb(rules: &[Rule]) -> aws_sdk_dynamodb::Client {
    let refs: Vec<&Rule> = rules.iter().collect();
    mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &refs)
}

/// A fixed "now" for triage, so policy time windows do not make runs differ.
fn triage_now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
}

pub struct TriageTarget {
    triage: ir_triage::Triage,
    rules: Vec<Rule>,
    runtime: tokio::runtime::Runtime,
}

impl Default for TriageTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl TriageTarget {
    pub fn new() -> TriageTarget {
        let kill_switch = mock!(aws_sdk_ssm::Client::get_parameter).then_output(|| {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().name("/ks").value("off").build())
                .build()
        });
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[&kill_switch]);
        let mut rules = ddb_rules(|| UpdateItemOutput::builder().build());
        let client = ddb(&rules);
        rules.push(kill_switch);
        let config = ir_triage::TriageConfig {
            incidents_table: "incidents".into(),
            kill_switch_parameter: "/ks".into(),
            dry_run: false,
            state_machine_arn: None,
        };
        let policy = ir_core::LoadedPolicy::default_policy().expect("default policy");
        TriageTarget {
            triage: ir_triage::Triage::new(&config, policy, ssm, client),
            rules,
            runtime: runtime(),
        }
    }

    /// AWS calls made so far (every mocked operation).
    pub fn calls(&self) -> usize {
        calls(&self.rules)
    }

    pub fn check(&self, input: &[u8]) -> Result<Verdict, String> {
        let Ok(event) = serde_json::from_slice::<Value>(input) else {
            return Ok(Verdict::NotJson);
        };
        let before = calls(&self.rules);
        let out = self
            .runtime
            .block_on(self.triage.handle_at(event, triage_now()));
        match out {
            Ok(_) => Ok(Verdict::Accepted),
            Err(ir_triage::TriageError::Finding(e)) if calls(&self.rules) == before => {
                if e.to_string().is_empty() {
                    return Err(format!("{} without a message", e.error_type()));
                }
                Ok(Verdict::Rejected)
            }
            Err(e) => Err(format!(
                "rejected as {} after {} AWS calls: {e}",
                e.error_type(),
                calls(&self.rules) - before
            )),
        }
    }
}

const SECRET: &str = "fuzz-webhook-secret";

/// A pending gate's old attributes, as the claim's `ReturnValues=ALL_OLD` gives them back.
fn pending_gate() -> UpdateItemOutput {
    use aws_sdk_dynamodb::types::AttributeValue;
    UpdateItemOutput::builder()
        .attributes(
            "task_token",
            AttributeValue::S("AQCEAAAAKgAAAA-fuzz-token".into()),
        )
        .attributes("status", AttributeValue::S("pending".into()))
        .build()
}

pub struct WebhookTarget {
    approver: ir_approve::Approver,
    rules: Vec<Rule>,
    runtime: tokio::runtime::Runtime,
    /// When the seeds were sent: inputs are handled as if just delivered.
    now: DateTime<Utc>,
}

impl WebhookTarget {
    /// `approver` is the Jira account id allowed to review; `sent_ms` the seeds' `timestamp`.
    pub fn new(approver: &str, sent_ms: i64) -> WebhookTarget {
        let secret = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(SECRET)
                .build()
        });
        let secrets = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&secret]);
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[]);
        let mut rules = ddb_rules(pending_gate);
        let client = ddb(&rules);
        let success = mock!(aws_sdk_sfn::Client::send_task_success)
            .then_output(|| SendTaskSuccessOutput::builder().build());
        let failure = mock!(aws_sdk_sfn::Client::send_task_failure)
            .then_output(|| SendTaskFailureOutput::builder().build());
        let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, &[&success, &failure]);
        rules.extend([success, failure]);
        let reference =
            ir_core::secrets::SecretRef::parse("IR_JIRA_WEBHOOK_SECRET", "secretsmanager:jira")
                .expect("secret reference");
        let config =
            ir_approve::config::ApproveConfig::new("approvals", reference, vec![approver.into()]);
        WebhookTarget {
            approver: ir_approve::Approver {
                store: ir_core::gate::GateStore::new(client, "approvals"),
                sfn,
                secrets: ir_core::secrets::SecretStore::new(secrets, ssm),
                config,
            },
            rules,
            runtime: runtime(),
            now: DateTime::from_timestamp_millis(sent_ms).unwrap_or_default(),
        }
    }

    /// DynamoDB and Step Functions calls made so far.
    pub fn calls(&self) -> usize {
        calls(&self.rules)
    }

    /// The input as a delivery: signed when `signed`, with Jira's headers.
    pub fn check(&self, body: &[u8], signed: bool) -> Result<Verdict, String> {
        let signature = signed.then(|| ir_approve::webhook::sign(SECRET.as_bytes(), body));
        let req = ir_approve::WebhookRequest {
            signature: signature.as_deref(),
            delivery_id: Some("d6a1b7f0-fuzz"),
            retry: None,
            body,
        };
        let before = calls(&self.rules);
        let resp = self
            .runtime
            .block_on(self.approver.handle_at(req, self.now));
        let made = calls(&self.rules) - before;
        let how = if signed { "signed" } else { "unsigned" };
        let refused = matches!(resp.status, 400 | 401 | 403) || resp.result() == "ignored";
        if refused && made > 0 {
            return Err(format!(
                "{how}: answered {} {} after {made} AWS calls",
                resp.status, resp.body
            ));
        }
        // Every mocked call succeeds, so a 5xx is the handler failing on the input itself.
        if resp.result().is_empty() || resp.status < 200 || resp.status >= 500 {
            return Err(format!(
                "{how}: untyped answer {} {}",
                resp.status, resp.body
            ));
        }
        Ok(if refused {
            Verdict::Rejected
        } else {
            Verdict::Accepted
        })
    }
}

/// The Jira account id the webhook target accepts reviews from.
pub const APPROVER: &str = "5b10ac8d82e05b22cc7d4ef5";
/// When the webhook seeds were sent (epoch ms); the target handles inputs at this time.
pub const SENT_MS: i64 = 1_790_000_000_000;

/// A review: the transition of an incident's ticket to `Approved` by [`APPROVER`], as Jira
/// Cloud's `jira:issue_updated` delivery carries it.
pub fn review_delivery() -> Value {
    serde_json::json!({
        "timestamp": SENT_MS,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": APPROVER, "displayName": "Analyst", "active": true},
        "issue": {"id": "10042", "key": "SEC-42", "fields": {
            "labels": ["inc-0123456789abcdef0123", "security-incident"],
            "status": {"name": "Approved"}}},
        "changelog": {"id": "10100", "items": [{
            "field": "status", "fieldtype": "jira", "from": "10000",
            "fromString": "Awaiting review", "to": "10001", "toString": "Approved"}]}
    })
}

/// The webhook seeds: [`review_delivery`], and each real delivery as it was and made into a
/// review (sent at [`SENT_MS`] by [`APPROVER`], to `Approved`, with an incident label), so the
/// mutations start both from what Jira sends and from what reaches the gate's AWS calls.
pub fn webhook_seeds(real: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut seeds = vec![review_delivery().to_string().into_bytes()];
    for raw in real {
        let Ok(mut hook) = serde_json::from_slice::<Value>(raw) else {
            continue;
        };
        seeds.push(raw.clone());
        let review = review_delivery();
        hook["timestamp"] = SENT_MS.into();
        hook["webhookEvent"] = review["webhookEvent"].clone();
        hook["issue_event_type_name"] = review["issue_event_type_name"].clone();
        hook["user"]["accountId"] = APPROVER.into();
        hook["issue"]["fields"]["labels"] = review["issue"]["fields"]["labels"].clone();
        hook["changelog"] = review["changelog"].clone();
        seeds.push(hook.to_string().into_bytes());
    }
    seeds
}
