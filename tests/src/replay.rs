//! Replay: one finding delivered many times at once, as at-least-once delivery does, plus
//! GuardDuty's re-published copy (the finding recurred: a higher `service.count`, a later
//! `updatedAt`), through the executed state machine. `state_machine_concurrency.rs` runs it
//! small; the bench (`make replay`) delivers it 100 times. [`Replay::failures`] names what is
//! not exactly one response with a complete record.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use ir_preserve_evidence::Manifest;
use sha2::{Digest, Sha256};

use crate::burst::finding;
use crate::pipeline::{instance, Pipeline, EVIDENCE, INCIDENTS_TABLE};

/// What the deliveries did, read back from the emulator, the handlers' calls and Jira.
#[derive(Debug)]
pub struct Replay {
    /// Executions started (one per delivery, the re-published copy included).
    pub deliveries: usize,
    /// Executions that responded (reached `Initialise`).
    pub responses: usize,
    /// The paths of executions that neither responded nor ended at `NoResponse`.
    pub stray: Vec<Vec<String>>,
    /// Whether the response is paused at its review gate.
    pub at_gate: bool,
    /// Successful calls of triage, containment and evidence.
    pub triaged: usize,
    pub containments: usize,
    pub evidence_runs: usize,
    /// Jira tickets created.
    pub tickets: usize,
    /// The incident record's counters, and the highest count the deliveries carried.
    pub triage_count: i64,
    pub repeat_count: i64,
    pub occurrences: i64,
    pub highest_count: i64,
    /// The evidence manifests, checked as a chain (or what breaks it).
    pub manifests: Result<usize, String>,
    /// The first put → every execution settled.
    pub elapsed: Duration,
}

impl Replay {
    /// Each expectation the run broke, in words (empty when it is one response, recorded).
    pub fn failures(&self) -> Vec<String> {
        let copies = self.deliveries.saturating_sub(1) as i64;
        let checks = [
            (self.responses == 1, format!("{} responses", self.responses)),
            (
                self.stray.is_empty(),
                format!("other paths: {:?}", self.stray),
            ),
            (self.at_gate, "the response is not at its gate".into()),
            (
                self.triaged == self.deliveries,
                format!("{} of {} deliveries triaged", self.triaged, self.deliveries),
            ),
            (
                self.containments == 1,
                format!("{} containment runs", self.containments),
            ),
            (
                self.evidence_runs == 1,
                format!("{} evidence runs", self.evidence_runs),
            ),
            (self.tickets == 1, format!("{} tickets", self.tickets)),
            (
                self.triage_count == 1,
                format!("triage_count {}", self.triage_count),
            ),
            (
                self.repeat_count == copies,
                format!("repeat_count {} for {copies} repeats", self.repeat_count),
            ),
            (
                self.occurrences == self.highest_count,
                format!(
                    "occurrences {} (highest count {})",
                    self.occurrences, self.highest_count
                ),
            ),
            (
                matches!(self.manifests, Ok(n) if n >= 1),
                format!("evidence chain: {:?}", self.manifests),
            ),
        ];
        checks
            .into_iter()
            .filter(|(fine, _)| !fine)
            .map(|(_, why)| why)
            .collect()
    }
}

/// Delivers one finding about a new instance `copies` times and its re-published copy once,
/// all at once, waits for every execution, and reads back what they did.
pub async fn replay(w: &Pipeline, copies: usize) -> Replay {
    let id = instance(&w.sdk).await;
    let event = finding(0, &id);
    let count = event["detail"]["service"]["count"].as_i64().unwrap_or(1);
    let mut events = vec![event.clone(); copies];
    let mut updated = event.clone();
    updated["detail"]["service"]["count"] = (count + 7).into();
    updated["detail"]["updatedAt"] = "2026-12-02T12:00:00.000Z".into();
    events.push(updated);
    let incident = ir_core::Incident::from_event_value(event).expect("a finding")[0]
        .incident_id
        .clone();

    let clock = Instant::now();
    crate::eventbridge::put_events(&w.moto, &events).await;
    let execs = crate::burst::executions(w, events.len(), Duration::from_secs(120)).await;
    let (mut responses, mut stray) = (0, Vec::new());
    for exec in &execs {
        let path = settled_path(w, exec, &incident, Duration::from_secs(300)).await;
        if path.iter().any(|s| s == "Initialise") {
            responses += 1;
        } else if path.last().map(String::as_str) != Some("NoResponse") {
            stray.push(path);
        }
    }
    // Whatever ir-notify sent is what Jira would have taken.
    crate::payloads::assert_received_valid(&w.jira).await;
    let elapsed = clock.elapsed();
    let (triage_count, repeat_count, occurrences) = counters(w, &incident).await;
    Replay {
        deliveries: execs.len(),
        responses,
        stray,
        at_gate: w.gate_status(&incident).await.as_deref() == Some("pending"),
        triaged: succeeded(w, "ir-triage"),
        containments: succeeded(w, "ir-isolate-ec2"),
        evidence_runs: succeeded(w, "ir-preserve-evidence"),
        tickets: tickets(w).await,
        triage_count,
        repeat_count,
        occurrences,
        highest_count: count + 7,
        manifests: manifest_chain(w, &incident).await,
        elapsed,
    }
}

