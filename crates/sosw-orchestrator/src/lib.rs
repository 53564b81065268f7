//! # sosw-orchestrator
//!
//! The Orchestrator essential (every minute): for each labourer, measure its ecology (health from
//! CloudWatch, tasks running), then claim and invoke as many queued tasks as the limits allow:
//! `floor(max_simultaneous_invocations × invocation_number_coefficient[health]) − running`.
//!
//! Unlike Python sosw, which invokes one task after another, claims and invocations run
//! concurrently (at most `max_in_flight` at once) and labourers are processed independently. A
//! task claimed by a concurrent orchestrator is skipped and counted; an invocation that fails after
//! its claim is logged and counted — the task expires and the scavenger retries it.

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sosw_core::config::{MetaHandlerConfig, TaskConfig};
use sosw_core::ecology::{default_invocation_coefficients, desired_invocations};
use sosw_core::invoker::Invoker;
use sosw_core::{ClaimOutcome, EcologyManager, Labourer, MetaHandler, Task, TaskManager};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::{info, warn};

/// The orchestrator's config document (`sosw_orchestrator_config`).
#[derive(Debug, Clone, Deserialize)]
pub struct OrchestratorConfig {
    /// The TaskManager's config (labourers, tables).
    pub task_config: TaskConfig,
    /// Share of `max_simultaneous_invocations` invoked at each health (0..=4); above 1 invokes
    /// more than the limit (1.5 is 150 %), as in Python.
    #[serde(
        default = "default_invocation_coefficients",
        deserialize_with = "sosw_core::config::lenient::status_map"
    )]
    pub invocation_number_coefficient: BTreeMap<u8, f64>,
    /// Meta rows.
    #[serde(default)]
    pub meta_handler_config: MetaHandlerConfig,
    /// Claims and invocations in flight at once, per run.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_in_flight() -> usize {
    32
}

impl OrchestratorConfig {
    /// Python sosw's `Orchestrator.DEFAULT_CONFIG` as a JSON layer.
    pub fn defaults() -> Value {
        json!({
            "task_config": sosw_core::config::default_task_config(),
            "invocation_number_coefficient": {"0": 0, "1": 0, "2": 0.5, "3": 0.75, "4": 1},
            "max_in_flight": 32
        })
    }

    /// Validate what serde cannot.
    pub fn validate(&self) -> Result<(), sosw_core::ConfigError> {
        self.task_config.validate()?;
        if self.max_in_flight == 0 {
            return Err(sosw_core::ConfigError::Invalid(
                "max_in_flight must be at least 1".into(),
            ));
        }
        // Any number is a coefficient, as in Python: 1.5 invokes 150 % of the limit, a
        // negative one invokes nothing. Statuses other than 0..=4 are never looked up.
        Ok(())
    }
}

/// One labourer's figures of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LabourerStats {
    /// Health 0..=4.
    pub health: u8,
    /// Tasks presumed running before this run.
    pub running: u64,
    /// How many this run wanted to invoke.
    pub desired: u64,
    /// Invoked.
    pub invoked: u64,
    /// Lost to a concurrent orchestrator.
    pub skipped: u64,
    /// Claimed, but the invocation failed (the task will expire and be retried).
    pub invocation_failed: u64,
    /// Tasks with an unusable payload, left unclaimed.
    pub invalid_tasks_skipped: u64,
    /// The labourer could not be processed this run (health or queue unreadable).
    pub error: Option<String>,
}

/// The figures of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunStats {
    /// Invoked in total.
    pub invoked: u64,
    /// Skipped (claimed by someone else) in total.
    pub skipped: u64,
    /// Failed invocations in total.
    pub invocation_failed: u64,
    /// Invalid tasks in total.
    pub invalid_tasks_skipped: u64,
    /// Per labourer.
    pub labourers: BTreeMap<String, LabourerStats>,
}

/// The Orchestrator.
#[derive(Debug)]
pub struct Orchestrator {
    tasks: TaskManager,
    ecology: EcologyManager,
    meta: Arc<MetaHandler>,
    invoker: Arc<dyn Invoker>,
    config: OrchestratorConfig,
}

