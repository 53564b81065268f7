//! The Scheduler Lambda: wiring only. Behaviour lives in the library (`sosw_scheduler`), the runtime
//! in `sosw_lambda`.

use serde_json::Value;
use sosw_core::meta::MetaContext;
use sosw_scheduler::Deadline;

#[tokio::main]
async fn main() -> Result<(), sosw_lambda::BoxError> {
    sosw_lambda::start(
        "sosw_scheduler",
        |sdk, function_name| async move {
            let (scheduler, meta) = sosw_scheduler::from_env(&sdk, &function_name, None).await?;
            Ok((scheduler, meta, function_name))
        },
        |essential, event: Value, invocation| async move {
            let (scheduler, meta, function_name) = &*essential;
            meta.set_context(MetaContext::from_env(&invocation.request_id));
            let deadline = Deadline::from_context(invocation.deadline_ms);
            let stats = scheduler
                .handle(&event, &invocation.request_id, &deadline)
                .await?;
            let figures = [
                ("tasks_created", stats.tasks_created as f64),
                ("siblings_spawned", f64::from(u8::from(stats.sibling_spawned))),
            ];
            let now = chrono::Utc::now().timestamp_millis();
            println!("{}", sosw_core::emf::line(function_name, "all", &figures, now));
            Ok(serde_json::to_value(stats)?)
        },
    )
    .await
}
