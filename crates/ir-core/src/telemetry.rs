//! Logging set-up shared by every function: JSON lines (CloudWatch-friendly), level from
//! `RUST_LOG` (default `info`), no ANSI colours and no timestamps (Lambda adds them).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}
