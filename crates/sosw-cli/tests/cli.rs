//! The operator commands against the local AWS, through the real `sosw` binary.

use serde_json::{json, Value};
use sosw_core::testing::LocalAws;
use sosw_core::{SystemClock, TaskConfig, TaskManager};
use std::process::{Command, Output};
use std::sync::Arc;

fn sosw(aws: &LocalAws, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sosw"))
        .args(args)
        .envs(aws.env())
        .output()
        .expect("run sosw")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "sosw failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "sosw should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stderr.clone()).unwrap()
}

const ESSENTIAL: &str = r#"{"task_config": {"labourers": {"worker": {"max_simultaneous_invocations": 4, "max_duration": 60}}},
 "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}}"#;

async fn deployed() -> (LocalAws, TaskManager, String) {
    let aws = LocalAws::start().await;
    let outputs = aws.deploy_storage().await;
    let bucket = outputs
        .iter()
        .find(|(k, _)| k == "QueueBucketName")
        .unwrap()
        .1
        .clone();
    let essential: Value = serde_json::from_str(ESSENTIAL).unwrap();
    // As in Python sosw, an essential's defaults override `sosw_essential_config`, so settings
    // that have a default (queue_bucket) go in the essential's own document.
    aws.put_config("sosw_essential_config", &essential).await;
    aws.put_config("sosw_scheduler_config", &json!({"queue_bucket": bucket}))
        .await;
    let cfg = TaskConfig::from_user(&essential["task_config"]).unwrap();
    let tm = TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg,
        Arc::new(SystemClock),
    );
    (aws, tm, bucket)
}

fn task(i: usize) -> serde_json::Map<String, Value> {
    json!({"payload": {"i": i}}).as_object().cloned().unwrap()
}

#[tokio::test]
async fn status_counts_tasks_per_state_and_what_would_be_invoked() {
    let (aws, tm, _) = deployed().await;
    tm.create_tasks("worker", (0..6).map(task).collect(), true)
        .await
        .unwrap();
    let l = tm.register_labourer("worker").unwrap();
    for t in tm.next_tasks(&l, 3).await.unwrap() {
        tm.claim(&l, &t).await.unwrap();
    }
    let out = stdout(&sosw(&aws, &["status", "--json"]));
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["labourer_id"], "worker");
    assert_eq!(rows[0]["queued"], 3);
    assert_eq!(rows[0]["running"], 3);
    assert_eq!(rows[0]["health"], 4);
    assert_eq!(rows[0]["would_invoke"], 1, "max 4 at health 4, 3 running");
    let table = stdout(&sosw(&aws, &["status"]));
    assert!(table.starts_with("LABOURER"), "{table}");
    assert!(table.contains("worker"));
}

#[tokio::test]
async fn status_without_tables_names_the_problem_and_the_fix() {
    let aws = LocalAws::start().await;
    let err = stderr(&sosw(&aws, &["status"]));
    assert!(err.contains("config"), "{err}");
    assert!(
        err.contains("hint: a table is missing: deploy cloudformation/sosw-storage.yaml"),
        "{err}"
    );
}

#[tokio::test]
async fn task_shows_where_a_task_is_and_its_history() {
    let (aws, tm, _) = deployed().await;
    let item = tm.create_task("worker", task(1), true).await.unwrap();
    let id = item["task_id"].as_s().unwrap().clone();
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id]))).unwrap();
    assert_eq!(out["table"], "sosw_tasks");
    assert_eq!(out["state"], "queued");
    assert_eq!(out["attributes"]["payload"], json!({"i": 1}));

    let l = tm.register_labourer("worker").unwrap();
    let t = tm.next_tasks(&l, 1).await.unwrap().remove(0);
    tm.claim(&l, &t).await.unwrap();
    tm.mark_completed(&id, None, None).await.unwrap();
    let done = tm.get_task(&id).await.unwrap().unwrap();
    assert!(tm.archive(&done).await.unwrap());
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id]))).unwrap();
    assert_eq!(out["table"], "sosw_closed_tasks");
    assert_eq!(out["state"], "closed: completed");

    let err = stderr(&sosw(&aws, &["task", "no-such-task"]));
    assert!(
        err.contains("task `no-such-task` is in none of sosw's tables"),
        "{err}"
    );
}

