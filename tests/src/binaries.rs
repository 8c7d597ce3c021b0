//! The Lambda binaries run as Lambda runs them, against the local Runtime API
//! ([`crate::runtime_api`]) and the pipeline's emulator: their environment as Terraform sets it,
//! each signing as a principal holding exactly its declared permissions. Used by `make bench`
//! (cold starts) and `make burst` (peak memory per function).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::fixtures::{workspace_file, KILL_SWITCH};
use crate::pipeline::{self, Pipeline};

/// Every function, in pipeline order.
pub const FUNCTIONS: [&str; 7] = [
    "ir-triage",
    "ir-preserve-evidence",
    "ir-isolate-ec2",
    "ir-quarantine-iam",
    "ir-lockdown-s3",
    "ir-notify",
    "ir-approve",
];

/// The memory Terraform gives every function (`infra/functions.tf`).
pub fn configured_memory_mib() -> u64 {
    let text = std::fs::read_to_string(workspace_file("infra/functions.tf")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("memory_size"))
        .and_then(|v| v.trim().trim_start_matches('=').trim().parse().ok())
        .unwrap_or(0)
}

/// Where the binaries are: `IR_BENCH_BIN_DIR`, else `target/debug`.
pub fn bin_dir() -> PathBuf {
    std::env::var("IR_BENCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_file("target/debug"))
}

/// Events the pipeline run handed `function` (at most `most`, spread over the run), or for
/// ir-approve that many (at most 100) unsigned webhook deliveries (answered 401).
pub fn events_for(p: &Pipeline, function: &str, most: usize) -> Vec<Value> {
    if function == "ir-approve" {
        return vec![unsigned_webhook(); most.min(100)];
    }
    let all: Vec<Value> = p
        .invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == function)
        .map(|c| c.payload)
        .collect();
    let step = all.len().div_ceil(most.max(1)).max(1);
    all.into_iter().step_by(step).take(most).collect()
}

/// Peak memory of one function's binary over `events`, handed one at a time to one process.
pub struct Memory {
    pub events: usize,
    pub peak_mib: f64,
    /// Answers that were function errors (the error type of the first one).
    pub errors: usize,
    pub first_error: Option<String>,
}

/// Runs `function`'s binary from [`bin_dir`] over `events`; `None` when it is not built.
pub async fn memory(
    p: &Pipeline,
    function: &str,
    events: &[Value],
) -> Result<Option<Memory>, Box<dyn std::error::Error>> {
    let binary = bin_dir().join(function);
    if !binary.exists() || events.is_empty() {
        return Ok(None);
    }
    let env = function_env(p, function).await?;
    let timeout = Duration::from_secs(120 + 30 * events.len() as u64);
    let w = crate::runtime_api::warm(&binary, &env, events, timeout).await?;
    let errors: Vec<&String> = w
        .answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();
    Ok(Some(Memory {
        events: w.answers.len(),
        peak_mib: w.peak_rss_kib as f64 / 1024.0,
        errors: errors.len(),
        first_error: errors.first().map(|e| error_type(e)),
    }))
}

/// The `errorType` of a function error the runtime posted, else its first 60 characters.
pub fn error_type(e: &str) -> String {
    serde_json::from_str::<Value>(e)
        .ok()
        .and_then(|v| v["errorType"].as_str().map(str::to_string))
        .unwrap_or_else(|| e.chars().take(60).collect())
}

/// The account of the sample findings in `events/`.
const SAMPLE_ACCOUNT: &str = "111122223333";

/// Environment each function binary gets, as Terraform would set it, pointed at the emulator.
pub async fn function_env(
    p: &Pipeline,
    function: &str,
) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    // Each binary runs as a principal holding exactly its declared permissions (IAM enforced).
    let principal = format!("bench-{function}-{}", uuid_like());
    let credentials = pipeline::function_principal(&p.moto, &principal, function).await;
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", p.moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id()),
        ("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("IR_S3_FORCE_PATH_STYLE", "true"),
        ("IR_KILL_SWITCH_PARAMETER", KILL_SWITCH),
        // The sample findings' account: the emulator's resources stand for it, so the
        // functions act with their own credentials (no member role).
        ("IR_ACCOUNT_ID", SAMPLE_ACCOUNT),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let topic = aws_sdk_sns::Client::new(&p.sdk)
        .list_topics()
        .send()
        .await?
        .topics()
        .iter()
        .find_map(|t| t.topic_arn().map(str::to_string))
        .unwrap_or_default();
    let jira = p.jira.uri();
    let specific: Vec<(&str, &str)> = match function {
        "ir-triage" => vec![("IR_INCIDENTS_TABLE", "incidents")],
        // As the pipeline's handlers are configured (no access-log target for the lockdown).
        "ir-isolate-ec2" | "ir-quarantine-iam" | "ir-lockdown-s3" => {
            vec![("IR_PRE_STATE_TABLE", crate::fixtures::PRE_STATE_TABLE)]
        }
        "ir-preserve-evidence" => vec![
            ("IR_EVIDENCE_BUCKET", pipeline::EVIDENCE),
            ("IR_EVIDENCE_RETENTION_DAYS", "1"),
        ],
        "ir-notify" => vec![
            ("IR_SNS_TOPIC_ARN", &topic),
            ("IR_JIRA_URL", &jira),
            ("IR_JIRA_PROJECT", "SEC"),
            ("IR_JIRA_ISSUE_TYPE", "Incident"),
            ("IR_JIRA_CREDENTIALS_SECRET", "secretsmanager:ir/jira"),
            ("IR_APPROVALS_TABLE", pipeline::APPROVALS),
            ("IR_SECURITYHUB_UPDATE", "false"),
        ],
        "ir-approve" => vec![
            ("IR_APPROVALS_TABLE", pipeline::APPROVALS),
            ("IR_JIRA_WEBHOOK_SECRET", "ssm:/ir/jira-webhook-secret"),
            ("IR_APPROVERS", pipeline::ANALYST),
        ],
        _ => vec![],
    };
    env.extend(
        specific
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Ok(env)
}

/// A Jira webhook delivery to the function URL, unsigned (ir-approve answers 401).
pub fn unsigned_webhook() -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": "Atlassian Webhook HTTP Client"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "bench",
            "domainName": "bench.lambda-url.us-east-1.on.aws",
            "domainPrefix": "bench",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "Atlassian Webhook HTTP Client"},
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795428000000u64
        },
        "body": "{\"webhookEvent\":\"jira:issue_updated\"}",
        "isBase64Encoded": false
    })
}

/// A short unique suffix (IAM user names must be unique per run of a function).
fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}
