//! The Orchestrator against the local AWS: how many tasks it invokes, in which order, exactly once,
//! under health metrics from CloudWatch, and with a competing orchestrator.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::ecology::CloudWatchMetrics;
use sosw_core::invoker::{Invoker, LambdaInvoker, RecordingInvoker};
use sosw_core::{Clock, EcologyManager, ManualClock, MetaHandler, SystemClock, TaskManager};
use sosw_orchestrator::{Orchestrator, OrchestratorConfig};
use sosw_test_support::LocalAws;
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
    env_on(LocalAws::start().await, labourers).await
}

async fn env_on(aws: LocalAws, labourers: Value) -> Env {
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
        sosw_test_support::tasks::queue(&self.tasks, labourer, n).await
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
    // On the serialised emulator, whose conditional writes are atomic as DynamoDB's are: 4 rounds
    // of two orchestrators racing over 100 queued tasks each (400 claim races).
    let e = env_on(
        LocalAws::start_serialised().await,
        json!({"worker": {"max_simultaneous_invocations": 100}}),
    )
    .await;
    let mut seen: HashSet<String> = HashSet::new();
    for round in 0..4 {
        let queued = e.queue("worker", 100).await;
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
        assert_eq!(unique.len(), all.len(), "round {round}: no task invoked twice");
        assert_eq!(all.len() as u64, sa.invoked + sb.invoked);
        assert_eq!(all.len(), 100, "round {round}: every queued task invoked once");
        let mut expected = queued.clone();
        expected.sort();
        let mut got = all.clone();
        got.sort();
        assert_eq!(got, expected);
        for id in &all {
            assert!(seen.insert(id.clone()), "never invoked in an earlier round");
            assert_eq!(e.tasks.get_task(id).await.unwrap().unwrap().attempts, 1);
        }
        // Complete them so that the next round starts from an idle labourer.
        for id in &all {
            e.tasks.mark_completed(id, None, None).await.unwrap();
        }
        let l = e.tasks.register_labourer("worker").unwrap();
        for t in e.tasks.completed_tasks(&l).await.unwrap() {
            assert!(e.tasks.archive(&t).await.unwrap());
        }
    }
}

