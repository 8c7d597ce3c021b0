//! What every containment playbook shares: its input, its record, the safety gate checked before
//! the first mutating call, and a step runner that records each step and honours dry-run.
//!
//! Gate order (first that applies wins):
//! 1. the decision is not `respond` → skipped;
//! 2. contain only: tier `manual` → skipped;
//! 3. contain only, without an analyst's approval: a protected resource (triage's decision, or a
//!    protected tag found live on the resource now) → `awaiting_approval` (escalated: the
//!    approval runs the playbook); tier `approval` → skipped;
//! 4. dry-run (from triage, the kill switch read *now*, or the function's `IR_DRY_RUN`) → the
//!    exact plan is returned, every step `dry_run`, nothing changed. An approval never lifts it.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditTrail, Outcome, StepRecord};
use crate::decision::TriageDecision;
use crate::killswitch::{KillSwitch, KillSwitchState};
use crate::permissions::Permission;
use crate::policy::{protected_tag, Disposition, TagMatch, Tier};
use lambda_runtime::Diagnostic;
use std::collections::BTreeMap;

/// Why a containment function could not run to completion. Its `errorType` names are stable
/// (the state machine's `Catch` matches them).
#[derive(Debug, thiserror::Error)]
pub enum ContainmentError {
    #[error("request is not for a resource this function handles: {0}")]
    WrongResource(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("could not read {what}: {message}")]
    Read { what: String, message: String },
    /// The message is the partial record as JSON (steps completed, the failed step, the error).
    #[error("containment incomplete: {}", serde_json::to_string(.0).unwrap_or_default())]
    Partial(Box<ContainmentRecord>),
    /// The resource's account or Region cannot be reached (nothing was changed).
    #[error(transparent)]
    Unreachable(#[from] crate::member::ReachError),
    /// Another incident's playbook is working on the resource now (nothing was read or
    /// changed): the state machine retries until it is done ([`crate::lease`]).
    #[error("{resource} is being handled by incident {owner} (lease until {until}): retry")]
    Busy {
        resource: String,
        owner: String,
        until: i64,
    },
}

impl ContainmentError {
    /// A read of `what` (an API action or attribute) that failed with `message`.
    pub fn read(what: &str, message: String) -> ContainmentError {
        ContainmentError::Read {
            what: what.to_string(),
            message,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            ContainmentError::WrongResource(_) => "WrongResource",
            ContainmentError::NotFound(_) => "ResourceNotFound",
            ContainmentError::Read { .. } => "ReadFailed",
            ContainmentError::Partial(_) => "ContainmentFailed",
            ContainmentError::Unreachable(e) => e.error_type(),
            ContainmentError::Busy { .. } => "ResourceBusy",
        }
    }
}

impl From<ContainmentError> for Diagnostic {
    fn from(e: ContainmentError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Apply containment.
    #[default]
    Contain,
    /// Restore the pre-change state a previous `contain` recorded (false positive).
    Release,
}

/// An analyst's approval from the review gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: String,
    pub at: DateTime<Utc>,
}

/// Input of every containment function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentRequest {
    #[serde(default)]
    pub mode: Mode,
    /// The triage decision (the state machine passes triage's output).
    pub decision: TriageDecision,
    #[serde(default)]
    pub approval: Option<Approval>,
    /// For `release`: the record the `contain` run returned.
    #[serde(default)]
    pub previous: Option<ContainmentRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Every step succeeded or was already in place.
    Completed,
    /// Dry-run: `steps` is the exact plan; nothing was changed.
    Planned,
    /// The gate stopped the playbook before any change.
    Skipped,
    /// The resource is protected (a tag found by triage or on the resource now): nothing was
    /// changed, and the response waits for an analyst, whose approval runs the playbook. An
    /// attacker who tags a resource they control cannot opt it out, only bring a human in.
    AwaitingApproval,
    /// A step failed; the steps before it completed (see `steps`, `failed_step`).
    Partial,
}

/// What a containment function did, with the state needed to undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainmentRecord {
    pub incident_id: String,
    pub function: String,
    pub mode: Mode,
    pub status: RecordStatus,
    pub dry_run: bool,
    /// Why the playbook was skipped or only planned.
    pub reason: Option<String>,
    pub steps: Vec<StepRecord>,
    /// Playbook-specific state before the change (what `release` restores).
    pub pre_state: serde_json::Value,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The completed containment holding the resource after this run: this incident's own, or
    /// the earlier incident's this one joined ([`crate::lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contained_by: Option<crate::lease::ContainedBy>,
}

