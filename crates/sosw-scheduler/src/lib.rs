//! # sosw-scheduler
//!
//! The Scheduler essential: the public entry point of sosw. An application invokes it with a
//! business job; the job is chunked into tasks by the configured rules ([`sosw_chunking`]), the
//! rows are staged as a queue file in S3 ([`queue`]) and written to `sosw_tasks` in batches.
//! When the Lambda is about to run out of time, the rest of the file is handed to a sibling
//! invocation (`{"file_name": ...}`) that continues from S3.
//!
//! Every row becomes exactly one task: task ids derive from (queue file, row index) and each task
//! is created by a transaction that refuses it if the id exists in the queue, the retry table or
//! the archive ([`TaskManager::create_tasks_once`]), so no existing task is ever overwritten,
//! whatever a checkpoint says. A crash or an error leaves the file in S3; Lambda's retry of the
//! same invocation (same request id, so the same file name) resumes it. The file is read as a
//! stream; bad rows, bad metadata and a checkpoint past the end are errors naming the file and
//! row. See docs/essentials.md for exactly what is guaranteed.
//!
//! Module map:
//! - [`SchedulerConfig`]: `sosw_scheduler_config`, its typed defaults and defaults layer;
//! - [`Scheduler`]: one invocation ([`Scheduler::handle`]): stage a job ([`job`], checked by
//!   [`validate`]) or continue a queue file ([`queue`], the S3 queue store), then write its rows;
//! - [`Deadline`] / [`TimeLeft`] / [`today`]: time from the injected clock;
//! - [`from_env`]: the scheduler from the environment (the Lambda and `sosw run`);
//! - the `sosw_lambda::Essential` impl: what the Lambda binary (`src/main.rs`) serves.

pub mod job;
pub mod queue;
pub mod validate;

use queue::{QueueError, QueueReader, QueueStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sosw_core::config::{MetaHandlerConfig, TaskConfig};
use sosw_core::invoker::Invoker;
use sosw_core::task::NewTask;
use sosw_core::{Clock, MetaHandler, TaskError, TaskId, TaskManager};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

/// The Scheduler's config document (`sosw_scheduler_config`), defaults as Python sosw, written
/// once in `Default`; [`SchedulerConfig::defaults`] is the layer made from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// The TaskManager's config; `labourers` are the functions jobs may target.
    pub task_config: TaskConfig,
    /// Meta rows.
    pub meta_handler_config: MetaHandlerConfig,
    /// S3 bucket for queue files.
    pub queue_bucket: String,
    /// Key prefix of queue files.
    pub s3_prefix: String,
    /// Queue file name; the request id is inserted before the extension.
    pub queue_file: String,
    /// Seconds of Lambda time left at which the rest is handed to a sibling.
    pub shutdown_period: u64,
    /// Rows written per batch.
    pub rows_to_process: usize,
    /// Rows between two checkpoints of a locked file (a resumed file re-checks at most this many
    /// rows; the checkpoint saves work, correctness does not depend on it).
    pub checkpoint_rows: usize,
    /// Python sosw's `task_operational_overhead_for_ddb` (0.03), kept in the document as Python
    /// has it; sosw-rs does not use it.
    pub task_operational_overhead_for_ddb: f64,
    /// The whole document, for the chunking rules (`job_schema`, `job_schema_variants`).
    #[serde(skip)]
    pub document: Value,
}

impl Default for SchedulerConfig {
    /// Python sosw's `Scheduler.DEFAULT_CONFIG` (over the TaskManager's defaults), plus
    /// `checkpoint_rows` 500. (Items per TransactWriteItems are the one SOSW_MAX_TRANSACTION_ITEMS
    /// knob of every essential, read by `TaskManager::new`.)
    fn default() -> Self {
        Self {
            task_config: TaskConfig::default(),
            meta_handler_config: MetaHandlerConfig::default(),
            queue_bucket: "autotest-bucket".into(),
            s3_prefix: "sosw/scheduler".into(),
            queue_file: "tasks_queue.txt".into(),
            shutdown_period: 60,
            rows_to_process: 50,
            checkpoint_rows: 500,
            task_operational_overhead_for_ddb: 0.03,
            document: Value::Null,
        }
    }
}

