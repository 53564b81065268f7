//! The bad-input corpus: malformed jobs (through `sosw plan` and the Scheduler), continuation
//! events, queue files in S3, Worker Assistant events, config documents and rows already in the
//! tables. Each case asserts a clear error naming what is wrong (or, for a bad row, the documented
//! quarantine: archived as dead with `closed_reason`), the exit code or the Lambda `errorType`,
//! and, by comparing every table and the queue bucket before and after, that nothing else was
//! written, changed or lost. One moto per group; a group reports every failing case at once.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::config_source::ConfigSource;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::task::Item;
use sosw_core::{Clock, EcologyManager, MetaHandler, SystemClock, TaskConfig, TaskManager};
use sosw_lambda::EdgeError;
use sosw_scheduler::{Scheduler, SchedulerConfig, TimeLeft};
use sosw_test_support::LocalAws;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const META_TABLE: &str = "sosw_tasks_meta";

/// Every row of every table (as sorted debug text) and every object of the bucket (key → etag).
type Snapshot = BTreeMap<String, Vec<String>>;

async fn snapshot(aws: &LocalAws, bucket: Option<&str>) -> Snapshot {
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let mut out = Snapshot::new();
    for table in dynamo.list_tables().send().await.unwrap().table_names() {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let page = dynamo
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            for item in page.items() {
                rows.push(format!("{:?}", item.iter().collect::<BTreeMap<_, _>>()));
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        rows.sort();
        out.insert(table.clone(), rows);
    }
    if let Some(bucket) = bucket {
        let s3 = sosw_core::aws::Clients::new(aws.sdk_config()).s3;
        let objects = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
        out.insert(
            format!("s3://{bucket}"),
            objects
                .contents()
                .iter()
                .map(|o| {
                    format!(
                        "{} {}",
                        o.key().unwrap_or_default(),
                        o.e_tag().unwrap_or_default()
                    )
                })
                .collect(),
        );
    }
    out
}

/// What changed between two snapshots, per table: (rows gone, rows new).
fn diff(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for (name, rows) in after {
        let old = before.get(name).cloned().unwrap_or_default();
        let gone: Vec<String> = old.iter().filter(|r| !rows.contains(r)).cloned().collect();
        let new: Vec<String> = rows.iter().filter(|r| !old.contains(r)).cloned().collect();
        if !gone.is_empty() || !new.is_empty() {
            out.insert(name.clone(), (gone, new));
        }
    }
    out
}

/// The failures of a group, reported together.
#[derive(Default)]
struct Verdicts {
    cases: usize,
    failures: Vec<String>,
}

impl Verdicts {
    fn case(&mut self, name: &str, problems: Vec<String>) {
        self.cases += 1;
        if !problems.is_empty() {
            self.failures
                .push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }

    fn finish(self, group: &str, at_least: usize) {
        println!("{group}: {} cases", self.cases);
        assert!(
            self.failures.is_empty(),
            "{group}: {} of {} cases failed:\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n")
        );
        assert!(self.cases >= at_least, "{group}: {} cases", self.cases);
    }
}

/// The needles missing from `text`.
fn missing(text: &str, needles: &[&str]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| !text.contains(**n))
        .map(|n| format!("{n:?} not in: {text}"))
        .collect()
}

/// The Lambda `errorType` and the message with its causes, as the function reports them.
fn error_type(e: EdgeError) -> (String, String) {
    (
        e.kind.error_type().to_string(),
        sosw_core::error::render_error(&e),
    )
}

/// A queue file case: name, bytes, S3 metadata, what the error must name.
type QueueFileCase = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
);

struct Unlimited;

impl TimeLeft for Unlimited {
    fn remaining(&self) -> Duration {
        Duration::from_secs(900)
    }
}

const SCHEDULER_CONFIG: &str = r#"{"task_config": {"labourers": {"worker": {"max_duration": 60}}},
 "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}}"#;

