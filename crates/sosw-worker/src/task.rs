//! What a handler receives: the task's payload, typed; sosw's own fields beside it; the Lambda
//! context.

use lambda_runtime::Context;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

/// The fields sosw flattens into a worker's event next to the payload (the tasks table's row
/// mapper: Python sosw's `TaskManager.invoke_task` does `payload.update(task)`). They are taken
/// out before the payload is deserialised, so a payload type never sees them.
pub const SOSW_FIELDS: [&str; 9] = [
    "task_id",
    "labourer_id",
    "created_at",
    "completed_at",
    "greenfield",
    "attempts",
    "closed_at",
    "desired_launch_time",
    "arn",
];

/// sosw's own fields of a task, as the Orchestrator sends them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SoswFields {
    /// The task's id; reports and meta rows are keyed by it.
    pub task_id: String,
    /// The labourer (worker function) the task belongs to.
    #[serde(default)]
    pub labourer_id: Option<String>,
    /// How many times sosw has invoked the task, this run included.
    #[serde(default)]
    pub attempts: Option<u64>,
    /// The task's greenfield when it was invoked (epoch seconds plus the invocation delta).
    #[serde(default)]
    pub greenfield: Option<f64>,
    /// When the task was created (epoch seconds).
    #[serde(default)]
    pub created_at: Option<f64>,
    /// The earliest time it was meant to run (epoch seconds), for delayed tasks.
    #[serde(default)]
    pub desired_launch_time: Option<f64>,
}

/// One invocation of a worker: the payload as `P`, sosw's fields, and the Lambda context
/// (request id, deadline, function name, log stream...).
#[derive(Debug, Clone)]
pub struct Task<P> {
    /// The task's payload (the event without [`SOSW_FIELDS`]), deserialised.
    pub payload: P,
    /// sosw's fields; `None` when the event has no `task_id` (not invoked by sosw: nothing is
    /// reported and the whole event is the payload).
    pub sosw: Option<SoswFields>,
    /// The Lambda context of the invocation.
    pub context: Context,
}

impl<P> Task<P> {
    /// The task id, when sosw invoked this.
    pub fn task_id(&self) -> Option<&str> {
        self.sosw.as_ref().map(|s| s.task_id.as_str())
    }

    /// Time left before Lambda's deadline (zero if it has passed; `None` without a deadline, as
    /// outside Lambda).
    pub fn time_left(&self) -> Option<std::time::Duration> {
        (self.context.deadline > 0).then(|| {
            self.context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        })
    }
}

/// An event that cannot be handed to the handler. The task is marked failed with this message.
#[derive(Debug, Error)]
pub enum EventError {
    /// One of sosw's own fields has the wrong type.
    #[error("task {task_id}: sosw field `{field}` is invalid: {source}")]
    SoswField {
        /// The task.
        task_id: String,
        /// The field.
        field: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The payload does not deserialise into the handler's type.
    #[error("{}the payload does not fit `{type_name}`: {}{source}", task(.task_id), at(.field))]
    Payload {
        /// The task (empty when the event has no `task_id`).
        task_id: String,
        /// The payload type.
        type_name: &'static str,
        /// Where in the payload, as `items[2].sku`; `None` at the top level (the message then
        /// names the field, e.g. "missing field `sku`").
        field: Option<String>,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

fn task(task_id: &str) -> String {
    if task_id.is_empty() {
        String::new()
    } else {
        format!("task {task_id}: ")
    }
}

fn at(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|f| format!("field `{f}`: "))
        .unwrap_or_default()
}

/// The task id of an event, as Python's Worker reads it (`if event.get('task_id')`): a non-empty
/// string.
pub fn task_id_of(event: &Value) -> Option<&str> {
    event
        .get("task_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Split an event into sosw's fields and the typed payload.
pub fn split_event<P: DeserializeOwned>(event: Value, context: Context) -> Result<Task<P>, EventError> {
    let Some(task_id) = task_id_of(&event).map(str::to_string) else {
        let payload = deserialize_payload(event, "")?;
        return Ok(Task {
            payload,
            sosw: None,
            context,
        });
    };
    let Value::Object(mut map) = event else {
        unreachable!("an event with a task_id is an object")
    };
    let mut own = Map::new();
    for field in SOSW_FIELDS {
        if let Some(v) = map.remove(field) {
            own.insert(field.to_string(), v);
        }
    }
    let sosw: SoswFields =
        serde_path_to_error::deserialize(Value::Object(own)).map_err(|e| EventError::SoswField {
            task_id: task_id.clone(),
            field: e.path().to_string(),
            source: e.into_inner(),
        })?;
    let payload = deserialize_payload(Value::Object(map), &task_id)?;
    Ok(Task {
        payload,
        sosw: Some(sosw),
        context,
    })
}

fn deserialize_payload<P: DeserializeOwned>(payload: Value, task_id: &str) -> Result<P, EventError> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        EventError::Payload {
            task_id: task_id.to_string(),
            type_name: std::any::type_name::<P>(),
            field: (path != ".").then_some(path),
            source: e.into_inner(),
        }
    })
}
