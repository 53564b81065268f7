//! Job → queue file against the local AWS: a job is checked completely before anything is
//! written (labourer, generated fields, DynamoDB's item limit, Lambda's payload limit), and its
//! queue file is streamed to S3 as it is generated.

use crate::common;

use common::Budget;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::{ManualClock, MetaHandler, TaskManager};
use sosw_scheduler::job::{StreamingUpload, PART_SIZE};
use sosw_scheduler::{Scheduler, SchedulerConfig};
use sosw_test_support::LocalAws;
use std::sync::Arc;

struct Env {
    _aws: LocalAws,
    scheduler: Scheduler,
    tasks: TaskManager,
    dynamo: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

async fn env() -> Env {
    let aws = LocalAws::start().await;
    let bucket = aws.deploy_queue_bucket().await;
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({
            "queue_bucket": bucket,
            "task_config": {"labourers": {"worker": {"max_duration": 60}, "other": {}}},
            "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}
        }),
    );
    let config = SchedulerConfig::from_document(doc).unwrap();
    let clock = Arc::new(ManualClock::at(1_750_000_000.0));
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        config.task_config.clone(),
        clock.clone(),
    );
    let meta = Arc::new(MetaHandler::new(
        dynamo.clone(),
        &MetaHandlerConfig::default(),
        clock,
    ));
    let s3 = aws.s3();
    let scheduler = Scheduler::new(
        tasks.clone(),
        s3.clone(),
        meta,
        Arc::new(RecordingInvoker::default()),
        config,
        "sosw_scheduler",
        None,
    );
    Env {
        _aws: aws,
        scheduler,
        tasks,
        dynamo,
        s3,
        bucket,
    }
}

