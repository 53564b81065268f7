//! The Orchestrator Lambda (EventBridge, every minute): wiring only.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use sosw_core::meta::MetaContext;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sosw_core::aws::load_sdk_config().await;
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sosw_orchestrator".into());
    let (orchestrator, meta) = sosw_orchestrator::from_env(&sdk, &function_name, None).await?;
    let (orchestrator, meta, function_name) = (&orchestrator, &meta, &function_name);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        meta.set_context(MetaContext::from_env(&event.context.request_id));
        let stats = orchestrator.run().await;
        for line in sosw_orchestrator::emf_lines(function_name, &stats, chrono::Utc::now().timestamp_millis())
        {
            println!("{line}");
        }
        // A run that could process no labourer is an error: Lambda's Errors metric and alarms see it.
        if let Some(failure) = stats.failure() {
            return Err(Error::from(failure));
        }
        Ok::<Value, Error>(serde_json::to_value(stats)?)
    }))
    .await
}
