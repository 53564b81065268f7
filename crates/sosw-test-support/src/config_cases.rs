//! Config documents the essentials must refuse at start-up, shared by their tests.

use serde_json::{json, Value};

/// `task_config`s whose timing could run a task twice or overflow, each with the words the
/// refusal must contain (the key, and the labourer where one is at fault). Every essential's
/// start-up refuses them all (`start_up_refuses_timing_config_that_could_double_run_naming_the_key`
/// in the orchestrator, scavenger and Worker Assistant tests).
pub fn double_run_timing_configs() -> Vec<(Value, Vec<&'static str>)> {
    vec![
        // A 900 s worker and a 60 s delta: a running task would look queued and be invoked again.
        (
            json!({"greenfield_invocation_delta": 60, "labourers": {"w": {"max_duration": 900}}}),
            vec!["greenfield_invocation_delta", "`w`"],
        ),
        // Near i64::MAX: `now + delta` would overflow.
        (
            json!({"greenfield_invocation_delta": 9_000_000_000_000_000_000u64, "labourers": {"w": {}}}),
            vec!["greenfield_invocation_delta"],
        ),
        (
            json!({"greenfield_task_step": 0, "labourers": {"w": {}}}),
            vec!["greenfield_task_step"],
        ),
        (
            json!({"labourers": {"w": {"cooldown": -1}}}),
            vec!["labourers.w.cooldown"],
        ),
    ]
}

/// Store each of [`double_run_timing_configs`] as `sosw_essential_config` on `aws` and check that
/// `start` (an essential's start-up, reading it) refuses it with an error naming its words; then
/// that it accepts the tightest safe delta (longest run 900 s + cooldown 300 s < 1201 s).
pub async fn assert_start_up_refuses_double_run_configs<T, E, Fut>(
    aws: &crate::LocalAws,
    essential: &str,
    start: impl Fn() -> Fut,
) where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    for (task_config, needles) in double_run_timing_configs() {
        aws.put_config("sosw_essential_config", &json!({"task_config": task_config}))
            .await;
        let err = match start().await {
            Ok(_) => panic!("{essential} accepted {task_config}"),
            Err(e) => e.to_string(),
        };
        for needle in needles {
            assert!(err.contains(needle), "{essential}, {task_config}: {err}");
        }
    }
    aws.put_config(
        "sosw_essential_config",
        &json!({"task_config": {"greenfield_invocation_delta": 1201, "labourers": {"w": {}}}}),
    )
    .await;
    if let Err(e) = start().await {
        panic!("{essential} refused a safe delta (longest run 900 s + cooldown 300 s < 1201 s): {e}");
    }
}
