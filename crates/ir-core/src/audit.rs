//! The audit trail: every step a function takes (or decides not to take) is recorded with the
//! API call, the target, the outcome and the time, logged as one JSON line tagged `audit` and
//! returned in the function's output so the state machine carries it into the incident record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The call was made and succeeded.
    Succeeded,
    /// The desired state was already in place; nothing was changed.
    AlreadyDone,
    /// Dry-run or kill switch: the call was planned, not made.
    DryRun,
    /// Deliberately not done (protected resource, policy, not applicable).
    Skipped,
    /// The call failed.
    Failed,
}

/// One step of a function's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    /// `service:Operation`: the mutating AWS call the step stands for. It was made only when the
    /// outcome is `Succeeded` or `Failed`; with `AlreadyDone`, `DryRun` or `Skipped` it names
    /// what would have changed (an `AlreadyDone` step may have made read calls to find out). A
    /// step may make further calls of its own (e.g. an EC2 revocation records a role in the
    /// pre-state table first); their permissions are the function's all the same.
    pub api_call: Option<String>,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// The steps one function invocation took for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditTrail {
    pub incident_id: String,
    pub function: String,
    pub steps: Vec<StepRecord>,
}

impl AuditTrail {
    pub fn new(function: impl Into<String>, incident_id: impl Into<String>) -> Self {
        AuditTrail {
            incident_id: incident_id.into(),
            function: function.into(),
            steps: Vec::new(),
        }
    }

    /// Records a step and logs it as an audit line.
    pub fn record(
        &mut self,
        step: &str,
        api_call: Option<&str>,
        target: Option<&str>,
        outcome: Outcome,
        detail: Option<String>,
    ) {
        let rec = StepRecord {
            step: step.to_string(),
            api_call: api_call.map(str::to_string),
            target: target.map(str::to_string),
            outcome,
            detail,
            at: Utc::now(),
        };
        tracing::info!(
            audit = true,
            function = %self.function,
            incident_id = %self.incident_id,
            step = %rec.step,
            api_call = rec.api_call.as_deref().unwrap_or(""),
            target = rec.target.as_deref().unwrap_or(""),
            outcome = ?rec.outcome,
            detail = rec.detail.as_deref().unwrap_or(""),
            "audit"
        );
        self.steps.push(rec);
    }
}
