//! The Worker Assistant against the local AWS: reports from our worker SDK and from a Python sosw
//! Worker land on the task as the original stores them; bad events write nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::{MetaHandler, SystemClock, TaskConfig, TaskManager};
use sosw_test_support::{repo_root, venv_bin, LocalAws};
use sosw_worker::{process, Report, Reporter};
use sosw_worker_assistant::WorkerAssistant;
use std::sync::{Arc, Mutex};

async fn env() -> (LocalAws, TaskManager, WorkerAssistant) {
    env_on(LocalAws::start().await).await
}

async fn env_on(aws: LocalAws) -> (LocalAws, TaskManager, WorkerAssistant) {
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

/// Claim the task as an orchestrator does (the run in flight).
async fn claim(tasks: &TaskManager, id: &str) {
    let l = tasks.register_labourer("worker").unwrap();
    let t = tasks.get_task(id).await.unwrap().unwrap();
    assert_eq!(
        tasks.claim(&l, &t).await.unwrap(),
        sosw_core::ClaimOutcome::Claimed
    );
}

/// A task a worker is running.
async fn invoked_task(tasks: &TaskManager) -> String {
    let id = queued_task(tasks).await;
    claim(tasks, &id).await;
    id
}

async fn meta_rows(aws: &LocalAws, id: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    aws_sdk_dynamodb::Client::new(aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|m| m["task_id"] == AttributeValue::S(id.into()))
        .cloned()
        .collect()
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
    let id = invoked_task(&tasks).await;
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
    let id = invoked_task(&tasks).await;
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
    // The report's meta event is pending on the task (the Scavenger writes it when it moves the
    // task), not yet a row of the meta table.
    let AttributeValue::L(pending) = &t.item["sosw_meta_pending"] else {
        panic!("no pending events: {:?}", t.item)
    };
    assert_eq!(pending.len(), 1);
    let event = pending[0].as_m().unwrap();
    assert_eq!(event["action"], AttributeValue::S("marked_as_failed".into()));
    assert_eq!(event["task_id"], AttributeValue::S(id.clone()));
    assert!(event.contains_key("created_at") && event.contains_key("invocation_id"));
    assert!(meta_rows(&aws, &id).await.is_empty());
}

#[tokio::test]
async fn a_report_costs_one_request_its_meta_event_rides_on_the_task_write() {
    let (aws, tasks, wa) = env_on(LocalAws::start_counted().await).await;
    let id = invoked_task(&tasks).await;
    aws.reset_counts();
    let failed = wa
        .handle_report(&json!({"action": "mark_task_as_failed", "task_id": id}))
        .await
        .unwrap();
    let completed = wa
        .handle_report(&json!({"action": "mark_task_as_completed", "task_id": id, "stats": {"n": 1}}))
        .await
        .unwrap();
    // The same write tells the task's labourer (ReturnValues ALL_OLD: no request, no capacity of
    // its own), so the Worker Assistant's metrics are per labourer.
    assert_eq!(failed.labourer_id.as_deref(), Some("worker"));
    assert_eq!(completed.labourer_id.as_deref(), Some("worker"));
    assert_eq!(
        completed.response,
        json!({"task_id": id, "action": "mark_task_as_completed"})
    );
    let line: serde_json::Value = serde_json::from_str(&sosw_worker_assistant::emf_line(
        "sosw_worker_assistant",
        completed.labourer_id.as_deref(),
        true,
        1,
    ))
    .unwrap();
    assert_eq!(
        (&line["labourer_id"], &line["reports_accepted"]),
        (&json!("worker"), &json!(1.0))
    );
    let counts = aws.counts();
    assert_eq!(counts.requests, 2, "one request per report: {:?}", counts.by_op);
    assert_eq!(
        counts.by_op.get("dynamodb.UpdateItem"),
        Some(&2),
        "{:?}",
        counts.by_op
    );
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    let actions: Vec<_> = t.item["sosw_meta_pending"]
        .as_l()
        .unwrap()
        .iter()
        .map(|e| e.as_m().unwrap()["action"].as_s().unwrap().clone())
        .collect();
    assert_eq!(actions, ["marked_as_failed", "marked_as_completed"], "in order");
    // A refused report (the task is completed now) keeps its own meta write.
    let late = wa
        .handle(&json!({"action": "mark_task_as_completed", "task_id": id}))
        .await;
    assert!(late.is_err());
    let rows = meta_rows(&aws, &id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["action"], AttributeValue::S("report_refused".into()));
}

#[tokio::test]
async fn bad_events_are_refused_and_write_nothing() {
    let (aws, tasks, wa) = env().await;
    let id = invoked_task(&tasks).await;
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
            "for task `ghost` refused: the task is not in the queue nor the archive",
        ),
    ];
    for (event, needle) in cases {
        let err = wa.handle(&event).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{event}: {err}");
    }
    // What Lambda reports for the unknown task: `ReportRefused` (an id waiting in the retry table
    // looks the same without the labourer), with the task's id and where it was not found.
    let unknown = wa
        .handle(&json!({"action": "mark_task_as_failed", "task_id": "ghost"}))
        .await
        .unwrap_err();
    let d = lambda_runtime::Diagnostic::from(sosw_lambda::EdgeError::from(unknown));
    assert_eq!(d.error_type, "ReportRefused");
    assert!(
        d.error_message.contains("`ghost`") && d.error_message.contains("retrying or unknown"),
        "{}",
        d.error_message
    );
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_none() && !t.item.contains_key("failed_attempts"));
    assert!(tasks.get_task("ghost").await.unwrap().is_none(), "no phantom row");
    assert!(
        meta_rows(&aws, &id).await.is_empty(),
        "invalid events leave no history"
    );
    let ghost = meta_rows(&aws, "ghost").await;
    assert_eq!(ghost.len(), 2, "both refused reports are in the history");
    assert_eq!(ghost[0]["action"], AttributeValue::S("report_refused".into()));
}