/// The states `exec` went through once it ended, or once it responded and is paused at the
/// incident's review gate (a copy still running is waited for, not read early); at most
/// `within`.
async fn settled_path(w: &Pipeline, exec: &str, incident: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let status = w.status(exec).await;
        let path = w.path(exec).await;
        let responded = path.iter().any(|s| s == "Initialise");
        let at_gate = responded && w.gate_status(incident).await.as_deref() == Some("pending");
        if status != ExecutionStatus::Running || at_gate || Instant::now() > deadline {
            return path;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Successful calls of `function` so far.
fn succeeded(w: &Pipeline, function: &str) -> usize {
    w.invoke
        .calls()
        .iter()
        .filter(|c| c.function == function && c.output.is_some())
        .count()
}

/// Jira issues created so far.
async fn tickets(w: &Pipeline) -> usize {
    w.jira
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/rest/api/3/issue")
        .count()
}

/// The incident record's `triage_count`, `repeat_count` and `occurrences` (-1 when absent).
async fn counters(w: &Pipeline, incident: &str) -> (i64, i64, i64) {
    let item = aws_sdk_dynamodb::Client::new(&w.sdk)
        .get_item()
        .table_name(INCIDENTS_TABLE)
        .key("incident_id", AttributeValue::S(incident.into()))
        .consistent_read(true)
        .send()
        .await
        .ok()
        .and_then(|o| o.item)
        .unwrap_or_default();
    let n = |k: &str| -> i64 {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    (n("triage_count"), n("repeat_count"), n("occurrences"))
}

/// Reads every manifest of `incident` from the evidence bucket and checks the chain: sequence
/// 1, 2, … without a gap, each naming the one before by key and SHA-256, every artifact
/// matching its recorded hash and size. The number of manifests, or what is broken.
pub async fn manifest_chain(w: &Pipeline, incident: &str) -> Result<usize, String> {
    let s3 = aws_sdk_s3::Client::new(&w.sdk);
    let pages: Vec<_> = s3
        .list_objects_v2()
        .bucket(EVIDENCE)
        .prefix("incidents/")
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| format!("ListObjectsV2: {e}"))?;
    let marker = format!("/{incident}/manifests/");
    let keys: Vec<String> = pages
        .iter()
        .flat_map(|p| p.contents())
        .filter_map(|o| o.key().map(str::to_string))
        .filter(|k| k.contains(&marker))
        .collect();
    let mut chain = Vec::with_capacity(keys.len());
    for key in keys {
        let bytes = object(&s3, &key).await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))?;
        chain.push((key, hex::encode(Sha256::digest(&bytes)), manifest));
    }
    chain.sort_by_key(|(_, _, m)| m.sequence);
    let mut before: Option<(&str, &str)> = None;
    for (n, (key, sha, m)) in chain.iter().enumerate() {
        if m.incident_id != incident {
            return Err(format!("{key}: manifest of incident {}", m.incident_id));
        }
        if m.sequence as usize != n + 1 {
            return Err(format!(
                "{key}: sequence {} where {} was due",
                m.sequence,
                n + 1
            ));
        }
        let previous = m
            .previous
            .as_ref()
            .map(|p| (p.key.as_str(), p.sha256.as_str()));
        if previous != before {
            return Err(format!(
                "{key}: previous {previous:?}, the chain has {before:?}"
            ));
        }
        for a in &m.artifacts {
            let body = object(&s3, &a.key).await?;
            if hex::encode(Sha256::digest(&body)) != a.sha256 || body.len() as u64 != a.size {
                return Err(format!(
                    "{key}: artifact {} differs from its record",
                    a.name
                ));
            }
        }
        before = Some((key, sha));
    }
    Ok(chain.len())
}

async fn object(s3: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let out = s3
        .get_object()
        .bucket(EVIDENCE)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("GetObject {key}: {e}"))?;
    out.body
        .collect()
        .await
        .map(|b| b.into_bytes().to_vec())
        .map_err(|e| format!("{key}: {e}"))
}
