//! `sosw check`: a read-only fsck of an installation. The logic is [`sosw_core::check`]; this
//! module loads the config, prints the report (a table, or `--json`) and picks the exit code
//! ([`Exit`]): 0 clean, 1 the check could not run (message on stderr), 2 usage, 3 problems found
//! (listed on stdout).

use crate::ctx::{hint, Ctx};
use crate::exit::Exit;
use anyhow::{anyhow, Context as _};
use clap::Args;
use serde_json::Value;
use sosw_core::check::{self, CheckOptions, CheckReport, QueueFiles};
use sosw_core::config_source::ConfigSource;
use std::path::PathBuf;

/// Arguments of `sosw check`.
#[derive(Args)]
pub struct CheckArgs {
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Average DynamoDB read capacity units a second the scans may consume.
    #[arg(long, default_value_t = check::DEFAULT_MAX_RCU, value_name = "RCU", value_parser = positive)]
    max_rcu: f64,
    /// The Scheduler's on-failure SQS queue (name or URL); default: `failed_jobs_queue` of the config.
    #[arg(long, value_name = "NAME|URL")]
    failed_jobs_queue: Option<String>,
    /// The Scheduler's queue bucket; default: `queue_bucket` of sosw_scheduler_config.
    #[arg(long, value_name = "BUCKET")]
    queue_bucket: Option<String>,
    /// The key prefix of queue files; default: `s3_prefix` of sosw_scheduler_config.
    #[arg(long, value_name = "PREFIX")]
    s3_prefix: Option<String>,
    /// Do not look at the Scheduler's queue files (an installation without a Scheduler).
    #[arg(long, conflicts_with_all = ["queue_bucket", "s3_prefix"])]
    no_queue_files: bool,
    /// Seconds a Scheduler can run: queue files locked for longer are reported.
    #[arg(long, default_value_t = check::SCHEDULER_MAX_RUN_SECS, value_name = "SECS")]
    scheduler_max_run: i64,
    /// Seconds other essentials' clocks may run ahead of this machine's.
    #[arg(long, default_value_t = check::DEFAULT_CLOCK_SKEW_SECS, value_name = "SECS")]
    clock_skew: i64,
}

/// `--max-rcu`: a positive, finite number.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "`{text}` is not a positive number of read capacity units a second"
        )),
    }
}

fn string_key(document: &Value, key: &str, what: &str) -> anyhow::Result<Option<String>> {
    match &document[key] {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
        Value::String(_) => Ok(None),
        other => Err(anyhow!(
            "config key `{key}` must be {what} (a string), not {other}"
        )),
    }
}

/// Run `sosw check`: [`Exit::Ok`] when clean, [`Exit::Problems`] otherwise.
pub async fn run(args: &CheckArgs, json: bool) -> anyhow::Result<Exit> {
    let custom = crate::ctx::custom_layer(&args.config)?;
    let ctx = Ctx::load("sosw_orchestrator", custom.clone()).await?;
    let failed_jobs_queue = match &args.failed_jobs_queue {
        Some(q) => Some(q.clone()),
        None => string_key(&ctx.document, "failed_jobs_queue", "an SQS queue name or URL")?,
    };
    let queue_files = if args.no_queue_files {
        None
    } else {
        let sdk = sosw_core::aws::load_sdk_config().await;
        let scheduler: Value = ConfigSource::from_env(&sdk)?
            .load_essential(
                "sosw_scheduler",
                sosw_scheduler::SchedulerConfig::defaults(),
                custom,
            )
            .await
            .map_err(|e| hint(anyhow!(e)))
            .context("reading sosw_scheduler_config for the queue bucket (or pass --no-queue-files)")?;
        let bucket = match &args.queue_bucket {
            Some(b) => b.clone(),
            None => string_key(&scheduler, "queue_bucket", "a bucket name")?.ok_or_else(|| {
                anyhow!("no `queue_bucket` in sosw_scheduler_config: pass --queue-bucket or --no-queue-files")
            })?,
        };
        let prefix = match &args.s3_prefix {
            Some(p) => p.clone(),
            None => string_key(&scheduler, "s3_prefix", "a key prefix")?.unwrap_or_default(),
        };
        Some(QueueFiles {
            s3: ctx.clients.s3.clone(),
            bucket,
            prefix,
        })
    };
    let options = CheckOptions {
        max_rcu: args.max_rcu,
        queue_files,
        failed_jobs_queue,
        scheduler_max_run_secs: args.scheduler_max_run,
        clock_skew_secs: args.clock_skew,
    };
    let sdk = sosw_core::aws::load_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let report = check::check_with_sqs(&ctx.tasks, &options, Some(&sqs))
        .await
        .map_err(|e| hint(anyhow!(e)))?;
    if json {
        crate::output::print_json(&report)?;
    } else {
        print!("{}", table(&report));
    }
    Ok(Exit::problems_if(!report.is_clean()))
}

/// Render the report for people.
pub fn table(report: &CheckReport) -> String {
    let mut s = crate::output::table(
        &[
            "LABOURER",
            "QUEUED",
            "RUNNING",
            "EXPIRED",
            "RETRYING",
            "COMPLETED",
            "ARCHIVED",
            "DEAD",
            "QUARANTINED",
        ],
        report.labourers.iter().map(|l| {
            let name = if l.configured {
                l.labourer_id.clone()
            } else {
                format!("{} (not configured)", l.labourer_id)
            };
            [
                name,
                l.queued.to_string(),
                l.running.to_string(),
                l.expired.to_string(),
                l.retrying.to_string(),
                l.completed_not_archived.to_string(),
                l.archived_completed.to_string(),
                l.archived_dead.to_string(),
                l.quarantined.to_string(),
            ]
        }),
    );
    if let Some(n) = report.queue_files {
        s.push_str(&format!("queue files in the Scheduler's bucket: {n}\n"));
    }
    if let Some(f) = &report.failed_jobs {
        s.push_str(&format!(
            "failed jobs waiting: {} (in flight: {}) in {}\n",
            f.waiting, f.in_flight, f.queue_url
        ));
    }
    let c = &report.cost;
    s.push_str(&format!(
        "read {} rows in {} scan and {} get requests, {:.1} RCU{} ({:.1} s waiting for the budget)\n",
        c.items_read,
        c.scan_requests,
        c.get_requests,
        c.read_capacity_units,
        if c.rcu_estimated { " (estimated)" } else { "" },
        c.throttled_secs
    ));
    if report.findings.is_empty() {
        s.push_str("no problems found\n");
        return s;
    }
    s.push_str(&format!("\n{} problem(s):\n", report.findings.len()));
    s.push_str(&crate::output::text_table(
        &["PROBLEM", "WHERE", "DETAIL"],
        report.findings.iter().map(|f| {
            let what = f
                .task_id
                .as_ref()
                .map(|t| format!(" task {t}"))
                .or_else(|| f.key.as_ref().map(|k| format!(" key {k}")))
                .unwrap_or_default();
            [
                serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                format!("{}{what}", f.location),
                f.detail.clone(),
            ]
        }),
    ));
    s
}
