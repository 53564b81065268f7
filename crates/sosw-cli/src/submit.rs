//! `sosw submit JOB.json`: invoke the scheduler with a job (asynchronously); `--wait` follows its
//! tasks until they are all archived (completed or dead).

use crate::ctx::{hint, Ctx};
use crate::exit::Exit;
use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `sosw submit`.
#[derive(Args)]
pub struct SubmitArgs {
    /// The job (the scheduler's event).
    job: PathBuf,
    /// The scheduler function.
    #[arg(long, default_value = "sosw_scheduler")]
    function: String,
    /// Follow the job's tasks with a progress bar until all are archived.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Archived (completed, dead) counts of a labourer.
pub async fn archived(ctx: &Ctx, labourer: &str) -> anyhow::Result<(u64, u64)> {
    Ok((
        ctx.tasks.closed_count(labourer, true).await?,
        ctx.tasks.closed_count(labourer, false).await?,
    ))
}

/// What `sosw submit --json` prints.
#[derive(Debug, Serialize)]
pub struct Submitted {
    /// The scheduler function invoked.
    pub function: String,
    /// The job's labourer.
    pub labourer_id: String,
    /// Tasks the job becomes.
    pub tasks: u64,
    /// With --wait: tasks archived as completed since the submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    /// With --wait: tasks archived as dead since the submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead: Option<u64>,
}

/// Run `sosw submit`: with --wait, exit 3 when some of the job's tasks died.
pub async fn run(args: &SubmitArgs, json: bool) -> anyhow::Result<Exit> {
    let custom = crate::ctx::custom_layer(&args.config)?;
    let ctx = Ctx::load("sosw_scheduler", custom.clone()).await?;
    let text =
        std::fs::read_to_string(&args.job).with_context(|| format!("reading {}", args.job.display()))?;
    let job: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", args.job.display()))?;
    // Check locally first, as the Scheduler will: a rejected job fails here, naming the problem,
    // before anything is sent.
    let scheduler = ctx.scheduler_config()?;
    let validator = sosw_scheduler::validate::JobValidator::offline(scheduler.task_config.clone());
    let tasks = sosw_scheduler::validate::check_job(
        &scheduler.document,
        &validator,
        &job,
        chrono::Utc::now().date_naive(),
    )
    .context("job rejected")?;
    let labourer = sosw_chunking::parse_job(&job)
        .context("job rejected")?
        .get("lambda_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let before = archived(&ctx, &labourer).await.map_err(hint)?;
    crate::ctx::invoke_scheduler(&ctx, &args.function, &job).await?;
    eprintln!(
        "submitted to `{}`: {tasks} task(s) for labourer `{labourer}`",
        args.function
    );
    let total = tasks as u64;
    let mut submitted = Submitted {
        function: args.function.clone(),
        labourer_id: labourer.clone(),
        tasks: total,
        completed: None,
        dead: None,
    };
    if !args.wait {
        if json {
            crate::output::print_json(&submitted)?;
        }
        return Ok(Exit::Ok);
    }
    let mut progress = crate::progress::Progress::on_stderr(total);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let (done, dead) = archived(&ctx, &labourer).await?;
        let (done, dead) = (done.saturating_sub(before.0), dead.saturating_sub(before.1));
        progress.set(done + dead, &format!("completed {done}  dead {dead}"));
        if done + dead >= total {
            progress.finish();
            if json {
                submitted.completed = Some(done);
                submitted.dead = Some(dead);
                crate::output::print_json(&submitted)?;
            } else {
                println!("{done} completed, {dead} dead, of {total} scheduled");
            }
            return Ok(Exit::problems_if(dead > 0));
        }
        if Instant::now() > deadline {
            progress.finish();
            anyhow::bail!(
                "gave up after {} s: {} of {total} tasks archived",
                args.timeout,
                done + dead
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