enum Outcome {
    Invoked,
    Skipped,
    Failed,
    Invalid,
}

impl Orchestrator {
    /// An orchestrator over its dependencies.
    pub fn new(
        tasks: TaskManager,
        ecology: EcologyManager,
        meta: Arc<MetaHandler>,
        invoker: Arc<dyn Invoker>,
        config: OrchestratorConfig,
    ) -> Self {
        Self {
            tasks,
            ecology,
            meta,
            invoker,
            config,
        }
    }

    /// One run over every labourer.
    pub async fn run(&self) -> RunStats {
        self.ecology.reset().await;
        let labourers = self.tasks.register_labourers();
        let per_labourer =
            futures::future::join_all(labourers.iter().map(|l| self.invoke_for_labourer(l))).await;
        let mut stats = RunStats::default();
        for (l, s) in labourers.iter().zip(per_labourer) {
            stats.invoked += s.invoked;
            stats.skipped += s.skipped;
            stats.invocation_failed += s.invocation_failed;
            stats.invalid_tasks_skipped += s.invalid_tasks_skipped;
            info!(
                labourer_id = %l.id, health = s.health, running = s.running, desired = s.desired,
                invoked = s.invoked, skipped = s.skipped, invocation_failed = s.invocation_failed,
                error = s.error.as_deref().unwrap_or(""), "orchestrated labourer"
            );
            stats.labourers.insert(l.id.clone(), s);
        }
        self.meta.flush().await;
        stats
    }

    async fn invoke_for_labourer(&self, labourer: &Labourer) -> LabourerStats {
        let mut stats = LabourerStats::default();
        let health = match self.ecology.labourer_health(labourer).await {
            Ok(h) => h,
            Err(e) => {
                warn!(labourer_id = %labourer.id, error = %e, "health unknown; invoking nothing");
                stats.error = Some(e.to_string());
                return stats;
            }
        };
        stats.health = health.0;
        let running = match self.ecology.running_tasks(labourer, &self.tasks).await {
            Ok(n) => n,
            Err(e) => {
                stats.error = Some(e.to_string());
                return stats;
            }
        };
        stats.running = running;
        stats.desired = desired_invocations(
            labourer.max_simultaneous_invocations,
            &self.config.invocation_number_coefficient,
            health,
            running,
        );
        if stats.desired == 0 {
            return stats;
        }
        let next = match self.tasks.next_tasks(labourer, stats.desired as usize).await {
            Ok(t) => t,
            Err(e) => {
                stats.error = Some(e.to_string());
                return stats;
            }
        };
        let outcomes: Vec<Outcome> = stream::iter(next.iter())
            .map(|task| self.invoke_task(labourer, task))
            .buffered(self.config.max_in_flight)
            .collect()
            .await;
        for o in outcomes {
            match o {
                Outcome::Invoked => stats.invoked += 1,
                Outcome::Skipped => stats.skipped += 1,
                Outcome::Failed => stats.invocation_failed += 1,
                Outcome::Invalid => stats.invalid_tasks_skipped += 1,
            }
        }
        self.ecology
            .add_running_tasks(&labourer.id, stats.invoked + stats.invocation_failed);
        stats
    }

    async fn invoke_task(&self, labourer: &Labourer, task: &Task) -> Outcome {
        let payload = match self.tasks.invocation_payload(task) {
            Ok(p) => p,
            Err(e) => {
                warn!(labourer_id = %labourer.id, task_id = %task.task_id, error = %e, "invalid task left unclaimed");
                return Outcome::Invalid;
            }
        };
        match self.tasks.claim(labourer, task).await {
            Ok(ClaimOutcome::Claimed) => {}
            Ok(ClaimOutcome::AlreadyInvoked) => return Outcome::Skipped,
            Err(e) => {
                warn!(labourer_id = %labourer.id, task_id = %task.task_id, error = %e, "claim failed");
                return Outcome::Failed;
            }
        }
        match self.invoker.invoke_event(&labourer.arn, payload).await {
            Ok(()) => {
                self.meta
                    .post(&task.task_id.0, "invoked", &[("labourer_id", json!(labourer.id))]);
                Outcome::Invoked
            }
            Err(e) => {
                warn!(labourer_id = %labourer.id, task_id = %task.task_id, error = %e,
                      "invocation failed after the claim; the task will expire and be retried");
                Outcome::Failed
            }
        }
    }
}