impl SchedulerConfig {
    /// The keys of [`Self::defaults`]: those of Python's `DEFAULT_CONFIG` (which go over
    /// `sosw_essential_config`), the TaskManager's defaults and the two settings sosw-rs adds.
    /// `job_schema_variants.default` (no chunkable attrs) is supplied by sosw-chunking when
    /// absent; it is not in the layer, so a list set in `sosw_essential_config` survives.
    pub const DEFAULTS_LAYER: &'static [&'static str] = &[
        "task_config",
        "s3_prefix",
        "queue_file",
        "queue_bucket",
        "shutdown_period",
        "rows_to_process",
        "checkpoint_rows",
        "task_operational_overhead_for_ddb",
    ];

    /// Python sosw's `Scheduler.DEFAULT_CONFIG`, as a JSON layer made from `Default`.
    pub fn defaults() -> Value {
        sosw_core::config::defaults_layer(&Self::default(), Self::DEFAULTS_LAYER)
    }

    /// Parse an assembled document (defaults already merged in) and validate it.
    pub fn from_document(document: Value) -> Result<Self, sosw_core::ConfigError> {
        let mut cfg: Self = sosw_core::config::from_value("sosw_scheduler_config", document.clone())?;
        cfg.task_config.validate()?;
        if cfg.rows_to_process == 0 {
            return Err(sosw_core::ConfigError::Invalid(
                "rows_to_process must be at least 1".into(),
            ));
        }
        if cfg.checkpoint_rows == 0 {
            return Err(sosw_core::ConfigError::Invalid(
                "checkpoint_rows must be at least 1".into(),
            ));
        }
        if !cfg.queue_file.contains('.') {
            return Err(sosw_core::ConfigError::Invalid(format!(
                "queue_file `{}` needs an extension (the request id goes before it)",
                cfg.queue_file
            )));
        }
        sosw_chunking::SchedulerRules::from_config(&document)
            .map_err(|e| sosw_core::ConfigError::Invalid(e.to_string()))?;
        cfg.document = document;
        Ok(cfg)
    }

    /// The queue file name for a request: `tasks_queue_<request_id>.txt`.
    pub fn queue_file_for(&self, request_id: &str) -> String {
        match self.queue_file.rsplit_once('.') {
            Some((stem, ext)) => format!("{stem}_{request_id}.{ext}"),
            None => format!("{}_{request_id}", self.queue_file),
        }
    }
}

