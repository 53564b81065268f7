//! The TaskManager: every operation on the task tables, with Python sosw's semantics and
//! DynamoDB layout, designed for batches.
//!
//! Differences from the original, all in the direction of fewer requests and no lost data:
//! - creating N tasks reads the newest greenfield **once** and writes with BatchWriteItem
//!   (25 items a request, unprocessed items retried with backoff); the original queries the
//!   whole queue for every task;
//! - moves between tables (archive, retry, back to the queue) are single TransactWriteItems,
//!   conditioned on the row being unchanged since it was read; the original writes then deletes;
//! - the average-duration query reads at most `max_closed_to_analyse_for_duration` rows per status.

use super::model::{attribute_to_json, guess_attribute, n, n_float, Item, Task, TaskId};
use crate::clock::Clock;
use crate::config::TaskConfig;
use crate::error::{render_error, EcologyError, TaskError, TaskWhereabouts};
use crate::labourer::Labourer;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, PutRequest, ReturnValue, Select, TransactWriteItem, WriteRequest,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, instrument, warn};

/// DynamoDB's limit of items per BatchWriteItem (moto does not enforce it; we do).
pub const BATCH_WRITE_LIMIT: usize = 25;
/// Items per TransactWriteItems allowed by DynamoDB (each task moved takes two: put + delete).
pub const DEFAULT_TRANSACTION_ITEMS: usize = 100;
/// The smaller transaction size the test harness runs with, so that the suite exercises the
/// transaction-size setting and multi-transaction archives on small data (moto 5.2 accepts
/// DynamoDB's 100 items per TransactWriteItems; its cap of 25 is on TransactGetItems).
pub const MOTO_TRANSACTION_ITEMS: usize = 25;
/// Environment variable overriding [`DEFAULT_TRANSACTION_ITEMS`] (2..=100), read by the essentials'
/// `from_env` (the local-AWS harness sets it to moto's 25).
pub const TRANSACTION_ITEMS_ENV: &str = "SOSW_MAX_TRANSACTION_ITEMS";
/// Attempts at a TransactWriteItems that conflicts or fails on the server before giving up.
const TRANSACT_ATTEMPTS: u32 = 8;
/// Attempts at writing unprocessed items of a batch before giving up.
const BATCH_WRITE_ATTEMPTS: u32 = 8;

/// A claim we own: what the task held before, so that a refused invocation can give it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The greenfield the claim wrote (`now + greenfield_invocation_delta`).
    pub greenfield: i64,
    /// The greenfield before the claim (the queue position).
    pub previous_greenfield: i64,
    /// `attempts` before the claim; `None` when the row had none.
    pub previous_attempts: Option<i64>,
}

/// Where a row listed for processing came from (to move it out of that table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceTable {
    /// `sosw_tasks`.
    Tasks,
    /// `sosw_retry_tasks`.
    Retry,
}

/// A row that cannot be processed: it is quarantined (archived as dead with a `closed_reason`).
#[derive(Debug)]
pub struct Malformed {
    /// The raw item.
    pub item: Item,
    /// Why it cannot be processed.
    pub error: TaskError,
}

impl Malformed {
    /// The task id, if the row has one.
    pub fn task_id(&self, cfg: &TaskConfig) -> String {
        match self.item.get(cfg.field("task_id")) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => "<unknown>".into(),
        }
    }
}

/// The rows of a listing: tasks that parse, and rows that do not (never in the way of the others).
#[derive(Debug, Default)]
pub struct Listing {
    /// Parsed tasks, in index order.
    pub tasks: Vec<Task>,
    /// Rows that did not parse.
    pub malformed: Vec<Malformed>,
}

impl Listing {
    /// The tasks, or the first row's error if any row is malformed (the strict view).
    pub fn strict(mut self) -> Result<Vec<Task>, TaskError> {
        match self.malformed.drain(..).next() {
            Some(m) => Err(m.error),
            None => Ok(self.tasks),
        }
    }
}

/// The outcome of claiming a task for invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// We own the invocation: greenfield moved to `now + delta`, attempts + 1.
    Claimed,
    /// Someone else (a concurrent orchestrator) claimed it first, or it left the queue.
    AlreadyInvoked,
}

/// Fields of a task to create, like the keyword arguments of Python's `create_task`:
/// `payload` (an object, a JSON string, or any value) plus any other fields, which join the payload.
pub type NewTask = Map<String, Value>;

/// Operations on `sosw_tasks`, `sosw_retry_tasks` and `sosw_closed_tasks`.
#[derive(Debug, Clone)]
pub struct TaskManager {
    dynamo: aws_sdk_dynamodb::Client,
    lambda: aws_sdk_lambda::Client,
    config: Arc<TaskConfig>,
    clock: Arc<dyn Clock>,
    max_durations: Arc<Mutex<HashMap<String, i64>>>,
    transaction_items: usize,
}

