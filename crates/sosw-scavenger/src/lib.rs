//! # sosw-scavenger
//!
//! The Scavenger essential (every minute), per labourer, as Python sosw's Scavenger:
//! 1. **archive** tasks completed by workers into `sosw_closed_tasks` (`<labourer>_1`);
//! 2. **expired** tasks: with attempts left, to `sosw_retry_tasks` with `desired_launch_time` =
//!    now + `max_duration` × attempts; out of attempts, **dead**: an SNS alert, then archived
//!    (`<labourer>_0`);
//! 3. **retry** up to `retry_tasks_limit` due rows, back at the front of the queue.
//!
//! Every move is one DynamoDB transaction conditioned on the row being unchanged since it was read,
//! so no path deletes a task without writing it elsewhere. Dead-task alerts are published before
//! the tasks are archived: if SNS fails, the tasks stay where they are and the next run tries again.
//!
//! Module map (one file):
//! - [`ScavengerConfig`] / [`SnsConfig`]: `sosw_scavenger_config`, its typed defaults and defaults layer;
//! - [`Scavenger`]: one run over every labourer ([`Scavenger::run`]), with [`RunStats`] /
//!   [`LabourerStats`] and [`emf_lines`];
//! - [`DeadTaskNotifier`] ([`SnsNotifier`], [`RecordingNotifier`]) and [`alert_messages`]: dead-task alerts;
//! - [`from_env`]: the scavenger from the environment (the Lambda and `sosw run`);
//! - the `sosw_lambda::Essential` impl: what the Lambda binary (`src/main.rs`) serves.

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sosw_core::config::{MetaHandlerConfig, TaskConfig};
use sosw_core::error::render_error;
use sosw_core::meta::{pending_events, PENDING_ATTRIBUTE};
use sosw_core::task::manager::{task_id_of, transaction_items_from_env, Malformed, SourceTable};
use sosw_core::{Labourer, MetaHandler, Task, TaskManager};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// `sns_config`: where dead-task alerts go.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SnsConfig {
    /// Topic ARN.
    pub recipient: String,
    /// Message subject.
    pub subject: String,
}

/// The scavenger's config document (`sosw_scavenger_config`). Its defaults are written once, in
/// `Default`; [`ScavengerConfig::defaults`] is the layer made from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScavengerConfig {
    /// The TaskManager's config.
    pub task_config: TaskConfig,
    /// Dead-task alerts.
    pub sns_config: SnsConfig,
    /// Retry rows returned to the queue per labourer and run; 0 (or `null`) means no limit, as
    /// in Python.
    #[serde(deserialize_with = "sosw_core::config::lenient::usize_or_zero")]
    pub retry_tasks_limit: usize,
    /// Meta rows.
    pub meta_handler_config: MetaHandlerConfig,
    /// Moves in flight at once per labourer.
    pub max_in_flight: usize,
}

impl Default for ScavengerConfig {
    /// Python sosw's `Scavenger.DEFAULT_CONFIG` (over the TaskManager's defaults), plus
    /// `max_in_flight` 16.
    fn default() -> Self {
        Self {
            task_config: TaskConfig::default(),
            sns_config: SnsConfig {
                recipient: "arn:aws:sns:us-west-2:000000000000:sosw_info".into(),
                subject: "``sosw`` Info".into(),
            },
            retry_tasks_limit: 20,
            meta_handler_config: MetaHandlerConfig::default(),
            max_in_flight: 16,
        }
    }
}

impl ScavengerConfig {
    /// The keys of [`Self::defaults`]: those of Python's `DEFAULT_CONFIG` (which go over
    /// `sosw_essential_config`), the TaskManager's defaults and `max_in_flight`.
    pub const DEFAULTS_LAYER: &'static [&'static str] =
        &["task_config", "sns_config", "retry_tasks_limit", "max_in_flight"];

    /// Python sosw's `Scavenger.DEFAULT_CONFIG` as a JSON layer, made from `Default`.
    pub fn defaults() -> Value {
        sosw_core::config::defaults_layer(&Self::default(), Self::DEFAULTS_LAYER)
    }
}

/// The limit of retry rows per labourer and run: Python's `if limit:` treats 0 as "no limit".
pub fn retry_limit(configured: usize) -> usize {
    match configured {
        0 => i32::MAX as usize,
        n => n,
    }
}