/// Why a scheduler invocation failed.
#[derive(Debug, Error)]
pub enum SchedulerError {
    /// The job is rejected; nothing was written.
    #[error("job rejected: {0}")]
    Job(#[from] sosw_chunking::JobError),
    /// A row of the job cannot become a task; nothing was written.
    #[error("job rejected: {0}")]
    Row(#[from] validate::RowRejected),
    /// A `{"file_name": ...}` continuation names a file that is not in S3.
    #[error("queue file `{0}` is not in S3 (neither handed over nor locked); nothing to continue")]
    NoSuchQueueFile(String),
    /// A row of a queue file is not a JSON object with a `labourer_id`.
    #[error("queue file `{file}` row {row} is malformed: {reason}")]
    MalformedRow {
        /// File.
        file: String,
        /// Absolute row index.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// S3 failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// DynamoDB failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The sibling invocation failed; the rest of the file stays in S3 for a retry.
    #[error("spawning a sibling for `{file}` failed: {message}; the rest of the file is in S3")]
    Sibling {
        /// File.
        file: String,
        /// The error.
        message: String,
    },
}

/// The Lambda `errorType` of a scheduler failure: a job or queue file that cannot be scheduled is
/// `RejectedJob` (retrying it fails the same way), and so is a queue file that cannot be read as it
/// is (not UTF-8, bad metadata, shorter than its checkpoint); S3 requests, DynamoDB and sibling
/// failures are `Retryable`.
impl From<SchedulerError> for sosw_lambda::EdgeError {
    fn from(error: SchedulerError) -> Self {
        use sosw_lambda::ErrorKind;
        let kind = match &error {
            SchedulerError::Job(_)
            | SchedulerError::Row(_)
            | SchedulerError::NoSuchQueueFile(_)
            | SchedulerError::MalformedRow { .. } => ErrorKind::RejectedJob,
            // A queue file that cannot be read as it is (bytes, metadata, length) fails the same
            // way on every retry; only S3 itself failing is worth one.
            SchedulerError::Queue(QueueError::S3 { .. }) | SchedulerError::Sibling { .. } => {
                ErrorKind::Retryable
            }
            SchedulerError::Queue(_) => ErrorKind::RejectedJob,
            SchedulerError::Task(e) => ErrorKind::of_task_error(e),
        };
        Self::new(kind, error)
    }
}

impl From<validate::JobRejected> for SchedulerError {
    fn from(e: validate::JobRejected) -> Self {
        match e {
            validate::JobRejected::Job(e) => Self::Job(e),
            validate::JobRejected::Row(e) => Self::Row(e),
        }
    }
}

/// How much Lambda time is left.
pub trait TimeLeft: Send + Sync {
    /// Time until the invocation's deadline.
    fn remaining(&self) -> Duration;
}

/// A deadline in milliseconds since the epoch (Lambda's `Context::deadline`), read against a clock.
#[derive(Debug, Clone)]
pub struct Deadline {
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    clock: Arc<dyn Clock>,
}

impl Deadline {
    /// From Lambda's context deadline. Local emulators (cargo lambda watch) pass the timeout in
    /// milliseconds instead of an epoch time; such a value is taken as relative to now.
    pub fn from_context(deadline_ms: u64, clock: Arc<dyn Clock>) -> Self {
        const YEAR_2001_MS: u64 = 978_307_200_000;
        let at_ms = if deadline_ms < YEAR_2001_MS {
            now_ms(&*clock).saturating_add(deadline_ms)
        } else {
            deadline_ms
        };
        Self { at_ms, clock }
    }
}

fn now_ms(clock: &dyn Clock) -> u64 {
    u64::try_from(clock.now_ms()).unwrap_or(0)
}

impl TimeLeft for Deadline {
    fn remaining(&self) -> Duration {
        Duration::from_millis(self.at_ms.saturating_sub(now_ms(&*self.clock)))
    }
}

/// The date "today" of a clock (UTC), the date the chunking rules plan from.
pub fn today(clock: &dyn Clock) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(clock.now_secs(), 0)
        .unwrap_or_default()
        .date_naive()
}

/// What one invocation did.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq)]
pub struct SchedulerStats {
    /// The queue file.
    pub file_name: String,
    /// Rows of the file this invocation read (written, found existing), after those skipped
    /// as already handled by an earlier invocation.
    pub rows_in_file: usize,
    /// Tasks written to `sosw_tasks` by this invocation.
    pub tasks_created: usize,
    /// Rows skipped because a previous attempt had already written them.
    pub rows_already_written: usize,
    /// Whether the rest was handed to a sibling.
    pub sibling_spawned: bool,
    /// The first row the sibling writes, when the rest was handed over.
    pub rows_handed_over_from: Option<usize>,
}

/// The Scheduler.
#[derive(Debug)]
pub struct Scheduler {
    tasks: TaskManager,
    queue: QueueStore,
    s3: aws_sdk_s3::Client,
    meta: Arc<MetaHandler>,
    invoker: Arc<dyn Invoker>,
    config: SchedulerConfig,
    /// This function's name, for sibling invocations.
    function_name: String,
    /// Seconds to wait per written item when the table has provisioned write capacity; empty
    /// until the first job when [`Scheduler::with_capacity_read_on_first_job`] asked for that.
    write_pacing: tokio::sync::OnceCell<Option<f64>>,
}

impl Scheduler {
    /// A scheduler over its dependencies. `write_capacity` is the table's provisioned WCU, if any
    /// (see [`provisioned_write_capacity`]).
    pub fn new(
        tasks: TaskManager,
        s3: aws_sdk_s3::Client,
        meta: Arc<MetaHandler>,
        invoker: Arc<dyn Invoker>,
        config: SchedulerConfig,
        function_name: &str,
        write_capacity: Option<i64>,
    ) -> Self {
        let queue = QueueStore::new(s3.clone(), &config.queue_bucket, &config.s3_prefix);
        Self {
            tasks,
            queue,
            s3,
            meta,
            invoker,
            config,
            function_name: function_name.to_string(),
            write_pacing: tokio::sync::OnceCell::new_with(Some(pacing(write_capacity))),
        }
    }

    /// Read the tasks table's provisioned write capacity (DescribeTable, with the TaskManager's
    /// DynamoDB client) when the first job arrives instead of taking it from [`Scheduler::new`]:
    /// the Lambda's start-up then makes no request that depends on the config round trip. The
    /// first job fails, before anything is staged, if the table cannot be described; the next one
    /// asks again. Later jobs reuse the answer. A task store that is not DynamoDB has no
    /// provisioned capacity: no pacing.
    pub fn with_capacity_read_on_first_job(mut self) -> Self {
        self.write_pacing = tokio::sync::OnceCell::new();
        self
    }

    /// Seconds per written item, reading the capacity once if it is not known yet.
    async fn write_pacing(&self) -> Result<Option<f64>, SchedulerError> {
        let pacing = self
            .write_pacing
            .get_or_try_init(|| async {
                let Some(dynamo) = self.tasks.dynamo() else {
                    return Ok(None);
                };
                let table = &self.tasks.config().dynamo_db_config.table_name;
                let capacity = provisioned_write_capacity(dynamo, table).await?;
                info!(table = %table, write_capacity = ?capacity, "read the tasks table's write capacity");
                Ok::<_, SchedulerError>(pacing(capacity))
            })
            .await?;
        Ok(*pacing)
    }

    /// The queue store (tests, the CLI).
    pub fn queue(&self) -> &QueueStore {
        &self.queue
    }

    /// Chunk a job into queue-file rows without writing anything (`sosw plan`).
    pub fn plan(
        &self,
        event: &Value,
        today: chrono::NaiveDate,
    ) -> Result<Vec<Map<String, Value>>, SchedulerError> {
        Ok(sosw_chunking::plan_event(&self.config.document, event, today)?)
    }

    /// Handle one invocation: a job, or `{"file_name": ...}` from a sibling.
    pub async fn handle(
        &self,
        event: &Value,
        request_id: &str,
        time_left: &dyn TimeLeft,
    ) -> Result<SchedulerStats, SchedulerError> {
        // Before anything is staged or taken: a job that cannot be paced is refused untouched.
        let write_pacing = self.write_pacing().await?;
        // `file_name` is reserved for continuations: one that is not a string is a broken
        // continuation, not a job with an attribute of that name.
        let continuation = match event.get("file_name") {
            None => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(other) => {
                return Err(SchedulerError::Job(sosw_chunking::JobError::Malformed(format!(
                    "`file_name` (a continuation's queue file) must be a string, found {other}"
                ))))
            }
        };
        let (name, file, resumed) = match continuation {
            Some(name) => {
                if let Some(file) = self.queue.take_unlocked(&name).await? {
                    (name, file, false)
                } else if let Some(file) = self.queue.get_locked(&name).await? {
                    (name, file, true)
                } else {
                    return Err(SchedulerError::NoSuchQueueFile(name));
                }
            }
            None => {
                let name = self.config.queue_file_for(request_id);
                if let Some(file) = self.queue.get_locked(&name).await? {
                    info!(file_name = %name, "resuming a locked queue file left by a previous attempt");
                    (name, file, true)
                } else if let Some(file) = self.queue.take_unlocked(&name).await? {
                    (name, file, false)
                } else {
                    // Checked completely, then streamed to S3 (see `job`): a rejected job writes nothing.
                    self.stage_job(event, &name).await?;
                    let file = self
                        .queue
                        .get_locked(&name)
                        .await?
                        .ok_or_else(|| SchedulerError::NoSuchQueueFile(format!("locked_{name}")))?;
                    (name, file, false)
                }
            }
        };
        self.process(&name, file, resumed, time_left, write_pacing).await
    }

    async fn process(
        &self,
        name: &str,
        mut file: QueueReader,
        resumed: bool,
        time_left: &dyn TimeLeft,
        write_pacing: Option<f64>,
    ) -> Result<SchedulerStats, SchedulerError> {
        let mut stats = SchedulerStats {
            file_name: name.to_string(),
            ..Default::default()
        };
        // Where to start: the hand-over's `sosw-next-row`, or a later checkpoint of a resumed
        // file. Both only save work: every row is created on the condition that its task does
        // not exist anywhere, so a wrong or missing checkpoint never writes a task twice.
        let mut start = file.next_row;
        let mut source = "sosw-next-row metadata";
        if resumed {
            if let Some(checkpoint) = self.queue.checkpoint(name).await? {
                if checkpoint > start {
                    start = checkpoint;
                    source = "checkpoint";
                }
            }
        }
        file.skip_to(start, source).await?;
        // A resumed file (or one whose rows turn out to exist) is checked for existing rows
        // with BatchGetItem before writing, which is cheaper than refused transactions.
        let mut check_existing = resumed || start > file.first_row;
        let shutdown = Duration::from_secs(self.config.shutdown_period);
        let mut since_checkpoint = 0usize;
        loop {
            if time_left.remaining() <= shutdown {
                let done = file.position();
                // Anything left? Peeking would need a read; a hand-over of an exhausted file is
                // harmless (the sibling finds no rows and releases it).
                self.queue.hand_over(name, file.first_row, done).await?;
                let payload = json!({ "file_name": name }).to_string();
                self.invoker
                    .invoke_event(&self.function_name, payload)
                    .await
                    .map_err(|e| SchedulerError::Sibling {
                        file: name.to_string(),
                        message: e.to_string(),
                    })?;
                stats.sibling_spawned = true;
                stats.rows_handed_over_from = Some(done);
                info!(file_name = %name, next_row = done, "handed the rest to a sibling");
                break;
            }
            let batch = file.next_rows(self.config.rows_to_process).await?;
            if batch.is_empty() {
                break;
            }
            stats.rows_in_file += batch.len();
            let (written, skipped) = self.write_rows(name, &batch, check_existing).await?;
            // Keep checking while rows turn out to exist (a concurrent or earlier delivery).
            check_existing = skipped > 0;
            stats.tasks_created += written;
            stats.rows_already_written += skipped;
            since_checkpoint += batch.len();
            if since_checkpoint >= self.config.checkpoint_rows {
                self.queue.set_checkpoint(name, file.position()).await?;
                since_checkpoint = 0;
            }
            if let Some(per_item) = write_pacing {
                tokio::time::sleep(Duration::from_secs_f64(per_item * written as f64)).await;
            }
        }
        if !stats.sibling_spawned {
            self.queue.release(name).await?;
        }
        self.meta.flush().await;
        info!(
            file_name = %name,
            tasks_created = stats.tasks_created,
            rows_already_written = stats.rows_already_written,
            sibling_spawned = stats.sibling_spawned,
            "scheduler run finished"
        );
        Ok(stats)
    }

    /// Write rows (absolute index, raw line) of a file, each exactly once; returns (written,
    /// skipped because their task exists).
    async fn write_rows(
        &self,
        name: &str,
        rows: &[(usize, String)],
        check_existing: bool,
    ) -> Result<(usize, usize), SchedulerError> {
        let labourer_field = self.tasks.config().field("labourer_id").to_string();
        // Every row of the batch is checked as a job's rows are (configured labourer, no generated
        // field, payload an object within the limits) before any is written.
        let validator = validate::JobValidator::new(self.tasks.clone());
        let mut parsed: Vec<(String, TaskId, NewTask)> = Vec::with_capacity(rows.len());
        for (row, raw) in rows {
            let malformed = |reason: String| SchedulerError::MalformedRow {
                file: name.to_string(),
                row: *row,
                reason,
            };
            let fields: Map<String, Value> = match serde_json::from_str(raw) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(malformed("not a JSON object".into())),
                Err(e) => return Err(malformed(format!("{e} (truncated or not JSON)"))),
            };
            let labourer = fields
                .get(&labourer_field)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("no string `{labourer_field}`")))?
                .to_string();
            validator
                .check(*row, &fields)
                .map_err(|e| malformed(sosw_core::error::render_error(&e)))?;
            parsed.push((labourer, TaskId::derived(name, *row), fields));
        }
        let mut skipped = 0;
        if check_existing {
            let keys: Vec<(String, TaskId)> =
                parsed.iter().map(|(l, id, _)| (l.clone(), id.clone())).collect();
            let existing: HashSet<TaskId> = self.tasks.existing_task_ids(&keys).await?;
            let before = parsed.len();
            parsed.retain(|(_, id, _)| !existing.contains(id));
            skipped = before - parsed.len();
            if skipped > 0 {
                warn!(file_name = %name, skipped, "rows already written by a previous attempt skipped");
            }
        }
        let mut written = 0;
        // Consecutive rows of the same labourer go in one batch (a job targets one labourer).
        let mut i = 0;
        while i < parsed.len() {
            let labourer = parsed[i].0.clone();
            let mut j = i;
            while j < parsed.len() && parsed[j].0 == labourer {
                j += 1;
            }
            let group: Vec<(TaskId, NewTask)> = parsed[i..j]
                .iter()
                .map(|(_, id, f)| (id.clone(), f.clone()))
                .collect();
            let outcome = self
                .tasks
                .create_tasks_once(&labourer, group, self.tasks.transaction_items())
                .await?;
            if !outcome.existing.is_empty() {
                warn!(
                    file_name = %name,
                    labourer_id = %labourer,
                    existing = outcome.existing.len(),
                    "rows whose tasks already exist were not written again"
                );
            }
            skipped += outcome.existing.len();
            for item in &outcome.written {
                if let Some(aws_sdk_dynamodb::types::AttributeValue::S(id)) =
                    item.get(self.tasks.config().field("task_id"))
                {
                    self.meta
                        .post(id, "created", &[("labourer", Value::String(labourer.clone()))]);
                }
            }
            written += outcome.written.len();
            i = j;
        }
        Ok((written, skipped))
    }
}