/// Every object in the queue bucket (any prefix) and every multipart upload still open.
async fn bucket_contents(env: &Env) -> (Vec<String>, usize) {
    let objects = env
        .s3
        .list_objects_v2()
        .bucket(&env.bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let uploads = env
        .s3
        .list_multipart_uploads()
        .bucket(&env.bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .len();
    (objects, uploads)
}

/// Rows in sosw's task tables (queue, retry, archive).
async fn task_rows(env: &Env) -> usize {
    let cfg = env.tasks.config();
    let mut n = 0;
    for table in [
        cfg.dynamo_db_config.table_name.as_str(),
        cfg.sosw_retry_tasks_table.as_str(),
        cfg.sosw_closed_tasks_table.as_str(),
    ] {
        n += env.dynamo.scan().table_name(table).send().await.unwrap().count() as usize;
    }
    n
}

async fn assert_rejected_and_nothing_written(env: &Env, job: &Value, needles: &[&str]) {
    let err = env
        .scheduler
        .handle(job, "req-bad", &Budget::unlimited())
        .await
        .expect_err("the job must be rejected")
        .to_string();
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(
        task_rows(env).await,
        0,
        "no task written for a rejected job: {err}"
    );
    let (objects, uploads) = bucket_contents(env).await;
    assert!(
        objects.is_empty() && uploads == 0,
        "queue bucket not empty: {objects:?}, {uploads} uploads"
    );
}

#[tokio::test]
async fn a_job_cannot_retarget_its_tasks_to_another_labourer() {
    let env = env().await;
    for job in [
        json!({"lambda_name": "worker", "labourer_id": "ghost"}),
        // A configured labourer is still not the one the job was validated for.
        json!({"lambda_name": "worker", "labourer_id": "other", "a": 1}),
        json!({"lambda_name": "worker", "labourer_id": "ghost", "words": ["a", "b"], "isolate_words": true}),
    ] {
        assert_rejected_and_nothing_written(&env, &job, &["labourer_id", "lambda_name` `worker`"]).await;
    }
    // Equal to lambda_name is what Python sosw accepts, and so do we.
    let stats = env
        .scheduler
        .handle(
            &json!({"lambda_name": "worker", "labourer_id": "worker"}),
            "req-ok",
            &Budget::unlimited(),
        )
        .await
        .unwrap();
    assert_eq!(stats.tasks_created, 1);
}

#[tokio::test]
async fn generated_fields_are_refused_before_the_queue_file_is_written() {
    let env = env().await;
    for field in ["greenfield", "task_id", "attempts", "created_at"] {
        let mut job = json!({"lambda_name": "worker", "words": ["a", "b"], "isolate_words": true});
        job[field] = json!("7");
        assert_rejected_and_nothing_written(
            &env,
            &job,
            &["row 0 (line 1", &format!("`{field}` is generated")],
        )
        .await;
    }
}

#[tokio::test]
async fn a_row_over_dynamodbs_item_limit_rejects_the_whole_job_before_anything_is_written() {
    let env = env().await;
    // 30 rows, the 29th over 400 KB: Python wrote 28 tasks, then failed on every retry.
    let mut words: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    words[28] = "x".repeat(410_000);
    let job = json!({"lambda_name": "worker", "words": words, "isolate_words": true});
    assert_rejected_and_nothing_written(
        &env,
        &job,
        &[
            "row 28 (line 29 of the queue file)",
            "DynamoDB's limit of 409600 bytes",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_invocation_payload_over_256_kib_as_sent_is_refused_before_anything_is_written() {
    let env = env().await;
    // 120 KB of emoji in UTF-8 is 360 KB once escaped as \uXXXX, as the orchestrator sends it.
    let emoji = "😀".repeat(30_000);
    let job = json!({"lambda_name": "worker", "words": ["ok", emoji], "isolate_words": true});
    assert_rejected_and_nothing_written(&env, &job, &["row 1 (line 2", "limit of 262144 bytes"]).await;
    let job = json!({"lambda_name": "worker", "text": "y".repeat(300_000)});
    assert_rejected_and_nothing_written(&env, &job, &["row 0 (line 1", "limit of 262144 bytes"]).await;
}

#[tokio::test]
async fn a_job_larger_than_one_part_is_streamed_and_every_row_becomes_a_task() {
    let env = env().await;
    // 60 rows of ~200 KB: about 12 MB, two parts of a multipart upload.
    let words: Vec<String> = (0..60)
        .map(|i| format!("{i:03}{}", "z".repeat(200_000)))
        .collect();
    let job = json!({"lambda_name": "worker", "words": words, "isolate_words": true});
    let stats = env
        .scheduler
        .handle(&job, "req-big", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!((stats.rows_in_file, stats.tasks_created), (60, 60));
    let labourer = env.tasks.register_labourer("worker").unwrap();
    let rows = env.tasks.next_tasks(&labourer, 100).await.unwrap();
    let prefixes: Vec<String> = rows
        .iter()
        .map(|t| {
            let payload: Value = serde_json::from_str(t.item["payload"].as_s().unwrap()).unwrap();
            payload["words"][0].as_str().unwrap()[..3].to_string()
        })
        .collect();
    assert_eq!(prefixes, (0..60).map(|i| format!("{i:03}")).collect::<Vec<_>>());
    let (objects, uploads) = bucket_contents(&env).await;
    assert!(objects.is_empty() && uploads == 0, "{objects:?}, {uploads}");
}

#[tokio::test]
async fn a_streamed_file_is_byte_exact_and_an_aborted_one_leaves_nothing() {
    let env = env().await;
    let line = "r".repeat(1000);
    let rows = PART_SIZE / 1000 * 2 + 17;
    let mut upload = StreamingUpload::new(env.s3.clone(), &env.bucket, "q/streamed.txt", PART_SIZE);
    for i in 0..rows {
        upload.write_line(&format!("{i} {line}")).await.unwrap();
    }
    upload.finish().await.unwrap();
    let out = env
        .s3
        .get_object()
        .bucket(&env.bucket)
        .key("q/streamed.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.metadata()
            .and_then(|m| m.get("sosw-first-row"))
            .map(String::as_str),
        Some("0")
    );
    let body = out.body.collect().await.unwrap().into_bytes();
    let expected: String = (0..rows).map(|i| format!("{i} {line}\n")).collect();
    assert_eq!(body.len(), expected.len());
    assert!(
        body == expected.as_bytes(),
        "the file differs from the rows written"
    );

    let mut upload = StreamingUpload::new(env.s3.clone(), &env.bucket, "q/aborted.txt", PART_SIZE);
    for _ in 0..PART_SIZE / 1000 + 5 {
        upload.write_line(&line).await.unwrap();
    }
    upload.abort().await;
    let (objects, uploads) = bucket_contents(&env).await;
    assert_eq!((objects, uploads), (vec!["q/streamed.txt".to_string()], 0));
}
