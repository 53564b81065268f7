//! `sosw check`: an fsck for an installation, read-only.
//!
//! [`check`] scans the three task tables (`sosw_tasks`, `sosw_retry_tasks`, `sosw_closed_tasks`),
//! the Scheduler's queue files in S3 and its failed-jobs SQS queue (each where given), and returns a
//! [`CheckReport`]: per labourer where its tasks are, and every inconsistency as a [`Finding`] that
//! names the table (or bucket, or queue), the task id or key, and what is wrong. It never writes.
//!
//! Cost: one paginated, eventually consistent Scan per table (every row is read once), at most
//! [`CheckOptions::max_rcu`] read capacity units a second on average, measured on the
//! `ConsumedCapacity` DynamoDB returns and on the size of the items read, as DynamoDB counts a Scan
//! (4 KB per unit, halved for eventual consistency), whichever is larger per page (an emulator
//! may return none, or a flat figure per request).
//! Pages are sized so that one page costs about a second of the budget. A task seen in two tables
//! is read again with consistent GetItems before it is reported (a task the essentials moved while
//! the scan ran is not an inconsistency). The set of task ids seen is kept in memory (about 100
//! bytes a task).
//!
//! | finding ([`FindingKind`]) | what is wrong |
//! |---|---|
//! | `in_two_tables` | a task id is in two (or three) of the task tables at once, still after a consistent re-read |
//! | `row_does_not_parse` | a row lacks or mistypes a field sosw relies on (`task_id`, `labourer_id`, `greenfield`, `attempts`, `completed_at`, `desired_launch_time`, `closed_at`, ...) |
//! | `payload_not_object` | a queued or retrying task's `payload` is not a JSON object: it cannot be invoked |
//! | `payload_too_large` | a queued or retrying task's invocation event exceeds the 256 KiB asynchronous invocation limit |
//! | `unknown_labourer` | a queued, running or retrying task belongs to a labourer that is not configured |
//! | `queue_position_not_below_now` | a never-invoked task's greenfield is at or beyond now: it reads as running and is never invoked |
//! | `greenfield_beyond_invoked_range` | a greenfield beyond now + `greenfield_invocation_delta` (+ clock skew tolerance): it reads as running for longer than any invocation |
//! | `attempts_beyond_max` | `attempts` above the labourer's `max_attempts` anywhere but in the dead archive |
//! | `closed_without_closed_at` | an archived row without a numeric `closed_at` (invisible to the archive's index) |
//! | `queue_file_locked_too_long` | a scheduler queue file locked (and not checkpointed) for longer than a Scheduler can run |
//! | `queue_file_not_picked_up` | a queue file handed over to a sibling Scheduler that did not take it within that time |
//! | `failed_jobs_waiting` | failed Scheduler jobs wait in its on-failure queue |

use crate::config::TaskConfig;
use crate::error::render_error;
use crate::labourer::Labourer;
use crate::task::model::{number_i64, Item, Task};
use crate::task::size::{item_size, MAX_ASYNC_PAYLOAD_BYTES};
use crate::task::TaskManager;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use thiserror::Error;
use tracing::{debug, info};

/// The longest a Scheduler invocation can run: Lambda's maximum timeout, 15 minutes.
pub const SCHEDULER_MAX_RUN_SECS: i64 = 900;

/// Default read budget: 50 read capacity units a second, about 1,300 rows of 300 bytes a second.
pub const DEFAULT_MAX_RCU: f64 = 50.0;

/// Default tolerance for clocks of essentials running ahead of this one (seconds).
pub const DEFAULT_CLOCK_SKEW_SECS: i64 = 300;

/// The rows of the first page of each Scan, before the page size adapts to the budget.
const FIRST_PAGE: i32 = 100;
/// The largest page asked for (DynamoDB stops a page at 1 MB anyway).
const MAX_PAGE: i32 = 1000;

/// What to check and how fast.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Average read capacity units a second the scans may consume.
    pub max_rcu: f64,
    /// The Scheduler's queue files: bucket and key prefix (`queue_bucket`, `s3_prefix`).
    pub queue_files: Option<QueueFiles>,
    /// The Scheduler's failed-jobs SQS queue, a name or URL.
    pub failed_jobs_queue: Option<String>,
    /// How long a Scheduler can run (seconds): a queue file locked longer is stuck.
    pub scheduler_max_run_secs: i64,
    /// How far other essentials' clocks may run ahead of this one (seconds).
    pub clock_skew_secs: i64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            max_rcu: DEFAULT_MAX_RCU,
            queue_files: None,
            failed_jobs_queue: None,
            scheduler_max_run_secs: SCHEDULER_MAX_RUN_SECS,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// Where the Scheduler keeps its queue files.
