//! `sosw plan`: the rows the Scheduler would queue for a job, exactly as Python sosw writes them
//! to its queue file, with no AWS access. The way to design chunking rules.

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
    let rows = sosw_chunking::plan_event(&config, &job, today).context("job rejected")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for row in &rows {
        writeln!(out, "{}", sosw_core::pyjson::dumps(row))?;
    }
    out.flush()?;
    Ok(())
}
