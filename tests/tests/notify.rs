//! ir-notify against every channel (see [`ir_tests::notify`] for the world).

use base64::Engine;
use chrono::Utc;
use ir_core::incident::SeverityLabel;
use ir_notify::message::{EvidenceRef, Failure};
use ir_notify::{ChannelStatus, Kind, Notifier, NotifyConfig};
use ir_tests::notify::{
    channel, isolation_record, request, world, World, JIRA_TOKEN, PD_KEY, SLACK_PATH,
};
use ir_tests::payloads::{strict, Channel};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn an_opened_incident_reaches_every_channel_with_the_full_context() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(strict(
            Channel::Slack,
            ResponseTemplate::new(200).set_body_string("ok"),
        ))
        .mount(&w.http)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(strict(
            Channel::PagerDuty,
            ResponseTemplate::new(202).set_body_json(json!({"status": "success"})),
        ))
        .mount(&w.http)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": []})))
        .mount(&w.http)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(strict(
            Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "10001", "key": "SEC-101"})),
        ))
        .mount(&w.http)
        .await;

    let id = w.decision.incident_id.clone();
    let mut req = request(Kind::Opened, w.decision.clone());
    req.containment = vec![isolation_record(&id)];
    req.evidence = Some(EvidenceRef {
        bucket: Some("ir-evidence".into()),
        manifest_key: Some(format!("incidents/{id}/manifests/000001.json")),
        manifest_sha256: Some("ab".repeat(32)),
        artifact_count: Some(5),
        snapshot_ids: vec!["snap-0123".into()],
        gaps: vec![],
        status: None,
    });
    let result = w.notifier(w.config()).handle(req).await.expect("notify");
    assert_eq!(result.ticket.as_deref(), Some("SEC-101"));
    for c in result
        .channels
        .iter()
        .filter(|c| c.channel != "securityhub")
    {
        assert_eq!(c.status, ChannelStatus::Sent, "{c:?}");
    }
    let out = serde_json::to_string(&result).unwrap();
    for secret in [SLACK_PATH, PD_KEY, JIRA_TOKEN] {
        assert!(
            !out.contains(secret),
            "a secret leaked into the result: {out}"
        );
    }

    // Jira: searched by label, then created with the context, labels and basic auth.
    let (search, _) = &w.requests("/rest/api/3/search/jql").await[0];
    let jql = search
        .url
        .query_pairs()
        .find(|(k, _)| k == "jql")
        .unwrap()
        .1
        .to_string();
    assert!(jql.contains(&format!("labels = \"{id}\"")), "{jql}");
    let creates = w.requests("/rest/api/3/issue").await;
    assert_eq!(creates.len(), 1);
    let (create_req, issue) = &creates[0];
    let auth = create_req
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        auth,
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("ir-bot@example.com:{JIRA_TOKEN}"))
        )
    );
    assert_eq!(issue["fields"]["project"]["key"], "SEC");
    assert_eq!(issue["fields"]["issuetype"]["name"], "Incident");
    let labels = issue["fields"]["labels"].as_array().unwrap();
    assert!(labels.contains(&json!(id)));
    assert!(issue["fields"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("[HIGH]"));
    let description = issue["fields"]["description"].to_string();
    assert_eq!(issue["fields"]["description"]["type"], "doc");
    for expected in [
        "isolate-enis",
        "snap-0123",
        "000001.json",
        "CryptoCurrency",
        &id,
    ] {
        assert!(
            description.contains(expected),
            "description lacks {expected}: {description}"
        );
    }

    // Slack: Block Kit with header, facts and actions.
    let slack = w.requests(SLACK_PATH).await;
    assert_eq!(slack.len(), 1);
    let blocks = slack[0].1["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks[0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("[HIGH]"));
    assert!(slack[0].1.to_string().contains("isolate-enis"));

    // PagerDuty: trigger, deduplicated by incident, HIGH → error.
    let pd = w.requests("/v2/enqueue").await;
    assert_eq!(pd.len(), 1);
    assert_eq!(pd[0].1["routing_key"], PD_KEY);
    assert_eq!(pd[0].1["event_action"], "trigger");
    assert_eq!(pd[0].1["dedup_key"], id.as_str());
    assert_eq!(pd[0].1["payload"]["severity"], "error");
    assert_eq!(
        pd[0].1["payload"]["group"],
        w.decision.incident.account_id.as_str()
    );

    // SNS: delivered with subject, text and attributes.
    let msgs = w.sns_messages().await;
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0]["Subject"].as_str().unwrap().starts_with("[HIGH]"));
    assert!(msgs[0]["Message"].as_str().unwrap().contains(&id));
    assert_eq!(msgs[0]["MessageAttributes"]["kind"]["Value"], "opened");

    // A repeat of the same incident comments on the existing ticket instead of opening another.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"issues": [{"key": "SEC-101"}]})),
        )
        .with_priority(1)
        .mount(&w.http)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue/SEC-101/comment"))
        .respond_with(strict(
            Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "1"})),
        ))
        .mount(&w.http)
        .await;
    let again = w
        .notifier(w.config())
        .handle(request(Kind::Opened, w.decision.clone()))
        .await
        .unwrap();
    assert_eq!(again.ticket.as_deref(), Some("SEC-101"));
    assert_eq!(
        w.requests("/rest/api/3/issue").await.len(),
        1,
        "no second ticket"
    );
    assert_eq!(
        w.requests("/rest/api/3/issue/SEC-101/comment").await.len(),
        1
    );
}

