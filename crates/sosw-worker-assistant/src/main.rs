//! The Worker Assistant Lambda: wiring only.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use sosw_core::meta::MetaContext;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sosw_core::aws::load_sdk_config().await;
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sosw_worker_assistant".into());
    let (assistant, meta) = sosw_worker_assistant::from_env(&sdk, &function_name).await?;
    let (assistant, meta) = (&assistant, &meta);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        meta.set_context(MetaContext::from_env(&event.context.request_id));
        Ok::<Value, Error>(assistant.handle(&event.payload).await?)
    }))
    .await
}
