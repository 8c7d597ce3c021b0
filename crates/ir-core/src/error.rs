//! Typed errors of the domain crate. Every variant has a stable [`FindingError::error_type`]
//! name, which the Lambda functions report as `errorType` so the state machine can `Catch` it.

/// Why an event could not be turned into an incident. None of these ever leads to an AWS call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FindingError {
    #[error("event is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("input is not an EventBridge event: {0}")]
    NotAnEvent(String),
    #[error("unsupported event: source `{event_source}`, detail-type `{detail_type}`")]
    Unsupported {
        event_source: String,
        detail_type: String,
    },
    #[error("malformed {kind} finding: {message}")]
    Malformed { kind: &'static str, message: String },
    #[error("finding `{finding_id}` is missing {field}")]
    MissingField {
        finding_id: String,
        field: &'static str,
    },
    #[error("finding `{finding_id}` has an invalid {field}: {message}")]
    InvalidField {
        finding_id: String,
        field: &'static str,
        message: String,
    },
    #[error("event carries no findings")]
    NoFindings,
}

impl FindingError {
    /// Stable name used as the Lambda `errorType` (matched by the state machine's `Catch`).
    pub fn error_type(&self) -> &'static str {
        match self {
            FindingError::InvalidJson(_) | FindingError::NotAnEvent(_) => "InvalidEvent",
            FindingError::Unsupported { .. } => "UnsupportedEvent",
            FindingError::Malformed { .. }
            | FindingError::MissingField { .. }
            | FindingError::InvalidField { .. }
            | FindingError::NoFindings => "MalformedFinding",
        }
    }
}

/// The policy file could not be loaded or is inconsistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid TOML: {0}")]
    Parse(String),
    #[error("policy could not be read from {path}: {message}")]
    Read { path: String, message: String },
    #[error("policy is invalid: {0}")]
    Invalid(String),
}

/// Configuration from the environment is missing or wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("required setting {0} is not set")]
    Missing(&'static str),
    #[error("setting {name} has an invalid value `{value}`: {message}")]
    Invalid {
        name: &'static str,
        value: String,
        message: String,
    },
}