/// `n` claim races: two TaskManagers (separate connections) claim each task at the same moment.
/// Returns how many tasks had two winners, and checks every task had at least one.
async fn claim_races(e: &Env, n: usize) -> usize {
    use futures::stream::{self, StreamExt};
    e.queue("worker", n).await;
    let l = e.tasks.register_labourer("worker").unwrap();
    let tasks = e.tasks.next_tasks(&l, n).await.unwrap();
    let other = TaskManager::new(
        aws_sdk_dynamodb::Client::new(e.aws.sdk_config()),
        aws_sdk_lambda::Client::new(e.aws.sdk_config()),
        e.config.task_config.clone(),
        e.clock.clone(),
    );
    let winners: Vec<usize> = stream::iter(tasks.iter())
        .map(|t| {
            let (l, other) = (&l, &other);
            async move {
                let (a, b) = tokio::join!(e.tasks.claim(l, t), other.claim(l, t));
                [a.unwrap(), b.unwrap()]
                    .iter()
                    .filter(|o| **o == sosw_core::ClaimOutcome::Claimed)
                    .count()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(winners.iter().all(|w| *w >= 1), "every race has a winner");
    winners.iter().filter(|w| **w > 1).count()
}

#[tokio::test]
async fn hundreds_of_claim_races_on_an_atomic_emulator_have_exactly_one_winner() {
    let e = env_on(LocalAws::start_serialised().await, json!({"worker": {}})).await;
    assert_eq!(claim_races(&e, 300).await, 0, "no race has two winners");
}

/// Why the tests above run on the serialised emulator: plain moto checks a condition and writes in
/// two steps without a lock, so two concurrent claims can both succeed. Nondeterministic (it
/// depends on thread scheduling), hence ignored; run with `--ignored` to see the figure.
#[tokio::test]
#[ignore = "shows a race in plain moto (nondeterministic); run with --ignored"]
async fn plain_moto_can_let_two_claims_win_the_same_task() {
    let e = env(json!({"worker": {}})).await;
    let doubles = claim_races(&e, 1000).await;
    println!("plain moto: {doubles} of 1000 claim races had two winners");
    assert!(doubles > 0, "no double winner seen in 1000 races this time");
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
async fn labourers_are_independent_and_an_invalid_task_is_quarantined_unclaimed() {
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
    assert_eq!(stats.labourers["b"].quarantined, 1);
    assert!(e.tasks.get_task(&id).await.unwrap().is_none(), "out of the queue");
    let closed = e.tasks.get_from("sosw_closed_tasks", &id).await.unwrap().unwrap();
    assert_eq!(closed.attempts, 0, "never claimed");
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
    let lambda = sosw_test_support::recording_lambda();
    let seen = lambda.seen.clone();
    let conf = aws_sdk_lambda::config::Builder::from(e.aws.sdk_config())
        .endpoint_url(&lambda.url)
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

async fn set_attr(e: &Env, id: &str, name: &str, value: aws_sdk_dynamodb::types::AttributeValue) {
    aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .update_item()
        .table_name("sosw_tasks")
        .key("task_id", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
        .update_expression("SET #n = :v")
        .expression_attribute_names("#n", name)
        .expression_attribute_values(":v", value)
        .send()
        .await
        .unwrap();
}

async fn raw_closed(
    e: &Env,
    id: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .get_item()
        .table_name("sosw_closed_tasks")
        .key("task_id", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
        .send()
        .await
        .unwrap()
        .item
}

fn emf(stats: &sosw_orchestrator::RunStats, labourer: &str) -> Value {
    sosw_orchestrator::emf_lines("sosw_orchestrator", stats, 1)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["labourer_id"] == labourer)
        .unwrap()
}

#[tokio::test]
async fn rows_that_cannot_be_invoked_are_quarantined_and_the_rest_of_the_queue_runs_in_the_same_run() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    // One slot: before, any of these rows at the head of the queue blocked the labourer for good.
    let e = env(json!({"worker": {"max_simultaneous_invocations": 1}})).await;
    let ids = e.queue("worker", 6).await;
    set_attr(&e, &ids[0], "attempts", A::S("two".into())).await; // does not parse
    set_attr(&e, &ids[1], "payload", A::S("[1, 2]".into())).await; // JSON, not an object
    set_attr(&e, &ids[2], "payload", A::S("{'a': 1}".into())).await; // Python repr (revived archive)
    set_attr(&e, &ids[3], "attempts", A::N("-3".into())).await; // nonsensical attempts
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(270 * 1024));
    set_attr(&e, &ids[4], "payload", A::S(big)).await; // over the 256 KiB Event limit
    let stats = e.orchestrator().run().await;
    let s = &stats.labourers["worker"];
    assert_eq!(s.quarantined, 5, "{s:?}");
    assert_eq!(s.invoked, 1, "the one good task still runs this run");
    assert_eq!(invoked_ids(&e.invoker.calls()), vec![ids[5].clone()]);
    for (id, reason) in [
        (&ids[0], "attempts"),
        (&ids[1], "not a JSON object"),
        (&ids[2], "not a JSON object"),
        (&ids[3], "-3"),
        (&ids[4], "over the asynchronous invocation limit"),
    ] {
        assert!(
            e.tasks.get_task(id).await.ok().flatten().is_none(),
            "{id} out of the queue"
        );
        let closed = raw_closed(&e, id).await.expect("archived");
        assert_eq!(closed["labourer_id_task_status"], A::S("worker_0".into()), "dead");
        let why = closed["closed_reason"].as_s().unwrap();
        assert!(why.contains(reason), "{id}: {why}");
        assert!(
            closed.contains_key("closed_at") && closed.contains_key("payload"),
            "whole row kept"
        );
    }
    assert_eq!(
        e.tasks.closed_count("worker", false).await.unwrap(),
        5,
        "counted as dead"
    );
    assert_eq!(emf(&stats, "worker")["quarantined"], 5.0);
    assert_eq!(stats.quarantined, 5);
    // Each move is in the task's meta history, with the labourer and the reason.
    for id in &ids[..5] {
        let rows = meta_rows(&e, id).await;
        let q: Vec<_> = rows
            .iter()
            .filter(|m| m["action"] == A::S("quarantined".into()))
            .collect();
        assert_eq!(q.len(), 1, "{id}: {rows:?}");
        assert_eq!(q[0]["labourer_id"], A::S("worker".into()));
        assert_eq!(
            q[0]["closed_reason"],
            raw_closed(&e, id).await.unwrap()["closed_reason"]
        );
    }
}

async fn meta_rows(
    e: &Env,
    id: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .scan()
        .table_name("sosw_tasks_meta")
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|m| m["task_id"] == aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_throttled_invocation_gives_the_claim_back_and_stops_the_labourers_run() {
    let e = env(
        json!({"worker": {"max_simultaneous_invocations": 4}, "other": {"max_simultaneous_invocations": 2}}),
    )
    .await;
    let mut config = e.config.clone();
    config.max_in_flight = 1; // one invocation after another, in queue order
    let ids = e.queue("worker", 4).await;
    e.queue("other", 2).await;
    let before = e.tasks.get_task(&ids[0]).await.unwrap().unwrap();
    let invoker = Arc::new(RecordingInvoker::default());
    invoker.fail_with_when_payload_contains(&ids[0], sosw_core::InvokeFailure::Throttled);
    let o = Orchestrator::new(
        e.tasks.clone(),
        EcologyManager::new(
            Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
                e.aws.sdk_config(),
            ))),
            config.task_config.ecology_config.clone(),
            e.clock.clone(),
        ),
        Arc::new(MetaHandler::new(
            aws_sdk_dynamodb::Client::new(e.aws.sdk_config()),
            &MetaHandlerConfig::default(),
            e.clock.clone(),
        )),
        invoker.clone(),
        config,
    );
    let stats = o.run().await;
    let s = &stats.labourers["worker"];
    assert_eq!(
        (s.throttled, s.invoked, s.deferred, s.invocation_failed),
        (1, 0, 3, 0),
        "{s:?}"
    );
    assert_eq!(
        stats.labourers["other"].invoked, 2,
        "other labourers are not held back"
    );
    assert_eq!(
        e.tasks.get_task(&ids[0]).await.unwrap().unwrap(),
        before,
        "greenfield and attempts as before the claim"
    );
    for id in &ids[1..] {
        assert_eq!(
            e.tasks.get_task(id).await.unwrap().unwrap().attempts,
            0,
            "never claimed"
        );
    }
    assert_eq!(emf(&stats, "worker")["throttled"], 1.0);
    // Once Lambda accepts again, the task is invoked as its first attempt.
    let again = e.orchestrator().run().await;
    assert_eq!(again.labourers["worker"].invoked, 4);
    assert_eq!(e.tasks.get_task(&ids[0]).await.unwrap().unwrap().attempts, 1);
}

/// A Lambda endpoint on loopback that answers every Invoke with `status` and error `code`.
fn refusing_lambda(status: u16, code: &'static str) -> sosw_test_support::TestServer {
    sosw_test_support::TestServer::start(move |_| {
        // An empty code: the function's own error, as an emulator that runs Event invocations
        // synchronously answers it (no service error type).
        let (body, error_type) = if code.is_empty() {
            (
                r#"{"errorType":"Box<dyn Error>","errorMessage":"task failed"}"#.to_string(),
                None,
            )
        } else {
            (format!(r#"{{"Type":"User","message":"{code}"}}"#), Some(code))
        };
        let mut reply = sosw_test_support::Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        };
        if let Some(code) = error_type {
            reply = reply.with_header("x-amzn-errortype", code);
        }
        reply
    })
}

#[tokio::test]
async fn invocations_lambda_refuses_give_the_claim_back_without_burning_an_attempt() {
    for (status, code, throttled, refused) in [
        (429, "TooManyRequestsException", 1, 0),
        (500, "ServiceException", 0, 2),
        (404, "ResourceNotFoundException", 0, 1),
    ] {
        let e = env(json!({"worker": {"max_simultaneous_invocations": 2, "arn": "sosw_worker_fn"}})).await;
        let mut config = e.config.clone();
        config.max_in_flight = 1;
        let ids = e.queue("worker", 2).await;
        let lambda = refusing_lambda(status, code);
        let conf = aws_sdk_lambda::config::Builder::from(e.aws.sdk_config())
            .endpoint_url(&lambda.url)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let invoker = Arc::new(LambdaInvoker(aws_sdk_lambda::Client::from_conf(conf)));
        let o = Orchestrator::new(
            e.tasks.clone(),
            EcologyManager::new(
                Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
                    e.aws.sdk_config(),
                ))),
                config.task_config.ecology_config.clone(),
                e.clock.clone(),
            ),
            Arc::new(MetaHandler::new(
                aws_sdk_dynamodb::Client::new(e.aws.sdk_config()),
                &MetaHandlerConfig::default(),
                e.clock.clone(),
            )),
            invoker,
            config,
        );
        let stats = o.run().await;
        let s = &stats.labourers["worker"];
        assert_eq!(
            (s.throttled, s.refused, s.invoked, s.invocation_failed),
            (throttled, refused, 0, 0),
            "{status}: {s:?}"
        );
        for id in &ids {
            let t = e.tasks.get_task(id).await.unwrap().unwrap();
            assert_eq!(t.attempts, 0, "{status}: no attempt burnt");
            assert!(t.greenfield < e.clock.now_secs(), "{status}: back in the queue");
        }
    }
}

