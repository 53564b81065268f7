//! The Scheduler Lambda: wiring only. Behaviour lives in the library (`sosw_scheduler`).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use sosw_core::meta::MetaContext;
use sosw_scheduler::Deadline;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sosw_core::aws::load_sdk_config().await;
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sosw_scheduler".into());
    let (scheduler, meta) = sosw_scheduler::from_env(&sdk, &function_name, None).await?;
    let (scheduler, meta) = (&scheduler, &meta);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        meta.set_context(MetaContext::from_env(&event.context.request_id));
        let stats = scheduler
            .handle(
                &event.payload,
                &event.context.request_id,
                &Deadline::from_context(event.context.deadline),
            )
            .await?;
        println!(
            "{}",
            sosw_core::emf::line(
                &std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sosw_scheduler".into()),
                "all",
                &[
                    ("tasks_created", stats.tasks_created as f64),
                    ("siblings_spawned", f64::from(u8::from(stats.sibling_spawned)))
                ],
                chrono::Utc::now().timestamp_millis(),
            )
        );
        Ok::<Value, Error>(serde_json::to_value(stats)?)
    }))
    .await
}
