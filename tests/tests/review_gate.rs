//! The review gate end to end (see [`ir_tests::review_gate`]): a signed Jira webhook handled by
//! ir-approve resumes the paused execution, and bad deliveries do not.

use aws_sdk_sfn::types::ExecutionStatus;
use chrono::Utc;
use ir_approve::{webhook, PendingGate};
use ir_tests::review_gate::{deliver, sign, world, ANALYST};

#[tokio::test]
async fn an_approved_ticket_resumes_the_execution_and_bad_deliveries_do_not() {
    let w = world().await;
    let (exec, token) = w.paused_execution("inc-approve-1").await;

    // The ticket says approval is pending; the token is only in the gate table.
    let comments: Vec<String> = w
        .jira
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/rest/api/3/issue/SEC-42/comment")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].contains("Approved") && comments[0].contains("Rejected"),
        "{}",
        comments[0]
    );
    assert!(
        !comments[0].contains(&token),
        "the task token must never reach Jira"
    );
    assert_eq!(w.gate_status().await.as_deref(), Some("pending"));

    let a = w.approver();
    let now = Utc::now().timestamp_millis();
    let good = w.webhook("Approved", ANALYST, now);

    let r = deliver(&a, &good, None, "d-unsigned").await;
    assert_eq!((r.status, r.result()), (401, "unauthorized"));
    let forged = Some(webhook::sign(b"guessed-secret", &good));
    let r = deliver(&a, &good, forged, "d-forged").await;
    assert_eq!((r.status, r.result()), (401, "unauthorized"));
    let tampered = w.webhook("Approved", "attacker-account", now);
    let r = deliver(&a, &tampered, sign(&good), "d-tampered").await;
    assert_eq!(
        (r.status, r.result()),
        (401, "unauthorized"),
        "signature is over the exact body"
    );
    let stale = w.webhook("Approved", ANALYST, now - 10 * 60 * 1000);
    let r = deliver(&a, &stale, sign(&stale), "d-stale").await;
    assert_eq!((r.status, r.result()), (401, "stale"));
    let intruder = w.webhook("Approved", "557058:not-an-approver", now);
    let r = deliver(&a, &intruder, sign(&intruder), "d-intruder").await;
    assert_eq!((r.status, r.result()), (403, "forbidden"));
    let other = w.webhook("In Progress", ANALYST, now);
    let r = deliver(&a, &other, sign(&other), "d-other").await;
    assert_eq!((r.status, r.result()), (202, "ignored"));
    // Moving the ticket to another project remaps its status (the changelog says so), and an
    // edit is not a transition: neither is a decision, whatever status the changelog names.
    for (kind, id) in [("issue_moved", "d-moved"), ("issue_updated", "d-edited")] {
        let update = w.update(kind, "Approved", ANALYST, now);
        let r = deliver(&a, &update, sign(&update), id).await;
        assert_eq!((r.status, r.result()), (202, "ignored"), "{kind}");
    }
    assert_eq!(
        w.status(&exec).await.0,
        ExecutionStatus::Running,
        "nothing above resumed the execution"
    );
    assert_eq!(w.gate_status().await.as_deref(), Some("pending"));

    let r = deliver(&a, &good, sign(&good), "d-approve").await;
    assert_eq!((r.status, r.result()), (200, "approved"), "{:?}", r.body);
    assert!(!r.body.to_string().contains(&token));
    let (status, output) = w.finished(&exec).await;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(output["outcome"], "closed");
    assert_eq!(output["review"]["review"], "approved");
    assert_eq!(output["review"]["approver"], ANALYST);
    assert_eq!(output["review"]["ticket"], "SEC-42");
    assert_eq!(w.gate_status().await.as_deref(), Some("approved"));

    // Jira retries the same delivery; someone moves the ticket again: neither acts twice, and
    // neither answer is one Jira retries (408, 409, 425, 429, 5xx).
    let r = deliver(&a, &good, sign(&good), "d-approve").await;
    assert_eq!((r.status, r.result()), (200, "duplicate"), "{:?}", r.body);
    assert_eq!(r.body["original"], "approved");
    let again = w.webhook("Approved", ANALYST, now + 1000);
    let r = deliver(&a, &again, sign(&again), "d-approve-again").await;
    assert_eq!((r.status, r.result()), (202, "not_pending"), "{:?}", r.body);
    assert_eq!(w.gate_status().await.as_deref(), Some("approved"));
}

#[tokio::test]
async fn a_rejected_ticket_fails_the_gate_into_the_release_path() {
    let w = world().await;
    let (exec, _) = w.paused_execution("inc-reject-1").await;
    let body = w.webhook("Rejected", ANALYST, Utc::now().timestamp_millis());
    let r = deliver(&w.approver(), &body, sign(&body), "d-reject").await;
    assert_eq!((r.status, r.result()), (200, "rejected"), "{:?}", r.body);
    let (status, output) = w.finished(&exec).await;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(output["outcome"], "released", "{output}");
    assert_eq!(output["review_error"]["Error"], ir_approve::REJECTED_ERROR);
    assert_eq!(w.gate_status().await.as_deref(), Some("rejected"));
}

#[tokio::test]
async fn a_gate_step_functions_no_longer_waits_on_is_expired_not_retried() {
    let w = world().await;
    let now = Utc::now();
    w.gate()
        .register(&PendingGate {
            incident_id: w.decision.incident_id.clone(),
            task_token: "AAAAKgAAAAIAAAAAAAAAAbogus-timed-out-token".into(),
            ticket_key: "SEC-42".into(),
            execution: None,
            requested_at: now,
            expires_at: now + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    let body = w.webhook("Approved", ANALYST, now.timestamp_millis());
    let r = deliver(&w.approver(), &body, sign(&body), "d-late").await;
    assert_eq!((r.status, r.result()), (410, "expired"), "{:?}", r.body);
    assert_eq!(w.gate_status().await.as_deref(), Some("expired"));
}