#[tokio::test]
async fn a_function_error_answered_by_a_synchronous_emulator_counts_as_a_started_run() {
    // cargo lambda watch runs an Event invocation to its end and answers a failing function with
    // 500 and the function's own error document: the worker ran, so its attempt stays used.
    let e = env(json!({"worker": {"max_simultaneous_invocations": 1, "arn": "sosw_worker_fn"}})).await;
    let ids = e.queue("worker", 1).await;
    let lambda = refusing_lambda(500, "");
    let conf = aws_sdk_lambda::config::Builder::from(e.aws.sdk_config())
        .endpoint_url(&lambda.url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let o = e.orchestrator_with(Arc::new(LambdaInvoker(aws_sdk_lambda::Client::from_conf(conf))));
    let stats = o.run().await;
    let s = &stats.labourers["worker"];
    assert_eq!((s.throttled, s.refused, s.invocation_failed), (0, 0, 1), "{s:?}");
    let t = e.tasks.get_task(&ids[0]).await.unwrap().unwrap();
    assert_eq!(t.attempts, 1, "the run happened");
    assert!(
        t.greenfield > e.clock.now_secs(),
        "still claimed: the scavenger expires it"
    );
}

#[tokio::test]
async fn a_claim_that_fails_is_a_claim_error_not_a_failed_invocation() {
    // A clock so far ahead that `now + greenfield_invocation_delta` overflows: the claim cannot be
    // written (checked arithmetic), nothing is invoked, the task is untouched.
    let e = env(json!({"worker": {"max_simultaneous_invocations": 2}})).await;
    let ids = e.queue("worker", 1).await;
    let late: Arc<dyn Clock> = Arc::new(ManualClock::at(i64::MAX as f64));
    let tasks = TaskManager::new(
        aws_sdk_dynamodb::Client::new(e.aws.sdk_config()),
        aws_sdk_lambda::Client::new(e.aws.sdk_config()),
        e.config.task_config.clone(),
        late.clone(),
    );
    let o = Orchestrator::new(
        tasks,
        EcologyManager::new(
            Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
                e.aws.sdk_config(),
            ))),
            e.config.task_config.ecology_config.clone(),
            late.clone(),
        ),
        Arc::new(MetaHandler::new(
            aws_sdk_dynamodb::Client::new(e.aws.sdk_config()),
            &MetaHandlerConfig::default(),
            late,
        )),
        e.invoker.clone(),
        e.config.clone(),
    );
    let stats = o.run().await;
    let s = &stats.labourers["worker"];
    assert_eq!(
        (s.claim_errors, s.invocation_failed, s.invoked),
        (1, 0, 0),
        "{s:?}"
    );
    assert!(e.invoker.calls().is_empty());
    assert_eq!(e.tasks.get_task(&ids[0]).await.unwrap().unwrap().attempts, 0);
    assert_eq!(emf(&stats, "worker")["claim_errors"], 1.0);
}