#[derive(Debug, Clone)]
pub struct QueueFiles {
    /// S3 client.
    pub s3: aws_sdk_s3::Client,
    /// `queue_bucket`.
    pub bucket: String,
    /// `s3_prefix` (without the trailing `/`).
    pub prefix: String,
}

/// Why the check could not run (as opposed to what it found).
#[derive(Debug, Error)]
pub enum CheckError {
    /// A DynamoDB call failed.
    #[error("DynamoDB {operation} on table `{table}` failed: {message}")]
    Dynamo {
        /// The operation.
        operation: &'static str,
        /// The table.
        table: String,
        /// The SDK error with its causes.
        message: String,
    },
    /// Listing the queue files failed.
    #[error("S3 ListObjectsV2 on s3://{bucket}/{prefix} failed: {message}")]
    S3 {
        /// Bucket.
        bucket: String,
        /// Prefix.
        prefix: String,
        /// The SDK error with its causes.
        message: String,
    },
    /// Reading the failed-jobs queue failed.
    #[error("SQS {operation} on the Scheduler's failed-jobs queue `{queue}` failed: {message}")]
    Sqs {
        /// The operation.
        operation: &'static str,
        /// Queue name or URL.
        queue: String,
        /// The SDK error with its causes.
        message: String,
    },
    /// `max_rcu` is not a positive number.
    #[error("max_rcu must be a positive number of read capacity units a second, not {0}")]
    Budget(f64),
    /// The TaskManager is not backed by DynamoDB (e.g. the in-memory store): there is nothing to scan.
    #[error("sosw check scans DynamoDB tables: the TaskManager given is not backed by DynamoDB")]
    NotDynamo,
}

/// What is wrong, as a stable snake_case name in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A task id in two tables at once.
    InTwoTables,
    /// A row sosw cannot read.
    RowDoesNotParse,
    /// A payload that is not a JSON object.
    PayloadNotObject,
    /// An invocation event over 256 KiB.
    PayloadTooLarge,
    /// A task of a labourer that is not configured.
    UnknownLabourer,
    /// A never-invoked task at or beyond now.
    QueuePositionNotBelowNow,
    /// A greenfield beyond any invocation's.
    GreenfieldBeyondInvokedRange,
    /// More attempts than `max_attempts`, outside the dead archive.
    AttemptsBeyondMax,
    /// An archived row without `closed_at`.
    ClosedWithoutClosedAt,
    /// A queue file locked longer than a Scheduler runs.
    QueueFileLockedTooLong,
    /// A handed-over queue file nobody took.
    QueueFileNotPickedUp,
    /// Failed Scheduler jobs waiting.
    FailedJobsWaiting,
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// The table, `s3://bucket`, or queue URL where it is.
    pub location: String,
    /// The task id, when a task is concerned.
    pub task_id: Option<String>,
    /// The S3 key, when a queue file is concerned.
    pub key: Option<String>,
    /// The labourer, when known.
    pub labourer_id: Option<String>,
    /// What is wrong, in words, with the values concerned.
    pub detail: String,
}

/// Where one labourer's tasks are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LabourerCounts {
    /// The labourer.
    pub labourer_id: String,
    /// Whether it is configured (`task_config.labourers`).
    pub configured: bool,
    /// In `sosw_tasks`, waiting to be invoked.
    pub queued: u64,
    /// Invoked and within their time.
    pub running: u64,
    /// Invoked and out of time, waiting for the scavenger.
    pub expired: u64,
    /// In `sosw_retry_tasks`.
    pub retrying: u64,
    /// Marked completed, waiting for the scavenger to archive them.
    pub completed_not_archived: u64,
    /// Archived as completed.
    pub archived_completed: u64,
    /// Archived as dead (quarantined rows included).
    pub archived_dead: u64,
    /// Of `archived_dead`, rows quarantined by an essential (with `closed_reason`).
    pub quarantined: u64,
}

/// Failed Scheduler jobs in its on-failure queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedJobs {
    /// The queue URL.
    pub queue_url: String,
    /// `ApproximateNumberOfMessages`.
    pub waiting: u64,
    /// `ApproximateNumberOfMessagesNotVisible`.
    pub in_flight: u64,
}

