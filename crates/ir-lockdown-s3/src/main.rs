//! Lambda entry point: wires configuration and clients, then hands every request to
//! [`ir_lockdown_s3::LockdownS3::handle`].

use ir_core::actions::ContainmentRequest;
use ir_lockdown_s3::{LockdownConfig, LockdownS3};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    let config = LockdownConfig::from_env()?;
    let policy = ir_core::LoadedPolicy::from_env()?;
    let sdk = ir_core::aws::load_sdk_config().await;
    let s3 = ir_core::aws_client!(aws_sdk_s3, &sdk, |b| b
        .force_path_style(ir_core::aws::s3_force_path_style()));
    let lockdown = LockdownS3 {
        s3,
        safety: ir_core::actions::Safety::from_env(
            ir_core::aws_client!(aws_sdk_ssm, &sdk),
            policy.policy.protected_tags,
        )?,
        pre_state: ir_core::prestate::PreStateStore::from_env(ir_core::aws_client!(
            aws_sdk_dynamodb,
            &sdk
        ))?,
        config,
    };
    let reach = ir_core::member::Reach::from_env(sdk).await?;
    let (lockdown, reach) = (&lockdown, &reach);
    run(service_fn(
        move |event: LambdaEvent<ContainmentRequest>| async move {
            lockdown.handle_where_it_lives(reach, event.payload).await
        },
    ))
    .await
}
