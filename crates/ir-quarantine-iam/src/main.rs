use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            ir_quarantine_iam::handle(event.payload).await
        },
    ))
    .await
}