/// What the check cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckCost {
    /// DynamoDB Scan requests.
    pub scan_requests: u64,
    /// DynamoDB GetItem requests (re-reading tasks seen in two tables).
    pub get_requests: u64,
    /// Rows read.
    pub items_read: u64,
    /// Read capacity units counted against the budget: per page the larger of the reported and
    /// the estimated figure.
    pub read_capacity_units: f64,
    /// Read capacity units DynamoDB reported (`ConsumedCapacity`), where it did.
    pub reported_read_capacity_units: f64,
    /// Read capacity units by DynamoDB's rules from the size of the rows read (4 KB per unit,
    /// halved for eventually consistent reads, per page).
    pub estimated_read_capacity_units: f64,
    /// Whether some page came without `ConsumedCapacity` (its units are estimated).
    pub rcu_estimated: bool,
    /// S3 ListObjectsV2 requests.
    pub s3_list_requests: u64,
    /// Seconds spent waiting to stay within the read budget.
    pub throttled_secs: f64,
}

/// Everything [`check`] found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The time the check ran at (seconds).
    pub checked_at: i64,
    /// Per labourer: configured ones in config order, then unknown ones seen in the tables.
    pub labourers: Vec<LabourerCounts>,
    /// Failed Scheduler jobs, when the queue was given.
    pub failed_jobs: Option<FailedJobs>,
    /// Queue files in the Scheduler's bucket (locked, checkpoints not counted), when given.
    pub queue_files: Option<u64>,
    /// Every inconsistency, in the order found.
    pub findings: Vec<Finding>,
    /// What the check cost.
    pub cost: CheckCost,
}

impl CheckReport {
    /// No inconsistency found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }
}

/// The read budget: waits so that the capacity consumed stays within `max_rcu` a second on
/// average, and sizes pages so that one costs about a second of it.
#[derive(Debug)]
struct Budget {
    max_rcu: f64,
    started: tokio::time::Instant,
    consumed: f64,
    waited: Duration,
}

/// How long to wait, after `consumed` units in `elapsed`, to stay within `max_rcu` a second.
fn wait_for(consumed: f64, elapsed: Duration, max_rcu: f64) -> Duration {
    let due = consumed / max_rcu;
    let ahead = due - elapsed.as_secs_f64();
    if ahead > 0.0 {
        Duration::from_secs_f64(ahead)
    } else {
        Duration::ZERO
    }
}

/// The next page size: about one second of budget at the units per row seen so far.
fn next_page(rcu: f64, rows: usize, max_rcu: f64) -> i32 {
    if rows == 0 || rcu <= 0.0 {
        return MAX_PAGE;
    }
    let per_row = rcu / rows as f64;
    let rows = (max_rcu / per_row).floor();
    if rows >= f64::from(MAX_PAGE) {
        MAX_PAGE
    } else if rows < 1.0 {
        1
    } else {
        rows as i32
    }
}

/// Read capacity of a Scan page as DynamoDB counts it: the page's total size in 4 KB units,
/// rounded up, halved for an eventually consistent read.
fn estimated_rcu(items: &[Item]) -> f64 {
    let bytes: usize = items.iter().map(item_size).sum();
    (bytes.div_ceil(4096).max(1)) as f64 / 2.0
}

impl Budget {
    fn new(max_rcu: f64) -> Self {
        Self {
            max_rcu,
            started: tokio::time::Instant::now(),
            consumed: 0.0,
            waited: Duration::ZERO,
        }
    }

    async fn spend(&mut self, rcu: f64) {
        self.consumed += rcu;
        let wait = wait_for(self.consumed, self.started.elapsed(), self.max_rcu);
        if !wait.is_zero() {
            debug!(
                wait_ms = wait.as_millis() as u64,
                consumed = self.consumed,
                "read budget: waiting"
            );
            self.waited += wait;
            tokio::time::sleep(wait).await;
        }
    }
}

/// The three task tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Tasks,
    Retry,
    Closed,
}

impl Table {
    fn bit(self) -> u8 {
        match self {
            Self::Tasks => 1,
            Self::Retry => 2,
            Self::Closed => 4,
        }
    }
}

struct Checker<'a> {
    tm: &'a TaskManager,
    dynamo: &'a aws_sdk_dynamodb::Client,
    cfg: &'a TaskConfig,
    opts: &'a CheckOptions,
    now: i64,
    budget: Budget,
    cost: CheckCost,
    findings: Vec<Finding>,
    counts: BTreeMap<String, LabourerCounts>,
    registered: HashMap<String, Labourer>,
    /// task id → tables it was seen in (bits), and its labourer (for the retry table's key).
    seen: HashMap<String, (u8, String)>,
}