#[tokio::test]
async fn a_channel_that_is_down_does_not_block_the_others() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(ResponseTemplate::new(500).set_body_string("internal_error"))
        .mount(&w.http)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(strict(Channel::PagerDuty, ResponseTemplate::new(202)))
        .mount(&w.http)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue/SEC-7/comment"))
        .respond_with(strict(
            Channel::Jira,
            ResponseTemplate::new(201).set_body_json(json!({"id": "2"})),
        ))
        .mount(&w.http)
        .await;

    let mut req = request(Kind::Failed, w.decision.clone());
    req.ticket = Some("SEC-7".into());
    req.containment = vec![isolation_record(&w.decision.incident_id)];
    req.failure = Some(Failure {
        error: "ContainmentFailed".into(),
        cause: "step `revoke-role-sessions` failed: AccessDenied".into(),
        state: Some("IsolateEC2".into()),
    });
    let result = w
        .notifier(w.config())
        .handle(req)
        .await
        .expect("others still delivered");
    let status = |c: &str| channel(&result, c).status;
    assert_eq!(status("slack"), ChannelStatus::Failed);
    assert_eq!(status("jira"), ChannelStatus::Sent);
    assert_eq!(status("pagerduty"), ChannelStatus::Sent);
    assert_eq!(status("sns"), ChannelStatus::Sent);

    let comment = &w.requests("/rest/api/3/issue/SEC-7/comment").await[0].1;
    let text = comment.to_string();
    for expected in [
        "FAILED in IsolateEC2",
        "ContainmentFailed",
        "revoke-role-sessions",
        "isolate-enis",
    ] {
        assert!(
            text.contains(expected),
            "failure comment lacks {expected}: {text}"
        );
    }
    assert_eq!(
        w.requests("/v2/enqueue").await[0].1["payload"]["severity"],
        "critical",
        "a failed response pages as critical"
    );
    assert_eq!(w.sns_messages().await.len(), 1);
}

#[tokio::test]
async fn every_channel_down_fails_the_task_and_below_threshold_skips_paging() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&w.http)
        .await;
    let config = NotifyConfig {
        slack_webhook: w.config().slack_webhook,
        pagerduty_routing_key: w.config().pagerduty_routing_key,
        pagerduty_url: format!("{}/v2/enqueue", w.http.uri()),
        pagerduty_min_severity: SeverityLabel::Critical,
        ..NotifyConfig::none()
    };
    let err = w
        .notifier(config)
        .handle(request(Kind::Opened, w.decision.clone()))
        .await
        .expect_err("nothing was delivered");
    let d: lambda_runtime::Diagnostic = err.into();
    assert_eq!(d.error_type, "AllChannelsFailed");
    assert!(
        d.error_message.contains("below CRITICAL"),
        "{}",
        d.error_message
    );
    assert!(
        w.requests("/v2/enqueue").await.is_empty(),
        "HIGH is below the paging threshold"
    );
}

#[tokio::test]
async fn the_review_gate_needs_a_token_and_a_gate_table() {
    let w = world().await;
    let err = w
        .notifier(w.config())
        .handle(request(Kind::ApprovalRequested, w.decision.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "BadRequest"
    );
    let mut req = request(Kind::ApprovalRequested, w.decision.clone());
    req.task_token = Some("AAAA-token".into());
    let err = w.notifier(w.config()).handle(req).await.unwrap_err();
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "GateUnavailable"
    );
    assert!(
        w.http
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing sent"
    );
}