impl ContainmentRecord {
    /// A record with a failed step becomes the `ContainmentFailed` error.
    pub fn into_result(self) -> Result<ContainmentRecord, ContainmentError> {
        if self.failed_step.is_some() {
            Err(ContainmentError::Partial(Box::new(self)))
        } else {
            Ok(self)
        }
    }

    /// The partial record a failed containment Lambda carried in its error: `cause` is the
    /// `Cause` Step Functions gives a Catch (the Lambda's `{"errorType", "errorMessage"}`),
    /// whose message is [`ContainmentError::Partial`]'s text.
    pub fn from_failure_cause(cause: &str) -> Option<ContainmentRecord> {
        let lambda: serde_json::Value = serde_json::from_str(cause).ok()?;
        let message = lambda["errorMessage"].as_str()?;
        let json = message.strip_prefix("containment incomplete: ")?;
        serde_json::from_str(json).ok()
    }

    /// Steps that changed something or found it already done.
    pub fn completed_steps(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Succeeded | Outcome::AlreadyDone))
            .map(|s| s.step.as_str())
            .collect()
    }
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Proceed,
    DryRun(String),
    Skip(String),
    /// Protected: an analyst must approve (the record is `awaiting_approval`).
    Escalate(String),
}

/// Applies the gate. `live_protection` is a protected tag found on the resource just now.
pub fn gate(
    request: &ContainmentRequest,
    live_protection: Option<&str>,
    kill_switch: &KillSwitchState,
    forced_dry_run: bool,
) -> Gate {
    let d = &request.decision;
    if d.disposition != Disposition::Respond {
        return Gate::Skip(format!("triage disposition is {}", d.disposition));
    }
    if request.mode == Mode::Contain {
        if d.tier == Tier::Manual {
            return Gate::Skip("tier is manual: no automatic containment".into());
        }
        let protection = match (d.protected, live_protection) {
            (_, Some(tag)) => Some(format!("resource is protected ({tag} found on it now)")),
            (true, None) => Some("resource is protected (triage)".to_string()),
            (false, None) => None,
        };
        if request.approval.is_none() {
            if let Some(why) = protection {
                return Gate::Escalate(format!(
                    "{why}: escalated to an analyst, whose approval runs the playbook"
                ));
            }
            if d.tier == Tier::Approval {
                return Gate::Skip("tier is approval and no analyst has approved".into());
            }
        }
    }
    if let KillSwitchState::Engaged { reason } = kill_switch {
        return Gate::DryRun(reason.clone());
    }
    if d.dry_run {
        return Gate::DryRun("triage decided dry-run".into());
    }
    if forced_dry_run {
        return Gate::DryRun("IR_DRY_RUN is set for this function".into());
    }
    Gate::Proceed
}

/// What a step found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    Changed(String),
    AlreadyDone(String),
    /// AWS refuses this change for this resource by design (termination protection on a Spot
    /// instance, …): recorded as skipped with the reason, and the playbook goes on.
    Refused(String),
}

/// A step failed: the playbook stops here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step `{step}` failed: {message}")]
pub struct StepFailed {
    pub step: String,
    pub message: String,
}

/// Runs a playbook's steps in order, recording each; in dry-run it records the plan instead.
#[derive(Debug)]
pub struct Runner {
    pub dry_run: bool,
    pub trail: AuditTrail,
}

/// How a playbook run begins after the gate.
#[derive(Debug)]
pub enum Start {
    /// The gate stopped it: return this record.
    Skipped(Box<ContainmentRecord>),
    /// Run the steps; `reason` is why it only plans (dry-run), if it does.
    Run {
        runner: Runner,
        reason: Option<String>,
    },
}

/// The safety inputs every playbook checks before its first mutating call, as one value: the
/// kill switch (read live), the function's own dry-run setting (`IR_DRY_RUN`) and the policy's
/// protected-tag rules.
#[derive(Debug, Clone)]
pub struct Safety {
    pub kill_switch: KillSwitch,
    pub forced_dry_run: bool,
    pub protected_tags: Vec<TagMatch>,
}

