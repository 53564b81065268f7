//! # sosw-worker
//!
//! Write a worker (a *labourer*) in Rust. sosw invokes it with a task: the task's payload
//! flattened with its fields (`task_id`, `labourer_id`, `greenfield`, `attempts`, ...). Wrap your
//! handler with [`run`]; when the event carries a `task_id`:
//! - on success the Worker Assistant is invoked (`InvocationType=Event`) with
//!   `{"action": "mark_task_as_completed", "task_id": ..., "stats": {...}, "result": {...}}` —
//!   exactly what Python sosw's `Worker` sends;
//! - on failure it is told `mark_task_as_failed`, and the handler's error is still returned to
//!   Lambda (so the invocation counts as failed).
//!
//! Events without `task_id` pass through untouched. Failing to reach the Worker Assistant is logged,
//! never fatal (as in Python): the task then expires and the scavenger retries it.
//!
//! The Worker Assistant's function name comes from `SOSW_WORKER_ASSISTANT_LAMBDA`
//! (Python config key `sosw_worker_assistant_lambda`), default `sosw_worker_assistant`.
//!
//! Deploy the worker's function with Lambda's asynchronous retries set to 0
//! (`AWS::Lambda::EventInvokeConfig` with `MaximumRetryAttempts: 0`, as
//! `cloudformation/sosw-example-worker.yaml` does). Because the handler's error is returned to
//! Lambda, Lambda's default of two retries would run a failed task up to three times per sosw
//! attempt, while sosw counts it as running and later retries it itself. `sosw status` warns for
//! a labourer whose function still has retries above 0.
//!
//! ```no_run
//! use sosw_worker::{run, Report};
//! use serde_json::{json, Value};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     run(|event: Value| async move {
//!         let rows = event["rows"].as_array().map(|r| r.len()).unwrap_or(0);
//!         Ok::<_, std::io::Error>(Report::default().stat("rows", rows).result("status", "ok"))
//!     })
//!     .await
//! }
//! ```

use futures::future::BoxFuture;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Map, Value};
use std::future::Future;
use tracing::{info, warn};

/// What a handler reports about its task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Stored as `stat_<key>` on the task.
    pub stats: Map<String, Value>,
    /// Stored as `result_<key>` on the task.
    pub result: Map<String, Value>,
    /// What the Lambda invocation returns.
    pub output: Value,
}

impl Report {
    /// Add a stat.
    pub fn stat(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.stats.insert(key.to_string(), value.into());
        self
    }
    /// Add a result.
    pub fn result(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.result.insert(key.to_string(), value.into());
        self
    }
    /// Set the invocation's output.
    pub fn output(mut self, value: impl Into<Value>) -> Self {
        self.output = value.into();
        self
    }
}

/// Where reports go (the Worker Assistant Lambda, or a recorder in tests).
pub trait Reporter: Send + Sync {
    /// Send one Worker Assistant event.
    fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>>;
}

/// Invokes the Worker Assistant Lambda asynchronously.
#[derive(Debug, Clone)]
pub struct LambdaReporter {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaReporter {
    /// Report to `function`.
    pub fn new(client: aws_sdk_lambda::Client, function: &str) -> Self {
        Self {
            client,
            function: function.to_string(),
        }
    }

    /// From the environment: AWS config, and `SOSW_WORKER_ASSISTANT_LAMBDA`.
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let function =
            std::env::var("SOSW_WORKER_ASSISTANT_LAMBDA").unwrap_or_else(|_| "sosw_worker_assistant".into());
        Self::new(aws_sdk_lambda::Client::new(&sdk), &function)
    }
}

impl Reporter for LambdaReporter {
    fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .invoke()
                .function_name(&self.function)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        })
    }
}

/// The Worker Assistant event for a task, as Python sosw's `Worker` builds it.
pub fn assistant_event(
    action: &str,
    task_id: &str,
    stats: &Map<String, Value>,
    result: &Map<String, Value>,
) -> Value {
    let mut event = json!({"action": action, "task_id": task_id});
    if !stats.is_empty() {
        event["stats"] = Value::Object(stats.clone());
    }
    if !result.is_empty() {
        event["result"] = Value::Object(result.clone());
    }
    event
}

