//! `sosw check` against the local AWS: a clean installation exits 0, every seeded inconsistency
//! is found and named (table, task id or key, what is wrong), `--json` parses, and nothing is
//! written (every table, the bucket and the failed-jobs queue are compared before and after).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sosw_core::check::{self, CheckOptions, FindingKind, QueueFiles};
use sosw_core::{ManualClock, SystemClock, TaskConfig, TaskManager};
use sosw_test_support::LocalAws;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;

const ESSENTIAL: &str =
    r#"{"task_config": {"labourers": {"worker": {"max_simultaneous_invocations": 4, "max_duration": 60}}}}"#;

fn sosw(aws: &LocalAws, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sosw"))
        .args(args)
        .envs(aws.env())
        .output()
        .expect("run sosw")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Installation {
    aws: LocalAws,
    tm: TaskManager,
    bucket: String,
    dynamo: aws_sdk_dynamodb::Client,
    /// The clients as the essentials build them (path-style S3 for the emulator).
    s3: sosw_core::aws::Clients,
}

async fn installation() -> Installation {
    let aws = LocalAws::start().await;
    let bucket = aws.deploy_queue_bucket().await;
    let essential: Value = serde_json::from_str(ESSENTIAL).unwrap();
    aws.put_config("sosw_essential_config", &essential).await;
    aws.put_config("sosw_scheduler_config", &json!({"queue_bucket": bucket}))
        .await;
    let tm = manager(&aws, Arc::new(SystemClock));
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let s3 = sosw_core::aws::Clients::new(aws.sdk_config());
    Installation {
        aws,
        tm,
        bucket,
        dynamo,
        s3,
    }
}

fn manager(aws: &LocalAws, clock: Arc<dyn sosw_core::Clock>) -> TaskManager {
    let essential: Value = serde_json::from_str(ESSENTIAL).unwrap();
    let cfg = TaskConfig::from_user(&essential["task_config"]).unwrap();
    TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg,
        clock,
    )
}

