//! Lambda entry point: wires configuration and clients, then hands every request to
//! [`ir_notify::Notifier::handle`].

use ir_notify::{http_client, Notifier, NotifyConfig, NotifyRequest};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    let config = NotifyConfig::from_env()?;
    config.require_a_channel()?;
    let sdk = ir_core::aws::load_sdk_config().await;
    let notifier = Notifier {
        http: http_client(config.http_timeout)?,
        sns: ir_core::aws_client!(aws_sdk_sns, &sdk),
        secrets: ir_core::secrets::SecretStore::new(
            ir_core::aws_client!(aws_sdk_secretsmanager, &sdk),
            ir_core::aws_client!(aws_sdk_ssm, &sdk),
        ),
        gate: config.approvals_table.clone().map(|t| {
            ir_core::gate::GateStore::new(ir_core::aws_client!(aws_sdk_dynamodb, &sdk), t)
        }),
        securityhub: config
            .securityhub_update
            .then(|| ir_core::aws_client!(aws_sdk_securityhub, &sdk)),
        config,
    };
    let notifier = &notifier;
    run(service_fn(move |event: LambdaEvent<NotifyRequest>| async move {
        notifier.handle(event.payload).await
    }))
    .await
}
