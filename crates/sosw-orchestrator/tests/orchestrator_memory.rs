//! The Orchestrator's queue and claim logic on the in-memory task store: how many tasks a run
//! invokes, in which order, exactly once, and what happens to rows it cannot invoke. These run in
//! milliseconds; `orchestrator.rs` keeps what needs real DynamoDB semantics (moto), CloudWatch
//! health, Lambda refusals and meta rows in DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Map, Value};
use sosw_core::ecology::MetricSource;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::task::store::{TaskStore, Update};
use sosw_core::task::Item;
use sosw_core::{Clock, EcologyError, EcologyManager, ManualClock, MemoryStore, MetaHandler, TaskManager};
use sosw_orchestrator::{Orchestrator, OrchestratorConfig};
use sosw_test_support::logs::Logs;
use std::collections::HashSet;
use std::sync::Arc;

/// No health metrics are configured in these tests: a fetch would be a bug.
#[derive(Debug)]
struct NoMetrics;

impl MetricSource for NoMetrics {
    fn fetch<'a>(
        &'a self,
        _details: &'a Map<String, Value>,
        _now: f64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<f64>, EcologyError>> + Send + 'a>>
    {
        Box::pin(async { panic!("no health metric is configured") })
    }
}

struct Env {
    tasks: TaskManager,
    store: MemoryStore,
    invoker: Arc<RecordingInvoker>,
    config: OrchestratorConfig,
    clock: Arc<dyn Clock>,
    /// The same clock, to move time.
    manual: ManualClock,
}

fn env(labourers: Value) -> Env {
    let mut doc = OrchestratorConfig::defaults();
    sosw_core::config::merge(&mut doc, &json!({"task_config": {"labourers": labourers}}));
    let config: OrchestratorConfig = sosw_core::config::from_value("test", doc).unwrap();
    config.validate().unwrap();
    let manual = ManualClock::at(1_750_000_000.0);
    let clock: Arc<dyn Clock> = Arc::new(manual.clone());
    let (tasks, store) = TaskManager::in_memory(config.task_config.clone(), clock.clone());
    Env {
        tasks,
        store,
        invoker: Arc::new(RecordingInvoker::default()),
        config,
        clock,
        manual,
    }
}

impl Env {
    fn orchestrator(&self) -> Orchestrator {
        let ecology = EcologyManager::new(
            Arc::new(NoMetrics),
            self.config.task_config.ecology_config.clone(),
            self.clock.clone(),
        );
        let meta = Arc::new(MetaHandler::log_only(self.clock.clone()));
        Orchestrator::new(
            self.tasks.clone(),
            ecology,
            meta,
            self.invoker.clone(),
            self.config.clone(),
        )
    }

    async fn queue(&self, labourer: &str, n: usize) -> Vec<String> {
        sosw_test_support::tasks::queue(&self.tasks, labourer, n).await
    }

