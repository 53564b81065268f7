//! The Scheduler against the local AWS: jobs become rows in `sosw_tasks` in queue order, staged
//! in S3, handed to siblings, resumed after crashes, never written twice.

use crate::common;

use common::Budget;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::{ManualClock, MetaHandler, TaskManager};
use sosw_scheduler::{Scheduler, SchedulerConfig, SchedulerError};
use sosw_test_support::LocalAws;
use std::sync::Arc;

struct Env {
    aws: LocalAws,
    scheduler: Scheduler,
    invoker: Arc<RecordingInvoker>,
    tasks: TaskManager,
    bucket: String,
}

async fn env_with(rows_to_process: usize, extra: Value) -> Env {
    let aws = LocalAws::start().await;
    let bucket = aws.deploy_queue_bucket().await;
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({
            "queue_bucket": bucket,
            "rows_to_process": rows_to_process,
            "task_config": {"labourers": {"worker": {"max_duration": 60}, "other": {}}},
            "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}, "nested": {"chunkable_attrs": [["section", {}], ["word", {}]]}}
        }),
    );
    sosw_core::config::merge(&mut doc, &extra);
    let config = SchedulerConfig::from_document(doc).unwrap();
    let clock = Arc::new(ManualClock::at(1_750_000_000.0));
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        config.task_config.clone(),
        clock.clone(),
    );
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let invoker = Arc::new(RecordingInvoker::default());
    let s3 = aws.s3();
    let scheduler = Scheduler::new(
        tasks.clone(),
        s3,
        meta,
        invoker.clone(),
        config,
        "sosw_scheduler",
        None,
    );
    Env {
        aws,
        scheduler,
        invoker,
        tasks,
        bucket,
    }
}

fn words_job(n: usize) -> Value {
    let words: Vec<String> = (0..n).map(|i| format!("w{i:05}")).collect();
    json!({"lambda_name": "worker", "words": words, "isolate_words": true, "source": "test"})
}

/// All rows of the queue table for a labourer, in queue order.
async fn queue(env: &Env, labourer: &str) -> Vec<sosw_core::Task> {
    let l = env.tasks.register_labourer(labourer).unwrap();
    env.tasks.next_tasks(&l, 1_000_000).await.unwrap()
}