/// Everything a scheduler needs, from the environment: SDK config, config documents (see
/// `sosw_core::config_source`), clients, over the given clock. The Lambda binary and `sosw run
/// scheduler` both use it.
pub async fn from_env(
    sdk: &aws_config::SdkConfig,
    function_name: &str,
    custom: Option<Value>,
    clock: Arc<dyn Clock>,
) -> Result<Scheduler, Box<dyn std::error::Error + Send + Sync>> {
    // The clients it uses only: DynamoDB, S3 (queue files), Lambda (its sibling).
    let dynamodb = sosw_core::aws::dynamodb_client(sdk);
    let lambda = sosw_core::aws::lambda_client(sdk);
    let document: Value = sosw_core::config_source::ConfigSource::from_env_sharing(sdk, &dynamodb)?
        .load_essential(function_name, SchedulerConfig::defaults(), custom)
        .await?;
    let config = SchedulerConfig::from_document(document)?;
    let meta = Arc::new(MetaHandler::new(
        dynamodb.clone(),
        &config.meta_handler_config,
        clock.clone(),
    ));
    let tasks = TaskManager::new(dynamodb, lambda.clone(), config.task_config.clone(), clock);
    Ok(Scheduler::new(
        tasks,
        sosw_core::aws::s3_client(sdk),
        meta,
        Arc::new(sosw_core::invoker::LambdaInvoker(lambda)),
        config,
        function_name,
        None,
    )
    // DescribeTable on the first job, not here: it depends on the config just read, and a
    // second round trip would lengthen every cold start (docs/benchmarks.md).
    .with_capacity_read_on_first_job())
}

