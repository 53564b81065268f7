//! A labourer: a type of worker (one Lambda function), with the times and limits registered for
//! the current run of an essential.
//!
//! Registration times derive from one "now" (`start`):
//! - `invoked` = `start` + `greenfield_invocation_delta`: the greenfield a task invoked now gets;
//! - `expired` = `invoked` − (`duration` + `cooldown`): invoked tasks with a greenfield below this
//!   ran out of time.

use crate::config::{LabourerConfig, TaskConfig, DEFAULT_COOLDOWN, DEFAULT_DURATION};
use serde::Serialize;
use std::fmt;

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
    #[test]
    fn registration_does_not_overflow() {
        let cfg = TaskConfig::from_user(&serde_json::json!({"labourers": {"w": {}}})).unwrap();
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