impl Safety {
    /// From the environment: `IR_KILL_SWITCH_PARAMETER` (default
    /// [`crate::killswitch::DEFAULT_KILL_SWITCH_PARAMETER`]) and `IR_DRY_RUN`.
    pub fn from_env(
        ssm: aws_sdk_ssm::Client,
        protected_tags: Vec<TagMatch>,
    ) -> Result<Safety, crate::ConfigError> {
        Ok(Safety {
            kill_switch: KillSwitch::new(
                ssm,
                crate::config::env_or(
                    "IR_KILL_SWITCH_PARAMETER",
                    crate::killswitch::DEFAULT_KILL_SWITCH_PARAMETER,
                ),
            ),
            forced_dry_run: crate::config::env_bool_strict("IR_DRY_RUN")?.unwrap_or(false),
            protected_tags,
        })
    }
}

impl Runner {
    /// Everything before the first mutating call: a protected tag on the resource now, the
    /// kill switch read now, then the [`gate`].
    pub async fn begin(
        function: &str,
        request: &ContainmentRequest,
        live_tags: &BTreeMap<String, String>,
        safety: &Safety,
        started_at: DateTime<Utc>,
    ) -> Start {
        let protection = protected_tag(&safety.protected_tags, live_tags);
        let kill = safety.kill_switch.read().await;
        Runner::start(
            function,
            request,
            protection.as_deref(),
            &kill,
            safety.forced_dry_run,
            started_at,
        )
    }

    /// Applies the [`gate`] and returns either the skipped record or a runner (planning only
    /// when the gate says dry-run).
    pub fn start(
        function: &str,
        request: &ContainmentRequest,
        live_protection: Option<&str>,
        kill_switch: &KillSwitchState,
        forced_dry_run: bool,
        started_at: DateTime<Utc>,
    ) -> Start {
        match gate(request, live_protection, kill_switch, forced_dry_run) {
            Gate::Skip(reason) => Start::Skipped(Box::new(Runner::skipped(
                function, request, reason, started_at,
            ))),
            Gate::Escalate(reason) => {
                let mut record = Runner::skipped(function, request, reason, started_at);
                record.status = RecordStatus::AwaitingApproval;
                Start::Skipped(Box::new(record))
            }
            Gate::DryRun(reason) => Start::Run {
                runner: Runner::new(function, &request.decision.incident_id, true),
                reason: Some(reason),
            },
            Gate::Proceed => Start::Run {
                runner: Runner::new(function, &request.decision.incident_id, false),
                reason: None,
            },
        }
    }

    pub fn new(function: &str, incident_id: &str, dry_run: bool) -> Runner {
        Runner {
            dry_run,
            trail: AuditTrail::new(function, incident_id),
        }
    }

    /// Runs one mutating step (or, in dry-run, records that it would run). `call` is the
    /// declared permission of the AWS call the step makes; its action is the recorded `api_call`.
    pub async fn step<F, Fut>(
        &mut self,
        name: &str,
        call: &Permission,
        target: &str,
        plan: String,
        act: F,
    ) -> Result<(), StepFailed>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<StepResult, String>>,
    {
        let api_call = call.action;
        if self.dry_run {
            self.trail.record(
                name,
                Some(api_call),
                Some(target),
                Outcome::DryRun,
                Some(plan),
            );
            return Ok(());
        }
        match act().await {
            Ok(StepResult::Changed(detail)) => {
                self.trail.record(
                    name,
                    Some(api_call),
                    Some(target),
                    Outcome::Succeeded,
                    Some(detail),
                );
                Ok(())
            }
            Ok(StepResult::AlreadyDone(detail)) => {
                self.trail.record(
                    name,
                    Some(api_call),
                    Some(target),
                    Outcome::AlreadyDone,
                    Some(detail),
                );
                Ok(())
            }
            Ok(StepResult::Refused(why)) => {
                self.trail.record(
                    name,
                    Some(api_call),
                    Some(target),
                    Outcome::Skipped,
                    Some(format!("AWS refuses this for {target}: {why}")),
                );
                Ok(())
            }
            Err(message) => {
                self.trail.record(
                    name,
                    Some(api_call),
                    Some(target),
                    Outcome::Failed,
                    Some(message.clone()),
                );
                Err(StepFailed {
                    step: name.to_string(),
                    message,
                })
            }
        }
    }

    /// Records a step deliberately not taken.
    pub fn skip(&mut self, name: &str, target: &str, why: String) {
        self.trail
            .record(name, None, Some(target), Outcome::Skipped, Some(why));
    }