#[tokio::test]
async fn an_orchestrator_that_can_process_no_labourer_fails_and_names_the_table() {
    let e = env(json!({"a": {}, "b": {}})).await;
    aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .delete_table()
        .table_name("sosw_tasks")
        .send()
        .await
        .unwrap();
    let err = e.orchestrator().run_checked().await.unwrap_err();
    assert!(err.to_string().contains("sosw_tasks"), "{err}");
    assert_eq!(err.stats.labourer_errors, 2);
    assert_eq!(emf(&err.stats, "a")["labourer_errors"], 1.0);
}

#[tokio::test]
async fn a_payload_lambda_refuses_as_too_large_is_given_back_and_quarantined_visibly() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    // Lambda's own limit can be lower than the one checked before the claim (it counts the
    // request as it receives it): its 413 gives the claim back and moves the row out of the queue.
    let e = env(json!({"worker": {"max_simultaneous_invocations": 1, "arn": "sosw_worker_fn"}})).await;
    let ids = e.queue("worker", 1).await;
    let lambda = refusing_lambda(413, "RequestTooLargeException");
    let conf = aws_sdk_lambda::config::Builder::from(e.aws.sdk_config())
        .endpoint_url(&lambda.url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let o = e.orchestrator_with(Arc::new(LambdaInvoker(aws_sdk_lambda::Client::from_conf(conf))));
    let stats = o.run().await;
    let s = &stats.labourers["worker"];
    assert_eq!(
        (
            s.quarantined,
            s.invoked,
            s.invocation_failed,
            s.refused,
            s.invalid_tasks_skipped
        ),
        (1, 0, 0, 0, 0),
        "{s:?}"
    );
    assert!(
        e.tasks.get_task(&ids[0]).await.unwrap().is_none(),
        "out of the queue"
    );
    let closed = raw_closed(&e, &ids[0]).await.expect("archived");
    assert_eq!(closed["labourer_id_task_status"], A::S("worker_0".into()));
    assert_eq!(
        closed["attempts"],
        A::N("0".into()),
        "the claim was given back first"
    );
    assert!(!closed.contains_key("claim_id"), "{closed:?}");
    let why = closed["closed_reason"].as_s().unwrap();
    assert!(why.contains("too large"), "{why}");
    let rows = meta_rows(&e, &ids[0]).await;
    assert!(
        rows.iter().any(|m| m["action"] == A::S("quarantined".into())),
        "{rows:?}"
    );
    assert_eq!(emf(&stats, "worker")["quarantined"], 1.0);
}