/// A Security Hub client that answers BatchUpdateFindings from `rule` (moto 5.2.1 does not
/// implement BatchUpdateFindings), in the finding's region.
/// `w`'s notifier with Security Hub answered by `rule` in `region`.
fn notifier_with_hub(
    w: &World,
    config: NotifyConfig,
    rule: &aws_smithy_mocks::Rule,
    region: &str,
) -> Notifier {
    Notifier {
        securityhub: Some(securityhub_with(rule, region)),
        ..w.notifier(config)
    }
}

fn securityhub_with(rule: &aws_smithy_mocks::Rule, region: &str) -> aws_sdk_securityhub::Client {
    let region = region.to_string();
    aws_smithy_mocks::mock_client!(
        aws_sdk_securityhub,
        aws_smithy_mocks::RuleMode::MatchAny,
        [rule],
        move |c| c.region(aws_sdk_securityhub::config::Region::new(region.clone()))
    )
}

type Captured = std::sync::Arc<
    std::sync::Mutex<
        Vec<aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsInput>,
    >,
>;

/// A rule that records each BatchUpdateFindings request and answers `unprocessed` (an error
/// code) or success.
fn batch_update(unprocessed: Option<&'static str>) -> (aws_smithy_mocks::Rule, Captured) {
    use aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsOutput;
    use aws_sdk_securityhub::types::{
        AwsSecurityFindingIdentifier, BatchUpdateFindingsUnprocessedFinding,
    };
    let seen: Captured = Default::default();
    let record = seen.clone();
    let rule = aws_smithy_mocks::mock!(aws_sdk_securityhub::Client::batch_update_findings)
        .match_requests(move |input| {
            record.lock().unwrap().push(input.clone());
            true
        })
        .then_output(move || {
            let out = BatchUpdateFindingsOutput::builder().set_processed_findings(Some(vec![]));
            match unprocessed {
                None => out.set_unprocessed_findings(Some(vec![])),
                Some(code) => out.unprocessed_findings(
                    BatchUpdateFindingsUnprocessedFinding::builder()
                        .finding_identifier(
                            AwsSecurityFindingIdentifier::builder()
                                .id("x")
                                .product_arn("y")
                                .build(),
                        )
                        .error_code(code)
                        .error_message("not found")
                        .build(),
                ),
            }
            .build()
        });
    (rule, seen)
}

#[tokio::test]
async fn security_hub_follows_the_incident_notified_then_resolved_with_notes() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(strict(
            Channel::Slack,
            ResponseTemplate::new(200).set_body_string("ok"),
        ))
        .mount(&w.http)
        .await;
    let (rule, seen) = batch_update(None);
    let inc = &w.decision.incident;
    let config = NotifyConfig {
        slack_webhook: w.config().slack_webhook,
        securityhub_update: true,
        ..NotifyConfig::none()
    };
    let notifier = notifier_with_hub(&w, config, &rule, &inc.region);

    let opened = notifier
        .handle(request(Kind::Opened, w.decision.clone()))
        .await
        .expect("opened");
    let hub = channel(&opened, "securityhub");
    assert_eq!(hub.status, ChannelStatus::Sent, "{hub:?}");

    let mut approved = request(Kind::Approved, w.decision.clone());
    approved.containment = vec![isolation_record(&w.decision.incident_id)];
    approved.ticket = Some("SEC-7".into());
    approved.review = Some(ir_notify::message::ReviewRef {
        review: "approved".into(),
        approver: "5b10ac8d82e05b22cc7d4ef5".into(),
        approver_name: Some("Dana Analyst".into()),
        decided_at: Utc::now(),
    });
    notifier.handle(approved.clone()).await.expect("approved");
    // Approved, but nothing was contained (e.g. tier manual): not resolved, a note only.
    approved.containment.clear();
    notifier.handle(approved).await.expect("approved");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for input in &seen {
        // The GuardDuty finding as Security Hub's GuardDuty integration imports it.
        let ids = input.finding_identifiers();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].id(), Some(inc.finding_key.as_str()));
        assert!(inc.finding_key.starts_with("arn:aws:guardduty:"));
        assert_eq!(
            ids[0].product_arn(),
            Some(format!("arn:aws:securityhub:{}::product/aws/guardduty", inc.region).as_str())
        );
        let note = input.note().unwrap();
        assert_eq!(note.updated_by(), Some("aws-incident-response"));
        assert!(
            note.text().unwrap().contains(&w.decision.incident_id),
            "{note:?}"
        );
        assert!(note.text().unwrap().len() <= 512);
    }
    use aws_sdk_securityhub::types::WorkflowStatus;
    assert_eq!(
        seen[0].workflow().and_then(|w| w.status()),
        Some(&WorkflowStatus::Notified)
    );
    assert_eq!(
        seen[1].workflow().and_then(|w| w.status()),
        Some(&WorkflowStatus::Resolved)
    );
    let text = seen[1].note().unwrap().text().unwrap();
    assert!(
        text.contains("Dana Analyst") && text.contains("SEC-7"),
        "{text}"
    );
    assert_eq!(seen[2].workflow(), None, "nothing contained: not resolved");
    assert!(seen[2]
        .note()
        .unwrap()
        .text()
        .unwrap()
        .contains("stays open"));
}