/// Jobs the Scheduler and `sosw plan` must reject, with what the error must name.
fn bad_jobs() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    let big = "x".repeat(300 * 1024);
    let huge_word = "y".repeat(410_000);
    vec![
        ("a list", json!([1, 2]), vec!["malformed job"]),
        ("a number", json!(42), vec!["malformed job"]),
        ("null", json!(null), vec!["malformed job"]),
        ("a boolean", json!(true), vec!["malformed job"]),
        (
            "a string that is not JSON",
            json!("lambda_name=worker"),
            vec!["malformed job"],
        ),
        ("a string holding a list", json!("[1]"), vec!["malformed job"]),
        ("an empty object", json!({}), vec!["lambda_name"]),
        (
            "lambda_name a number",
            json!({"lambda_name": 5}),
            vec!["lambda_name"],
        ),
        (
            "lambda_name null",
            json!({"lambda_name": null}),
            vec!["lambda_name"],
        ),
        (
            "lambda_name a list",
            json!({"lambda_name": ["worker"]}),
            vec!["lambda_name"],
        ),
        (
            "unknown labourer",
            json!({"lambda_name": "ghost"}),
            vec!["unknown labourer `ghost`"],
        ),
        (
            "unknown labourer by ARN",
            json!({"lambda_name": "arn:aws:lambda:us-west-2:000000000000:function:ghost"}),
            vec!["unknown labourer `ghost`"],
        ),
        (
            "empty labourer",
            json!({"lambda_name": ""}),
            vec!["unknown labourer ``"],
        ),
        (
            "labourer_id other than lambda_name",
            json!({"lambda_name": "worker", "labourer_id": "ghost"}),
            vec!["labourer_id", "`worker`"],
        ),
        (
            "unsupported period",
            json!({"lambda_name": "worker", "period": "last_forever", "isolate_days": true, "words": ["a", "b"], "isolate_words": true}),
            vec!["unsupported period `last_forever`"],
        ),
        (
            "negative period",
            json!({"lambda_name": "worker", "period": "last_-3_days", "isolate_days": true, "words": ["a", "b"], "isolate_words": true}),
            vec!["period", "last_-3_days"],
        ),
        (
            "period a number",
            json!({"lambda_name": "worker", "period": 7, "isolate_days": true, "words": ["a", "b"], "isolate_words": true}),
            vec!["period"],
        ),
        (
            "unknown job schema",
            json!({"lambda_name": "worker", "job_schema_name": "nope"}),
            vec!["unknown job schema `nope`"],
        ),
        (
            "words an object",
            json!({"lambda_name": "worker", "words": {"a": 1}, "isolate_words": true}),
            vec!["words"],
        ),
        (
            "generated greenfield",
            json!({"lambda_name": "worker", "greenfield": 5}),
            vec!["`greenfield` is generated"],
        ),
        (
            "generated task_id",
            json!({"lambda_name": "worker", "task_id": "mine"}),
            vec!["`task_id` is generated"],
        ),
        (
            "generated attempts",
            json!({"lambda_name": "worker", "attempts": 1}),
            vec!["`attempts` is generated"],
        ),
        (
            "generated created_at",
            json!({"lambda_name": "worker", "created_at": 1}),
            vec!["`created_at` is generated"],
        ),
        (
            "payload a JSON list",
            json!({"lambda_name": "worker", "payload": "[1, 2]"}),
            vec!["payload", "not an object"],
        ),
        (
            "payload over the invocation limit",
            json!({"lambda_name": "worker", "blob": big}),
            vec!["262144"],
        ),
        (
            "a row over DynamoDB's item limit",
            json!({"lambda_name": "worker", "words": ["a", huge_word], "isolate_words": true}),
            vec!["row 1", "409600"],
        ),
        (
            "job key not JSON",
            json!({"job": "{lambda_name"}),
            vec!["malformed job"],
        ),
        ("job key a list", json!({"job": [1]}), vec!["malformed job"]),
        (
            "job key holding an unknown labourer",
            json!({"job": "{\"lambda_name\": \"ghost\"}"}),
            vec!["unknown labourer `ghost`"],
        ),
    ]
}

struct SchedulerEnv {
    aws: LocalAws,
    bucket: String,
    scheduler: Scheduler,
    s3: aws_sdk_s3::Client,
}

async fn scheduler_env() -> SchedulerEnv {
    let aws = LocalAws::start().await;
    let bucket = aws.deploy_queue_bucket().await;
    let mut doc = SchedulerConfig::defaults();
    let mut user: Value = serde_json::from_str(SCHEDULER_CONFIG).unwrap();
    user["queue_bucket"] = json!(bucket);
    sosw_core::config::merge(&mut doc, &user);
    let config = SchedulerConfig::from_document(doc).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        config.task_config.clone(),
        clock.clone(),
    )
    .with_max_transaction_items(LocalAws::TRANSACTION_ITEMS);
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let s3 = sosw_core::aws::Clients::new(aws.sdk_config()).s3;
    let scheduler = Scheduler::new(
        tasks,
        s3.clone(),
        meta,
        Arc::new(RecordingInvoker::default()),
        config,
        "sosw_scheduler",
        None,
    );
    SchedulerEnv {
        aws,
        bucket,
        scheduler,
        s3,
    }
}