/// The subject of dead-task alerts, as Python sosw sends them (whatever `sns_config.subject` says).
pub const DEAD_TASK_SUBJECT: &str = "``sosw`` Dead Task";

/// Python sosw's separator between queued SNS messages.
pub const ALERT_SEPARATOR: &str = "\n\n#####\n\n";

/// SNS's limit on a message, in bytes.
pub const SNS_MESSAGE_LIMIT: usize = 256 * 1024;

/// Where dead-task alerts go.
pub trait DeadTaskNotifier: Send + Sync + std::fmt::Debug {
    /// Publish one message.
    fn publish<'a>(&'a self, subject: &'a str, message: String) -> BoxFuture<'a, Result<(), String>>;
}

/// SNS Publish to a topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    /// Client.
    pub client: aws_sdk_sns::Client,
    /// Topic ARN.
    pub topic: String,
}

impl DeadTaskNotifier for SnsNotifier {
    fn publish<'a>(&'a self, subject: &'a str, message: String) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .publish()
                .topic_arn(&self.topic)
                .subject(subject)
                .message(message)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| render_error(&e))
        })
    }
}

/// A notifier that records messages (tests).
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    /// (subject, message) published so far.
    pub messages: Mutex<Vec<(String, String)>>,
    /// Fail every publish.
    pub fail: std::sync::atomic::AtomicBool,
}

impl DeadTaskNotifier for RecordingNotifier {
    fn publish<'a>(&'a self, subject: &'a str, message: String) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("injected failure".into());
            }
            self.messages
                .lock()
                .expect("not poisoned")
                .push((subject.to_string(), message));
            Ok(())
        })
    }
}