#[tokio::test]
async fn security_hub_is_a_record_not_a_channel_and_a_dry_run_leaves_it_alone() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(SLACK_PATH))
        .respond_with(strict(
            Channel::Slack,
            ResponseTemplate::new(200).set_body_string("ok"),
        ))
        .mount(&w.http)
        .await;
    let region = w.decision.incident.region.clone();
    let config = NotifyConfig {
        slack_webhook: w.config().slack_webhook,
        securityhub_update: true,
        ..NotifyConfig::none()
    };

    // Security Hub off in this account: the GuardDuty copy does not exist → skipped.
    let (rule, seen) = batch_update(Some("FindingNotFound"));
    let notifier = notifier_with_hub(&w, config.clone(), &rule, &region);
    let out = notifier
        .handle(request(Kind::Opened, w.decision.clone()))
        .await
        .expect("Slack went out");
    let hub = channel(&out, "securityhub");
    assert_eq!(hub.status, ChannelStatus::Skipped, "{hub:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A dry run changed nothing, so the finding's workflow does not move.
    let (rule, seen) = batch_update(None);
    let notifier = notifier_with_hub(&w, config.clone(), &rule, &region);
    let mut dry = w.decision.clone();
    dry.dry_run = true;
    notifier
        .handle(request(Kind::Opened, dry))
        .await
        .expect("opened");
    assert!(
        seen.lock().unwrap().is_empty(),
        "dry run updated Security Hub"
    );
    assert_eq!(rule.num_calls(), 0);

    // Security Hub answering alone does not count as telling people: Slack down → the task fails.
    Mock::given(method("POST"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&w.http)
        .await;
    let (rule, seen) = batch_update(None);
    let notifier = notifier_with_hub(
        &w,
        NotifyConfig {
            slack_webhook: None,
            pagerduty_routing_key: w.config().pagerduty_routing_key,
            pagerduty_url: format!("{}/down", w.http.uri()),
            pagerduty_min_severity: SeverityLabel::Low,
            ..config
        },
        &rule,
        &region,
    );
    let err = notifier
        .handle(request(Kind::Opened, w.decision.clone()))
        .await
        .expect_err("PagerDuty down is all the people channels");
    assert!(
        matches!(err, ir_notify::NotifyError::AllChannelsFailed(_)),
        "{err:?}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the record was still written"
    );
}

/// A rejected incident whose release was kept (other incidents hold the containment) is not
/// announced as released, on the ticket or in Security Hub.
#[tokio::test]
async fn a_kept_release_is_not_announced_as_released() {
    let w = world().await;
    let mut req = request(Kind::Released, w.decision.clone());
    let mut kept = isolation_record(&w.decision.incident_id);
    kept.mode = ir_core::actions::Mode::Release;
    kept.steps[0].step = ir_core::lease::KEEP_STEP.into();
    req.containment = vec![kept];
    let msg = ir_notify::message::Message::from_request(&req, "Approved", "Rejected");
    assert!(
        msg.headline.contains("containment kept"),
        "{}",
        msg.headline
    );
    let note = ir_notify::securityhub::finding_update(&req, Some("SEC-7"))
        .map(|u| format!("{u:?}"))
        .unwrap_or_default();
    assert!(note.contains("kept"), "{note}");
    assert!(!note.contains("and released"), "{note}");

    // Without the keep step it is the release it always was.
    req.containment = vec![isolation_record(&w.decision.incident_id)];
    let msg = ir_notify::message::Message::from_request(&req, "Approved", "Rejected");
    assert!(
        msg.headline.contains("containment released"),
        "{}",
        msg.headline
    );
}
