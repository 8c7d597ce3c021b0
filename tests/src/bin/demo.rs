//! `make demo`: triage every sample event against a local moto server and print the decisions.
//!
//! Starts moto on a free loopback port, creates the incidents table and the kill-switch
//! parameter, runs the real ir-triage code with the real SDK clients, then shows what a repeat
//! and the kill switch do.

use std::process::ExitCode;

use ir_core::incident::Incident;
use ir_core::TriageDecision;
use ir_tests::fixtures::{
    event_text, live_triage, sample_event_files, set_kill_switch, KILL_SWITCH,
};
use ir_tests::MotoServer;

const KILL: &str = KILL_SWITCH;

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn print_row(cols: &[String], widths: &[usize]) {
    let cells: Vec<String> = cols
        .iter()
        .zip(widths)
        .map(|(c, w)| format!("{:<w$}", truncate(c, *w), w = w))
        .collect();
    println!("| {} |", cells.join(" | "));
}

fn note(d: &TriageDecision) -> String {
    let mut n = Vec::new();
    if d.protected {
        n.push("protected".to_string());
    }
    if d.dry_run {
        n.push("dry-run".to_string());
    }
    if d.disposition == ir_core::Disposition::Duplicate {
        n.push(format!("incident {} already handled", d.incident_id));
    } else if let Some(s) = &d.suppressed_by {
        n.push(format!("suppressed by {s}"));
    } else if let Some(r) = &d.matched_rule {
        n.push(format!("rule {r}"));
    } else if let Some(r) = d.reasons.iter().find(|r| {
        r.starts_with("capped")
            || r.contains("threshold")
            || r.contains("custom action")
            || r.contains("default tier")
    }) {
        n.push(r.clone());
    }
    n.join("; ")
}

/// Event file name without the extension, with a short source prefix.
fn short(name: &str) -> String {
    let n = name.trim_end_matches(".json");
    n.strip_prefix("guardduty-")
        .map(|r| format!("gd:{r}"))
        .or_else(|| n.strip_prefix("securityhub-").map(|r| format!("sh:{r}")))
        .unwrap_or_else(|| n.to_string())
}

fn target(i: &Incident) -> String {
    i.primary_resource()
        .map(|r| r.display_id())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("Starting the local AWS emulator (moto server)…");
    let moto = MotoServer::start()?;
    println!("  moto listening on {}", moto.endpoint());
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let triage = live_triage(&sdk, "ir-incidents").await;
    println!(
        "  incidents table ir-incidents, kill switch {KILL}=off, policy sha256:{}",
        &triage.policy.sha256[..12]
    );

    println!("\nTriage of every sample event in events/:\n");
    let widths = [34, 38, 13, 22, 7, 8, 10, 40];
    print_row(
        &[
            "event",
            "finding type",
            "severity",
            "resource",
            "route",
            "tier",
            "decision",
            "why",
        ]
        .map(String::from),
        &widths,
    );
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    let (mut ok, mut rejected) = (0, 0);
    for path in sample_event_files()? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = event_text(&name)?;
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        match triage.handle(value).await {
            Ok(out) => {
                ok += 1;
                let d = &out.primary;
                print_row(
                    &[
                        short(&name),
                        d.incident.finding_type.clone(),
                        format!(
                            "{:.1} {}",
                            d.incident.severity.score, d.incident.severity.label
                        ),
                        target(&d.incident),
                        d.route.to_string(),
                        d.tier.to_string(),
                        d.disposition.to_string(),
                        note(d),
                    ],
                    &widths,
                );
            }
            Err(e) => {
                rejected += 1;
                print_row(
                    &[
                        short(&name),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "rejected".into(),
                        format!("{}: {e}", e.error_type()),
                    ],
                    &widths,
                );
            }
        }
    }
    println!("\n{ok} events triaged, {rejected} rejected with a typed error (and no AWS call).");

    println!("\nThe same finding again (GuardDuty re-publishes findings as their count grows):");
    let repeat = triage
        .handle(serde_json::from_str(&event_text(
            "guardduty-ec2-bitcointool-dns.json",
        )?)?)
        .await?;
    println!(
        "  {} → {} ({})",
        repeat.primary.incident_id,
        repeat.primary.disposition,
        repeat.primary.reasons.last().cloned().unwrap_or_default()
    );

    println!("\nKill switch on, a new finding arrives:");
    set_kill_switch(&ssm, KILL, "on").await?;
    let mut fresh: serde_json::Value =
        serde_json::from_str(&event_text("guardduty-ec2-tor-client.json")?)?;
    let new_id = "0de40e0f1e2d3c4b5a69788000000001";
    fresh["detail"]["id"] = new_id.into();
    fresh["detail"]["arn"] = format!("arn:aws:guardduty:us-east-1:111122223333:detector/12abc34d567e8fa901bc2d34e56789f0/finding/{new_id}").into();
    let dry = triage.handle(fresh).await?;
    println!(
        "  {} → {} / {} / dry_run={} (every mutating step will only plan)",
        dry.primary.incident_id, dry.primary.disposition, dry.primary.tier, dry.primary.dry_run
    );
    let items = ddb
        .scan()
        .table_name("ir-incidents")
        .send()
        .await?
        .items()
        .len();
    println!("\nIncidents recorded in DynamoDB: {items}");
    println!("Stopping the emulator.");
    drop(moto);
    pipeline_demo().await
}

