//! A labourer: a type of worker (one Lambda function), with the times and limits registered for
//! the current run of an essential.
//!
//! Registration times derive from one "now" (`start`):
//! - `invoked` = `start` + `greenfield_invocation_delta`: the greenfield a task invoked now gets;
//! - `expired` = `invoked` − (`duration` + `cooldown`): invoked tasks with a greenfield below this
//!   ran out of time.

use crate::config::{LabourerConfig, TaskConfig};
use serde::Serialize;
use std::fmt;

/// Default expected duration of a worker run, in seconds (Python sosw: 900).
pub const DEFAULT_DURATION: i64 = 900;
/// Default cooldown after `duration` before a task counts as expired (Python sosw: 300).
pub const DEFAULT_COOLDOWN: i64 = 300;

/// The largest `greenfield_invocation_delta`, `duration`, `cooldown` or `max_duration` accepted
/// (100 years in seconds): far beyond any real value, and far from overflowing `now + delta`.
pub const MAX_SECONDS: i64 = 100 * 366 * 86_400;
/// The largest `greenfield_task_step` accepted: queue positions must stay far below "now" (a
/// greenfield at or above the registration time reads as an invoked task).
pub const MAX_TASK_STEP: i64 = 1_000_000;
/// Lambda's longest timeout, the run time assumed for a labourer without `max_duration`.
pub const LAMBDA_MAX_TIMEOUT: i64 = 900;

/// Refuse, naming the key, timing settings that would make a running task look queued (and be
/// invoked again), or that are out of range or would overflow:
/// - `greenfield_task_step` in 1..=[`MAX_TASK_STEP`], `greenfield_invocation_delta` in 1..=[`MAX_SECONDS`];
/// - per labourer `duration`, `max_duration` in 1..=[`MAX_SECONDS`], `cooldown` in 0..=[`MAX_SECONDS`];
/// - `greenfield_invocation_delta` larger than every labourer's longest run
///   (max(`duration`, `max_duration` or Lambda's 900 s)) + `cooldown`: an invoked task must
///   expire (and go to the scavenger) before its greenfield falls back into the queue range.
pub fn validate_timing(cfg: &TaskConfig) -> Result<(), crate::ConfigError> {
    let bad = |key: String, value: i64, range: &str| {
        Err(crate::ConfigError::Invalid(format!(
            "task_config.{key} = {value}: must be in {range}"
        )))
    };
    if !(1..=MAX_TASK_STEP).contains(&cfg.greenfield_task_step) {
        return bad(
            "greenfield_task_step".into(),
            cfg.greenfield_task_step,
            &format!("1..={MAX_TASK_STEP}"),
        );
    }
    let delta = cfg.greenfield_invocation_delta;
    if !(1..=MAX_SECONDS).contains(&delta) {
        return bad(
            "greenfield_invocation_delta".into(),
            delta,
            &format!("1..={MAX_SECONDS}"),
        );
    }
    for (id, l) in &cfg.labourers {
        for (name, value, min) in [
            ("duration", l.duration, 1),
            ("max_duration", l.max_duration, 1),
            ("cooldown", l.cooldown, 0),
        ] {
            if let Some(v) = value {
                if !(min..=MAX_SECONDS).contains(&v) {
                    return bad(
                        format!("labourers.{id}.{name}"),
                        v,
                        &format!("{min}..={MAX_SECONDS}"),
                    );
                }
            }
        }
        let run = l
            .duration
            .unwrap_or(DEFAULT_DURATION)
            .max(l.max_duration.unwrap_or(LAMBDA_MAX_TIMEOUT));
        let longest = run + l.cooldown.unwrap_or(DEFAULT_COOLDOWN);
        if delta <= longest {
            return Err(crate::ConfigError::Invalid(format!(
                "task_config.greenfield_invocation_delta = {delta} must be larger than labourer `{id}`'s longest run \
                 + cooldown ({longest} s): otherwise a running task falls back into the queue range and is invoked again"
            )));
        }
    }
    Ok(())
}

/// Health of a labourer, from 0 (Bad) to 4 (High), as Python sosw's `ECO_STATUSES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EcoStatus(pub u8);

impl EcoStatus {
    /// 0: Bad.
    pub const BAD: Self = Self(0);
    /// 1: Poor.
    pub const POOR: Self = Self(1);
    /// 2: Moderate.
    pub const MODERATE: Self = Self(2);
    /// 3: Good.
    pub const GOOD: Self = Self(3);
    /// 4: High (the health of a labourer without metrics).
    pub const HIGH: Self = Self(4);

    /// The name Python sosw gives the status.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Bad",
            1 => "Poor",
            2 => "Moderate",
            3 => "Good",
            _ => "High",
        }
    }
}

impl fmt::Display for EcoStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// A labourer registered for one run.
#[derive(Debug, Clone, Serialize)]
pub struct Labourer {
    /// The labourer id: the worker function's name.
    pub id: String,
    /// The function to invoke (ARN or name).
    pub arn: String,
    /// Registration time (seconds).
    pub start: i64,
    /// `start + greenfield_invocation_delta`.
    pub invoked: i64,
    /// `invoked - (duration + cooldown)`.
    pub expired: i64,
    /// Expected run time (seconds).
    pub duration: i64,
    /// Cooldown (seconds).
    pub cooldown: i64,
    /// Attempts before a task is dead.
    pub max_attempts: u32,
    /// Limit of simultaneous invocations.
    pub max_simultaneous_invocations: u32,
    /// The labourer's own config.
    #[serde(skip)]
    pub config: LabourerConfig,
}

