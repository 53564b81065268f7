//! The MetaHandler: optional history rows in `sosw_tasks_meta` (task_id, created_at, action,
//! author, invocation_id, log_stream_name, and extra fields such as labourer_id).
//!
//! Rows are buffered and written in batches by [`MetaHandler::flush`]. Meta is best effort: a
//! missing table or a failed write is logged and never fails an essential.
//!
//! A worker report's event does not cost a request of its own: the Worker Assistant appends it
//! ([`MetaHandler::event`]) to the task's [`PENDING_ATTRIBUTE`] list in the report's own
//! conditional UpdateItem, and the Scavenger writes those events to the meta table
//! ([`MetaHandler::write_pending`]) in its batches just before it moves the task (archive,
//! retry, dead). The moved row drops the list when every event was written and carries it on
//! otherwise, so no event is lost; an event is a row keyed by its own `created_at`, so writing it
//! again after a refused move rewrites the same row. [`full_history`] shows both, in order.

use crate::attr::{guess_attribute, n_float, Item, BATCH_WRITE_LIMIT};
use crate::clock::Clock;
use crate::config::MetaHandlerConfig;
use crate::error::render_error;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// The task attribute (a list of maps, each a meta row as it will be written) holding the meta
/// events of worker reports until the Scavenger writes them to the meta table.
pub const PENDING_ATTRIBUTE: &str = "sosw_meta_pending";

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
        let row = self.event(task_id, action, extra);
        self.buffer.lock().expect("not poisoned").push(row);
    }

    /// `true` when rows go to the meta table (`write_meta_to_ddb`), `false` when only logged.
    pub fn writes_rows(&self) -> bool {
        self.client.is_some()
    }

    /// The row of an event, as [`Self::post`] would queue it (to be carried on the task as a
    /// pending event instead, see the module docs).
    pub fn event(&self, task_id: &str, action: &str, extra: &[(&str, Value)]) -> Item {
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
        row
    }

    /// Write the pending events of tasks about to move (`(task_id, events)`, events as they
    /// are stored in [`PENDING_ATTRIBUTE`]) now, in batches of 25 across tasks. Returns the
    /// tasks whose events were all written: their moved rows may drop the list; the others
    /// must carry it on. With `write_meta_to_ddb` false nothing is written and nothing is
    /// returned (the events stay on the rows).
    pub async fn write_pending(&self, events: Vec<(String, Vec<Item>)>) -> HashSet<String> {
        let Some(client) = &self.client else {
            return HashSet::new();
        };
        let mut done: HashSet<String> = events
            .iter()
            .filter(|(_, rows)| rows.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let ids: Vec<String> = events
            .iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let rows: Vec<Item> = events.into_iter().flat_map(|(_, rows)| rows).collect();
        if rows.is_empty() {
            return done;
        }
        let unwritten = self.write_rows(client, rows).await;
        let failed: HashSet<String> = unwritten
            .iter()
            .filter_map(|row| match row.get("task_id") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            warn!(table = %self.table, tasks = failed.len(), "pending meta events not written; the moved rows keep them");
        }
        done.extend(ids.into_iter().filter(|id| !failed.contains(id)));
        done
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
        let total = rows.len();
        let unwritten = self.write_rows(client, rows).await;
        if !unwritten.is_empty() {
            warn!(table = %self.table, rows = unwritten.len(), "meta rows not written; dropped");
        }
        total - unwritten.len()
    }

    /// Put rows, 25 a request, unprocessed rows retried with sosw's bounded backoff
    /// ([`crate::aws::backoff`]). Returns the rows that were not written.
    async fn write_rows(&self, client: &aws_sdk_dynamodb::Client, rows: Vec<Item>) -> Vec<Item> {
        let rows = unique_keys(rows);
        let mut unwritten = Vec::new();
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
                        pending = out
                            .unprocessed_items
                            .and_then(|mut m| m.remove(&self.table))
                            .unwrap_or_default();
                        match delays.next() {
                            Some(delay) if !pending.is_empty() => tokio::time::sleep(delay).await,
                            _ => break,
                        }
                    }
                    Err(e) => {
                        warn!(table = %self.table, rows = pending.len(), error = %render_error(&e), "meta rows not written");
                        break;
                    }
                }
            }
            unwritten.extend(pending.into_iter().filter_map(|w| w.put_request.map(|p| p.item)));
        }
        unwritten
    }
}

