//! `sosw submit JOB.json`: invoke the scheduler with a job (asynchronously); `--wait` follows its
//! tasks until they are all archived (completed or dead).

use crate::ctx::{hint, Ctx};
use anyhow::Context as _;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use clap::Args;
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

/// Run `sosw submit`.
pub async fn run(args: &SubmitArgs) -> anyhow::Result<()> {
    let custom = crate::ctx::custom_layer(&args.config)?;
    let ctx = Ctx::load("sosw_scheduler", custom.clone()).await?;
    let text =
        std::fs::read_to_string(&args.job).with_context(|| format!("reading {}", args.job.display()))?;
    let job: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", args.job.display()))?;
    // Check locally first, as the Scheduler will: a rejected job fails here, naming the problem,
    // before anything is sent.
    let mut doc = sosw_scheduler::SchedulerConfig::defaults();
    sosw_core::config::merge(&mut doc, &ctx.document);
    let scheduler = sosw_scheduler::SchedulerConfig::from_document(doc).context("the scheduler's config")?;
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
    ctx.clients
        .lambda
        .invoke()
        .function_name(&args.function)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(job.to_string()))
        .send()
        .await
        .map_err(|e| hint(anyhow::anyhow!(sosw_core::error::render_error(&e))))
        .with_context(|| format!("invoking the scheduler `{}`", args.function))?;
    eprintln!(
        "submitted to `{}`: {tasks} task(s) for labourer `{labourer}`",
        args.function
    );
    if !args.wait {
        return Ok(());
    }
    let total = tasks as u64;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let (done, dead) = archived(&ctx, &labourer).await?;
        let (done, dead) = (done - before.0, dead - before.1);
        crate::progress::draw(done + dead, total, &format!("completed {done}  dead {dead}"));
        if done + dead >= total {
            eprintln!();
            println!("{done} completed, {dead} dead, of {total} scheduled");
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!();
            anyhow::bail!(
                "gave up after {} s: {} of {total} tasks archived",
                args.timeout,
                done + dead
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
