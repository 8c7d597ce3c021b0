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
        ec2: aws_sdk_ec2::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(ir_core::aws::s3_force_path_style())
                .build(),
        ),
        cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
        share_starter: std::env::var("IR_STATE_MACHINE_ARN")
            .ok()
            .filter(|arn| !arn.trim().is_empty())
            .map(|state_machine_arn| ShareStarter {
                sfn: aws_sdk_sfn::Client::new(&sdk),
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
