//! Benchmark (prints figures, asserts nothing about speed): one scavenger run archiving 1,000
//! completed tasks on moto behind the counting proxy of sosw-test-support. Run: `cargo bench -p sosw-scavenger`.
//! Python sosw spends 4 requests per archived task (get, put, delete, meta).

use serde_json::json;
use sosw_core::config::MetaHandlerConfig;
use sosw_core::{Clock, MetaHandler, SystemClock, TaskManager};
use sosw_scavenger::{RecordingNotifier, Scavenger, ScavengerConfig};
use sosw_test_support::LocalAws;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let n = 1_000u64;
    let aws = LocalAws::start_counted().await;
    aws.deploy_storage().await;
    let mut doc = ScavengerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({"task_config": {"labourers": {"worker": {"max_duration": 60, "max_simultaneous_invocations": n}}}}),
    );
    let config: ScavengerConfig = sosw_core::config::from_value("bench", doc).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        config.task_config.clone(),
        clock.clone(),
    );
    tasks
        .create_tasks(
            "worker",
            (0..n)
                .map(|i| json!({"payload": {"i": i}}).as_object().cloned().unwrap())
                .collect(),
            true,
        )
        .await
        .unwrap();
    let l = tasks.register_labourer("worker").unwrap();
    let next = tasks.next_tasks(&l, n as usize).await.unwrap();
    assert_eq!(next.len() as u64, n, "all queued");
    for t in next {
        tasks.claim(&l, &t).await.unwrap();
        let stats = json!({"rows": 1}).as_object().cloned().unwrap();
        tasks
            .mark_completed(&t.task_id.0, Some(&stats), None)
            .await
            .unwrap();
    }
    let l = tasks.register_labourer("worker").unwrap();
    println!(
        "completed before the run: {}",
        tasks.completed_count(&l).await.unwrap()
    );
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let scavenger = Scavenger::new(tasks, meta, Arc::new(RecordingNotifier::default()), config);
    aws.reset_counts();
    let started = Instant::now();
    let stats = scavenger.run().await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(stats.total.archived, n);
    let c = aws.counts();
    println!(
        "scavenge {n} completed tasks: archived in {secs:.2} s, {:.0} archived/s",
        n as f64 / secs
    );
    println!(
        "  {} AWS requests ({:.3} per archived task), {} DynamoDB items returned",
        c.requests,
        c.requests as f64 / n as f64,
        c.items_returned
    );
    for (op, k) in &c.by_op {
        println!("    {op:<34} {k:>6}");
    }
}
