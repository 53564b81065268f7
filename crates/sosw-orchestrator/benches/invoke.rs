//! Benchmark (prints figures, asserts nothing about speed): one orchestrator run invoking 1,000
//! and 5,000 queued tasks through the real Lambda Invoke API on moto, behind the counting proxy of sosw-test-support;
//! then the cost of an idle run while thousands of tasks sit in the archive.
//! Run: `cargo bench -p sosw-orchestrator`. Python sosw here: ~75 invocations/s, 3 requests per task.

use serde_json::json;
use sosw_core::config::MetaHandlerConfig;
use sosw_core::ecology::CloudWatchMetrics;
use sosw_core::invoker::LambdaInvoker;
use sosw_core::{Clock, EcologyManager, MetaHandler, SystemClock, TaskManager};
use sosw_orchestrator::{Orchestrator, OrchestratorConfig};
use sosw_test_support::LocalAws;
use std::sync::Arc;
use std::time::Instant;

fn print_counts(label: &str, aws: &LocalAws, per: u64) {
    let c = aws.counts();
    println!(
        "  {label}: {} AWS requests ({:.3} per task), {} DynamoDB items returned",
        c.requests,
        c.requests as f64 / per.max(1) as f64,
        c.items_returned
    );
    for (op, n) in &c.by_op {
        println!("    {op:<34} {n:>6}");
    }
}

#[tokio::main]
async fn main() {
    for n in [1_000u64, 5_000] {
        let aws = LocalAws::start_counted().await;
        aws.deploy_storage().await;
        let mut doc = OrchestratorConfig::defaults();
        sosw_core::config::merge(
            &mut doc,
            &json!({"task_config": {"labourers": {"worker": {"max_simultaneous_invocations": n + 10}}}, "max_in_flight": 64}),
        );
        let config: OrchestratorConfig = sosw_core::config::from_value("bench", doc).unwrap();
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
        let ecology = EcologyManager::new(
            Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
                aws.sdk_config(),
            ))),
            config.task_config.ecology_config.clone(),
            clock.clone(),
        );
        let meta = Arc::new(MetaHandler::new(
            dynamo.clone(),
            &MetaHandlerConfig::default(),
            clock.clone(),
        ));
        let invoker = Arc::new(LambdaInvoker(aws_sdk_lambda::Client::new(aws.sdk_config())));
        let orchestrator = Orchestrator::new(tasks.clone(), ecology, meta, invoker, config);
        aws.reset_counts();
        let started = Instant::now();
        let stats = orchestrator.run().await;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(stats.invoked, n);
        println!(
            "orchestrate {n} queued tasks: {} invoked in {secs:.2} s, {:.0} invocations/s",
            stats.invoked,
            stats.invoked as f64 / secs
        );
        print_counts("requests", &aws, n);

        if n == 5_000 {
            // Archive them all, then measure an idle run (nothing queued, thousands archived).
            let l = tasks.register_labourer("worker").unwrap();
            let ids: Vec<String> = dynamo
                .scan()
                .table_name("sosw_tasks")
                .into_paginator()
                .items()
                .send()
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .filter_map(|i| i.ok())
                .map(|i| i["task_id"].as_s().unwrap().clone())
                .collect();
            for id in &ids {
                tasks.mark_completed(id, None, None).await.unwrap();
            }
            for t in tasks.completed_tasks(&l).await.unwrap() {
                tasks.archive(&t).await.unwrap();
            }
            aws.reset_counts();
            let idle = orchestrator.run().await;
            assert_eq!(idle.invoked, 0);
            println!("idle run with {} tasks archived:", ids.len());
            print_counts("requests", &aws, 1);
        }
    }
}