/// Everything an orchestrator needs, from the environment (the Lambda and `sosw run orchestrator`).
pub async fn from_env(
    sdk: &aws_config::SdkConfig,
    function_name: &str,
    custom: Option<Value>,
) -> Result<(Orchestrator, Arc<MetaHandler>), Box<dyn std::error::Error + Send + Sync>> {
    let clients = sosw_core::aws::Clients::new(sdk);
    let config: OrchestratorConfig = sosw_core::config_source::ConfigSource::from_env(sdk)?
        .load_essential(function_name, OrchestratorConfig::defaults(), custom)
        .await?;
    config.validate()?;
    let clock: Arc<dyn sosw_core::Clock> = Arc::new(sosw_core::SystemClock);
    let meta = Arc::new(MetaHandler::new(
        clients.dynamodb.clone(),
        &config.meta_handler_config,
        clock.clone(),
    ));
    let ecology = EcologyManager::new(
        Arc::new(sosw_core::ecology::CloudWatchMetrics(clients.cloudwatch.clone())),
        config.task_config.ecology_config.clone(),
        clock.clone(),
    );
    let tasks = TaskManager::new(
        clients.dynamodb.clone(),
        clients.lambda.clone(),
        config.task_config.clone(),
        clock,
    );
    let invoker = Arc::new(sosw_core::invoker::LambdaInvoker(clients.lambda.clone()));
    Ok((
        Orchestrator::new(tasks, ecology, meta.clone(), invoker, config),
        meta,
    ))
}

/// EMF lines for a run (one per labourer).
pub fn emf_lines(function: &str, stats: &RunStats, timestamp_ms: i64) -> Vec<String> {
    stats
        .labourers
        .iter()
        .map(|(id, s)| {
            sosw_core::emf::line(
                function,
                id,
                &[
                    ("invoked", s.invoked as f64),
                    ("skipped", s.skipped as f64),
                    ("invocation_failed", s.invocation_failed as f64),
                    ("running", s.running as f64),
                    ("health", f64::from(s.health)),
                ],
                timestamp_ms,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_parse_and_carry_each_labourers_figures() {
        let mut stats = RunStats::default();
        stats.labourers.insert(
            "a".into(),
            LabourerStats {
                health: 3,
                running: 2,
                invoked: 5,
                skipped: 1,
                ..Default::default()
            },
        );
        stats.labourers.insert(
            "b".into(),
            LabourerStats {
                invocation_failed: 4,
                ..Default::default()
            },
        );
        let lines = emf_lines("sosw_orchestrator", &stats, 1_700_000_000_000);
        assert_eq!(lines.len(), 2);
        let a: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(a["labourer_id"], "a");
        assert_eq!(a["function"], "sosw_orchestrator");
        assert_eq!(
            (
                a["invoked"].as_f64(),
                a["skipped"].as_f64(),
                a["running"].as_f64(),
                a["health"].as_f64()
            ),
            (Some(5.0), Some(1.0), Some(2.0), Some(3.0))
        );
        let names: Vec<&str> = a["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["invoked", "skipped", "invocation_failed", "running", "health"]
        );
        let b: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(b["invocation_failed"], 4.0);
    }

    #[test]
    fn coefficients_above_one_load_as_in_python() {
        let mut doc = OrchestratorConfig::defaults();
        sosw_core::config::merge(
            &mut doc,
            &json!({"invocation_number_coefficient": {"4": 1.5, "3": 2.0}}),
        );
        let cfg: OrchestratorConfig = sosw_core::config::from_value("t", doc).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.invocation_number_coefficient[&4], 1.5);
        assert_eq!(
            sosw_core::ecology::desired_invocations(
                10,
                &cfg.invocation_number_coefficient,
                sosw_core::labourer::EcoStatus(4),
                0
            ),
            15
        );
    }
}
