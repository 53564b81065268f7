//! The operator commands against the local AWS, through the real `sosw` binary.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sosw_core::{SystemClock, TaskConfig, TaskManager};
use sosw_test_support::LocalAws;
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

/// Stdout of a run that ended with exit code `code` (3: it found problems).
fn stdout_exit(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stderr: {}\nstdout: {}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
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
    let bucket = aws.deploy_queue_bucket().await;
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
    // The labourer's function does not exist here, so its async retries cannot be read: a
    // warning, and exit 3 (problems found).
    let out = stdout_exit(&sosw(&aws, &["status", "--json"]), 3);
    let status: Value = serde_json::from_str(&out).unwrap();
    let rows = &status["labourers"];
    assert_eq!(rows[0]["labourer_id"], "worker");
    assert_eq!(rows[0]["queued"], 3);
    assert_eq!(rows[0]["running"], 3);
    assert_eq!(rows[0]["health"], 4);
    assert_eq!(rows[0]["would_invoke"], 1, "max 4 at health 4, 3 running");
    let table = stdout_exit(&sosw(&aws, &["status"]), 3);
    assert!(table.starts_with("LABOURER"), "{table}");
    assert!(table.contains("worker"));
    assert!(table.contains("warning: labourer `worker`"), "{table}");
}

#[tokio::test]
async fn status_without_tables_names_the_problem_and_the_fix() {
    let aws = LocalAws::start().await;
    let err = stderr(&sosw(&aws, &["status"]));
    assert!(err.contains("config"), "{err}");
    // The hint names the missing resource (the config table) and the fix.
    assert!(err.contains("hint: config `"), "{err}");
    assert!(
        err.contains("is missing; deploy cloudformation/sosw-storage.yaml"),
        "{err}"
    );
}