#[tokio::test]
async fn jobs_through_sosw_plan_and_the_scheduler() {
    let env = scheduler_env().await;
    // A task already queued: nothing may touch it.
    env.scheduler
        .handle(
            &json!({"lambda_name": "worker", "k": "existing"}),
            "req-existing",
            &Unlimited,
        )
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sosw-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, SCHEDULER_CONFIG).unwrap();
    let sosw = sosw_test_support::workspace_binary("sosw");
    let mut v = Verdicts::default();
    for (k, (name, job, needles)) in bad_jobs().into_iter().enumerate() {
        // `sosw plan`: exit 1, the error on stderr, nothing on stdout.
        let job_path = dir.join(format!("job{k}.json"));
        std::fs::write(&job_path, job.to_string()).unwrap();
        let out = Command::new(&sosw)
            .args(["plan", "--config"])
            .arg(&config_path)
            .args(["--today", "2026-11-24"])
            .arg(&job_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut problems = missing(&stderr, &needles);
        if out.status.code() != Some(1) {
            problems.push(format!("exit code {:?}, expected 1", out.status.code()));
        }
        if !out.stdout.is_empty() {
            problems.push(format!("printed {} bytes of rows", out.stdout.len()));
        }
        v.case(&format!("sosw plan: {name}"), problems);
        // The Scheduler: RejectedJob, nothing written anywhere.
        let before = snapshot(&env.aws, Some(&env.bucket)).await;
        let result = env.scheduler.handle(&job, &format!("req-{k}"), &Unlimited).await;
        let after = snapshot(&env.aws, Some(&env.bucket)).await;
        let mut problems = match result {
            Ok(stats) => vec![format!("accepted: {stats:?}")],
            Err(e) => {
                let (kind, message) = error_type(e.into());
                let mut p = missing(&message, &needles);
                if kind != "RejectedJob" {
                    p.push(format!("errorType {kind}, expected RejectedJob"));
                }
                p
            }
        };
        if before != after {
            problems.push(format!("written: {:?}", diff(&before, &after)));
        }
        v.case(&format!("Scheduler: {name}"), problems);
    }
    std::fs::remove_dir_all(&dir).ok();
    v.finish("jobs", 58);
}

