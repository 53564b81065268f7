//! # sosw-orchestrator
//!
//! The Orchestrator essential (every minute): for each labourer, measure its ecology (health from
//! CloudWatch, tasks running), then claim and invoke as many queued tasks as the limits allow:
//! `floor(max_simultaneous_invocations × invocation_number_coefficient[health]) − running`.
//!
//! Unlike Python sosw, which invokes one task after another, claims and invocations run
//! concurrently (at most `max_in_flight` at once) and labourers are processed independently. A
//! task claimed by a concurrent orchestrator is skipped and counted. A row that cannot be invoked
//! (malformed, payload not a JSON object or over 256 KiB) is quarantined: archived as dead with a
//! `closed_reason`, so it never blocks the queue. An invocation Lambda refused (throttled, 5xx,
//! function missing) gives its claim back — greenfield and attempts as before — and a throttle
//! stops the labourer's run; an invocation with an unknown outcome (no answer) stays claimed, and
//! the task expires and is retried by the scavenger.
//!
//! Module map (one file):
//! - [`OrchestratorConfig`]: `sosw_orchestrator_config`, its typed defaults and defaults layer;
//! - [`Orchestrator`]: one run over every labourer ([`Orchestrator::run`]), with [`RunStats`] /
//!   [`LabourerStats`] and [`emf_lines`];
//! - [`from_env`]: the orchestrator from the environment (the Lambda and `sosw run`);
//! - the `sosw_lambda::Essential` impl: what the Lambda binary (`src/main.rs`) serves.

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sosw_core::config::{MetaHandlerConfig, TaskConfig};
use sosw_core::ecology::{default_invocation_coefficients, desired_invocations};
use sosw_core::invoker::Invoker;
use sosw_core::task::manager::SourceTable;
use sosw_core::task::size::MAX_ASYNC_PAYLOAD_BYTES as ASYNC_PAYLOAD_LIMIT;
use sosw_core::{EcologyManager, InvokeFailure, Labourer, MetaHandler, Task, TaskManager};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::{info, warn};

/// The orchestrator's config document (`sosw_orchestrator_config`). Its defaults are written once,
/// in `Default`; [`OrchestratorConfig::defaults`] is the layer made from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OrchestratorConfig {
    /// The TaskManager's config (labourers, tables).
    pub task_config: TaskConfig,
    /// Share of `max_simultaneous_invocations` invoked at each health (0..=4); above 1 invokes
    /// more than the limit (1.5 is 150 %), as in Python.
    #[serde(deserialize_with = "sosw_core::config::lenient::status_map")]
    pub invocation_number_coefficient: BTreeMap<u8, f64>,
    /// Meta rows.
    pub meta_handler_config: MetaHandlerConfig,
    /// Claims and invocations in flight at once, per run.
    pub max_in_flight: usize,
}

impl Default for OrchestratorConfig {
    /// Python sosw's `Orchestrator.DEFAULT_CONFIG` (over the TaskManager's defaults), plus
    /// `max_in_flight` 32.
    fn default() -> Self {
        Self {
            task_config: TaskConfig::default(),
            invocation_number_coefficient: default_invocation_coefficients(),
            meta_handler_config: MetaHandlerConfig::default(),
            max_in_flight: 32,
        }
    }
}

