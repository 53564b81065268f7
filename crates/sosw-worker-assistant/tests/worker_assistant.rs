//! The Worker Assistant against the local AWS: reports from our worker SDK and from a Python sosw
//! Worker land on the task as the original stores them; bad events write nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::testing::{repo_root, venv_bin, LocalAws};
use sosw_core::{MetaHandler, SystemClock, TaskConfig, TaskManager};
use sosw_worker::{process, Report, Reporter};
use sosw_worker_assistant::WorkerAssistant;
use std::sync::{Arc, Mutex};

async fn env() -> (LocalAws, TaskManager, WorkerAssistant) {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let tasks = TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        TaskConfig::from_user(&json!({"labourers": {"worker": {}}})).unwrap(),
        Arc::new(SystemClock),
    );
    let meta = Arc::new(MetaHandler::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        &MetaHandlerConfig::default(),
        Arc::new(SystemClock),
    ));
    let wa = WorkerAssistant::new(tasks.clone(), meta);
    (aws, tasks, wa)
}

async fn queued_task(tasks: &TaskManager) -> String {
    tasks
        .create_task(
            "worker",
            json!({"payload": {"x": 1}}).as_object().cloned().unwrap(),
            true,
        )
        .await
        .unwrap()["task_id"]
        .as_s()
        .unwrap()
        .clone()
}

#[derive(Default)]
struct Captured(Mutex<Vec<Value>>);
impl Reporter for Captured {
    fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>> {
        self.0.lock().unwrap().push(event);
        Box::pin(async { Ok(()) })
    }
}

async fn good_worker(event: Value) -> Result<Report, String> {
    Ok(Report::default()
        .stat("rows", 12)
        .stat("ratio", 0.5)
        .result("file", "s3://out/1.csv")
        .output(event["x"].clone()))
}

async fn bad_worker(_: Value) -> Result<Report, String> {
    Err("database unavailable".into())
}

#[tokio::test]
async fn sdk_worker_success_marks_the_task_completed_with_stats_and_results() {
    let (_aws, tasks, wa) = env().await;
    let id = queued_task(&tasks).await;
    let captured = Captured::default();
    process(json!({"task_id": id, "x": 1}), &good_worker, &captured)
        .await
        .unwrap();
    let event = captured.0.lock().unwrap()[0].clone();
    wa.handle(&event).await.unwrap();
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_some());
    assert_eq!(t.item["stat_rows"], AttributeValue::N("12".into()));
    assert_eq!(t.item["stat_ratio"], AttributeValue::N("0.5".into()));
    assert_eq!(t.item["result_file"], AttributeValue::S("s3://out/1.csv".into()));
}

#[tokio::test]
async fn sdk_worker_failure_marks_the_task_failed() {
    let (aws, tasks, wa) = env().await;
    let id = queued_task(&tasks).await;
    let captured = Captured::default();
    assert!(process(json!({"task_id": id}), &bad_worker, &captured)
        .await
        .is_err());
    let event = captured.0.lock().unwrap()[0].clone();
    wa.handle(&event).await.unwrap();
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert_eq!(t.item["failed_attempts"], AttributeValue::N("1".into()));
    assert_eq!(
        t.item["result_error"],
        AttributeValue::S("database unavailable".into())
    );
    assert!(t.completed_at.is_none());
    let meta = aws_sdk_dynamodb::Client::new(aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap();
    assert!(meta
        .items()
        .iter()
        .any(|m| m["action"] == AttributeValue::S("marked_as_failed".into())));
}

#[tokio::test]
async fn bad_events_are_refused_and_write_nothing() {
    let (aws, tasks, wa) = env().await;
    let id = queued_task(&tasks).await;
    let cases = [
        (json!({"task_id": id}), "missing required parameter `action`"),
        (
            json!({"action": "archive", "task_id": id}),
            "action `archive` is not supported",
        ),
        (json!({"action": "mark_task_as_completed"}), "`task_id`"),
        (
            json!({"action": "mark_task_as_completed", "task_id": 7}),
            "`task_id`",
        ),
        (
            json!({"action": "mark_task_as_completed", "task_id": id, "stats": "not json"}),
            "`stats` must be an object",
        ),
        (
            json!({"action": "mark_task_as_completed", "task_id": "ghost"}),
            "task `ghost` does not exist",
        ),
    ];
    for (event, needle) in cases {
        let err = wa.handle(&event).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{event}: {err}");
    }
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_none() && !t.item.contains_key("failed_attempts"));
    assert!(tasks.get_task("ghost").await.unwrap().is_none(), "no phantom row");
    let meta = aws_sdk_dynamodb::Client::new(aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap();
    assert_eq!(meta.count(), 0);
}

#[tokio::test]
async fn a_python_sosw_worker_completes_a_task_through_our_worker_assistant() {
    let (aws, tasks, wa) = env().await;
    let id = queued_task(&tasks).await;
    let (lambda_endpoint, seen) = sosw_core::testing::recording_lambda().await;
    let script = repo_root().join("crates/sosw-worker-assistant/tests/python/python_worker.py");
    let out = tokio::process::Command::new(venv_bin("python"))
        .arg(script)
        .arg(&id)
        .envs(aws.env())
        .env("AWS_ENDPOINT_URL_LAMBDA", &lambda_endpoint)
        .env("AWS_LAMBDA_FUNCTION_NAME", "python_example_worker")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python worker: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one call to the Worker Assistant");
    assert_eq!(
        calls[0].0,
        "/2015-03-31/functions/sosw_worker_assistant/invocations"
    );
    assert_eq!(
        calls[0].1.to_ascii_lowercase(),
        "event",
        "Python workers report asynchronously"
    );
    let event: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(event["action"], "mark_task_as_completed");
    wa.handle(&event).await.unwrap();
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_some());
    assert_eq!(t.item["stat_rows_processed"], AttributeValue::N("5".into()));
    assert_eq!(
        t.item["result_output_file"],
        AttributeValue::S("s3://bucket/out.csv".into())
    );
}