/// The pending meta events a task row carries ([`PENDING_ATTRIBUTE`]), oldest first: empty when
/// it has none, `None` when the attribute is not a list of maps (then it is left on the row).
pub fn pending_events(row: &Item) -> Option<Vec<Item>> {
    match row.get(PENDING_ATTRIBUTE) {
        None => Some(Vec::new()),
        Some(AttributeValue::L(events)) => events
            .iter()
            .map(|e| match e {
                AttributeValue::M(m) => Some(m.clone()),
                _ => None,
            })
            .collect(),
        Some(_) => None,
    }
}

/// A task's whole history as `sosw task` shows it: the rows of the meta table and the events
/// still pending on the task's row (`pending: true`), by `created_at`; a pending event already
/// written (a move refused after its events were written) is shown once.
pub fn full_history(written: Vec<Value>, pending: Option<&Value>) -> Vec<Value> {
    let key = |v: &Value| (v["created_at"].to_string(), v["action"].to_string());
    let seen: HashSet<(String, String)> = written.iter().map(key).collect();
    let mut all: BTreeMap<(i64, usize), Value> = BTreeMap::new();
    let at = |v: &Value| (v["created_at"].as_f64().unwrap_or(0.0) * 1e6) as i64;
    let events = pending.and_then(Value::as_array).cloned().unwrap_or_default();
    let fresh = events
        .into_iter()
        .filter(|e| !seen.contains(&key(e)))
        .map(|mut e| {
            if let Value::Object(m) = &mut e {
                m.insert("pending".into(), Value::Bool(true));
            }
            e
        });
    for (i, row) in written.into_iter().chain(fresh).enumerate() {
        all.insert((at(&row), i), row);
    }
    all.into_values().collect()
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
    fn the_full_history_shows_pending_events_in_order_and_once() {
        use serde_json::json;
        let written = vec![
            json!({"task_id": "a", "created_at": 10.5, "action": "created"}),
            json!({"task_id": "a", "created_at": 20.0, "action": "invoked"}),
            json!({"task_id": "a", "created_at": 30.0, "action": "marked_as_failed"}),
        ];
        let pending = json!([
            {"task_id": "a", "created_at": 30.0, "action": "marked_as_failed"},
            {"task_id": "a", "created_at": 25.25, "action": "marked_as_completed"}
        ]);
        let all = full_history(written, Some(&pending));
        let actions: Vec<_> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
        assert_eq!(
            actions,
            ["created", "invoked", "marked_as_completed", "marked_as_failed"]
        );
        assert_eq!(all[2]["pending"], true);
        assert!(all[3].get("pending").is_none(), "written already: shown once");
        assert_eq!(full_history(vec![], None), Vec::<Value>::new());
    }

    #[test]
    fn pending_events_are_read_only_from_a_list_of_maps() {
        let mut row = Item::new();
        assert_eq!(pending_events(&row), Some(vec![]));
        let event = Item::from([("action".to_string(), AttributeValue::S("x".into()))]);
        row.insert(
            PENDING_ATTRIBUTE.into(),
            AttributeValue::L(vec![AttributeValue::M(event.clone())]),
        );
        assert_eq!(pending_events(&row), Some(vec![event]));
        row.insert(PENDING_ATTRIBUTE.into(), AttributeValue::S("x".into()));
        assert_eq!(pending_events(&row), None, "left on the row, not dropped");
    }

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
