//! The MetaHandler: optional history rows in `sosw_tasks_meta` (task_id, created_at, action,
//! author, invocation_id, log_stream_name, and extra fields such as labourer_id).
//!
//! Rows are buffered and written in batches by [`MetaHandler::flush`]. Meta is best effort: a
//! missing table or a failed write is logged and never fails an essential.

use crate::attr::{guess_attribute, n_float, Item, BATCH_WRITE_LIMIT};
use crate::clock::Clock;
use crate::config::MetaHandlerConfig;
use crate::error::render_error;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// The Lambda context fields every row carries.
#[derive(Debug, Clone, Default)]
pub struct MetaContext {
    /// `author`: the function name.
    pub author: String,
    /// `invocation_id`: the Lambda request id.
    pub invocation_id: String,
    /// `log_stream_name`.
    pub log_stream_name: String,
}

impl MetaContext {
    /// From the Lambda environment (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`)
    /// and a request id.
    pub fn from_env(request_id: &str) -> Self {
        Self {
            author: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into()),
            invocation_id: request_id.to_string(),
            log_stream_name: std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default(),
        }
    }
}

/// Writes meta rows; see the module docs.
#[derive(Debug)]
pub struct MetaHandler {
    client: Option<aws_sdk_dynamodb::Client>,
    table: String,
    clock: Arc<dyn Clock>,
    context: Mutex<MetaContext>,
    buffer: Mutex<Vec<Item>>,
}

impl MetaHandler {
    /// A handler writing to the configured table (or only logging when `write_meta_to_ddb` is false).
    pub fn new(client: aws_sdk_dynamodb::Client, config: &MetaHandlerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            client: config.write_meta_to_ddb.then_some(client),
            table: config.dynamo_db_config.table_name.clone(),
            clock,
            context: Mutex::new(MetaContext::default()),
            buffer: Mutex::default(),
        }
    }

    /// A handler that only logs its rows (as with `write_meta_to_ddb: false`), needing no client:
    /// for runs on the in-memory store.
    pub fn log_only(clock: Arc<dyn Clock>) -> Self {
        Self {
            client: None,
            table: MetaHandlerConfig::default().dynamo_db_config.table_name,
            clock,
            context: Mutex::new(MetaContext::default()),
            buffer: Mutex::default(),
        }
    }

    /// Set the context of the current invocation.
    pub fn set_context(&self, context: MetaContext) {
        *self.context.lock().expect("not poisoned") = context;
    }

    /// Queue a row: `action` on `task_id`, with extra fields.
    pub fn post(&self, task_id: &str, action: &str, extra: &[(&str, Value)]) {
        let ctx = self.context.lock().expect("not poisoned").clone();
        let mut row = Item::new();
        row.insert("task_id".into(), AttributeValue::S(task_id.into()));
        row.insert("created_at".into(), n_float(self.clock.now()));
        row.insert("action".into(), AttributeValue::S(action.into()));
        for (k, v) in extra {
            row.insert((*k).to_string(), guess_attribute(v));
        }
        row.insert("author".into(), AttributeValue::S(ctx.author));
        row.insert("invocation_id".into(), AttributeValue::S(ctx.invocation_id));
        row.insert("log_stream_name".into(), AttributeValue::S(ctx.log_stream_name));
        self.buffer.lock().expect("not poisoned").push(row);
    }

    /// Rows waiting to be written.
    pub fn pending(&self) -> usize {
        self.buffer.lock().expect("not poisoned").len()
    }

    /// Write the buffered rows, 25 a request, unprocessed rows retried with sosw's bounded
    /// backoff ([`crate::aws::backoff`]). Returns how many were written; failures are logged.
    pub async fn flush(&self) -> usize {
        let rows = std::mem::take(&mut *self.buffer.lock().expect("not poisoned"));
        if rows.is_empty() {
            return 0;
        }
        let Some(client) = &self.client else {
            for row in &rows {
                info!(meta = ?row, "meta row (not written: write_meta_to_ddb is false)");
            }
            return 0;
        };
        let rows = unique_keys(rows);
        let mut written = 0;
        for chunk in rows.chunks(BATCH_WRITE_LIMIT) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .expect("item set"),
                        )
                        .build()
                })
                .collect();
            let mut delays = crate::aws::backoff();
            loop {
                match client
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .await
                {
                    Ok(out) => {
                        let left = out
                            .unprocessed_items
                            .and_then(|mut m| m.remove(&self.table))
                            .unwrap_or_default();
                        written += pending.len() - left.len();
                        pending = left;
                        match delays.next() {
                            Some(delay) if !pending.is_empty() => tokio::time::sleep(delay).await,
                            _ => break,
                        }
                    }
                    Err(e) => {
                        warn!(table = %self.table, rows = pending.len(), error = %render_error(&e), "meta rows not written");
                        pending.clear();
                        break;
                    }
                }
            }
            if !pending.is_empty() {
                warn!(table = %self.table, rows = pending.len(), "meta rows still unprocessed; dropped");
            }
        }
        written
    }
}

/// BatchWriteItem rejects two rows with the same key; nudge `created_at` by a microsecond on a clash.
fn unique_keys(mut rows: Vec<Item>) -> Vec<Item> {
    let mut seen = HashSet::new();
    for row in &mut rows {
        loop {
            let key = (
                format!("{:?}", row.get("task_id")),
                format!("{:?}", row.get("created_at")),
            );
            if seen.insert(key) {
                break;
            }
            if let Some(AttributeValue::N(t)) = row.get("created_at") {
                let next = t.parse::<f64>().unwrap_or(0.0) + 1e-6;
                row.insert("created_at".into(), n_float(next));
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn clashing_keys_are_made_unique() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(1000.5));
        let h = MetaHandler {
            client: None,
            table: "t".into(),
            clock,
            context: Mutex::default(),
            buffer: Mutex::default(),
        };
        h.post("a", "invoked", &[("labourer_id", Value::from("w"))]);
        h.post("a", "archived", &[]);
        let rows = unique_keys(std::mem::take(&mut *h.buffer.lock().unwrap()));
        assert_ne!(rows[0]["created_at"], rows[1]["created_at"]);
        assert_eq!(rows[0]["labourer_id"], AttributeValue::S("w".into()));
        assert_eq!(rows[0]["action"], AttributeValue::S("invoked".into()));
    }
}
