//! The typed path end to end: a task created and claimed in the local AWS (moto), the event the
//! Orchestrator sends it, a `SoswLayer` worker reporting through the real Lambda client to a
//! recording endpoint, the recorded report handled by the Worker Assistant library; the task row
//! ends completed (or failed) with its stats and results, and the worker's meta rows are written
//! when configured. The report bytes and the meta rows are compared with Python sosw's `Worker`.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::tower::ServiceExt;
use lambda_runtime::{service_fn, Config, Context, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::{MetaHandler, SystemClock, TaskConfig, TaskManager};
use sosw_test_support::{
    recording_lambda, repo_root, sdk_config_for, venv_bin, LocalAws, RecordedInvocations, RecordingLambda,
};
use sosw_worker::{LambdaReporter, MetaWriter, Report, SoswLayer, Task};
use sosw_worker_assistant::WorkerAssistant;
use std::collections::HashMap;
use std::sync::Arc;

const LABOURER: &str = "orders_worker";

struct Env {
    aws: LocalAws,
    tasks: TaskManager,
    wa: WorkerAssistant,
    recorded: RecordedInvocations,
    layer: SoswLayer,
    /// The Worker Assistant's (recording) endpoint: it serves while this lives.
    _assistant: RecordingLambda,
}

async fn env(with_meta: bool) -> Env {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let ddb = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        ddb.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        TaskConfig::from_user(&json!({"labourers": {LABOURER: {}}})).unwrap(),
        Arc::new(SystemClock),
    );
    let meta = Arc::new(MetaHandler::new(
        ddb.clone(),
        &MetaHandlerConfig::default(),
        Arc::new(SystemClock),
    ));
    let wa = WorkerAssistant::new(tasks.clone(), meta);
    let assistant = recording_lambda();
    let recorded = assistant.seen.clone();
    let lambda = aws_sdk_lambda::Client::new(&sdk_config_for(&assistant.url).await);
    let mut layer = SoswLayer::new(LambdaReporter::new(lambda, "sosw_worker_assistant"));
    if with_meta {
        layer = layer.with_meta(MetaWriter::new(ddb, "sosw_tasks_meta"));
    }
    Env {
        aws,
        tasks,
        wa,
        recorded,
        layer,
        _assistant: assistant,
    }
}

impl Env {
    /// A task the Orchestrator has claimed, and the event it sends the worker.
    async fn invoked_task(&self, payload: Value) -> (String, Value) {
        let id = self
            .tasks
            .create_task(
                LABOURER,
                json!({ "payload": payload }).as_object().cloned().unwrap(),
                true,
            )
            .await
            .unwrap()["task_id"]
            .as_s()
            .unwrap()
            .clone();
        let labourer = self.tasks.register_labourer(LABOURER).unwrap();
        let task = self.tasks.get_task(&id).await.unwrap().unwrap();
        assert_eq!(
            self.tasks.claim(&labourer, &task).await.unwrap(),
            sosw_core::ClaimOutcome::Claimed
        );
        let task = self.tasks.get_task(&id).await.unwrap().unwrap();
        let event = serde_json::from_str(&self.tasks.invocation_payload(&task).unwrap()).unwrap();
        (id, event)
    }

    /// The reports that reached the (recording) Worker Assistant endpoint, as sent.
    fn reports(&self) -> Vec<String> {
        let calls = self.recorded.lock().unwrap().clone();
        for (path, invocation_type, _) in &calls {
            assert_eq!(path, "/2015-03-31/functions/sosw_worker_assistant/invocations");
            assert_eq!(invocation_type.to_ascii_lowercase(), "event");
        }
        calls.into_iter().map(|(_, _, body)| body).collect()
    }

    /// Hand the last report to the Worker Assistant, as Lambda would.
    async fn deliver_last_report(&self) {
        let body = self.reports().pop().expect("a report was sent");
        self.wa
            .handle(&serde_json::from_str(&body).unwrap())
            .await
            .unwrap();
    }

