//! Lambda entry point (function URL): wires configuration and clients, then hands every webhook
//! to [`ir_approve::Approver::handle`].

use ir_approve::{webhook, ApproveConfig, Approver, GateStore, WebhookRequest};
use lambda_http::{run, service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    let config = ApproveConfig::from_env()?;
    let sdk = ir_core::aws::load_sdk_config().await;
    let approver = Approver {
        store: GateStore::new(
            ir_core::aws_client!(aws_sdk_dynamodb, &sdk),
            config.table.clone(),
        ),
        // No SDK retries on the resume: a SendTask* retried after its answer was lost finds
        // the token gone, which would read as an expired gate. A failure answers 503 instead,
        // and Jira's retry of the delivery resumes (the claim stays that delivery's).
        sfn: ir_core::aws_client!(aws_sdk_sfn, &sdk, |b| b
            .retry_config(aws_sdk_sfn::config::retry::RetryConfig::disabled())),
        secrets: ir_core::secrets::SecretStore::new(
            ir_core::aws_client!(aws_sdk_secretsmanager, &sdk),
            ir_core::aws_client!(aws_sdk_ssm, &sdk),
        ),
        config,
    };
    let approver = &approver;
    run(service_fn(move |req: Request| async move {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let resp = approver
            .handle(WebhookRequest {
                signature: header(webhook::SIGNATURE_HEADER),
                delivery_id: header(webhook::DELIVERY_HEADER),
                retry: header(webhook::RETRY_HEADER),
                body: req.body().as_ref(),
            })
            .await;
        Response::builder()
            .status(resp.status)
            .header("content-type", "application/json")
            .body(Body::from(resp.body.to_string()))
            .map_err(Error::from)
    }))
    .await
}
