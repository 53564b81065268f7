//! Shared set-up for the moto-backed tests of sosw-core.
#![allow(dead_code)]

use serde_json::{json, Value};
use sosw_core::{ManualClock, TaskConfig, TaskManager};
use sosw_test_support::LocalAws;
use std::sync::Arc;

pub const T0: f64 = 1_750_000_000.0;

pub struct Env {
    pub aws: LocalAws,
    pub clock: ManualClock,
    pub tm: TaskManager,
}

pub async fn env_with(task_config: Value) -> Env {
    env_on(LocalAws::start().await, task_config).await
}

/// The default labourers on a local AWS whose writes are atomic, as DynamoDB's are (moto's
/// conditional writes are not under concurrent requests): for tests that prove exclusivity.
pub async fn atomic_env() -> Env {
    env_on(LocalAws::start_serialised().await, default_task_config()).await
}

async fn env_on(aws: LocalAws, task_config: Value) -> Env {
    aws.deploy_storage().await;
    let clock = ManualClock::at(T0);
    let tm = task_manager(&aws, &clock, task_config);
    Env { aws, clock, tm }
}

pub async fn env() -> Env {
    env_with(default_task_config()).await
}

fn default_task_config() -> Value {
    json!({"labourers": {"worker": {"max_duration": 600}, "other": {"max_duration": 600}}})
}

pub fn task_manager(aws: &LocalAws, clock: &ManualClock, task_config: Value) -> TaskManager {
    let cfg = TaskConfig::from_user(&task_config).expect("valid test config");
    TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg,
        Arc::new(clock.clone()),
    )
}

pub fn task(i: usize) -> serde_json::Map<String, Value> {
    json!({"payload": {"n": i}}).as_object().cloned().unwrap()
}
