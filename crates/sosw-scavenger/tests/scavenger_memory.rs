//! The Scavenger's retry, dead and archive logic on the in-memory task store, with time moved by a
//! ManualClock: milliseconds per test. `scavenger.rs` keeps what needs real DynamoDB semantics
//! (moto), SNS, Lambda's configuration and meta rows in DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sosw_core::{Clock, ManualClock, MetaHandler, TaskManager};
use sosw_scavenger::{DeadTaskNotifier, RecordingNotifier, Scavenger, ScavengerConfig};
use sosw_test_support::logs::Logs;
use std::sync::Arc;

const T0: f64 = 1_750_000_000.0;

struct Env {
    clock: ManualClock,
    tasks: TaskManager,
    config: ScavengerConfig,
}

fn env_with(extra: Value) -> Env {
    let mut doc = ScavengerConfig::defaults();
    sosw_core::config::merge(&mut doc, &extra);
    let config: ScavengerConfig = sosw_core::config::from_value("test", doc).unwrap();
    let clock = ManualClock::at(T0);
    let (tasks, _store) = TaskManager::in_memory(config.task_config.clone(), Arc::new(clock.clone()));
    Env { clock, tasks, config }
}

fn env(labourers: Value) -> Env {
    env_with(json!({"task_config": {"labourers": labourers}}))
}

impl Env {
    fn scavenger(&self, notifier: Arc<dyn DeadTaskNotifier>) -> Scavenger {
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let meta = Arc::new(MetaHandler::log_only(clock));
        Scavenger::new(self.tasks.clone(), meta, notifier, self.config.clone())
    }

    async fn queue(&self, labourer: &str, n: usize) -> Vec<String> {
        sosw_test_support::tasks::queue(&self.tasks, labourer, n).await
    }

    /// What an orchestrator does: claim the next `n` tasks now.
    async fn invoke(&self, labourer: &str, n: usize) -> Vec<String> {
        sosw_test_support::tasks::claim_next(&self.tasks, labourer, n).await
    }
}

#[tokio::test]
async fn a_failing_task_is_retried_with_growing_delay_and_dies_after_max_attempts() {
    let e = env(json!({"worker": {"max_duration": 60, "max_attempts": 3}, "other": {"max_duration": 60}}));
    let id = e.queue("worker", 1).await.remove(0);
    let older = e.queue("worker", 1).await.remove(0);
    let untouched = e.queue("other", 2).await;
    let alerts = Arc::new(RecordingNotifier::default());
    let scavenger = e.scavenger(alerts.clone());
    for attempt in 1..=3i64 {
        let invoked = e.invoke("worker", 1).await;
        assert_eq!(
            invoked,
            std::slice::from_ref(&id),
            "attempt {attempt}: the failing task is first"
        );
        assert_eq!(
            scavenger.run().await.total,
            Default::default(),
            "nothing to do while it runs"
        );
        // It expires after duration + cooldown (900 + 300 s).
        e.clock.advance(1201.0);
        let stats = scavenger.run().await;
        if attempt < 3 {
            assert_eq!(
                stats.labourers["worker"].scheduled_for_retry, 1,
                "attempt {attempt}"
            );
            let l = e.tasks.register_labourer("worker").unwrap();
            let retry = e
                .tasks
                .get_retrying("worker", &id)
                .await
                .unwrap()
                .expect("retrying");
            assert_eq!(
                retry.item["desired_launch_time"],
                AttributeValue::N((l.start + 60 * attempt).to_string()),
                "delay = max_duration x attempts"
            );
            e.clock.advance((60 * attempt - 1) as f64);
            assert_eq!(
                scavenger.run().await.labourers["worker"].returned_to_queue,
                0,
                "not due yet"
            );
            e.clock.advance(1.0);
            assert_eq!(scavenger.run().await.labourers["worker"].returned_to_queue, 1);
        } else {
            assert_eq!(stats.labourers["worker"].dead, 1);
        }
    }
    let closed = e
        .tasks
        .get_from("sosw_closed_tasks", &id)
        .await
        .unwrap()
        .expect("archived");
    assert_eq!(
        closed.item["labourer_id_task_status"],
        AttributeValue::S("worker_0".into())
    );
    assert_eq!(closed.attempts, 3, "dead after exactly max_attempts attempts");
    let messages = alerts.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].1.contains(&id), "the alert names the task");
    for t in &untouched {
        assert_eq!(e.tasks.get_task(t).await.unwrap().unwrap().attempts, 0);
    }
    assert_eq!(e.tasks.get_task(&older).await.unwrap().unwrap().attempts, 0);
}

#[tokio::test]
async fn retry_tasks_limit_zero_means_no_limit_as_in_python() {
    let e = env_with(json!({
        "retry_tasks_limit": 0,
        "task_config": {"labourers": {"worker": {"max_duration": 60, "max_attempts": 3}}}
    }));
    e.queue("worker", 3).await;
    e.invoke("worker", 3).await;
    e.clock.advance(1201.0);
    let scavenger = e.scavenger(Arc::new(RecordingNotifier::default()));
    assert_eq!(scavenger.run().await.labourers["worker"].scheduled_for_retry, 3);
    e.clock.advance(60.0);
    assert_eq!(scavenger.run().await.labourers["worker"].returned_to_queue, 3);
}

