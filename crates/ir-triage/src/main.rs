//! Lambda entry point: wires configuration and clients, then hands every event to
//! [`ir_triage::Triage::handle`].

use ir_triage::{Triage, TriageConfig, TriageError};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    let config = TriageConfig::from_env()?;
    let policy = ir_core::LoadedPolicy::from_env()?;
    tracing::info!(policy = %policy.origin, sha256 = %policy.sha256, "policy loaded");
    let sdk = ir_core::aws::load_sdk_config().await;
    let triage = Triage::new(
        &config,
        policy,
        ir_core::aws_client!(aws_sdk_ssm, &sdk),
        ir_core::aws_client!(aws_sdk_dynamodb, &sdk),
    )
    .with_fan_out(&config, ir_core::aws_client!(aws_sdk_sfn, &sdk))
    .with_organizations(ir_core::aws_client!(aws_sdk_organizations, &sdk));
    let triage = &triage;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let out = triage.handle(event.payload).await?;
            Ok::<_, TriageError>(out)
        },
    ))
    .await
}