#[tokio::test]
async fn the_lambda_handler_fails_a_run_that_processes_no_labourer_with_no_labourer_processed() {
    use sosw_lambda::Essential;
    let e = env(json!({"a": {}, "b": {}})).await;
    e.queue("a", 1).await;
    let invocation = sosw_lambda::Invocation {
        request_id: "r-1".into(),
        deadline_ms: u64::MAX,
        invoked_function_arn: "arn:aws:lambda:us-west-2:000000000000:function:sosw_orchestrator".into(),
        function_name: "sosw_orchestrator".into(),
        log_stream_name: "stream".into(),
    };
    // A healthy run answers with its figures.
    let ok = e
        .orchestrator()
        .handle_event(json!({}), &invocation)
        .await
        .unwrap();
    assert_eq!(ok["invoked"], 1, "{ok}");
    aws_sdk_dynamodb::Client::new(e.aws.sdk_config())
        .delete_table()
        .table_name("sosw_tasks")
        .send()
        .await
        .unwrap();
    // No labourer could be processed: an error, so Lambda's Errors metric and alarms see it.
    let err = e
        .orchestrator()
        .handle_event(json!({}), &invocation)
        .await
        .unwrap_err();
    assert_eq!(err.kind, sosw_lambda::ErrorKind::NoLabourerProcessed);
    let message = err.to_string();
    assert!(
        message.contains("sosw_tasks") && message.contains("a:") && message.contains("b:"),
        "{message}"
    );
}

#[tokio::test]
async fn start_up_refuses_timing_config_that_could_double_run_naming_the_key() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    sosw_test_support::config_cases::assert_start_up_refuses_double_run_configs(
        &aws,
        "sosw_orchestrator",
        || sosw_orchestrator::from_env(aws.sdk_config(), "sosw_orchestrator", None, Arc::new(SystemClock)),
    )
    .await;
}
