//! `sosw status`: per labourer, where its tasks are and what the orchestrator would do now; a
//! warning for a labourer whose function lets Lambda retry failed asynchronous invocations
//! (sosw retries tasks itself, so Lambda's retries run a task twice); and how many failed
//! Scheduler jobs wait in its on-failure queue. Exit 3 ([`Exit::Problems`]) when there is a
//! warning or a failed job waiting. `--watch` repeats it until Ctrl-C: redrawn in place on a
//! terminal, a line (or, with `--json`, a JSON object) per round otherwise.

use crate::ctx::{hint, Ctx};
use crate::exit::Exit;
use clap::Args;
use serde::Serialize;
use sosw_core::ecology::{default_invocation_coefficients, desired_invocations, CloudWatchMetrics};
use sosw_core::{EcologyManager, SystemClock};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `sosw status`.
#[derive(Args)]
pub struct StatusArgs {
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The Scheduler's on-failure SQS queue (name or URL); default: `failed_jobs_queue` of the
    /// config (e.g. in sosw_essential_config). Its waiting messages are failed jobs.
    #[arg(long, value_name = "NAME|URL")]
    failed_jobs_queue: Option<String>,
    /// Run again every --interval seconds until Ctrl-C: on a terminal the table is redrawn in
    /// place; otherwise one line per round (with --json: one JSON object per line).
    #[arg(long)]
    watch: bool,
    /// Seconds between two rounds of --watch.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400), requires = "watch")]
    interval: u64,
    /// Stop --watch after this many rounds (for tests and scripts).
    #[arg(long, hide = true, value_name = "N", requires = "watch")]
    rounds: Option<u64>,
}

/// Lambda's asynchronous retries of a labourer's function.
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AsyncRetries {
    /// `MaximumRetryAttempts` of the function's EventInvokeConfig (`$LATEST`).
    Configured { maximum_retry_attempts: i32 },
    /// No EventInvokeConfig: Lambda's default, 2 retries.
    Default,
    /// It could not be read (function missing, access denied, ...).
    Unknown { reason: String },
}

impl AsyncRetries {
    /// The retries Lambda makes, when known.
    pub fn retries(&self) -> Option<i32> {
        match self {
            Self::Configured {
                maximum_retry_attempts,
            } => Some(*maximum_retry_attempts),
            Self::Default => Some(2),
            Self::Unknown { .. } => None,
        }
    }
}

/// Read a function's asynchronous retries (GetFunctionEventInvokeConfig on `$LATEST`).
pub async fn async_retries(lambda: &aws_sdk_lambda::Client, function: &str) -> AsyncRetries {
    match lambda
        .get_function_event_invoke_config()
        .function_name(function)
        .send()
        .await
    {
        Ok(out) => AsyncRetries::Configured {
            maximum_retry_attempts: out.maximum_retry_attempts().unwrap_or(2),
        },
        Err(e) => {
            let text = sosw_core::error::render_error(&e);
            // The same ResourceNotFoundException says "function not found" or "no config".
            if text.contains("EventInvokeConfig") && !text.contains("Function not found") {
                AsyncRetries::Default
            } else {
                AsyncRetries::Unknown { reason: text }
            }
        }
    }
}

/// A function's reserved concurrency (GetFunctionConcurrency): `None` when none is reserved (it
/// shares the account's unreserved pool) or it cannot be read (the retries' check reports an
/// unreadable function).
pub async fn reserved_concurrency(lambda: &aws_sdk_lambda::Client, function: &str) -> Option<i32> {
    lambda
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .ok()?
        .reserved_concurrent_executions()
}

