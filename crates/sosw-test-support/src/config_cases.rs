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