    async fn meta_rows(&self, task_id: &str, action: &str) -> Vec<HashMap<String, AttributeValue>> {
        meta_rows(&self.aws, task_id, action).await
    }

    /// Python sosw's Worker reporting `task_id` with these stats and result: the bytes it sent.
    async fn python_report(&self, task_id: &str, outcome: &str, stats: &Value, result: &Value) -> String {
        let assistant = recording_lambda();
        let (endpoint, recorded) = (&assistant.url, &assistant.seen);
        let out = tokio::process::Command::new(venv_bin("python"))
            .arg(repo_root().join("crates/sosw-worker/tests/python/python_worker.py"))
            .args([
                task_id,
                outcome,
                &stats.to_string(),
                &result.to_string(),
                "sosw_tasks_meta",
            ])
            .envs(self.aws.env())
            .env("AWS_ENDPOINT_URL_LAMBDA", endpoint)
            .env("AWS_LAMBDA_FUNCTION_NAME", "python_example_worker")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "python worker: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = recorded.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "Python's Worker reports once");
        calls[0].2.clone()
    }
}

async fn meta_rows(aws: &LocalAws, task_id: &str, action: &str) -> Vec<HashMap<String, AttributeValue>> {
    aws_sdk_dynamodb::Client::new(aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|m| {
            m["task_id"] == AttributeValue::S(task_id.into())
                && m["action"] == AttributeValue::S(action.into())
        })
        .cloned()
        .collect()
}

/// Attribute names and types of a meta row (values differ between runs).
fn shape(row: &HashMap<String, AttributeValue>) -> Vec<(String, &'static str)> {
    let mut s: Vec<_> = row
        .iter()
        .map(|(k, v)| {
            let t = match v {
                AttributeValue::S(_) => "S",
                AttributeValue::N(_) => "N",
                _ => "other",
            };
            (k.clone(), t)
        })
        .collect();
    s.sort();
    s
}

fn context() -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "rust-request-1".into();
    ctx.env_config = Arc::new(Config {
        function_name: LABOURER.into(),
        log_stream: "2026/11/24/[$LATEST]0123".into(),
        ..Config::default()
    });
    ctx
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    customer: String,
    items: Vec<Line>,
}

#[derive(Deserialize)]
struct Line {
    qty: u32,
    price: f64,
}

async fn price(task: Task<Order>) -> Result<Report, lambda_runtime::Error> {
    if task.payload.customer == "bankrupt" {
        return Err(format!("customer {} cannot pay", task.payload.customer).into());
    }
    let total: f64 = task
        .payload
        .items
        .iter()
        .map(|l| f64::from(l.qty) * l.price)
        .sum();
    Ok(Report::default()
        .stat("lines", task.payload.items.len())
        .stat("total", total)
        .result("customer", task.payload.customer)
        .result("note", "café ☕ paid")
        .output(json!({"total": total})))
}

fn order(customer: &str) -> Value {
    json!({"customer": customer, "items": [{"qty": 2, "price": 1.25}, {"qty": 1, "price": 0.5}]})
}