#[tokio::test]
async fn task_shows_where_a_task_is_and_its_history() {
    let (aws, tm, _) = deployed().await;
    let item = tm.create_task("worker", task(1), true).await.unwrap();
    let id = item["task_id"].as_s().unwrap().clone();
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id, "--json"]))).unwrap();
    assert_eq!(out["table"], "sosw_tasks");
    assert_eq!(out["state"], "queued");
    assert_eq!(out["attributes"]["payload"], json!({"i": 1}));

    let l = tm.register_labourer("worker").unwrap();
    let t = tm.next_tasks(&l, 1).await.unwrap().remove(0);
    tm.claim(&l, &t).await.unwrap();
    // The report's meta event is pending on the row until the Scavenger moves the task:
    // `sosw task` shows it in the history all the same.
    let event = sosw_core::task::Item::from([
        ("task_id".to_string(), AttributeValue::S(id.clone())),
        ("created_at".to_string(), AttributeValue::N("1700000000.5".into())),
        (
            "action".to_string(),
            AttributeValue::S("marked_as_completed".into()),
        ),
    ]);
    tm.mark_completed_with_event(&id, None, None, Some(event))
        .await
        .unwrap();
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id, "--json"]))).unwrap();
    let history = out["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["action"], "marked_as_completed", "{history:?}");
    assert_eq!(last["pending"], true, "{history:?}");
    let done = tm.get_task(&id).await.unwrap().unwrap();
    assert!(tm.archive(&done).await.unwrap());
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id, "--json"]))).unwrap();
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

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn config_put_get_and_diff_against_the_config_table() {
    let (aws, _tm, _) = deployed().await;
    let dir = std::env::temp_dir().join(format!("sosw_cli_config_{}", std::process::id()));
    let own = write(&dir, "own.json", r#"{"task_config": {"max_attempts": 5}}"#);
    let o = sosw(&aws, &["config", "put", "sosw_orchestrator_config", &own]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("stored `sosw_orchestrator_config` in DynamoDB table `config` (env `production`)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: Value = serde_json::from_str(&stdout(&sosw(
        &aws,
        &["config", "get", "sosw_orchestrator_config"],
    )))
    .unwrap();
    assert_eq!(got, json!({"task_config": {"max_attempts": 5}}));

    // What the stored documents change in the orchestrator's effective config.
    let diff = stdout(&sosw(&aws, &["config", "diff", "sosw_orchestrator"]));
    assert!(diff.contains("~ task_config.max_attempts: 3 -> 5"), "{diff}");
    assert!(
        diff.contains(
            "+ task_config.labourers.worker: {\"max_simultaneous_invocations\":4,\"max_duration\":60}"
        ),
        "{diff}"
    );
    // What a proposed document would change, without storing it.
    let proposed = write(&dir, "proposed.json", r#"{"task_config": {"max_attempts": 7}}"#);
    let with = format!("sosw_orchestrator_config={proposed}");
    let diff = stdout(&sosw(&aws, &["config", "diff", "orchestrator", "--with", &with]));
    assert_eq!(
        diff,
        "# sosw_orchestrator: effective config now -> with the proposed [\"sosw_orchestrator_config\"]\n\
         ~ task_config.max_attempts: 5 -> 7\n"
    );
    let full: Value = serde_json::from_str(&stdout(&sosw(
        &aws,
        &["config", "diff", "orchestrator", "--with", &with, "--full"],
    )))
    .unwrap();
    assert_eq!(full["task_config"]["max_attempts"], 7);
    assert_eq!(full["task_config"]["labourers"]["worker"]["max_duration"], 60);
    let got: Value = serde_json::from_str(&stdout(&sosw(
        &aws,
        &["config", "get", "sosw_orchestrator_config"],
    )))
    .unwrap();
    assert_eq!(got["task_config"]["max_attempts"], 5, "diff stores nothing");

    // Bad input names the problem and leaves the stored document alone.
    let array = write(&dir, "array.json", "[1, 2]");
    let err = stderr(&sosw(
        &aws,
        &["config", "put", "sosw_orchestrator_config", &array],
    ));
    assert!(
        err.contains("array.json holds a JSON array, but a config document is a JSON object"),
        "{err}"
    );
    let broken = write(&dir, "broken.json", "{\"task_config\": ");
    let err = stderr(&sosw(
        &aws,
        &["config", "put", "sosw_orchestrator_config", &broken],
    ));
    assert!(err.contains("broken.json is not valid JSON"), "{err}");
    let err = stderr(&sosw(
        &aws,
        &["config", "diff", "orchestrator", "--with", "nofile"],
    ));
    assert!(err.contains("--with `nofile`: expected NAME=FILE"), "{err}");
    let got: Value = serde_json::from_str(&stdout(&sosw(
        &aws,
        &["config", "get", "sosw_orchestrator_config"],
    )))
    .unwrap();
    assert_eq!(got["task_config"]["max_attempts"], 5);
    let err = stderr(&sosw(&aws, &["config", "get", "sosw_nothing_config"]));
    assert!(
        err.contains(
            "config document `sosw_nothing_config` is not in DynamoDB table `config` (env `production`)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn config_put_and_get_through_ssm() {
    let aws = LocalAws::start().await;
    let dir = std::env::temp_dir().join(format!("sosw_cli_config_ssm_{}", std::process::id()));
    let doc = write(&dir, "doc.json", r#"{"queue_bucket": "b"}"#);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sosw"))
            .args(args)
            .envs(aws.env())
            .env("SOSW_CONFIG_SOURCE", "ssm")
            .output()
            .expect("run sosw")
    };
    stdout(&run(&["config", "put", "sosw_scheduler_config", &doc]));
    let got: Value =
        serde_json::from_str(&stdout(&run(&["config", "get", "sosw_scheduler_config"]))).unwrap();
    assert_eq!(got, json!({"queue_bucket": "b"}));
    let ssm = aws_sdk_ssm::Client::new(aws.sdk_config());
    let p = ssm
        .get_parameter()
        .name("sosw_scheduler_config")
        .send()
        .await
        .unwrap();
    assert_eq!(p.parameter().unwrap().value(), Some(r#"{"queue_bucket":"b"}"#));
    // `diff` reads the same parameters: the effective config the Scheduler would run with.
    let full: Value =
        serde_json::from_str(&stdout(&run(&["config", "diff", "sosw_scheduler", "--full"]))).unwrap();
    assert_eq!(full["queue_bucket"], "b");
    assert_eq!(
        full["task_config"]["dynamo_db_config"]["table_name"],
        "sosw_tasks"
    );
}

/// An empty zip archive (end-of-central-directory record only): moto does not run the code.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A labourer function on moto with the given asynchronous retries (`None`: no EventInvokeConfig).
async fn worker_function(aws: &LocalAws, name: &str, retries: Option<i32>) {
    let iam = aws_sdk_iam::Client::new(aws.sdk_config());
    let role = match iam.get_role().role_name("worker-role").send().await {
        Ok(r) => r.role.unwrap().arn,
        Err(_) => {
            iam.create_role()
                .role_name("worker-role")
                .assume_role_policy_document(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
                )
                .send()
                .await
                .unwrap()
                .role
                .unwrap()
                .arn
        }
    };
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(EMPTY_ZIP.to_vec()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    if let Some(n) = retries {
        lambda
            .put_function_event_invoke_config()
            .function_name(name)
            .maximum_retry_attempts(n)
            .send()
            .await
            .unwrap();
    }
}

/// `sosw status --json`'s labourers by id.
fn labourers_of(status: &Value) -> std::collections::BTreeMap<&str, &Value> {
    status["labourers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["labourer_id"].as_str().unwrap(), l))
        .collect()
}

/// `sosw status --json`'s warnings.
fn warnings_of(status: &Value) -> Vec<&str> {
    status["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn status_warns_for_async_retries_and_counts_failed_scheduler_jobs() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    aws.put_config(
        "sosw_essential_config",
        &json!({"task_config": {"labourers": {
            "no_config": {}, "retries_0": {}, "retries_1": {}, "missing": {}}}}),
    )
    .await;
    worker_function(&aws, "no_config", None).await;
    worker_function(&aws, "retries_0", Some(0)).await;
    worker_function(&aws, "retries_1", Some(1)).await;
    let sqs = aws_sdk_sqs::Client::new(aws.sdk_config());
    let url = sqs
        .create_queue()
        .queue_name("sosw_scheduler_failed_jobs")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for i in 0..3 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("{{\"job\": {i}}}"))
            .send()
            .await
            .unwrap();
    }

    let out = stdout_exit(
        &sosw(
            &aws,
            &[
                "status",
                "--json",
                "--failed-jobs-queue",
                "sosw_scheduler_failed_jobs",
            ],
        ),
        3,
    );
    let status: Value = serde_json::from_str(&out).unwrap();
    let labourers = labourers_of(&status);
    let retries = |id: &str| labourers[id]["async_retries"].clone();
    assert_eq!(retries("no_config"), json!({"state": "default"}));
    assert_eq!(
        retries("retries_0"),
        json!({"state": "configured", "maximum_retry_attempts": 0})
    );
    assert_eq!(
        retries("retries_1"),
        json!({"state": "configured", "maximum_retry_attempts": 1})
    );
    assert_eq!(retries("missing")["state"], "unknown");
    let warnings = warnings_of(&status);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with(
        "labourer `no_config`: function `no_config` has 2 asynchronous retries (Lambda's default); set them to 0"
    )), "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "labourer `retries_1`: function `retries_1` has 1 asynchronous retries; set them to 0"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w
            .starts_with("labourer `missing`: cannot read the asynchronous retries of function `missing`")),
        "{warnings:?}"
    );
    assert!(!warnings.iter().any(|w| w.contains("retries_0")), "{warnings:?}");
    assert_eq!(status["failed_jobs"]["waiting"], 3, "{status}");
    assert_eq!(status["failed_jobs"]["queue_url"], json!(url));

    // The queue can come from the config (here its URL), and the table shows the count.
    aws.put_config(
        "sosw_essential_config",
        &json!({"failed_jobs_queue": url, "task_config": {"labourers": {"retries_0": {}}}}),
    )
    .await;
    // No warning now, but failed jobs wait: still exit 3.
    let table = stdout_exit(&sosw(&aws, &["status"]), 3);
    assert!(
        table.contains(&format!("failed jobs waiting: 3 (in flight: 0) in {url}")),
        "{table}"
    );
    assert!(!table.contains("warning:"), "{table}");

    let err = stderr(&sosw(&aws, &["status", "--failed-jobs-queue", "no_such_queue"]));
    assert!(
        err.contains("the Scheduler's failed-jobs queue `no_such_queue`"),
        "{err}"
    );
}

/// A throttled worker, shown before it happens: a labourer allowed more tasks at once than its
/// function's reserved concurrency lets run is a warning (exit 3) naming both numbers and the fix.
#[tokio::test]
async fn status_warns_when_a_labourer_may_invoke_more_than_its_reserved_concurrency() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    aws.put_config(
        "sosw_essential_config",
        &json!({"task_config": {"labourers": {
            "over": {"max_simultaneous_invocations": 10},
            "zero": {"max_simultaneous_invocations": 2},
            "enough": {"max_simultaneous_invocations": 10},
            "unreserved": {"max_simultaneous_invocations": 10}}}}),
    )
    .await;
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    for (name, reserved) in [
        ("over", Some(5)),
        ("zero", Some(0)),
        ("enough", Some(20)),
        ("unreserved", None),
    ] {
        worker_function(&aws, name, Some(0)).await;
        if let Some(n) = reserved {
            lambda
                .put_function_concurrency()
                .function_name(name)
                .reserved_concurrent_executions(n)
                .send()
                .await
                .unwrap();
        }
    }
    let status: Value = serde_json::from_str(&stdout_exit(&sosw(&aws, &["status", "--json"]), 3)).unwrap();
    let labourers = labourers_of(&status);
    let reserved = |id: &str| {
        (
            labourers[id]["max_simultaneous_invocations"].clone(),
            labourers[id]["reserved_concurrency"].clone(),
        )
    };
    assert_eq!(reserved("over"), (json!(10), json!(5)));
    assert_eq!(reserved("zero"), (json!(2), json!(0)));
    assert_eq!(reserved("enough"), (json!(10), json!(20)));
    assert_eq!(reserved("unreserved"), (json!(10), Value::Null));
    let warnings = warnings_of(&status);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "labourer `over`: max_simultaneous_invocations 10 exceeds the reserved concurrency 5 of function `over`"
        ) && w.contains("--reserved-concurrent-executions 10")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("labourer `zero`: function `zero` has a reserved concurrency of 0")),
        "{warnings:?}"
    );
    let table = stdout_exit(&sosw(&aws, &["status"]), 3);
    assert!(
        table.contains("warning: labourer `over`: max_simultaneous_invocations 10 exceeds"),
        "{table}"
    );
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
    let out: Value = serde_json::from_str(&stdout(&sosw(&aws, &["task", &id, "--json"]))).unwrap();
    assert_eq!(out["table"], "sosw_closed_tasks");
    let state = out["state"].as_str().unwrap();
    assert!(
        state.starts_with("closed: dead (quarantined: malformed task"),
        "{state}"
    );
    // `sosw status` counts it with the labourer's dead tasks (column DEAD).
    // (It exits 3: the labourer's function does not exist here, which `status` warns about.)
    let out = sosw(&aws, &["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["labourers"][0]["labourer_id"], "worker");
    assert_eq!(status["labourers"][0]["dead"], 1, "{status}");
    let table = String::from_utf8(sosw(&aws, &["status"]).stdout).unwrap();
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .any(|h| h == "DEAD"),
        "{table}"
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

// ----- output for terminals and scripts (assert_cmd: stdout and stderr are pipes here) -----------

use assert_cmd::Command as Cmd;
use predicates::prelude::*;

fn cmd(aws: &LocalAws) -> Cmd {
    let mut c = Cmd::cargo_bin("sosw").unwrap();
    c.envs(aws.env());
    c
}

/// Neither escape codes nor carriage returns: what a pipe, a file or a CI log gets.
fn plain() -> impl Predicate<str> {
    predicate::function(|out: &str| !out.contains('\u{1b}') && !out.contains('\r'))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

/// An installation whose labourer `worker` is a function with asynchronous retries off: clean.
async fn clean() -> (LocalAws, TaskManager) {
    let (aws, tm, _) = deployed().await;
    worker_function(&aws, "worker", Some(0)).await;
    (aws, tm)
}

#[test]
fn completions_for_every_shell_and_usage_errors_exit_2() {
    for (shell, needle) in [
        ("bash", "_sosw()"),
        ("zsh", "#compdef sosw"),
        ("fish", "complete -c sosw"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[sosw]"),
    ] {
        Cmd::cargo_bin("sosw")
            .unwrap()
            .args(["completions", shell])
            .assert()
            .code(0)
            .stdout(predicate::str::contains(needle).and(predicate::str::contains("retry-dead")));
    }
    Cmd::cargo_bin("sosw")
        .unwrap()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'tcsh'"));
    // --interval without --watch, an unknown flag, no command: usage errors.
    for args in [&["status", "--interval", "3"][..], &["task", "--no-such"], &[]] {
        Cmd::cargo_bin("sosw").unwrap().args(args).assert().code(2);
    }
    // Help is not an error, and shows an example and the exit codes.
    Cmd::cargo_bin("sosw")
        .unwrap()
        .args(["status", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("sosw status --watch --interval 10").and(plain()));
    Cmd::cargo_bin("sosw")
        .unwrap()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "Exit codes: 0 ok, 1 failure, 2 usage, 3 problems found",
        ));
}

#[tokio::test]
async fn a_command_that_cannot_run_exits_1() {
    let aws = LocalAws::start().await;
    cmd(&aws)
        .args(["task", "t1", "--json"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::starts_with("sosw: ").and(plain()));
}

#[tokio::test]
async fn status_piped_is_a_plain_table_and_exits_0_when_clean() {
    let (aws, tm) = clean().await;
    tm.create_tasks("worker", (0..2).map(task).collect(), true)
        .await
        .unwrap();
    let out = cmd(&aws)
        .arg("status")
        .assert()
        .code(0)
        .stdout(plain())
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "LABOURER",
            "HEALTH",
            "QUEUED",
            "RUNNING",
            "EXPIRED",
            "COMPLETED",
            "RETRYING",
            "DEAD",
            "WOULD",
            "INVOKE"
        ]
    );
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["worker", "4", "2", "0", "0", "0", "0", "0", "4"]
    );
    assert!(!text.contains("warning"), "{text}");

    // The JSON shape: stable field names (docs/cli.md).
    let out = cmd(&aws)
        .args(["--json", "status"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let status = json_of(&out.stdout);
    assert_eq!(keys(&status), ["failed_jobs", "labourers", "warnings"]);
    assert_eq!(
        keys(&status["labourers"][0]),
        [
            "async_retries",
            "completed_not_archived",
            "dead",
            "expired",
            "health",
            "labourer_id",
            "max_simultaneous_invocations",
            "queued",
            "reserved_concurrency",
            "retrying",
            "running",
            "would_invoke"
        ]
    );
    assert_eq!(
        status["labourers"][0]["async_retries"],
        json!({"state": "configured", "maximum_retry_attempts": 0})
    );
}

#[tokio::test]
async fn status_watch_prints_a_line_or_a_json_object_per_round_when_piped() {
    let (aws, tm) = clean().await;
    tm.create_tasks("worker", (0..3).map(task).collect(), true)
        .await
        .unwrap();
    let out = cmd(&aws)
        .args(["status", "--watch", "--interval", "1", "--rounds", "2"])
        .assert()
        .code(0)
        .stdout(plain())
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        let (at, rest) = line.split_once(' ').unwrap();
        chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(
            rest,
            "worker: health 4 queued 3 running 0 expired 0 completed 0 retrying 0 dead 0 would_invoke 4; warnings 0"
        );
    }
    let out = cmd(&aws)
        .args(["status", "--watch", "--interval", "1", "--rounds", "2", "--json"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    let rounds: Vec<Value> = text.lines().map(|l| json_of(l.as_bytes())).collect();
    assert_eq!(rounds.len(), 2, "{text}");
    for r in &rounds {
        assert_eq!(keys(r), ["at", "failed_jobs", "labourers", "warnings"]);
        assert_eq!(r["labourers"][0]["queued"], 3);
    }
}

#[tokio::test]
async fn status_watch_stops_on_ctrl_c() {
    let (aws, _tm) = clean().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sosw"))
        .args(["status", "--watch", "--interval", "3600"])
        .envs(aws.env())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first, status) = tokio::task::spawn_blocking(move || {
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first).unwrap();
        // The first round is printed: interrupt it as Ctrl-C does.
        let kill = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        (first, child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(first.contains("worker: health 4"), "{first}");
    assert_eq!(
        status.code(),
        Some(0),
        "it ends by itself, not killed by the signal"
    );
}

#[tokio::test]
async fn task_retry_dead_config_and_submit_print_documented_json() {
    let (aws, tm) = clean().await;
    let item = tm.create_task("worker", task(7), true).await.unwrap();
    let id = item["task_id"].as_s().unwrap().clone();

    let out = cmd(&aws)
        .args(["task", &id])
        .assert()
        .code(0)
        .stdout(plain())
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("task   {id}\ntable  sosw_tasks\nstate  queued\n")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["payload", r#"{"i":7}"#]),
        "{text}"
    );
    let out = cmd(&aws)
        .args(["task", &id, "--json"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert_eq!(
        keys(&json_of(&out.stdout)),
        ["attributes", "history", "state", "table", "task_id"]
    );

    let out = cmd(&aws)
        .args([
            "retry-dead",
            "--labourer",
            "worker",
            "--since",
            "1970-01-02",
            "--json",
        ])
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert_eq!(
        json_of(&out.stdout),
        json!({"labourer_id": "worker", "since": 86400, "revived": 0})
    );

    let dir = std::env::temp_dir().join(format!("sosw_cli_json_{}", std::process::id()));
    let doc = write(&dir, "doc.json", r#"{"task_config": {"max_attempts": 4}}"#);
    let out = cmd(&aws)
        .args(["config", "put", "sosw_orchestrator_config", &doc, "--json"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert_eq!(
        json_of(&out.stdout),
        json!({"name": "sosw_orchestrator_config", "stored_in": "DynamoDB table `config` (env `production`)"})
    );
    let out = cmd(&aws)
        .args(["config", "diff", "sosw_orchestrator", "--json"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let diff = json_of(&out.stdout);
    assert_eq!(keys(&diff), ["changes", "compared", "function"]);
    assert_eq!(diff["function"], "sosw_orchestrator");
    let changes = diff["changes"].as_array().unwrap();
    assert!(
        changes
            .contains(&json!({"change": "changed", "path": "task_config.max_attempts", "old": 3, "new": 4})),
        "{diff}"
    );
    assert!(
        changes.iter().any(|c| c["change"] == "added"
            && c["path"] == "task_config.labourers.worker"
            && c.get("old").is_none()),
        "{diff}"
    );

    let job = write(
        &dir,
        "job.json",
        r#"{"lambda_name": "worker", "words": ["a", "b"], "isolate_words": true}"#,
    );
    let out = cmd(&aws)
        .args(["submit", &job, "--json"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert_eq!(
        json_of(&out.stdout),
        json!({"function": "sosw_scheduler", "labourer_id": "worker", "tasks": 2})
    );
}

#[tokio::test]
async fn submit_wait_piped_prints_plain_progress_and_exits_3_when_tasks_died() {
    let (aws, tm) = clean().await;
    let dir = std::env::temp_dir().join(format!("sosw_cli_wait_{}", std::process::id()));
    let job = write(
        &dir,
        "job.json",
        r#"{"lambda_name": "worker", "words": ["a", "b"], "isolate_words": true}"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sosw"))
        .args(["submit", &job, "--wait", "--json", "--timeout", "600"])
        .envs(aws.env())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // moto does not run the Scheduler: the test plays it and the workers once sosw has counted
    // the archive ("submitted ..." is printed after that), one task completed and one dead.
    let stderr = child.stderr.take().unwrap();
    let (submitted, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        (lines.next().unwrap().unwrap(), lines)
    })
    .await
    .unwrap();
    assert!(
        submitted.starts_with("submitted to `sosw_scheduler`: 2 task(s)"),
        "{submitted}"
    );
    tm.create_tasks("worker", (0..2).map(task).collect(), true)
        .await
        .unwrap();
    let l = tm.register_labourer("worker").unwrap();
    let tasks = tm.next_tasks(&l, 2).await.unwrap();
    for t in &tasks {
        tm.claim(&l, t).await.unwrap();
    }
    tm.mark_completed(&tasks[0].task_id.0, None, None).await.unwrap();
    for t in &tasks {
        let row = tm.get_task(&t.task_id.0).await.unwrap().unwrap();
        assert!(tm.archive(&row).await.unwrap());
    }
    let (progress, out) = tokio::task::spawn_blocking(move || {
        let progress: Vec<String> = lines.map(Result::unwrap).collect();
        (progress, child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "one task died: {progress:?}");
    assert_eq!(
        json_of(&out.stdout),
        json!({"function": "sosw_scheduler", "labourer_id": "worker", "tasks": 2, "completed": 1, "dead": 1})
    );
    assert_eq!(
        progress.last().unwrap(),
        "2/2 completed 1  dead 1",
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains('\r')),
        "{progress:?}"
    );
}

/// A stuck queue file's fix: `sosw resume` finds the file (locked, or handed over), invokes the
/// Scheduler with its continuation, and refuses a file that is not there, naming where it looked.
/// (Multi-threaded: the proxy serves on this runtime while the test waits for the CLI process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_delivers_a_queue_files_continuation_and_refuses_a_missing_file() {
    let invokes: Arc<std::sync::Mutex<Vec<(String, Value)>>> = Arc::default();
    let seen = invokes.clone();
    let aws = LocalAws::start_behind(false, move |b| {
        b.observe(
            move |req: &sosw_test_support::proxy::RequestInfo, _: &sosw_test_support::proxy::ResponseInfo| {
                if req.op() == "lambda.Invoke" {
                    let function = req.lambda_function().unwrap_or_default().to_string();
                    seen.lock()
                        .unwrap()
                        .push((function, req.json().unwrap_or_default()));
                }
            },
        )
    })
    .await;
    let bucket = aws.deploy_queue_bucket().await;
    aws.put_config("sosw_essential_config", &serde_json::from_str(ESSENTIAL).unwrap())
        .await;
    aws.put_config(
        "sosw_scheduler_config",
        &json!({"queue_bucket": bucket, "s3_prefix": "jobs/queue"}),
    )
    .await;
    let s3 = aws.s3();
    for key in [
        "jobs/queue/locked_tasks_queue_r1.txt",
        "jobs/queue/tasks_queue_r2.txt",
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(b"{\"labourer_id\": \"worker\"}\n".to_vec().into())
            .send()
            .await
            .unwrap();
    }

    let out = cmd(&aws)
        .args(["resume", "s3://b/jobs/queue/locked_tasks_queue_r1.txt", "--json"])
        .assert()
        .code(0)
        .stdout(plain())
        .get_output()
        .clone();
    assert_eq!(
        json_of(&out.stdout),
        json!({"function": "sosw_scheduler", "file_name": "tasks_queue_r1.txt", "state": "locked", "bucket": bucket})
    );
    let out = stdout_exit(
        &sosw(
            &aws,
            &["resume", "tasks_queue_r2.txt", "--function", "qa_sosw_scheduler"],
        ),
        0,
    );
    assert!(
        out.contains("resumed `tasks_queue_r2.txt` (handed over) with `qa_sosw_scheduler`"),
        "{out}"
    );
    assert_eq!(
        *invokes.lock().unwrap(),
        [
            (
                "sosw_scheduler".to_string(),
                json!({"file_name": "tasks_queue_r1.txt"})
            ),
            (
                "qa_sosw_scheduler".to_string(),
                json!({"file_name": "tasks_queue_r2.txt"})
            ),
        ]
    );

    let o = sosw(&aws, &["resume", "tasks_queue_gone.txt"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "queue file `tasks_queue_gone.txt` is not in s3://{bucket}/jobs/queue (neither `locked_tasks_queue_gone.txt` nor `tasks_queue_gone.txt`)"
        )),
        "{err}"
    );
    assert_eq!(
        invokes.lock().unwrap().len(),
        2,
        "nothing invoked for a missing file"
    );
}
