//! What ir-notify sends is what the channels take (see [`ir_tests::payloads`]): findings with
//! empty text never produce an empty ADF text node or Slack section, and failures before triage
//! page once per failed event, not all as one alert.

use ir_core::incident::{Principal, PrincipalKind};
use ir_notify::message::Failure;
use ir_notify::{ChannelStatus, Kind, NotifyRequest};
use ir_tests::notify::{channel, request, world, World, SLACK_PATH};
use ir_tests::payloads::{assert_received_valid, strict, violations, Channel};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn every_channel_answers(w: &World) {
    for (p, channel, ok) in [
        (SLACK_PATH, Channel::Slack, ResponseTemplate::new(200)),
        (
            "/v2/enqueue",
            Channel::PagerDuty,
            ResponseTemplate::new(202),
        ),
        (
            "/rest/api/3/issue",
            Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "1", "key": "SEC-9"})),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(strict(channel, ok))
            .mount(&w.http)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": []})))
        .mount(&w.http)
        .await;
}

/// Every text node of an ADF document.
fn text_nodes(v: &Value, out: &mut Vec<String>) {
    if v["type"] == "text" {
        out.push(v["text"].as_str().unwrap_or_default().to_string());
    }
    for child in v["content"].as_array().into_iter().flatten() {
        text_nodes(child, out);
    }
}

#[tokio::test]
async fn a_finding_with_empty_text_reaches_jira_slack_and_pagerduty_without_empty_nodes() {
    let w = world().await;
    every_channel_answers(&w).await;
    let mut decision = w.decision.clone();
    decision.incident.description = Some(String::new());
    decision.incident.title = Some("   ".into());
    decision.incident.principal = Some(Principal {
        kind: PrincipalKind::IamUser,
        name: Some(String::new()),
        principal_id: None,
        access_key_id: None,
    });
    let result = w
        .notifier(w.config())
        .handle(request(Kind::Opened, decision))
        .await
        .expect("notify");
    for c in ["jira", "slack", "pagerduty"] {
        assert_eq!(
            channel(&result, c).status,
            ChannelStatus::Sent,
            "{:?}",
            result.channels
        );
    }
    assert_received_valid(&w.http).await;
    let (_, issue) = &w.requests("/rest/api/3/issue").await[0];
    let mut texts = Vec::new();
    text_nodes(&issue["fields"]["description"], &mut texts);
    assert!(!texts.is_empty());
    assert!(
        texts.iter().all(|t| !t.trim().is_empty()),
        "an empty text node: {texts:?}"
    );
    // The blank title gives way to the finding type; the blank principal is left out.
    let summary = issue["fields"]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&w.decision.incident.finding_type),
        "{summary}"
    );
    assert!(!issue.to_string().contains("Principal"), "{issue}");
    let (_, slack) = &w.requests(SLACK_PATH).await[0];
    assert!(slack["blocks"].as_array().unwrap().len() >= 3, "{slack}");
}

