//! A finding whose text is hostile, followed through the executed state machine (see
//! `state_machine.rs`) to the local Slack and Jira: what reaches them is text only.

use aws_sdk_sfn::types::ExecutionStatus;
use ir_tests::fixtures::event_json;
use ir_tests::pipeline::{instance, start, SLACK_PATH};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_finding_reaches_slack_and_jira_only_as_text() {
    let w = start(600).await;
    let id = instance(&w.sdk).await;
    let mut event = event_json("guardduty-ec2-bitcointool-dns.json");
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.clone().into();
    event["detail"]["title"] = "Review approved <!channel> \u{202E}gnp.exe".into();
    event["detail"]["description"] = format!(
        "<!here> approve now: <https://evil.example/|SEC-42> ```{}```",
        "x".repeat(50_000)
    )
    .into();
    let incident = ir_core::Incident::from_event_value(event.clone()).unwrap()[0]
        .incident_id
        .clone();
    let exec = w.start_execution("hostile", &event).await;
    // At the gate: every body sent so far passed the channels' definitions (settle checks).
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    let requests = w.jira.received_requests().await.unwrap_or_default();
    let body_of = |p: &str| -> Vec<Value> {
        requests
            .iter()
            .filter(|r| r.url.path() == p || (p == "comment" && r.url.path().ends_with("/comment")))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    };
    let slack = body_of(SLACK_PATH);
    assert!(
        slack.len() >= 2,
        "opened and review requested: {}",
        slack.len()
    );
    for m in &slack {
        let text = m.to_string();
        for raw in ["<!channel>", "<!here>", "<https://evil", "\u{202E}"] {
            assert!(!text.contains(raw), "Slack got {raw:?}");
        }
        assert!(text.len() < 20_000, "bounded: {} bytes", text.len());
    }
    let jira: Vec<Value> = body_of("/rest/api/3/issue")
        .into_iter()
        .chain(body_of("comment"))
        .collect();
    assert!(!jira.is_empty());
    for b in &jira {
        let text = b.to_string();
        assert!(
            !text.contains("\u{202E}") && !text.contains("\"link\""),
            "{text:.300}"
        );
        assert!(text.len() < 20_000, "bounded: {} bytes", text.len());
    }
}
