//! The Worker Assistant's report logic on the in-memory task store: which reports count, which are
//! refused and where the refused task was. `worker_assistant.rs` keeps the moto-backed suite
//! (meta rows in DynamoDB, a Python sosw worker).

use serde_json::json;
use sosw_core::{ManualClock, MetaHandler, TaskConfig, TaskError, TaskManager, TaskWhereabouts};
use sosw_worker_assistant::{WorkerAssistant, WorkerAssistantError};
use std::sync::Arc;

fn env() -> (TaskManager, WorkerAssistant) {
    let clock = Arc::new(ManualClock::at(1_750_000_000.0));
    let config = TaskConfig::from_user(&json!({"labourers": {"worker": {"max_duration": 60}}})).unwrap();
    let (tasks, _store) = TaskManager::in_memory(config, clock.clone());
    let wa = WorkerAssistant::new(tasks.clone(), Arc::new(MetaHandler::log_only(clock)));
    (tasks, wa)
}

async fn invoked_task(tasks: &TaskManager) -> String {
    let payload = json!({"payload": {"x": 1}}).as_object().cloned().unwrap();
    let item = tasks.create_task("worker", payload, true).await.unwrap();
    let id = item["task_id"].as_s().unwrap().clone();
    let l = tasks.register_labourer("worker").unwrap();
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert_eq!(
        tasks.claim(&l, &t).await.unwrap(),
        sosw_core::ClaimOutcome::Claimed
    );
    id
}

fn refused_as(err: &WorkerAssistantError) -> Option<TaskWhereabouts> {
    match err {
        WorkerAssistantError::Task(TaskError::ReportRefused { state, .. }) => Some(*state),
        _ => None,
    }
}

#[tokio::test]
async fn a_completion_report_lands_once_with_stats_and_results() {
    let (tasks, wa) = env();
    let id = invoked_task(&tasks).await;
    let event = json!({"action": "mark_task_as_completed", "task_id": id,
                       "stats": {"rows": 3}, "result": {"file": "s3://x"}});
    wa.handle(&event).await.unwrap();
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(t.completed_at.is_some());
    assert_eq!(t.item["stat_rows"].as_n().unwrap(), "3");
    assert_eq!(t.item["result_file"].as_s().unwrap(), "s3://x");
    let again = wa.handle(&event).await.unwrap_err();
    assert_eq!(refused_as(&again), Some(TaskWhereabouts::Completed), "{again}");
}

#[tokio::test]
async fn a_failure_report_counts_failed_attempts() {
    let (tasks, wa) = env();
    let id = invoked_task(&tasks).await;
    let event = json!({"action": "mark_task_as_failed", "task_id": id});
    wa.handle(&event).await.unwrap();
    wa.handle(&event).await.unwrap();
    let t = tasks.get_task(&id).await.unwrap().unwrap();
    assert_eq!(t.item["failed_attempts"].as_n().unwrap(), "2");
    assert!(t.completed_at.is_none());
}

#[tokio::test]
async fn late_reports_are_refused_naming_where_the_task_is_and_write_nothing() {
    let (tasks, wa) = env();
    let id = invoked_task(&tasks).await;
    let completed = json!({"action": "mark_task_as_completed", "task_id": id});
    let running = tasks.get_task(&id).await.unwrap().unwrap();
    assert!(tasks.move_to_retry(&running, 0).await.unwrap());
    let err = wa.handle(&completed).await.unwrap_err();
    assert_eq!(
        refused_as(&err),
        Some(TaskWhereabouts::RetryingOrUnknown),
        "{err}"
    );
    let retrying = tasks.get_retrying("worker", &id).await.unwrap().unwrap();
    assert!(tasks.return_to_queue(&retrying, 500).await.unwrap());
    let queued = tasks.get_task(&id).await.unwrap().unwrap();
    let err = wa.handle(&completed).await.unwrap_err();
    assert_eq!(refused_as(&err), Some(TaskWhereabouts::Queued), "{err}");
    assert_eq!(
        tasks.get_task(&id).await.unwrap().unwrap(),
        queued,
        "nothing written"
    );
    assert!(tasks.archive(&queued).await.unwrap());
    let err = wa.handle(&completed).await.unwrap_err();
    assert_eq!(refused_as(&err), Some(TaskWhereabouts::Archived), "{err}");
    let ghost = json!({"action": "mark_task_as_completed", "task_id": "ghost"});
    let err = wa.handle(&ghost).await.unwrap_err();
    assert_eq!(
        refused_as(&err),
        Some(TaskWhereabouts::RetryingOrUnknown),
        "{err}"
    );
    assert!(tasks.get_task("ghost").await.unwrap().is_none(), "no phantom row");
}
