//! The Orchestrator Lambda (EventBridge, every minute): wiring only (the runtime is `sosw_lambda`).

use serde_json::Value;
use sosw_core::meta::MetaContext;
use sosw_lambda::{EdgeError, ErrorKind};

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::start(
        "sosw_orchestrator",
        |sdk, function_name| async move {
            let (orchestrator, meta) = sosw_orchestrator::from_env(&sdk, &function_name, None).await?;
            Ok((orchestrator, meta, function_name))
        },
        |essential, _event: Value, invocation| async move {
            let (orchestrator, meta, function_name) = &*essential;
            meta.set_context(MetaContext::from_env(&invocation.request_id));
            let stats = orchestrator.run().await;
            let now = chrono::Utc::now().timestamp_millis();
            for line in sosw_orchestrator::emf_lines(function_name, &stats, now) {
                println!("{line}");
            }
            // A run that could process no labourer is an error: Lambda's Errors metric and alarms see it.
            if let Some(failure) = stats.failure() {
                return Err(EdgeError::new(ErrorKind::NoLabourerProcessed, failure));
            }
            Ok(serde_json::to_value(stats)?)
        },
    )
    .await
}
