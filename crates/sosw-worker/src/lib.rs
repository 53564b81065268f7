//! # sosw-worker
//!
//! Write a sosw worker (a *labourer*) in Rust, in the style of `lambda_runtime`. sosw invokes a
//! worker with a task: the task's payload flattened with sosw's own fields (`task_id`,
//! `labourer_id`, `greenfield`, `attempts`, ...). [`SoswLayer`] wraps your handler:
//!
//! - it receives a [`Task<P>`]: the payload deserialised as your `P: serde::Deserialize` (sosw's
//!   fields taken out, in [`Task::sosw`]) and the Lambda [`Context`]
//!   (request id, deadline, function name);
//! - its [`Report`] (stats, result, output) is sent to the Worker Assistant with
//!   `mark_task_as_completed`: the same bytes Python sosw's `Worker` sends
//!   (`{"action": ..., "task_id": ..., "stats": {...}, "result": {...}}`, Python's `json.dumps`
//!   layout), invoked asynchronously (`InvocationType=Event`);
//! - its error is sent with `mark_task_as_failed` (`result.error` = the error and its causes) and
//!   still returned to Lambda, so the invocation counts as failed;
//! - a payload that does not deserialise marks the task failed with a message naming the field
//!   (``task t1: the payload does not fit `Order`: field `items[2].qty`: invalid type: ...``), and
//!   is returned to Lambda as the error; the handler does not run;
//! - with `SOSW_TASKS_META_TABLE` set (or [`SoswLayer::with_meta`]) a `completed` / `failed` row
//!   goes to that table after each report, as Python's `Worker` does with `meta_handler_config`.
//!
//! Events without a `task_id` (e.g. a test invocation) are handed over whole, and nothing is
//! reported. Failing to reach the Worker Assistant is logged, never fatal (as in Python): the
//! task then expires and the scavenger retries it.
//!
//! ```no_run
//! use lambda_runtime::{service_fn, Error};
//! use serde::Deserialize;
//! use sosw_worker::{Report, SoswLayer, Task};
//!
//! #[derive(Deserialize)]
//! struct Resize { bucket: String, keys: Vec<String> }
//!
//! async fn handler(task: Task<Resize>) -> Result<Report, Error> {
//!     let Resize { bucket, keys } = task.payload;
//!     tracing::info!(request_id = %task.context.request_id, %bucket, keys = keys.len(), "resizing");
//!     Ok(Report::default().stat("resized", keys.len()).result("bucket", bucket))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     lambda_runtime::tracing::init_default_subscriber();
//!     lambda_runtime::run(SoswLayer::from_env().await.layer(service_fn(handler))).await
//! }
//! ```
//!
//! Deploy the worker's function with Lambda's asynchronous retries set to 0
//! (`AWS::Lambda::EventInvokeConfig` with `MaximumRetryAttempts: 0`, as
//! `cloudformation/sosw-example-worker.yaml` does): sosw retries failed tasks itself. See
//! `docs/worker.md`.
//!
//! [`run`] and [`process`] keep the untyped entry point (`Fn(serde_json::Value)`) working.

mod meta;

/// docs/worker.md: its example worker is compiled by `cargo test --doc` (part of `scripts/test`),
/// so the guide cannot drift from the SDK.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/worker.md")]
pub struct WorkerGuide;

mod report;
mod service;
mod task;

pub use lambda_runtime::tower::Layer;
pub use meta::{MetaAction, MetaError, MetaWriter};
pub use report::{assistant_event, assistant_payload, LambdaReporter, Report, Reporter};
pub use service::{SoswLayer, SoswService, TypedSoswLayer, META_TABLE_ENV};
pub use task::{split_event, EventError, SoswFields, Task, SOSW_FIELDS};

use lambda_runtime::{service_fn, Context, LambdaEvent};
use serde_json::Value;
use std::future::Future;

/// An error and its causes, `outer: inner: ...` (a cause already in the text is not repeated).
pub(crate) fn render_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The untyped entry point: run `handler` on the whole event and report the task's outcome
/// through `reporter` (when the event has a `task_id`). The handler's error is returned as is.
pub async fn process<F, Fut, E>(event: Value, handler: &F, reporter: &dyn Reporter) -> Result<Value, E>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Report, E>>,
    E: std::fmt::Display,
{
    process_in(event, handler, reporter, None, &Context::default()).await
}

async fn process_in<F, Fut, E>(
    event: Value,
    handler: &F,
    reporter: &dyn Reporter,
    meta: Option<&MetaWriter>,
    context: &Context,
) -> Result<Value, E>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Report, E>>,
    E: std::fmt::Display,
{
    let task_id = task::task_id_of(&event).map(str::to_string);
    let outcome = handler(event).await;
    if let Some(task_id) = task_id {
        match &outcome {
            Ok(report) => service::settle(reporter, meta, &task_id, Ok(report), context).await,
            Err(e) => service::settle(reporter, meta, &task_id, Err(&e.to_string()), context).await,
        }
    }
    outcome.map(|r| r.output)
}

/// Run an untyped worker Lambda: tracing set up from the Lambda environment, the reporter (and
/// meta writer, with `SOSW_TASKS_META_TABLE`) built once, then `handler` for every whole event.
/// New workers should prefer [`SoswLayer`] and a typed [`Task`].
pub async fn run<F, Fut, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Report, E>> + Send,
    E: std::fmt::Display + Into<lambda_runtime::Error> + Send,
{
    lambda_runtime::tracing::init_default_subscriber();
    let sosw = SoswLayer::from_env().await;
    let (handler, sosw) = (&handler, &sosw);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (reporter, meta) = sosw.parts();
        process_in(event.payload, handler, reporter, meta, &event.context)
            .await
            .map_err(Into::into)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use serde_json::json;
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
    async fn untyped_success_marks_the_task_completed_with_stats_and_result() {
        let r = Recorder::default();
        let out = process(json!({"task_id": "t1", "n": 3}), &ok, &r).await.unwrap();
        assert_eq!(out, json!("fine"));
        assert_eq!(
            r.0.lock().unwrap()[0],
            json!({"action": "mark_task_as_completed", "task_id": "t1", "stats": {"n": 3}, "result": {"done": true}})
        );
    }

    #[tokio::test]
    async fn untyped_failure_marks_the_task_failed_and_still_returns_the_error() {
        let r = Recorder::default();
        let err = process(json!({"task_id": "t1"}), &fail, &r).await.unwrap_err();
        assert_eq!(err, "boom");
        assert_eq!(
            r.0.lock().unwrap()[0],
            json!({"action": "mark_task_as_failed", "task_id": "t1", "result": {"error": "boom"}})
        );
    }

    #[tokio::test]
    async fn untyped_events_without_task_id_pass_through_untouched() {
        let r = Recorder::default();
        assert_eq!(process(json!({"n": 1}), &ok, &r).await.unwrap(), json!("fine"));
        assert_eq!(
            process(json!({"task_id": ""}), &ok, &r).await.unwrap(),
            json!("fine")
        );
        assert!(r.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn empty_stats_and_result_are_left_out_like_python() {
        let r = Recorder::default();
        process(json!({"task_id": "t"}), &quiet, &r).await.unwrap();
        let event = r.0.lock().unwrap()[0].clone();
        assert_eq!(event, json!({"action": "mark_task_as_completed", "task_id": "t"}));
        assert_eq!(
            assistant_payload(&event),
            r#"{"action": "mark_task_as_completed", "task_id": "t"}"#
        );
    }
}