    /// Closes the run into a record.
    pub fn finish(
        self,
        mode: Mode,
        started_at: DateTime<Utc>,
        pre_state: serde_json::Value,
        result: Result<(), StepFailed>,
        reason: Option<String>,
    ) -> ContainmentRecord {
        let (status, failed_step, error) = match (&result, self.dry_run) {
            (Err(f), _) => (
                RecordStatus::Partial,
                Some(f.step.clone()),
                Some(f.message.clone()),
            ),
            (Ok(()), true) => (RecordStatus::Planned, None, None),
            (Ok(()), false) => (RecordStatus::Completed, None, None),
        };
        ContainmentRecord {
            incident_id: self.trail.incident_id.clone(),
            function: self.trail.function.clone(),
            mode,
            status,
            dry_run: self.dry_run,
            reason,
            steps: self.trail.steps,
            pre_state,
            failed_step,
            error,
            started_at,
            finished_at: Utc::now(),
            contained_by: None,
        }
    }

    /// A record for a playbook the gate stopped before any change.
    pub fn skipped(
        function: &str,
        request: &ContainmentRequest,
        reason: String,
        started_at: DateTime<Utc>,
    ) -> ContainmentRecord {
        let mut trail = AuditTrail::new(function, &request.decision.incident_id);
        trail.record("gate", None, None, Outcome::Skipped, Some(reason.clone()));
        ContainmentRecord {
            incident_id: request.decision.incident_id.clone(),
            function: function.to_string(),
            mode: request.mode,
            status: RecordStatus::Skipped,
            dry_run: false,
            reason: Some(reason),
            steps: trail.steps,
            pre_state: serde_json::Value::Null,
            failed_step: None,
            error: None,
            started_at,
            finished_at: Utc::now(),
            contained_by: None,
        }
    }
}

/// Tags every playbook writes on what it contains.
pub const TAG_STATUS: &str = "ir:status";
pub const TAG_INCIDENT: &str = "ir:incident-id";

/// An IAM policy that denies everything to sessions issued before `cutoff`: stolen temporary
/// credentials die, new legitimate sessions (issued after) keep working.
pub fn revoke_older_sessions_policy(cutoff: DateTime<Utc>) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "IncidentResponseRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}
        }]
    })
    .to_string()
}

/// The instance id, when an assumed-role session is an EC2 instance's: instance-profile
/// credentials carry the instance id as their session name (`AROA…:i-0abc…`).
pub fn instance_session(session: &str) -> Option<&str> {
    let hex = session.strip_prefix("i-")?;
    (matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(session)
}

/// Inline policy name of ir-isolate-ec2's credential revocation of one instance: one per
/// instance, whichever incident put it there, so repeats and further incidents add nothing
/// towards the role's inline-policy quota.
///
/// Each playbook owns its own name ([`quarantine_instance_policy_name`] is ir-quarantine-iam's):
/// the two hold different leases (the instance, the role), so a release of one must never
/// delete the revocation the other still keeps in force.
pub fn revoke_instance_policy_name(instance_id: &str) -> String {
    format!("ir-revoke-instance-{instance_id}")
}

/// Inline policy name of ir-quarantine-iam's revocation of one instance's role credentials (the
/// same document as [`revoke_instance_policy_name`]'s, under its own name).
pub fn quarantine_instance_policy_name(instance_id: &str) -> String {
    format!("ir-quarantine-instance-{instance_id}")
}

/// Deny everything, on the role it is attached to, to the credentials of one instance wherever
/// they are used now, and to any session of the role named after the instance: the other
/// instances sharing the role keep working. (A `TokenIssueTime` revocation on an instance role
/// would cut the whole fleet off AWS.)
///
/// Two statements, because a session name is chosen by whoever calls `sts:AssumeRole`: the
/// instance's own credentials carry `ec2:SourceInstanceARN` (matched in any Region: a finding may
/// come from another Region than the instance); a session someone named `i-…` does not, but its
/// `aws:userid` is `<role id>:<session name>`, as the instance's is.
pub fn revoke_instance_credentials_policy(
    partition: &str,
    account: &str,
    instance_id: &str,
) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "IncidentResponseRevokeInstanceCredentials",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"ArnLike": {"ec2:SourceInstanceARN": format!("arn:{partition}:ec2:*:{account}:instance/{instance_id}")}}
        }, {
            "Sid": "IncidentResponseRevokeInstanceNamedSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringLike": {"aws:userid": format!("*:{instance_id}")}}
        }]
    })
    .to_string()
}
