//! Lambda entry point: wires configuration and clients, then hands every request to
//! [`ir_quarantine_iam::Quarantiner::handle`].

use ir_core::actions::ContainmentRequest;
use ir_quarantine_iam::{QuarantineConfig, Quarantiner};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    let config = QuarantineConfig::from_env()?;
    let policy = ir_core::LoadedPolicy::from_env()?;
    let sdk = ir_core::aws::load_sdk_config().await;
    let quarantiner = Quarantiner {
        iam: ir_core::aws_client!(aws_sdk_iam, &sdk),
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
    let (quarantiner, reach) = (&quarantiner, &reach);
    run(service_fn(
        move |event: LambdaEvent<ContainmentRequest>| async move {
            quarantiner
                .handle_where_it_lives(reach, event.payload)
                .await
        },
    ))
    .await
}
