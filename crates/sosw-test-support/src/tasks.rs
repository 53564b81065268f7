//! Tasks in a queue and claims on them, as the essentials' tests set them up.

use serde_json::json;
use sosw_core::{ClaimOutcome, TaskManager};

/// Queue `n` tasks for `labourer` with payloads `{"n": i}`; their ids, in order.
pub async fn queue(tasks: &TaskManager, labourer: &str, n: usize) -> Vec<String> {
    let payloads = (0..n)
        .map(|i| {
            json!({"payload": {"n": i}})
                .as_object()
                .cloned()
                .expect("an object")
        })
        .collect();
    let items = tasks
        .create_tasks(labourer, payloads, true)
        .await
        .expect("the tasks are queued");
    items
        .iter()
        .map(|i| i["task_id"].as_s().expect("task_id is a string").clone())
        .collect()
}

/// What an orchestrator does without invoking: claim the next `n` tasks of `labourer` now; the
/// ids claimed. Every claim must succeed (the test owns the queue).
pub async fn claim_next(tasks: &TaskManager, labourer: &str, n: usize) -> Vec<String> {
    let l = tasks.register_labourer(labourer).expect("a configured labourer");
    let mut ids = Vec::new();
    for t in tasks.next_tasks(&l, n).await.expect("the queue is readable") {
        assert_eq!(
            tasks.claim(&l, &t).await.expect("the claim is written"),
            ClaimOutcome::Claimed
        );
        ids.push(t.task_id.0.clone());
    }
    ids
}
