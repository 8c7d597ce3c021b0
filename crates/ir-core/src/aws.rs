//! Shared AWS SDK configuration: standard retry with exponential backoff and jitter, and an
//! optional endpoint override (`AWS_ENDPOINT_URL`, honoured by aws-config itself, is how the
//! functions are pointed at the local emulator).
//!
//! Every client is built with [`aws_client!`](crate::aws_client): its own retry quota. The SDK
//! gates retries by a token bucket (500 tokens; a retried throttle costs 5, a retried 5xx or
//! timeout 10; a call that succeeds first time gives 1 back). By default that bucket is a
//! process-wide static per service and Region, so one storm drains it for every later client:
//! the next response in a warm execution environment, or a client for another account, would
//! then get no retries at all. With a bucket per client, each set of clients a function builds
//! (at start, and per target account and Region for every response) has the full quota; the
//! quota still bounds what one response retries.

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

/// `$sdk_crate::Client` for `$sdk` with a retry quota of its own (see the module docs); an
/// optional closure adjusts the service's config builder (e.g. S3 path-style addressing).
///
/// ```ignore
/// let ec2 = ir_core::aws_client!(aws_sdk_ec2, &sdk);
/// let s3 = ir_core::aws_client!(aws_sdk_s3, &sdk, |b| b.force_path_style(true));
/// ```
#[macro_export]
macro_rules! aws_client {
    ($sdk_crate:ident, $sdk:expr) => {
        $crate::aws_client!($sdk_crate, $sdk, |b| b)
    };
    ($sdk_crate:ident, $sdk:expr, $adjust:expr) => {{
        let builder = $sdk_crate::config::Builder::from($sdk)
            .retry_partition($crate::retry_quota!($sdk_crate));
        $sdk_crate::Client::from_conf($crate::aws::adjusted(builder, $adjust).build())
    }};
}

/// A fresh retry quota (`RetryPartition` with a bucket of its own) for a `$sdk_crate` config
/// built some other way than [`aws_client!`](crate::aws_client), e.g. from another client's.
#[macro_export]
macro_rules! retry_quota {
    ($sdk_crate:ident) => {
        $sdk_crate::config::retry::RetryPartition::custom(stringify!($sdk_crate))
            .token_bucket($sdk_crate::config::retry::TokenBucket::default())
            .build()
    };
}

/// `adjust(builder)`: lets [`aws_client!`](crate::aws_client)'s closure take its argument's type.
#[doc(hidden)]
pub fn adjusted<B>(builder: B, adjust: impl FnOnce(B) -> B) -> B {
    adjust(builder)
}