/// Every item of every table, every object (key, size, etag) of the bucket.
async fn snapshot(i: &Installation) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let tables = i.dynamo.list_tables().send().await.unwrap();
    for table in tables.table_names() {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let page = i
                .dynamo
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            for item in page.items() {
                let sorted: BTreeMap<_, _> = item.iter().collect();
                rows.push(format!("{sorted:?}"));
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        rows.sort();
        out.insert(format!("table {table}"), rows);
    }
    let objects = i.s3.s3.list_objects_v2().bucket(&i.bucket).send().await.unwrap();
    out.insert(
        format!("bucket {}", i.bucket),
        objects
            .contents()
            .iter()
            .map(|o| format!("{:?} {:?} {:?}", o.key(), o.size(), o.e_tag()))
            .collect(),
    );
    out
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn row(id: &str, labourer: &str, greenfield: i64, attempts: i64, payload: &str) -> sosw_core::task::Item {
    [
        ("task_id".to_string(), s(id)),
        ("labourer_id".to_string(), s(labourer)),
        ("greenfield".to_string(), n(greenfield)),
        ("attempts".to_string(), n(attempts)),
        ("payload".to_string(), s(payload)),
        ("created_at".to_string(), n(1_700_000_000)),
    ]
    .into()
}

async fn put(i: &Installation, table: &str, item: sosw_core::task::Item) {
    i.dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put into {table}: {e:?}"));
}

fn now() -> i64 {
    SystemClock.now_secs()
}

use sosw_core::Clock as _;

/// A lifecycle with every state: queued, running, completed, retrying, archived completed/dead.
async fn healthy_tasks(i: &Installation) {
    let tm = &i.tm;
    tm.create_tasks(
        "worker",
        (0..6)
            .map(|k| json!({"payload": {"k": k}}).as_object().cloned().unwrap())
            .collect(),
        true,
    )
    .await
    .unwrap();
    let l = tm.register_labourer("worker").unwrap();
    let claimed = tm.next_tasks(&l, 4).await.unwrap();
    for t in &claimed {
        tm.claim(&l, t).await.unwrap();
    }
    // One completed and archived, one completed waiting, one to retry, one running.
    tm.mark_completed(&claimed[0].task_id.0, None, None)
        .await
        .unwrap();
    let done = tm.get_task(&claimed[0].task_id.0).await.unwrap().unwrap();
    assert!(tm.archive(&done).await.unwrap());
    tm.mark_completed(&claimed[1].task_id.0, None, None)
        .await
        .unwrap();
    let expired = tm.get_task(&claimed[2].task_id.0).await.unwrap().unwrap();
    assert!(tm.move_to_retry(&expired, 60).await.unwrap());
}

#[tokio::test]
async fn a_clean_installation_exits_0_with_counts_per_labourer_and_nothing_written() {
    let i = installation().await;
    healthy_tasks(&i).await;
    let before = snapshot(&i).await;
    let out = sosw(&i.aws, &["check", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_str(&text(&out.stdout)).expect("--json is JSON");
    assert_eq!(report["findings"], json!([]));
    let w = &report["labourers"][0];
    assert_eq!(w["labourer_id"], "worker");
    assert_eq!(w["configured"], true);
    assert_eq!(
        (
            &w["queued"],
            &w["running"],
            &w["completed_not_archived"],
            &w["retrying"],
            &w["archived_completed"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1), &json!(1)),
        "{w}"
    );
    assert_eq!(report["queue_files"], 0);
    assert!(report["cost"]["items_read"].as_u64().unwrap() >= 6, "{report}");
    let table = sosw(&i.aws, &["check"]);
    assert_eq!(table.status.code(), Some(0));
    assert!(
        text(&table.stdout).contains("no problems found"),
        "{}",
        text(&table.stdout)
    );
    assert_eq!(before, snapshot(&i).await, "sosw check wrote something");
}

#[tokio::test]
async fn every_seeded_inconsistency_is_found_and_named_with_exit_3_and_nothing_written() {
    let i = installation().await;
    healthy_tasks(&i).await;
    let t = now();
    let (tasks, retry, closed) = ("sosw_tasks", "sosw_retry_tasks", "sosw_closed_tasks");
    // In two tables: queued and archived as completed.
    put(&i, tasks, row("twice", "worker", 1000, 0, "{}")).await;
    let mut archived = row("twice", "worker", 1000, 1, "{}");
    archived.insert("labourer_id_task_status".into(), s("worker_1"));
    archived.insert("closed_at".into(), n(t));
    put(&i, closed, archived).await;
    // Rows that do not parse.
    let mut bad = row("bad-greenfield", "worker", 1000, 0, "{}");
    bad.insert("greenfield".into(), s("soon"));
    put(&i, tasks, bad).await;
    let mut no_launch = row("no-launch-time", "worker", t + 100, 1, "{}");
    no_launch.remove("created_at");
    put(&i, retry, no_launch).await;
    let mut bad_status = row("bad-status", "worker", 1000, 1, "{}");
    bad_status.insert("labourer_id_task_status".into(), s("worker_7"));
    bad_status.insert("closed_at".into(), n(t));
    put(&i, closed, bad_status).await;
    // Payloads.
    put(&i, tasks, row("list-payload", "worker", 2000, 0, "[1, 2]")).await;
    let huge = format!("{{\"blob\": \"{}\"}}", "x".repeat(300 * 1024));
    put(&i, tasks, row("huge-payload", "worker", 3000, 0, &huge)).await;
    // Unknown labourer (queued and retrying).
    put(&i, tasks, row("ghost-task", "ghost", 1000, 0, "{}")).await;
    let mut ghost_retry = row("ghost-retry", "ghost", t + 100, 1, "{}");
    ghost_retry.insert("desired_launch_time".into(), n(t + 60));
    put(&i, retry, ghost_retry).await;
    // Queue position at or beyond now; greenfield beyond the invoked range.
    put(&i, tasks, row("future-queue", "worker", t + 10, 0, "{}")).await;
    put(
        &i,
        tasks,
        row("far-future", "worker", t + 10 * 31_557_600, 1, "{}"),
    )
    .await;
    // Attempts beyond max_attempts (3) in the queue and in the completed archive; fine when dead.
    put(&i, tasks, row("too-many", "worker", 4000, 7, "{}")).await;
    let mut done_many = row("done-many", "worker", 1000, 9, "{}");
    done_many.insert("labourer_id_task_status".into(), s("worker_1"));
    done_many.insert("closed_at".into(), n(t));
    put(&i, closed, done_many).await;
    let mut dead_many = row("dead-many", "worker", 1000, 9, "{}");
    dead_many.insert("labourer_id_task_status".into(), s("worker_0"));
    dead_many.insert("closed_at".into(), n(t));
    put(&i, closed, dead_many).await;
    // Closed without closed_at.
    let mut unclosed = row("no-closed-at", "worker", 1000, 1, "{}");
    unclosed.insert("labourer_id_task_status".into(), s("worker_0"));
    put(&i, closed, unclosed).await;

    let before = snapshot(&i).await;
    let out = sosw(&i.aws, &["check", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: Value = serde_json::from_str(&text(&out.stdout)).expect("--json is JSON");
    let findings = report["findings"].as_array().unwrap();
    let has = |kind: &str, location: &str, task: &str, words: &str| {
        assert!(
            findings.iter().any(|f| f["kind"] == kind
                && f["location"].as_str().unwrap().contains(location)
                && f["task_id"] == task
                && f["detail"].as_str().unwrap().contains(words)),
            "no {kind} for {task} in {location} mentioning {words:?}: {}",
            serde_json::to_string_pretty(findings).unwrap()
        )
    };
    has(
        "in_two_tables",
        "sosw_tasks + sosw_closed_tasks",
        "twice",
        "2 tables",
    );
    has("row_does_not_parse", tasks, "bad-greenfield", "greenfield");
    has(
        "row_does_not_parse",
        retry,
        "no-launch-time",
        "desired_launch_time",
    );
    has("row_does_not_parse", closed, "bad-status", "worker_7");
    has("payload_not_object", tasks, "list-payload", "not a JSON object");
    has("payload_too_large", tasks, "huge-payload", "262144");
    has(
        "unknown_labourer",
        tasks,
        "ghost-task",
        "`ghost` is not configured",
    );
    has(
        "unknown_labourer",
        retry,
        "ghost-retry",
        "`ghost` is not configured",
    );
    has(
        "queue_position_not_below_now",
        tasks,
        "future-queue",
        "never invoked",
    );
    has(
        "greenfield_beyond_invoked_range",
        tasks,
        "far-future",
        "beyond now",
    );
    has(
        "attempts_beyond_max",
        tasks,
        "too-many",
        "attempts 7 is above max_attempts 3",
    );
    has(
        "attempts_beyond_max",
        closed,
        "done-many",
        "completed with attempts 9",
    );
    has("closed_without_closed_at", closed, "no-closed-at", "closed_at");
    assert!(
        !findings.iter().any(|f| f["task_id"] == "dead-many"),
        "a dead task may have any attempts"
    );
    assert_eq!(
        findings.len(),
        13,
        "{}",
        serde_json::to_string_pretty(findings).unwrap()
    );
    let ghost = report["labourers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["labourer_id"] == "ghost")
        .expect("unknown labourers are counted too");
    assert_eq!(
        (&ghost["configured"], &ghost["queued"], &ghost["retrying"]),
        (&json!(false), &json!(1), &json!(1))
    );
    // The table names every problem too.
    let table = sosw(&i.aws, &["check"]);
    assert_eq!(table.status.code(), Some(3));
    let table = text(&table.stdout);
    assert!(table.contains("13 problem(s)"), "{table}");
    assert!(
        table.contains("in_two_tables") && table.contains("task twice"),
        "{table}"
    );
    assert!(table.contains("ghost (not configured)"), "{table}");
    assert_eq!(before, snapshot(&i).await, "sosw check wrote something");
}

#[tokio::test]
async fn stuck_queue_files_and_failed_jobs_are_found() {
    let i = installation().await;
    let put_object = |key: &'static str| {
        let s3 = i.s3.s3.clone();
        let bucket = i.bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(b"{\"k\": 1}\n".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    };
    put_object("sosw/scheduler/locked_tasks_queue_a.txt").await;
    put_object("sosw/scheduler/locked_tasks_queue_b.txt").await;
    put_object("sosw/scheduler/locked_tasks_queue_b.txt.checkpoint").await;
    put_object("sosw/scheduler/tasks_queue_c.txt").await;
    let sqs = aws_sdk_sqs::Client::new(i.aws.sdk_config());
    let queue_url = sqs
        .create_queue()
        .queue_name("sosw_scheduler_failed_jobs")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("{\"job\": {}}")
        .send()
        .await
        .unwrap();
    let options = |clock_offset: f64| {
        (
            CheckOptions {
                queue_files: Some(QueueFiles {
                    s3: i.s3.s3.clone(),
                    bucket: i.bucket.clone(),
                    prefix: "sosw/scheduler".into(),
                }),
                failed_jobs_queue: Some("sosw_scheduler_failed_jobs".into()),
                ..CheckOptions::default()
            },
            manager(&i.aws, Arc::new(ManualClock::at(now() as f64 + clock_offset))),
        )
    };
    // Just written: no Scheduler has been running for too long yet; the failed job waits.
    let (opts, tm) = options(0.0);
    let fresh = check::check_with_sqs(&tm, &opts, Some(&sqs)).await.unwrap();
    assert_eq!(fresh.queue_files, Some(3));
    assert_eq!(fresh.of_kind(FindingKind::QueueFileLockedTooLong).count(), 0);
    let failed: Vec<_> = fresh.of_kind(FindingKind::FailedJobsWaiting).collect();
    assert_eq!(failed.len(), 1, "{:?}", fresh.findings);
    assert_eq!(failed[0].location, queue_url);
    assert!(
        failed[0].detail.starts_with("1 failed Scheduler job(s) waiting"),
        "{}",
        failed[0].detail
    );
    // Twenty minutes later (longer than a Scheduler's 15).
    let (opts, tm) = options(1200.0);
    let late = check::check_with_sqs(&tm, &opts, Some(&sqs)).await.unwrap();
    let locked: Vec<_> = late.of_kind(FindingKind::QueueFileLockedTooLong).collect();
    let keys: Vec<_> = locked.iter().map(|f| f.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "sosw/scheduler/locked_tasks_queue_a.txt",
            "sosw/scheduler/locked_tasks_queue_b.txt"
        ]
    );
    assert_eq!(locked[0].location, format!("s3://{}", i.bucket));
    assert!(
        locked[0].detail.contains(r#"{"file_name": "tasks_queue_a.txt"}"#)
            && locked[0].detail.contains("`sosw resume tasks_queue_a.txt`"),
        "{}",
        locked[0].detail
    );
    let handed: Vec<_> = late.of_kind(FindingKind::QueueFileNotPickedUp).collect();
    assert_eq!(handed.len(), 1);
    assert!(
        handed[0].detail.contains("`sosw resume tasks_queue_c.txt`"),
        "{}",
        handed[0].detail
    );
    assert_eq!(handed[0].key.as_deref(), Some("sosw/scheduler/tasks_queue_c.txt"));
    // Through the binary: exit 3 on the failed job, and the queue's message is still there.
    let out = sosw(
        &i.aws,
        &["check", "--failed-jobs-queue", "sosw_scheduler_failed_jobs"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("failed_jobs_waiting"),
        "{}",
        text(&out.stdout)
    );
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages],
        "1"
    );
}

#[tokio::test]
async fn exit_codes_tell_a_failure_to_run_from_usage_and_from_problems() {
    let i = installation().await;
    // The bucket does not exist: the check cannot run (1), naming the bucket.
    let out = sosw(&i.aws, &["check", "--queue-bucket", "no-such-bucket"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("s3://no-such-bucket/"),
        "{}",
        text(&out.stderr)
    );
    // Usage: 2 (clap), and a nonsense budget.
    let out = sosw(&i.aws, &["check", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = sosw(&i.aws, &["check", "--max-rcu", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--max-rcu"), "{}", text(&out.stderr));
    // An installation without a Scheduler.
    let out = sosw(&i.aws, &["check", "--no-queue-files"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test]
async fn the_scan_pages_and_budgets_the_larger_of_reported_and_size_based_capacity() {
    let i = installation().await;
    i.tm.create_tasks(
        "worker",
        (0..250)
            .map(|k| json!({"payload": {"k": k}}).as_object().cloned().unwrap())
            .collect(),
        true,
    )
    .await
    .unwrap();
    let opts = CheckOptions {
        max_rcu: 1000.0,
        ..CheckOptions::default()
    };
    let report = check::check(&i.tm, &opts).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.labourers[0].queued, 250);
    assert_eq!(report.cost.items_read, 250);
    // 100 rows first, then pages sized to a second of budget; at least one page per table.
    assert!(report.cost.scan_requests >= 4, "{:?}", report.cost);
    // moto reports a flat unit per Scan: the budget counts the size-based figure where larger.
    let c = &report.cost;
    assert!(c.reported_read_capacity_units > 0.0, "{c:?}");
    assert!(
        c.estimated_read_capacity_units > c.reported_read_capacity_units,
        "{c:?}"
    );
    assert!(c.read_capacity_units >= c.estimated_read_capacity_units, "{c:?}");
}