impl OrchestratorConfig {
    /// The keys of [`Self::defaults`]: those of Python's `DEFAULT_CONFIG` (which go over
    /// `sosw_essential_config`), the TaskManager's defaults and `max_in_flight`.
    pub const DEFAULTS_LAYER: &'static [&'static str] =
        &["task_config", "invocation_number_coefficient", "max_in_flight"];

    /// Python sosw's `Orchestrator.DEFAULT_CONFIG` as a JSON layer, made from `Default`.
    pub fn defaults() -> Value {
        sosw_core::config::defaults_layer(&Self::default(), Self::DEFAULTS_LAYER)
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
    /// Claimed, and the invocation's outcome is unknown (no answer, or the function reported an
    /// error): the task stays claimed, expires and is retried by the scavenger.
    pub invocation_failed: u64,
    /// Refused by Lambda (5xx, function missing, other 4xx): the claim was given back, the task
    /// keeps its place and its attempts.
    pub refused: u64,
    /// Refused by Lambda as throttled: the claim was given back and the labourer's run stopped.
    pub throttled: u64,
    /// Not tried because the labourer's run stopped after a throttle or a missing function.
    pub deferred: u64,
    /// The claim itself failed (DynamoDB error): nothing was invoked, the task is untouched.
    pub claim_errors: u64,
    /// Rows that cannot be invoked (malformed, payload not a JSON object or over the 256 KiB
    /// invocation limit, nonsensical attempts), archived as dead with a `closed_reason`.
    pub quarantined: u64,
    /// Rows that cannot be invoked and could not be quarantined this run (left for the next one).
    pub invalid_tasks_skipped: u64,
    /// Seconds the task at the head of the labourer's queue has waited since it was created
    /// (`created_at`), when the queue is not empty: the signal of a labourer that stopped.
    pub queue_head_age_seconds: Option<u64>,
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
    /// Invocations with an unknown outcome in total.
    pub invocation_failed: u64,
    /// Invocations refused by Lambda and given back, in total.
    pub refused: u64,
    /// Throttled invocations in total.
    pub throttled: u64,
    /// Claim errors in total.
    pub claim_errors: u64,
    /// Quarantined rows in total.
    pub quarantined: u64,
    /// Invalid rows left in place in total.
    pub invalid_tasks_skipped: u64,
    /// Labourers that could not be processed.
    pub labourer_errors: u64,
    /// Per labourer.
    pub labourers: BTreeMap<String, LabourerStats>,
}

impl RunStats {
    /// `Some(message)` when the run could process no labourer at all (every labourer failed, e.g.
    /// the tasks table is missing or access is denied): the Lambda handler returns it as an error.
    pub fn failure(&self) -> Option<String> {
        if self.labourers.is_empty() || self.labourers.values().any(|l| l.error.is_none()) {
            return None;
        }
        let reasons: Vec<String> = self
            .labourers
            .iter()
            .map(|(id, l)| format!("{id}: {}", l.error.as_deref().unwrap_or_default()))
            .collect();
        Some(format!(
            "the orchestrator could process no labourer: {}",
            reasons.join("; ")
        ))
    }
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
    Refused,
    Throttled,
    Deferred,
    ClaimError,
    Quarantined,
    Invalid,
}