fn word_of(t: &sosw_core::Task) -> String {
    let payload: Value = serde_json::from_str(t.item["payload"].as_s().unwrap()).unwrap();
    payload["words"][0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_job_becomes_tasks_in_queue_order_and_leaves_no_queue_file() {
    let env = env_with(50, json!({})).await;
    let stats = env
        .scheduler
        .handle(&words_job(120), "req-1", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(stats.tasks_created, 120);
    assert!(!stats.sibling_spawned);
    let rows = queue(&env, "worker").await;
    assert_eq!(rows.len(), 120);
    let words: Vec<String> = rows.iter().map(word_of).collect();
    assert_eq!(words, (0..120).map(|i| format!("w{i:05}")).collect::<Vec<_>>());
    let greenfields: Vec<i64> = rows.iter().map(|t| t.greenfield).collect();
    assert_eq!(greenfields, (0..120).map(|i| 2000 + 1000 * i).collect::<Vec<_>>());
    // The payload is the queue row without labourer_id, as Python's create_task builds it.
    assert_eq!(
        rows[0].item["payload"].as_s().unwrap(),
        r#"{"isolate_words": true, "source": "test", "words": ["w00000"]}"#
    );
    assert!(
        env.scheduler.queue().list().await.unwrap().is_empty(),
        "no queue file left in s3://{}",
        env.bucket
    );
    let meta = aws_sdk_dynamodb::Client::new(env.aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap();
    assert_eq!(meta.count(), 120, "one `created` meta row per task");
}

/// Numbers Python keeps exactly (json.dumps of its ints and float reprs) from the job, through
/// the queue file and the task row, to the bytes a worker receives.
#[tokio::test]
async fn extreme_numbers_of_a_job_reach_the_worker_as_python_writes_them() {
    let env = env_with(50, json!({})).await;
    let job: Value = serde_json::from_str(
        r#"{"lambda_name": "worker", "words": ["a", 18446744073709551623], "isolate_words": true,
            "big": 18446744073709551623, "neg_big": -18446744073709551623, "tiny": 5e-324,
            "huge": 1.7976931348623157e308, "neg_zero": -0.0, "int_float": 1e16}"#,
    )
    .unwrap();
    let stats = env
        .scheduler
        .handle(&job, "req-1", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(stats.tasks_created, 2);
    let rows = queue(&env, "worker").await;
    let payloads: Vec<String> = rows
        .iter()
        .map(|t| env.tasks.invocation_payload(t).unwrap())
        .collect();
    for p in &payloads {
        for exact in [
            r#""big": 18446744073709551623"#,
            r#""neg_big": -18446744073709551623"#,
            r#""tiny": 5e-324"#,
            r#""huge": 1.7976931348623157e+308"#,
            r#""neg_zero": -0.0"#,
            r#""int_float": 1e+16"#,
        ] {
            assert!(p.contains(exact), "{exact} not in {p}");
        }
    }
    assert!(
        payloads[1].contains(r#""words": [18446744073709551623]"#),
        "{}",
        payloads[1]
    );
}

#[tokio::test]
async fn a_thousand_tasks_in_batches_of_500_land_exactly_once_in_order() {
    // moto copies every table a transaction touches, so each of its transactions costs time in
    // proportion to the table (10,000 tasks take over ten minutes there, 3,000 over four): the
    // scale here is kept to what moto does in seconds.
    let env = env_with(500, json!({})).await;
    let stats = env
        .scheduler
        .handle(&words_job(1_000), "req-big", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(stats.tasks_created, 1_000);
    let rows = queue(&env, "worker").await;
    assert_eq!(rows.len(), 1_000);
    assert!(
        rows.windows(2).all(|w| word_of(&w[0]) < word_of(&w[1])),
        "queue order is job order"
    );
    assert!(env.scheduler.queue().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_run_out_of_time_hands_the_rest_to_a_sibling_that_finishes_the_file() {
    let env = env_with(100, json!({})).await;
    let first = env
        .scheduler
        .handle(&words_job(1000), "req-2", &Budget::batches(3))
        .await
        .unwrap();
    assert_eq!(first.tasks_created, 300);
    assert!(first.sibling_spawned);
    assert_eq!(first.rows_handed_over_from, Some(300));
    let calls = env.invoker.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "sosw_scheduler", "the sibling is this same function");
    let sibling_event: Value = serde_json::from_str(&calls[0].1).unwrap();
    assert_eq!(sibling_event, json!({"file_name": "tasks_queue_req-2.txt"}));
    assert_eq!(
        env.scheduler.queue().list().await.unwrap(),
        ["sosw/scheduler/tasks_queue_req-2.txt"],
        "the rest waits unlocked"
    );

    // The sibling takes over (and runs out of time once more).
    let second = env
        .scheduler
        .handle(&sibling_event, "req-3", &Budget::batches(4))
        .await
        .unwrap();
    assert_eq!(second.tasks_created, 400);
    let third = env
        .scheduler
        .handle(&sibling_event, "req-4", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(third.tasks_created, 300);
    assert!(!third.sibling_spawned);

    let rows = queue(&env, "worker").await;
    assert_eq!(rows.len(), 1000, "no duplicates, no loss");
    let words: Vec<String> = rows.iter().map(word_of).collect();
    assert_eq!(words, (0..1000).map(|i| format!("w{i:05}")).collect::<Vec<_>>());
    let ids: std::collections::HashSet<_> = rows.iter().map(|t| t.task_id.clone()).collect();
    assert_eq!(ids.len(), 1000);
    assert!(
        env.scheduler.queue().list().await.unwrap().is_empty(),
        "no queue file left behind"
    );
}

#[tokio::test]
async fn a_crash_mid_file_is_resumed_by_the_retry_without_writing_any_row_twice() {
    let env = env_with(100, json!({})).await;
    // Simulate the first attempt: the file is locked in S3, 250 rows were written (the last batch
    // only half: rows 200..250) and the checkpoint says 200, then the Lambda died.
    let rows = env
        .scheduler
        .plan(
            &words_job(400),
            chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        )
        .unwrap();
    let name = "tasks_queue_req-crash.txt";
    let file = sosw_scheduler::queue::QueueFile {
        rows: rows.iter().map(sosw_core::pyjson::dumps).collect(),
        first_row: 0,
    };
    env.scheduler.queue().put_locked(name, &file).await.unwrap();
    let written: Vec<(sosw_core::TaskId, serde_json::Map<String, Value>)> = rows[..250]
        .iter()
        .enumerate()
        .map(|(i, r)| (sosw_core::TaskId::derived(name, i), r.clone()))
        .collect();
    env.tasks
        .create_tasks_with_ids("worker", written, true)
        .await
        .unwrap();
    env.scheduler.queue().set_checkpoint(name, 200).await.unwrap();

    // Lambda retries the same invocation: same request id, same job.
    let stats = env
        .scheduler
        .handle(&words_job(400), "req-crash", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(stats.rows_already_written, 50);
    assert_eq!(stats.tasks_created, 150);
    let rows = queue(&env, "worker").await;
    assert_eq!(rows.len(), 400);
    let words: std::collections::HashSet<String> = rows.iter().map(word_of).collect();
    assert_eq!(words.len(), 400);
    assert!(env.scheduler.queue().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_sibling_invocation_leaves_the_rest_in_s3_for_a_retry() {
    let env = env_with(100, json!({})).await;
    env.invoker.fail_when_payload_contains("file_name");
    let err = env
        .scheduler
        .handle(&words_job(300), "req-5", &Budget::batches(1))
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::Sibling { .. }), "{err}");
    assert!(err.to_string().contains("the rest of the file is in S3"));
    assert_eq!(
        env.scheduler.queue().list().await.unwrap(),
        ["sosw/scheduler/tasks_queue_req-5.txt"]
    );
    // A retry of the same invocation picks the handed-over file up and finishes it.
    let retry = env
        .scheduler
        .handle(&words_job(300), "req-5", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(retry.tasks_created, 200);
    assert_eq!(queue(&env, "worker").await.len(), 300);
}

#[tokio::test]
async fn rejected_jobs_write_nothing() {
    let env = env_with(50, json!({})).await;
    let cases = [
        (json!({"words": ["a"]}), "lambda_name"),
        (json!({"lambda_name": "ghost"}), "unknown labourer `ghost`"),
        (
            json!({"lambda_name": "worker", "job_schema_name": "nope"}),
            "unknown job schema",
        ),
        (
            json!({"lambda_name": "worker", "period": "someday", "words": ["a"], "isolate_words": true}),
            "unsupported period",
        ),
        (json!({"job": "{not json"}), "invalid JSON"),
        (
            json!({"lambda_name": "worker", "job_schema_name": "nested", "sections": ["a"]}),
            "cannot chunk",
        ),
    ];
    for (job, needle) in cases {
        let err = env
            .scheduler
            .handle(&job, "req-bad", &Budget::unlimited())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{job}: {err}");
    }
    assert!(queue(&env, "worker").await.is_empty());
    assert!(env.scheduler.queue().list().await.unwrap().is_empty());
    let err = env
        .scheduler
        .handle(
            &json!({"file_name": "nothing.txt"}),
            "req-x",
            &Budget::unlimited(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`nothing.txt` is not in S3"), "{err}");
}

#[tokio::test]
async fn a_lambda_arn_and_a_wrapped_job_are_accepted() {
    let env = env_with(50, json!({})).await;
    let job = json!({"job": json!({"lambda_name": "arn:aws:lambda:us-west-2:123456789012:function:other", "x": 1}).to_string()});
    let stats = env
        .scheduler
        .handle(&job, "req-arn", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(stats.tasks_created, 1);
    assert_eq!(queue(&env, "other").await.len(), 1);
}

#[tokio::test]
async fn provisioned_write_capacity_is_read_from_the_table() {
    let aws = LocalAws::start().await;
    aws.create_stack(
        "storage",
        "sosw-storage.yaml",
        &[("BillingMode", "PROVISIONED"), ("WriteCapacity", "7")],
    )
    .await;
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    assert_eq!(
        sosw_scheduler::provisioned_write_capacity(&dynamo, "sosw_tasks")
            .await
            .unwrap(),
        Some(7)
    );
    let aws2 = LocalAws::start().await;
    aws2.deploy_storage().await;
    let dynamo2 = aws_sdk_dynamodb::Client::new(aws2.sdk_config());
    assert_eq!(
        sosw_scheduler::provisioned_write_capacity(&dynamo2, "sosw_tasks")
            .await
            .unwrap(),
        None,
        "on-demand"
    );
}

/// The Lambda's start-up (`from_env`) sends no DescribeTable: the capacity is read on the first
/// job, once, and a job whose table cannot be described is refused before anything is staged.
#[tokio::test]
async fn the_write_capacity_is_read_on_the_first_job_not_at_start_up() {
    let aws = LocalAws::start_counted().await;
    let outputs = aws
        .create_stack(
            "storage",
            "sosw-storage.yaml",
            &[("BillingMode", "PROVISIONED"), ("WriteCapacity", "1000")],
        )
        .await;
    let bucket = outputs
        .iter()
        .find(|(k, _)| k == "QueueBucketName")
        .map(|(_, v)| v.clone())
        .expect("the storage stack's queue bucket");
    let custom = json!({
        "queue_bucket": bucket,
        "task_config": {"labourers": {"worker": {}}},
        "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}
    });
    let clock = Arc::new(ManualClock::at(1_750_000_000.0));
    aws.reset_counts();
    let scheduler = sosw_scheduler::from_env(
        aws.sdk_config(),
        "sosw_scheduler",
        Some(custom.clone()),
        clock.clone(),
    )
    .await
    .unwrap();
    let start_up = aws.counts();
    assert_eq!(start_up.by_op.get("dynamodb.DescribeTable"), None, "{start_up:?}");

    for (i, request_id) in ["req-1", "req-2"].into_iter().enumerate() {
        let stats = scheduler
            .handle(&words_job(3), request_id, &Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(stats.tasks_created, 3);
        assert_eq!(
            aws.counts().by_op.get("dynamodb.DescribeTable"),
            Some(&1),
            "read on the first job and kept (job {i})"
        );
    }

    // A tasks table that cannot be described: start-up still succeeds, the job is refused naming
    // the request and the table, and no queue file is left behind.
    let missing = json!({"task_config": {"dynamo_db_config": {"table_name": "no_such_tasks"}}});
    let mut custom = custom;
    sosw_core::config::merge(&mut custom, &missing);
    let scheduler = sosw_scheduler::from_env(aws.sdk_config(), "sosw_scheduler", Some(custom), clock)
        .await
        .expect("start-up does not touch the tasks table");
    let err = scheduler
        .handle(&words_job(3), "req-3", &Budget::unlimited())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("DescribeTable") && err.contains("no_such_tasks"),
        "{err}"
    );
    let staged = aws.s3().list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(
        staged
            .contents()
            .iter()
            .all(|o| !o.key().unwrap_or("").contains("req-3")),
        "{staged:?}"
    );
}

#[tokio::test]
async fn a_broken_config_is_rejected_at_start_up_naming_the_key() {
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(&mut doc, &json!({"rows_to_process": "many"}));
    let err = SchedulerConfig::from_document(doc).unwrap_err().to_string();
    assert!(err.contains("rows_to_process"), "{err}");
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({"job_schema_variants": {"default": {"chunkable_attrs": [["stores", {}]]}}}),
    );
    let err = SchedulerConfig::from_document(doc).unwrap_err().to_string();
    assert!(err.contains("singular"), "{err}");
}

// ----- exactly once ----------------------------------------------------------------------------

/// Every task of the labourer in sosw_tasks (queued or not), by id.
async fn all_tasks(env: &Env) -> std::collections::HashMap<String, sosw_core::Task> {
    let out = aws_sdk_dynamodb::Client::new(env.aws.sdk_config())
        .scan()
        .table_name("sosw_tasks")
        .send()
        .await
        .unwrap();
    assert!(out.last_evaluated_key.is_none(), "test tables fit one page");
    out.items()
        .iter()
        .map(|i| {
            let t = sosw_core::Task::from_item(i.clone(), &env.tasks.config().dynamo_db_config).unwrap();
            (t.task_id.0.clone(), t)
        })
        .collect()
}

/// Claim (invoke) the first `claim` queued tasks, move `retry` of them to the retry table and
/// archive `archive` of them; returns the ids moved to the retry table and the archive.
async fn invoke_some(env: &Env, claim: usize, retry: usize, archive: usize) -> (Vec<String>, Vec<String>) {
    let labourer = env.tasks.register_labourer("worker").unwrap();
    let queued = env.tasks.next_tasks(&labourer, claim).await.unwrap();
    assert_eq!(queued.len(), claim);
    for t in &queued {
        assert_eq!(
            env.tasks.claim(&labourer, t).await.unwrap(),
            sosw_core::ClaimOutcome::Claimed
        );
    }
    let mut retried = Vec::new();
    let mut archived = Vec::new();
    for t in queued.iter().take(retry) {
        let t = env.tasks.get_task(&t.task_id.0).await.unwrap().unwrap();
        assert!(env.tasks.move_to_retry(&t, 600).await.unwrap());
        retried.push(t.task_id.0.clone());
    }
    for t in queued.iter().skip(retry).take(archive) {
        let t = env.tasks.get_task(&t.task_id.0).await.unwrap().unwrap();
        assert!(env.tasks.archive(&t).await.unwrap());
        archived.push(t.task_id.0.clone());
    }
    (retried, archived)
}

/// No task is in two tables, the claimed ones keep `attempts` 1 and their invoked greenfield,
/// and every row of a `n`-row job has exactly one task somewhere.
async fn assert_exactly_once(env: &Env, n: usize, name: &str, retried: &[String], archived: &[String]) {
    let tasks = all_tasks(env).await;
    for id in retried.iter().chain(archived) {
        assert!(
            !tasks.contains_key(id),
            "task {id} left the queue and was written again"
        );
    }
    assert_eq!(tasks.len() + retried.len() + archived.len(), n);
    for row in 0..n {
        let id = sosw_core::TaskId::derived(name, row).0;
        assert!(
            tasks.contains_key(&id) || retried.contains(&id) || archived.contains(&id),
            "row {row} has no task"
        );
    }
    let labourer = env.tasks.register_labourer("worker").unwrap();
    let claimed: Vec<_> = tasks.values().filter(|t| t.attempts > 0).collect();
    for t in &claimed {
        assert_eq!(t.attempts, 1, "task {} was reset or claimed twice", t.task_id);
        assert!(
            t.greenfield >= labourer.start,
            "claimed task {} was put back in the queue",
            t.task_id
        );
    }
}

#[tokio::test]
async fn a_lock_without_a_checkpoint_or_with_a_garbage_one_never_resets_invoked_tasks() {
    for garbage in [None, Some("not a number"), Some("-5")] {
        let env = env_with(50, json!({})).await;
        let name = "tasks_queue_req-nock.txt";
        // A first attempt wrote all 120 rows and died before releasing the lock; the orchestrator
        // invoked 70 of them since, 10 are waiting for a retry and 10 are archived.
        let rows = env
            .scheduler
            .plan(
                &words_job(120),
                chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            )
            .unwrap();
        let file = sosw_scheduler::queue::QueueFile {
            rows: rows.iter().map(sosw_core::pyjson::dumps).collect(),
            first_row: 0,
        };
        env.scheduler.queue().put_locked(name, &file).await.unwrap();
        let written: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (sosw_core::TaskId::derived(name, i), r.clone()))
            .collect();
        env.tasks
            .create_tasks_with_ids("worker", written, true)
            .await
            .unwrap();
        let (retried, archived) = invoke_some(&env, 70, 10, 10).await;
        if let Some(g) = garbage {
            let s3 = env.aws.s3();
            s3.put_object()
                .bucket(&env.bucket)
                .key(format!("sosw/scheduler/locked_{name}.checkpoint"))
                .body(g.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
        let stats = env
            .scheduler
            .handle(&words_job(120), "req-nock", &Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(stats.tasks_created, 0, "{garbage:?}");
        assert_eq!(stats.rows_already_written, 120, "{garbage:?}");
        assert_exactly_once(&env, 120, name, &retried, &archived).await;
        assert_eq!(
            all_tasks(&env).await.values().filter(|t| t.attempts == 1).count(),
            50
        );
        assert!(env.scheduler.queue().list().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_continuation_delivered_twice_writes_each_row_once_and_resets_nothing() {
    let env = env_with(50, json!({})).await;
    let name = "tasks_queue_req-twice.txt";
    let first = env
        .scheduler
        .handle(&words_job(300), "req-twice", &Budget::batches(2))
        .await
        .unwrap();
    assert_eq!(first.tasks_created, 100);
    let event = json!({"file_name": name});
    // Delivery 1 takes the file and writes rows 100..250 before it stalls; the orchestrator
    // invokes what is queued.
    let taken = env.scheduler.queue().take_unlocked(name).await.unwrap().unwrap();
    assert_eq!(taken.next_row, 100);
    let rows = env
        .scheduler
        .plan(&words_job(300), chrono::Utc::now().date_naive())
        .unwrap();
    let written: Vec<_> = (100..250)
        .map(|i| (sosw_core::TaskId::derived(name, i), rows[i].clone()))
        .collect();
    env.tasks
        .create_tasks_once("worker", written, sosw_core::task::create::TRANSACTION_ITEMS)
        .await
        .unwrap();
    let (retried, archived) = invoke_some(&env, 250, 20, 20).await;
    // Delivery 2 of the same event finds the file locked and goes through it.
    let second = env
        .scheduler
        .handle(&event, "req-twice-2", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(second.tasks_created, 50);
    assert_eq!(second.rows_already_written, 150);
    assert_exactly_once(&env, 300, name, &retried, &archived).await;
    // A third delivery after the file is done writes nothing and says why.
    let err = env
        .scheduler
        .handle(&event, "req-twice-3", &Budget::unlimited())
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::NoSuchQueueFile(_)), "{err}");
    assert_exactly_once(&env, 300, name, &retried, &archived).await;
}

#[tokio::test]
async fn a_parent_retried_after_its_hand_over_writes_nothing_again() {
    let env = env_with(50, json!({})).await;
    let name = "tasks_queue_req-parent.txt";
    let parent = env
        .scheduler
        .handle(&words_job(200), "req-parent", &Budget::batches(2))
        .await
        .unwrap();
    assert!(parent.sibling_spawned);
    let sibling = env
        .scheduler
        .handle(&json!({"file_name": name}), "req-sib", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(parent.tasks_created + sibling.tasks_created, 200);
    let (retried, archived) = invoke_some(&env, 150, 30, 30).await;
    // Lambda retries the parent (same request id, same job): the file is gone, it is planned
    // again, and every row is found.
    let retry = env
        .scheduler
        .handle(&words_job(200), "req-parent", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(retry.tasks_created, 0);
    assert_eq!(retry.rows_already_written, 200);
    assert_exactly_once(&env, 200, name, &retried, &archived).await;
    assert!(env.scheduler.queue().list().await.unwrap().is_empty());
}

// ----- nothing lost silently ---------------------------------------------------------------------

async fn put_raw(env: &Env, key: &str, body: Vec<u8>, metadata: &[(&str, &str)]) {
    let mut put = env
        .aws
        .s3()
        .put_object()
        .bucket(&env.bucket)
        .key(key)
        .body(body.into());
    for (k, v) in metadata {
        put = put.metadata(*k, *v);
    }
    put.send().await.unwrap();
}

#[tokio::test]
async fn a_checkpoint_past_the_end_of_the_file_is_an_error_and_the_file_stays() {
    let env = env_with(50, json!({})).await;
    let name = "tasks_queue_req-past.txt";
    let rows = env
        .scheduler
        .plan(
            &words_job(120),
            chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        )
        .unwrap();
    let file = sosw_scheduler::queue::QueueFile {
        rows: rows.iter().map(sosw_core::pyjson::dumps).collect(),
        first_row: 0,
    };
    env.scheduler.queue().put_locked(name, &file).await.unwrap();
    env.scheduler.queue().set_checkpoint(name, 500).await.unwrap();
    let err = env
        .scheduler
        .handle(&words_job(120), "req-past", &Budget::unlimited())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("locked_{name}")), "{err}");
    assert!(err.contains("ends at row 120") && err.contains("500"), "{err}");
    assert!(queue(&env, "worker").await.is_empty(), "nothing written");
    assert!(env
        .scheduler
        .queue()
        .list()
        .await
        .unwrap()
        .contains(&format!("sosw/scheduler/locked_{name}")));
}

#[tokio::test]
async fn garbage_first_row_metadata_is_an_error_naming_the_file_and_the_file_stays() {
    let env = env_with(50, json!({})).await;
    let body = b"{\"labourer_id\": \"worker\", \"x\": 1}\n".to_vec();
    put_raw(
        &env,
        "sosw/scheduler/handed.txt",
        body,
        &[("sosw-first-row", "12abc")],
    )
    .await;
    let err = env
        .scheduler
        .handle(
            &json!({"file_name": "handed.txt"}),
            "req-meta",
            &Budget::unlimited(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("handed.txt") && err.contains("sosw-first-row") && err.contains("12abc"),
        "{err}"
    );
    assert!(queue(&env, "worker").await.is_empty());
    assert_eq!(
        env.scheduler.queue().list().await.unwrap(),
        ["sosw/scheduler/locked_handed.txt"],
        "the file waits, locked, for an operator"
    );
}

#[tokio::test]
async fn a_hand_over_whose_next_row_is_garbage_or_past_the_end_is_an_error_and_the_file_stays() {
    let env = env_with(50, json!({})).await;
    let body = "{\"labourer_id\": \"worker\", \"x\": 1}\n".repeat(3);
    /// A handed-over file: its name, its S3 metadata, what its error must say.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 2] = [
        (
            "garbage_next.txt",
            &[("sosw-first-row", "0"), ("sosw-next-row", "two")],
            &["sosw-next-row", "\"two\"", "is not a row index"],
        ),
        (
            "short.txt",
            &[("sosw-first-row", "10"), ("sosw-next-row", "40")],
            &["ends at row 13", "sosw-next-row metadata says rows up to 40"],
        ),
    ];
    for (file, metadata, needles) in cases {
        put_raw(
            &env,
            &format!("sosw/scheduler/{file}"),
            body.clone().into_bytes(),
            metadata,
        )
        .await;
        let err = env
            .scheduler
            .handle(&json!({"file_name": file}), "req-next", &Budget::unlimited())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SchedulerError::Queue(_)),
            "{file}: a queue-file error, not {err:?}"
        );
        let err = err.to_string();
        assert!(err.contains(&format!("locked_{file}")), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in: {err}");
        }
        assert!(env
            .scheduler
            .queue()
            .list()
            .await
            .unwrap()
            .contains(&format!("sosw/scheduler/locked_{file}")));
    }
    assert!(all_tasks(&env).await.is_empty(), "nothing written");
}

#[tokio::test]
async fn bytes_that_are_not_utf8_or_a_truncated_row_are_errors_naming_the_file_and_row() {
    let env = env_with(50, json!({})).await;
    let good = "{\"labourer_id\": \"worker\", \"x\": 1}\n";
    let cases: [(&str, Vec<u8>, &str); 2] = [
        (
            "latin1.txt",
            [
                good.as_bytes(),
                good.as_bytes(),
                b"{\"labourer_id\": \"worker\", \"x\": \"caf\xe9\"}\n",
            ]
            .concat(),
            "not UTF-8",
        ),
        (
            "cut.txt",
            [
                good.as_bytes(),
                good.as_bytes(),
                b"{\"labourer_id\": \"worker\", \"x\": \"ca",
            ]
            .concat(),
            "truncated",
        ),
    ];
    for (file, body, needle) in cases {
        put_raw(&env, &format!("sosw/scheduler/{file}"), body, &[]).await;
        let err = env
            .scheduler
            .handle(&json!({"file_name": file}), "req-bytes", &Budget::unlimited())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(file) && err.contains("row 2") && err.contains(needle),
            "{err}"
        );
        assert!(env
            .scheduler
            .queue()
            .list()
            .await
            .unwrap()
            .contains(&format!("sosw/scheduler/locked_{file}")));
    }
    assert!(
        queue(&env, "worker").await.is_empty(),
        "rows 0 and 1 share the batch: nothing written"
    );
}

// ----- names ---------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_files_with_spaces_and_url_characters_in_their_names_hand_over_and_finish() {
    let env = env_with(50, json!({"queue_file": "my tasks #1+?é.txt"})).await;
    let first = env
        .scheduler
        .handle(&words_job(150), "req 1+?", &Budget::batches(1))
        .await
        .unwrap();
    assert!(first.sibling_spawned);
    let event: Value = serde_json::from_str(&env.invoker.calls()[0].1).unwrap();
    assert_eq!(event, json!({"file_name": "my tasks #1+?é_req 1+?.txt"}));
    let second = env
        .scheduler
        .handle(&event, "req-2", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(first.tasks_created + second.tasks_created, 150);
    assert_eq!(queue(&env, "worker").await.len(), 150);
    assert!(env.scheduler.queue().list().await.unwrap().is_empty());
}

// ----- queue positions and arithmetic ------------------------------------------------------------

#[tokio::test]
async fn rows_whose_queue_positions_would_reach_now_are_refused_naming_the_labourer_and_the_limit() {
    // The clock is at 1,750,000,000 and the step at its largest, 1,000,000. A queued task at
    // 1,748,000,000 leaves room for one more (1,749,000,000); a second would be at 1,750,000,000,
    // where sosw reads it as invoked.
    let env = env_with(50, json!({"task_config": {"greenfield_task_step": 1_000_000}})).await;
    let seeded = env
        .tasks
        .create_task(
            "worker",
            serde_json::from_value(json!({"seed": true})).unwrap(),
            true,
        )
        .await
        .unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(env.aws.sdk_config());
    dynamo
        .update_item()
        .table_name("sosw_tasks")
        .key("task_id", seeded["task_id"].clone())
        .update_expression("SET greenfield = :g")
        .expression_attribute_values(
            ":g",
            aws_sdk_dynamodb::types::AttributeValue::N("1748000000".into()),
        )
        .send()
        .await
        .unwrap();
    let err = env
        .scheduler
        .handle(&words_job(2), "req-full", &Budget::unlimited())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`worker`")
            && err.contains("2 new task(s) do not fit")
            && err.contains("the next would be 1750000000")
            && err.contains("1748000000"),
        "{err}"
    );
    assert_eq!(all_tasks(&env).await.len(), 1, "nothing of the job written");
    assert!(
        env.scheduler.queue().list().await.unwrap().is_empty(),
        "a job that does not fit is refused before its queue file is written"
    );
    // A queue file that is already staged (a continuation, or a job that was staged while the
    // queue still had room) is checked batch by batch: nothing of the batch is written and the
    // file waits, locked, for the queue to drain.
    let two_rows = "{\"labourer_id\": \"worker\", \"x\": 1}\n".repeat(2);
    put_raw(&env, "sosw/scheduler/staged.txt", two_rows.into_bytes(), &[]).await;
    let err = env
        .scheduler
        .handle(
            &json!({"file_name": "staged.txt"}),
            "req-staged",
            &Budget::unlimited(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 new task(s) do not fit"), "{err}");
    assert_eq!(all_tasks(&env).await.len(), 1, "nothing of the batch written");
    assert_eq!(
        env.scheduler.queue().list().await.unwrap(),
        ["sosw/scheduler/locked_staged.txt"]
    );
    let ok = env
        .scheduler
        .handle(&words_job(1), "req-fits", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(ok.tasks_created, 1);
    let greenfields: Vec<i64> = queue(&env, "worker").await.iter().map(|t| t.greenfield).collect();
    assert_eq!(greenfields, [1_748_000_000, 1_749_000_000]);
    // The queue is full now: even one more task is refused before anything is staged.
    let err = env
        .scheduler
        .handle(&words_job(1), "req-one-more", &Budget::unlimited())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 new task(s) do not fit"), "{err}");
    assert_eq!(
        env.scheduler.queue().list().await.unwrap(),
        ["sosw/scheduler/locked_staged.txt"]
    );
}

#[test]
fn a_greenfield_step_or_delta_that_would_overflow_is_refused_at_start_up_naming_the_key() {
    for key in ["greenfield_task_step", "greenfield_invocation_delta"] {
        let mut doc = SchedulerConfig::defaults();
        sosw_core::config::merge(
            &mut doc,
            &json!({"task_config": {key: 9_000_000_000_000_000_000i64}}),
        );
        let err = SchedulerConfig::from_document(doc).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("too large"), "{err}");
    }
}
