//! Benchmark (prints figures, asserts nothing about speed): scheduling N tasks against moto behind
//! the counting proxy of sosw-test-support, one job each, on a fresh moto. Run:
//! `cargo bench -p sosw-scheduler --bench schedule -- [N ...]` (default 200 1000); the items-read
//! goal of docs/benchmarks.md is measured with `-- 1000 10000 100000` (90 minutes on 2 cores, almost
//! all of it moto answering index Queries by reading its whole table; moto peaked at 534 MB).
//! Items read are what DynamoDB returns (queue-position Queries, existence checks).
//! Python sosw on this kind of machine: 1,000 tasks in ~240 s, 3 requests and ~500 items read per task.

use serde_json::json;
use sosw_core::config::MetaHandlerConfig;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::{MetaHandler, SystemClock, TaskManager};
use sosw_scheduler::{Scheduler, SchedulerConfig, TimeLeft};
use sosw_test_support::LocalAws;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Forever;
impl TimeLeft for Forever {
    fn remaining(&self) -> Duration {
        Duration::from_secs(900)
    }
}

#[tokio::main]
async fn main() {
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| a.replace(['_', ','], "").parse().expect("N, a number of tasks"))
        .collect();
    let ns = if ns.is_empty() { vec![200, 1_000] } else { ns };
    for n in ns {
        let aws = LocalAws::start_counted().await;
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
        let scheduler = Scheduler::new(
            tasks,
            s3,
            meta,
            Arc::new(RecordingInvoker::default()),
            config,
            "sosw_scheduler",
            None,
        );
        let words: Vec<String> = (0..n).map(|i| format!("w{i:06}")).collect();
        let job = json!({"lambda_name": "worker", "words": words, "isolate_words": true});
        aws.reset_counts();
        let started = Instant::now();
        let stats = scheduler.handle(&job, "bench", &Forever).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let counts = aws.counts();
        assert_eq!(stats.tasks_created, n);
        println!("schedule {n} tasks: {secs:.2} s, {:.0} tasks/s", n as f64 / secs);
        println!(
            "  AWS requests: {} ({:.3} per task), DynamoDB items read: {} ({:.4} per task)",
            counts.requests,
            counts.requests as f64 / n as f64,
            counts.items_returned,
            counts.items_returned as f64 / n as f64
        );
        for (op, c) in &counts.by_op {
            println!("    {op:<32} {c:>6}  ({:.4} per task)", *c as f64 / n as f64);
        }
    }
}
