//! # sosw-worker-assistant
//!
//! The Worker Assistant essential: workers invoke it to mark their task completed or failed,
//! with events exactly as Python sosw's `Worker` sends them:
//!
//! ```json
//! {"action": "mark_task_as_completed", "task_id": "...", "stats": {...}, "result": {...}}
//! ```
//!
//! `stats` and `result` may be objects or JSON strings of objects; they are stored flattened as
//! `stat_<key>` / `result_<key>`. `mark_task_as_completed` sets `completed_at`,
//! `mark_task_as_failed` increments `failed_attempts`. The report's meta event
//! (`marked_as_completed` / `marked_as_failed`) is appended to the task's `sosw_meta_pending` in
//! the same write, so a report costs one request; the Scavenger writes it to `sosw_tasks_meta`
//! when it moves the task ([`sosw_core::meta`]). Unlike the original, a report counts only
//! for the run in flight: it is applied only to a task in the invoked state (greenfield in the
//! invoked range, not yet completed), in one conditional write. A report for a task that is queued
//! again, already completed, archived, retrying or unknown writes nothing to the task, is recorded
//! in `sosw_tasks_meta` as `report_refused`, and is refused with a typed error (Python upserts a
//! phantom row for an unknown task and archives a re-queued task on a late report).
//!
//! Module map (one file):
//! - [`parse`] / [`Request`] / [`Action`]: a worker's report event, checked;
//! - [`WorkerAssistantConfig`]: its config (the TaskManager's, meta rows);
//! - [`WorkerAssistant`]: applies one report ([`WorkerAssistant::handle`]); [`WorkerAssistantError`];
//! - [`from_env`]: the Worker Assistant from the environment (the Lambda and `sosw run`);
//! - the `sosw_lambda::Essential` impl: what the Lambda binary (`src/main.rs`) serves.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sosw_core::config::{MetaHandlerConfig, TaskConfig};
use sosw_core::{MetaHandler, TaskError, TaskManager};
use std::sync::Arc;
use thiserror::Error;
use tracing::{info, warn};

/// What a worker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `mark_task_as_completed`
    MarkCompleted,
    /// `mark_task_as_failed`
    MarkFailed,
}

impl Action {
    /// The action's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::MarkCompleted => "mark_task_as_completed",
            Self::MarkFailed => "mark_task_as_failed",
        }
    }
}

/// Why an event was refused. Nothing is written for a refused event.
#[derive(Debug, Error)]
pub enum WorkerAssistantError {
    /// The event is not a JSON object.
    #[error("the event must be a JSON object, found {0}")]
    NotAnObject(String),
    /// No `action`.
    #[error("missing required parameter `action` (mark_task_as_completed or mark_task_as_failed)")]
    MissingAction,
    /// An unknown `action`.
    #[error("action `{0}` is not supported (mark_task_as_completed or mark_task_as_failed)")]
    UnknownAction(String),
    /// No `task_id`, or not a string.
    #[error("missing required parameter `task_id` (a string) for action `{0}`")]
    MissingTaskId(&'static str),
    /// `stats` or `result` unusable.
    #[error("`{field}` must be an object or a JSON string of an object: {reason}")]
    BadReport {
        /// `stats` or `result`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The task does not exist, or DynamoDB failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// The Lambda `errorType` of a refused event: a malformed event is `RejectedEvent`; a report for a
/// task not in flight, or for an unknown task, `ReportRefused`; a DynamoDB failure `Retryable`.
impl From<WorkerAssistantError> for sosw_lambda::EdgeError {
    fn from(error: WorkerAssistantError) -> Self {
        use sosw_lambda::ErrorKind;
        let kind = match &error {
            WorkerAssistantError::Task(e) => ErrorKind::of_task_error(e),
            _ => ErrorKind::RejectedEvent,
        };
        Self::new(kind, error)
    }
}

/// A parsed worker event.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The action.
    pub action: Action,
    /// The task.
    pub task_id: String,
    /// Stats to store as `stat_<key>`.
    pub stats: Option<Map<String, Value>>,
    /// Results to store as `result_<key>`.
    pub result: Option<Map<String, Value>>,
}

fn report(
    event: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Map<String, Value>>, WorkerAssistantError> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(other) => Err(WorkerAssistantError::BadReport {
                field,
                reason: format!("the JSON string holds {other}"),
            }),
            Err(e) => Err(WorkerAssistantError::BadReport {
                field,
                reason: format!("invalid JSON: {e}"),
            }),
        },
        Some(other) => Err(WorkerAssistantError::BadReport {
            field,
            reason: format!("found {other}"),
        }),
    }
}