/// Listing rounds per labourer and run while rows at the head of the queue have to be quarantined.
/// Each round reads as many rows as were found unusable so far plus the slots still open, so the
/// rounds move up to 2^10 − 1 = 1,023 unusable rows out of the way per run before the labourer's
/// good tasks are invoked (more are moved in the following runs); a round that finds none ends it.
pub const LISTING_ROUNDS: usize = 10;

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
            stats.refused += s.refused;
            stats.throttled += s.throttled;
            stats.claim_errors += s.claim_errors;
            stats.quarantined += s.quarantined;
            stats.invalid_tasks_skipped += s.invalid_tasks_skipped;
            stats.labourer_errors += u64::from(s.error.is_some());
            info!(
                labourer_id = %l.id, health = s.health, running = s.running, desired = s.desired,
                invoked = s.invoked, skipped = s.skipped, invocation_failed = s.invocation_failed,
                refused = s.refused, throttled = s.throttled, deferred = s.deferred,
                claim_errors = s.claim_errors, quarantined = s.quarantined,
                error = s.error.as_deref().unwrap_or(""), "orchestrated labourer"
            );
            stats.labourers.insert(l.id.clone(), s);
        }
        self.meta.flush().await;
        stats
    }

    /// Quarantine one row; counts it.
    async fn quarantine(
        &self,
        labourer: &Labourer,
        item: &sosw_core::task::Item,
        reason: &str,
        stats: &mut LabourerStats,
    ) {
        let task_id = sosw_core::task::manager::task_id_of(item, self.tasks.config().field("task_id"));
        match self
            .tasks
            .quarantine_recorded(&self.meta, SourceTable::Tasks, &labourer.id, item, reason)
            .await
        {
            Ok(true) => stats.quarantined += 1,
            Ok(false) => stats.invalid_tasks_skipped += 1,
            Err(e) => {
                warn!(labourer_id = %labourer.id, task_id, error = %e, "row could not be quarantined");
                stats.invalid_tasks_skipped += 1;
            }
        }
    }

    /// The next `desired` invocable tasks with their payloads; rows that cannot be invoked are
    /// quarantined on the way and the queue is read again, so they never take a slot.
    async fn ready_tasks(
        &self,
        labourer: &Labourer,
        desired: usize,
        stats: &mut LabourerStats,
    ) -> Result<Vec<(Task, String)>, sosw_core::TaskError> {
        let mut ready: Vec<(Task, String)> = Vec::new();
        let mut bad: HashSet<String> = HashSet::new();
        for _ in 0..LISTING_ROUNDS {
            let want = desired.saturating_sub(ready.len());
            if want == 0 {
                break;
            }
            let listing = self
                .tasks
                .next_tasks_listing(labourer, ready.len() + bad.len() + want)
                .await?;
            let mut found_bad = false;
            for m in listing.malformed {
                let id = m.task_id(self.tasks.config());
                if bad.insert(id) {
                    found_bad = true;
                    self.quarantine(labourer, &m.item, &m.error.to_string(), stats)
                        .await;
                }
            }
            for task in listing.tasks {
                if ready.len() >= desired {
                    break;
                }
                if bad.contains(&task.task_id.0) || ready.iter().any(|(t, _)| t.task_id == task.task_id) {
                    continue;
                }
                let reason = match self.tasks.invocation_payload(&task) {
                    Ok(p) if p.len() <= ASYNC_PAYLOAD_LIMIT => {
                        ready.push((task, p));
                        continue;
                    }
                    Ok(p) => format!(
                        "payload of {} bytes is over the asynchronous invocation limit of {ASYNC_PAYLOAD_LIMIT} bytes",
                        p.len()
                    ),
                    Err(e) => e.to_string(),
                };
                found_bad = true;
                bad.insert(task.task_id.0.clone());
                self.quarantine(labourer, &task.item, &reason, stats).await;
            }
            if !found_bad {
                break;
            }
        }
        Ok(ready)
    }

    /// Seconds since `created_at` of the task at the head of the queue (0 for a clock behind it).
    fn queue_head_age(&self, head: Option<&Task>) -> Option<u64> {
        let created_at = self.tasks.config().field("created_at");
        let created = head?.item.get(created_at)?.as_n().ok()?.parse::<f64>().ok()?;
        let age = self.tasks.clock().now() - created;
        Some(if age.is_finite() && age > 0.0 {
            age as u64
        } else {
            0
        })
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
                warn!(labourer_id = %labourer.id, error = %e, "running tasks unknown; invoking nothing");
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
            // Nothing to invoke (health 0, or at the limit): one read of the queue's head, so the
            // age of a queue that does not move is still reported.
            match self.tasks.next_tasks(labourer, 1).await {
                Ok(head) => stats.queue_head_age_seconds = self.queue_head_age(head.first()),
                Err(e) => warn!(labourer_id = %labourer.id, error = %e, "queue head unreadable"),
            }
            return stats;
        }
        let ready = match self
            .ready_tasks(labourer, stats.desired as usize, &mut stats)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                warn!(labourer_id = %labourer.id, error = %e, "queue unreadable; invoking nothing");
                stats.error = Some(e.to_string());
                return stats;
            }
        };
        stats.queue_head_age_seconds = self.queue_head_age(ready.first().map(|(t, _)| t));
        let stop = AtomicBool::new(false);
        let outcomes: Vec<Outcome> = stream::iter(ready)
            .map(|(task, payload)| {
                let stop = &stop;
                async move { self.invoke_task(labourer, task, payload, stop).await }
            })
            .buffered(self.config.max_in_flight)
            .collect()
            .await;
        for o in outcomes {
            match o {
                Outcome::Invoked => stats.invoked += 1,
                Outcome::Skipped => stats.skipped += 1,
                Outcome::Failed => stats.invocation_failed += 1,
                Outcome::Refused => stats.refused += 1,
                Outcome::Throttled => stats.throttled += 1,
                Outcome::Deferred => stats.deferred += 1,
                Outcome::ClaimError => stats.claim_errors += 1,
                Outcome::Quarantined => stats.quarantined += 1,
                Outcome::Invalid => stats.invalid_tasks_skipped += 1,
            }
        }
        self.ecology
            .add_running_tasks(&labourer.id, stats.invoked + stats.invocation_failed);
        stats
    }

    async fn invoke_task(
        &self,
        labourer: &Labourer,
        task: Task,
        payload: String,
        stop: &AtomicBool,
    ) -> Outcome {
        if stop.load(Ordering::SeqCst) {
            return Outcome::Deferred;
        }
        let claim = match self.tasks.claim_for_invocation(labourer, &task).await {
            Ok(Some(c)) => c,
            Ok(None) => return Outcome::Skipped,
            Err(e) => {
                warn!(labourer_id = %labourer.id, task_id = %task.task_id, error = %e, "claim failed; task untouched");
                return Outcome::ClaimError;
            }
        };
        let error = match self.invoker.invoke_event(&labourer.arn, payload).await {
            Ok(()) => {
                self.meta
                    .post(&task.task_id.0, "invoked", &[("labourer_id", json!(labourer.id))]);
                return Outcome::Invoked;
            }
            Err(e) => e,
        };
        if !error.kind.worker_not_started() {
            warn!(labourer_id = %labourer.id, task_id = %task.task_id,
                  error = %sosw_core::error::render_error(&error),
                  "invocation outcome unknown; the task stays claimed, will expire and be retried");
            return Outcome::Failed;
        }
        if matches!(
            error.kind,
            InvokeFailure::Throttled | InvokeFailure::FunctionMissing
        ) {
            stop.store(true, Ordering::SeqCst);
        }
        match self.tasks.release_claim(&task, &claim).await {
            Ok(true) => {}
            Ok(false) => return Outcome::Failed,
            Err(e) => {
                warn!(labourer_id = %labourer.id, task_id = %task.task_id, error = %e,
                      "claim not given back; the task will expire and be retried");
                return Outcome::Failed;
            }
        }
        warn!(labourer_id = %labourer.id, task_id = %task.task_id,
                  error = %sosw_core::error::render_error(&error),
              "Lambda refused the invocation; claim given back (attempts unchanged)");
        match error.kind {
            InvokeFailure::Throttled => Outcome::Throttled,
            InvokeFailure::PayloadTooLarge => {
                // Given back above, so the row is as it was read: quarantine it as any unusable
                // row (archived as dead, `quarantined` in its meta history).
                let reason = format!("Lambda refused the payload as too large: {error}");
                match self
                    .tasks
                    .quarantine_recorded(&self.meta, SourceTable::Tasks, &labourer.id, &task.item, &reason)
                    .await
                {
                    Ok(true) => Outcome::Quarantined,
                    Ok(false) => Outcome::Invalid,
                    Err(e) => {
                        warn!(labourer_id = %labourer.id, task_id = %task.task_id, error = %e,
                              "row could not be quarantined; left in the queue for the next run");
                        Outcome::Invalid
                    }
                }
            }
            _ => Outcome::Refused,
        }
    }

    /// One run, as the Lambda handler and `sosw run` do it: an error when no labourer at all
    /// could be processed (the stats are in the error's message).
    pub async fn run_checked(&self) -> Result<RunStats, RunFailed> {
        let stats = self.run().await;
        match stats.failure() {
            Some(message) => Err(RunFailed {
                message,
                stats: Box::new(stats),
            }),
            None => Ok(stats),
        }
    }
}

