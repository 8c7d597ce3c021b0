//! The triage decision: the JSON the state machine routes on and every later function reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditTrail;
use crate::incident::Incident;
use crate::policy::{Disposition, Route, Tier};

/// Triage's verdict for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageDecision {
    pub incident_id: String,
    /// `respond`, `suppressed` or `duplicate`; the state machine ends quietly unless `respond`.
    pub disposition: Disposition,
    /// `ec2`, `iam`, `s3` or `generic`: which containment playbook runs.
    pub route: Route,
    /// `auto`, `approval` or `manual`.
    pub tier: Tier,
    /// Every mutating step must only plan, not act (kill switch engaged or `IR_DRY_RUN`).
    pub dry_run: bool,
    pub kill_switch_engaged: bool,
    /// The resource is protected (a protected tag or `protected_resources`): nothing changes
    /// without an analyst's approval.
    pub protected: bool,
    pub matched_rule: Option<String>,
    pub suppressed_by: Option<String>,
    pub reasons: Vec<String>,
    /// SHA-256 of the policy text that made this decision.
    pub policy_sha256: String,
    pub decided_at: DateTime<Utc>,
    pub incident: Incident,
    pub audit: AuditTrail,
}

impl TriageDecision {
    /// Whether the containment playbook may change anything at all for this decision.
    pub fn may_mutate(&self) -> bool {
        self.disposition == Disposition::Respond
            && !self.dry_run
            && !self.protected
            && self.tier != Tier::Manual
    }
}

/// What the triage function returns: the decision for the event's (first) finding, and the
/// decisions for any further findings the same event carried (a Security Hub custom action can
/// send several at once).
///
/// Only the primary decision is serialized (the Lambda's output, which the state machine carries
/// into every later state): each further finding already has an execution of its own
/// (ir-triage's fan-out), where its decision is recorded. Carried along, a hundred of them
/// would pass Step Functions' 256 KB state limit, and `States.DataLimitExceeded` is not caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageOutput {
    #[serde(flatten)]
    pub primary: TriageDecision,
    #[serde(skip_serializing, default)]
    pub related: Vec<TriageDecision>,
}