/// Parse and validate a worker event.
pub fn parse(event: &Value) -> Result<Request, WorkerAssistantError> {
    let Value::Object(event) = event else {
        return Err(WorkerAssistantError::NotAnObject(event.to_string()));
    };
    let action = match event.get("action") {
        Some(Value::String(a)) if a == "mark_task_as_completed" => Action::MarkCompleted,
        Some(Value::String(a)) if a == "mark_task_as_failed" => Action::MarkFailed,
        Some(Value::String(a)) => return Err(WorkerAssistantError::UnknownAction(a.clone())),
        Some(other) => return Err(WorkerAssistantError::UnknownAction(other.to_string())),
        None => return Err(WorkerAssistantError::MissingAction),
    };
    let task_id = match event.get("task_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(WorkerAssistantError::MissingTaskId(action.name())),
    };
    Ok(Request {
        action,
        task_id,
        stats: report(event, "stats")?,
        result: report(event, "result")?,
    })
}

/// The Worker Assistant's config document (`sosw_worker_assistant_config`).
///
/// The tasks table is `task_config.dynamo_db_config` (so the prefixed tables of
/// `sosw_essential_config` reach it, like every other essential), with a top-level
/// `dynamo_db_config` (where Python's Worker Assistant reads it) merged over it.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerAssistantConfig {
    /// The tasks table (`table_name`, `field_names`, ...), as in Python's Worker Assistant.
    #[serde(default)]
    pub dynamo_db_config: Value,
    /// The TaskManager's config, as every essential reads it.
    #[serde(default)]
    pub task_config: Value,
    /// Meta rows.
    #[serde(default)]
    pub meta_handler_config: MetaHandlerConfig,
}

impl WorkerAssistantConfig {
    /// The TaskConfig for the tasks table.
    pub fn task_config(&self) -> Result<TaskConfig, sosw_core::ConfigError> {
        let mut task = if self.task_config.is_object() {
            self.task_config.clone()
        } else {
            json!({})
        };
        if self.dynamo_db_config.is_object() {
            sosw_core::config::merge(
                &mut task,
                &json!({ "dynamo_db_config": self.dynamo_db_config.clone() }),
            );
        }
        TaskConfig::from_user(&task)
    }
}

/// A report applied ([`WorkerAssistant::handle_report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The invocation's answer: `{"task_id", "action"}`.
    pub response: Value,
    /// The reported task's labourer.
    pub labourer_id: Option<String>,
}

/// The Worker Assistant.
#[derive(Debug)]
pub struct WorkerAssistant {
    tasks: TaskManager,
    meta: Arc<MetaHandler>,
}

impl WorkerAssistant {
    /// Over a TaskManager and a MetaHandler.
    pub fn new(tasks: TaskManager, meta: Arc<MetaHandler>) -> Self {
        Self { tasks, meta }
    }

    /// Handle one worker event. A report is applied only to a task in the invoked state (the run
    /// in flight); a report for a task that is queued, already completed, archived, retrying or
    /// unknown writes nothing to the task, is recorded in the task's meta history
    /// (`report_refused`) and returned as [`TaskError::ReportRefused`].
    pub async fn handle(&self, event: &Value) -> Result<Value, WorkerAssistantError> {
        self.handle_report(event).await.map(|r| r.response)
    }

