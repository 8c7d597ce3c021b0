use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ir_core::telemetry::init();
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            ir_isolate_ec2::handle(event.payload).await
        },
    ))
    .await
}