/// The Scheduler Lambda: a job (or a sibling's `{"file_name": ...}`) per invocation, the time
/// left read from the invocation's deadline, one EMF line per invocation.
impl sosw_lambda::Essential for Scheduler {
    const DEFAULT_NAME: &'static str = "sosw_scheduler";

    async fn build(
        sdk: &aws_config::SdkConfig,
        function_name: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, sosw_lambda::BoxError> {
        from_env(sdk, function_name, None, clock).await
    }

    async fn handle_event(
        &self,
        event: Value,
        invocation: &sosw_lambda::Invocation,
    ) -> Result<Value, sosw_lambda::EdgeError> {
        self.meta.set_context(invocation.meta_context());
        let clock = self.tasks.clock().clone();
        let deadline = Deadline::from_context(invocation.deadline_ms, clock.clone());
        let stats = self.handle(&event, &invocation.request_id, &deadline).await?;
        println!("{}", emf_line(&invocation.function_name, &stats, clock.now_ms()));
        Ok(serde_json::to_value(stats)?)
    }
}

/// The EMF line of one invocation: tasks created and whether a sibling took the rest of the file
/// (labourer dimension `all`: a queue file may hold tasks of several labourers).
pub fn emf_line(function: &str, stats: &SchedulerStats, timestamp_ms: i64) -> String {
    sosw_core::emf::line(
        function,
        "all",
        &[
            ("tasks_created", stats.tasks_created as f64),
            ("siblings_spawned", f64::from(u8::from(stats.sibling_spawned))),
        ],
        timestamp_ms,
    )
}

/// Seconds to wait per written item for a provisioned write capacity (`None`: on demand).
fn pacing(write_capacity: Option<i64>) -> Option<f64> {
    write_capacity.filter(|w| *w > 0).map(|w| 1.0 / w as f64)
}

/// The provisioned write capacity of the tasks table, `None` for on-demand tables.
pub async fn provisioned_write_capacity(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<i64>, TaskError> {
    let out = dynamo
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| TaskError::Dynamo {
            operation: "DescribeTable",
            table: table.to_string(),
            source: sosw_core::AwsError::from_sdk(e),
        })?;
    let Some(t) = out.table else { return Ok(None) };
    let on_demand = t
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .is_some_and(|m| *m == aws_sdk_dynamodb::types::BillingMode::PayPerRequest);
    if on_demand {
        return Ok(None);
    }
    Ok(t.provisioned_throughput()
        .and_then(|p| p.write_capacity_units())
        .filter(|w| *w > 0))
}

#[cfg(test)]
mod edge_tests {
    use super::*;

