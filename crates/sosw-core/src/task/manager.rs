//! The TaskManager: every operation on the task tables, with Python sosw's semantics and
//! DynamoDB layout, designed for batches. It stands on a [`TaskStore`] (DynamoDB in production,
//! in memory for tests: see [`super::store`]); this module holds the queue and claim logic, the
//! moves between tables and the worker reports, written once for both stores.
//!
//! Differences from the original, all in the direction of fewer requests and no lost data:
//! - creating N tasks reads the newest greenfield **once** and writes with BatchWriteItem
//!   (25 items a request, unprocessed items retried with backoff); the original queries the
//!   whole queue for every task;
//! - moves between tables (archive, retry, back to the queue) are single TransactWriteItems,
//!   conditioned on the row being unchanged since it was read; the original writes then deletes.

use super::model::{n, n_float, Item, Task, TaskId};
use super::store::{
    Cond, Condition, DynamoStore, IndexQuery, Key, MemoryStore, Range, StoreError, TaskStore, TxItem, Update,
    Written,
};
use crate::clock::Clock;
use crate::config::TaskConfig;
use crate::error::{render_error, AwsError, EcologyError, TaskError, TaskWhereabouts};
use crate::labourer::Labourer;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::{debug, info, instrument, warn};

pub use super::payload::construct_payload;
use super::payload::flatten_report;
pub use super::store::dynamo::BATCH_WRITE_LIMIT;

/// Items per TransactWriteItems allowed by DynamoDB, the default of every essential (each task
/// moved takes two: put + delete, so an archive transaction moves up to 50 tasks).
pub const DEFAULT_TRANSACTION_ITEMS: usize = 100;
/// The smaller transaction size the test harness runs with, so that the suite exercises the
/// transaction-size setting and multi-transaction archives on small data (moto 5.2 accepts
/// DynamoDB's 100 items per TransactWriteItems; its cap of 25 is on TransactGetItems).
pub const MOTO_TRANSACTION_ITEMS: usize = 25;
/// Environment variable overriding [`DEFAULT_TRANSACTION_ITEMS`] (2..=100): the one transaction
/// size knob, read by [`transaction_items_from_env`] for every essential (the local-AWS harness
/// sets it to [`MOTO_TRANSACTION_ITEMS`]).
pub const TRANSACTION_ITEMS_ENV: &str = "SOSW_MAX_TRANSACTION_ITEMS";
/// The attribute a claim writes its token to (not in Python sosw, which ignores it; it is never
/// part of a worker's event): see [`TaskManager::claim_for_invocation`].
pub const CLAIM_ID: &str = "claim_id";

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
    store: Arc<dyn TaskStore>,
    dynamo: Option<aws_sdk_dynamodb::Client>,
    lambda: Option<aws_sdk_lambda::Client>,
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

fn store_err(operation: &'static str, table: &str, source: StoreError) -> TaskError {
    TaskError::Store {
        operation,
        table: table.to_string(),
        source,
    }
}

/// How a TransactWriteItems call ended.
enum TxOutcome {
    Done,
    /// A condition of one of its items failed (a row changed): nothing was written.
    ConditionFailed,
}

impl TaskManager {
    /// One transaction through the store (which retries conflicts with bounded backoff).
    async fn transact(
        &self,
        items: Vec<TxItem>,
        operation: &'static str,
        table: &str,
    ) -> Result<TxOutcome, TaskError> {
        // One idempotency token per logical transaction, kept across every retry (the SDK's and
        // the store's): DynamoDB answers a retry of an applied transaction with its success for
        // ten minutes, so a move whose answer was lost is not taken for a changed row.
        let token = uuid::Uuid::new_v4().to_string();
        match self.store.transact(items, Some(token)).await {
            Ok(Written::Done) => Ok(TxOutcome::Done),
            Ok(Written::ConditionFailed(_)) => Ok(TxOutcome::ConditionFailed),
            Err(e) => Err(store_err(operation, table, e)),
        }
    }