/// A run that could process no labourer at all.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunFailed {
    /// What failed, per labourer.
    pub message: String,
    /// The run's figures.
    pub stats: Box<RunStats>,
}

/// Everything an orchestrator needs, from the environment (the Lambda and `sosw run orchestrator`).
pub async fn from_env(
    sdk: &aws_config::SdkConfig,
    function_name: &str,
    custom: Option<Value>,
    clock: Arc<dyn sosw_core::Clock>,
) -> Result<Orchestrator, Box<dyn std::error::Error + Send + Sync>> {
    // The clients it uses only: DynamoDB, Lambda, CloudWatch (health metrics).
    let dynamodb = sosw_core::aws::dynamodb_client(sdk);
    let lambda = sosw_core::aws::lambda_client(sdk);
    let config: OrchestratorConfig =
        sosw_core::config_source::ConfigSource::from_env_sharing(sdk, &dynamodb)?
            .load_essential(function_name, OrchestratorConfig::defaults(), custom)
            .await?;
    config.validate()?;
    let meta = Arc::new(MetaHandler::new(
        dynamodb.clone(),
        &config.meta_handler_config,
        clock.clone(),
    ));
    let ecology = EcologyManager::new(
        Arc::new(sosw_core::ecology::CloudWatchMetrics(
            sosw_core::aws::cloudwatch_client(sdk),
        )),
        config.task_config.ecology_config.clone(),
        clock.clone(),
    );
    let tasks = TaskManager::new(dynamodb, lambda.clone(), config.task_config.clone(), clock);
    let invoker = Arc::new(sosw_core::invoker::LambdaInvoker(lambda));
    Ok(Orchestrator::new(tasks, ecology, meta, invoker, config))
}