    /// [`Self::handle`], also telling the reported task's labourer (from the report's own write;
    /// `None` from a store that cannot tell) for the per-labourer metrics.
    pub async fn handle_report(&self, event: &Value) -> Result<Reported, WorkerAssistantError> {
        let req = parse(event)?;
        let done = match req.action {
            Action::MarkCompleted => "marked_as_completed",
            Action::MarkFailed => "marked_as_failed",
        };
        // The report's meta event rides on the task's own write, pending until the Scavenger
        // moves the task (sosw_core::meta): a report costs one request. Only logged when meta
        // rows are off.
        let event = self
            .meta
            .writes_rows()
            .then(|| self.meta.event(&req.task_id, done, &[]));
        let pending = event.is_some();
        let (stats, res) = (req.stats.as_ref(), req.result.as_ref());
        let result = match req.action {
            Action::MarkCompleted => {
                self.tasks
                    .mark_completed_with_event(&req.task_id, stats, res, event)
                    .await
            }
            Action::MarkFailed => {
                self.tasks
                    .mark_failed_with_event(&req.task_id, stats, res, event)
                    .await
            }
        };
        let labourer_id = match result {
            Ok(labourer) if pending => labourer,
            Ok(labourer) => {
                self.meta.post(&req.task_id, done, &[]);
                labourer
            }
            Err(TaskError::ReportRefused {
                task_id,
                action,
                state,
                table,
            }) => {
                warn!(task_id, action, %state, "worker report refused: the task is not invoked");
                self.meta.post(
                    &task_id,
                    "report_refused",
                    &[
                        ("refused_action", json!(action)),
                        ("task_state", json!(state.to_string())),
                    ],
                );
                self.meta.flush().await;
                return Err(WorkerAssistantError::Task(TaskError::ReportRefused {
                    task_id,
                    action,
                    state,
                    table,
                }));
            }
            Err(e) => return Err(e.into()),
        };
        if !pending {
            self.meta.flush().await;
        }
        info!(task_id = %req.task_id, action = req.action.name(), labourer_id = labourer_id.as_deref().unwrap_or(""), "worker report stored");
        Ok(Reported {
            response: json!({"task_id": req.task_id, "action": req.action.name()}),
            labourer_id,
        })
    }
}

/// Everything a Worker Assistant needs, from the environment.
pub async fn from_env(
    sdk: &aws_config::SdkConfig,
    function_name: &str,
    clock: Arc<dyn sosw_core::Clock>,
) -> Result<WorkerAssistant, Box<dyn std::error::Error + Send + Sync>> {
    // DynamoDB is the only client a report needs (config, task, meta).
    let dynamodb = sosw_core::aws::dynamodb_client(sdk);
    let config: WorkerAssistantConfig =
        sosw_core::config_source::ConfigSource::from_env_sharing(sdk, &dynamodb)?
            .load_essential(function_name, json!({}), None)
            .await?;
    let meta = Arc::new(MetaHandler::new(
        dynamodb.clone(),
        &config.meta_handler_config,
        clock.clone(),
    ));
    let tasks = TaskManager::dynamo_only(dynamodb, config.task_config()?, clock);
    Ok(WorkerAssistant::new(tasks, meta))
}

/// The Worker Assistant Lambda: one worker report per invocation.
impl sosw_lambda::Essential for WorkerAssistant {
    const DEFAULT_NAME: &'static str = "sosw_worker_assistant";

    async fn build(
        sdk: &aws_config::SdkConfig,
        function_name: &str,
        clock: Arc<dyn sosw_core::Clock>,
    ) -> Result<Self, sosw_lambda::BoxError> {
        from_env(sdk, function_name, clock).await
    }

    async fn handle_event(
        &self,
        event: Value,
        invocation: &sosw_lambda::Invocation,
    ) -> Result<Value, sosw_lambda::EdgeError> {
        self.meta.set_context(invocation.meta_context());
        let result = self.handle_report(&event).await;
        let now = self.tasks.clock().now_ms();
        match &result {
            Ok(r) => println!(
                "{}",
                emf_line(&invocation.function_name, r.labourer_id.as_deref(), true, now)
            ),
            Err(WorkerAssistantError::Task(TaskError::ReportRefused { .. })) => {
                println!("{}", emf_line(&invocation.function_name, None, false, now))
            }
            Err(_) => {}
        }
        Ok(result?.response)
    }
}