    #[test]
    fn the_defaults_layer_and_serde_defaults_assemble_to_the_typed_defaults() {
        use sosw_core::config::{effective_config, from_value, ConfigDocuments};
        let layer = SchedulerConfig::defaults();
        let keys: Vec<&str> = layer.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, SchedulerConfig::DEFAULTS_LAYER);
        let doc = effective_config(&layer, &ConfigDocuments::default()).unwrap();
        let assembled: SchedulerConfig = from_value("sosw_scheduler_config", doc).unwrap();
        assert_eq!(
            serde_json::to_value(&assembled).unwrap(),
            serde_json::to_value(SchedulerConfig::default()).unwrap()
        );
        // A document without the layer's keys takes them from the same typed defaults.
        let bare: SchedulerConfig = from_value("sosw_scheduler_config", serde_json::json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::to_value(SchedulerConfig::default()).unwrap()
        );
        assert_eq!((assembled.shutdown_period, assembled.rows_to_process), (60, 50));
        assert_eq!(layer["queue_file"], "tasks_queue.txt");
    }
    use lambda_runtime::Diagnostic;
    use sosw_core::ManualClock;
    use sosw_lambda::EdgeError;

    #[test]
    fn the_deadline_and_today_follow_the_injected_clock() {
        let clock = ManualClock::at(1_767_225_600.0); // 2026-01-01T00:00:00Z
        let deadline = Deadline::from_context(1_767_225_660_000, Arc::new(clock.clone()));
        assert_eq!(deadline.remaining(), Duration::from_secs(60));
        clock.advance(45.0);
        assert_eq!(deadline.remaining(), Duration::from_secs(15));
        // An emulator's relative timeout counts from the clock's now.
        let relative = Deadline::from_context(30_000, Arc::new(clock.clone()));
        assert_eq!(relative.at_ms, 1_767_225_675_000);
        clock.advance(86_400.0);
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert_eq!(
            today(&clock),
            chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
        );
    }

