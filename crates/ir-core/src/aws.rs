//! Shared AWS SDK configuration: standard retry with exponential backoff and jitter, and an
//! optional endpoint override (`AWS_ENDPOINT_URL`, honoured by aws-config itself, is how the
//! functions are pointed at the local emulator).

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Attempts per AWS call (first try + retries) for throttling and transient 5xx.
pub const MAX_ATTEMPTS: u32 = 5;

/// The retry policy every client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(5))
}

/// Loads the SDK configuration from the environment (Lambda role credentials, region,
/// `AWS_ENDPOINT_URL`) with this project's retry policy.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .load()
        .await
}

/// Whether S3 clients must use path-style addressing (`IR_S3_FORCE_PATH_STYLE=true`, needed by
/// local emulators).
pub fn s3_force_path_style() -> bool {
    crate::config::env_bool("IR_S3_FORCE_PATH_STYLE").unwrap_or(false)
}
