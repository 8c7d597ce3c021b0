//! ir-notify: not implemented yet (tracked by issue 4).
//!
//! Until then every invocation fails with `errorType` `NotImplemented`, so the state machine's
//! Catch path reports it: this function never pretends to have acted.

use ir_core::NotImplemented;

pub const FUNCTION_NAME: &str = "ir-notify";

/// Refuses every event without touching AWS.
pub async fn handle(_event: serde_json::Value) -> Result<serde_json::Value, NotImplemented> {
    Err(NotImplemented {
        function: FUNCTION_NAME,
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn refuses_instead_of_pretending() {
        let err = super::handle(serde_json::json!({}))
            .await
            .expect_err("must refuse");
        let d: lambda_runtime::Diagnostic = err.into();
        assert_eq!(d.error_type, "NotImplemented");
    }
}