    #[test]
    fn failures_map_to_alarmable_lambda_error_types() {
        let d = Diagnostic::from(EdgeError::from(SchedulerError::NoSuchQueueFile(
            "sosw/queue/x.b".into(),
        )));
        assert_eq!(d.error_type, "RejectedJob");
        assert!(d.error_message.contains("sosw/queue/x.b"));
        let malformed = SchedulerError::MalformedRow {
            file: "f".into(),
            row: 3,
            reason: "no labourer_id".into(),
        };
        assert_eq!(
            Diagnostic::from(EdgeError::from(malformed)).error_type,
            "RejectedJob"
        );
        let sibling = SchedulerError::Sibling {
            file: "f".into(),
            message: "throttled".into(),
        };
        assert_eq!(Diagnostic::from(EdgeError::from(sibling)).error_type, "Retryable");
        let dynamo = SchedulerError::Task(TaskError::Dynamo {
            operation: "TransactWriteItems",
            table: "sosw_tasks".into(),
            source: sosw_test_support::aws_errors::service("ThrottlingException", "slow down", 400),
        });
        assert_eq!(Diagnostic::from(EdgeError::from(dynamo)).error_type, "Retryable");
        // A queue file that cannot be read as it is fails the same way on every retry; S3 itself
        // failing is worth one.
        let (bucket, key) = ("b".to_string(), "sosw/scheduler/locked_f.txt".to_string());
        let unreadable = [
            QueueError::Row {
                bucket: bucket.clone(),
                key: key.clone(),
                row: 2,
                reason: "not UTF-8".into(),
            },
            QueueError::Metadata {
                bucket: bucket.clone(),
                key: key.clone(),
                field: "sosw-first-row",
                value: "12abc".into(),
            },
            QueueError::PastEnd {
                bucket: bucket.clone(),
                key: key.clone(),
                next_row: 500,
                rows: 120,
                source_kind: "checkpoint",
            },
        ];
        for e in unreadable {
            let d = Diagnostic::from(EdgeError::from(SchedulerError::Queue(e)));
            assert_eq!(d.error_type, "RejectedJob");
            assert!(d.error_message.contains(&key), "{}", d.error_message);
        }
        let s3 = SchedulerError::Queue(QueueError::S3 {
            operation: "GetObject",
            bucket,
            key,
            message: "slow down".into(),
        });
        assert_eq!(Diagnostic::from(EdgeError::from(s3)).error_type, "Retryable");
        // A queue that is full now may have room after the orchestrator drained it.
        let full = SchedulerError::Task(TaskError::QueueFull {
            labourer_id: "worker".into(),
            newest: 1_748_000_000,
            step: 1_000_000,
            count: 2,
            ceiling: 1_750_000_000,
            greenfield: Some(1_750_000_000),
        });
        assert_eq!(Diagnostic::from(EdgeError::from(full)).error_type, "Retryable");
    }
}
