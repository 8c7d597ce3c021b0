//! ir-triage: parse the finding event, decide route and tier from the policy, honour the kill
//! switch, and dedupe repeats with a DynamoDB conditional write ([`dynamodb`]).
//!
//! Order matters for safety: the whole event is parsed and normalised before any AWS call, so
//! malformed input fails with a typed error and touches nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ir_core::audit::{AuditTrail, Outcome};
use ir_core::config::{env_bool_strict, env_or, env_required};
use ir_core::killswitch::{KillSwitch, KillSwitchState, DEFAULT_KILL_SWITCH_PARAMETER};
use ir_core::orgunits::OrgPath;
use ir_core::policy::PolicyDecision;
use ir_core::{
    ConfigError, Disposition, FindingError, Incident, LoadedPolicy, PolicyError, TriageDecision,
    TriageOutput,
};
use lambda_runtime::Diagnostic;

pub mod dynamodb;
pub mod fanout;
pub mod organizations;
pub use dynamodb::{response_rank, DedupeOutcome, DedupeStore};
pub use fanout::{FanOut, FanOutError};
pub use organizations::OrgDirectory;

/// Name recorded in audit trails.
pub const FUNCTION_NAME: &str = "ir-triage";

/// Every AWS call this function makes.
pub fn permissions() -> Vec<ir_core::permissions::Permission> {
    ir_core::permissions::union(&[
        &[
            ir_core::permissions::KILL_SWITCH_READ,
            dynamodb::UPDATE_INCIDENT,
        ],
        fanout::PERMISSIONS,
        organizations::PERMISSIONS,
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error(transparent)]
    Finding(#[from] FindingError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("dedupe table {table} unavailable: {message}")]
    Dedupe { table: String, message: String },
    #[error(transparent)]
    FanOut(#[from] FanOutError),
}

impl TriageError {
    /// Stable `errorType` for the state machine's `Catch`/`Retry`.
    pub fn error_type(&self) -> &'static str {
        match self {
            TriageError::Finding(e) => e.error_type(),
            TriageError::Policy(_) => "PolicyError",
            TriageError::Config(_) => "ConfigError",
            TriageError::Dedupe { .. } => "DedupeUnavailable",
            TriageError::FanOut(_) => "FanOutFailed",
        }
    }
}

impl From<TriageError> for Diagnostic {
    fn from(e: TriageError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// Typed configuration, read once at cold start.
#[derive(Debug, Clone, PartialEq)]
pub struct TriageConfig {
    /// `IR_INCIDENTS_TABLE`: DynamoDB table keyed by `incident_id` (S).
    pub incidents_table: String,
    /// `IR_KILL_SWITCH_PARAMETER`: SSM parameter name.
    pub kill_switch_parameter: String,
    /// `IR_DRY_RUN`: force dry-run regardless of the kill switch.
    pub dry_run: bool,
    /// `IR_STATE_MACHINE_ARN`: the response's own state machine. Set, each further finding of a
    /// multi-finding event gets an execution of its own ([`FanOut`]); unset, only the first
    /// finding is responded to.
    pub state_machine_arn: Option<String>,
}

impl TriageConfig {
    pub fn from_env() -> Result<TriageConfig, ConfigError> {
        Ok(TriageConfig {
            incidents_table: env_required("IR_INCIDENTS_TABLE")?,
            kill_switch_parameter: env_or(
                "IR_KILL_SWITCH_PARAMETER",
                DEFAULT_KILL_SWITCH_PARAMETER,
            ),
            dry_run: env_bool_strict("IR_DRY_RUN")?.unwrap_or(false),
            state_machine_arn: Some(env_or("IR_STATE_MACHINE_ARN", ""))
                .filter(|arn| !arn.trim().is_empty()),
        })
    }
}

/// Where a finding's response happens.
#[derive(Debug, PartialEq)]
enum Handled {
    /// This execution responds (the event's first finding).
    Here,
    /// Another execution, if one was started.
    Elsewhere(Option<fanout::Started>),
}

/// Everything the handler needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct Triage {
    pub policy: LoadedPolicy,
    pub dry_run: bool,
    pub kill_switch: KillSwitch,
    pub dedupe: DedupeStore,
    /// Starts an execution for each further finding of an event (see [`Triage::with_fan_out`]).
    pub fan_out: Option<FanOut>,
    /// Reads where accounts sit, for a policy that names organizational units.
    pub organizations: Option<OrgDirectory>,
}

impl Triage {
    pub fn new(
        config: &TriageConfig,
        policy: LoadedPolicy,
        ssm: aws_sdk_ssm::Client,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Triage {
        Triage {
            policy,
            dry_run: config.dry_run,
            kill_switch: KillSwitch::new(ssm, config.kill_switch_parameter.clone()),
            dedupe: DedupeStore::new(dynamodb, config.incidents_table.clone()),
            fan_out: None,
            organizations: None,
        }
    }

    /// Reads the accounts' organizational units through `client` when the policy names any.
    pub fn with_organizations(mut self, client: aws_sdk_organizations::Client) -> Triage {
        self.organizations = Some(OrgDirectory::new(client));
        self
    }

    /// Where the incident's account sits, when the policy needs it.
    async fn org_path(&self, incident: &Incident) -> OrgPath {
        if !self.policy.policy.uses_organizational_units() {
            return OrgPath::Unknown("the policy names no organizational units".into());
        }
        match &self.organizations {
            Some(directory) => directory.path_of(&incident.account_id).await,
            None => OrgPath::Unknown("no Organizations client".into()),
        }
    }

    /// Fans further findings out to executions of `config.state_machine_arn`, if it is set.
    pub fn with_fan_out(mut self, config: &TriageConfig, sfn: aws_sdk_sfn::Client) -> Triage {
        self.fan_out = config
            .state_machine_arn
            .clone()
            .map(|state_machine_arn| FanOut {
                sfn,
                state_machine_arn,
            });
        self
    }

    /// The Lambda handler body.
    pub async fn handle(&self, event: serde_json::Value) -> Result<TriageOutput, TriageError> {
        self.handle_at(event, Utc::now()).await
    }

    /// [`Triage::handle`] with an explicit clock.
    pub async fn handle_at(
        &self,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<TriageOutput, TriageError> {
        // 1. Parse everything first: bad input never reaches AWS.
        let raw = (self.fan_out.is_some()).then(|| event.clone());
        let incidents = Incident::from_event_value(event)?;
        // 2. Decide from policy (pure, given where the account sits when the policy asks).
        let mut evaluated: Vec<(Incident, PolicyDecision)> = Vec::with_capacity(incidents.len());
        for i in incidents {
            let org = self.org_path(&i).await;
            let d = self.policy.policy.evaluate_in(&i, &org, now);
            evaluated.push((i, d));
        }
        // 3. Kill switch, read once per event and only if something would respond.
        let kill = if evaluated
            .iter()
            .any(|(_, d)| d.disposition == Disposition::Respond)
        {
            Some(self.kill_switch.read().await)
        } else {
            None
        };
        // 4. Further findings the policy would respond to (a custom action sent with several)
        // get executions of their own, before anything is recorded here, so a retry of this
        // triage repeats nothing (the executions are named by their input).
        let mut fanned_out = HashMap::new();
        if let (Some(fan_out), Some(raw)) = (&self.fan_out, &raw) {
            for (n, (incident, decision)) in evaluated.iter().enumerate().skip(1) {
                if decision.disposition == Disposition::Respond {
                    let started = fan_out.start(raw, n, &incident.incident_id).await?;
                    fanned_out.insert(n, started);
                }
            }
        }
        // 5. Dedupe the respond decision of the first finding: the one this execution responds
        // to. Further findings are recorded by their own executions' triage; without a fan-out
        // they are not recorded, so sending one of them on its own later is not swallowed as a
        // duplicate.
        let mut decisions = Vec::with_capacity(evaluated.len());
        for (n, (incident, decision)) in evaluated.into_iter().enumerate() {
            let here = if n == 0 {
                Handled::Here
            } else {
                Handled::Elsewhere(fanned_out.remove(&n))
            };
            decisions.push(
                self.finish(incident, decision, kill.as_ref(), now, here)
                    .await?,
            );
        }
        let mut iter = decisions.into_iter();
        // `from_event_value` never returns an empty list (NoFindings is an error).
        let primary = iter.next().ok_or(FindingError::NoFindings)?;
        Ok(TriageOutput {
            primary,
            related: iter.collect(),
        })
    }

    async fn finish(
        &self,
        incident: Incident,
        decision: PolicyDecision,
        kill: Option<&KillSwitchState>,
        now: DateTime<Utc>,
        handled: Handled,
    ) -> Result<TriageDecision, TriageError> {
        let mut audit = AuditTrail::new(FUNCTION_NAME, &incident.incident_id);
        let target = incident
            .primary_resource()
            .map(|r| r.display_id())
            .unwrap_or_default();
        audit.record(
            "normalise-finding",
            None,
            Some(&target),
            Outcome::Succeeded,
            Some(format!(
                "{} {} ({} {:.1}) from {:?}",
                incident.finding_type,
                incident.finding_id,
                incident.severity.label,
                incident.severity.score,
                incident.source
            )),
        );
        let mut reasons = decision.reasons.clone();
        audit.record(
            "evaluate-policy",
            None,
            Some(&target),
            Outcome::Succeeded,
            Some(format!(
                "{} / {} / {} (policy {} sha256:{})",
                decision.disposition,
                decision.route,
                decision.tier,
                self.policy.origin,
                &self.policy.sha256[..12]
            )),
        );

        let mut dry_run = self.dry_run || decision.dry_run;
        if self.dry_run {
            reasons.push("dry-run forced by IR_DRY_RUN".into());
        }
        let mut kill_switch_engaged = false;
        if let Some(KillSwitchState::Engaged { reason }) = kill {
            kill_switch_engaged = true;
            dry_run = true;
            reasons.push(format!("dry-run: {reason}"));
        }
        if let Some(state) = kill {
            audit.record(
                "read-kill-switch",
                Some("ssm:GetParameter"),
                Some(self.kill_switch.parameter()),
                Outcome::Succeeded,
                Some(match state {
                    KillSwitchState::Disengaged => "disengaged".to_string(),
                    KillSwitchState::Engaged { reason } => format!("engaged: {reason}"),
                }),
            );
        }

        let mut disposition = decision.disposition;
        match (&handled, disposition) {
            (Handled::Elsewhere(Some(started)), Disposition::Respond) => {
                let detail = format!(
                    "not the event's first finding: responded to by execution {}",
                    started.execution_arn
                );
                tracing::info!(incident_id = %incident.incident_id, execution = %started.execution_arn, "fanned out");
                reasons.push(format!("fan-out: {detail}"));
                audit.record(
                    "fan-out",
                    Some("states:StartExecution"),
                    Some(&started.execution_arn),
                    started.outcome,
                    Some(detail),
                );
            }
            (Handled::Elsewhere(None), Disposition::Respond) => {
                let detail = "not the event's first finding: this execution does not respond to \
                              it and it is not recorded (no IR_STATE_MACHINE_ARN to fan out to); \
                              send it on its own to respond"
                    .to_string();
                tracing::warn!(
                    incident_id = %incident.incident_id,
                    finding_id = %incident.finding_id,
                    "{detail}"
                );
                reasons.push(format!("dedupe: {detail}"));
                audit.record(
                    "dedupe",
                    None,
                    Some(&incident.incident_id),
                    Outcome::Skipped,
                    Some(detail),
                );
            }
            _ => {}
        }
        if disposition == Disposition::Respond && handled == Handled::Here {
            let outcome = self
                .dedupe
                .record(
                    &incident,
                    decision.tier,
                    dry_run,
                    now,
                    self.policy.policy.dedupe.window_hours,
                )
                .await?;
            let detail = match &outcome {
                DedupeOutcome::New => "first occurrence in the window".to_string(),
                DedupeOutcome::Escalated { previous_rank } => format!(
                    "repeat escalates the response (rank {previous_rank} → {})",
                    response_rank(decision.tier, dry_run)
                ),
                DedupeOutcome::Duplicate => {
                    "already handled at an equal or stronger response".to_string()
                }
            };
            if outcome == DedupeOutcome::Duplicate {
                disposition = Disposition::Duplicate;
            }
            reasons.push(format!("dedupe: {detail}"));
            audit.record(
                "dedupe",
                Some("dynamodb:UpdateItem"),
                Some(&incident.incident_id),
                if outcome == DedupeOutcome::Duplicate {
                    Outcome::AlreadyDone
                } else {
                    Outcome::Succeeded
                },
                Some(detail),
            );
        }

        tracing::info!(
            incident_id = %incident.incident_id,
            finding_type = %incident.finding_type,
            disposition = %disposition,
            route = %decision.route,
            tier = %decision.tier,
            dry_run,
            "triaged"
        );
        Ok(TriageDecision {
            incident_id: incident.incident_id.clone(),
            disposition,
            route: decision.route,
            tier: decision.tier,
            dry_run,
            kill_switch_engaged,
            protected: decision.protected,
            matched_rule: decision.matched_rule,
            suppressed_by: decision.suppressed_by,
            reasons,
            policy_sha256: self.policy.sha256.clone(),
            decided_at: now,
            incident,
            audit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_stable_names() {
        let e: TriageError = FindingError::NoFindings.into();
        let d: Diagnostic = e.into();
        assert_eq!(d.error_type, "MalformedFinding");
        let e = TriageError::Dedupe {
            table: "t".into(),
            message: "m".into(),
        };
        assert_eq!(e.error_type(), "DedupeUnavailable");
    }
}
