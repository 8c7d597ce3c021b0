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
    Ok(())
}