/// Part 2: the whole pipeline on a seeded, compromised environment.
async fn pipeline_demo() -> Result<(), Box<dyn std::error::Error>> {
    use ir_tests::pipeline;
    const MEMBER_REGION: &str = "eu-west-1";
    println!("\n=== Part 2: the whole response, end to end ===\n");
    println!("Starting moto with Step Functions executing the real state machine");
    println!(
        "(statemachine/incident-response.asl.json); every Lambda task runs the real Rust handler."
    );
    // The rules are deployed as `terraform apply -var min_guardduty_severity=4
    // -var 'trusted_securityhub_products=["aws/securityhub"]'` would: MEDIUM GuardDuty findings
    // and up (the default, 7, is HIGH and up), so the leaked key's MEDIUM anomalous-behaviour
    // finding reaches triage, whose policy sends it to review; and Security Hub's own control
    // findings (CSPM) are trusted besides GuardDuty's, so the S3.8 finding is delivered.
    const MIN_GUARDDUTY_SEVERITY: u32 = 4;
    let p = pipeline::start_with(
        600,
        pipeline::Delivery {
            min_guardduty_severity: MIN_GUARDDUTY_SEVERITY,
            trusted_products: vec!["aws/securityhub".into()],
            ..pipeline::Delivery::terraform_default()
        },
    )
    .await;
    let ec2 = aws_sdk_ec2::Client::new(&p.sdk);
    let s3 = p.moto.s3_client(&p.sdk);

    // A compromised environment.
    let miner = pipeline::instance(&p.sdk).await;
    ec2.create_tags()
        .resources(&miner)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value("batch-worker-7")
                .build(),
        )
        .send()
        .await?;
    let key_id = pipeline::user_with_key(&p.sdk, "deploy-bot").await;
    s3.create_bucket()
        .bucket("acme-customer-exports")
        .send()
        .await?;
    println!("Seeded: instance {miner} (mining bitcoin), user deploy-bot with leaked key {key_id}, bucket acme-customer-exports (public access block removed)");
    // A member account of the organization, with infra/member's role deployed.
    p.deploy_member_role().await;
    let in_member = p.in_member(MEMBER_REGION).await;
    let member_miner = pipeline::instance(&in_member).await;
    println!(
        "Seeded in member account {} ({MEMBER_REGION}): instance {member_miner} (mining bitcoin); role {} deployed there\n",
        pipeline::MEMBER_ACCOUNT,
        pipeline::MEMBER_ROLE
    );

    let mut bitcoin: serde_json::Value =
        serde_json::from_str(&event_text("guardduty-ec2-bitcointool-dns.json")?)?;
    bitcoin["detail"]["resource"]["instanceDetails"]["instanceId"] = miner.clone().into();
    let mut leaked: serde_json::Value =
        serde_json::from_str(&event_text("guardduty-iam-anomalous-behavior.json")?)?;
    leaked["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key_id.clone().into();
    // Security Hub's S3.8 control (block public access) failing on the seeded bucket, HIGH.
    let public: serde_json::Value = serde_json::from_str(
        &event_text("securityhub-imported-s3-public-access-control.json")?
            .replace("acme-marketing-assets", "acme-customer-exports"),
    )?;
    let mut member_bitcoin = bitcoin.clone();
    member_bitcoin["detail"]["resource"]["instanceDetails"]["instanceId"] =
        member_miner.clone().into();
    pipeline::relocate_finding(&mut member_bitcoin, pipeline::MEMBER_ACCOUNT, MEMBER_REGION);
    let scanner: serde_json::Value =
        serde_json::from_str(&event_text("guardduty-ec2-portprobe-from-scanner.json")?)?;
    let broken: serde_json::Value =
        serde_json::from_str(&event_text("malformed-guardduty-missing-resource.json")?)?;

    let runs = [
        ("bitcoin-miner", bitcoin),
        ("member-account-miner", member_bitcoin),
        ("leaked-access-key", leaked),
        ("public-bucket", public),
        ("authorised-scanner", scanner),
        ("malformed-event", broken),
    ];
    println!(
        "Each finding is put on the default event bus (PutEvents), where the three rules Terraform"
    );
    println!(
        "creates (infra/event-rules.json.tftpl, here with min_guardduty_severity = {MIN_GUARDDUTY_SEVERITY} and aws/securityhub trusted)"
    );
    println!("start the state machine:\n");
    let mut started = Vec::new();
    for (name, event) in &runs {
        let incident = ir_core::Incident::from_event_value(event.clone())
            .ok()
            .and_then(|v| v.first().map(|i| i.incident_id.clone()));
        match p.put_event(event).await {
            Some(exec) => {
                println!("  {name:<20} → execution started");
                started.push((name.to_string(), exec, incident));
            }
            None => println!(
                "  {name:<20} → no rule matched (GuardDuty severity {} < {MIN_GUARDDUTY_SEVERITY}): no response",
                event["detail"]["severity"]
            ),
        }
    }
    for (_, exec, incident) in &started {
        p.settle(exec, incident.as_deref()).await;
    }
    // The analyst approves the leaked-key and public-bucket reviews in Jira (tier approval:
    // containment now runs).
    for (delivery, (_, exec, incident)) in started
        .iter()
        .filter(|(n, _, _)| n == "leaked-access-key" || n == "public-bucket")
        .enumerate()
    {
        let Some(incident) = incident else { continue };
        let r = p
            .review(
                incident,
                "Approved",
                &format!("demo-delivery-{}", delivery + 1),
            )
            .await;
        println!(
            "Jira webhook (signed, from an allowed approver) for {incident}: HTTP {} {}",
            r.status,
            r.result()
        );
        p.settle(exec, None).await;
    }

    for (name, exec, _) in &started {
        let d = p
            .sfn
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await?;
        let t0 = d.start_date.secs() as f64 + f64::from(d.start_date.subsec_nanos()) / 1e9;
        let status = if d.status == aws_sdk_sfn::types::ExecutionStatus::Running {
            "waiting for review".to_string()
        } else {
            d.status.as_str().to_lowercase()
        };
        println!("\n── {name}: {status}");
        let hist = p
            .sfn
            .get_execution_history()
            .execution_arn(exec)
            .max_results(1000)
            .send()
            .await?;
        for e in hist.events() {
            if let Some(s) = e.state_entered_event_details() {
                let t = e.timestamp.secs() as f64 + f64::from(e.timestamp.subsec_nanos()) / 1e9;
                println!("   +{:>6.2}s  {}", t - t0, s.name());
            }
        }
    }

    println!("\nWhat each function did (from their outputs):");
    let mut calls = p.invoke.calls();
    calls.sort_by_key(|c| c.started_at);
    for c in calls {
        let out = c.output.clone().unwrap_or_default();
        let what = match c.function.as_str() {
            "ir-triage" => format!(
                "{} {} → route {}, tier {}",
                out["incident_id"].as_str().unwrap_or("-"),
                out["incident"]["finding_type"].as_str().unwrap_or("-"),
                out["route"],
                out["tier"]
            ),
            "ir-preserve-evidence" => format!(
                "{} artifacts, snapshots {}, manifest {} ({} gaps)",
                out["artifact_count"],
                out["snapshot_ids"],
                out["manifest_key"].as_str().unwrap_or("-"),
                out["gaps"].as_array().map_or(0, Vec::len)
            ),
            "ir-notify" => format!(
                "{} → ticket {}, {}",
                c.payload["kind"],
                out["ticket"],
                out["channels"]
                    .as_array()
                    .map(|v| v
                        .iter()
                        .map(|ch| format!(
                            "{}:{}",
                            ch["channel"].as_str().unwrap_or(""),
                            ch["status"].as_str().unwrap_or("")
                        ))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default()
            ),
            _ => format!(
                "{} {} — steps: {}",
                out["mode"].as_str().unwrap_or("-"),
                out["status"].as_str().unwrap_or("-"),
                out["steps"]
                    .as_array()
                    .map(|v| v
                        .iter()
                        .map(|st| format!(
                            "{}={}",
                            st["step"].as_str().unwrap_or(""),
                            st["outcome"].as_str().unwrap_or("")
                        ))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
        };
        let what = match &c.error_type {
            Some(e) => format!("FAILED {e}"),
            None => what,
        };
        println!(
            "  {} {:<22} {:>6} ms  {}",
            c.started_at.format("%H:%M:%S%.3f"),
            c.function,
            c.elapsed.as_millis(),
            truncate(&what, 150)
        );
    }
    let ec2_member = aws_sdk_ec2::Client::new(&in_member);
    let enis = ec2_member
        .describe_network_interfaces()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(&member_miner)
                .build(),
        )
        .send()
        .await?;
    let groups: Vec<&str> = enis
        .network_interfaces()
        .iter()
        .flat_map(|n| n.groups())
        .filter_map(|g| g.group_name())
        .collect();
    println!(
        "\nIn member account {} ({MEMBER_REGION}), through {}: {member_miner} is in {groups:?}.",
        pipeline::MEMBER_ACCOUNT,
        pipeline::MEMBER_ROLE
    );
    println!("\nStopping the emulator.");
    Ok(())
}