/// The EMF line of one worker report: `reports_accepted` 1 (the report was applied to its running
/// task) or `reports_refused` 1 (its task is unknown or not running: a late or duplicate report).
/// The labourer dimension is the task's labourer, as the report's write returned it; `all` when
/// it is not known (a refused report names only its task, and nothing is read to find it).
pub fn emf_line(function: &str, labourer_id: Option<&str>, accepted: bool, timestamp_ms: i64) -> String {
    sosw_core::emf::line(
        function,
        labourer_id.unwrap_or("all"),
        &[
            ("reports_accepted", f64::from(u8::from(accepted))),
            ("reports_refused", f64::from(u8::from(!accepted))),
        ],
        timestamp_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_alarmable_lambda_error_types() {
        let d = lambda_runtime::Diagnostic::from(sosw_lambda::EdgeError::from(
            WorkerAssistantError::MissingAction,
        ));
        assert_eq!(d.error_type, "RejectedEvent");
        assert!(d.error_message.contains("action"));
        let refused = WorkerAssistantError::Task(TaskError::ReportRefused {
            task_id: "t9".into(),
            action: "mark_task_as_failed",
            state: sosw_core::TaskWhereabouts::Completed,
            table: "sosw_tasks".into(),
        });
        assert_eq!(
            lambda_runtime::Diagnostic::from(sosw_lambda::EdgeError::from(refused)).error_type,
            "ReportRefused"
        );
    }

    #[test]
    fn python_worker_events_parse() {
        let r = parse(&json!({"action": "mark_task_as_completed", "task_id": "t1", "stats": {"a": 1}, "result": "{\"b\": 2}"})).unwrap();
        assert_eq!(r.action, Action::MarkCompleted);
        assert_eq!(r.stats.unwrap()["a"], 1);
        assert_eq!(r.result.unwrap()["b"], 2);
        assert_eq!(
            parse(&json!({"action": "mark_task_as_failed", "task_id": "t"}))
                .unwrap()
                .action,
            Action::MarkFailed
        );
    }

    #[test]
    fn bad_events_name_the_problem() {
        let cases = [
            (json!([1]), "must be a JSON object"),
            (json!({"task_id": "t"}), "missing required parameter `action`"),
            (
                json!({"action": "close", "task_id": "t"}),
                "action `close` is not supported",
            ),
            (
                json!({"action": "mark_task_as_completed"}),
                "missing required parameter `task_id`",
            ),
            (
                json!({"action": "mark_task_as_completed", "task_id": 5}),
                "missing required parameter `task_id`",
            ),
            (
                json!({"action": "mark_task_as_completed", "task_id": "t", "stats": "{no"}),
                "`stats` must be an object",
            ),
            (
                json!({"action": "mark_task_as_completed", "task_id": "t", "result": [1]}),
                "`result` must be an object",
            ),
            (
                json!({"action": "mark_task_as_completed", "task_id": "t", "stats": "[1]"}),
                "`stats` must be an object",
            ),
        ];
        for (event, needle) in cases {
            let err = parse(&event).unwrap_err().to_string();
            assert!(err.contains(needle), "{event}: {err}");
        }
    }

    #[test]
    fn prefixed_tables_of_the_essential_config_reach_the_worker_assistant() {
        use sosw_core::config::{effective_config, from_value, ConfigDocuments};
        let essential = json!({"task_config": {
            "dynamo_db_config": {"table_name": "qa_sosw_tasks", "field_names": {"greenfield": "gf"}},
            "labourers": {"w": {}}
        }});
        let load = |own: Option<Value>| {
            let docs = ConfigDocuments {
                essential: Some(essential.clone()),
                own,
                custom: None,
            };
            let cfg: WorkerAssistantConfig = from_value(
                "sosw_worker_assistant_config",
                effective_config(&json!({}), &docs).unwrap(),
            )
            .unwrap();
            cfg.task_config().unwrap()
        };
        let tc = load(None);
        assert_eq!(tc.dynamo_db_config.table_name, "qa_sosw_tasks");
        assert_eq!(tc.field("greenfield"), "gf");
        // A top-level dynamo_db_config in the Worker Assistant's own document (Python's place) wins.
        let tc = load(Some(json!({"dynamo_db_config": {"table_name": "wa_tasks"}})));
        assert_eq!(tc.dynamo_db_config.table_name, "wa_tasks");
        assert_eq!(tc.field("greenfield"), "gf");
    }
}
