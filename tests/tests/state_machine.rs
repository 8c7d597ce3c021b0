//! The real state machine (`statemachine/incident-response.asl.json`) executed by moto's Step
//! Functions, with every Lambda task served by the real Rust handlers (`ir_tests::invoke`) against
//! the same emulator. Each test follows a sample event from EventBridge input (put on the bus
//! through the Terraform rules in the first test, started directly elsewhere) to the end state and
//! checks the exact path (states entered, from the execution history) and the resulting AWS state.

use std::collections::BTreeMap;

use aws_sdk_sfn::types::ExecutionStatus;
use ir_tests::fixtures::event_json;
use ir_tests::pipeline::{instance, start as world, user_with_key};
use serde_json::{json, Value};

fn incident_of(event: &Value) -> String {
    ir_core::Incident::from_event_value(event.clone()).unwrap()[0]
        .incident_id
        .clone()
}

/// Every finding's execution: past the share-round router into triage, then the response.
const OPENING: [&str; 6] = [
    "ShareRound?",
    "Triage",
    "Respond?",
    "Initialise",
    "NotifyOpened",
    "PreserveAndContain",
];

fn expected(tail: &[&str]) -> Vec<String> {
    OPENING.iter().chain(tail).map(|s| s.to_string()).collect()
}

/// The bitcoin-mining GuardDuty sample, about instance `id`.
fn bitcoin_on(id: &str) -> Value {
    let mut event = event_json("guardduty-ec2-bitcointool-dns.json");
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.into();
    event
}

/// Every ENI of instance `id` holds only the isolation group.
async fn assert_isolated(w: &ir_tests::pipeline::Pipeline, id: &str) {
    let groups = eni_groups(w, id).await.remove(0);
    assert!(
        groups.iter().all(|g| g.starts_with("ir-isolation-")),
        "{id} is not isolated: {groups:?}"
    );
}

