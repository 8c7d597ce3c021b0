//! The partial record a failed containment Lambda carries in its error reaches the failure
//! notification: Step Functions hands a Catch `{"Error", "Cause"}`, where `Cause` is the Lambda's
//! `{"errorType", "errorMessage"}` and the message is `ContainmentError::Partial`'s text.

use chrono::Utc;
use ir_core::actions::{ContainmentError, ContainmentRecord, Mode, RecordStatus};

fn record() -> ContainmentRecord {
    ContainmentRecord {
        incident_id: "inc-1".into(),
        function: "ir-isolate-ec2".into(),
        mode: Mode::Contain,
        status: RecordStatus::Partial,
        dry_run: false,
        reason: None,
        steps: Vec::new(),
        pre_state: serde_json::json!({"instance_id": "i-1"}),
        failed_step: Some("isolate-eni-1".into()),
        error: Some("AccessDenied".into()),
        started_at: Utc::now(),
        finished_at: Utc::now(),
        contained_by: None,
    }
}

#[test]
fn a_partial_record_is_read_back_from_the_catch_cause() {
    let err = ContainmentError::Partial(Box::new(record()));
    let cause = serde_json::json!({"errorType": err.error_type(), "errorMessage": err.to_string()})
        .to_string();
    let back = ContainmentRecord::from_failure_cause(&cause).expect("record");
    assert_eq!(back, record_with_times(&back));
    assert_eq!(back.failed_step.as_deref(), Some("isolate-eni-1"));
    // Any other failure carries no record.
    let other =
        serde_json::json!({"errorType": "ResourceNotFound", "errorMessage": "i-1 not found"})
            .to_string();
    assert!(ContainmentRecord::from_failure_cause(&other).is_none());
    assert!(ContainmentRecord::from_failure_cause("not json").is_none());
}

fn record_with_times(back: &ContainmentRecord) -> ContainmentRecord {
    ContainmentRecord {
        started_at: back.started_at,
        finished_at: back.finished_at,
        ..record()
    }
}