    /// A TaskManager over DynamoDB and Lambda clients, config and clock. Its transaction size is
    /// the one knob [`TRANSACTION_ITEMS_ENV`] (DynamoDB's 100 when unset).
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        lambda: aws_sdk_lambda::Client,
        config: TaskConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut tm = Self::with_store(Arc::new(DynamoStore::new(dynamo.clone())), config, clock);
        tm.dynamo = Some(dynamo);
        tm.lambda = Some(lambda);
        tm.transaction_items = transaction_items_from_env();
        tm
    }

    /// A TaskManager over DynamoDB alone, for an essential that never reads a worker's timeout
    /// (the Worker Assistant): no Lambda client is built.
    pub fn dynamo_only(dynamo: aws_sdk_dynamodb::Client, config: TaskConfig, clock: Arc<dyn Clock>) -> Self {
        let mut tm = Self::with_store(Arc::new(DynamoStore::new(dynamo.clone())), config, clock);
        tm.dynamo = Some(dynamo);
        tm.transaction_items = transaction_items_from_env();
        tm
    }

    /// A TaskManager over any [`TaskStore`], without Lambda: [`Self::max_duration`] then needs
    /// `max_duration` in each labourer's config.
    pub fn with_store(store: Arc<dyn TaskStore>, config: TaskConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            dynamo: None,
            lambda: None,
            config: Arc::new(config),
            clock,
            max_durations: Arc::default(),
            transaction_items: DEFAULT_TRANSACTION_ITEMS,
        }
    }

    /// The clock this TaskManager reads: the essentials share it (deadlines, dates, EMF
    /// timestamps), so one injected clock drives a whole run.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A TaskManager over a fresh [`MemoryStore`] holding the tables `config` names; the store is
    /// returned too, for tests to inspect or seed rows.
    pub fn in_memory(config: TaskConfig, clock: Arc<dyn Clock>) -> (Self, MemoryStore) {
        let store = MemoryStore::for_config(&config);
        (Self::with_store(Arc::new(store.clone()), config, clock), store)
    }

    /// Set the largest TransactWriteItems this TaskManager sends (2..=100 items; DynamoDB allows
    /// 100). Archiving moves `items / 2` tasks per transaction.
    pub fn with_max_transaction_items(mut self, items: usize) -> Self {
        self.transaction_items = items.clamp(2, DEFAULT_TRANSACTION_ITEMS);
        self
    }

    /// Items per transaction (see [`Self::with_max_transaction_items`]).
    pub fn transaction_items(&self) -> usize {
        self.transaction_items
    }

    /// Tasks moved per archive transaction.
    pub fn transaction_tasks(&self) -> usize {
        (self.transaction_items / 2).max(1)
    }

    /// The config.
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// The store the TaskManager works on.
    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.store
    }

    /// The DynamoDB client, when the TaskManager was built over DynamoDB ([`Self::new`]).
    pub fn dynamo(&self) -> Option<&aws_sdk_dynamodb::Client> {
        self.dynamo.as_ref()
    }

    pub(crate) fn now_secs(&self) -> i64 {
        self.clock.now_secs()
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

    /// The key of a row in a table keyed by `task_id` alone.
    fn id_key(&self, task_id: &str) -> Key {
        Key::from([(self.f("task_id").to_string(), AttributeValue::S(task_id.into()))])
    }

    /// The key of a row in the retry table.
    fn retry_key(&self, labourer_id: &str, task_id: &str) -> Key {
        let mut key = self.id_key(task_id);
        key.insert(
            self.f("labourer_id").to_string(),
            AttributeValue::S(labourer_id.into()),
        );
        key
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
        let mut q = self.greenfield_query(labourer_id, Range::Le(n_float(self.clock.now())), Vec::new());
        q.forward = !newest;
        q.page_size = Some(1);
        let target = q.target();
        let first = self.store.query(q).next().await;
        let page = match first {
            None => return Ok(None),
            Some(page) => page.map_err(|e| store_err("Query", &target, e))?,
        };
        match page.items.first() {
            None => Ok(None),
            Some(item) => {
                super::model::number_i64(item, self.f("greenfield")).map_err(|reason| TaskError::Malformed {
                    task_id: task_id_of(item, self.f("task_id")),
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

    /// Sum the counts of every page of a query.
    async fn paginated_count(&self, mut query: IndexQuery) -> Result<u64, TaskError> {
        query.count_only = true;
        let target = query.target();
        let mut pages = self.store.query(query);
        let mut total = 0u64;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_err("Query", &target, e))?;
            total = total.saturating_add(page.count);
        }
        Ok(total)
    }

    /// Number of tasks waiting in the labourer's queue.
    pub async fn queue_length(&self, labourer_id: &str) -> Result<u64, TaskError> {
        self.paginated_count(self.greenfield_query(
            labourer_id,
            Range::Le(n_float(self.clock.now())),
            Vec::new(),
        ))
        .await
    }

    /// A query on the greenfield index: `labourer_id = :l AND <range>`, filtered. Shared by the
    /// counts and the task listings.
    fn greenfield_query(&self, labourer_id: &str, range: Range, filter: Condition) -> IndexQuery {
        IndexQuery::new(
            self.tasks_table(),
            Some(self.greenfield_index()),
            self.f("labourer_id"),
            AttributeValue::S(labourer_id.into()),
        )
        .range(self.f("greenfield"), Some(range))
        .filter(filter)
    }

    fn completed(&self) -> Cond {
        Cond::Exists(self.f("completed_at").to_string())
    }

    fn not_completed(&self) -> Cond {
        Cond::NotExists(self.f("completed_at").to_string())
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
    /// BatchGetItem (100 keys a request, unprocessed keys retried with bounded backoff).
    pub async fn existing_task_ids(
        &self,
        tasks: &[(String, TaskId)],
    ) -> Result<std::collections::HashSet<TaskId>, TaskError> {
        let mut keys: Vec<(String, Key)> = Vec::with_capacity(tasks.len() * 3);
        for (labourer_id, task_id) in tasks {
            keys.push((self.tasks_table().to_string(), self.id_key(&task_id.0)));
            keys.push((
                self.config.sosw_closed_tasks_table.clone(),
                self.id_key(&task_id.0),
            ));
            keys.push((
                self.config.sosw_retry_tasks_table.clone(),
                self.retry_key(labourer_id, &task_id.0),
            ));
        }
        let id_field = self.f("task_id");
        let items = self.store.batch_get(keys, id_field).await.map_err(|e| {
            let tables = format!(
                "{}`, `{}`, `{}",
                self.tasks_table(),
                self.config.sosw_closed_tasks_table,
                self.config.sosw_retry_tasks_table
            );
            store_err("BatchGetItem", &tables, e)
        })?;
        Ok(items
            .iter()
            .filter_map(|item| match item.get(id_field) {
                Some(AttributeValue::S(id)) => Some(TaskId(id.clone())),
                _ => None,
            })
            .collect())
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
    /// sosw's bounded backoff.
    pub async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), TaskError> {
        self.store
            .batch_put(table, items)
            .await
            .map_err(|e| store_err("BatchWriteItem", table, e))
    }

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

    /// Page through a query, parsing rows; a row that does not parse is kept aside (never aborts
    /// the listing). `limit` counts parsed tasks only; pages hold `limit` items.
    async fn collect_listing(
        &self,
        mut query: IndexQuery,
        limit: Option<usize>,
    ) -> Result<Listing, TaskError> {
        let mut listing = Listing::default();
        query.page_size = limit.map(|l| l.max(1));
        let target = query.target();
        let mut pages = self.store.query(query);
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_err("Query", &target, e))?;
            for item in page.items {
                match Task::from_item(item.clone(), &self.config.dynamo_db_config) {
                    Ok(t) => listing.tasks.push(t),
                    Err(error) => {
                        warn!(table = %target, task_id = %task_id_of(&item, self.f("task_id")), error = %error, "malformed row");
                        listing.malformed.push(Malformed { item, error })
                    }
                }
            }
            if limit.is_some_and(|l| listing.tasks.len() >= l) {
                break;
            }
        }
        if let Some(l) = limit {
            listing.tasks.truncate(l);
        }
        Ok(listing)
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
        let q = self.greenfield_query(&labourer.id, Range::Lt(n(labourer.start)), Vec::new());
        self.collect_listing(q, Some(limit)).await
    }

    /// Number of tasks presumed running: invoked, not completed, not expired.
    pub async fn running_count(&self, labourer: &Labourer) -> Result<u64, TaskError> {
        let range = Range::Between(n(labourer.expired), n(labourer.invoked));
        self.paginated_count(self.greenfield_query(&labourer.id, range, vec![self.not_completed()]))
            .await
    }

    /// Number of expired tasks (invoked, not completed, past `expired`).
    pub async fn expired_count(&self, labourer: &Labourer) -> Result<u64, TaskError> {
        let range = Range::Between(n(labourer.start), n(labourer.expired));
        self.paginated_count(self.greenfield_query(&labourer.id, range, vec![self.not_completed()]))
            .await
    }

    /// Number of tasks completed by workers and not yet archived.
    pub async fn completed_count(&self, labourer: &Labourer) -> Result<u64, TaskError> {
        let range = Range::Ge(n_float(self.clock.now()));
        self.paginated_count(self.greenfield_query(&labourer.id, range, vec![self.completed()]))
            .await
    }

    /// Number of tasks of the labourer waiting in the retry table.
    pub async fn retry_count(&self, labourer_id: &str) -> Result<u64, TaskError> {
        let q = IndexQuery::new(
            &self.config.sosw_retry_tasks_table,
            None,
            self.f("labourer_id"),
            AttributeValue::S(labourer_id.into()),
        );
        self.paginated_count(q).await
    }

    fn closed_query(&self, labourer_id: &str, completed: bool) -> IndexQuery {
        let status = format!("{labourer_id}_{}", if completed { 1 } else { 0 });
        IndexQuery::new(
            &self.config.sosw_closed_tasks_table,
            Some(&self.config.sosw_closed_tasks_labourer_status_index),
            self.f("labourer_id_task_status"),
            AttributeValue::S(status),
        )
    }

    /// Number of closed tasks of the labourer, completed (`_1`) or dead (`_0`).
    pub async fn closed_count(&self, labourer_id: &str, completed: bool) -> Result<u64, TaskError> {
        self.paginated_count(self.closed_query(labourer_id, completed))
            .await
    }

    /// Dead tasks of a labourer closed at or after `since` (full rows from the archive).
    pub async fn dead_tasks(&self, labourer_id: &str, since: i64) -> Result<Vec<Task>, TaskError> {
        let table = self.config.sosw_closed_tasks_table.clone();
        let q = self
            .closed_query(labourer_id, false)
            .range(self.f("closed_at"), Some(Range::Ge(n(since))));
        let target = q.target();
        let mut keys = Vec::new();
        let mut pages = self.store.query(q);
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_err("Query", &target, e))?;
            for item in &page.items {
                if let Some(AttributeValue::S(id)) = item.get(self.f("task_id")) {
                    keys.push(id.clone());
                }
            }
        }
        drop(pages);
        let mut tasks = Vec::with_capacity(keys.len());
        for id in keys {
            match self.get_from(&table, &id).await {
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
        self.store
            .get(table, self.retry_key(labourer_id, task_id))
            .await
            .map_err(|e| store_err("GetItem", table, e))?
            .map(|item| Task::from_item(item, &self.config.dynamo_db_config))
            .transpose()
    }

    /// Put a row into the queue only if no task has its id there.
    fn put_new_in_queue(&self, row: Item) -> TxItem {
        TxItem::Put {
            table: self.tasks_table().to_string(),
            item: row,
            condition: vec![Cond::NotExists(self.f("task_id").to_string())],
        }
    }

    /// Put a dead task back into the queue at `greenfield` with its attempts reset to 0,
    /// atomically with its removal from the archive. Returns `false` if it was no longer archived.
    pub async fn revive_dead(&self, task: &Task, greenfield: i64) -> Result<bool, TaskError> {
        let mut row = task.item.clone();
        row.remove(self.f("labourer_id_task_status"));
        row.remove(self.f("closed_at"));
        row.insert(self.f("greenfield").to_string(), n(greenfield));
        row.insert(self.f("attempts").to_string(), n(0));
        let closed = &self.config.sosw_closed_tasks_table;
        let items = vec![
            self.put_new_in_queue(row),
            TxItem::Delete {
                table: closed.clone(),
                key: self.id_key(&task.task_id.0),
                condition: vec![Cond::Exists(self.f("task_id").to_string())],
            },
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
        let range = Range::Ge(n_float(self.clock.now()));
        let q = self.greenfield_query(&labourer.id, range, vec![self.completed()]);
        self.collect_listing(q, None).await
    }

    /// Tasks invoked and expired without being completed (greenfield between start and expired). Strict.
    pub async fn expired_tasks(&self, labourer: &Labourer) -> Result<Vec<Task>, TaskError> {
        self.expired_tasks_listing(labourer).await?.strict()
    }

    /// Expired tasks, and the malformed rows among them.
    pub async fn expired_tasks_listing(&self, labourer: &Labourer) -> Result<Listing, TaskError> {
        let range = Range::Between(n(labourer.start), n(labourer.expired));
        let q = self.greenfield_query(&labourer.id, range, vec![self.not_completed()]);
        self.collect_listing(q, None).await
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
        // A token of this claim, written with it: when the claim's answer is lost (the write was
        // applied, the connection dropped) and the retried request meets the claim's own success as
        // a failed condition, the token tells "mine" from "someone else's".
        let claim_id = uuid::Uuid::new_v4().to_string();
        let update = Update {
            set: vec![
                (self.f("greenfield").to_string(), n(greenfield)),
                (CLAIM_ID.to_string(), AttributeValue::S(claim_id.clone())),
            ],
            remove: Vec::new(),
            increment: vec![self.f("attempts").to_string()],
            append: Vec::new(),
        };
        let condition = vec![Cond::Lt(self.f("greenfield").to_string(), n(labourer.start))];
        let key = self.id_key(&task.task_id.0);
        let claim = Claim {
            greenfield,
            previous_greenfield: task.greenfield,
            previous_attempts,
        };
        let written = self.update_persistently(table, &key, &update, &condition).await;
        let ours = |item: &Option<Item>| {
            item.as_ref()
                .and_then(|item| item.get(CLAIM_ID))
                .is_some_and(|v| matches!(v, AttributeValue::S(id) if *id == claim_id))
        };
        match written {
            Ok(Written::Done) => Ok(Some(claim)),
            Ok(Written::ConditionFailed(_)) => {
                if ours(&self.get_raw_persistently(table, &task.task_id.0).await?) {
                    info!(
                        claim_id,
                        "the claim was applied by an earlier try of this request"
                    );
                    Ok(Some(claim))
                } else {
                    debug!("task already invoked by someone else");
                    Ok(None)
                }
            }
            // Every try failed, yet one of them may have been applied (its answer lost): then the
            // task is claimed, its attempt counted, and only this run knows it. The row says.
            Err(e) => match self.get_raw_persistently(table, &task.task_id.0).await {
                Ok(row) if ours(&row) => {
                    warn!(claim_id, error = %render_error(&e),
                          "the claim's tries failed, but one of them was applied: the claim is ours");
                    Ok(Some(claim))
                }
                _ => Err(store_err("UpdateItem", table, e)),
            },
        }
    }

    /// A conditional update retried with sosw's backoff ([`crate::aws::backoff`]) while it fails
    /// with a retryable error after the SDK's own retries (throttling, server errors, a dropped
    /// connection): for the writes whose loss would cost a task an attempt without a run (claims
    /// and claims given back).
    async fn update_persistently(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: &[Cond],
    ) -> Result<Written, crate::error::StoreError> {
        let mut delays = crate::aws::backoff();
        loop {
            match self
                .store
                .update(table, key.clone(), update.clone(), condition.to_vec())
                .await
            {
                Err(e) if e.is_retryable() => match delays.next() {
                    Some(delay) => {
                        debug!(table, error = %render_error(&e), ?delay, "update failed; trying again");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// [`Self::get_raw`] (a consistent read) retried like [`Self::update_persistently`].
    async fn get_raw_persistently(&self, table: &str, task_id: &str) -> Result<Option<Item>, TaskError> {
        let mut delays = crate::aws::backoff();
        loop {
            match self.store.get(table, self.id_key(task_id)).await {
                Err(e) if e.is_retryable() => match delays.next() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(store_err("GetItem", table, e)),
                },
                other => return other.map_err(|e| store_err("GetItem", table, e)),
            }
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
        let (g, a) = (self.f("greenfield").to_string(), self.f("attempts").to_string());
        let condition = vec![
            Cond::Eq(g.clone(), n(claim.greenfield)),
            Cond::Eq(a.clone(), n(claimed_attempts)),
            self.not_completed(),
        ];
        let mut update = Update {
            set: vec![(g, n(claim.previous_greenfield))],
            // The row as it was before the claim, token included.
            remove: vec![CLAIM_ID.to_string()],
            ..Update::default()
        };
        match claim.previous_attempts {
            Some(previous) => update.set.push((a, n(previous))),
            None => update.remove.push(a),
        }
        let key = self.id_key(&task.task_id.0);
        match self
            .update_persistently(table, &key, &update, &condition)
            .await
            .map_err(|e| store_err("UpdateItem", table, e))?
        {
            Written::Done => Ok(true),
            Written::ConditionFailed(_) => {
                // An earlier try of this request may have been applied (its answer lost): then the
                // row is as before the claim, with no claim token.
                let row = self.get_raw_persistently(table, &task.task_id.0).await?;
                let given_back = row.as_ref().is_some_and(|item| {
                    !item.contains_key(CLAIM_ID)
                        && super::model::number_i64(item, self.f("greenfield"))
                            .ok()
                            .flatten()
                            == Some(claim.previous_greenfield)
                        && super::model::number_i64(item, self.f("attempts")).ok().flatten()
                            == claim.previous_attempts
                });
                if given_back {
                    info!("the claim was given back by an earlier try of this request");
                    Ok(true)
                } else {
                    warn!("claim not given back: the task changed since it was claimed");
                    Ok(false)
                }
            }
        }
    }

    /// The event a worker receives for `task`: its payload, flattened with the task's own fields
    /// (those of the row mapper, as the original reads them), as Python's `json.dumps` writes it
    /// (see [`super::payload::invocation_payload`]).
    pub fn invocation_payload(&self, task: &Task) -> Result<String, TaskError> {
        super::payload::invocation_payload(
            &task.item,
            self.f("payload"),
            self.config.dynamo_db_config.row_mapper.keys(),
            &task.task_id.0,
        )
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
                items.push(self.archive_put(task));
                items.push(self.unchanged_delete(task));
            }
            match self.transact(items, "TransactWriteItems(archive)", &table).await {
                Ok(TxOutcome::Done) => out.extend(chunk.iter().map(|_| Ok(true))),
                Ok(TxOutcome::ConditionFailed) => {
                    for task in chunk {
                        out.push(self.archive(task).await);
                    }
                }
                Err(e) => {
                    warn!(tasks = chunk.len(), error = %render_error(&e), "archive transaction failed; archiving its tasks one by one");
                    for task in chunk {
                        out.push(self.archive(task).await);
                    }
                }
            }
        }
        out
    }

    fn archive_put(&self, task: &Task) -> TxItem {
        let mut closed = task.item.clone();
        let status = if task.completed_at.is_some() { 1 } else { 0 };
        closed.insert(
            self.f("labourer_id_task_status").to_string(),
            AttributeValue::S(format!("{}_{status}", task.labourer_id)),
        );
        closed.insert(self.f("closed_at").to_string(), n(self.clock.now_secs()));
        TxItem::Put {
            table: self.config.sosw_closed_tasks_table.clone(),
            item: closed,
            condition: Vec::new(),
        }
    }

    /// Archive a task into `sosw_closed_tasks` with `labourer_id_task_status` =
    /// `<labourer>_<1|0>` and `closed_at`, atomically with its removal from the queue, and only
    /// if it is unchanged since it was read. Returns `false` when the task changed meanwhile.
    #[instrument(skip(self, task), fields(task_id = %task.task_id, labourer_id = %task.labourer_id))]
    pub async fn archive(&self, task: &Task) -> Result<bool, TaskError> {
        let put = self.archive_put(task);
        self.move_out_of_queue(
            task,
            put,
            &self.config.sosw_closed_tasks_table,
            "TransactWriteItems(archive)",
        )
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
        let retry = &self.config.sosw_retry_tasks_table;
        let put = TxItem::Put {
            table: retry.clone(),
            item: row,
            condition: Vec::new(),
        };
        self.move_out_of_queue(task, put, retry, "TransactWriteItems(retry)")
            .await
    }

    /// Delete a task from the queue only if it is as it was read (same greenfield, same
    /// completion state).
    fn unchanged_delete(&self, task: &Task) -> TxItem {
        let completion = if task.completed_at.is_some() {
            self.completed()
        } else {
            self.not_completed()
        };
        TxItem::Delete {
            table: self.tasks_table().to_string(),
            key: self.id_key(&task.task_id.0),
            condition: vec![
                Cond::Eq(self.f("greenfield").to_string(), n(task.greenfield)),
                completion,
            ],
        }
    }

    async fn move_out_of_queue(
        &self,
        task: &Task,
        put: TxItem,
        to: &str,
        operation: &'static str,
    ) -> Result<bool, TaskError> {
        let table = format!("{to}` (from `{}", self.tasks_table());
        let items = vec![put, self.unchanged_delete(task)];
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
        let (source_table, key) = match from {
            SourceTable::Tasks => (self.tasks_table().to_string(), self.id_key(&task_id)),
            SourceTable::Retry => (
                self.config.sosw_retry_tasks_table.clone(),
                self.retry_key(&row_labourer, &task_id),
            ),
        };
        // Unchanged since read: every small attribute equal, every other one still present, and
        // sosw's own fields that were absent still absent.
        let keys = [self.f("task_id").to_string(), self.f("labourer_id").to_string()];
        let mut names: Vec<&String> = item.keys().filter(|k| !keys.contains(k)).collect();
        names.sort();
        let mut condition: Condition = names
            .into_iter()
            .map(|name| match &item[name] {
                AttributeValue::S(s) if s.len() <= 1024 => Cond::Eq(name.clone(), item[name].clone()),
                v @ (AttributeValue::N(_) | AttributeValue::Bool(_) | AttributeValue::Null(_)) => {
                    Cond::Eq(name.clone(), v.clone())
                }
                _ => Cond::Exists(name.clone()),
            })
            .collect();
        for field in ["greenfield", "attempts", "completed_at"] {
            let name = self.f(field);
            if !item.contains_key(name) {
                condition.push(Cond::NotExists(name.to_string()));
            }
        }
        condition.push(Cond::Exists(self.f("task_id").to_string()));
        let items = vec![
            TxItem::Put {
                table: closed_table.clone(),
                item: closed,
                condition: Vec::new(),
            },
            TxItem::Delete {
                table: source_table.clone(),
                key,
                condition,
            },
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
        let q = IndexQuery::new(
            &self.config.sosw_retry_tasks_table,
            Some(&self.config.sosw_retry_tasks_greenfield_index),
            self.f("labourer_id"),
            AttributeValue::S(labourer.id.clone()),
        )
        .range(self.f("desired_launch_time"), Some(Range::Le(n(labourer.start))));
        self.collect_listing(q, Some(limit)).await
    }

    /// Put a retry row back into the queue with `greenfield`, atomically with its removal from
    /// the retry table. Returns `false` if the retry row was already gone.
    #[instrument(skip(self, task), fields(task_id = %task.task_id, labourer_id = %task.labourer_id))]
    pub async fn return_to_queue(&self, task: &Task, greenfield: i64) -> Result<bool, TaskError> {
        let mut row = task.item.clone();
        row.remove(self.f("desired_launch_time"));
        row.insert(self.f("greenfield").to_string(), n(greenfield));
        let retry_table = &self.config.sosw_retry_tasks_table;
        let items = vec![
            self.put_new_in_queue(row),
            TxItem::Delete {
                table: retry_table.clone(),
                key: self.retry_key(&task.labourer_id, &task.task_id.0),
                condition: vec![Cond::Exists(self.f("task_id").to_string())],
            },
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
        self.mark_completed_with_event(task_id, stats, result, None)
            .await
            .map(|_| ())
    }

    /// [`Self::mark_completed`], appending the report's meta `event` (a meta row, see
    /// [`crate::meta`]) to the task's pending events in the same conditional write. Returns the
    /// task's labourer, read from the same write's answer (`None` from a store that cannot tell).
    pub async fn mark_completed_with_event(
        &self,
        task_id: &str,
        stats: Option<&Map<String, Value>>,
        result: Option<&Map<String, Value>>,
        event: Option<Item>,
    ) -> Result<Option<String>, TaskError> {
        let mut sets = vec![(self.f("completed_at").to_string(), n(self.clock.now_secs()))];
        sets.extend(flatten_report(stats, result));
        self.update_report(task_id, "mark_task_as_completed", sets, None, event)
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
        self.mark_failed_with_event(task_id, stats, result, None)
            .await
            .map(|_| ())
    }

    /// [`Self::mark_failed`], appending the report's meta `event` and returning the task's
    /// labourer as [`Self::mark_completed_with_event`] does.
    pub async fn mark_failed_with_event(
        &self,
        task_id: &str,
        stats: Option<&Map<String, Value>>,
        result: Option<&Map<String, Value>>,
        event: Option<Item>,
    ) -> Result<Option<String>, TaskError> {
        let sets = flatten_report(stats, result);
        self.update_report(
            task_id,
            "mark_task_as_failed",
            sets,
            Some(self.f("failed_attempts").to_string()),
            event,
        )
        .await
    }

    async fn update_report(
        &self,
        task_id: &str,
        action: &'static str,
        set: Vec<(String, AttributeValue)>,
        increment: Option<String>,
        event: Option<Item>,
    ) -> Result<Option<String>, TaskError> {
        let table = self.tasks_table();
        // Invoked: greenfield beyond now (a queued task holds a queue position, far below).
        let condition = vec![
            Cond::Exists(self.f("task_id").to_string()),
            Cond::Gt(self.f("greenfield").to_string(), n(self.clock.now_secs())),
            self.not_completed(),
        ];
        // Both actions always write something (completed_at, or the failed_attempts increment).
        debug_assert!(!set.is_empty() || increment.is_some());
        let update = Update {
            set,
            remove: Vec::new(),
            increment: increment.into_iter().collect(),
            append: event
                .map(|e| {
                    (
                        crate::meta::PENDING_ATTRIBUTE.to_string(),
                        vec![AttributeValue::M(e)],
                    )
                })
                .into_iter()
                .collect(),
        };
        let (written, old) = self
            .store
            .update_returning_old(table, self.id_key(task_id), update, condition)
            .await
            .map_err(|e| store_err("UpdateItem", table, e))?;
        match written {
            Written::Done => Ok(old
                .as_ref()
                .and_then(|item| item.get(self.f("labourer_id")))
                .and_then(|l| l.as_s().ok())
                .cloned()),
            Written::ConditionFailed(_) => Err(TaskError::ReportRefused {
                task_id: task_id.into(),
                action,
                state: self.whereabouts(task_id).await?,
                table: table.into(),
            }),
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
        self.store
            .get(table, self.id_key(task_id))
            .await
            .map_err(|e| store_err("GetItem", table, e))
    }

    // ----- durations -------------------------------------------------------------------------

    /// The worker's Lambda timeout: `max_duration` from the labourer's config if set, else
    /// GetFunctionConfiguration (cached for the life of this TaskManager). Without a Lambda client
    /// ([`Self::with_store`]) the labourer must set `max_duration`.
    pub async fn max_duration(&self, labourer: &Labourer) -> Result<i64, EcologyError> {
        if let Some(d) = labourer.config.max_duration {
            return Ok(d);
        }
        if let Some(d) = self.max_durations.lock().expect("not poisoned").get(&labourer.id) {
            return Ok(*d);
        }
        let Some(lambda) = &self.lambda else {
            return Err(EcologyError::NoMaxDuration {
                labourer: labourer.id.clone(),
            });
        };
        let out = lambda
            .get_function_configuration()
            .function_name(&labourer.arn)
            .send()
            .await
            .map_err(|e| EcologyError::FunctionConfiguration {
                labourer: labourer.id.clone(),
                function: labourer.arn.clone(),
                source: AwsError::from_sdk(e),
            })?;
        let timeout = i64::from(out.timeout.unwrap_or(3));
        self.max_durations
            .lock()
            .expect("not poisoned")
            .insert(labourer.id.clone(), timeout);
        Ok(timeout)
    }
}

/// The `task_id` of a raw row, for logs.
pub fn task_id_of(item: &Item, field: &str) -> String {
    match item.get(field) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => "<unknown>".into(),
    }
}