/// The transaction size from [`TRANSACTION_ITEMS_ENV`], or [`DEFAULT_TRANSACTION_ITEMS`].
pub fn transaction_items_from_env() -> usize {
    std::env::var(TRANSACTION_ITEMS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(|n| n.clamp(2, DEFAULT_TRANSACTION_ITEMS))
        .unwrap_or(DEFAULT_TRANSACTION_ITEMS)
}

fn dynamo_err<E>(operation: &'static str, table: &str, err: E) -> TaskError
where
    E: std::error::Error + 'static,
{
    TaskError::Dynamo {
        operation,
        table: table.to_string(),
        message: render_error(&err),
    }
}

/// `true` when an SDK error is a failed condition (a lost race, not a fault).
fn is_conditional_check_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(|c| c == "ConditionalCheckFailedException" || c == "TransactionCanceledException")
        .unwrap_or(false)
}

/// How a TransactWriteItems call ended.
enum TxOutcome {
    Done,
    /// A condition of one of its items failed (a row changed): nothing was written.
    ConditionFailed,
}

/// What a transaction's cancellation means: `Some(false)` a failed condition (final),
/// `Some(true)` worth retrying (a conflict, a throttle, or a reason we do not know, such as the
/// internal errors moto reports under concurrent transactions), `None` a final failure.
fn cancellation_kind(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> Option<bool> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match err.as_service_error() {
        // Some(true): a conflict with a concurrent transaction, worth retrying.
        Some(E::TransactionCanceledException(c)) => {
            let codes: Vec<&str> = c
                .cancellation_reasons()
                .iter()
                .filter_map(|r| r.code())
                .filter(|c| *c != "None")
                .collect();
            if codes.contains(&"ConditionalCheckFailed") {
                Some(false)
            } else if codes
                .iter()
                .any(|c| c.contains("ResourceNotFound") || c.contains("Validation"))
            {
                None
            } else {
                Some(true)
            }
        }
        Some(E::TransactionInProgressException(_))
        | Some(E::ProvisionedThroughputExceededException(_))
        | Some(E::ThrottlingException(_))
        | Some(E::RequestLimitExceeded(_))
        | Some(E::InternalServerError(_)) => Some(true),
        _ => None,
    }
}

impl TaskManager {
    /// One TransactWriteItems, retried with backoff while it conflicts with concurrent ones.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        operation: &'static str,
        table: &str,
    ) -> Result<TxOutcome, TaskError> {
        let mut attempt = 0u32;
        loop {
            let result = self
                .dynamo
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(TxOutcome::Done),
                Err(e) => match cancellation_kind(&e) {
                    Some(false) => return Ok(TxOutcome::ConditionFailed),
                    // A server-side failure (HTTP 5xx) is retried like a conflict.
                    None if attempt < TRANSACT_ATTEMPTS
                        && e.raw_response().is_some_and(|r| r.status().is_server_error()) =>
                    {
                        attempt += 1;
                        warn!(operation, table, attempt, error = %render_error(&e), "transaction failed on the server; retrying");
                        tokio::time::sleep(Duration::from_millis(10 * (1 << attempt.min(6)))).await;
                    }
                    Some(true) if attempt < TRANSACT_ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(10 * (1 << attempt.min(6)))).await;
                    }
                    _ => return Err(dynamo_err(operation, table, e)),
                },
            }
        }
    }

    /// A TaskManager over the given clients, config and clock.
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        lambda: aws_sdk_lambda::Client,
        config: TaskConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            dynamo,
            lambda,
            config: Arc::new(config),
            clock,
            max_durations: Arc::default(),
            transaction_items: DEFAULT_TRANSACTION_ITEMS,
        }
    }

    /// Set the largest TransactWriteItems this TaskManager sends (2..=100 items; DynamoDB allows
    /// 100, moto 25). Archiving moves `items / 2` tasks per transaction.
    pub fn with_max_transaction_items(mut self, items: usize) -> Self {
        self.transaction_items = items.clamp(2, DEFAULT_TRANSACTION_ITEMS);
        self
    }

    /// Tasks moved per archive transaction.
    pub fn transaction_tasks(&self) -> usize {
        (self.transaction_items / 2).max(1)
    }

    /// The config.
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The DynamoDB client.
    pub fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamo
    }

    fn f<'a>(&'a self, key: &'a str) -> &'a str {
        self.config.field(key)
    }

    fn tasks_table(&self) -> &str {
        &self.config.dynamo_db_config.table_name
    }

    fn greenfield_index(&self) -> &str {
        &self.config.dynamo_db_config.index_greenfield
    }

    /// Register every configured labourer at the current time.
    pub fn register_labourers(&self) -> Vec<Labourer> {
        Labourer::register_all(&self.config, self.clock.now_secs())
    }

    /// Register one labourer; `None` if it is not configured.
    pub fn register_labourer(&self, id: &str) -> Option<Labourer> {
        self.config
            .labourers
            .get(id)
            .map(|cfg| Labourer::register(id, cfg, &self.config, self.clock.now_secs()))
    }

    // ----- queue positions -------------------------------------------------------------------

    async fn edge_greenfield(&self, labourer_id: &str, newest: bool) -> Result<Option<i64>, TaskError> {
        let table = self.tasks_table();
        let out = self
            .dynamo
            .query()
            .table_name(table)
            .index_name(self.greenfield_index())
            .key_condition_expression("#l = :l AND #g <= :now")
            .expression_attribute_names("#l", self.f("labourer_id"))
            .expression_attribute_names("#g", self.f("greenfield"))
            .expression_attribute_values(":l", AttributeValue::S(labourer_id.into()))
            .expression_attribute_values(":now", n_float(self.clock.now()))
            .scan_index_forward(!newest)
            .limit(1)
            .send()
            .await
            .map_err(|e| dynamo_err("Query", table, e))?;
        match out.items().first() {
            None => Ok(None),
            Some(item) => {
                super::model::number_i64(item, self.f("greenfield")).map_err(|reason| TaskError::Malformed {
                    task_id: "<query>".into(),
                    reason,
                })
            }
        }
    }

    /// Greenfield of the first task in the labourer's queue, or `greenfield_task_step` when empty.
    pub async fn oldest_greenfield(&self, labourer_id: &str) -> Result<i64, TaskError> {
        Ok(self
            .edge_greenfield(labourer_id, false)
            .await?
            .unwrap_or(self.config.greenfield_task_step))
    }

    /// Greenfield of the last task in the labourer's queue, or `greenfield_task_step` when empty.
    pub async fn newest_greenfield(&self, labourer_id: &str) -> Result<i64, TaskError> {
        Ok(self
            .edge_greenfield(labourer_id, true)
            .await?
            .unwrap_or(self.config.greenfield_task_step))
    }

    /// Sum the `Count` of every page of a `Select::Count` query.
    async fn paginated_count(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        table: &str,
    ) -> Result<u64, TaskError> {
        let mut total = 0u64;
        let mut start_key = None;
        loop {
            let out = query
                .clone()
                .select(Select::Count)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| dynamo_err("Query", table, e))?;
            total += out.count() as u64;
            start_key = out.last_evaluated_key;
            if start_key.is_none() {
                return Ok(total);
            }
        }
    }

    /// Number of tasks waiting in the labourer's queue.
    pub async fn queue_length(&self, labourer_id: &str) -> Result<u64, TaskError> {
        self.count(
            labourer_id,
            "#g <= :a",
            &[(":a", n_float(self.clock.now()))],
            None,
        )
        .await
    }

    /// A query on the greenfield index: `labourer_id = :l AND <range>`, with an optional filter
    /// on `completed_at` (`#c`). Shared by the counts and the task listings.
    fn greenfield_query(
        &self,
        labourer_id: &str,
        range: &str,
        values: &[(&str, AttributeValue)],
        filter: Option<&str>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut q = self
            .dynamo
            .query()
            .table_name(self.tasks_table())
            .index_name(self.greenfield_index())
            .key_condition_expression(format!("#l = :l AND {range}"))
            .expression_attribute_names("#l", self.f("labourer_id"))
            .expression_attribute_names("#g", self.f("greenfield"))
            .expression_attribute_values(":l", AttributeValue::S(labourer_id.into()));
        for (k, v) in values {
            q = q.expression_attribute_values(*k, v.clone());
        }
        if let Some(f) = filter {
            q = q
                .filter_expression(f)
                .expression_attribute_names("#c", self.f("completed_at"));
        }
        q
    }

    async fn count(
        &self,
        labourer_id: &str,
        range: &str,
        values: &[(&str, AttributeValue)],
        filter: Option<&str>,
    ) -> Result<u64, TaskError> {
        self.paginated_count(
            self.greenfield_query(labourer_id, range, values, filter),
            self.tasks_table(),
        )
        .await
    }

    // ----- creating tasks --------------------------------------------------------------------

    /// Build the items for new tasks of `labourer_id` without writing them. Greenfields continue
    /// from `newest` in steps of `greenfield_task_step`, exactly as creating them one by one would.
    ///
    /// In strict mode (the default in Python sosw) a caller may not supply the fields sosw
    /// generates (`task_id`, `created_at`, `greenfield`, `attempts`; `labourer_id` only if it
    /// differs from the labourer's id).
    pub fn build_task_items(
        &self,
        labourer_id: &str,
        newest: i64,
        tasks: Vec<NewTask>,
        strict: bool,
    ) -> Result<Vec<Item>, TaskError> {
        let tasks = tasks.into_iter().map(|t| (TaskId::generate(), t)).collect();
        self.build_task_items_with_ids(labourer_id, newest, tasks, strict)
    }

    /// [`Self::build_task_items`] with the task ids chosen by the caller (the scheduler derives
    /// them from its queue file so that a resumed file never writes a row twice).
    pub fn build_task_items_with_ids(
        &self,
        labourer_id: &str,
        newest: i64,
        tasks: Vec<(TaskId, NewTask)>,
        strict: bool,
    ) -> Result<Vec<Item>, TaskError> {
        let step = self.config.greenfield_task_step;
        let now = self.clock.now();
        tasks
            .into_iter()
            .enumerate()
            .map(|(i, (task_id, mut fields))| {
                let greenfield = newest + step * (i as i64 + 1);
                let mut item = Item::new();
                let mut take = |key: &str, generated: AttributeValue| -> Result<(), TaskError> {
                    let name = self.f(key).to_string();
                    let value = match fields.shift_remove(&name) {
                        None | Some(Value::Null) => generated,
                        Some(given) if strict => {
                            let same = key == "labourer_id" && given.as_str() == Some(labourer_id);
                            if !same {
                                return Err(TaskError::AutogeneratedField(name));
                            }
                            generated
                        }
                        Some(given) => {
                            let text = match &given {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            if matches!(generated, AttributeValue::N(_)) {
                                AttributeValue::N(text)
                            } else {
                                AttributeValue::S(text)
                            }
                        }
                    };
                    item.insert(name, value);
                    Ok(())
                };
                take("task_id", AttributeValue::S(task_id.0))?;
                take("labourer_id", AttributeValue::S(labourer_id.to_string()))?;
                take("created_at", n_float(now))?;
                take("greenfield", n(greenfield))?;
                take("attempts", n(0))?;
                let payload = construct_payload(fields, self.f("payload"))?;
                item.insert(self.f("payload").to_string(), AttributeValue::S(payload));
                Ok(item)
            })
            .collect()
    }

    /// Create tasks at the end of the labourer's queue: one query for the newest greenfield, then
    /// batched writes. Returns the written items, in queue order.
    #[instrument(skip(self, tasks), fields(labourer_id = %labourer_id, count = tasks.len()))]
    pub async fn create_tasks(
        &self,
        labourer_id: &str,
        tasks: Vec<NewTask>,
        strict: bool,
    ) -> Result<Vec<Item>, TaskError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let newest = self.newest_greenfield(labourer_id).await?;
        let items = self.build_task_items(labourer_id, newest, tasks, strict)?;
        self.batch_put(self.tasks_table(), items.clone()).await?;
        Ok(items)
    }

    /// [`Self::create_tasks`] with caller-chosen task ids.
    pub async fn create_tasks_with_ids(
        &self,
        labourer_id: &str,
        tasks: Vec<(TaskId, NewTask)>,
        strict: bool,
    ) -> Result<Vec<Item>, TaskError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let newest = self.newest_greenfield(labourer_id).await?;
        let items = self.build_task_items_with_ids(labourer_id, newest, tasks, strict)?;
        self.batch_put(self.tasks_table(), items.clone()).await?;
        Ok(items)
    }

    /// Which of these tasks exist anywhere in sosw's tables (queue, retry, archive), with
    /// BatchGetItem (100 keys a request).
    pub async fn existing_task_ids(
        &self,
        tasks: &[(String, TaskId)],
    ) -> Result<std::collections::HashSet<TaskId>, TaskError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let id_field = self.f("task_id").to_string();
        let labourer_field = self.f("labourer_id").to_string();
        let tables = [
            (self.tasks_table().to_string(), false),
            (self.config.sosw_closed_tasks_table.clone(), false),
            (self.config.sosw_retry_tasks_table.clone(), true),
        ];
        let mut keys: Vec<(String, Item)> = Vec::new();
        for (labourer_id, task_id) in tasks {
            for (table, with_labourer) in &tables {
                let mut key = Item::new();
                key.insert(id_field.clone(), AttributeValue::S(task_id.0.clone()));
                if *with_labourer {
                    key.insert(labourer_field.clone(), AttributeValue::S(labourer_id.clone()));
                }
                keys.push((table.clone(), key));
            }
        }
        let mut found = std::collections::HashSet::new();
        for chunk in keys.chunks(100) {
            let mut request: HashMap<String, KeysAndAttributes> = HashMap::new();
            for (table, key) in chunk {
                let entry = request.remove(table).map(|k| k.keys).unwrap_or_default();
                let mut all = entry;
                all.push(key.clone());
                request.insert(
                    table.clone(),
                    KeysAndAttributes::builder()
                        .set_keys(Some(all))
                        .projection_expression("#t")
                        .expression_attribute_names("#t", &id_field)
                        .build()
                        .expect("keys are set"),
                );
            }
            let mut attempt = 0u32;
            while !request.is_empty() {
                let out = self
                    .dynamo
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| dynamo_err("BatchGetItem", self.tasks_table(), e))?;
                for items in out.responses.unwrap_or_default().into_values() {
                    for item in items {
                        if let Some(AttributeValue::S(id)) = item.get(&id_field) {
                            found.insert(TaskId(id.clone()));
                        }
                    }
                }
                request = out.unprocessed_keys.unwrap_or_default();
                if !request.is_empty() {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * (1 << attempt.min(6)))).await;
                }
            }
        }
        Ok(found)
    }

    /// Create one task (Python's `create_task`).
    pub async fn create_task(
        &self,
        labourer_id: &str,
        task: NewTask,
        strict: bool,
    ) -> Result<Item, TaskError> {
        Ok(self
            .create_tasks(labourer_id, vec![task], strict)
            .await?
            .remove(0))
    }

    /// Write items with BatchWriteItem, at most 25 a request, retrying unprocessed items with
    /// exponential backoff.
    pub async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), TaskError> {
        let mut requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("item is set"),
                    )
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(BATCH_WRITE_LIMIT));
            let mut pending = std::mem::replace(&mut requests, rest);
            let mut attempt = 0;
            while !pending.is_empty() {
                let out = self
                    .dynamo
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(|e| dynamo_err("BatchWriteItem", table, e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt >= BATCH_WRITE_ATTEMPTS {
                        return Err(TaskError::Dynamo {
                            operation: "BatchWriteItem",
                            table: table.to_string(),
                            message: format!(
                                "{} items still unprocessed after {attempt} attempts (throttled)",
                                pending.len()
                            ),
                        });
                    }
                    let backoff = Duration::from_millis(25 * (1 << attempt.min(6)));
                    debug!(
                        table,
                        unprocessed = pending.len(),
                        ?backoff,
                        "retrying unprocessed items"
                    );
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        Ok(())
    }

    // ----- reading ---------------------------------------------------------------------------

    /// The raw row of a task in the queue table (strongly consistent), parsed or not.
    async fn get_queue_row(&self, task_id: &str) -> Result<Option<Item>, TaskError> {
        self.get_raw(self.tasks_table(), task_id).await
    }

    /// Fetch a task by id (strongly consistent). `None` if it is not in the queue table.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>, TaskError> {
        self.get_queue_row(task_id)
            .await?
            .map(|item| Task::from_item(item, &self.config.dynamo_db_config))
            .transpose()
    }

    /// Page through a greenfield-index query, parsing rows; a row that does not parse is kept
    /// aside (never aborts the listing). `limit` counts parsed tasks only.
    async fn query_listing(
        &self,
        labourer_id: &str,
        range: &str,
        values: &[(&str, AttributeValue)],
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Listing, TaskError> {
        let query = self.greenfield_query(labourer_id, range, values, filter);
        self.collect_listing(query, self.tasks_table(), limit).await
    }

    async fn collect_listing(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        table: &str,
        limit: Option<usize>,
    ) -> Result<Listing, TaskError> {
        let mut listing = Listing::default();
        let mut start_key = None;
        loop {
            let mut q = query.clone().set_exclusive_start_key(start_key);
            if let Some(limit) = limit {
                let wanted = limit.saturating_sub(listing.tasks.len()).max(1);
                q = q.limit(wanted.min(i32::MAX as usize) as i32);
            }
            let out = q.send().await.map_err(|e| dynamo_err("Query", table, e))?;
            for item in out.items.unwrap_or_default() {
                match Task::from_item(item.clone(), &self.config.dynamo_db_config) {
                    Ok(t) => listing.tasks.push(t),
                    Err(error) => {
                        warn!(table, task_id = %task_id_of(&item, self.f("task_id")), error = %error, "malformed row");
                        listing.malformed.push(Malformed { item, error })
                    }
                }
            }
            start_key = out.last_evaluated_key;
            if start_key.is_none() || limit.is_some_and(|l| listing.tasks.len() >= l) {
                if let Some(l) = limit {
                    listing.tasks.truncate(l);
                }
                return Ok(listing);
            }
        }
    }

    /// The next `limit` queued tasks of the labourer (greenfield < start), in queue order.
    /// Strict: a malformed row is an error (the orchestrator uses [`Self::next_tasks_listing`]).
    pub async fn next_tasks(&self, labourer: &Labourer, limit: usize) -> Result<Vec<Task>, TaskError> {
        self.next_tasks_listing(labourer, limit).await?.strict()
    }

    /// The next `limit` queued tasks of the labourer, in queue order, and the malformed rows met
    /// on the way (which do not count against `limit`).
    pub async fn next_tasks_listing(&self, labourer: &Labourer, limit: usize) -> Result<Listing, TaskError> {
        if limit == 0 {
            return Ok(Listing::default());
        }
        self.query_listing(
            &labourer.id,
            "#g < :start",
            &[(":start", n(labourer.start))],
            None,
            Some(limit),
        )
        .await
    }

    /// Number of tasks presumed running: invoked, not completed, not expired.
    pub async fn running_count(&self, labourer: &Labourer) -> Result<u64, TaskError> {
        self.count(
            &labourer.id,
            "#g BETWEEN :a AND :b",
            &[(":a", n(labourer.expired)), (":b", n(labourer.invoked))],
            Some("attribute_not_exists(#c)"),
        )
        .await
    }

    /// Number of expired tasks (invoked, not completed, past `expired`).
    pub async fn expired_count(&self, labourer: &Labourer) -> Result<u64, TaskError> {
        self.count(
            &labourer.id,
            "#g BETWEEN :a AND :b",
            &[(":a", n(labourer.start)), (":b", n(labourer.expired))],
            Some("attribute_not_exists(#c)"),
        )
        .await
    }

    /// Number of tasks completed by workers and not yet archived.
    pub async fn completed_count(&self, labourer: &Labourer) -> Result<u64, TaskError> {
        self.count(
            &labourer.id,
            "#g >= :a",
            &[(":a", n_float(self.clock.now()))],
            Some("attribute_exists(#c)"),
        )
        .await
    }

    /// Number of tasks of the labourer waiting in the retry table.
    pub async fn retry_count(&self, labourer_id: &str) -> Result<u64, TaskError> {
        let table = &self.config.sosw_retry_tasks_table;
        let q = self
            .dynamo
            .query()
            .table_name(table)
            .key_condition_expression("#l = :l")
            .expression_attribute_names("#l", self.f("labourer_id"))
            .expression_attribute_values(":l", AttributeValue::S(labourer_id.into()));
        self.paginated_count(q, table).await
    }

    /// Number of closed tasks of the labourer, completed (`_1`) or dead (`_0`).
    pub async fn closed_count(&self, labourer_id: &str, completed: bool) -> Result<u64, TaskError> {
        let table = &self.config.sosw_closed_tasks_table;
        let status = format!("{labourer_id}_{}", if completed { 1 } else { 0 });
        let q = self
            .dynamo
            .query()
            .table_name(table)
            .index_name(&self.config.sosw_closed_tasks_labourer_status_index)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", self.f("labourer_id_task_status"))
            .expression_attribute_values(":s", AttributeValue::S(status));
        self.paginated_count(q, table).await
    }

    /// Dead tasks of a labourer closed at or after `since` (full rows from the archive).
    pub async fn dead_tasks(&self, labourer_id: &str, since: i64) -> Result<Vec<Task>, TaskError> {
        let table = &self.config.sosw_closed_tasks_table;
        let mut keys = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .dynamo
                .query()
                .table_name(table)
                .index_name(&self.config.sosw_closed_tasks_labourer_status_index)
                .key_condition_expression("#s = :s AND #c >= :since")
                .expression_attribute_names("#s", self.f("labourer_id_task_status"))
                .expression_attribute_names("#c", self.f("closed_at"))
                .expression_attribute_values(":s", AttributeValue::S(format!("{labourer_id}_0")))
                .expression_attribute_values(":since", n(since))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| dynamo_err("Query", table, e))?;
            for item in out.items() {
                if let Some(AttributeValue::S(id)) = item.get(self.f("task_id")) {
                    keys.push(id.clone());
                }
            }
            start_key = out.last_evaluated_key;
            if start_key.is_none() {
                break;
            }
        }
        let mut tasks = Vec::with_capacity(keys.len());
        for id in keys {
            match self.get_from(table, &id).await {
                Ok(Some(t)) => tasks.push(t),
                Ok(None) => {}
                // A quarantined row that does not parse: reviving it would only quarantine it again.
                Err(e @ TaskError::Malformed { .. }) => {
                    warn!(task_id = %id, error = %e, "dead row does not parse; left in the archive");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(tasks)
    }

    /// A task by id from another table keyed by `task_id` alone (the archive).
    pub async fn get_from(&self, table: &str, task_id: &str) -> Result<Option<Task>, TaskError> {
        self.get_raw(table, task_id)
            .await?
            .map(|item| Task::from_item(item, &self.config.dynamo_db_config))
            .transpose()
    }

    /// A task in the retry table, by labourer and id.
    pub async fn get_retrying(&self, labourer_id: &str, task_id: &str) -> Result<Option<Task>, TaskError> {
        let table = &self.config.sosw_retry_tasks_table;
        let out = self
            .dynamo
            .get_item()
            .table_name(table)
            .key(self.f("labourer_id"), AttributeValue::S(labourer_id.into()))
            .key(self.f("task_id"), AttributeValue::S(task_id.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem", table, e))?;
        out.item
            .map(|item| Task::from_item(item, &self.config.dynamo_db_config))
            .transpose()
    }

    /// Put a dead task back into the queue at `greenfield` with its attempts reset to 0,
    /// atomically with its removal from the archive. Returns `false` if it was no longer archived.
    pub async fn revive_dead(&self, task: &Task, greenfield: i64) -> Result<bool, TaskError> {
        let mut row = task.item.clone();
        row.remove(self.f("labourer_id_task_status"));
        row.remove(self.f("closed_at"));
        row.insert(self.f("greenfield").to_string(), n(greenfield));
        row.insert(self.f("attempts").to_string(), n(0));
        let put = Put::builder()
            .table_name(self.tasks_table())
            .set_item(Some(row))
            .condition_expression("attribute_not_exists(#t)")
            .expression_attribute_names("#t", self.f("task_id"))
            .build()
            .expect("table and item are set");
        let closed = &self.config.sosw_closed_tasks_table;
        let delete = Delete::builder()
            .table_name(closed)
            .key(self.f("task_id"), AttributeValue::S(task.task_id.0.clone()))
            .condition_expression("attribute_exists(#t)")
            .expression_attribute_names("#t", self.f("task_id"))
            .build()
            .expect("table and key are set");
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        Ok(matches!(
            self.transact(items, "TransactWriteItems(revive_dead)", closed)
                .await?,
            TxOutcome::Done
        ))
    }

    /// Tasks marked completed by workers (invoked, with `completed_at`). Strict.
    pub async fn completed_tasks(&self, labourer: &Labourer) -> Result<Vec<Task>, TaskError> {
        self.completed_tasks_listing(labourer).await?.strict()
    }

    /// Tasks marked completed by workers, and the malformed rows among them.
    pub async fn completed_tasks_listing(&self, labourer: &Labourer) -> Result<Listing, TaskError> {
        self.query_listing(
            &labourer.id,
            "#g >= :now",
            &[(":now", n_float(self.clock.now()))],
            Some("attribute_exists(#c)"),
            None,
        )
        .await
    }

    /// Tasks invoked and expired without being completed (greenfield between start and expired). Strict.
    pub async fn expired_tasks(&self, labourer: &Labourer) -> Result<Vec<Task>, TaskError> {
        self.expired_tasks_listing(labourer).await?.strict()
    }

    /// Expired tasks, and the malformed rows among them.
    pub async fn expired_tasks_listing(&self, labourer: &Labourer) -> Result<Listing, TaskError> {
        self.query_listing(
            &labourer.id,
            "#g BETWEEN :a AND :b",
            &[(":a", n(labourer.start)), (":b", n(labourer.expired))],
            Some("attribute_not_exists(#c)"),
            None,
        )
        .await
    }

    // ----- invoking --------------------------------------------------------------------------

    /// Claim a queued task for invocation with the conditional update of the original:
    /// `greenfield = now + delta, attempts = attempts + 1` if `greenfield < labourer.start`.
    /// A concurrent claimer gets [`ClaimOutcome::AlreadyInvoked`], not an error.
    pub async fn claim(&self, labourer: &Labourer, task: &Task) -> Result<ClaimOutcome, TaskError> {
        Ok(match self.claim_for_invocation(labourer, task).await? {
            Some(_) => ClaimOutcome::Claimed,
            None => ClaimOutcome::AlreadyInvoked,
        })
    }

    /// [`Self::claim`], returning what the claim replaced (`None`: someone else has it), so that
    /// [`Self::release_claim`] can give it back if Lambda refuses the invocation.
    #[instrument(skip(self, labourer, task), fields(labourer_id = %labourer.id, task_id = %task.task_id))]
    pub async fn claim_for_invocation(
        &self,
        labourer: &Labourer,
        task: &Task,
    ) -> Result<Option<Claim>, TaskError> {
        if task.labourer_id != labourer.id {
            return Err(TaskError::WrongLabourer {
                task_id: task.task_id.0.clone(),
                expected: labourer.id.clone(),
                actual: task.labourer_id.clone(),
            });
        }
        let table = self.tasks_table();
        let greenfield = self
            .clock
            .now_secs()
            .checked_add(self.config.greenfield_invocation_delta)
            .ok_or_else(|| TaskError::Malformed {
                task_id: task.task_id.0.clone(),
                reason: format!(
                    "now + greenfield_invocation_delta ({}) overflows",
                    self.config.greenfield_invocation_delta
                ),
            })?;
        let previous_attempts = super::model::number_i64(&task.item, self.f("attempts"))
            .ok()
            .flatten();
        let result = self
            .dynamo
            .update_item()
            .table_name(table)
            .key(self.f("task_id"), AttributeValue::S(task.task_id.0.clone()))
            .update_expression("SET #g = :g, #a = if_not_exists(#a, :zero) + :one")
            .condition_expression("#g < :start")
            .expression_attribute_names("#g", self.f("greenfield"))
            .expression_attribute_names("#a", self.f("attempts"))
            .expression_attribute_values(":g", n(greenfield))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":start", n(labourer.start))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(Claim {
                greenfield,
                previous_greenfield: task.greenfield,
                previous_attempts,
            })),
            Err(e) if is_conditional_check_failed(&e) => {
                debug!("task already invoked by someone else");
                Ok(None)
            }
            Err(e) => Err(dynamo_err("UpdateItem", table, e)),
        }
    }

    /// Give a claim back after Lambda refused the invocation (the worker never started): greenfield
    /// and attempts as before the claim, in one write conditioned on the claim being ours and the
    /// task untouched since (no report arrived). Returns `false` if the task changed meanwhile.
    #[instrument(skip(self, task, claim), fields(task_id = %task.task_id, labourer_id = %task.labourer_id))]
    pub async fn release_claim(&self, task: &Task, claim: &Claim) -> Result<bool, TaskError> {
        let table = self.tasks_table();
        let claimed_attempts = claim
            .previous_attempts
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| TaskError::Malformed {
                task_id: task.task_id.0.clone(),
                reason: "attempts overflow".into(),
            })?;
        let mut q = self
            .dynamo
            .update_item()
            .table_name(table)
            .key(self.f("task_id"), AttributeValue::S(task.task_id.0.clone()))
            .condition_expression("#g = :claimed AND #a = :claimed_attempts AND attribute_not_exists(#c)")
            .expression_attribute_names("#g", self.f("greenfield"))
            .expression_attribute_names("#a", self.f("attempts"))
            .expression_attribute_names("#c", self.f("completed_at"))
            .expression_attribute_values(":claimed", n(claim.greenfield))
            .expression_attribute_values(":claimed_attempts", n(claimed_attempts))
            .expression_attribute_values(":g", n(claim.previous_greenfield));
        q = match claim.previous_attempts {
            Some(a) => q
                .update_expression("SET #g = :g, #a = :a")
                .expression_attribute_values(":a", n(a)),
            None => q.update_expression("SET #g = :g REMOVE #a"),
        };
        match q.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failed(&e) => {
                warn!("claim not given back: the task changed since it was claimed");
                Ok(false)
            }
            Err(e) => Err(dynamo_err("UpdateItem", table, e)),
        }
    }

    /// The event a worker receives for `task`: its payload, flattened with the task's own fields
    /// (those of the row mapper, as the original reads them), as Python's `json.dumps` writes it.
    pub fn invocation_payload(&self, task: &Task) -> Result<String, TaskError> {
        let payload_field = self.f("payload");
        let mut event = match task.item.get(payload_field) {
            None => Map::new(),
            Some(AttributeValue::S(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(TaskError::InvalidPayload(format!(
                        "task {}: `{payload_field}` is not a JSON object: {s}",
                        task.task_id
                    )))
                }
            },
            Some(AttributeValue::M(_)) => match attribute_to_json(&task.item[payload_field]) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            Some(other) => {
                return Err(TaskError::InvalidPayload(format!(
                    "task {}: `{payload_field}` has unsupported type {other:?}",
                    task.task_id
                )))
            }
        };
        for key in self.config.dynamo_db_config.row_mapper.keys() {
            if key == payload_field {
                continue;
            }
            if let Some(av) = task.item.get(key) {
                event.insert(key.clone(), attribute_to_json(av));
            }
        }
        Ok(crate::pyjson::dumps(&event))
    }

    // ----- moving between tables -------------------------------------------------------------

    /// Archive many tasks with as few requests as possible: up to [`Self::transaction_tasks`] tasks
    /// per TransactWriteItems, each task's move conditioned as in [`Self::archive`]. A batch that
    /// is refused (one of its tasks changed) or fails after its retries is retried task by task,
    /// so every task that can move does. Returns, per task in order, whether it was archived.
    pub async fn archive_many(&self, tasks: &[Task]) -> Vec<Result<bool, TaskError>> {
        let mut out = Vec::with_capacity(tasks.len());
        let closed = &self.config.sosw_closed_tasks_table;
        let table = format!("{closed}` (from `{}", self.tasks_table());
        for chunk in tasks.chunks(self.transaction_tasks()) {
            if chunk.len() == 1 {
                out.push(self.archive(&chunk[0]).await);
                continue;
            }
            let mut items = Vec::with_capacity(chunk.len() * 2);
            for task in chunk {
                let (put, delete) = self.archive_items(task);
                items.push(TransactWriteItem::builder().put(put).build());
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
            match self.transact(items, "TransactWriteItems(archive)", &table).await {
                Ok(TxOutcome::Done) => out.extend(chunk.iter().map(|_| Ok(true))),
                Ok(TxOutcome::ConditionFailed) => {
                    for task in chunk {
                        out.push(self.archive(task).await);
                    }
                }
                Err(e) => {
                    warn!(tasks = chunk.len(), error = %e, "archive transaction failed; archiving its tasks one by one");
                    for task in chunk {
                        out.push(self.archive(task).await);
                    }
                }
            }
        }
        out
    }

    fn archive_items(&self, task: &Task) -> (Put, Delete) {
        let mut closed = task.item.clone();
        let status = if task.completed_at.is_some() { 1 } else { 0 };
        closed.insert(
            self.f("labourer_id_task_status").to_string(),
            AttributeValue::S(format!("{}_{status}", task.labourer_id)),
        );
        closed.insert(self.f("closed_at").to_string(), n(self.clock.now_secs()));
        let put = Put::builder()
            .table_name(&self.config.sosw_closed_tasks_table)
            .set_item(Some(closed))
            .build()
            .expect("table and item are set");
        (put, self.unchanged_delete(task))
    }

    /// Archive a task into `sosw_closed_tasks` with `labourer_id_task_status` =
    /// `<labourer>_<1|0>` and `closed_at`, atomically with its removal from the queue, and only
    /// if it is unchanged since it was read. Returns `false` when the task changed meanwhile.
    #[instrument(skip(self, task), fields(task_id = %task.task_id, labourer_id = %task.labourer_id))]
    pub async fn archive(&self, task: &Task) -> Result<bool, TaskError> {
        let (put, _) = self.archive_items(task);
        self.move_out_of_queue(task, put, "TransactWriteItems(archive)")
            .await
    }

    /// Move an expired task to `sosw_retry_tasks` with `desired_launch_time` = now + `delay`,
    /// atomically with its removal from the queue. Returns `false` when the task changed meanwhile
    /// (e.g. a late worker completed it).
    #[instrument(skip(self, task), fields(task_id = %task.task_id, labourer_id = %task.labourer_id))]
    pub async fn move_to_retry(&self, task: &Task, delay: i64) -> Result<bool, TaskError> {
        let mut row = task.item.clone();
        let launch = self
            .clock
            .now_secs()
            .checked_add(delay)
            .ok_or_else(|| TaskError::Malformed {
                task_id: task.task_id.0.clone(),
                reason: format!("retry delay {delay} overflows"),
            })?;
        row.insert(self.f("desired_launch_time").to_string(), n(launch));
        let put = Put::builder()
            .table_name(&self.config.sosw_retry_tasks_table)
            .set_item(Some(row))
            .build()
            .expect("table and item are set");
        self.move_out_of_queue(task, put, "TransactWriteItems(retry)")
            .await
    }

    /// Delete a task from the queue only if it is as it was read (same greenfield, same
    /// completion state).
    fn unchanged_delete(&self, task: &Task) -> Delete {
        Delete::builder()
            .table_name(self.tasks_table())
            .key(self.f("task_id"), AttributeValue::S(task.task_id.0.clone()))
            .condition_expression(if task.completed_at.is_some() {
                "#g = :g AND attribute_exists(#c)"
            } else {
                "#g = :g AND attribute_not_exists(#c)"
            })
            .expression_attribute_names("#g", self.f("greenfield"))
            .expression_attribute_names("#c", self.f("completed_at"))
            .expression_attribute_values(":g", n(task.greenfield))
            .build()
            .expect("table and key are set")
    }

    async fn move_out_of_queue(
        &self,
        task: &Task,
        put: Put,
        operation: &'static str,
    ) -> Result<bool, TaskError> {
        let table = format!("{}` (from `{}", put.table_name(), self.tasks_table());
        let delete = self.unchanged_delete(task);
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        match self.transact(items, operation, &table).await? {
            TxOutcome::Done => Ok(true),
            TxOutcome::ConditionFailed => {
                warn!(task_id = %task.task_id, "task changed since it was read; left in place");
                Ok(false)
            }
        }
    }

    /// [`Self::quarantine`], and when the row moved, its `quarantined` event in the task's meta
    /// history (with the labourer and the `closed_reason`), as every essential records it.
    pub async fn quarantine_recorded(
        &self,
        meta: &crate::MetaHandler,
        from: SourceTable,
        labourer_id: &str,
        item: &Item,
        reason: &str,
    ) -> Result<bool, TaskError> {
        let moved = self.quarantine(from, labourer_id, item, reason).await?;
        if moved {
            meta.post(
                &task_id_of(item, self.f("task_id")),
                "quarantined",
                &[
                    ("labourer_id", serde_json::json!(labourer_id)),
                    ("closed_reason", serde_json::json!(reason)),
                ],
            );
        }
        Ok(moved)
    }

    /// Move a row that cannot be processed (malformed, payload unusable or over the invocation
    /// limit, nonsensical attempts) out of `from` into the archive as dead, with `closed_reason`,
    /// so it is never in the way again and an operator sees it (`sosw task`, `sosw status`). The
    /// move is one transaction conditioned on the row being unchanged since it was read. Returns
    /// `false` when the row changed meanwhile (left for the next run).
    #[instrument(skip(self, item, reason), fields(task_id = %task_id_of(item, self.f("task_id")), labourer_id))]
    pub async fn quarantine(
        &self,
        from: SourceTable,
        labourer_id: &str,
        item: &Item,
        reason: &str,
    ) -> Result<bool, TaskError> {
        let task_id = match item.get(self.f("task_id")) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => {
                return Err(TaskError::Malformed {
                    task_id: "<unknown>".into(),
                    reason: format!("cannot quarantine a row without a string `{}`", self.f("task_id")),
                })
            }
        };
        let row_labourer = match item.get(self.f("labourer_id")) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => labourer_id.to_string(),
        };
        let mut closed = item.clone();
        closed.insert(self.f("task_id").to_string(), AttributeValue::S(task_id.clone()));
        closed.insert(
            self.f("labourer_id").to_string(),
            AttributeValue::S(row_labourer.clone()),
        );
        closed.insert(
            self.f("labourer_id_task_status").to_string(),
            AttributeValue::S(format!("{row_labourer}_0")),
        );
        closed.insert(self.f("closed_at").to_string(), n(self.clock.now_secs()));
        closed.insert("closed_reason".to_string(), AttributeValue::S(reason.to_string()));
        let closed_table = &self.config.sosw_closed_tasks_table;
        let put = Put::builder()
            .table_name(closed_table)
            .set_item(Some(closed))
            .build()
            .expect("table and item are set");
        let (source_table, mut delete) = match from {
            SourceTable::Tasks => (
                self.tasks_table().to_string(),
                Delete::builder()
                    .table_name(self.tasks_table())
                    .key(self.f("task_id"), AttributeValue::S(task_id.clone())),
            ),
            SourceTable::Retry => (
                self.config.sosw_retry_tasks_table.clone(),
                Delete::builder()
                    .table_name(&self.config.sosw_retry_tasks_table)
                    .key(self.f("labourer_id"), AttributeValue::S(row_labourer.clone()))
                    .key(self.f("task_id"), AttributeValue::S(task_id.clone())),
            ),
        };
        // Unchanged since read: every small attribute equal, every other one still present, and
        // sosw's own fields that were absent still absent.
        let keys = [self.f("task_id").to_string(), self.f("labourer_id").to_string()];
        let mut conditions = Vec::new();
        let mut names: Vec<&String> = item.keys().filter(|k| !keys.contains(k)).collect();
        names.sort();
        for (i, name) in names.into_iter().enumerate() {
            let value = &item[name];
            delete = delete.expression_attribute_names(format!("#q{i}"), name);
            let small = match value {
                AttributeValue::S(s) => s.len() <= 1024,
                AttributeValue::N(_) | AttributeValue::Bool(_) | AttributeValue::Null(_) => true,
                _ => false,
            };
            if small {
                conditions.push(format!("#q{i} = :q{i}"));
                delete = delete.expression_attribute_values(format!(":q{i}"), value.clone());
            } else {
                conditions.push(format!("attribute_exists(#q{i})"));
            }
        }
        for (i, field) in ["greenfield", "attempts", "completed_at"].into_iter().enumerate() {
            let name = self.f(field);
            if !item.contains_key(name) {
                delete = delete.expression_attribute_names(format!("#m{i}"), name);
                conditions.push(format!("attribute_not_exists(#m{i})"));
            }
        }
        delete = delete.expression_attribute_names("#t", self.f("task_id"));
        conditions.push("attribute_exists(#t)".into());
        let delete = delete
            .condition_expression(conditions.join(" AND "))
            .build()
            .expect("table and key are set");
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        let table = format!("{closed_table}` (from `{source_table}");
        match self
            .transact(items, "TransactWriteItems(quarantine)", &table)
            .await?
        {
            TxOutcome::Done => {
                warn!(task_id, labourer_id = %row_labourer, reason, from = %source_table, "task quarantined: archived as dead");
                Ok(true)
            }
            TxOutcome::ConditionFailed => {
                warn!(task_id, "row changed since it was read; not quarantined");
                Ok(false)
            }
        }
    }

    /// Retry rows of the labourer due now (`desired_launch_time <= start`), oldest first. Strict.
    pub async fn tasks_due_for_retry(
        &self,
        labourer: &Labourer,
        limit: usize,
    ) -> Result<Vec<Task>, TaskError> {
        self.tasks_due_for_retry_listing(labourer, limit).await?.strict()
    }

    /// Retry rows due now, and the malformed rows met on the way (not counted in `limit`).
    pub async fn tasks_due_for_retry_listing(
        &self,
        labourer: &Labourer,
        limit: usize,
    ) -> Result<Listing, TaskError> {
        if limit == 0 {
            return Ok(Listing::default());
        }
        let table = &self.config.sosw_retry_tasks_table;
        let query = self
            .dynamo
            .query()
            .table_name(table)
            .index_name(&self.config.sosw_retry_tasks_greenfield_index)
            .key_condition_expression("#l = :l AND #d <= :start")
            .expression_attribute_names("#l", self.f("labourer_id"))
            .expression_attribute_names("#d", self.f("desired_launch_time"))
            .expression_attribute_values(":l", AttributeValue::S(labourer.id.clone()))
            .expression_attribute_values(":start", n(labourer.start));
        self.collect_listing(query, table, Some(limit)).await
    }

    /// Put a retry row back into the queue with `greenfield`, atomically with its removal from
    /// the retry table. Returns `false` if the retry row was already gone.
    #[instrument(skip(self, task), fields(task_id = %task.task_id, labourer_id = %task.labourer_id))]
    pub async fn return_to_queue(&self, task: &Task, greenfield: i64) -> Result<bool, TaskError> {
        let mut row = task.item.clone();
        row.remove(self.f("desired_launch_time"));
        row.insert(self.f("greenfield").to_string(), n(greenfield));
        let put = Put::builder()
            .table_name(self.tasks_table())
            .set_item(Some(row))
            .condition_expression("attribute_not_exists(#t)")
            .expression_attribute_names("#t", self.f("task_id"))
            .build()
            .expect("table and item are set");
        let retry_table = &self.config.sosw_retry_tasks_table;
        let delete = Delete::builder()
            .table_name(retry_table)
            .key(self.f("labourer_id"), AttributeValue::S(task.labourer_id.clone()))
            .key(self.f("task_id"), AttributeValue::S(task.task_id.0.clone()))
            .condition_expression("attribute_exists(#t)")
            .expression_attribute_names("#t", self.f("task_id"))
            .build()
            .expect("table and key are set");
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        Ok(matches!(
            self.transact(items, "TransactWriteItems(return_to_queue)", retry_table)
                .await?,
            TxOutcome::Done
        ))
    }

    // ----- worker reports ----------------------------------------------------------------------

    /// Mark a task completed (`completed_at` = now) with flattened `stat_<k>` / `result_<k>`,
    /// only if it is in the invoked state (greenfield in the invoked range, not completed):
    /// otherwise nothing is written and the refusal says where the task is
    /// ([`TaskError::ReportRefused`]).
    pub async fn mark_completed(
        &self,
        task_id: &str,
        stats: Option<&Map<String, Value>>,
        result: Option<&Map<String, Value>>,
    ) -> Result<(), TaskError> {
        let mut sets = vec![(self.f("completed_at").to_string(), n(self.clock.now_secs()))];
        sets.extend(flatten_report(stats, result));
        self.update_report(task_id, "mark_task_as_completed", sets, None)
            .await
    }

    /// Mark a task failed (`failed_attempts` + 1) with flattened `stat_<k>` / `result_<k>`, only
    /// if it is in the invoked state (as [`Self::mark_completed`]).
    pub async fn mark_failed(
        &self,
        task_id: &str,
        stats: Option<&Map<String, Value>>,
        result: Option<&Map<String, Value>>,
    ) -> Result<(), TaskError> {
        let sets = flatten_report(stats, result);
        self.update_report(
            task_id,
            "mark_task_as_failed",
            sets,
            Some(self.f("failed_attempts").to_string()),
        )
        .await
    }

    async fn update_report(
        &self,
        task_id: &str,
        action: &'static str,
        sets: Vec<(String, AttributeValue)>,
        increment: Option<String>,
    ) -> Result<(), TaskError> {
        let table = self.tasks_table();
        let mut parts = Vec::new();
        // Invoked: greenfield beyond now (a queued task holds a queue position, far below).
        let mut q = self
            .dynamo
            .update_item()
            .table_name(table)
            .key(self.f("task_id"), AttributeValue::S(task_id.into()))
            .condition_expression("attribute_exists(#id) AND #g > :now AND attribute_not_exists(#c)")
            .expression_attribute_names("#id", self.f("task_id"))
            .expression_attribute_names("#g", self.f("greenfield"))
            .expression_attribute_names("#c", self.f("completed_at"))
            .expression_attribute_values(":now", n(self.clock.now_secs()));
        for (i, (name, value)) in sets.into_iter().enumerate() {
            parts.push(format!("#s{i} = :s{i}"));
            q = q
                .expression_attribute_names(format!("#s{i}"), name)
                .expression_attribute_values(format!(":s{i}"), value);
        }
        if let Some(name) = increment {
            parts.push("#inc = if_not_exists(#inc, :zero) + :one".into());
            q = q
                .expression_attribute_names("#inc", name)
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1));
        }
        // Both actions always write something (completed_at, or the failed_attempts increment).
        debug_assert!(!parts.is_empty());
        match q
            .update_expression(format!("SET {}", parts.join(", ")))
            .return_values(ReturnValue::None)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_check_failed(&e) => Err(TaskError::ReportRefused {
                task_id: task_id.into(),
                action,
                state: self.whereabouts(task_id).await?,
                table: table.into(),
            }),
            Err(e) => Err(dynamo_err("UpdateItem", table, e)),
        }
    }

    /// Where a task is that is not in the invoked state (for a refused report).
    async fn whereabouts(&self, task_id: &str) -> Result<TaskWhereabouts, TaskError> {
        if let Some(item) = self.get_queue_row(task_id).await? {
            return Ok(if item.contains_key(self.f("completed_at")) {
                TaskWhereabouts::Completed
            } else {
                TaskWhereabouts::Queued
            });
        }
        let closed = self.config.sosw_closed_tasks_table.clone();
        Ok(match self.get_raw(&closed, task_id).await? {
            Some(_) => TaskWhereabouts::Archived,
            None => TaskWhereabouts::RetryingOrUnknown,
        })
    }

    /// A row by id from a table keyed by `task_id` alone, as stored (it may not parse as a task,
    /// e.g. a quarantined row).
    pub async fn get_raw(&self, table: &str, task_id: &str) -> Result<Option<Item>, TaskError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(table)
            .key(self.f("task_id"), AttributeValue::S(task_id.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("GetItem", table, e))?;
        Ok(out.item)
    }

    // ----- durations -------------------------------------------------------------------------

    /// The worker's Lambda timeout: `max_duration` from the labourer's config if set, else
    /// GetFunctionConfiguration (cached for the life of this TaskManager).
    pub async fn max_duration(&self, labourer: &Labourer) -> Result<i64, EcologyError> {
        if let Some(d) = labourer.config.max_duration {
            return Ok(d);
        }
        if let Some(d) = self.max_durations.lock().expect("not poisoned").get(&labourer.id) {
            return Ok(*d);
        }
        let out = self
            .lambda
            .get_function_configuration()
            .function_name(&labourer.arn)
            .send()
            .await
            .map_err(|e| EcologyError::FunctionConfiguration {
                labourer: labourer.id.clone(),
                message: format!(
                    "{} (set `max_duration` in the labourer's config where this call is impossible)",
                    render_error(&e)
                ),
            })?;
        let timeout = i64::from(out.timeout.unwrap_or(3));
        self.max_durations
            .lock()
            .expect("not poisoned")
            .insert(labourer.id.clone(), timeout);
        Ok(timeout)
    }

    /// Average duration of the labourer's latest closed tasks, as the original computes it:
    /// up to `max_closed_to_analyse_for_duration` completed and as many dead tasks (newest closed
    /// first), the first N of them by greenfield; a completed task lasted
    /// `completed_at - greenfield + delta`, a dead one `attempts × max_duration`. 0 with none.
    pub async fn average_duration(&self, labourer: &Labourer) -> Result<i64, TaskError> {
        let limit = self.config.max_closed_to_analyse_for_duration as usize;
        let mut closed = self.closed_tasks(&labourer.id, true, limit).await?;
        closed.extend(self.closed_tasks(&labourer.id, false, limit).await?);
        closed.sort_by_key(|t| t.greenfield);
        closed.truncate(limit);
        let mut durations: Vec<i64> = Vec::new();
        let mut max_duration = None;
        for t in &closed {
            match t.completed_at {
                Some(done) => durations.push(done - t.greenfield + self.config.greenfield_invocation_delta),
                None => {
                    let d = match max_duration {
                        Some(d) => d,
                        None => {
                            let d = self.max_duration(labourer).await.map_err(|e| TaskError::Dynamo {
                                operation: "GetFunctionConfiguration",
                                table: self.config.sosw_closed_tasks_table.clone(),
                                message: e.to_string(),
                            })?;
                            max_duration = Some(d);
                            d
                        }
                    };
                    durations.extend(std::iter::repeat_n(d, t.attempts.max(0) as usize));
                }
            }
        }
        if durations.is_empty() {
            return Ok(0);
        }
        let mean = durations.iter().sum::<i64>() as f64 / durations.len() as f64;
        Ok(mean.round_ties_even() as i64)
    }

    /// The newest `limit` closed tasks of a labourer with the given status (completed or dead),
    /// read from the archive's `labourer_task_status_with_time` index.
    pub async fn closed_tasks(
        &self,
        labourer_id: &str,
        completed: bool,
        limit: usize,
    ) -> Result<Vec<Task>, TaskError> {
        let table = &self.config.sosw_closed_tasks_table;
        let status = format!("{labourer_id}_{}", if completed { 1 } else { 0 });
        let out = self
            .dynamo
            .query()
            .table_name(table)
            .index_name(&self.config.sosw_closed_tasks_labourer_status_index)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", self.f("labourer_id_task_status"))
            .expression_attribute_values(":s", AttributeValue::S(status))
            .scan_index_forward(false)
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(|e| dynamo_err("Query", table, e))?;
        let mut tasks = Vec::new();
        for mut item in out.items.unwrap_or_default().into_iter().take(limit) {
            // The index projects keys + completed_at, greenfield, attempts; labourer_id is implied.
            item.entry(self.f("labourer_id").to_string())
                .or_insert_with(|| AttributeValue::S(labourer_id.to_string()));
            tasks.push(Task::from_item(item, &self.config.dynamo_db_config)?);
        }
        Ok(tasks)
    }
}