/// The warning `sosw status` prints when a labourer may invoke more tasks at once than its
/// function's reserved concurrency lets run: Lambda throttles the rest (429), which the
/// Orchestrator counts as `throttled` and gives back (`sosw_throttled_invokes` fires).
pub fn concurrency_warning(
    labourer_id: &str,
    function: &str,
    max_simultaneous_invocations: u32,
    reserved: Option<i32>,
) -> Option<String> {
    let reserved = reserved?;
    if i64::from(reserved) >= i64::from(max_simultaneous_invocations) {
        return None;
    }
    Some(if reserved == 0 {
        format!(
            "labourer `{labourer_id}`: function `{function}` has a reserved concurrency of 0: Lambda \
             throttles every invocation, nothing of this labourer runs; remove the reservation or \
             set it to at least max_simultaneous_invocations ({max_simultaneous_invocations})"
        )
    } else {
        format!(
            "labourer `{labourer_id}`: max_simultaneous_invocations {max_simultaneous_invocations} exceeds \
             the reserved concurrency {reserved} of function `{function}`: Lambda throttles invocations \
             beyond {reserved} (the Orchestrator's `throttled` metric); lower max_simultaneous_invocations \
             to {reserved} or raise the reservation (`aws lambda put-function-concurrency --function-name \
             {function} --reserved-concurrent-executions {max_simultaneous_invocations}`)"
        )
    })
}

/// The warning `sosw status` prints for a labourer's asynchronous retries, if any.
pub fn retry_warning(labourer_id: &str, function: &str, retries: &AsyncRetries) -> Option<String> {
    match retries {
        AsyncRetries::Configured {
            maximum_retry_attempts: 0,
        } => None,
        AsyncRetries::Unknown { reason } => Some(format!(
            "labourer `{labourer_id}`: cannot read the asynchronous retries of function `{function}` \
             (GetFunctionEventInvokeConfig: {reason}); they must be 0"
        )),
        other => Some(format!(
            "labourer `{labourer_id}`: function `{function}` has {} asynchronous retries{}; set them \
             to 0 (AWS::Lambda::EventInvokeConfig MaximumRetryAttempts: 0, or `aws lambda \
             put-function-event-invoke-config --function-name {function} --maximum-retry-attempts 0`): \
             sosw retries failed tasks itself, so Lambda's retries run a task twice",
            other.retries().unwrap_or_default(),
            if *other == AsyncRetries::Default {
                " (Lambda's default)"
            } else {
                ""
            }
        )),
    }
}

/// Failed Scheduler jobs waiting in its on-failure queue.
#[derive(Debug, Serialize, Clone)]
pub struct FailedJobs {
    /// The queue URL.
    pub queue_url: String,
    /// `ApproximateNumberOfMessages`: failed jobs waiting.
    pub waiting: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: being read by someone right now.
    pub in_flight: u64,
}

/// Count the failed jobs in `queue` (a queue name or URL).
pub async fn failed_jobs(sqs: &aws_sdk_sqs::Client, queue: &str) -> anyhow::Result<FailedJobs> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let queue_url = if queue.starts_with("https://") || queue.starts_with("http://") {
        queue.to_string()
    } else {
        sqs.get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "the Scheduler's failed-jobs queue `{queue}`: {}",
                    sosw_core::error::render_error(&e)
                )
            })?
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
        .map_err(|e| {
            anyhow::anyhow!(
                "GetQueueAttributes on the Scheduler's failed-jobs queue `{queue_url}`: {}",
                sosw_core::error::render_error(&e)
            )
        })?;
    let count = |name: A| -> anyhow::Result<u64> {
        out.attributes()
            .and_then(|a| a.get(&name))
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|e| anyhow::anyhow!("queue `{queue_url}`: {} is `{v}`: {e}", name.as_str()))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(FailedJobs {
        waiting: count(A::ApproximateNumberOfMessages)?,
        in_flight: count(A::ApproximateNumberOfMessagesNotVisible)?,
        queue_url,
    })
}

/// Everything `sosw status` reports.
#[derive(Debug, Serialize, Clone)]
pub struct Status {
    /// Per labourer.
    pub labourers: Vec<LabourerStatus>,
    /// Failed Scheduler jobs (when a failed-jobs queue is configured).
    pub failed_jobs: Option<FailedJobs>,
    /// Problems an operator must fix.
    pub warnings: Vec<String>,
}

