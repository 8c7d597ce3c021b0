//! `QuarantineConfig`: the function's settings from the environment.

use ir_core::config::env_bool_strict;
use ir_core::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineConfig {
    /// `IR_DEACTIVATE_ALL_KEYS` (default true): all keys, not only the finding's.
    pub deactivate_all_keys: bool,
}

impl QuarantineConfig {
    pub fn from_env() -> Result<QuarantineConfig, ConfigError> {
        Ok(QuarantineConfig {
            deactivate_all_keys: env_bool_strict("IR_DEACTIVATE_ALL_KEYS")?.unwrap_or(true),
        })
    }
}
