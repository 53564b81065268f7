//! The Orchestrator against the local AWS: how many tasks it invokes, in which order, exactly once,
//! under health metrics from CloudWatch, and with a competing orchestrator.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::ecology::CloudWatchMetrics;
use sosw_core::invoker::{Invoker, LambdaInvoker, RecordingInvoker};
use sosw_core::testing::LocalAws;
use sosw_core::{Clock, EcologyManager, ManualClock, MetaHandler, SystemClock, TaskManager};
use sosw_orchestrator::{Orchestrator, OrchestratorConfig};
use std::collections::HashSet;
use std::sync::Arc;

struct Env {
    aws: LocalAws,
    tasks: TaskManager,
    invoker: Arc<RecordingInvoker>,
    config: OrchestratorConfig,
    clock: Arc<dyn Clock>,
}

async fn env(labourers: Value) -> Env {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let mut doc = OrchestratorConfig::defaults();
    sosw_core::config::merge(&mut doc, &json!({"task_config": {"labourers": labourers}}));
    let config: OrchestratorConfig = sosw_core::config::from_value("test", doc).unwrap();
    config.validate().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(SystemClock.now()));
    let tasks = TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        config.task_config.clone(),
        clock.clone(),
    );
    Env {
        aws,
        tasks,
        invoker: Arc::new(RecordingInvoker::default()),
        config,
        clock,
    }
}

impl Env {
    fn orchestrator_with(&self, invoker: Arc<dyn Invoker>) -> Orchestrator {
        let ecology = EcologyManager::new(
            Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
                self.aws.sdk_config(),
            ))),
            self.config.task_config.ecology_config.clone(),
            self.clock.clone(),
        );
        let meta = Arc::new(MetaHandler::new(
            aws_sdk_dynamodb::Client::new(self.aws.sdk_config()),
            &MetaHandlerConfig::default(),
            self.clock.clone(),
        ));
        Orchestrator::new(self.tasks.clone(), ecology, meta, invoker, self.config.clone())
    }
    fn orchestrator(&self) -> Orchestrator {
        self.orchestrator_with(self.invoker.clone())
    }
    async fn queue(&self, labourer: &str, n: usize) -> Vec<String> {
        let items = self
            .tasks
            .create_tasks(
                labourer,
                (0..n)
                    .map(|i| json!({"payload": {"n": i}}).as_object().cloned().unwrap())
                    .collect(),
                true,
            )
            .await
            .unwrap();
        items
            .iter()
            .map(|i| i["task_id"].as_s().unwrap().clone())
            .collect()
    }
}

fn invoked_ids(calls: &[(String, String)]) -> Vec<String> {
    calls
        .iter()
        .map(|(_, p)| {
            serde_json::from_str::<Value>(p).unwrap()["task_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn one_run_invokes_up_to_the_limit_in_queue_order_each_exactly_once() {
    let e = env(json!({"worker": {"max_simultaneous_invocations": 10, "arn": "arn:aws:lambda:us-west-2:000000000000:function:worker"}})).await;
    let ids = e.queue("worker", 12).await;
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.invoked, 10);
    assert_eq!(stats.labourers["worker"].desired, 10);
    let calls = e.invoker.calls();
    assert!(calls
        .iter()
        .all(|(f, _)| f == "arn:aws:lambda:us-west-2:000000000000:function:worker"));
    // The head of the queue is invoked; invocations run concurrently, so they may arrive in any order.
    let mut invoked = invoked_ids(&calls);
    invoked.sort();
    let mut head = ids[..10].to_vec();
    head.sort();
    assert_eq!(invoked, head, "the first 10 in queue order");
    for id in &ids[..10] {
        let t = e.tasks.get_task(id).await.unwrap().unwrap();
        assert_eq!(t.attempts, 1, "marked invoked once");
        assert!(
            t.greenfield > e.clock.now_secs(),
            "greenfield moved to the invoked range"
        );
    }
    // The worker's event is its payload flattened with the task's fields (calls arrive in any order).
    let event: Value = calls
        .iter()
        .map(|(_, p)| serde_json::from_str::<Value>(p).unwrap())
        .find(|e| e["task_id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(event["n"], 0);
    assert_eq!(event["labourer_id"], "worker");
    // Meta rows `invoked`.
    let meta = aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap();
    assert_eq!(meta.count(), 10);

    // Running tasks reduce the next run's number: 10 running, limit 10 -> nothing.
    let again = e.orchestrator().run().await;
    assert_eq!(again.labourers["worker"].running, 10);
    assert_eq!(again.invoked, 0);
}

#[tokio::test]
async fn fewer_queued_tasks_than_the_limit_are_all_invoked() {
    let e = env(json!({"worker": {"max_simultaneous_invocations": 10}})).await;
    e.queue("worker", 3).await;
    assert_eq!(e.orchestrator().run().await.invoked, 3);
    assert_eq!(
        e.invoker.calls()[0].0,
        "worker",
        "the arn defaults to the labourer id"
    );
}

#[tokio::test]
async fn the_global_default_applies_without_a_labourer_limit() {
    let e = env(json!({"worker": {}})).await;
    e.queue("worker", 3).await;
    assert_eq!(
        e.orchestrator().run().await.invoked,
        1,
        "max_simultaneous_invocations defaults to 1"
    );
}

#[tokio::test]
async fn cloudwatch_health_drives_the_number_invoked() {
    let metric = json!({"cpu": {
        "details": {"MetricName": "CPUUtilization", "Namespace": "AWS/RDS",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "db1"}]},
        "feelings": {"2": 80, "3": 60, "4": 40},
        "feeling_comparison_operator": "<="
    }});
    let e = env(json!({"worker": {"max_simultaneous_invocations": 10, "health_metrics": metric}})).await;
    let cw = aws_sdk_cloudwatch::Client::new(e.aws.sdk_config());
    cw.put_metric_data()
        .namespace("AWS/RDS")
        .metric_data(
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("DBInstanceIdentifier")
                        .value("db1")
                        .build(),
                )
                .value(70.0)
                .timestamp(aws_smithy_types::DateTime::from_secs_f64(SystemClock.now() - 5.0))
                .build(),
        )
        .send()
        .await
        .unwrap();
    e.queue("worker", 12).await;
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.labourers["worker"].health, 2, "CPU 70 <= 80 only: Moderate");
    assert_eq!(stats.invoked, 5, "health 2 and max 10 invoke 5");
}

