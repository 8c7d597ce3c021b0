//! `make bench`: how fast the response is, measured on the local pipeline (moto + the real state
//! machine + the real handlers in-process). Prints a table; asserts nothing (not a timed test).
//!
//! - handler latency per function (p50 / p95 / max over every invocation);
//! - event → contained: execution start → the containment function's response;
//! - event → review gate: execution start → the task token stored;
//! - cold start per function: each Lambda binary launched as Lambda launches it, against a local
//!   Runtime API ([`ir_tests::runtime_api`]), timed from process launch to the runtime asking
//!   for its first event (init) and to its first response. The event is one the pipeline run
//!   handed that function (so containment sees an already-contained resource: a repeat), for
//!   ir-approve an unsigned webhook delivery (answered 401). Binaries come from
//!   `IR_BENCH_BIN_DIR` (default `target/debug`; `make bench` builds them).
//!
//! Numbers are emulator numbers (moto answers in ~1–50 ms per call; AWS APIs are slower).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ir_tests::fixtures::{event_text, workspace_file, KILL_SWITCH};
use ir_tests::pipeline::{self, Pipeline};
use serde_json::{json, Value};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// One row of the latency table: n, p50, p95, max.
fn latency_row(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "| {name} | {} | {} | {} | {} |",
        v.len(),
        ms(pct(&v, 0.5)),
        ms(pct(&v, 0.95)),
        ms(pct(&v, 1.0))
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("IR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let p = pipeline::start(600).await;
    let mut to_contained = Vec::new();
    let mut to_gate = Vec::new();
    for n in 0..runs {
        let id = pipeline::instance(&p.sdk).await;
        let mut event: serde_json::Value =
            serde_json::from_str(&event_text("guardduty-ec2-bitcointool-dns.json")?)?;
        event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.clone().into();
        // A distinct finding per run, so each is a new incident (not a duplicate).
        let finding = format!("b3nc4{n:027}");
        event["detail"]["id"] = finding.clone().into();
        event["detail"]["arn"] = format!("arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/{finding}").into();
        let incident = ir_core::Incident::from_event_value(event.clone())?[0]
            .incident_id
            .clone();
        let exec = p.start_execution(&format!("bench-{n}"), &event).await;
        p.settle(&exec, Some(&incident)).await;
        let d = p
            .sfn
            .describe_execution()
            .execution_arn(&exec)
            .send()
            .await?;
        let start =
            chrono::DateTime::from_timestamp(d.start_date.secs(), d.start_date.subsec_nanos())
                .unwrap_or_default();
        for c in p.invoke.calls() {
            if c.payload["decision"]["incident_id"] != incident.as_str() {
                continue;
            }
            let end = c.started_at + chrono::Duration::from_std(c.elapsed)?;
            let since = (end - start).to_std().unwrap_or_default();
            match (c.function.as_str(), c.payload["kind"].as_str()) {
                ("ir-isolate-ec2", _) => to_contained.push(since),
                ("ir-notify", Some("approval_requested")) => to_gate.push(since),
                _ => {}
            }
        }
    }
    // One leaked access key (approved in Jira) and one public bucket, so every function ran.
    let key_id = ir_tests::pipeline::user_with_key(&p.sdk, "deploy-bot").await;
    p.moto
        .s3_client(&p.sdk)
        .create_bucket()
        .bucket("acme-customer-exports")
        .send()
        .await?;
    let mut leaked: Value =
        serde_json::from_str(&event_text("guardduty-iam-anomalous-behavior.json")?)?;
    leaked["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key_id.into();
    let public: Value = serde_json::from_str(&event_text(
        "guardduty-s3-block-public-access-disabled.json",
    )?)?;
    for (name, event) in [("bench-iam", &leaked), ("bench-s3", &public)] {
        let incident = ir_core::Incident::from_event_value(event.clone())?[0]
            .incident_id
            .clone();
        let exec = p.start_execution(name, event).await;
        p.settle(&exec, Some(&incident)).await;
        if name == "bench-iam" {
            p.review(&incident, "Approved", "bench-delivery-1").await;
            p.settle(&exec, None).await;
        }
    }

    let mut per_fn: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for c in p.invoke.calls() {
        per_fn.entry(c.function).or_default().push(c.elapsed);
    }
    println!("\n{runs} bitcoin-mining incidents, one leaked key (approved), one public bucket through the local pipeline\n");
    println!("| measure | n | p50 ms | p95 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    for (f, v) in per_fn {
        latency_row(&format!("handler `{f}`"), v);
    }
    latency_row("event → instance isolated (auto tier)", to_contained);
    latency_row("event → review gate open", to_gate);
    member_hop(&p).await;
    cold_starts(&p).await?;
    Ok(())
}

/// What reaching a member account costs before the first call there: the AssumeRole of a new
/// incident's session, and the kept credentials of a known one.
async fn member_hop(p: &Pipeline) {
    p.deploy_member_role().await;
    let reach = pipeline::reach(&p.as_isolate);
    let place = ir_core::member::Place {
        partition: "aws".into(),
        account: pipeline::MEMBER_ACCOUNT.into(),
        region: "eu-west-1".into(),
    };
    let n = 20;
    let (mut fresh, mut kept) = (Vec::new(), Vec::new());
    for i in 0..n {
        let started = Instant::now();
        reach
            .sdk_for(&place, &format!("bench-hop-{i}"))
            .await
            .expect("member role");
        fresh.push(started.elapsed());
        let started = Instant::now();
        reach
            .sdk_for(&place, "bench-hop-0")
            .await
            .expect("member role");
        kept.push(started.elapsed());
    }
    latency_row("member role: AssumeRole for a new incident", fresh);
    latency_row("member role: credentials kept for the incident", kept);
}

/// Environment each function binary gets, as Terraform would set it, pointed at the emulator.
/// The account of the sample findings in `events/`.
const SAMPLE_ACCOUNT: &str = "111122223333";

async fn function_env(
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
            vec![("IR_PRE_STATE_TABLE", ir_tests::fixtures::PRE_STATE_TABLE)]
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
fn unsigned_webhook() -> Value {
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

async fn cold_starts(p: &Pipeline) -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("IR_BENCH_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = std::env::var("IR_BENCH_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_file("target/debug"));
    let calls = p.invoke.calls();
    println!(
        "\nCold start: each Lambda binary in {}, launched {runs} times\n",
        dir.display()
    );
    println!(
        "| function | n | init p50 ms | first response p50 ms | first response max ms | answer |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for function in [
        "ir-triage",
        "ir-preserve-evidence",
        "ir-isolate-ec2",
        "ir-quarantine-iam",
        "ir-lockdown-s3",
        "ir-notify",
        "ir-approve",
    ] {
        let binary = dir.join(function);
        if !binary.exists() {
            println!(
                "| `{function}` | 0 | SKIPPED: {} not built (cargo build --bins) | | | |",
                binary.display()
            );
            continue;
        }
        let event = if function == "ir-approve" {
            unsigned_webhook()
        } else {
            // A repeat of what the pipeline run handed this function.
            calls
                .iter()
                .find(|c| {
                    c.function == function
                        && c.payload["kind"].as_str() != Some("approval_requested")
                })
                .map(|c| c.payload.clone())
                .unwrap_or(Value::Null)
        };
        let env = function_env(p, function).await?;
        let mut init = Vec::new();
        let mut first = Vec::new();
        let mut answer = String::new();
        for _ in 0..runs {
            let c =
                ir_tests::runtime_api::cold_start(&binary, &env, &event, Duration::from_secs(60))
                    .await?;
            init.push(c.init);
            first.push(c.first_response);
            answer = match &c.outcome {
                Ok(v) if v.get("statusCode").is_some() => format!("HTTP {}", v["statusCode"]),
                Ok(_) => "ok".into(),
                Err(e) => serde_json::from_str::<Value>(e)
                    .ok()
                    .and_then(|v| v["errorType"].as_str().map(str::to_string))
                    .unwrap_or_else(|| e.chars().take(60).collect()),
            };
        }
        init.sort();
        first.sort();
        println!(
            "| `{function}` | {runs} | {} | {} | {} | {answer} |",
            ms(pct(&init, 0.5)),
            ms(pct(&first, 0.5)),
            ms(pct(&first, 1.0))
        );
    }
    Ok(())
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