/// The execution's last states are `tail`.
async fn assert_path_ends(w: &ir_tests::pipeline::Pipeline, exec: &str, tail: &[&str]) {
    let path = w.path(exec).await;
    assert!(
        path.len() >= tail.len() && path[path.len() - tail.len()..] == *tail,
        "{path:?} does not end with {tail:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ec2_auto_contains_then_an_approval_closes() {
    let w = world(600).await;
    let id = instance(&w.sdk).await;
    // With an instance profile: the revocation runs as ir-isolate-ec2's principal, which holds
    // only its declared permissions (iam:PutRolePolicy on roles, denied on the response's own).
    let iam = aws_sdk_iam::Client::new(&w.sdk);
    let profile = ir_tests::fixtures::instance_profile(&iam, "batch-role", "batch-profile").await;
    aws_sdk_ec2::Client::new(&w.sdk)
        .associate_iam_instance_profile()
        .instance_id(&id)
        .iam_instance_profile(
            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                .arn(profile)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let event = bitcoin_on(&id);
    let incident = incident_of(&event);
    // Through EventBridge: PutEvents on the default bus, the GuardDuty rule starts the execution.
    let exec = w
        .put_event(&event)
        .await
        .expect("the GuardDuty HIGH rule starts a response");
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    let mut path = w.path(&exec).await;
    path.retain(|s| !["PreserveEvidence", "Route", "IsolateEC2"].contains(&s.as_str()));
    assert_eq!(
        path,
        expected(&["Collect", "BranchFailed?", "ReviewGate?", "ReviewGate"])
    );
    // Contained before review (tier auto): every ENI holds only the isolation group, and the
    // instance's role credentials are revoked.
    assert_isolated(&w, &id).await;
    let policies = iam
        .list_role_policies()
        .role_name("batch-role")
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies.policy_names(),
        [format!("ir-revoke-instance-{id}")]
    );
    let r = w.review(&incident, "Approved", "d-1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 3..],
        ["ContainAfterApproval?", "NotifyApproved", "Closed"]
    );
    let called: Vec<String> = w
        .functions_called()
        .into_iter()
        .map(|(f, e)| {
            assert!(e.is_none(), "{f} failed: {e:?}");
            f
        })
        .collect();
    for f in [
        "ir-triage",
        "ir-notify",
        "ir-preserve-evidence",
        "ir-isolate-ec2",
    ] {
        assert!(called.iter().any(|c| c == f), "{f} never ran: {called:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_protected_tag_planted_on_the_instance_brings_an_analyst_in_and_cannot_opt_it_out() {
    let w = world(600).await;
    let id = instance(&w.sdk).await;
    // The attacker on the instance tags it protected after the finding (tier auto).
    aws_sdk_ec2::Client::new(&w.sdk)
        .create_tags()
        .resources(&id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("ir:protected")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let event = bitcoin_on(&id);
    let incident = incident_of(&event);
    let exec = w.start_execution("planted-protection", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    // Nothing changed yet: the response waits for an analyst instead of ending skipped.
    let groups = eni_groups(&w, &id).await.remove(0);
    assert!(
        groups.iter().all(|g| !g.starts_with("ir-isolation-")),
        "{groups:?}"
    );
    let r = w.review(&incident, "Approved", "d-protected").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    assert_path_ends(
        &w,
        &exec,
        &[
            "ContainAfterApproval?",
            "IsolateEC2Approved",
            "NotifyApproved",
            "Closed",
        ],
    )
    .await;
    assert_isolated(&w, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_action_on_a_hundred_findings_stays_under_the_state_size_limit() {
    // Step Functions fails an execution whose state passes 256 KB (strict `sfn-data-limit`)
    // with States.DataLimitExceeded, which no Catch on States.ALL handles: the response would
    // vanish without a notification. The first finding is answered here; the 99 others are
    // archived copies (nothing fans out for them), each with a long description, so their
    // decisions alone weigh far more than 256 KB if they were carried along.
    let w = world(600).await;
    let id = instance(&w.sdk).await;
    let mut event = event_json("securityhub-custom-action-contain-ec2.json");
    event["detail"]["findings"][0]["Resources"][0]["Id"] =
        format!("arn:aws:ec2:us-east-1:111122223333:instance/{id}").into();
    event["detail"]["findings"][0]["Resources"][0]["Details"]["AwsEc2Instance"]
        .as_object_mut()
        .map(|d| d.remove("IamInstanceProfileArn"));
    let first = event["detail"]["findings"][0].clone();
    let copies = (1..100).map(|n| {
        json!({
            "SchemaVersion": "2018-10-08",
            "Id": format!("{}-copy-{n:03}", first["Id"].as_str().unwrap()),
            "ProductArn": first["ProductArn"],
            "GeneratorId": first["GeneratorId"],
            "AwsAccountId": first["AwsAccountId"],
            "Types": first["Types"],
            "CreatedAt": first["CreatedAt"],
            "UpdatedAt": first["UpdatedAt"],
            "Severity": first["Severity"],
            "Title": first["Title"],
            "Description": "d".repeat(1000),
            "Resources": [{"Type": "AwsEc2Instance", "Id": format!("arn:aws:ec2:us-east-1:111122223333:instance/i-0{n:016x}")}],
            "RecordState": "ARCHIVED"
        })
    });
    event["detail"]["findings"]
        .as_array_mut()
        .unwrap()
        .extend(copies);
    let size = event.to_string().len();
    assert!(size < 256 * 1024, "the event itself fits: {size}");
    let incident = incident_of(&event);
    let exec = w.start_execution("hundred-findings", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running,
        "{:?}",
        w.path(&exec).await
    );
    assert_path_ends(
        &w,
        &exec,
        &["Collect", "BranchFailed?", "ReviewGate?", "ReviewGate"],
    )
    .await;
    assert_isolated(&w, &id).await;
}

/// The payload of the `failed` notification (ir-notify's input in NotifyFailed).
fn failure_notification(w: &ir_tests::pipeline::Pipeline) -> Value {
    w.invoke
        .calls()
        .into_iter()
        .find(|c| c.function == "ir-notify" && c.payload["kind"] == "failed")
        .expect("a failure notification")
        .payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evidence_that_fails_does_not_lose_the_containment_record() {
    let w = world(600).await;
    let id = instance(&w.sdk).await;
    // The evidence store is gone: ir-preserve-evidence fails (EvidenceStoreFailed, retried).
    let s3 = w.moto.s3_client(&w.sdk);
    s3.delete_bucket()
        .bucket(ir_tests::pipeline::EVIDENCE)
        .send()
        .await
        .unwrap();
    let event = bitcoin_on(&id);
    let incident = incident_of(&event);
    let exec = w.start_execution("evidence-fails", &event).await;
    // The failure is notified at once, and the response goes on to the review: an approval can
    // still close it, a rejection still release the containment. (moto 5.2.1 stops recording a
    // Parallel's history at a branch's retried failure, so what ran is read from the calls.)
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    assert!(w.notified("approval_requested").await);
    // The instance was isolated, and the failure notification says so.
    assert_isolated(&w, &id).await;
    let sent = failure_notification(&w);
    assert_eq!(sent["containment"][0]["status"], "completed", "{sent:#}");
    assert_eq!(sent["evidence"]["status"], "failed", "{sent:#}");
    assert!(sent["failure"]["Error"].is_string(), "{sent:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containment_that_fails_does_not_lose_the_evidence_record() {
    let w = world(600).await;
    // No such instance: ir-isolate-ec2 fails (ResourceNotFound); evidence is still preserved.
    let event = bitcoin_on("i-0000000000000dead");
    let exec = w.start_execution("containment-fails", &event).await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    let path = w.path(&exec).await;
    for state in [
        "ContainmentFailed",
        "BranchFailed?",
        "ContainmentBranchFailed",
        "NotifyFailed",
    ] {
        assert!(path.iter().any(|p| p == state), "{state}: {path:?}");
    }
    let sent = failure_notification(&w);
    assert!(
        sent["evidence"]["manifest_key"].is_string(),
        "the evidence record reaches the notification: {sent:#}"
    );
    assert!(
        sent["failure"]["Cause"]
            .as_str()
            .is_some_and(|c| c.contains("not found")),
        "{sent:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_jira_the_response_contains_by_tier_notifies_and_closes() {
    let w = world(600).await;
    // The machine as Terraform deploys it without jira_url: no review gate.
    let machine = w
        .sfn
        .create_state_machine()
        .name("ir-incident-response-no-review")
        .definition(ir_tests::pipeline::definition_with(600, false))
        .role_arn("arn:aws:iam::123456789012:role/ir-state-machine")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    let id = instance(&w.sdk).await;
    let event = bitcoin_on(&id);
    let exec = w
        .sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("no-review")
        .input(event.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    assert_path_ends(
        &w,
        &exec,
        &[
            "BranchFailed?",
            "ReviewGate?",
            "NotifyNoReview",
            "ClosedWithoutReview",
        ],
    )
    .await;
    // Tier auto contained; nobody is asked for a review that cannot come.
    assert_isolated(&w, &id).await;
    let calls = w.invoke.calls();
    assert!(calls.iter().any(|c| c.function == "ir-notify"
        && c.payload["kind"] == "no_review"
        && c.error_type.is_none()));
    assert!(!calls
        .iter()
        .any(|c| c.function == "ir-notify" && c.payload["kind"] == "approval_requested"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iam_approval_tier_contains_only_after_approval() {
    let w = world(600).await;
    let key_id = user_with_key(&w.sdk, "deploy-bot").await;
    let iam = aws_sdk_iam::Client::new(&w.sdk);
    let mut event = event_json("guardduty-iam-anomalous-behavior.json");
    event["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key_id.clone().into();
    let incident = incident_of(&event);
    let exec = w.start_execution("leaked-key", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    let status = |iam: aws_sdk_iam::Client| async move {
        iam.list_access_keys()
            .user_name("deploy-bot")
            .send()
            .await
            .unwrap()
            .access_key_metadata()[0]
            .status()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(
        status(iam.clone()).await,
        "Active",
        "tier approval: nothing changes before review"
    );
    let r = w.review(&incident, "Approved", "d-2").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 4..],
        [
            "ContainAfterApproval?",
            "QuarantineIAMApproved",
            "NotifyApproved",
            "Closed"
        ]
    );
    assert_eq!(
        status(iam).await,
        "Inactive",
        "contained after the approval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_rejected_review_releases_the_lockdown() {
    let w = world(600).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&w.sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("acme-customer-exports")
        .send()
        .await
        .unwrap();
    let event = event_json("guardduty-s3-block-public-access-disabled.json");
    let incident = incident_of(&event);
    let exec = w.start_execution("public-bucket", &event).await;
    assert_eq!(
        w.settle(&exec, Some(&incident)).await,
        ExecutionStatus::Running
    );
    assert!(
        s3.get_public_access_block()
            .bucket("acme-customer-exports")
            .send()
            .await
            .is_ok(),
        "locked down"
    );
    let r = w.review(&incident, "Rejected", "d-3").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 4..],
        ["Release?", "ReleaseS3", "NotifyReleased", "Released"]
    );
    assert!(
        s3.get_public_access_block()
            .bucket("acme-customer-exports")
            .send()
            .await
            .is_err(),
        "released: no configuration, as before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suppressed_malformed_and_failing_events_take_their_paths() {
    let w = world(600).await;
    // Suppressed: ends quietly.
    let exec = w
        .start_execution(
            "scanner",
            &event_json("guardduty-ec2-portprobe-from-scanner.json"),
        )
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Succeeded);
    assert_eq!(
        w.path(&exec).await,
        ["ShareRound?", "Triage", "Respond?", "NoResponse"]
    );
    // Malformed: triage's typed error → failure notification → failed execution.
    let exec = w
        .start_execution(
            "malformed",
            &event_json("malformed-guardduty-wrong-types.json"),
        )
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    assert_eq!(
        w.path(&exec).await,
        [
            "ShareRound?",
            "Triage",
            "NotifyTriageFailed",
            "ResponseFailed"
        ]
    );
    // The failure notification carries the event, whose id keys the page (one per event).
    let failed = w
        .invoke
        .calls()
        .into_iter()
        .find(|c| c.function == "ir-notify" && c.payload["kind"] == "failed")
        .expect("the failure was notified");
    assert_eq!(
        failed.payload["event"],
        event_json("malformed-guardduty-wrong-types.json")
    );
    // The instance named by the finding does not exist: containment fails, the failure is
    // notified with what completed, the execution fails.
    let exec = w
        .start_execution("gone", &event_json("guardduty-ec2-tor-client.json"))
        .await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    let path = w.path(&exec).await;
    assert_eq!(path[..6], OPENING);
    assert_eq!(path[path.len() - 2..], ["NotifyFailed", "ResponseFailed"]);
    let calls = w.functions_called();
    assert!(
        calls
            .iter()
            .any(|(f, e)| f == "ir-triage" && e.as_deref() == Some("MalformedFinding")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|(f, e)| f == "ir-isolate-ec2" && e.as_deref() == Some("ResourceNotFound")),
        "{calls:?}"
    );
    let notified: Vec<Value> = w
        .invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == "ir-notify" && c.payload["kind"] == "failed")
        .map(|c| c.payload)
        .collect();
    assert_eq!(
        notified.len(),
        2,
        "one failure notification per failed execution"
    );
    assert!(
        notified
            .iter()
            .any(|p| p["failure"]["Error"] == "ResourceNotFound"),
        "{notified:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unanswered_review_times_out_and_escalates() {
    let w = world(3).await;
    let id = instance(&w.sdk).await;
    let mut event = event_json("guardduty-ec2-bitcointool-dns.json");
    event["detail"]["resource"]["instanceDetails"]["instanceId"] = id.into();
    let exec = w.start_execution("nobody-home", &event).await;
    assert_eq!(w.settle(&exec, None).await, ExecutionStatus::Failed);
    let path = w.path(&exec).await;
    assert_eq!(
        path[path.len() - 3..],
        ["ReviewGate", "NotifyReviewTimedOut", "ReviewTimedOut"]
    );
    let kinds: BTreeMap<String, usize> = w
        .invoke
        .calls()
        .into_iter()
        .filter(|c| c.function == "ir-notify")
        .fold(BTreeMap::new(), |mut m, c| {
            *m.entry(c.payload["kind"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
            m
        });
    assert_eq!(kinds.get("review_timed_out"), Some(&1), "{kinds:?}");
}

/// Creates what the event's finding names (instances, users and their keys, roles, buckets) and
/// returns the event with the sample's ids replaced by the real ones.
async fn seeded(
    w: &ir_tests::pipeline::Pipeline,
    text: &str,
    real: &mut BTreeMap<String, String>,
) -> String {
    use ir_core::incident::Resource;
    let mut text = text.to_string();
    let Ok(value) = serde_json::from_str(&text) else {
        return text; // not JSON: nothing to seed
    };
    let Ok(incidents) = ir_core::Incident::from_event_value(value) else {
        return text; // malformed: triage rejects it before any resource matters
    };
    let iam = aws_sdk_iam::Client::new(&w.sdk);
    let s3 = w.moto.s3_client(&w.sdk);
    for r in incidents.iter().flat_map(|i| i.resources.clone()) {
        match r {
            Resource::Ec2Instance { instance_id, .. } => {
                if !real.contains_key(&instance_id) {
                    real.insert(instance_id.clone(), instance(&w.sdk).await);
                }
                text = text.replace(&instance_id, &real[&instance_id]);
            }
            Resource::IamUser {
                user_name,
                access_key_id,
            } => {
                let _ = iam.create_user().user_name(&user_name).send().await;
                if let Some(old) = access_key_id {
                    if !real.contains_key(&old) {
                        let key = iam
                            .create_access_key()
                            .user_name(&user_name)
                            .send()
                            .await
                            .unwrap();
                        let id = key.access_key().unwrap().access_key_id().to_string();
                        real.insert(old.clone(), id);
                    }
                    text = text.replace(&old, &real[&old]);
                }
            }
            Resource::IamRole { role_name, .. } => {
                let _ = iam
                    .create_role()
                    .role_name(&role_name)
                    .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
                    .send()
                    .await;
            }
            Resource::S3Bucket { bucket_name, .. } => {
                let _ = s3.create_bucket().bucket(&bucket_name).send().await;
            }
            _ => {}
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_sample_event_takes_its_expected_path() {
    let w = world(600).await;
    let expected = ir_tests::fixtures::expected();
    let mut started = Vec::new();
    let mut real = BTreeMap::new();
    for file in ir_tests::fixtures::sample_event_files().unwrap() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = seeded(
            &w,
            &ir_tests::fixtures::event_text(&name).unwrap(),
            &mut real,
        )
        .await;
        let exe_name: String = name.trim_end_matches(".json").chars().take(80).collect();
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            // Not JSON at all: Step Functions refuses it before anything runs.
            let err = w
                .sfn
                .start_execution()
                .state_machine_arn(&w.machine)
                .name(&exe_name)
                .input(text)
                .send()
                .await
                .expect_err("invalid JSON input is refused");
            // AWS answers InvalidExecutionInput; moto 5.2.1 a 400 with code UnknownError.
            assert_eq!(
                err.raw_response().map(|r| r.status().as_u16()),
                Some(400),
                "{name}: {err:?}"
            );
            continue;
        };
        let incident = ir_core::Incident::from_event_value(event.clone())
            .ok()
            .map(|v| v[0].incident_id.clone());
        let exec = w.start_execution(&exe_name, &event).await;
        started.push((name, exec, incident));
    }
    assert_eq!(
        started.len() + 1,
        expected.len(),
        "every event but the non-JSON one ran"
    );
    let mut responded = std::collections::BTreeSet::new();
    let mut duplicates = Vec::new();
    for (name, exec, incident) in &started {
        let e = &expected[name];
        let status = w.settle(exec, incident.as_deref()).await;
        let path = w.path(exec).await;
        let shares_incident = started
            .iter()
            .filter(|(_, _, i)| i.is_some() && i == incident)
            .count()
            > 1;
        if e.disposition.as_deref() == Some("respond")
            && shares_incident
            && path == ["ShareRound?", "Triage", "Respond?", "NoResponse"]
        {
            // A GuardDuty finding and its Security Hub copy are one incident: whichever is
            // triaged second is a duplicate. Checked below: its twin responded.
            duplicates.push(incident.clone());
            continue;
        }
        if e.disposition.as_deref() == Some("respond") {
            responded.insert(incident.clone());
        }
        if e.error.is_some() {
            assert_eq!(status, ExecutionStatus::Failed, "{name}");
            assert_eq!(
                path,
                [
                    "ShareRound?",
                    "Triage",
                    "NotifyTriageFailed",
                    "ResponseFailed"
                ],
                "{name}"
            );
            continue;
        }
        if e.disposition.as_deref() != Some("respond") {
            assert_eq!(status, ExecutionStatus::Succeeded, "{name}");
            assert_eq!(
                path,
                ["ShareRound?", "Triage", "Respond?", "NoResponse"],
                "{name}"
            );
            continue;
        }
        let contain = match e.route.as_deref() {
            Some("ec2") => "IsolateEC2",
            Some("iam") => "QuarantineIAM",
            Some("s3") => "LockdownS3",
            _ => "NoContainment",
        };
        assert_eq!(
            status,
            ExecutionStatus::Running,
            "{name}: {path:?} {:?}",
            w.invoke
                .calls()
                .iter()
                .filter_map(|c| c.error_message.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(path[..6], OPENING, "{name}");
        assert_eq!(
            path[path.len() - 4..],
            ["Collect", "BranchFailed?", "ReviewGate?", "ReviewGate"],
            "{name}: {path:?}"
        );
        let mut branches: Vec<&str> = path[6..path.len() - 4].iter().map(String::as_str).collect();
        branches.sort();
        let mut want = vec!["PreserveEvidence", "Route", contain];
        want.sort();
        assert_eq!(branches, want, "{name}");
    }
    assert!(
        !duplicates.is_empty(),
        "the GuardDuty/Security Hub twins ran"
    );
    for d in duplicates {
        assert!(responded.contains(&d), "{d:?}: its twin responded");
    }
    let failures: Vec<_> = w
        .functions_called()
        .into_iter()
        // Samples about one resource wait their turn for its lease (retried by the state
        // machine, each still took its path above).
        .filter(|(f, e)| e.as_deref().is_some_and(|e| e != "ResourceBusy") && f != "ir-triage")
        .collect();
    assert!(
        failures.is_empty(),
        "only triage may reject (malformed events): {failures:?}"
    );
}

/// The names of the security groups on each ENI of `instance`.
async fn eni_groups(w: &ir_tests::pipeline::Pipeline, instance: &str) -> Vec<Vec<String>> {
    let ec2 = aws_sdk_ec2::Client::new(&w.sdk);
    let out = ec2
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .network_interfaces()
        .iter()
        .map(|eni| {
            eni.groups()
                .iter()
                .map(|g| g.group_name().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_action_on_two_instances_contains_each_in_an_execution_of_its_own() {
    let w = world(600).await;
    let (a, b) = (instance(&w.sdk).await, instance(&w.sdk).await);
    // An analyst selects two findings in Security Hub and sends them to IR-Contain at once.
    let mut event = event_json("securityhub-custom-action-contain-ec2.json");
    let sample = event["detail"]["findings"][0].to_string();
    let on = |id: &str| -> Value {
        serde_json::from_str(&sample.replace("i-0f6a7b8c9d0e10014", id)).unwrap()
    };
    let first = on(&a);
    let mut second = on(&b);
    second["Id"] = format!("{}-second", first["Id"].as_str().unwrap()).into();
    event["detail"]["findings"] = serde_json::json!([first, second]);
    let incidents: Vec<String> = ir_core::Incident::from_event_value(event.clone())
        .unwrap()
        .into_iter()
        .map(|i| i.incident_id)
        .collect();

    let parent = w.start_execution("two-findings", &event).await;
    assert_eq!(
        w.settle(&parent, Some(&incidents[0])).await,
        ExecutionStatus::Running
    );
    // Triage started one more execution, for the second finding alone.
    let children: Vec<String> = w
        .execution_arns()
        .await
        .into_iter()
        .filter(|e| *e != parent)
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(children[0].contains(&incidents[1]), "{children:?}");
    let input = w
        .sfn
        .describe_execution()
        .execution_arn(&children[0])
        .send()
        .await
        .unwrap()
        .input
        .unwrap_or_default();
    let input: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(input["detail"]["findings"], serde_json::json!([second]));
    assert_eq!(
        w.settle(&children[0], Some(&incidents[1])).await,
        ExecutionStatus::Running
    );
    // Both instances are isolated (tier auto), each by its own execution, before review.
    for id in [&a, &b] {
        let groups = eni_groups(&w, id).await;
        assert!(
            groups
                .iter()
                .all(|g| !g.is_empty() && g.iter().all(|n| n.starts_with("ir-isolation-"))),
            "{id}: {groups:?}"
        );
    }
    let paths = [w.path(&parent).await, w.path(&children[0]).await];
    for path in &paths {
        assert!(path.contains(&"IsolateEC2".to_string()), "{path:?}");
    }

    // The same event delivered again: the first finding is a duplicate, and the second's
    // execution already exists, so nothing new responds.
    let again = w.start_execution("two-findings-again", &event).await;
    assert_eq!(w.settle(&again, None).await, ExecutionStatus::Succeeded);
    assert_eq!(
        w.path(&again).await,
        ["ShareRound?", "Triage", "Respond?", "NoResponse"]
    );
    assert_eq!(w.execution_arns().await.len(), 3, "no second child");
}