#[tokio::test]
async fn a_late_report_for_a_task_queued_again_writes_nothing_and_is_recorded() {
    let (aws, tasks, wa) = env().await;
    let id = invoked_task(&tasks).await;
    // The first run expires: the scavenger moves the task to the retry table, then back to the queue.
    let running = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(tasks.move_to_retry(&running, 0).await.unwrap());
    let retrying = tasks.get_retrying("worker", &id).await.unwrap().unwrap();
    let completed = json!({"action": "mark_task_as_completed", "task_id": id});
    let failed = json!({"action": "mark_task_as_failed", "task_id": id});
    let err = wa.handle(&completed).await.unwrap_err();
    assert!(err.to_string().contains("retrying or unknown"), "{err}");
    assert!(tasks.return_to_queue(&retrying, 500).await.unwrap());
    let queued = tasks.get_task(&id).await.unwrap().unwrap();

    // The first run's late reports arrive while the task is queued again.
    for event in [&completed, &failed] {
        let err = wa.handle(event).await.unwrap_err();
        assert!(
            matches!(
                err,
                sosw_worker_assistant::WorkerAssistantError::Task(sosw_core::TaskError::ReportRefused {
                    state: sosw_core::TaskWhereabouts::Queued,
                    ..
                })
            ),
            "{err}"
        );
    }
    assert_eq!(
        tasks.get_task(&id).await.unwrap().unwrap(),
        queued,
        "nothing written to the queued task"
    );

    // The second run completes; a late report of the first run after that is refused too.
    claim(&tasks, &id).await;
    wa.handle(&completed).await.unwrap();
    let done = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(wa.handle(&failed).await.is_err());
    assert_eq!(tasks.get_task(&id).await.unwrap().unwrap(), done);
    // Once archived, reports are refused as archived.
    assert!(tasks.archive(&done).await.unwrap());
    let err = wa.handle(&completed).await.unwrap_err().to_string();
    assert!(err.contains("archived"), "{err}");

    // Every refusal is in the task's history, with the state it met.
    let states: Vec<String> = meta_rows(&aws, &id)
        .await
        .iter()
        .filter(|m| m["action"] == AttributeValue::S("report_refused".into()))
        .map(|m| m["task_state"].as_s().unwrap().clone())
        .collect();
    assert_eq!(states.len(), 5, "{states:?}");
    for state in ["queued", "already completed", "archived", "retrying or unknown"] {
        assert!(states.iter().any(|s| s.contains(state)), "{state} in {states:?}");
    }
}

#[tokio::test]
async fn a_python_sosw_worker_completes_a_task_through_our_worker_assistant() {
    let (aws, tasks, wa) = env().await;
    let id = invoked_task(&tasks).await;
    let lambda = sosw_test_support::recording_lambda();
    let (lambda_endpoint, seen) = (lambda.url.clone(), lambda.seen.clone());
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

#[tokio::test]
async fn start_up_refuses_timing_config_that_could_double_run_naming_the_key() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    sosw_test_support::config_cases::assert_start_up_refuses_double_run_configs(
        &aws,
        "sosw_worker_assistant",
        || sosw_worker_assistant::from_env(aws.sdk_config(), "sosw_worker_assistant", Arc::new(SystemClock)),
    )
    .await;
}
