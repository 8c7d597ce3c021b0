//! `LockdownConfig`: the function's settings from the environment.

use ir_core::config::env_bool_strict;
use ir_core::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct LockdownConfig {
    /// `IR_EVIDENCE_BUCKET`: where server access logs go.
    pub evidence_bucket: Option<String>,
    /// `IR_S3_OBJECT_LOCK` (default false): allow the irreversible Object Lock step at tier auto.
    pub object_lock: bool,
}

impl LockdownConfig {
    pub fn from_env() -> Result<LockdownConfig, ConfigError> {
        Ok(LockdownConfig {
            evidence_bucket: std::env::var("IR_EVIDENCE_BUCKET")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            object_lock: env_bool_strict("IR_S3_OBJECT_LOCK")?.unwrap_or(false),
        })
    }
}