/// Run the check: read-only, at most `opts.max_rcu` read units a second on average.
pub async fn check(tm: &TaskManager, opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    check_with_sqs(tm, opts, None).await
}

/// [`check`], reading the failed-jobs queue (when `opts.failed_jobs_queue` is set) with `sqs`.
pub async fn check_with_sqs(
    tm: &TaskManager,
    opts: &CheckOptions,
    sqs: Option<&aws_sdk_sqs::Client>,
) -> Result<CheckReport, CheckError> {
    if !(opts.max_rcu.is_finite() && opts.max_rcu > 0.0) {
        return Err(CheckError::Budget(opts.max_rcu));
    }
    let cfg = tm.config();
    let now = tm.clock().now_secs();
    let registered: HashMap<String, Labourer> = Labourer::register_all(cfg, now)
        .into_iter()
        .map(|l| (l.id.clone(), l))
        .collect();
    let dynamo = tm.dynamo().ok_or(CheckError::NotDynamo)?;
    let mut c = Checker {
        tm,
        dynamo,
        cfg,
        opts,
        now,
        budget: Budget::new(opts.max_rcu),
        cost: CheckCost::default(),
        findings: Vec::new(),
        counts: BTreeMap::new(),
        registered,
        seen: HashMap::new(),
    };
    c.scan(Table::Tasks).await?;
    c.scan(Table::Retry).await?;
    c.scan(Table::Closed).await?;
    c.in_two_tables().await?;
    let queue_files = match &opts.queue_files {
        Some(q) => Some(c.queue_files(q).await?),
        None => None,
    };
    let failed_jobs = match (&opts.failed_jobs_queue, sqs) {
        (Some(queue), Some(sqs)) => Some(c.failed_jobs(sqs, queue).await?),
        _ => None,
    };
    c.cost.throttled_secs = c.budget.waited.as_secs_f64();
    // Configured labourers in config order, then the others by id.
    let mut labourers = Vec::new();
    for id in cfg.labourers.keys() {
        let mut counts = c.counts.remove(id).unwrap_or_default();
        counts.labourer_id = id.clone();
        counts.configured = true;
        labourers.push(counts);
    }
    labourers.extend(c.counts.into_values());
    info!(
        findings = c.findings.len(),
        items_read = c.cost.items_read,
        rcu = c.cost.read_capacity_units,
        "check done"
    );
    Ok(CheckReport {
        checked_at: now,
        labourers,
        failed_jobs,
        queue_files,
        findings: c.findings,
        cost: c.cost,
    })
}