/// The `task_id` of a raw row, for logs.
pub fn task_id_of(item: &Item, field: &str) -> String {
    match item.get(field) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => "<unknown>".into(),
    }
}

/// Flatten a worker's report into `stat_<k>` / `result_<k>` attributes, typed as the original does.
fn flatten_report(
    stats: Option<&Map<String, Value>>,
    result: Option<&Map<String, Value>>,
) -> Vec<(String, AttributeValue)> {
    let mut out = Vec::new();
    for (prefix, map) in [("stat_", stats), ("result_", result)] {
        for (k, v) in map.into_iter().flatten() {
            out.push((format!("{prefix}{k}"), guess_attribute(v)));
        }
    }
    out
}

/// Python's `construct_payload_for_task`: `payload` (object, JSON string, or any value wrapped
/// as `{"payload": value}`), then every other field added to it, serialized with `json.dumps`.
pub fn construct_payload(mut fields: Map<String, Value>, payload_field: &str) -> Result<String, TaskError> {
    let mut payload = match fields.shift_remove(payload_field) {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(TaskError::InvalidPayload(format!(
                    "`{payload_field}` is a JSON string that is not an object: {s}"
                )))
            }
            Err(_) => Map::from_iter([("payload".to_string(), Value::String(s))]),
        },
        Some(other) => Map::from_iter([("payload".to_string(), other)]),
    };
    for (k, v) in fields {
        payload.insert(k, v);
    }
    Ok(crate::pyjson::dumps(&payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn payload_is_built_like_python_create_task() {
        assert_eq!(
            construct_payload(obj(json!({"payload": {"a": 1}, "b": "x"})), "payload").unwrap(),
            r#"{"a": 1, "b": "x"}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"payload": "{\"a\": 1}"})), "payload").unwrap(),
            r#"{"a": 1}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"payload": "plain"})), "payload").unwrap(),
            r#"{"payload": "plain"}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"payload": 5})), "payload").unwrap(),
            r#"{"payload": 5}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"x": [1, 2]})), "payload").unwrap(),
            r#"{"x": [1, 2]}"#
        );
    }

    #[test]
    fn a_json_string_that_is_not_an_object_is_rejected() {
        // Python would crash on `result[key] = value` for a JSON list; we name the problem.
        let err = construct_payload(obj(json!({"payload": "[1]", "k": 1})), "payload").unwrap_err();
        assert!(err.to_string().contains("not an object"));
    }

    #[test]
    fn reports_flatten_with_prefixes() {
        let stats = obj(json!({"rows": 3}));
        let result = obj(json!({"ok": "true"}));
        let flat = flatten_report(Some(&stats), Some(&result));
        assert_eq!(flat[0], ("stat_rows".into(), AttributeValue::N("3".into())));
        assert_eq!(flat[1], ("result_ok".into(), AttributeValue::Bool(true)));
    }
}
