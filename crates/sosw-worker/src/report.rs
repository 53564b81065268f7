//! What a handler reports, and how it reaches the Worker Assistant.

use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

/// What a handler reports about its task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Stored as `stat_<key>` on the task.
    pub stats: Map<String, Value>,
    /// Stored as `result_<key>` on the task.
    pub result: Map<String, Value>,
    /// What the Lambda invocation returns.
    pub output: Value,
}

impl Report {
    /// Add a stat.
    pub fn stat(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.stats.insert(key.to_string(), value.into());
        self
    }
    /// Add a result.
    pub fn result(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.result.insert(key.to_string(), value.into());
        self
    }
    /// Set the invocation's output.
    pub fn output(mut self, value: impl Into<Value>) -> Self {
        self.output = value.into();
        self
    }
}

/// Where reports go (the Worker Assistant Lambda, or a recorder in tests).
pub trait Reporter: Send + Sync {
    /// Send one Worker Assistant event.
    fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>>;
}

/// Invokes the Worker Assistant Lambda asynchronously (`InvocationType=Event`), with the payload
/// bytes Python sosw's `Worker` sends (`json.dumps` of the event, see [`assistant_payload`]).
#[derive(Debug, Clone)]
pub struct LambdaReporter {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaReporter {
    /// Report to `function` (a name or ARN).
    pub fn new(client: aws_sdk_lambda::Client, function: &str) -> Self {
        Self {
            client,
            function: function.to_string(),
        }
    }

    /// From the environment: AWS config, and `SOSW_WORKER_ASSISTANT_LAMBDA`.
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::new(aws_sdk_lambda::Client::new(&sdk), &assistant_from_env())
    }

    /// The function reports go to.
    pub fn function(&self) -> &str {
        &self.function
    }
}

/// `SOSW_WORKER_ASSISTANT_LAMBDA` (Python's config key `sosw_worker_assistant_lambda`), default
/// `sosw_worker_assistant`.
pub(crate) fn assistant_from_env() -> String {
    std::env::var("SOSW_WORKER_ASSISTANT_LAMBDA")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sosw_worker_assistant".into())
}

impl Reporter for LambdaReporter {
    fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .invoke()
                .function_name(&self.function)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(assistant_payload(&event)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("invoke {}: {}", self.function, crate::render_error(&e)))
        })
    }
}

/// The Worker Assistant event for a task, as Python sosw's `Worker` builds it: `action`,
/// `task_id`, then `stats` and `result` when not empty.
pub fn assistant_event(
    action: &str,
    task_id: &str,
    stats: &Map<String, Value>,
    result: &Map<String, Value>,
) -> Value {
    let mut event = json!({"action": action, "task_id": task_id});
    if !stats.is_empty() {
        event["stats"] = Value::Object(stats.clone());
    }
    if !result.is_empty() {
        event["result"] = Value::Object(result.clone());
    }
    event
}

/// The bytes of an event as Python's `json.dumps` writes them (`", "`/`": "` separators,
/// `ensure_ascii`, float `repr`).
pub fn assistant_payload(event: &Value) -> String {
    sosw_pyjson::dumps(event)
}
