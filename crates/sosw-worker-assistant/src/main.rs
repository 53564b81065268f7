//! The Worker Assistant Lambda: wiring only (the runtime is `sosw_lambda`).

use serde_json::Value;
use sosw_core::meta::MetaContext;

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::start(
        "sosw_worker_assistant",
        |sdk, function_name| async move { sosw_worker_assistant::from_env(&sdk, &function_name).await },
        |essential, event: Value, invocation| async move {
            let (assistant, meta) = &*essential;
            meta.set_context(MetaContext::from_env(&invocation.request_id));
            Ok(assistant.handle(&event).await?)
        },
    )
    .await
}