#[tokio::test]
async fn retry_dead_puts_dead_tasks_back_at_the_front_of_the_queue() {
    let (aws, tm, _) = deployed().await;
    tm.create_tasks("worker", (0..3).map(task).collect(), true)
        .await
        .unwrap();
    let l = tm.register_labourer("worker").unwrap();
    let first = tm.next_tasks(&l, 1).await.unwrap().remove(0);
    tm.claim(&l, &first).await.unwrap();
    let claimed = tm.get_task(&first.task_id.0).await.unwrap().unwrap();
    assert!(
        tm.archive(&claimed).await.unwrap(),
        "closed as dead (not completed)"
    );
    assert_eq!(tm.closed_count("worker", false).await.unwrap(), 1);

    let out = stdout(&sosw(
        &aws,
        &["retry-dead", "--labourer", "worker", "--since", "2020-01-01"],
    ));
    assert!(out.contains("1 dead task(s)"), "{out}");
    let l = tm.register_labourer("worker").unwrap();
    let next = tm.next_tasks(&l, 3).await.unwrap();
    assert_eq!(next[0].task_id, first.task_id, "revived task is first");
    assert_eq!(next[0].attempts, 0);
    assert_eq!(tm.closed_count("worker", false).await.unwrap(), 0);

    let err = stderr(&sosw(&aws, &["retry-dead", "--labourer", "ghost"]));
    assert!(err.contains("unknown labourer `ghost`"), "{err}");
    let err = stderr(&sosw(
        &aws,
        &["retry-dead", "--labourer", "worker", "--since", "last tuesday"],
    ));
    assert!(err.contains("--since `last tuesday`"), "{err}");
}

#[tokio::test]
async fn run_scheduler_schedules_a_job_through_the_lambda_code_path() {
    let (aws, tm, _) = deployed().await;
    let dir = std::env::temp_dir().join(format!("sosw_cli_run_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        r#"{"lambda_name": "worker", "words": ["a", "b", "c"], "isolate_words": true}"#,
    )
    .unwrap();
    let out: Value = serde_json::from_str(&stdout(&sosw(
        &aws,
        &["run", "scheduler", "--event", job.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(out["tasks_created"], 3);
    assert_eq!(tm.queue_length("worker").await.unwrap(), 3);
}

#[tokio::test]
async fn submit_rejects_a_bad_job_before_invoking_and_sends_a_good_one() {
    let (aws, _tm, _) = deployed().await;
    let dir = std::env::temp_dir().join(format!("sosw_cli_submit_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"lambda_name": "ghost"}"#).unwrap();
    let err = stderr(&sosw(&aws, &["submit", bad.to_str().unwrap()]));
    assert!(err.contains("unknown labourer `ghost`"), "{err}");
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        r#"{"lambda_name": "worker", "words": ["a", "b"], "isolate_words": true}"#,
    )
    .unwrap();
    // moto accepts Event invokes (it does not run the function).
    let o = sosw(&aws, &["submit", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 task(s) for labourer `worker`"));
}

#[tokio::test]
async fn run_orchestrator_and_scavenger_once_through_the_lambda_code_path() {
    let (aws, tm, _) = deployed().await;
    tm.create_tasks("worker", (0..6).map(task).collect(), true)
        .await
        .unwrap();
    // moto accepts Event invokes of any function name.
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["run", "orchestrator"]))).unwrap();
    assert_eq!(out["invoked"], 4, "max_simultaneous_invocations 4: {out}");
    assert_eq!(tm.queue_length("worker").await.unwrap(), 2);
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["run", "scavenger"]))).unwrap();
    assert_eq!(out["total"]["archived"], 0, "{out}");
    assert!(out["labourers"]["worker"].is_object());
}

#[tokio::test]
async fn a_quarantined_row_is_shown_by_task_and_a_run_that_processes_nothing_exits_non_zero() {
    let (aws, tm, _) = deployed().await;
    let item = tm.create_task("worker", task(1), true).await.unwrap();
    let id = item["task_id"].as_s().unwrap().clone();
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    dynamo
        .update_item()
        .table_name("sosw_tasks")
        .key("task_id", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .update_expression("SET attempts = :a")
        .expression_attribute_values(":a", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
        .send()
        .await
        .unwrap();
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["run", "orchestrator"]))).unwrap();
    assert_eq!(out["quarantined"], 1, "{out}");
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id]))).unwrap();
    assert_eq!(out["table"], "sosw_closed_tasks");
    let state = out["state"].as_str().unwrap();
    assert!(
        state.starts_with("closed: dead (quarantined: malformed task"),
        "{state}"
    );

    dynamo
        .delete_table()
        .table_name("sosw_tasks")
        .send()
        .await
        .unwrap();
    let err = stderr(&sosw(&aws, &["run", "orchestrator"]));
    assert!(
        err.contains("could process no labourer") && err.contains("sosw_tasks"),
        "{err}"
    );
    let err = stderr(&sosw(&aws, &["run", "scavenger"]));
    assert!(err.contains("could process no labourer"), "{err}");
}