#[tokio::test]
async fn continuation_events_and_queue_files_in_s3() {
    let env = scheduler_env().await;
    env.scheduler
        .handle(
            &json!({"lambda_name": "worker", "k": "existing"}),
            "req-existing",
            &Unlimited,
        )
        .await
        .unwrap();
    let mut v = Verdicts::default();
    // Continuations naming no queue file.
    for (name, event, needles, kind) in [
        (
            "a file that does not exist",
            json!({"file_name": "tasks_queue_nope.txt"}),
            vec!["tasks_queue_nope.txt", "not in S3"],
            "RejectedJob",
        ),
        (
            "a path outside the prefix",
            json!({"file_name": "../../etc/passwd"}),
            vec!["../../etc/passwd", "not in S3"],
            "RejectedJob",
        ),
        (
            "a locked name",
            json!({"file_name": "locked_tasks_queue_x.txt"}),
            vec!["locked_tasks_queue_x.txt", "not in S3"],
            "RejectedJob",
        ),
        (
            "an empty name",
            json!({"file_name": ""}),
            vec!["queue file ``", "not in S3"],
            "RejectedJob",
        ),
        (
            "a file name that is a number",
            json!({"file_name": 5}),
            vec!["`file_name`", "must be a string, found 5"],
            "RejectedJob",
        ),
        (
            "a file name that is null",
            json!({"file_name": null}),
            vec!["`file_name`", "must be a string, found null"],
            "RejectedJob",
        ),
        (
            "a file name in a subfolder",
            json!({"file_name": "a/b.txt"}),
            vec!["a/b.txt", "not in S3"],
            "RejectedJob",
        ),
        (
            "a file name and a job",
            json!({"file_name": "tasks_queue_nope2.txt", "lambda_name": "worker"}),
            vec!["tasks_queue_nope2.txt", "not in S3"],
            "RejectedJob",
        ),
    ] {
        let before = snapshot(&env.aws, Some(&env.bucket)).await;
        let result = env.scheduler.handle(&event, "req-continuation", &Unlimited).await;
        let after = snapshot(&env.aws, Some(&env.bucket)).await;
        let mut problems = match result {
            Ok(stats) => vec![format!("accepted: {stats:?}")],
            Err(e) => {
                let (k, message) = error_type(e.into());
                let mut p = missing(&message, &needles);
                if k != kind {
                    p.push(format!("errorType {k}, expected {kind}: {message}"));
                }
                p
            }
        };
        if before != after {
            problems.push(format!("written: {:?}", diff(&before, &after)));
        }
        v.case(&format!("continuation: {name}"), problems);
    }

    // Queue files handed over to a sibling (`<prefix>/<file>`), then continued.
    let long_row = format!(
        "{{\"labourer_id\": \"worker\", \"blob\": \"{}\"}}\n",
        "z".repeat(1024 * 1024 + 10)
    );
    let files: Vec<QueueFileCase> = vec![
        (
            "bytes that are not UTF-8",
            b"{\"labourer_id\": \"worker\", \"w\": \"\xff\xfe\"}\n".to_vec(),
            vec![],
            vec!["row 0", "UTF-8"],
        ),
        (
            "a row that is not JSON",
            b"labourer_id=worker\n".to_vec(),
            vec![],
            vec!["row 0"],
        ),
        (
            "a row that is a JSON list",
            b"[1, 2]\n".to_vec(),
            vec![],
            vec!["row 0"],
        ),
        (
            "a row without labourer_id",
            b"{\"a\": 1}\n".to_vec(),
            vec![],
            vec!["row 0", "labourer_id"],
        ),
        (
            "a row of an unknown labourer",
            b"{\"labourer_id\": \"ghost\"}\n".to_vec(),
            vec![],
            vec!["row 0", "ghost"],
        ),
        (
            "a row with a generated field",
            b"{\"labourer_id\": \"worker\", \"greenfield\": 5}\n".to_vec(),
            vec![],
            vec!["row 0", "greenfield"],
        ),
        (
            "a row whose payload is a list",
            b"{\"labourer_id\": \"worker\", \"payload\": \"[1]\"}\n".to_vec(),
            vec![],
            vec!["row 0", "payload"],
        ),
        (
            "a row longer than 1 MiB",
            long_row.into_bytes(),
            vec![],
            vec!["row 0", "long"],
        ),
        (
            "first-row metadata not a number",
            b"{\"labourer_id\": \"worker\"}\n".to_vec(),
            vec![("sosw-first-row", "abc")],
            vec!["sosw-first-row", "abc"],
        ),
        (
            "next-row metadata past the end",
            b"{\"labourer_id\": \"worker\"}\n".to_vec(),
            vec![("sosw-next-row", "99")],
            vec!["99"],
        ),
        (
            "a good row, then a bad one",
            b"{\"labourer_id\": \"worker\", \"k\": 1}\n[1]\n".to_vec(),
            vec![],
            vec!["row 1"],
        ),
    ];
    for (k, (name, body, metadata, needles)) in files.into_iter().enumerate() {
        let file = format!("tasks_queue_bad{k}.txt");
        let key = format!("sosw/scheduler/{file}");
        let mut put = env
            .s3
            .put_object()
            .bucket(&env.bucket)
            .key(&key)
            .body(body.clone().into());
        for (m, value) in &metadata {
            put = put.metadata(*m, *value);
        }
        put.send().await.unwrap();
        let before = snapshot(&env.aws, Some(&env.bucket)).await;
        let result = env
            .scheduler
            .handle(&json!({"file_name": file}), "req-file", &Unlimited)
            .await;
        let after = snapshot(&env.aws, Some(&env.bucket)).await;
        let mut problems = match result {
            Ok(stats) => vec![format!("accepted: {stats:?}")],
            Err(e) => {
                let (kind, message) = error_type(e.into());
                let mut p = missing(&message, &needles);
                if !message.contains(&file) {
                    p.push(format!("the error does not name the file: {message}"));
                }
                if kind != "RejectedJob" {
                    p.push(format!("errorType {kind}, expected RejectedJob: {message}"));
                }
                p
            }
        };
        // The tables are untouched; the file is kept, whole (possibly locked for a retry).
        let changes = diff(&before, &after);
        for (table, change) in &changes {
            if !table.starts_with("s3://") {
                problems.push(format!("written to {table}: {change:?}"));
            }
        }
        let mut kept = None;
        for candidate in [key.clone(), format!("sosw/scheduler/locked_{file}")] {
            if let Ok(object) = env
                .s3
                .get_object()
                .bucket(&env.bucket)
                .key(&candidate)
                .send()
                .await
            {
                let bytes = object.body.collect().await.unwrap().into_bytes();
                kept = Some((candidate, bytes.to_vec() == body));
            }
        }
        match kept {
            Some((_, true)) => {}
            Some((at, false)) => problems.push(format!("the file at {at} was changed")),
            None => problems.push("the file is gone".into()),
        }
        v.case(&format!("queue file: {name}"), problems);
        // Clean up for the next case.
        for candidate in [key.clone(), format!("sosw/scheduler/locked_{file}")] {
            env.s3
                .delete_object()
                .bucket(&env.bucket)
                .key(&candidate)
                .send()
                .await
                .unwrap();
        }
    }
    v.finish("continuations and queue files", 19);
}