/// The Orchestrator Lambda (EventBridge, every minute): one run per invocation, EMF lines per
/// labourer; a run that could process no labourer is a `NoLabourerProcessed` error, so Lambda's
/// Errors metric and alarms see it.
impl sosw_lambda::Essential for Orchestrator {
    const DEFAULT_NAME: &'static str = "sosw_orchestrator";

    async fn build(
        sdk: &aws_config::SdkConfig,
        function_name: &str,
        clock: Arc<dyn sosw_core::Clock>,
    ) -> Result<Self, sosw_lambda::BoxError> {
        from_env(sdk, function_name, None, clock).await
    }

    async fn handle_event(
        &self,
        _event: Value,
        invocation: &sosw_lambda::Invocation,
    ) -> Result<Value, sosw_lambda::EdgeError> {
        self.meta.set_context(invocation.meta_context());
        let stats = self.run().await;
        let now = self.tasks.clock().now_ms();
        sosw_lambda::finish_scheduled_run(
            emf_lines(&invocation.function_name, &stats, now),
            stats.failure(),
            serde_json::to_value(&stats),
        )
    }
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
                    ("refused", s.refused as f64),
                    ("throttled", s.throttled as f64),
                    ("claim_errors", s.claim_errors as f64),
                    ("quarantined", s.quarantined as f64),
                    ("labourer_errors", u64::from(s.error.is_some()) as f64),
                ]
                .into_iter()
                .chain(
                    s.queue_head_age_seconds
                        .map(|a| ("queue_head_age_seconds", a as f64)),
                )
                .collect::<Vec<_>>(),
                timestamp_ms,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_layer_and_serde_defaults_assemble_to_the_typed_defaults() {
        use sosw_core::config::{effective_config, from_value, ConfigDocuments};
        let layer = OrchestratorConfig::defaults();
        let keys: Vec<&str> = layer.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, OrchestratorConfig::DEFAULTS_LAYER);
        let doc = effective_config(&layer, &ConfigDocuments::default()).unwrap();
        let assembled: OrchestratorConfig = from_value("sosw_orchestrator_config", doc).unwrap();
        assert_eq!(
            serde_json::to_value(&assembled).unwrap(),
            serde_json::to_value(OrchestratorConfig::default()).unwrap()
        );
        // A document without the layer's keys takes them from the same typed defaults.
        let bare: OrchestratorConfig = from_value("sosw_orchestrator_config", serde_json::json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::to_value(OrchestratorConfig::default()).unwrap()
        );
        // Python's `invocation_number_coefficient`, from the one source.
        assert_eq!(
            assembled.invocation_number_coefficient,
            sosw_core::ecology::default_invocation_coefficients()
        );
        assert_eq!(
            assembled
                .invocation_number_coefficient
                .values()
                .copied()
                .collect::<Vec<_>>(),
            [0.0, 0.0, 0.5, 0.75, 1.0]
        );
    }

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
            [
                "invoked",
                "skipped",
                "invocation_failed",
                "running",
                "health",
                "refused",
                "throttled",
                "claim_errors",
                "quarantined",
                "labourer_errors"
            ]
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
