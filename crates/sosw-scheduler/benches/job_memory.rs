//! Benchmark (prints figures, asserts nothing): peak memory of the Scheduler's job → queue-file
//! path (chunk, check every row, stream the file to S3) for jobs of 100,000 and 1,000,000 tasks,
//! against moto. Run: `cargo bench -p sosw-scheduler --bench job_memory`.
//!
//! The peak is the process's high-water mark (`VmHWM` of /proc/self/status), which only grows:
//! the figure after the 1,000,000-task job, next to the one after the 100,000-task job, shows
//! that memory does not grow with the number of tasks. Writing a million tasks to moto's
//! DynamoDB would take hours, so the queue file is checked, staged and read back row by row as
//! the Scheduler reads it (parsed and checked in batches of `rows_to_process`), not written.
//! `SOSW_JOB_MEMORY_TASKS=100000` runs the 100,000-task job alone.

use serde_json::json;
use sosw_core::config::MetaHandlerConfig;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::{MetaHandler, SystemClock, TaskManager};
use sosw_scheduler::{Scheduler, SchedulerConfig};
use sosw_test_support::LocalAws;
use std::sync::Arc;
use std::time::Instant;

/// The process's peak resident memory so far, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// `days` × `words` tasks: one per date of the period and word.
fn job(days: usize, words: usize) -> serde_json::Value {
    let words: Vec<String> = (0..words).map(|i| format!("word-{i:04}")).collect();
    json!({"lambda_name": "worker", "period": format!("last_{days}_days"), "isolate_days": true,
           "words": words, "isolate_words": true, "source": "job_memory benchmark"})
}

#[tokio::main]
async fn main() {
    let aws = LocalAws::start().await;
    let bucket = aws.deploy_queue_bucket().await;
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({
            "queue_bucket": bucket,
            "task_config": {"labourers": {"worker": {}}},
            "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}
        }),
    );
    let config = SchedulerConfig::from_document(doc).unwrap();
    let clock = Arc::new(SystemClock);
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        config.task_config.clone(),
        clock.clone(),
    );
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let s3 = aws.s3();
    let validator = sosw_scheduler::validate::JobValidator::new(tasks.clone());
    let rows_per_batch = config.rows_to_process;
    let scheduler = Scheduler::new(
        tasks,
        s3.clone(),
        meta,
        Arc::new(RecordingInvoker::default()),
        config,
        "sosw_scheduler",
        None,
    );
    println!("peak RSS before any job: {:.1} MiB", peak_rss_mib());
    // SOSW_JOB_MEMORY_TASKS=100000 runs the 100,000-task job alone.
    let sizes: Vec<(usize, usize)> = match std::env::var("SOSW_JOB_MEMORY_TASKS").as_deref() {
        Ok("100000") => vec![(100, 1000)],
        _ => vec![(100, 1000), (1000, 1000)],
    };
    for (days, words) in sizes {
        let name = format!("tasks_queue_{}.txt", days * words);
        let started = Instant::now();
        let rows = scheduler.stage_job(&job(days, words), &name).await.unwrap();
        let key = scheduler.queue().key(&format!("locked_{name}"));
        let size = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .content_length()
            .unwrap_or(0);
        println!(
            "{rows} tasks: checked and staged in {:.1} s, queue file {:.1} MiB, peak RSS so far {:.1} MiB",
            started.elapsed().as_secs_f64(),
            size as f64 / (1024.0 * 1024.0),
            peak_rss_mib()
        );
        // The queue file → tasks path up to the writes: the locked file read back as the
        // Scheduler reads it (a stream, `rows_to_process` rows at a time, each row parsed and
        // checked), without DynamoDB (a million transactions on moto take hours).
        let started = Instant::now();
        let mut reader = scheduler.queue().get_locked(&name).await.unwrap().unwrap();
        let mut read = 0usize;
        loop {
            let batch = reader.next_rows(rows_per_batch).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for (row, raw) in &batch {
                let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).unwrap();
                validator.check(*row, &fields).unwrap();
            }
            read += batch.len();
        }
        assert_eq!(read, rows, "the file holds every row");
        println!(
            "{read} rows: read back in batches of {rows_per_batch} in {:.1} s, peak RSS so far {:.1} MiB",
            started.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
    }
}