#[tokio::test]
async fn worker_assistant_events() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let cfg = TaskConfig::from_user(&json!({"labourers": {"worker": {"max_duration": 60}}})).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg,
        clock.clone(),
    );
    let ids: Vec<String> = tasks
        .create_tasks(
            "worker",
            (0..3)
                .map(|k| json!({"payload": {"k": k}}).as_object().cloned().unwrap())
                .collect(),
            true,
        )
        .await
        .unwrap()
        .iter()
        .map(|i| i["task_id"].as_s().unwrap().clone())
        .collect();
    // ids[0] queued, ids[1] running, ids[2] archived.
    let l = tasks.register_labourer("worker").unwrap();
    for id in &ids[1..] {
        let t = tasks.get_task(id).await.unwrap().unwrap();
        tasks.claim(&l, &t).await.unwrap();
    }
    tasks.mark_completed(&ids[2], None, None).await.unwrap();
    let done = tasks.get_task(&ids[2]).await.unwrap().unwrap();
    assert!(tasks.archive(&done).await.unwrap());
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let wa = sosw_worker_assistant::WorkerAssistant::new(tasks, meta);
    let (queued, running, archived) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());
    let completed = "mark_task_as_completed";
    let cases: Vec<(&str, Value, Vec<&str>, &str)> = vec![
        (
            "a list",
            json!([1]),
            vec!["must be a JSON object"],
            "RejectedEvent",
        ),
        (
            "a string",
            json!("mark_task_as_completed"),
            vec!["must be a JSON object"],
            "RejectedEvent",
        ),
        (
            "null",
            json!(null),
            vec!["must be a JSON object"],
            "RejectedEvent",
        ),
        (
            "a number",
            json!(7),
            vec!["must be a JSON object"],
            "RejectedEvent",
        ),
        (
            "no action",
            json!({"task_id": running}),
            vec!["`action`"],
            "RejectedEvent",
        ),
        (
            "an unknown action",
            json!({"action": "delete_task", "task_id": running}),
            vec!["`delete_task` is not supported"],
            "RejectedEvent",
        ),
        (
            "an action that is a number",
            json!({"action": 1, "task_id": running}),
            vec!["action", "not supported"],
            "RejectedEvent",
        ),
        (
            "no task_id",
            json!({"action": completed}),
            vec!["`task_id`"],
            "RejectedEvent",
        ),
        (
            "an empty task_id",
            json!({"action": completed, "task_id": ""}),
            vec!["`task_id`"],
            "RejectedEvent",
        ),
        (
            "a task_id that is a number",
            json!({"action": completed, "task_id": 12}),
            vec!["`task_id`"],
            "RejectedEvent",
        ),
        (
            "stats a JSON list",
            json!({"action": completed, "task_id": running, "stats": "[1]"}),
            vec!["`stats`"],
            "RejectedEvent",
        ),
        (
            "stats not JSON",
            json!({"action": completed, "task_id": running, "stats": "{broken"}),
            vec!["`stats`", "invalid JSON"],
            "RejectedEvent",
        ),
        (
            "stats a number",
            json!({"action": completed, "task_id": running, "stats": 5}),
            vec!["`stats`"],
            "RejectedEvent",
        ),
        (
            "result a list",
            json!({"action": "mark_task_as_failed", "task_id": running, "result": [1, 2]}),
            vec!["`result`"],
            "RejectedEvent",
        ),
        // Unknown or retrying cannot be told apart without a scan: refused, recorded in its history.
        (
            "an unknown task",
            json!({"action": completed, "task_id": "no-such-task"}),
            vec!["no-such-task"],
            "ReportRefused",
        ),
        (
            "completing a queued task",
            json!({"action": completed, "task_id": queued}),
            vec![queued],
            "ReportRefused",
        ),
        (
            "failing a queued task",
            json!({"action": "mark_task_as_failed", "task_id": queued}),
            vec![queued],
            "ReportRefused",
        ),
        (
            "completing an archived task",
            json!({"action": completed, "task_id": archived}),
            vec![archived],
            "ReportRefused",
        ),
    ];
    let mut v = Verdicts::default();
    for (name, event, needles, kind) in cases {
        let before = snapshot(&aws, None).await;
        let result = wa.handle(&event).await;
        let after = snapshot(&aws, None).await;
        let mut problems = match result {
            Ok(out) => vec![format!("accepted: {out}")],
            Err(e) => {
                let (k, message) = error_type(e.into());
                let mut p = missing(&message, &needles);
                if k != kind {
                    p.push(format!("errorType {k}, expected {kind}: {message}"));
                }
                p
            }
        };
        // Only the documented `report_refused` history row of the task may be added.
        for (table, (gone, new)) in diff(&before, &after) {
            let allowed = table == META_TABLE
                && gone.is_empty()
                && kind != "RejectedEvent"
                && new
                    .iter()
                    .all(|r| r.contains("report_refused") && needles.iter().all(|n| r.contains(n)));
            if !allowed {
                problems.push(format!("{table} changed: gone {gone:?}, new {new:?}"));
            }
        }
        v.case(&format!("Worker Assistant: {name}"), problems);
    }
    v.finish("worker assistant events", 18);
}

