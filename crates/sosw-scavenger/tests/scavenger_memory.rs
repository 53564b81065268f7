//! The Scavenger's retry, dead and archive logic on the in-memory task store, with time moved by a
//! ManualClock: milliseconds per test. `scavenger.rs` keeps what needs real DynamoDB semantics
//! (moto), SNS, Lambda's configuration and meta rows in DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sosw_core::{Clock, ManualClock, MetaHandler, TaskManager};
use sosw_scavenger::{DeadTaskNotifier, RecordingNotifier, Scavenger, ScavengerConfig};
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