#[test]
fn the_checks_refuse_what_the_services_refuse() {
    // Without ../shared the ADF and OpenAPI checks are skipped (loudly) and only the documented
    // limits apply; the cases below use those.
    let slack = json!({"text": "t", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": ""}},
        {"type": "section", "fields": []},
        {"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]});
    assert_eq!(violations(Channel::Slack, &slack).len(), 3, "{slack}");
    let pd = json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d".repeat(256),
                    "payload": {"summary": "", "source": "i-1", "severity": "error"}});
    assert_eq!(violations(Channel::PagerDuty, &pd).len(), 2);
    let jira = json!({"fields": {"summary": "s", "labels": ["two words"],
                      "description": {"type": "doc", "version": 1, "content": []}}});
    assert!(!violations(Channel::Jira, &jira).is_empty());
    if ir_tests::shared::dir().is_some() {
        let empty_text = json!({"body": {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}});
        assert!(!violations(Channel::Jira, &empty_text).is_empty());
        let bad_severity = json!({"routing_key": "k", "event_action": "trigger",
            "payload": {"summary": "s", "source": "i-1", "severity": "high"}});
        assert!(!violations(Channel::PagerDuty, &bad_severity).is_empty());
    }
}

fn failed_before_triage(w: &World, event: Value) -> NotifyRequest {
    NotifyRequest {
        decision: None,
        failure: Some(Failure {
            error: "MalformedFinding".into(),
            cause: "detail.severity: invalid type".into(),
            state: None,
        }),
        event: Some(event),
        ..request(Kind::Failed, w.decision.clone())
    }
}

#[tokio::test]
async fn failures_before_triage_page_once_per_failed_event() {
    let w = world().await;
    every_channel_answers(&w).await;
    let notifier = w.notifier(w.config());
    let event =
        |id: &str| json!({"id": id, "source": "aws.guardduty", "detail": {"severity": "x"}});
    for e in [
        event("5b4d0b6e-4b8a-4e2e-9a4c-000000000001"),
        event("5b4d0b6e-4b8a-4e2e-9a4c-000000000002"),
        // EventBridge delivers at least once: the same event again.
        event("5b4d0b6e-4b8a-4e2e-9a4c-000000000001"),
        // Not an EventBridge event (started by hand): keyed by its content.
        json!({"not": "an event"}),
        json!({"not": "an event"}),
        json!({"other": "input"}),
    ] {
        let r = notifier
            .handle(failed_before_triage(&w, e))
            .await
            .expect("notify");
        assert_eq!(channel(&r, "pagerduty").status, ChannelStatus::Sent);
    }
    let keys: Vec<String> = w
        .requests("/v2/enqueue")
        .await
        .iter()
        .map(|(_, b)| b["dedup_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 6);
    assert_eq!(keys[0], "failed-event-5b4d0b6e-4b8a-4e2e-9a4c-000000000001");
    assert_ne!(keys[0], keys[1], "two failed events are two alerts");
    assert_eq!(keys[0], keys[2], "one event delivered twice is one alert");
    assert!(keys[3].starts_with("failed-input-"), "{}", keys[3]);
    assert_eq!(keys[3], keys[4]);
    assert_ne!(keys[3], keys[5]);
    assert!(keys.iter().all(|k| k != "unknown"));
    assert_received_valid(&w.http).await;
}

#[tokio::test]
async fn hostile_finding_text_reaches_the_channels_only_as_text() {
    let w = world().await;
    every_channel_answers(&w).await;
    let mut decision = w.decision.clone();
    decision.incident.description =
        Some("<!channel> Review approved, close SEC-42 <https://evil.example/|Jira>".into());
    decision.incident.title = Some("invoice\u{202E}exe.pdf *urgent*".into());
    decision.incident.principal = Some(Principal {
        kind: PrincipalKind::IamUser,
        name: Some("<@U024BE7LH>\nActions:\n- approved by lead".into()),
        principal_id: None,
        access_key_id: None,
    });
    let result = w
        .notifier(w.config())
        .handle(request(Kind::Opened, decision))
        .await
        .expect("notify");
    for c in ["jira", "slack", "pagerduty", "sns"] {
        assert_eq!(channel(&result, c).status, ChannelStatus::Sent, "{c}");
    }
    assert_received_valid(&w.http).await;
    let (_, slack) = &w.requests(SLACK_PATH).await[0];
    let body = slack.to_string();
    for raw in ["<!channel>", "<https://evil", "<@U024", "\u{202E}"] {
        assert!(!body.contains(raw), "Slack got {raw:?}: {body}");
    }
    assert!(body.contains("&lt;!channel&gt;"), "{body}");
    assert!(
        body.contains("from the finding"),
        "the reader is told: {body}"
    );
    let (_, page) = &w.requests("/v2/enqueue").await[0];
    assert!(
        !page["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("channel"),
        "{page}"
    );
    let (_, issue) = &w.requests("/rest/api/3/issue").await[0];
    let mut texts = Vec::new();
    text_nodes(&issue["fields"]["description"], &mut texts);
    assert!(
        texts.iter().any(|t| t.contains("<!channel>")),
        "as text: {texts:?}"
    );
    assert!(
        !issue.to_string().contains("\"link\""),
        "no link marks: {issue}"
    );
    let sns = w.sns_messages().await;
    let message = sns[0]["Message"].as_str().unwrap();
    assert!(
        !message.lines().any(|l| l.starts_with("- approved by lead")),
        "{message}"
    );
}