#[tokio::test]
async fn two_orchestrators_at_the_same_time_never_invoke_a_task_twice() {
    let e = env(json!({"worker": {"max_simultaneous_invocations": 30}})).await;
    e.queue("worker", 40).await;
    let a_invoker = Arc::new(RecordingInvoker::default());
    let b_invoker = Arc::new(RecordingInvoker::default());
    let (a, b) = (
        e.orchestrator_with(a_invoker.clone()),
        e.orchestrator_with(b_invoker.clone()),
    );
    let (sa, sb) = tokio::join!(a.run(), b.run());
    let mut all = invoked_ids(&a_invoker.calls());
    all.extend(invoked_ids(&b_invoker.calls()));
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no task invoked twice");
    assert_eq!(all.len() as u64, sa.invoked + sb.invoked);
    assert!(all.len() >= 30, "together they took at least one run's worth");
    assert!(all.len() <= 40);
    assert!(
        sa.invoked + sa.skipped <= 30 && sb.invoked + sb.skipped <= 30,
        "each within its own limit"
    );
    for id in &all {
        assert_eq!(e.tasks.get_task(id).await.unwrap().unwrap().attempts, 1);
    }
}

#[tokio::test]
async fn a_failed_invocation_is_counted_and_the_task_stays_claimed_for_the_scavenger() {
    let e = env(json!({"worker": {"max_simultaneous_invocations": 5}})).await;
    let ids = e.queue("worker", 3).await;
    e.invoker.fail_when_payload_contains(&ids[1]);
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.invoked, 2);
    assert_eq!(stats.invocation_failed, 1);
    let t = e.tasks.get_task(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        t.attempts, 1,
        "claimed: it will expire and be retried, nothing lost"
    );
}

#[tokio::test]
async fn labourers_are_independent_and_an_invalid_task_is_skipped_unclaimed() {
    let e = env(json!({"a": {"max_simultaneous_invocations": 2}, "b": {"max_simultaneous_invocations": 2}}))
        .await;
    e.queue("a", 2).await;
    e.queue("b", 1).await;
    // A row with a payload that is not a JSON object.
    let bad = e
        .tasks
        .create_task("b", json!({"x": 1}).as_object().cloned().unwrap(), true)
        .await
        .unwrap();
    let id = bad["task_id"].as_s().unwrap().clone();
    aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .update_item()
        .table_name("sosw_tasks")
        .key("task_id", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .update_expression("SET payload = :p")
        .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("[1, 2]".into()))
        .send()
        .await
        .unwrap();
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.labourers["a"].invoked, 2);
    assert_eq!(stats.labourers["b"].invoked, 1);
    assert_eq!(stats.labourers["b"].invalid_tasks_skipped, 1);
    assert_eq!(e.tasks.get_task(&id).await.unwrap().unwrap().attempts, 0);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(
        json["labourers"]["a"]["invoked"], 2,
        "stats serialize per labourer"
    );
}

#[tokio::test]
async fn the_real_lambda_invoker_sends_event_invocations_with_the_flattened_payload() {
    let e = env(json!({"worker": {"max_simultaneous_invocations": 5, "arn": "sosw_worker_fn"}})).await;
    e.queue("worker", 2).await;
    let (endpoint, seen) = sosw_core::testing::recording_lambda().await;
    let conf = aws_sdk_lambda::config::Builder::from(e.aws.sdk_config())
        .endpoint_url(endpoint)
        .build();
    let invoker = Arc::new(LambdaInvoker(aws_sdk_lambda::Client::from_conf(conf)));
    let stats = e.orchestrator_with(invoker).run().await;
    assert_eq!(stats.invoked, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (path, invocation_type, body) in &seen {
        assert_eq!(path, "/2015-03-31/functions/sosw_worker_fn/invocations");
        assert_eq!(invocation_type.to_ascii_lowercase(), "event");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["labourer_id"], "worker");
        assert!(v["task_id"].is_string());
    }
}
