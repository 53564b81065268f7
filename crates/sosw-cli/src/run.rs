//! `sosw run <essential> --event FILE`: run an essential's core once, locally, through the same
//! code path its Lambda uses (debugging, benchmarks). Like the Lambda handlers, an orchestrator or
//! scavenger run that could process no labourer at all exits non-zero (after printing its stats).

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;

/// Which essential.
#[derive(Clone, Copy, ValueEnum)]
pub enum Essential {
    /// The scheduler (the event is a job, or `{"file_name": ...}`).
    Scheduler,
    /// One orchestrator run (the event is ignored, as EventBridge's).
    Orchestrator,
    /// One scavenger run (the event is ignored, as EventBridge's).
    Scavenger,
    /// One worker report (the event is `{"action": "mark_task_as_completed", "task_id": ...}`).
    WorkerAssistant,
}

/// Arguments of `sosw run`.
#[derive(Args)]
pub struct RunArgs {
    /// The essential to run.
    essential: Essential,
    /// The event (JSON); default `{}`.
    #[arg(long)]
    event: Option<PathBuf>,
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// A far deadline: a local run is not cut short.
struct NoDeadline;
impl sosw_scheduler::TimeLeft for NoDeadline {
    fn remaining(&self) -> std::time::Duration {
        std::time::Duration::from_secs(15 * 60)
    }
}

/// Run `sosw run`.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let event: Value = match &args.event {
        Some(p) => serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{} is not valid JSON", p.display()))?,
        None => Value::Object(Default::default()),
    };
    let custom = crate::ctx::custom_layer(&args.config)?;
    let sdk = sosw_core::aws::load_sdk_config().await;
    let clock: std::sync::Arc<dyn sosw_core::Clock> = std::sync::Arc::new(sosw_core::SystemClock);
    let out = match args.essential {
        Essential::Scheduler => {
            let scheduler = sosw_scheduler::from_env(&sdk, "sosw_scheduler", custom, clock)
                .await
                .map_err(|e| crate::ctx::hint(anyhow::anyhow!(e)))?;
            let request_id = sosw_core::TaskId::generate().0;
            serde_json::to_value(scheduler.handle(&event, &request_id, &NoDeadline).await?)?
        }
        Essential::Orchestrator => {
            let orchestrator = sosw_orchestrator::from_env(&sdk, "sosw_orchestrator", custom, clock)
                .await
                .map_err(|e| crate::ctx::hint(anyhow::anyhow!(e)))?;
            let stats = orchestrator.run().await;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            if let Some(failure) = stats.failure() {
                anyhow::bail!(failure);
            }
            return Ok(());
        }
        Essential::Scavenger => {
            let scavenger = sosw_scavenger::from_env(&sdk, "sosw_scavenger", custom, clock)
                .await
                .map_err(|e| crate::ctx::hint(anyhow::anyhow!(e)))?;
            let stats = scavenger.run().await;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            if let Some(failure) = stats.failure() {
                anyhow::bail!(failure);
            }
            return Ok(());
        }
        Essential::WorkerAssistant => {
            let assistant = sosw_worker_assistant::from_env(&sdk, "sosw_worker_assistant", clock)
                .await
                .map_err(|e| crate::ctx::hint(anyhow::anyhow!(e)))?;
            assistant.handle(&event).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