/// One labourer's figures.
#[derive(Debug, Serialize, Clone)]
pub struct LabourerStatus {
    pub labourer_id: String,
    pub health: u8,
    pub queued: u64,
    pub running: u64,
    pub expired: u64,
    pub completed_not_archived: u64,
    pub retrying: u64,
    /// Archived as dead (`<labourer>_0`): out of attempts, or quarantined (a row that could not be
    /// invoked or processed; `sosw task <id>` shows its `closed_reason`).
    pub dead: u64,
    pub would_invoke: u64,
    /// Lambda's asynchronous retries of the labourer's function (must be 0).
    pub async_retries: AsyncRetries,
    /// The labourer's `max_simultaneous_invocations`.
    pub max_simultaneous_invocations: u32,
    /// The function's reserved concurrency, when one is reserved (`null`: none, or unreadable).
    pub reserved_concurrency: Option<i32>,
}

/// Compute the status of every configured labourer.
pub async fn collect(ctx: &Ctx) -> anyhow::Result<Vec<LabourerStatus>> {
    let coefficients: BTreeMap<u8, f64> =
        serde_json::from_value(ctx.document["invocation_number_coefficient"].clone())
            .unwrap_or_else(|_| default_invocation_coefficients());
    let ecology = EcologyManager::new(
        Arc::new(CloudWatchMetrics(ctx.clients.cloudwatch.clone())),
        ctx.tasks.config().ecology_config.clone(),
        Arc::new(SystemClock),
    );
    let mut out = Vec::new();
    for l in ctx.tasks.register_labourers() {
        let t = &ctx.tasks;
        let health = ecology.labourer_health(&l).await.map_err(|e| hint(e.into()))?;
        let running = t.running_count(&l).await.map_err(|e| hint(e.into()))?;
        out.push(LabourerStatus {
            labourer_id: l.id.clone(),
            health: health.0,
            queued: t.queue_length(&l.id).await?,
            running,
            expired: t.expired_count(&l).await?,
            completed_not_archived: t.completed_count(&l).await?,
            retrying: t.retry_count(&l.id).await.map_err(|e| hint(e.into()))?,
            dead: t.closed_count(&l.id, false).await.map_err(|e| hint(e.into()))?,
            would_invoke: desired_invocations(l.max_simultaneous_invocations, &coefficients, health, running),
            async_retries: async_retries(&ctx.clients.lambda, &l.arn).await,
            max_simultaneous_invocations: l.max_simultaneous_invocations,
            reserved_concurrency: reserved_concurrency(&ctx.clients.lambda, &l.arn).await,
        });
    }
    Ok(out)
}

impl Status {
    /// Problems an operator must look at: warnings, or failed Scheduler jobs waiting
    /// (`sosw status` then exits 3).
    pub fn has_problems(&self) -> bool {
        !self.warnings.is_empty() || self.failed_jobs.as_ref().is_some_and(|f| f.waiting > 0)
    }
}

/// Render a table for people.
pub fn table(status: &Status) -> String {
    let rows = &status.labourers;
    let mut s = crate::output::table(
        &[
            "LABOURER",
            "HEALTH",
            "QUEUED",
            "RUNNING",
            "EXPIRED",
            "COMPLETED",
            "RETRYING",
            "DEAD",
            "WOULD INVOKE",
        ],
        rows.iter().map(|r| {
            [
                r.labourer_id.clone(),
                r.health.to_string(),
                r.queued.to_string(),
                r.running.to_string(),
                r.expired.to_string(),
                r.completed_not_archived.to_string(),
                r.retrying.to_string(),
                r.dead.to_string(),
                r.would_invoke.to_string(),
            ]
        }),
    );
    if rows.is_empty() {
        s.push_str(
            "(no labourers configured: add them to `task_config.labourers` in sosw_essential_config)\n",
        );
    }
    if let Some(f) = &status.failed_jobs {
        s.push_str(&format!(
            "failed jobs waiting: {} (in flight: {}) in {}\n",
            f.waiting, f.in_flight, f.queue_url
        ));
    }
    for w in &status.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}