impl Checker<'_> {
    fn table_name(&self, table: Table) -> &str {
        match table {
            Table::Tasks => &self.cfg.dynamo_db_config.table_name,
            Table::Retry => &self.cfg.sosw_retry_tasks_table,
            Table::Closed => &self.cfg.sosw_closed_tasks_table,
        }
    }

    fn f<'b>(&'b self, key: &'b str) -> &'b str {
        self.cfg.field(key)
    }

    fn find(
        &mut self,
        kind: FindingKind,
        table: Table,
        task_id: Option<&str>,
        labourer: Option<&str>,
        detail: String,
    ) {
        let location = self.table_name(table).to_string();
        self.findings.push(Finding {
            kind,
            location,
            task_id: task_id.map(str::to_string),
            key: None,
            labourer_id: labourer.map(str::to_string),
            detail,
        });
    }

    fn counts(&mut self, labourer_id: &str) -> &mut LabourerCounts {
        self.counts
            .entry(labourer_id.to_string())
            .or_insert_with(|| LabourerCounts {
                labourer_id: labourer_id.to_string(),
                ..Default::default()
            })
    }

    /// Scan one table page by page within the budget, checking every row.
    async fn scan(&mut self, table: Table) -> Result<(), CheckError> {
        let name = self.table_name(table).to_string();
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        let mut page = FIRST_PAGE;
        let (mut rows, mut rcu) = (0usize, 0.0f64);
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&name)
                .limit(page)
                .set_exclusive_start_key(start_key.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| CheckError::Dynamo {
                    operation: "Scan",
                    table: name.clone(),
                    message: render_error(&e),
                })?;
            self.cost.scan_requests += 1;
            let items = out.items().to_vec();
            // The budget counts the larger of what DynamoDB reports and what the page's size
            // costs by DynamoDB's rules (emulators report none, or a flat figure per request).
            let estimated = estimated_rcu(&items);
            self.cost.estimated_read_capacity_units += estimated;
            let page_rcu = match out.consumed_capacity().and_then(|c| c.capacity_units()) {
                Some(units) if units > 0.0 => {
                    self.cost.reported_read_capacity_units += units;
                    units.max(estimated)
                }
                _ => {
                    self.cost.rcu_estimated = true;
                    estimated
                }
            };
            self.cost.items_read += items.len() as u64;
            self.cost.read_capacity_units += page_rcu;
            rows += items.len();
            rcu += page_rcu;
            for item in items {
                self.row(table, item);
            }
            self.budget.spend(page_rcu).await;
            page = next_page(rcu, rows, self.opts.max_rcu);
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => break,
            }
        }
        Ok(())
    }

    fn row(&mut self, table: Table, item: Item) {
        let task_id = match item.get(self.f("task_id")) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => {
                // Impossible with the tables' key schemas; reported rather than trusted.
                let detail = format!("no string attribute `{}`", self.f("task_id"));
                self.find(FindingKind::RowDoesNotParse, table, None, None, detail);
                return;
            }
        };
        let labourer_id = match item.get(self.f("labourer_id")) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let entry = self
            .seen
            .entry(task_id.clone())
            .or_insert_with(|| (0, labourer_id.clone().unwrap_or_default()));
        entry.0 |= table.bit();
        if table == Table::Retry {
            entry.1 = labourer_id.clone().unwrap_or_default();
        }
        match table {
            Table::Closed => self.closed_row(&task_id, labourer_id.as_deref(), &item),
            Table::Tasks | Table::Retry => self.active_row(table, &task_id, item),
        }
    }

    /// A row of `sosw_tasks` or `sosw_retry_tasks`.
    fn active_row(&mut self, table: Table, task_id: &str, item: Item) {
        let desired_launch = if table == Table::Retry {
            match number_i64(&item, self.f("desired_launch_time")) {
                Ok(Some(_)) => None,
                Ok(None) => Some(format!("no number attribute `{}`", self.f("desired_launch_time"))),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let task = match Task::from_item(item, &self.cfg.dynamo_db_config) {
            Ok(t) => t,
            Err(e) => {
                let labourer = match &self.seen[task_id].1 {
                    l if l.is_empty() => None,
                    l => Some(l.clone()),
                };
                self.find(
                    FindingKind::RowDoesNotParse,
                    table,
                    Some(task_id),
                    labourer.as_deref(),
                    e.to_string(),
                );
                return;
            }
        };
        let lid = task.labourer_id.clone();
        if let Some(reason) = desired_launch {
            self.find(
                FindingKind::RowDoesNotParse,
                table,
                Some(task_id),
                Some(&lid),
                reason,
            );
        }
        let labourer = match self.registered.get(&lid) {
            Some(l) => l.clone(),
            None => {
                let detail = format!(
                    "labourer `{lid}` is not configured (task_config.labourers has {:?}): nothing invokes or \
                     scavenges this task",
                    self.cfg.labourers.keys().collect::<Vec<_>>()
                );
                self.find(
                    FindingKind::UnknownLabourer,
                    table,
                    Some(task_id),
                    Some(&lid),
                    detail,
                );
                Labourer::register(&lid, &Default::default(), self.cfg, self.now)
            }
        };
        if table == Table::Retry {
            self.counts(&lid).retrying += 1;
        } else {
            let state = task.state(labourer.start, labourer.expired);
            let counts = self.counts(&lid);
            match state {
                crate::task::GreenfieldState::Queued => counts.queued += 1,
                crate::task::GreenfieldState::Running => counts.running += 1,
                crate::task::GreenfieldState::Expired => counts.expired += 1,
                crate::task::GreenfieldState::Completed => counts.completed_not_archived += 1,
            }
            if task.completed_at.is_none() {
                if task.attempts == 0 && task.greenfield >= labourer.start {
                    let detail = format!(
                        "never invoked (attempts 0), but greenfield {} is at or beyond now ({}): it reads as \
                         running and is never invoked",
                        task.greenfield, labourer.start
                    );
                    self.find(
                        FindingKind::QueuePositionNotBelowNow,
                        table,
                        Some(task_id),
                        Some(&lid),
                        detail,
                    );
                }
                let limit = labourer.invoked.saturating_add(self.opts.clock_skew_secs);
                if task.greenfield > limit {
                    let detail = format!(
                        "greenfield {} is beyond now + greenfield_invocation_delta ({}) + {} s of clock skew: \
                         it reads as running for longer than any invocation",
                        task.greenfield, labourer.invoked, self.opts.clock_skew_secs
                    );
                    self.find(
                        FindingKind::GreenfieldBeyondInvokedRange,
                        table,
                        Some(task_id),
                        Some(&lid),
                        detail,
                    );
                }
            }
        }
        let max_attempts = i64::from(labourer.max_attempts);
        if task.attempts > max_attempts {
            let detail = format!(
                "attempts {} is above max_attempts {max_attempts} of labourer `{lid}`",
                task.attempts
            );
            self.find(
                FindingKind::AttemptsBeyondMax,
                table,
                Some(task_id),
                Some(&lid),
                detail,
            );
        }
        if task.completed_at.is_none() {
            match self.tm.invocation_payload(&task) {
                Ok(event) if event.len() > MAX_ASYNC_PAYLOAD_BYTES => {
                    let detail = format!(
                        "the invocation event is {} bytes, over the {MAX_ASYNC_PAYLOAD_BYTES}-byte limit of an \
                         asynchronous Lambda invocation",
                        event.len()
                    );
                    self.find(
                        FindingKind::PayloadTooLarge,
                        table,
                        Some(task_id),
                        Some(&lid),
                        detail,
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    self.find(
                        FindingKind::PayloadNotObject,
                        table,
                        Some(task_id),
                        Some(&lid),
                        e.to_string(),
                    );
                }
            }
        }
    }

    /// A row of `sosw_closed_tasks`.
    fn closed_row(&mut self, task_id: &str, labourer_id: Option<&str>, item: &Item) {
        let Some(lid) = labourer_id.map(str::to_string) else {
            let detail = format!("no string attribute `{}`", self.f("labourer_id"));
            self.find(
                FindingKind::RowDoesNotParse,
                Table::Closed,
                Some(task_id),
                None,
                detail,
            );
            return;
        };
        let status_field = self.f("labourer_id_task_status").to_string();
        let completed = match item.get(&status_field) {
            Some(AttributeValue::S(s)) if s == &format!("{lid}_1") => true,
            Some(AttributeValue::S(s)) if s == &format!("{lid}_0") => false,
            other => {
                let detail = format!(
                    "`{status_field}` should be `{lid}_1` (completed) or `{lid}_0` (dead), found {other:?}"
                );
                self.find(
                    FindingKind::RowDoesNotParse,
                    Table::Closed,
                    Some(task_id),
                    Some(&lid),
                    detail,
                );
                return;
            }
        };
        match number_i64(item, self.f("closed_at")) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let detail = format!(
                    "archived without a number `{}`: invisible to the archive's index",
                    self.f("closed_at")
                );
                self.find(
                    FindingKind::ClosedWithoutClosedAt,
                    Table::Closed,
                    Some(task_id),
                    Some(&lid),
                    detail,
                );
            }
            Err(e) => self.find(
                FindingKind::ClosedWithoutClosedAt,
                Table::Closed,
                Some(task_id),
                Some(&lid),
                e,
            ),
        }
        let quarantined = item.contains_key("closed_reason");
        let counts = self.counts(&lid);
        if completed {
            counts.archived_completed += 1;
        } else {
            counts.archived_dead += 1;
            if quarantined {
                counts.quarantined += 1;
            }
        }
        if completed {
            match number_i64(item, self.f("attempts")) {
                Ok(Some(attempts)) => {
                    let max = i64::from(self.cfg.max_attempts_for(&lid));
                    if attempts > max {
                        let detail = format!(
                            "archived as completed with attempts {attempts}, above max_attempts {max} of labourer `{lid}`"
                        );
                        self.find(
                            FindingKind::AttemptsBeyondMax,
                            Table::Closed,
                            Some(task_id),
                            Some(&lid),
                            detail,
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => self.find(
                    FindingKind::RowDoesNotParse,
                    Table::Closed,
                    Some(task_id),
                    Some(&lid),
                    e,
                ),
            }
        }
    }

    /// Tasks seen in more than one table: read again, consistently; report those still there.
    async fn in_two_tables(&mut self) -> Result<(), CheckError> {
        let mut suspects: Vec<(String, String)> = self
            .seen
            .iter()
            .filter(|(_, (bits, _))| bits.count_ones() > 1)
            .map(|(id, (_, l))| (id.clone(), l.clone()))
            .collect();
        suspects.sort();
        for (task_id, labourer_id) in suspects {
            let mut found = Vec::new();
            for table in [Table::Tasks, Table::Retry, Table::Closed] {
                let name = self.table_name(table).to_string();
                let mut get = self
                    .dynamo
                    .get_item()
                    .table_name(&name)
                    .consistent_read(true)
                    .projection_expression("#t")
                    .expression_attribute_names("#t", self.f("task_id"))
                    .key(self.f("task_id"), AttributeValue::S(task_id.clone()));
                if table == Table::Retry {
                    get = get.key(self.f("labourer_id"), AttributeValue::S(labourer_id.clone()));
                }
                let out = get.send().await.map_err(|e| CheckError::Dynamo {
                    operation: "GetItem",
                    table: name.clone(),
                    message: render_error(&e),
                })?;
                self.cost.get_requests += 1;
                // Projected, a consistent read of a small item: 1 unit.
                self.budget.spend(1.0).await;
                self.cost.read_capacity_units += 1.0;
                if out.item().is_some() {
                    found.push(name);
                }
            }
            if found.len() > 1 {
                let labourer = (!labourer_id.is_empty()).then_some(labourer_id.clone());
                self.findings.push(Finding {
                    kind: FindingKind::InTwoTables,
                    location: found.join(" + "),
                    task_id: Some(task_id.clone()),
                    key: None,
                    labourer_id: labourer,
                    detail: format!("task is in {} tables at once: {}", found.len(), found.join(", ")),
                });
            }
        }
        Ok(())
    }

    /// Queue files stuck in the Scheduler's bucket. Returns the number of queue files.
    async fn queue_files(&mut self, q: &QueueFiles) -> Result<u64, CheckError> {
        let prefix = if q.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", q.prefix.trim_end_matches('/'))
        };
        // name → (last modified, locked); checkpoints keyed by their locked file's name.
        let mut files: BTreeMap<String, i64> = BTreeMap::new();
        let mut checkpoints: HashMap<String, i64> = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let out =
                q.s3.list_objects_v2()
                    .bucket(&q.bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| CheckError::S3 {
                        bucket: q.bucket.clone(),
                        prefix: prefix.clone(),
                        message: render_error(&e),
                    })?;
            self.cost.s3_list_requests += 1;
            for object in out.contents() {
                let Some(key) = object.key() else { continue };
                let name = &key[prefix.len()..];
                if name.contains('/') {
                    continue; // not a queue file of this prefix
                }
                let modified = object.last_modified().map(|t| t.secs()).unwrap_or(self.now);
                match name.strip_suffix(".checkpoint") {
                    Some(file) if name.starts_with("locked_") => {
                        checkpoints.insert(format!("{prefix}{file}"), modified);
                    }
                    _ => {
                        files.insert(key.to_string(), modified);
                    }
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        let limit = self.opts.scheduler_max_run_secs;
        for (key, modified) in &files {
            let locked = key[prefix.len()..].starts_with("locked_");
            let last = checkpoints.get(key).map_or(*modified, |c| (*c).max(*modified));
            let age = self.now.saturating_sub(last);
            if age <= limit {
                continue;
            }
            let (kind, detail) = if locked {
                (
                    FindingKind::QueueFileLockedTooLong,
                    format!(
                        "locked (and last checkpointed) {age} s ago, longer than a Scheduler can run ({limit} s): \
                         its Scheduler died; resume it: `sosw resume {0}` (the Scheduler invoked with \
                         {{\"file_name\": \"{0}\"}})",
                        &key[prefix.len() + "locked_".len()..]
                    ),
                )
            } else {
                (
                    FindingKind::QueueFileNotPickedUp,
                    format!(
                        "handed over {age} s ago and not taken by a sibling Scheduler within {limit} s: its \
                         continuation was lost; resume it: `sosw resume {0}` (the Scheduler invoked with \
                         {{\"file_name\": \"{0}\"}})",
                        &key[prefix.len()..]
                    ),
                )
            };
            self.findings.push(Finding {
                kind,
                location: format!("s3://{}", q.bucket),
                task_id: None,
                key: Some(key.clone()),
                labourer_id: None,
                detail,
            });
        }
        Ok(files.len() as u64)
    }

    /// Failed Scheduler jobs waiting in `queue` (name or URL).
    async fn failed_jobs(
        &mut self,
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
    ) -> Result<FailedJobs, CheckError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let sqs_err = |operation: &'static str, message: String| CheckError::Sqs {
            operation,
            queue: queue.to_string(),
            message,
        };
        let queue_url = if queue.starts_with("https://") || queue.starts_with("http://") {
            queue.to_string()
        } else {
            sqs.get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| sqs_err("GetQueueUrl", render_error(&e)))?
                .queue_url()
                .unwrap_or_default()
                .to_string()
        };
        let out = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sqs_err("GetQueueAttributes", render_error(&e)))?;
        let count = |name: A| -> Result<u64, CheckError> {
            match out.attributes().and_then(|a| a.get(&name)) {
                None => Ok(0),
                Some(v) => v.parse::<u64>().map_err(|e| {
                    sqs_err(
                        "GetQueueAttributes",
                        format!("{} is `{v}`, not a count: {e}", name.as_str()),
                    )
                }),
            }
        };
        let jobs = FailedJobs {
            waiting: count(A::ApproximateNumberOfMessages)?,
            in_flight: count(A::ApproximateNumberOfMessagesNotVisible)?,
            queue_url: queue_url.clone(),
        };
        if jobs.waiting + jobs.in_flight > 0 {
            self.findings.push(Finding {
                kind: FindingKind::FailedJobsWaiting,
                location: queue_url,
                task_id: None,
                key: None,
                labourer_id: None,
                detail: format!(
                    "{} failed Scheduler job(s) waiting ({} being read): each message is a job that did not \
                     become tasks; read it, fix the cause, submit it again",
                    jobs.waiting, jobs.in_flight
                ),
            });
        }
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_waits_until_the_average_is_within_max_rcu() {
        // 100 units at 50 a second are due at 2 s: after 0.5 s, wait 1.5 s more.
        assert_eq!(
            wait_for(100.0, Duration::from_millis(500), 50.0),
            Duration::from_millis(1500)
        );
        // Behind schedule: no wait.
        assert_eq!(wait_for(10.0, Duration::from_secs(1), 50.0), Duration::ZERO);
    }

    #[test]
    fn pages_hold_about_one_second_of_budget() {
        // 0.5 unit a row, 50 units a second: 100 rows a page.
        assert_eq!(next_page(50.0, 100, 50.0), 100);
        // Big rows: never below one row a page.
        assert_eq!(next_page(500.0, 1, 50.0), 1);
        // Tiny rows: capped.
        assert_eq!(next_page(0.5, 10_000, 50.0), MAX_PAGE);
        assert_eq!(next_page(0.0, 0, 50.0), MAX_PAGE);
    }

    #[test]
    fn rcu_is_estimated_as_dynamodb_counts_a_scan() {
        let item: Item = [("task_id".to_string(), AttributeValue::S("x".repeat(5000)))].into();
        // 5,007 bytes: 2 units of 4 KB, halved.
        assert_eq!(estimated_rcu(&[item]), 1.0);
        assert_eq!(estimated_rcu(&[]), 0.5);
    }

    #[test]
    fn finding_kinds_have_stable_snake_case_names() {
        let names: Vec<String> = [
            FindingKind::InTwoTables,
            FindingKind::RowDoesNotParse,
            FindingKind::PayloadNotObject,
            FindingKind::PayloadTooLarge,
            FindingKind::UnknownLabourer,
            FindingKind::QueuePositionNotBelowNow,
            FindingKind::GreenfieldBeyondInvokedRange,
            FindingKind::AttemptsBeyondMax,
            FindingKind::ClosedWithoutClosedAt,
            FindingKind::QueueFileLockedTooLong,
            FindingKind::QueueFileNotPickedUp,
            FindingKind::FailedJobsWaiting,
        ]
        .iter()
        .map(|k| serde_json::to_value(k).unwrap().as_str().unwrap().to_string())
        .collect();
        assert_eq!(
            names,
            [
                "in_two_tables",
                "row_does_not_parse",
                "payload_not_object",
                "payload_too_large",
                "unknown_labourer",
                "queue_position_not_below_now",
                "greenfield_beyond_invoked_range",
                "attempts_beyond_max",
                "closed_without_closed_at",
                "queue_file_locked_too_long",
                "queue_file_not_picked_up",
                "failed_jobs_waiting"
            ]
        );
    }
}
