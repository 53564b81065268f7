//! Benchmark (prints figures, asserts nothing about speed): the cost of `sosw check` per task, on
//! moto behind aws-request-counter. 10,000 tasks: 9,700 queued, 100 running, 100 retrying, 100
//! archived (moving tasks one by one on moto is slow; the scan's cost does not depend on the state). Run: `cargo bench -p sosw-cli --bench check` (`SOSW_CHECK_BENCH_TASKS` to resize).

use serde_json::json;
use sosw_core::check::{self, CheckOptions};
use sosw_core::{SystemClock, TaskConfig, TaskManager};
use sosw_test_support::LocalAws;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SOSW_CHECK_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let moved = (n / 10).min(100);
    let aws = LocalAws::start_counted().await;
    aws.deploy_storage().await;
    let cfg = TaskConfig::from_user(&json!({"labourers": {"worker": {"max_duration": 60}}})).unwrap();
    let tm = TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg,
        Arc::new(SystemClock),
    );
    let started = Instant::now();
    tm.create_tasks(
        "worker",
        (0..n)
            .map(|i| {
                json!({"payload": {"i": i, "word": "sosw"}})
                    .as_object()
                    .cloned()
                    .unwrap()
            })
            .collect(),
        true,
    )
    .await
    .unwrap();
    let l = tm.register_labourer("worker").unwrap();
    let claimed = tm.next_tasks(&l, 3 * moved).await.unwrap();
    for (k, t) in claimed.iter().enumerate() {
        tm.claim(&l, t).await.unwrap();
        let t = tm.get_task(&t.task_id.0).await.unwrap().unwrap();
        match k % 3 {
            0 => {}
            1 => assert!(tm.move_to_retry(&t, 600).await.unwrap()),
            _ => {
                tm.mark_completed(&t.task_id.0, None, None).await.unwrap();
                let t = tm.get_task(&t.task_id.0).await.unwrap().unwrap();
                assert!(tm.archive(&t).await.unwrap());
            }
        }
    }
    println!("seeded {n} tasks in {:.1} s", started.elapsed().as_secs_f64());
    for max_rcu in [check::DEFAULT_MAX_RCU, 1_000_000.0] {
        aws.reset_counts();
        let started = Instant::now();
        let report = check::check(
            &tm,
            &CheckOptions {
                max_rcu,
                ..CheckOptions::default()
            },
        )
        .await
        .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let counts = aws.counts();
        let w = &report.labourers[0];
        assert!(report.is_clean(), "{:?}", report.findings);
        println!(
            "max_rcu {max_rcu}: {secs:.1} s ({:.1} s waiting for the budget); queued {} running {} retrying {} archived {}",
            report.cost.throttled_secs, w.queued, w.running, w.retrying, w.archived_completed
        );
        println!(
            "  AWS requests {} ({:.4} per task: {:?}), DynamoDB items returned {} ({:.3} per task), \
             RCU by size {:.1} ({:.4} per task), RCU moto reported {:.1}",
            counts.requests,
            counts.requests as f64 / n as f64,
            counts.by_op,
            counts.items_returned,
            counts.items_returned as f64 / n as f64,
            report.cost.estimated_read_capacity_units,
            report.cost.estimated_read_capacity_units / n as f64,
            report.cost.reported_read_capacity_units,
        );
    }
}