/// One line for a round of `sosw status --watch` when stdout is not a terminal.
pub fn line(at: &str, status: &Status) -> String {
    let mut parts: Vec<String> = status
        .labourers
        .iter()
        .map(|r| {
            format!(
                "{}: health {} queued {} running {} expired {} completed {} retrying {} dead {} would_invoke {}",
                r.labourer_id,
                r.health,
                r.queued,
                r.running,
                r.expired,
                r.completed_not_archived,
                r.retrying,
                r.dead,
                r.would_invoke
            )
        })
        .collect();
    if let Some(f) = &status.failed_jobs {
        parts.push(format!("failed jobs waiting {}", f.waiting));
    }
    parts.push(format!("warnings {}", status.warnings.len()));
    format!("{at} {}", parts.join("; "))
}

/// Where `failed_jobs_queue` comes from: the flag, else the config.
fn failed_jobs_queue(args: &StatusArgs, ctx: &Ctx) -> anyhow::Result<Option<String>> {
    Ok(match &args.failed_jobs_queue {
        Some(q) => Some(q.clone()),
        None => match &ctx.document["failed_jobs_queue"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(q) if !q.is_empty() => Some(q.clone()),
            other => anyhow::bail!(
                "config key `failed_jobs_queue` must be an SQS queue name or URL (a string), not {other}"
            ),
        },
    })
}

/// One round: everything `sosw status` reports now.
async fn gather(ctx: &Ctx, queue: Option<&str>, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<Status> {
    let labourers = collect(ctx).await?;
    let failed_jobs = match queue {
        Some(q) => Some(failed_jobs(sqs, q).await.map_err(hint)?),
        None => None,
    };
    let warnings = labourers
        .iter()
        .flat_map(|l| {
            let function = ctx
                .tasks
                .register_labourer(&l.labourer_id)
                .map(|lab| lab.arn)
                .unwrap_or_else(|| l.labourer_id.clone());
            let retries = retry_warning(&l.labourer_id, &function, &l.async_retries);
            let concurrency = concurrency_warning(
                &l.labourer_id,
                &function,
                l.max_simultaneous_invocations,
                l.reserved_concurrency,
            );
            retries.into_iter().chain(concurrency)
        })
        .collect();
    Ok(Status {
        labourers,
        failed_jobs,
        warnings,
    })
}

/// Run `sosw status`: exit 3 when the (last) round found problems.
pub async fn run(args: &StatusArgs, json: bool) -> anyhow::Result<Exit> {
    let ctx = Ctx::load("sosw_orchestrator", crate::ctx::custom_layer(&args.config)?).await?;
    let queue = failed_jobs_queue(args, &ctx)?;
    let sqs = aws_sdk_sqs::Client::new(&sosw_core::aws::load_sdk_config().await);
    if !args.watch {
        let status = gather(&ctx, queue.as_deref(), &sqs).await?;
        if json {
            crate::output::print_json(&status)?;
        } else {
            print!("{}", table(&status));
        }
        return Ok(Exit::problems_if(status.has_problems()));
    }
    let redraw = !json && crate::output::stdout_is_terminal();
    let mut round = 0u64;
    // Listen for Ctrl-C from the start (a task, so the handler is installed before the first round).
    let (stop, mut interrupted) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = stop.send(tokio::signal::ctrl_c().await);
    });
    loop {
        round += 1;
        let status = gather(&ctx, queue.as_deref(), &sqs).await?;
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut out = std::io::stdout().lock();
        if json {
            let mut value = serde_json::to_value(&status)?;
            value["at"] = serde_json::Value::String(at);
            writeln!(out, "{}", serde_json::to_string(&value)?)?;
        } else if redraw {
            // Home and clear, then the table: redrawn in place.
            write!(
                out,
                "\x1b[H\x1b[2J{at}  every {} s, Ctrl-C to stop\n\n{}",
                args.interval,
                table(&status)
            )?;
        } else {
            writeln!(out, "{}", line(&at, &status))?;
        }
        out.flush()?;
        drop(out);
        let exit = Exit::problems_if(status.has_problems());
        if args.rounds.is_some_and(|n| round >= n) {
            return Ok(exit);
        }
        tokio::select! {
            stopped = &mut interrupted => {
                if let Ok(Err(e)) = stopped {
                    anyhow::bail!("listening for Ctrl-C: {e}");
                }
                return Ok(exit);
            }
            () = tokio::time::sleep(std::time::Duration::from_secs(args.interval)) => {}
        }
    }
}
