//! Optional history rows in `sosw_tasks_meta`, as Python sosw's `Worker` writes them when its
//! config has a `meta_handler_config`: after a report reached the Worker Assistant, one row with
//! `action` `completed` or `failed`.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::Context;
use sosw_pyjson::float_repr;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The action of a worker's meta row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaAction {
    /// `completed`: the handler succeeded and the Worker Assistant was told.
    Completed,
    /// `failed`: the handler (or the payload) failed and the Worker Assistant was told.
    Failed,
}

impl MetaAction {
    /// The `action` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// A meta row that could not be written. Meta is best effort: this is logged, never returned
/// to Lambda.
#[derive(Debug, Error)]
#[error("task {task_id}: the `{action}` meta row was not written to table {table}")]
pub struct MetaError {
    /// The table.
    pub table: String,
    /// The task.
    pub task_id: String,
    /// The row's action.
    pub action: &'static str,
    /// DynamoDB's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Writes a worker's meta rows to one table (`sosw_tasks_meta`, or a prefixed one).
///
/// Each row, as Python's `MetaHandler.post` writes it: `task_id` (S), `created_at` (N, epoch
/// seconds as a float), `action` (S), and from the Lambda context `author` (the function name),
/// `invocation_id` (the request id) and `log_stream_name` (S). Written with PutItem on condition
/// that no row has the same key, as Python's `DynamoDbClient.create`.
#[derive(Debug, Clone)]
pub struct MetaWriter {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl MetaWriter {
    /// Rows go to `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table rows go to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Write one row for `task_id`.
    pub async fn post(&self, task_id: &str, action: MetaAction, context: &Context) -> Result<(), MetaError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let s = |v: &str| AttributeValue::S(v.to_string());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("task_id", s(task_id))
            .item("created_at", AttributeValue::N(float_repr(now)))
            .item("action", s(action.as_str()))
            .item("author", s(&context.env_config.function_name))
            .item("invocation_id", s(&context.request_id))
            .item("log_stream_name", s(&context.env_config.log_stream))
            .condition_expression("attribute_not_exists(task_id)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| MetaError {
                table: self.table.clone(),
                task_id: task_id.to_string(),
                action: action.as_str(),
                source: Box::new(e),
            })
    }
}
