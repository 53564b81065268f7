//! `sosw plan`: the rows the Scheduler would queue for a job, exactly as Python sosw writes them
//! to its queue file, with no AWS access. The way to design chunking rules.
//!
//! The job is checked first exactly as the Scheduler checks it (see `sosw_scheduler::validate`):
//! a job the Scheduler would reject prints no row and fails with the Scheduler's error. Rows are
//! generated one at a time, twice (check, then print), so memory stays flat for any job size.

use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `sosw plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// The scheduler's config document (sosw's own format: `task_config.labourers`, `job_schema_variants`, ...).
    #[arg(long)]
    config: PathBuf,
    /// The date periods are computed from (YYYY-MM-DD); default: today (UTC).
    #[arg(long)]
    today: Option<chrono::NaiveDate>,
    /// The job: the scheduler's event (the job, or `{"job": ...}`); `-` reads standard input.
    job: PathBuf,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the job from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Run `sosw plan`.
pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    let config: serde_json::Value = serde_json::from_str(&read(&args.config)?)
        .with_context(|| format!("{} is not valid JSON", args.config.display()))?;
    let job_text = read(&args.job)?;
    // A job that is not JSON at all is passed on as a string, so the error is the scheduler's own.
    let job: serde_json::Value =
        serde_json::from_str(&job_text).unwrap_or_else(|_| serde_json::Value::String(job_text.clone()));
    let today = args.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let mut document = sosw_scheduler::SchedulerConfig::defaults();
    sosw_core::config::merge(&mut document, &config);
    let scheduler = sosw_scheduler::SchedulerConfig::from_document(document)
        .with_context(|| format!("{} is not a usable scheduler config", args.config.display()))?;
    let validator = sosw_scheduler::validate::JobValidator::offline(scheduler.task_config.clone());
    sosw_scheduler::validate::check_job(&scheduler.document, &validator, &job, today)
        .context("job rejected")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for row in sosw_chunking::plan_event_rows(&scheduler.document, &job, today).context("job rejected")? {
        writeln!(out, "{}", sosw_core::pyjson::dumps(&row.context("job rejected")?))?;
    }
    out.flush()?;
    Ok(())
}