impl Labourer {
    /// Register labourer `id` at time `now` (whole seconds).
    pub fn register(id: &str, cfg: &LabourerConfig, task_config: &TaskConfig, now: i64) -> Self {
        let duration = cfg.duration.filter(|d| *d > 0).unwrap_or(DEFAULT_DURATION);
        let cooldown = cfg.cooldown.filter(|c| *c >= 0).unwrap_or(DEFAULT_COOLDOWN);
        let invoked = now.saturating_add(task_config.greenfield_invocation_delta);
        Self {
            id: id.to_string(),
            arn: cfg.arn.clone().unwrap_or_else(|| id.to_string()),
            start: now,
            invoked,
            expired: invoked.saturating_sub(duration.saturating_add(cooldown)),
            duration,
            cooldown,
            max_attempts: task_config.max_attempts_for(id),
            max_simultaneous_invocations: cfg
                .max_simultaneous_invocations
                .unwrap_or(task_config.max_simultaneous_invocations),
            config: cfg.clone(),
        }
    }

    /// Register every configured labourer, in config order.
    pub fn register_all(task_config: &TaskConfig, now: i64) -> Vec<Self> {
        task_config
            .labourers
            .iter()
            .map(|(id, cfg)| Self::register(id, cfg, task_config, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::TaskConfig as Tc;

    fn timing(doc: serde_json::Value) -> Result<(), String> {
        let cfg = Tc::from_user(&doc).map_err(|e| e.to_string())?;
        validate_timing(&cfg).map_err(|e| e.to_string())
    }

    #[test]
    fn a_delta_that_lets_a_running_task_look_queued_is_refused_naming_the_key() {
        let err = timing(
            serde_json::json!({"greenfield_invocation_delta": 2, "labourers": {"w": {"max_duration": 900}}}),
        )
        .unwrap_err();
        assert!(
            err.contains("greenfield_invocation_delta") && err.contains("`w`"),
            "{err}"
        );
        // Exactly longest run + cooldown is still too short; one more second is enough.
        let err = timing(serde_json::json!({"greenfield_invocation_delta": 1200, "labourers": {"w": {}}}))
            .unwrap_err();
        assert!(err.contains("1200"), "{err}");
        timing(serde_json::json!({"greenfield_invocation_delta": 1201, "labourers": {"w": {}}})).unwrap();
        // A longer configured run or cooldown raises the bar.
        assert!(timing(serde_json::json!({"greenfield_invocation_delta": 5000,
            "labourers": {"w": {"duration": 4000, "cooldown": 1000}}}))
        .is_err());
        // The default (a year) passes.
        timing(serde_json::json!({"labourers": {"w": {}}})).unwrap();
    }

    #[test]
    fn out_of_range_steps_deltas_and_durations_are_refused_naming_the_key() {
        for (doc, key) in [
            (
                serde_json::json!({"greenfield_invocation_delta": i64::MAX}),
                "greenfield_invocation_delta",
            ),
            (
                serde_json::json!({"greenfield_task_step": 0}),
                "greenfield_task_step",
            ),
            (
                serde_json::json!({"greenfield_task_step": i64::MAX}),
                "greenfield_task_step",
            ),
            (
                serde_json::json!({"labourers": {"w": {"duration": -5}}}),
                "labourers.w.duration",
            ),
            (
                serde_json::json!({"labourers": {"w": {"cooldown": -1}}}),
                "labourers.w.cooldown",
            ),
            (
                serde_json::json!({"labourers": {"w": {"max_duration": i64::MAX}}}),
                "labourers.w.max_duration",
            ),
        ] {
            let err = timing(doc.clone()).unwrap_err();
            assert!(err.contains(key), "{doc}: {err}");
        }
    }

    #[test]
    fn registration_does_not_overflow() {
        let cfg = Tc::from_user(&serde_json::json!({"labourers": {"w": {}}})).unwrap();
        let l = Labourer::register("w", &cfg.labourers["w"], &cfg, i64::MAX);
        assert_eq!(l.invoked, i64::MAX);
        assert!(l.expired < l.invoked);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn registration_times_follow_python_sosw() {
        let cfg = TaskConfig::from_user(&json!({"labourers": {"w": {}}})).unwrap();
        let l = Labourer::register("w", &cfg.labourers["w"], &cfg, 1_000_000);
        assert_eq!(l.start, 1_000_000);
        assert_eq!(l.invoked, 1_000_000 + 31_557_600);
        assert_eq!(l.expired, l.invoked - 1200);
        assert_eq!(l.arn, "w");
        assert_eq!(l.max_attempts, 3);
        assert_eq!(l.max_simultaneous_invocations, 1);
    }

    #[test]
    fn duration_and_cooldown_are_overridable_per_labourer() {
        let cfg = TaskConfig::from_user(&json!({"labourers": {"w": {
            "duration": 60, "cooldown": 10, "max_simultaneous_invocations": 0,
            "arn": "arn:aws:lambda:us-west-2:0:function:w"}}}))
        .unwrap();
        let l = Labourer::register("w", &cfg.labourers["w"], &cfg, 0);
        assert_eq!(l.expired, l.invoked - 70);
        assert_eq!(l.max_simultaneous_invocations, 0);
        assert_eq!(l.arn, "arn:aws:lambda:us-west-2:0:function:w");
    }

    #[test]
    fn eco_status_names() {
        assert_eq!(EcoStatus::MODERATE.to_string(), "2 (Moderate)");
        assert!(EcoStatus::BAD < EcoStatus::HIGH);
    }
}
