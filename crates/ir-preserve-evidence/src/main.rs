//! Lambda entry point: wires configuration and clients, then hands every request to
//! [`ir_preserve_evidence::Preserver::handle_request`].

use ir_preserve_evidence::{EvidenceConfig, Preserver, ShareStarter};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    let config = EvidenceConfig::from_env()?;
    let sdk = ir_core::aws::load_sdk_config().await;
    let preserver = Preserver {
        ec2: ir_core::aws_client!(aws_sdk_ec2, &sdk),
        iam: ir_core::aws_client!(aws_sdk_iam, &sdk),
        s3: ir_core::aws_client!(aws_sdk_s3, &sdk, |b| b
            .force_path_style(ir_core::aws::s3_force_path_style())),
        cloudtrail: ir_core::aws_client!(aws_sdk_cloudtrail, &sdk),
        share_starter: std::env::var("IR_STATE_MACHINE_ARN")
            .ok()
            .filter(|arn| !arn.trim().is_empty())
            .map(|state_machine_arn| ShareStarter {
                sfn: ir_core::aws_client!(aws_sdk_sfn, &sdk),
                state_machine_arn,
            }),
        config,
    };
    let reach = ir_core::member::Reach::from_env(sdk).await?;
    let (preserver, reach) = (&preserver, &reach);
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            preserver.handle_request(reach, event.payload).await
        },
    ))
    .await
}