/// Run `handler` on one event and report the task's outcome through `reporter`.
pub async fn process<F, Fut, E>(event: Value, handler: &F, reporter: &dyn Reporter) -> Result<Value, E>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Report, E>>,
    E: std::fmt::Display,
{
    let task_id = event.get("task_id").and_then(Value::as_str).map(str::to_string);
    let outcome = handler(event).await;
    let Some(task_id) = task_id else {
        return outcome.map(|r| r.output);
    };
    let report = match &outcome {
        Ok(r) => assistant_event("mark_task_as_completed", &task_id, &r.stats, &r.result),
        Err(e) => {
            let mut result = Map::new();
            result.insert("error".into(), Value::String(e.to_string()));
            assistant_event("mark_task_as_failed", &task_id, &Map::new(), &result)
        }
    };
    match reporter.send(report).await {
        Ok(()) => info!(task_id = %task_id, ok = outcome.is_ok(), "task reported to the Worker Assistant"),
        Err(e) => {
            warn!(task_id = %task_id, error = %e, "could not reach the Worker Assistant; the task will expire and be retried")
        }
    }
    outcome.map(|r| r.output)
}

/// Run a worker Lambda: tracing set up from the Lambda environment, the Worker Assistant reporter
/// built once, then `handler` for every event.
pub async fn run<F, Fut, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Report, E>> + Send,
    E: std::fmt::Display + Into<lambda_runtime::Error> + Send,
{
    lambda_runtime::tracing::init_default_subscriber();
    let reporter = LambdaReporter::from_env().await;
    let (handler, reporter) = (&handler, &reporter);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        process(event.payload, handler, reporter)
            .await
            .map_err(Into::into)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Value>>);
    impl Reporter for Recorder {
        fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>> {
            self.0.lock().unwrap().push(event);
            Box::pin(async { Ok(()) })
        }
    }

    async fn ok(event: Value) -> Result<Report, String> {
        Ok(Report::default()
            .stat("n", event["n"].clone())
            .result("done", true)
            .output(json!("fine")))
    }
    async fn fail(_: Value) -> Result<Report, String> {
        Err("boom".into())
    }
    async fn quiet(_: Value) -> Result<Report, String> {
        Ok(Report::default())
    }

    #[tokio::test]
    async fn success_marks_the_task_completed_with_stats_and_result() {
        let r = Recorder::default();
        let out = process(json!({"task_id": "t1", "n": 3}), &ok, &r).await.unwrap();
        assert_eq!(out, json!("fine"));
        assert_eq!(
            r.0.lock().unwrap()[0],
            json!({"action": "mark_task_as_completed", "task_id": "t1", "stats": {"n": 3}, "result": {"done": true}})
        );
    }

    #[tokio::test]
    async fn failure_marks_the_task_failed_and_still_returns_the_error() {
        let r = Recorder::default();
        let err = process(json!({"task_id": "t1"}), &fail, &r).await.unwrap_err();
        assert_eq!(err, "boom");
        assert_eq!(
            r.0.lock().unwrap()[0],
            json!({"action": "mark_task_as_failed", "task_id": "t1", "result": {"error": "boom"}})
        );
    }

    #[tokio::test]
    async fn events_without_task_id_pass_through_untouched() {
        let r = Recorder::default();
        assert_eq!(process(json!({"n": 1}), &ok, &r).await.unwrap(), json!("fine"));
        assert!(r.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn empty_stats_and_result_are_left_out_like_python() {
        let r = Recorder::default();
        process(json!({"task_id": "t"}), &quiet, &r).await.unwrap();
        assert_eq!(
            r.0.lock().unwrap()[0],
            json!({"action": "mark_task_as_completed", "task_id": "t"})
        );
    }
}