#[tokio::test]
async fn config_documents() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let source = ConfigSource::Dynamo {
        client: dynamo.clone(),
        table: "config".into(),
        env: "production".into(),
    };
    let raw = |text: &str| AttributeValue::S(text.to_string());
    let doc = |v: Value| AttributeValue::S(v.to_string());
    // (case, document name, config_value, needles)
    let cases: Vec<(&str, &str, AttributeValue, Vec<&str>)> = vec![
        (
            "not JSON",
            "sosw_orchestrator_config",
            raw("{\"task_config\": "),
            vec!["sosw_orchestrator_config"],
        ),
        (
            "a JSON list",
            "sosw_orchestrator_config",
            raw("[1]"),
            vec!["sosw_orchestrator_config"],
        ),
        (
            "a JSON string",
            "sosw_orchestrator_config",
            raw("\"x\""),
            vec!["sosw_orchestrator_config"],
        ),
        (
            "a JSON number",
            "sosw_essential_config",
            raw("3"),
            vec!["sosw_essential_config"],
        ),
        (
            "config_value a number attribute",
            "sosw_orchestrator_config",
            AttributeValue::N("3".into()),
            vec!["sosw_orchestrator_config", "config_value"],
        ),
        (
            "max_attempts a fraction",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"max_attempts": 2.5}})),
            vec!["max_attempts"],
        ),
        (
            "max_attempts a string",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"max_attempts": "three"}})),
            vec!["max_attempts"],
        ),
        (
            "max_attempts a boolean",
            "sosw_essential_config",
            doc(json!({"task_config": {"max_attempts": true}})),
            vec!["max_attempts"],
        ),
        (
            "greenfield_task_step 0",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"greenfield_task_step": 0}})),
            vec!["greenfield_task_step"],
        ),
        (
            "greenfield_invocation_delta too short",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"greenfield_invocation_delta": 10, "labourers": {"w": {}}}})),
            vec!["greenfield_invocation_delta"],
        ),
        (
            "greenfield_invocation_delta huge",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"greenfield_invocation_delta": 9_000_000_000_000_000_000u64}})),
            vec!["greenfield_invocation_delta"],
        ),
        (
            "negative duration",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"labourers": {"w": {"duration": -5}}}})),
            vec!["labourers.w.duration"],
        ),
        (
            "fractional max_simultaneous_invocations",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"labourers": {"w": {"max_simultaneous_invocations": 1.5}}}})),
            vec!["max_simultaneous_invocations"],
        ),
        (
            "labourers a string",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"labourers": "w"}})),
            vec!["labourers"],
        ),
        (
            "task_config a string",
            "sosw_orchestrator_config",
            doc(json!({"task_config": "x"})),
            vec!["task_config"],
        ),
        (
            "table name a number",
            "sosw_orchestrator_config",
            doc(json!({"task_config": {"dynamo_db_config": {"table_name": 5}}})),
            vec!["table_name"],
        ),
        (
            "feelings status above 4",
            "sosw_orchestrator_config",
            doc(
                json!({"task_config": {"labourers": {"w": {"health_metrics": {"m": {"details": {}, "feelings": {"9": 1}, "feeling_comparison_operator": "<="}}}}}}),
            ),
            vec!["9"],
        ),
        (
            "feeling operator not a comparison",
            "sosw_orchestrator_config",
            doc(
                json!({"task_config": {"labourers": {"w": {"health_metrics": {"m": {"details": {}, "feelings": {"3": 50, "4": 25}, "feeling_comparison_operator": "contains"}}}}}}),
            ),
            vec!["contains"],
        ),
        (
            "feelings out of order",
            "sosw_orchestrator_config",
            doc(
                json!({"task_config": {"labourers": {"w": {"health_metrics": {"m": {"details": {}, "feelings": {"3": 10, "4": 50}, "feeling_comparison_operator": "<="}}}}}}),
            ),
            vec!["m"],
        ),
        (
            "invocation coefficient key not a status",
            "sosw_orchestrator_config",
            doc(json!({"invocation_number_coefficient": {"high": 1}})),
            vec!["high"],
        ),
        (
            "scheduler rows_to_process 0",
            "sosw_scheduler_config",
            doc(json!({"rows_to_process": 0})),
            vec!["rows_to_process"],
        ),
        (
            "scheduler queue_file without extension",
            "sosw_scheduler_config",
            doc(json!({"queue_file": "tasks"})),
            vec!["queue_file", "extension"],
        ),
        (
            "scheduler checkpoint_rows 0",
            "sosw_scheduler_config",
            doc(json!({"checkpoint_rows": 0})),
            vec!["checkpoint_rows"],
        ),
    ];
    let mut v = Verdicts::default();
    for (name, document, value, needles) in cases {
        dynamo
            .put_item()
            .table_name("config")
            .item("env", AttributeValue::S("production".into()))
            .item("config_name", AttributeValue::S(document.into()))
            .item("config_value", value)
            .send()
            .await
            .unwrap();
        let before = snapshot(&aws, None).await;
        let result: Result<(), EdgeError> = if document == "sosw_scheduler_config" {
            async {
                let doc: Value = source
                    .load_essential("sosw_scheduler", SchedulerConfig::defaults(), None)
                    .await?;
                SchedulerConfig::from_document(doc)?;
                Ok(())
            }
            .await
        } else {
            async {
                let config: sosw_orchestrator::OrchestratorConfig = source
                    .load_essential(
                        "sosw_orchestrator",
                        sosw_orchestrator::OrchestratorConfig::defaults(),
                        None,
                    )
                    .await?;
                config.validate()?;
                Ok(())
            }
            .await
        };
        let after = snapshot(&aws, None).await;
        let mut problems = match result {
            Ok(()) => vec!["accepted".to_string()],
            Err(e) => {
                let (kind, message) = error_type(e);
                let mut p = missing(&message, &needles);
                if kind != "ConfigInvalid" {
                    p.push(format!("errorType {kind}, expected ConfigInvalid: {message}"));
                }
                p
            }
        };
        if before != after {
            problems.push(format!("written: {:?}", diff(&before, &after)));
        }
        v.case(&format!("config: {name}"), problems);
        dynamo
            .delete_item()
            .table_name("config")
            .key("env", AttributeValue::S("production".into()))
            .key("config_name", AttributeValue::S(document.into()))
            .send()
            .await
            .unwrap();
    }
    v.finish("config documents", 23);
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn rows_already_in_the_tables_are_quarantined_visibly() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let cfg = TaskConfig::from_user(
        &json!({"labourers": {"worker": {"max_duration": 60, "max_simultaneous_invocations": 10}}}),
    )
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg.clone(),
        clock.clone(),
    );
    let meta = Arc::new(MetaHandler::new(
        dynamo.clone(),
        &MetaHandlerConfig::default(),
        clock.clone(),
    ));
    let mut odoc = sosw_orchestrator::OrchestratorConfig::defaults();
    sosw_core::config::merge(
        &mut odoc,
        &json!({"task_config": {"labourers": {"worker": {"max_duration": 60, "max_simultaneous_invocations": 10}}}}),
    );
    let ocfg: sosw_orchestrator::OrchestratorConfig = sosw_core::config::from_value("corpus", odoc).unwrap();
    let invoker = Arc::new(RecordingInvoker::default());
    let orchestrator = sosw_orchestrator::Orchestrator::new(
        tasks.clone(),
        EcologyManager::new(
            // No health metrics configured: CloudWatch is never asked.
            Arc::new(sosw_core::ecology::CloudWatchMetrics(
                aws_sdk_cloudwatch::Client::new(aws.sdk_config()),
            )),
            ocfg.task_config.ecology_config.clone(),
            clock.clone(),
        ),
        meta.clone(),
        invoker.clone(),
        ocfg,
    );
    let mut sdoc = sosw_scavenger::ScavengerConfig::defaults();
    sosw_core::config::merge(
        &mut sdoc,
        &json!({"task_config": {"labourers": {"worker": {"max_duration": 60}}}}),
    );
    let scfg: sosw_scavenger::ScavengerConfig = sosw_core::config::from_value("corpus", sdoc).unwrap();
    let scavenger = sosw_scavenger::Scavenger::new(
        tasks.clone(),
        meta.clone(),
        Arc::new(sosw_scavenger::RecordingNotifier::default()),
        scfg,
    );
    let now = SystemClock.now_secs();
    let row = |id: &str, fields: &[(&str, AttributeValue)]| -> Item {
        let mut item: Item = [
            ("task_id".to_string(), s(id)),
            ("labourer_id".to_string(), s("worker")),
            ("greenfield".to_string(), n(1000)),
            ("attempts".to_string(), n(0)),
            ("payload".to_string(), s("{}")),
        ]
        .into();
        for (k, v) in fields {
            match v {
                AttributeValue::Null(_) => item.remove(*k),
                _ => item.insert(k.to_string(), v.clone()),
            };
        }
        item
    };
    let absent = AttributeValue::Null(true);
    let huge = format!("{{\"blob\": \"{}\"}}", "x".repeat(300 * 1024));
    // (case, table, row, needles in closed_reason)
    let cases: Vec<(&str, &str, Item, Vec<&str>)> = vec![
        // (A greenfield that is not a number cannot be stored: it is the index's sort key.)
        (
            "payload an empty string",
            "sosw_tasks",
            row("pl-empty", &[("payload", s(""))]),
            vec!["payload"],
        ),
        (
            "attempts a string",
            "sosw_tasks",
            row("att-string", &[("attempts", s("x"))]),
            vec!["attempts"],
        ),
        (
            "attempts negative",
            "sosw_tasks",
            row("att-neg", &[("attempts", n(-1))]),
            vec!["attempts", "-1"],
        ),
        (
            "attempts absurd",
            "sosw_tasks",
            row("att-huge", &[("attempts", n(10_000_000))]),
            vec!["attempts", "10000000"],
        ),
        (
            "attempts a boolean",
            "sosw_tasks",
            row("att-bool", &[("attempts", AttributeValue::Bool(true))]),
            vec!["attempts"],
        ),
        (
            "payload a JSON list",
            "sosw_tasks",
            row("pl-list", &[("payload", s("[1, 2]"))]),
            vec!["payload", "not a JSON object"],
        ),
        (
            "payload not JSON",
            "sosw_tasks",
            row("pl-text", &[("payload", s("oops"))]),
            vec!["payload"],
        ),
        (
            "payload a number attribute",
            "sosw_tasks",
            row("pl-number", &[("payload", n(5))]),
            vec!["payload"],
        ),
        (
            "payload over 256 KiB",
            "sosw_tasks",
            row("pl-huge", &[("payload", s(&huge))]),
            vec!["262144"],
        ),
        (
            "completed_at a string",
            "sosw_tasks",
            row("ca-string", &[("completed_at", s("yesterday"))]),
            vec!["completed_at"],
        ),
        (
            "retry row without greenfield",
            "sosw_retry_tasks",
            row(
                "rt-nogf",
                &[
                    ("greenfield", absent.clone()),
                    ("desired_launch_time", n(now - 10)),
                ],
            ),
            vec!["greenfield"],
        ),
        (
            "retry row with attempts a string",
            "sosw_retry_tasks",
            row(
                "rt-att",
                &[("attempts", s("two")), ("desired_launch_time", n(now - 10))],
            ),
            vec!["attempts"],
        ),
    ];
    let mut v = Verdicts::default();
    for (name, table, item, needles) in cases {
        let id = match &item["task_id"] {
            AttributeValue::S(id) => id.clone(),
            _ => unreachable!(),
        };
        dynamo
            .put_item()
            .table_name(table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .unwrap();
        let before = snapshot(&aws, None).await;
        let o = orchestrator.run().await;
        let sc = scavenger.run().await;
        meta.flush().await;
        let after = snapshot(&aws, None).await;
        let mut problems = Vec::new();
        if !invoker.calls().is_empty() {
            problems.push(format!("invoked: {:?}", invoker.calls()));
        }
        // The row left its table and is in the archive as dead, with a closed_reason naming the problem.
        let closed = dynamo
            .get_item()
            .table_name("sosw_closed_tasks")
            .key("task_id", s(&id))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        match closed.item() {
            None => problems.push(format!("not quarantined (orchestrator {o:?}, scavenger {sc:?})")),
            Some(archived) => {
                match archived.get("closed_reason") {
                    Some(AttributeValue::S(reason)) => problems.extend(missing(reason, &needles)),
                    other => problems.push(format!("closed_reason is {other:?}")),
                }
                if archived.get("labourer_id_task_status") != Some(&s("worker_0")) {
                    problems.push(format!(
                        "not archived as dead: {:?}",
                        archived.get("labourer_id_task_status")
                    ));
                }
                // Every attribute of the row kept as it was.
                for (k, value) in &item {
                    if archived.get(k) != Some(value) {
                        problems.push(format!("attribute `{k}` not kept: {:?}", archived.get(k)));
                    }
                }
            }
        }
        // Nothing else: the row moved (gone from its table, new in the archive), its history row.
        for (t, (gone, new)) in diff(&before, &after) {
            let ok = if t == table {
                gone.len() == 1 && gone[0].contains(&id) && new.is_empty()
            } else if t == "sosw_closed_tasks" {
                gone.is_empty() && new.len() == 1 && new[0].contains(&id)
            } else if t == META_TABLE {
                gone.is_empty() && new.iter().all(|r| r.contains(&id) && r.contains("quarantined"))
            } else {
                false
            };
            if !ok {
                problems.push(format!("{t} changed: gone {gone:?}, new {new:?}"));
            }
        }
        v.case(&format!("row: {name}"), problems);
    }
    v.finish("rows in the tables", 12);
}