#[tokio::test]
async fn a_late_completion_wins_over_the_retry() {
    let e = env(json!({"worker": {"max_duration": 60, "max_attempts": 3}}));
    e.queue("worker", 1).await;
    let id = e.invoke("worker", 1).await.remove(0);
    e.clock.advance(1201.0);
    // The worker reports after the task expired but before the scavenger ran: the report counts
    // (the task is still in the invoked state), and the task is archived as completed.
    e.tasks.mark_completed(&id, None, None).await.unwrap();
    let stats = e.scavenger(Arc::new(RecordingNotifier::default())).run().await;
    assert_eq!(stats.labourers["worker"].scheduled_for_retry, 0);
    assert_eq!(stats.labourers["worker"].archived, 1);
    assert!(e.tasks.get_retrying("worker", &id).await.unwrap().is_none());
    let closed = e.tasks.get_from("sosw_closed_tasks", &id).await.unwrap().unwrap();
    assert_eq!(
        closed.item["labourer_id_task_status"],
        AttributeValue::S("worker_1".into())
    );
}

#[tokio::test]
async fn a_thousand_completed_tasks_are_archived_in_one_run_fifty_per_transaction() {
    let e = env(json!({"worker": {"max_duration": 60, "max_simultaneous_invocations": 1000}}));
    assert_eq!(
        e.tasks.transaction_tasks(),
        50,
        "DynamoDB's 100 items, two per task"
    );
    e.queue("worker", 1000).await;
    for id in e.invoke("worker", 1000).await {
        e.tasks.mark_completed(&id, None, None).await.unwrap();
    }
    let stats = e.scavenger(Arc::new(RecordingNotifier::default())).run().await;
    assert_eq!(stats.total.archived, 1000, "{:?}", stats.total);
    assert_eq!((stats.total.errors, stats.total.archive_failed), (0, 0));
    assert_eq!(e.tasks.closed_count("worker", true).await.unwrap(), 1000);
    let l = e.tasks.register_labourer("worker").unwrap();
    assert_eq!(
        e.tasks.completed_count(&l).await.unwrap(),
        0,
        "nothing left behind"
    );
}

