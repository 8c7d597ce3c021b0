//! One response per finding. An event can carry several findings (an analyst sends many to a
//! custom action at once); the execution that triaged it responds to the first, and each further
//! finding the policy would respond to gets an execution of its own: the same state machine, with
//! the event holding that finding alone as input. Its own triage then dedupes, reads the kill
//! switch and decides it like any other delivery.
//!
//! Idempotent: the execution name is the incident id and a hash of that input, so a redelivered
//! event (EventBridge delivers at least once) or a retried triage starts nothing new.

/// Starting one execution per further finding.
pub const PERMISSIONS: &[ir_core::permissions::Permission] = &[ir_core::sfn::START_EXECUTION];

use ir_core::audit::Outcome;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a fan-out did for one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub execution_arn: String,
    /// `Succeeded` (started now) or `AlreadyDone` (this delivery was fanned out before).
    pub outcome: Outcome,
}

/// Why a finding's execution could not be started.
#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    #[error("finding {index} is not in the event")]
    NoSuchFinding { index: usize },
    #[error("StartExecution for {incident_id}: {message}")]
    Start {
        incident_id: String,
        message: String,
    },
}

/// The state machine to start and the client to start it with.
#[derive(Debug, Clone)]
pub struct FanOut {
    pub sfn: aws_sdk_sfn::Client,
    /// `IR_STATE_MACHINE_ARN`: this response's own state machine.
    pub state_machine_arn: String,
}

impl FanOut {
    /// Starts the execution for finding `index` of `event` (incident `incident_id`).
    pub async fn start(
        &self,
        event: &Value,
        index: usize,
        incident_id: &str,
    ) -> Result<Started, FanOutError> {
        let input = single_finding_event(event, index)?.to_string();
        let name = execution_name(incident_id, &input);
        // The same name again: this finding of this delivery was fanned out already (a
        // redelivery, or a retry of this triage).
        let (execution_arn, outcome) =
            ir_core::sfn::start_once(&self.sfn, &self.state_machine_arn, &name, input)
                .await
                .map_err(|message| FanOutError::Start {
                    incident_id: incident_id.to_string(),
                    message,
                })?;
        Ok(Started {
            execution_arn,
            outcome,
        })
    }
}

/// `event` with `detail.findings` holding only finding `index`. A double-encoded event (a JSON
/// string, as SQS/SNS deliver it) is decoded first.
pub fn single_finding_event(event: &Value, index: usize) -> Result<Value, FanOutError> {
    let mut event = match event {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let finding = event["detail"]["findings"]
        .get(index)
        .cloned()
        .ok_or(FanOutError::NoSuchFinding { index })?;
    event["detail"]["findings"] = Value::Array(vec![finding]);
    Ok(event)
}

/// `<incident id>-<16 hex digits of SHA-256 over the input>` (Step Functions allows 80 characters).
pub fn execution_name(incident_id: &str, input: &str) -> String {
    let digest = hex::encode(Sha256::digest(input.as_bytes()));
    format!("{incident_id}-{}", &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn two_findings() -> Value {
        json!({"source": "aws.securityhub", "detail": {"actionName": "IR-Contain",
            "findings": [{"Id": "a"}, {"Id": "b"}]}})
    }

    #[test]
    fn the_child_event_holds_one_finding_and_everything_else() {
        let child = single_finding_event(&two_findings(), 1).unwrap();
        assert_eq!(child["detail"]["findings"], json!([{"Id": "b"}]));
        assert_eq!(child["detail"]["actionName"], "IR-Contain");
        assert_eq!(child["source"], "aws.securityhub");
        let encoded = Value::String(two_findings().to_string());
        assert_eq!(single_finding_event(&encoded, 1).unwrap(), child);
        assert!(matches!(
            single_finding_event(&two_findings(), 2),
            Err(FanOutError::NoSuchFinding { index: 2 })
        ));
    }

    #[test]
    fn names_are_stable_per_input_and_fit_step_functions() {
        let a = execution_name("inc-0123456789abcdef0123", "{\"x\":1}");
        assert_eq!(a, execution_name("inc-0123456789abcdef0123", "{\"x\":1}"));
        assert_ne!(a, execution_name("inc-0123456789abcdef0123", "{\"x\":2}"));
        assert!(a.len() <= 80);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
