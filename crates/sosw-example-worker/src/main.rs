//! An example sosw worker. For each task it counts the `items` of its payload and computes a
//! checksum of them, logs what it did, and reports both as stats and results.
//!
//! For demonstrations of retries and dead tasks it can misbehave, deterministically per task
//! (a hash of `task_id`), so a failing task fails on every attempt:
//! - `SOSW_EXAMPLE_FAIL_RATE` (0.0–1.0): share of tasks that fail;
//! - `SOSW_EXAMPLE_TIMEOUT_RATE` (0.0–1.0): share of tasks that run `SOSW_EXAMPLE_TIMEOUT_SECS`
//!   (default 12) seconds, past their expected duration, before completing.

use serde_json::Value;
use sosw_worker::{run, Report};
use std::time::Duration;

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

async fn work(event: Value) -> Result<Report, String> {
    let task_id = event["task_id"].as_str().unwrap_or("").to_string();
    let items: Vec<String> = event["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if share(&task_id, 1) < rate("SOSW_EXAMPLE_FAIL_RATE") {
        tracing::warn!(task_id = %task_id, "failing on purpose (SOSW_EXAMPLE_FAIL_RATE)");
        return Err(format!("task {task_id}: simulated failure"));
    }
    if share(&task_id, 2) < rate("SOSW_EXAMPLE_TIMEOUT_RATE") {
        let secs = std::env::var("SOSW_EXAMPLE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(12);
        tracing::warn!(task_id = %task_id, secs, "running late on purpose (SOSW_EXAMPLE_TIMEOUT_RATE)");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let checksum = items
        .iter()
        .flat_map(|s| s.bytes())
        .fold(0u64, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(b)));
    tracing::info!(task_id = %task_id, items = items.len(), checksum, attempts = %event["attempts"], "processed items");
    Ok(Report::default()
        .stat("items", items.len())
        .result("checksum", checksum.to_string())
        .output(serde_json::json!({"items": items.len(), "checksum": checksum})))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(work).await
}
