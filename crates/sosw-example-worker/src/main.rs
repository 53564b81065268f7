//! An example sosw worker, written with `sosw-worker`'s typed API. For each task it counts the
//! `items` of its payload and computes a checksum of them, logs what it did, and reports both as
//! stats and results. Walked through in `docs/worker.md`.
//!
//! For demonstrations of retries and dead tasks it can misbehave, deterministically per task
//! (a hash of `task_id`), so a failing task fails on every attempt:
//! - `SOSW_EXAMPLE_FAIL_RATE` (0.0–1.0): share of tasks that fail;
//! - `SOSW_EXAMPLE_TIMEOUT_RATE` (0.0–1.0): share of tasks that run `SOSW_EXAMPLE_TIMEOUT_SECS`
//!   (default 12) seconds, past their expected duration, before completing.

use lambda_runtime::{service_fn, Error};
use serde::Deserialize;
use serde_json::{json, Value};
use sosw_worker::{Report, SoswLayer, Task};
use std::time::Duration;

/// The task payload. Other fields of the job (e.g. `note`) are ignored.
#[derive(Debug, Deserialize)]
struct Job {
    /// What to count; a job without `items` has none.
    #[serde(default)]
    items: Vec<Item>,
}

/// An item: text, or any other JSON value (counted by its JSON text).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Other(Value),
}

impl Item {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Other(v) => v.to_string(),
        }
    }
}

fn rate(name: &str) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A stable number in [0, 1) for a task id and a salt.
fn share(task_id: &str, salt: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in task_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 10_000) as f64 / 10_000.0
}

fn checksum(items: &[Item]) -> u64 {
    items
        .iter()
        .flat_map(|i| i.text().into_bytes())
        .fold(0u64, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(b)))
}

async fn work(task: Task<Job>) -> Result<Report, Error> {
    let task_id = task.task_id().unwrap_or_default().to_string();
    let attempts = task.sosw.as_ref().and_then(|s| s.attempts);
    if share(&task_id, 1) < rate("SOSW_EXAMPLE_FAIL_RATE") {
        tracing::warn!(task_id, "failing on purpose (SOSW_EXAMPLE_FAIL_RATE)");
        return Err(format!("task {task_id}: simulated failure").into());
    }
    if share(&task_id, 2) < rate("SOSW_EXAMPLE_TIMEOUT_RATE") {
        let secs = std::env::var("SOSW_EXAMPLE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(12);
        tracing::warn!(
            task_id,
            secs,
            "running late on purpose (SOSW_EXAMPLE_TIMEOUT_RATE)"
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let items = &task.payload.items;
    let checksum = checksum(items);
    tracing::info!(
        task_id,
        request_id = %task.context.request_id,
        time_left_ms = task.time_left().map(|d| d.as_millis()),
        items = items.len(),
        checksum,
        attempts,
        "processed items"
    );
    Ok(Report::default()
        .stat("items", items.len())
        .result("checksum", checksum.to_string())
        .output(json!({"items": items.len(), "checksum": checksum})))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(SoswLayer::from_env().await.layer(service_fn(work))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;

    fn task(event: Value) -> Task<Job> {
        sosw_worker::split_event(event, Context::default()).unwrap()
    }

    #[tokio::test]
    async fn counts_and_checksums_the_items_of_its_task() {
        let report = work(task(
            json!({"task_id": "t1", "attempts": 1, "items": ["ab", 7], "note": "x"}),
        ))
        .await
        .unwrap();
        // "ab" then "7": ((0*31+97)*31+98)*31+55
        let expected = ((97u64 * 31 + 98) * 31) + 55;
        assert_eq!(report.stats["items"], json!(2));
        assert_eq!(report.result["checksum"], json!(expected.to_string()));
        assert_eq!(report.output, json!({"items": 2, "checksum": expected}));
    }

    #[tokio::test]
    async fn a_job_without_items_has_none() {
        let report = work(task(json!({"task_id": "t2", "greeting": "hello"})))
            .await
            .unwrap();
        assert_eq!(report.stats["items"], json!(0));
    }
}