/// Split dead-task lines into messages under SNS's size limit.
pub fn alert_messages(task_ids: &[String], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for id in task_ids {
        // Python's text, trailing space included, joined with Python's separator.
        let line = format!("Closing dead task: {id} ");
        let sep = if current.is_empty() { "" } else { ALERT_SEPARATOR };
        if !current.is_empty() && current.len() + sep.len() + line.len() > limit {
            out.push(std::mem::take(&mut current));
        } else {
            current.push_str(sep);
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One labourer's figures of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LabourerStats {
    /// Completed tasks archived.
    pub archived: u64,
    /// Expired tasks moved to the retry table.
    pub scheduled_for_retry: u64,
    /// Retry rows returned to the queue.
    pub returned_to_queue: u64,
    /// Tasks closed as dead (alerted and archived).
    pub dead: u64,
    /// Tasks that changed while being moved (left for the next run).
    pub skipped_changed: u64,
    /// Dead tasks whose alert could not be published (left for the next run).
    pub alert_failed: u64,
    /// Failures on single tasks, or on the labourer.
    pub errors: u64,
    /// Completed or dead tasks that could not be archived this run because of an error (they stay
    /// in the queue for the next run; each is logged with its task id).
    pub archive_failed: u64,
    /// Rows that cannot be processed (malformed, nonsensical attempts), archived as dead with a
    /// `closed_reason` instead of blocking the labourer.
    pub quarantined: u64,
    /// Steps of the run (archive, expire, retry) that failed for the whole labourer (a table
    /// missing or unreadable, the worker's timeout unknown).
    pub labourer_errors: u64,
    /// The first step that failed for the whole labourer, with its error (it names the table or
    /// function); absent when none did (and in the run's `total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LabourerStats {
    /// A step of the run failed for the whole labourer: counted, logged, and the first one kept.
    fn labourer_failed(&mut self, labourer_id: &str, step: &str, error: &dyn std::fmt::Display) {
        warn!(labourer_id, step, error = %error, "scavenger step failed for the labourer");
        self.labourer_errors += 1;
        if self.error.is_none() {
            self.error = Some(format!("{step}: {error}"));
        }
    }
}

/// The figures of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunStats {
    /// Sums over labourers.
    pub total: LabourerStats,
    /// Per labourer.
    pub labourers: BTreeMap<String, LabourerStats>,
}

impl RunStats {
    /// `Some(message)` when the run could process no labourer at all (every labourer had a step
    /// fail as a whole, e.g. a table missing or access denied): the Lambda handler returns it as
    /// an error.
    pub fn failure(&self) -> Option<String> {
        if self.labourers.is_empty() || self.labourers.values().any(|l| l.labourer_errors == 0) {
            return None;
        }
        let reasons: Vec<String> = self
            .labourers
            .iter()
            .map(|(id, l)| format!("{id}: {}", l.error.as_deref().unwrap_or_default()))
            .collect();
        Some(format!(
            "the scavenger could process no labourer: {}",
            reasons.join("; ")
        ))
    }
}

/// The Scavenger.
#[derive(Debug)]
pub struct Scavenger {
    tasks: TaskManager,
    meta: Arc<MetaHandler>,
    notifier: Arc<dyn DeadTaskNotifier>,
    config: ScavengerConfig,
}

impl Scavenger {
    /// A scavenger over its dependencies.
    pub fn new(
        tasks: TaskManager,
        meta: Arc<MetaHandler>,
        notifier: Arc<dyn DeadTaskNotifier>,
        config: ScavengerConfig,
    ) -> Self {
        Self {
            tasks,
            meta,
            notifier,
            config,
        }
    }

    /// One run over every labourer.
    pub async fn run(&self) -> RunStats {
        let labourers = self.tasks.register_labourers();
        let results = futures::future::join_all(labourers.iter().map(|l| self.scavenge(l))).await;
        let mut stats = RunStats::default();
        for (l, s) in labourers.iter().zip(results) {
            let t = &mut stats.total;
            t.archived += s.archived;
            t.scheduled_for_retry += s.scheduled_for_retry;
            t.returned_to_queue += s.returned_to_queue;
            t.dead += s.dead;
            t.skipped_changed += s.skipped_changed;
            t.alert_failed += s.alert_failed;
            t.errors += s.errors;
            t.archive_failed += s.archive_failed;
            t.quarantined += s.quarantined;
            t.labourer_errors += s.labourer_errors;
            info!(
                labourer_id = %l.id, archived = s.archived, scheduled_for_retry = s.scheduled_for_retry,
                returned_to_queue = s.returned_to_queue, dead = s.dead, skipped_changed = s.skipped_changed,
                alert_failed = s.alert_failed, errors = s.errors, archive_failed = s.archive_failed,
                quarantined = s.quarantined, labourer_errors = s.labourer_errors,
                error = s.error.as_deref().unwrap_or(""), "scavenged labourer"
            );
            stats.labourers.insert(l.id.clone(), s);
        }
        self.meta.flush().await;
        stats
    }

    fn count(
        stats: &mut LabourerStats,
        result: Result<bool, sosw_core::TaskError>,
        task: &Task,
        ok: fn(&mut LabourerStats),
    ) {
        match result {
            Ok(true) => ok(stats),
            Ok(false) => stats.skipped_changed += 1,
            Err(e) => {
                warn!(labourer_id = %task.labourer_id, task_id = %task.task_id, error = %e, "task not moved");
                stats.errors += 1;
            }
        }
    }

    /// Quarantine rows that cannot be processed (archived as dead with `closed_reason`).
    async fn quarantine_all(
        &self,
        labourer: &Labourer,
        from: SourceTable,
        rows: Vec<(sosw_core::task::Item, String)>,
        stats: &mut LabourerStats,
    ) {
        for (item, reason) in rows {
            let task_id = task_id_of(&item, self.tasks.config().field("task_id"));
            match self
                .tasks
                .quarantine_recorded(&self.meta, from, &labourer.id, &item, &reason)
                .await
            {
                Ok(true) => stats.quarantined += 1,
                Ok(false) => stats.skipped_changed += 1,
                Err(e) => {
                    warn!(labourer_id = %labourer.id, task_id, error = %e, "row could not be quarantined");
                    stats.errors += 1;
                }
            }
        }
    }

    fn malformed_rows(&self, malformed: Vec<Malformed>) -> Vec<(sosw_core::task::Item, String)> {
        malformed
            .into_iter()
            .map(|m| {
                let reason = m.error.to_string();
                (m.item, reason)
            })
            .collect()
    }

    async fn scavenge(&self, labourer: &Labourer) -> LabourerStats {
        let mut stats = LabourerStats::default();
        let n = self.config.max_in_flight.max(1);

        // 1. Archive completed tasks.
        match self.tasks.completed_tasks_listing(labourer).await {
            Ok(listing) => {
                let bad = self.malformed_rows(listing.malformed);
                self.quarantine_all(labourer, SourceTable::Tasks, bad, &mut stats)
                    .await;
                let done = self.write_pending_meta(listing.tasks).await;
                let results = self.archive_all(&done, n).await;
                for (t, r) in done.iter().zip(results) {
                    let archived = matches!(r, Ok(true));
                    if r.is_err() {
                        stats.archive_failed += 1;
                    }
                    Self::count(&mut stats, r, t, |s| s.archived += 1);
                    if archived {
                        self.meta
                            .post(&t.task_id.0, "archived", &[("labourer_id", json!(labourer.id))]);
                    }
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.labourer_failed(&labourer.id, "completed tasks unreadable", &e);
            }
        }

        // 2. Expired tasks: retry later, or close as dead.
        match self.tasks.expired_tasks_listing(labourer).await {
            Ok(listing) => {
                let bad = self.malformed_rows(listing.malformed);
                self.quarantine_all(labourer, SourceTable::Tasks, bad, &mut stats)
                    .await;
                let (retry, dead): (Vec<Task>, Vec<Task>) = listing
                    .tasks
                    .into_iter()
                    .partition(|t| t.attempts < i64::from(labourer.max_attempts));
                if !retry.is_empty() {
                    match self.tasks.max_duration(labourer).await {
                        Ok(max_duration) => {
                            let mut movable = Vec::new();
                            let mut nonsense = Vec::new();
                            let retry = self.write_pending_meta(retry).await;
                            for t in &retry {
                                match max_duration.checked_mul(t.attempts) {
                                    Some(delay) => movable.push((t, delay)),
                                    None => nonsense.push((
                                        t.item.clone(),
                                        format!(
                                            "retry delay max_duration {max_duration} × attempts {} overflows",
                                            t.attempts
                                        ),
                                    )),
                                }
                            }
                            self.quarantine_all(labourer, SourceTable::Tasks, nonsense, &mut stats)
                                .await;
                            let results: Vec<_> = stream::iter(movable)
                                .map(
                                    |(t, delay)| async move { (t, self.tasks.move_to_retry(t, delay).await) },
                                )
                                .buffered(n)
                                .collect()
                                .await;
                            for (t, r) in results {
                                let moved = matches!(r, Ok(true));
                                Self::count(&mut stats, r, t, |s| s.scheduled_for_retry += 1);
                                if moved {
                                    self.meta.post(
                                        &t.task_id.0,
                                        "scheduled_for_retry",
                                        &[("labourer_id", json!(labourer.id))],
                                    );
                                }
                            }
                        }
                        Err(e) => {
                            warn!(labourer_id = %labourer.id, tasks = retry.len(), "expired tasks left for the next run");
                            stats.errors += retry.len() as u64;
                            stats.labourer_failed(&labourer.id, "max_duration unknown", &e);
                        }
                    }
                }
                if !dead.is_empty() {
                    self.close_dead(labourer, dead, &mut stats).await;
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.labourer_failed(&labourer.id, "expired tasks unreadable", &e);
            }
        }

        // 3. Due retries back to the front of the queue.
        match self
            .tasks
            .tasks_due_for_retry_listing(labourer, retry_limit(self.config.retry_tasks_limit))
            .await
        {
            Ok(listing) => {
                let bad = self.malformed_rows(listing.malformed);
                self.quarantine_all(labourer, SourceTable::Retry, bad, &mut stats)
                    .await;
                let due = listing.tasks;
                if !due.is_empty() {
                    match self.tasks.oldest_greenfield(&labourer.id).await {
                        Ok(oldest) => {
                            let results: Vec<_> = stream::iter(due.iter().enumerate())
                                .map(|(i, t)| async move {
                                    let greenfield = i64::try_from(i)
                                        .ok()
                                        .and_then(|i| oldest.checked_sub(1)?.checked_sub(i));
                                    let r = match greenfield {
                                        Some(g) => self.tasks.return_to_queue(t, g).await,
                                        None => Err(sosw_core::TaskError::Malformed {
                                            task_id: t.task_id.0.clone(),
                                            reason: format!("queue position {oldest} - 1 - {i} overflows"),
                                        }),
                                    };
                                    (t, r)
                                })
                                .buffered(n)
                                .collect()
                                .await;
                            for (t, r) in results {
                                let moved = matches!(r, Ok(true));
                                Self::count(&mut stats, r, t, |s| s.returned_to_queue += 1);
                                if moved {
                                    self.meta.post(
                                        &t.task_id.0,
                                        "ready_for_retry",
                                        &[("labourer_id", json!(labourer.id))],
                                    );
                                }
                            }
                        }
                        Err(e) => {
                            stats.errors += 1;
                            stats.labourer_failed(
                                &labourer.id,
                                "queue unreadable; retries left for the next run",
                                &e,
                            );
                        }
                    }
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.labourer_failed(&labourer.id, "retry table unreadable", &e);
            }
        }
        stats
    }

    /// Archive tasks in transactions of several tasks each, a few transactions in flight.
    async fn archive_all(&self, tasks: &[Task], in_flight: usize) -> Vec<Result<bool, sosw_core::TaskError>> {
        let batches: Vec<Vec<Result<bool, sosw_core::TaskError>>> =
            stream::iter(tasks.chunks(self.tasks.transaction_tasks()))
                .map(|chunk| self.tasks.archive_many(chunk))
                .buffered(in_flight)
                .collect()
                .await;
        batches.into_iter().flatten().collect()
    }

    /// Write the pending meta events of tasks about to move (a worker report's events, carried
    /// on the task row: [`sosw_core::meta`]) to the meta table, in batches across tasks, and
    /// return the tasks to move: a task whose events were all written moves without them, the
    /// others carry them on to the row they move to (nothing is lost; `sosw task` shows them).
    async fn write_pending_meta(&self, tasks: Vec<Task>) -> Vec<Task> {
        let events: Vec<(String, Vec<sosw_core::task::Item>)> = tasks
            .iter()
            .filter_map(|t| Some((t.task_id.0.clone(), pending_events(&t.item)?)))
            .filter(|(_, events)| !events.is_empty())
            .collect();
        if events.is_empty() {
            return tasks;
        }
        let written = self.meta.write_pending(events).await;
        tasks
            .into_iter()
            .map(|mut t| {
                if written.contains(&t.task_id.0) {
                    t.item.remove(PENDING_ATTRIBUTE);
                }
                t
            })
            .collect()
    }

    async fn close_dead(&self, labourer: &Labourer, dead: Vec<Task>, stats: &mut LabourerStats) {
        let ids: Vec<String> = dead.iter().map(|t| t.task_id.0.clone()).collect();
        for message in alert_messages(&ids, SNS_MESSAGE_LIMIT - 1024) {
            if let Err(e) = self.notifier.publish(DEAD_TASK_SUBJECT, message).await {
                warn!(labourer_id = %labourer.id, task_ids = ?ids, error = %e, "dead-task alert not published; tasks left for the next run");
                stats.alert_failed += dead.len() as u64;
                return;
            }
        }
        let n = self.config.max_in_flight.max(1);
        let dead = self.write_pending_meta(dead).await;
        let results = self.archive_all(&dead, n).await;
        for (t, r) in dead.iter().zip(results) {
            let archived = matches!(r, Ok(true));
            if r.is_err() {
                stats.archive_failed += 1;
            }
            Self::count(stats, r, t, |s| s.dead += 1);
            if archived {
                info!(labourer_id = %labourer.id, task_id = %t.task_id, attempts = t.attempts, "closed dead task");
                self.meta.post(
                    &t.task_id.0,
                    "archived_dead",
                    &[("labourer_id", json!(labourer.id))],
                );
            }
        }
    }
}

/// Everything a scavenger needs, from the environment (the Lambda and `sosw run scavenger`).
pub async fn from_env(
    sdk: &aws_config::SdkConfig,
    function_name: &str,
    custom: Option<Value>,
    clock: Arc<dyn sosw_core::Clock>,
) -> Result<Scavenger, Box<dyn std::error::Error + Send + Sync>> {
    // The clients it uses only: DynamoDB, Lambda (a worker's timeout), SNS (dead-task alerts).
    let dynamodb = sosw_core::aws::dynamodb_client(sdk);
    let config: ScavengerConfig = sosw_core::config_source::ConfigSource::from_env_sharing(sdk, &dynamodb)?
        .load_essential(function_name, ScavengerConfig::defaults(), custom)
        .await?;
    config.task_config.validate()?;
    let meta = Arc::new(MetaHandler::new(
        dynamodb.clone(),
        &config.meta_handler_config,
        clock.clone(),
    ));
    let tasks = TaskManager::new(
        dynamodb,
        sosw_core::aws::lambda_client(sdk),
        config.task_config.clone(),
        clock,
    )
    .with_max_transaction_items(transaction_items_from_env());
    let notifier = Arc::new(SnsNotifier {
        client: sosw_core::aws::sns_client(sdk),
        topic: config.sns_config.recipient.clone(),
    });
    Ok(Scavenger::new(tasks, meta, notifier, config))
}

/// The Scavenger Lambda (EventBridge, every minute): one run per invocation, EMF lines per
/// labourer; a run that could process no labourer is a `NoLabourerProcessed` error, so Lambda's
/// Errors metric and alarms see it.
impl sosw_lambda::Essential for Scavenger {
    const DEFAULT_NAME: &'static str = "sosw_scavenger";

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
                    ("archived", s.archived as f64),
                    ("retried", s.scheduled_for_retry as f64),
                    ("returned_to_queue", s.returned_to_queue as f64),
                    ("dead", s.dead as f64),
                    ("errors", s.errors as f64),
                    ("skipped_changed", s.skipped_changed as f64),
                    ("alert_failed", s.alert_failed as f64),
                    ("archive_failed", s.archive_failed as f64),
                    ("quarantined", s.quarantined as f64),
                    ("labourer_errors", s.labourer_errors as f64),
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
    fn the_defaults_layer_and_serde_defaults_assemble_to_the_typed_defaults() {
        use sosw_core::config::{effective_config, from_value, ConfigDocuments};
        let layer = ScavengerConfig::defaults();
        let keys: Vec<&str> = layer.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ScavengerConfig::DEFAULTS_LAYER);
        let doc = effective_config(&layer, &ConfigDocuments::default()).unwrap();
        let assembled: ScavengerConfig = from_value("sosw_scavenger_config", doc).unwrap();
        assert_eq!(
            serde_json::to_value(&assembled).unwrap(),
            serde_json::to_value(ScavengerConfig::default()).unwrap()
        );
        // A document without the layer's keys takes them from the same typed defaults.
        let bare: ScavengerConfig = from_value("sosw_scavenger_config", serde_json::json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::to_value(ScavengerConfig::default()).unwrap()
        );
        assert_eq!(assembled.retry_tasks_limit, 20);
        assert_eq!(assembled.sns_config.subject, "``sosw`` Info");
    }

    #[test]
    fn emf_lines_parse_and_carry_the_runs_figures() {
        let mut stats = RunStats::default();
        stats.labourers.insert(
            "w".into(),
            LabourerStats {
                archived: 7,
                scheduled_for_retry: 2,
                returned_to_queue: 1,
                dead: 3,
                ..Default::default()
            },
        );
        let lines = emf_lines("sosw_scavenger", &stats, 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (
                v["archived"].as_f64(),
                v["retried"].as_f64(),
                v["returned_to_queue"].as_f64(),
                v["dead"].as_f64()
            ),
            (Some(7.0), Some(2.0), Some(1.0), Some(3.0))
        );
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "sosw");
    }

    #[test]
    fn alerts_are_split_under_the_sns_limit() {
        let ids: Vec<String> = (0..1000).map(|i| format!("{i:032}")).collect();
        let messages = alert_messages(&ids, 4096);
        assert!(messages.len() > 1);
        assert!(messages.iter().all(|m| m.len() <= 4096));
        let items: Vec<&str> = messages.iter().flat_map(|m| m.split(ALERT_SEPARATOR)).collect();
        assert_eq!(items.len(), 1000);
        assert_eq!(items[7], format!("Closing dead task: {:032} ", 7));
        assert_eq!(retry_limit(0), i32::MAX as usize);
        assert_eq!(retry_limit(20), 20);
    }
}