#[tokio::test]
async fn a_typed_task_ends_completed_with_its_stats_results_and_meta_row_as_python_writes_them() {
    let e = env(true).await;
    let (id, event) = e.invoked_task(order("acme")).await;
    let out = e
        .layer
        .layer(service_fn(price))
        .oneshot(LambdaEvent::new(event, context()))
        .await
        .unwrap();
    assert_eq!(out, json!({"total": 3.0}));
    e.deliver_last_report().await;

    let t = e.tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_some(), "completed: {:?}", t.item);
    assert_eq!(t.item["stat_lines"], AttributeValue::N("2".into()));
    assert_eq!(t.item["stat_total"], AttributeValue::N("3.0".into()));
    assert_eq!(t.item["result_customer"], AttributeValue::S("acme".into()));
    assert_eq!(t.item["result_note"], AttributeValue::S("café ☕ paid".into()));

    let ours = e.meta_rows(&id, "completed").await;
    assert_eq!(ours.len(), 1, "one `completed` row");
    assert_eq!(ours[0]["author"], AttributeValue::S(LABOURER.into()));
    assert_eq!(
        ours[0]["invocation_id"],
        AttributeValue::S("rust-request-1".into())
    );
    assert_eq!(
        ours[0]["log_stream_name"],
        AttributeValue::S("2026/11/24/[$LATEST]0123".into())
    );

    // Python's Worker, reporting the same stats and result for the same task id, sends the same
    // bytes, and writes a meta row of the same shape.
    let report = e.reports().pop().unwrap();
    let sent: Value = serde_json::from_str(&report).unwrap();
    let python = e
        .python_report(&id, "completed", &sent["stats"], &sent["result"])
        .await;
    assert_eq!(report, python);
    assert!(report.contains(r#""note": "caf\u00e9 \u2615 paid""#), "{report}");
    let theirs = e.meta_rows(&id, "completed").await;
    let theirs: Vec<_> = theirs
        .iter()
        .filter(|r| r["author"] != ours[0]["author"])
        .collect();
    assert_eq!(theirs.len(), 1, "Python wrote its row");
    assert_eq!(shape(theirs[0]), shape(&ours[0]));
}

#[tokio::test]
async fn a_handler_error_ends_the_task_failed_with_the_error_and_a_failed_meta_row() {
    let e = env(true).await;
    let (id, event) = e.invoked_task(order("bankrupt")).await;
    let err = e
        .layer
        .layer(service_fn(price))
        .oneshot(LambdaEvent::new(event, context()))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "customer bankrupt cannot pay");
    e.deliver_last_report().await;
    let t = e.tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_none());
    assert_eq!(t.item["failed_attempts"], AttributeValue::N("1".into()));
    assert_eq!(
        t.item["result_error"],
        AttributeValue::S("customer bankrupt cannot pay".into())
    );
    assert_eq!(e.meta_rows(&id, "failed").await.len(), 1);
    assert!(e.meta_rows(&id, "completed").await.is_empty());
    // Python's Worker.mark_task_as_failed with the same result sends the same bytes.
    let report = e.reports().pop().unwrap();
    let python = e
        .python_report(
            &id,
            "failed",
            &json!({}),
            &json!({"error": "customer bankrupt cannot pay"}),
        )
        .await;
    assert_eq!(report, python);
}

#[tokio::test]
async fn a_payload_that_does_not_fit_ends_the_task_failed_naming_the_field() {
    let e = env(true).await;
    let (id, event) = e
        .invoked_task(json!({"customer": "acme", "items": [{"qty": 2, "price": "cheap"}]}))
        .await;
    let err = e
        .layer
        .layer(service_fn(price))
        .oneshot(LambdaEvent::new(event, context()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("field `items[0].price`"), "{err}");
    e.deliver_last_report().await;
    let t = e.tasks.get_task(&id).await.unwrap().unwrap();
    assert_eq!(t.item["failed_attempts"], AttributeValue::N("1".into()));
    let AttributeValue::S(error) = &t.item["result_error"] else {
        panic!("result_error is a string: {:?}", t.item)
    };
    assert!(
        error.starts_with(&format!("task {id}: the payload does not fit `"))
            && error.contains("Order`: field `items[0].price`: invalid type: string \"cheap\", expected f64"),
        "{error}"
    );
    assert_eq!(e.meta_rows(&id, "failed").await.len(), 1);
}

#[tokio::test]
async fn without_a_meta_table_no_worker_meta_row_is_written() {
    let e = env(false).await;
    let (id, event) = e.invoked_task(order("acme")).await;
    e.layer
        .layer(service_fn(price))
        .oneshot(LambdaEvent::new(event, context()))
        .await
        .unwrap();
    e.deliver_last_report().await;
    assert!(e
        .tasks
        .get_task(&id)
        .await
        .unwrap()
        .unwrap()
        .completed_at
        .is_some());
    assert!(e.meta_rows(&id, "completed").await.is_empty());
}
