//! The Scheduler Lambda: wiring only. Behaviour lives in the library (`sosw_scheduler`).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use sosw_core::aws::{load_sdk_config, Clients};
use sosw_core::config_source::ConfigSource;
use sosw_core::invoker::LambdaInvoker;
use sosw_core::meta::MetaContext;
use sosw_core::{MetaHandler, SystemClock, TaskManager};
use sosw_scheduler::{provisioned_write_capacity, Deadline, Scheduler, SchedulerConfig};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = load_sdk_config().await;
    let clients = Clients::new(&sdk);
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sosw_scheduler".into());
    let document: Value = ConfigSource::from_env(&sdk)?
        .load_essential(&function_name, SchedulerConfig::defaults(), None)
        .await?;
    let config = SchedulerConfig::from_document(document)?;
    let clock = Arc::new(SystemClock);
    let capacity = provisioned_write_capacity(&clients.dynamodb, &config.task_config.dynamo_db_config.table_name).await?;
    let meta = Arc::new(MetaHandler::new(clients.dynamodb.clone(), &config.meta_handler_config, clock.clone()));
    let tasks = TaskManager::new(clients.dynamodb.clone(), clients.lambda.clone(), config.task_config.clone(), clock);
    let scheduler = Scheduler::new(
        tasks,
        clients.s3.clone(),
        meta.clone(),
        Arc::new(LambdaInvoker(clients.lambda.clone())),
        config,
        &function_name,
        capacity,
    );
    let scheduler = &scheduler;
    let meta = &meta;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        meta.set_context(MetaContext::from_env(&event.context.request_id));
        let stats = scheduler
            .handle(&event.payload, &event.context.request_id, &Deadline::from_context(event.context.deadline))
            .await?;
        Ok::<Value, Error>(serde_json::to_value(stats)?)
    }))
    .await
}