/// The memory store, with DynamoDB failures moto cannot produce on demand: every archive
/// transaction of several tasks fails after its retries (as a burst of conflicts or 5xx would),
/// and so does every write that touches `poisoned`.
#[derive(Debug, Clone)]
struct FailingArchives {
    inner: sosw_core::MemoryStore,
    poisoned: Arc<std::sync::Mutex<Option<String>>>,
    transactions: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl sosw_core::task::store::TaskStore for FailingArchives {
    async fn get(
        &self,
        table: &str,
        key: sosw_core::task::store::Key,
    ) -> Result<Option<sosw_core::task::Item>, sosw_core::task::store::StoreError> {
        self.inner.get(table, key).await
    }
    fn query(
        &self,
        query: sosw_core::task::store::IndexQuery,
    ) -> futures::stream::BoxStream<
        '_,
        Result<sosw_core::task::store::Page, sosw_core::task::store::StoreError>,
    > {
        self.inner.query(query)
    }
    async fn update(
        &self,
        table: &str,
        key: sosw_core::task::store::Key,
        update: sosw_core::task::store::Update,
        condition: sosw_core::task::store::Condition,
    ) -> Result<sosw_core::task::store::Written, sosw_core::task::store::StoreError> {
        self.inner.update(table, key, update, condition).await
    }
    async fn transact(
        &self,
        items: Vec<sosw_core::task::store::TxItem>,
        token: Option<String>,
    ) -> Result<sosw_core::task::store::Written, sosw_core::task::store::StoreError> {
        use sosw_core::task::store::{FailureKind, StoreError, TxItem};
        self.transactions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if items.len() > 2 {
            return Err(StoreError::new(
                FailureKind::Exhausted,
                "injected: TransactionCanceledException (TransactionConflict) after every retry",
            ));
        }
        let poisoned = self.poisoned.lock().unwrap().clone();
        let touches = |key: &sosw_core::task::Item| {
            poisoned
                .as_ref()
                .is_some_and(|p| key.get("task_id") == Some(&AttributeValue::S(p.clone())))
        };
        if items
            .iter()
            .any(|i| matches!(i, TxItem::Delete { key, .. } if touches(key)))
        {
            return Err(StoreError::new(
                FailureKind::Other,
                "injected: InternalServerError",
            ));
        }
        self.inner.transact(items, token).await
    }
    async fn batch_put(
        &self,
        table: &str,
        items: Vec<sosw_core::task::Item>,
    ) -> Result<(), sosw_core::task::store::StoreError> {
        self.inner.batch_put(table, items).await
    }
    async fn batch_get(
        &self,
        keys: Vec<(String, sosw_core::task::store::Key)>,
        attribute: &str,
    ) -> Result<Vec<sosw_core::task::Item>, sosw_core::task::store::StoreError> {
        self.inner.batch_get(keys, attribute).await
    }
}

#[tokio::test]
async fn an_archive_transaction_that_fails_falls_back_task_by_task_and_what_cannot_move_is_counted() {
    // Issue 11, point 9: a failed group of archives must neither vanish from the figures nor
    // strand its other tasks. The group falls back to one transaction per task; the one task that
    // still cannot move stays in the queue, counted in `archive_failed` and `errors` (stats, EMF
    // line) and logged with its task id, and the next run archives it.
    let mut doc = ScavengerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({"task_config": {"labourers": {"worker": {"max_duration": 60, "max_simultaneous_invocations": 30}}}}),
    );
    let config: ScavengerConfig = sosw_core::config::from_value("test", doc).unwrap();
    let clock = ManualClock::at(T0);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let store = FailingArchives {
        inner: sosw_core::MemoryStore::for_config(&config.task_config),
        poisoned: Arc::default(),
        transactions: Arc::default(),
    };
    let tasks = TaskManager::with_store(
        Arc::new(store.clone()),
        config.task_config.clone(),
        shared.clone(),
    );
    let e = Env { clock, tasks, config };
    e.queue("worker", 30).await;
    let ids = e.invoke("worker", 30).await;
    for id in &ids {
        e.tasks.mark_completed(id, None, None).await.unwrap();
    }
    *store.poisoned.lock().unwrap() = Some(ids[7].clone());
    let (logs, guard) = Logs::capture();
    let stats = e.scavenger(Arc::new(RecordingNotifier::default())).run().await;
    drop(guard);
    let logs = logs.text();
    let line = logs
        .lines()
        .find(|l| l.contains("task not moved"))
        .unwrap_or_else(|| panic!("no `task not moved` line: {logs}"));
    assert!(
        line.contains(&format!("task_id={}", ids[7])) && line.contains("InternalServerError"),
        "the task id and the cause: {line}"
    );
    assert!(
        logs.contains("archive transaction failed; archiving its tasks one by one"),
        "{logs}"
    );
    let s = &stats.labourers["worker"];
    assert_eq!(
        (s.archived, s.archive_failed, s.errors, s.skipped_changed),
        (29, 1, 1, 0),
        "{s:?}"
    );
    assert_eq!(
        store.transactions.load(std::sync::atomic::Ordering::SeqCst),
        1 + 30,
        "one group of 30, then each task alone"
    );
    let line: Value =
        serde_json::from_str(&sosw_scavenger::emf_lines("sosw_scavenger", &stats, 1)[0]).unwrap();
    assert_eq!(
        (line["archive_failed"].as_f64(), line["errors"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(e.tasks.closed_count("worker", true).await.unwrap(), 29);
    let left = e
        .tasks
        .get_task(&ids[7])
        .await
        .unwrap()
        .expect("still in the queue");
    assert!(left.completed_at.is_some(), "completed, waiting for the next run");
    assert!(stats.failure().is_none(), "a partial failure is not a failed run");

    *store.poisoned.lock().unwrap() = None;
    let next = e.scavenger(Arc::new(RecordingNotifier::default())).run().await;
    assert_eq!((next.total.archived, next.total.archive_failed), (1, 0));
    assert_eq!(e.tasks.closed_count("worker", true).await.unwrap(), 30);
}

#[tokio::test]
async fn an_expired_row_with_negative_attempts_is_quarantined_never_given_a_negative_delay() {
    let e =
        env(json!({"worker": {"max_duration": 60, "max_attempts": 3, "max_simultaneous_invocations": 2}}));
    e.queue("worker", 2).await;
    let ids = e.invoke("worker", 2).await;
    e.clock.advance(1201.0);
    // A row whose attempts went negative (hand-edited, or written by another tool).
    let store = e.tasks.store().clone();
    let key = sosw_core::task::Item::from([("task_id".to_string(), AttributeValue::S(ids[0].clone()))]);
    let set = sosw_core::task::store::Update {
        set: vec![("attempts".into(), AttributeValue::N("-4".into()))],
        ..Default::default()
    };
    store.update("sosw_tasks", key, set, vec![]).await.unwrap();
    let stats = e.scavenger(Arc::new(RecordingNotifier::default())).run().await;
    let s = &stats.labourers["worker"];
    assert_eq!((s.quarantined, s.scheduled_for_retry), (1, 1), "{s:?}");
    assert!(
        e.tasks.get_retrying("worker", &ids[0]).await.unwrap().is_none(),
        "not retried"
    );
    let closed = e
        .tasks
        .get_raw("sosw_closed_tasks", &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        closed["labourer_id_task_status"],
        AttributeValue::S("worker_0".into())
    );
    assert!(
        closed["closed_reason"].as_s().unwrap().contains("-4"),
        "{closed:?}"
    );
    // The good one waits `max_duration × attempts` = 60 s, never less.
    let retry = e.tasks.get_retrying("worker", &ids[1]).await.unwrap().unwrap();
    let launch: f64 = retry.item["desired_launch_time"].as_n().unwrap().parse().unwrap();
    assert_eq!(launch, (T0 + 1201.0).floor() + 60.0);
}
