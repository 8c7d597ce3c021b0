//! The kill switch: an SSM parameter that turns every mutating step into a dry run.
//!
//! Values `on`, `true`, `1`, `engaged`, `enabled` engage it; `off`, `false`, `0`, `disengaged`,
//! `disabled` (or an empty value) release it. A missing parameter means "not engaged". Anything
//! else — an unknown value, access denied, a throttle that outlived the retries — engages it:
//! when in doubt, change nothing.

use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use serde::{Deserialize, Serialize};

/// Default parameter name (Terraform creates it with value `off`).
pub const DEFAULT_KILL_SWITCH_PARAMETER: &str = "/incident-response/kill-switch";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KillSwitchState {
    Disengaged,
    Engaged { reason: String },
}

impl KillSwitchState {
    pub fn is_engaged(&self) -> bool {
        matches!(self, KillSwitchState::Engaged { .. })
    }

    /// Interprets a parameter value.
    pub fn from_value(parameter: &str, value: &str) -> KillSwitchState {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "off" | "false" | "0" | "disengaged" | "disabled" => KillSwitchState::Disengaged,
            "on" | "true" | "1" | "engaged" | "enabled" => KillSwitchState::Engaged {
                reason: format!("kill switch {parameter} is `{}`", value.trim()),
            },
            other => KillSwitchState::Engaged {
                reason: format!(
                    "kill switch {parameter} has unrecognised value `{other}`; failing safe to dry-run"
                ),
            },
        }
    }
}

/// Reads the kill switch from SSM Parameter Store.
#[derive(Debug, Clone)]
pub struct KillSwitch {
    client: aws_sdk_ssm::Client,
    parameter: String,
}

impl KillSwitch {
    pub fn new(client: aws_sdk_ssm::Client, parameter: impl Into<String>) -> Self {
        KillSwitch {
            client,
            parameter: parameter.into(),
        }
    }

    pub fn parameter(&self) -> &str {
        &self.parameter
    }

    /// Never fails: an unreadable switch is treated as engaged.
    pub async fn read(&self) -> KillSwitchState {
        match self
            .client
            .get_parameter()
            .name(&self.parameter)
            .send()
            .await
        {
            Ok(out) => {
                let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
                KillSwitchState::from_value(&self.parameter, value)
            }
            Err(err) => match err.as_service_error() {
                Some(GetParameterError::ParameterNotFound(_)) => {
                    tracing::warn!(parameter = %self.parameter, "kill switch parameter not found; treating as disengaged");
                    KillSwitchState::Disengaged
                }
                _ => {
                    let detail = aws_sdk_ssm::error::DisplayErrorContext(&err).to_string();
                    tracing::error!(parameter = %self.parameter, error = %detail, "kill switch unreadable; failing safe to dry-run");
                    KillSwitchState::Engaged {
                        reason: format!(
                            "kill switch {} could not be read ({detail}); failing safe to dry-run",
                            self.parameter
                        ),
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(
            KillSwitchState::from_value("/p", "off"),
            KillSwitchState::Disengaged
        );
        assert_eq!(
            KillSwitchState::from_value("/p", " FALSE "),
            KillSwitchState::Disengaged
        );
        assert!(KillSwitchState::from_value("/p", "ON").is_engaged());
        assert!(KillSwitchState::from_value("/p", "maybe").is_engaged());
    }
}