    fn invoked(&self) -> Vec<String> {
        self.invoker
            .calls()
            .iter()
            .map(|(_, p)| {
                let v: Value = serde_json::from_str(p).unwrap();
                v["task_id"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

fn labourer(limit: u32) -> Value {
    json!({"max_simultaneous_invocations": limit, "max_duration": 600})
}

#[tokio::test]
async fn a_run_invokes_the_head_of_the_queue_up_to_the_limit_each_once() {
    let e = env(json!({"worker": labourer(10)}));
    let ids = e.queue("worker", 12).await;
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.invoked, 10);
    let mut invoked = e.invoked();
    invoked.sort();
    let mut head = ids[..10].to_vec();
    head.sort();
    assert_eq!(invoked, head, "the first 10 in queue order");
    for id in &ids[..10] {
        let t = e.tasks.get_task(id).await.unwrap().unwrap();
        assert_eq!(t.attempts, 1);
        assert!(t.greenfield > e.clock.now_secs(), "moved to the invoked range");
    }
    for id in &ids[10..] {
        assert_eq!(
            e.tasks.get_task(id).await.unwrap().unwrap().attempts,
            0,
            "still queued"
        );
    }
    // Ten running, limit ten: the next run invokes nothing.
    let again = e.orchestrator().run().await;
    assert_eq!(again.labourers["worker"].running, 10);
    assert_eq!(again.invoked, 0);
}

#[tokio::test]
async fn the_global_default_limit_is_one_and_a_short_queue_is_drained() {
    let e = env(json!({"one": {"max_duration": 600}, "many": labourer(10)}));
    e.queue("one", 3).await;
    e.queue("many", 3).await;
    let stats = e.orchestrator().run().await;
    assert_eq!(
        stats.labourers["one"].invoked, 1,
        "max_simultaneous_invocations defaults to 1"
    );
    assert_eq!(stats.labourers["many"].invoked, 3);
}

#[tokio::test]
async fn concurrent_orchestrators_never_invoke_a_task_twice() {
    let e = env(json!({"worker": labourer(30)}));
    e.queue("worker", 40).await;
    let runs: Vec<_> = (0..4).map(|_| e.orchestrator()).collect();
    let stats = futures_join(runs).await;
    let invoked = e.invoked();
    let unique: HashSet<_> = invoked.iter().collect();
    assert_eq!(unique.len(), invoked.len(), "each task invoked at most once");
    assert_eq!(stats, invoked.len());
    assert!(invoked.len() <= 40);
}

async fn futures_join(runs: Vec<Orchestrator>) -> usize {
    let handles: Vec<_> = runs
        .into_iter()
        .map(|o| tokio::spawn(async move { o.run().await.invoked }))
        .collect();
    let mut total = 0;
    for h in handles {
        total += usize::try_from(h.await.unwrap()).unwrap();
    }
    total
}

#[tokio::test]
async fn a_failed_invocation_keeps_its_claim_for_the_scavenger() {
    let e = env(json!({"worker": labourer(5)}));
    let ids = e.queue("worker", 3).await;
    e.invoker.fail_when_payload_contains(&ids[1]);
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.invoked, 2);
    assert_eq!(stats.invocation_failed, 1);
    assert_eq!(e.tasks.get_task(&ids[1]).await.unwrap().unwrap().attempts, 1);
}

#[tokio::test]
async fn a_row_that_cannot_be_invoked_is_quarantined_and_the_queue_runs_on() {
    let e = env(json!({"a": labourer(2), "b": labourer(2)}));
    e.queue("a", 2).await;
    let ids = e.queue("b", 2).await;
    let bad = &ids[0];
    let key = Item::from([("task_id".to_string(), AttributeValue::S(bad.clone()))]);
    let set = Update {
        set: vec![("payload".into(), AttributeValue::S("[1, 2]".into()))],
        ..Update::default()
    };
    e.store.update("sosw_tasks", key, set, vec![]).await.unwrap();
    let stats = e.orchestrator().run().await;
    assert_eq!(stats.labourers["a"].invoked, 2);
    assert_eq!(stats.labourers["b"].invoked, 1, "the rest of b's queue runs");
    assert_eq!(stats.labourers["b"].quarantined, 1);
    assert!(e.tasks.get_task(bad).await.unwrap().is_none(), "out of the queue");
    let closed = e.tasks.get_raw("sosw_closed_tasks", bad).await.unwrap().unwrap();
    assert_eq!(closed["labourer_id_task_status"], AttributeValue::S("b_0".into()));
    assert!(closed.contains_key("closed_reason"));
    assert_eq!(closed["attempts"], AttributeValue::N("0".into()), "never claimed");
}

#[tokio::test]
async fn each_run_reports_how_long_the_head_of_the_queue_has_waited_even_when_it_invokes_nothing() {
    let e = env(json!({"worker": labourer(2), "idle": labourer(2)}));
    e.queue("worker", 4).await;
    e.manual.advance(90.0);
    let first = e.orchestrator().run().await;
    assert_eq!(first.labourers["worker"].invoked, 2);
    assert_eq!(
        first.labourers["worker"].queue_head_age_seconds,
        Some(90),
        "the head was created 90 s before this run"
    );
    assert_eq!(
        first.labourers["idle"].queue_head_age_seconds, None,
        "an empty queue has no age"
    );

    // At its limit the labourer invokes nothing, and the waiting head still ages: the signal of
    // a queue that does not move (the monitoring stack's `sosw_queue_too_old` alarm).
    e.manual.advance(600.0);
    let second = e.orchestrator().run().await;
    assert_eq!(second.labourers["worker"].desired, 0);
    assert_eq!(second.labourers["worker"].queue_head_age_seconds, Some(690));
    let line = sosw_orchestrator::emf_lines("sosw_orchestrator", &second, 1)
        .into_iter()
        .find(|l| l.contains("\"labourer_id\":\"worker\""))
        .unwrap();
    let doc: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(doc["queue_head_age_seconds"], 690.0);
    assert_eq!(
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == "queue_head_age_seconds")
            .unwrap()["Unit"],
        "Seconds"
    );
}

#[tokio::test]
async fn dozens_of_unusable_rows_at_the_head_do_not_hold_back_the_one_slot_in_the_same_run() {
    // One slot, forty unusable rows ahead of the only good task (a Python import gone wrong).
    // Each listing round reads as many rows as were unusable so far plus the open slot, so the
    // good task is reached in the same run (four rounds reached only fifteen rows).
    let e = env(json!({"worker": labourer(1)}));
    let ids = e.queue("worker", 41).await;
    for bad in &ids[..40] {
        let key = Item::from([("task_id".to_string(), AttributeValue::S(bad.clone()))]);
        let set = Update {
            set: vec![("payload".into(), AttributeValue::S("[1, 2]".into()))],
            ..Update::default()
        };
        e.store.update("sosw_tasks", key, set, vec![]).await.unwrap();
    }
    let (logs, guard) = Logs::capture();
    let stats = e.orchestrator().run().await;
    drop(guard);
    let s = &stats.labourers["worker"];
    assert_eq!((s.quarantined, s.invoked), (40, 1), "{s:?}");
    // Each is logged with its task id and the reason.
    let logs = logs.text();
    for bad in &ids[..40] {
        assert!(
            logs.lines().any(|l| l.contains("task quarantined")
                && l.contains(&format!("task_id=\"{bad}\""))
                && l.contains("not a JSON object")),
            "{bad}: {logs}"
        );
    }
    assert_eq!(e.invoked(), vec![ids[40].clone()]);
    assert_eq!(e.tasks.closed_count("worker", false).await.unwrap(), 40);
}

#[tokio::test]
async fn a_run_moves_a_bounded_number_of_unusable_rows_and_the_next_run_goes_on() {
    // More unusable rows than one run's listing rounds reach (2^LISTING_ROUNDS − 1 = 1,023): the
    // first run moves that many out of the way, the next one the rest and invokes the good task.
    let e = env(json!({"worker": labourer(1)}));
    let bound = (1usize << sosw_orchestrator::LISTING_ROUNDS) - 1;
    let ids = e.queue("worker", bound + 8).await;
    for bad in &ids[..bound + 7] {
        let key = Item::from([("task_id".to_string(), AttributeValue::S(bad.clone()))]);
        let set = Update {
            set: vec![("payload".into(), AttributeValue::S("{'python': 'repr'}".into()))],
            ..Update::default()
        };
        e.store.update("sosw_tasks", key, set, vec![]).await.unwrap();
    }
    let first = e.orchestrator().run().await;
    let s = &first.labourers["worker"];
    assert_eq!((s.quarantined, s.invoked), (bound as u64, 0), "{s:?}");
    let second = e.orchestrator().run().await;
    let s = &second.labourers["worker"];
    assert_eq!((s.quarantined, s.invoked), (7, 1), "{s:?}");
    assert_eq!(e.invoked(), vec![ids[bound + 7].clone()]);
}
