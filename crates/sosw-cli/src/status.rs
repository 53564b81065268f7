//! `sosw status`: per labourer, where its tasks are and what the orchestrator would do now.

use crate::ctx::{hint, Ctx};
use clap::Args;
use serde::Serialize;
use sosw_core::ecology::{default_invocation_coefficients, desired_invocations, CloudWatchMetrics};
use sosw_core::{EcologyManager, SystemClock};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `sosw status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
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
    pub would_invoke: u64,
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
            would_invoke: desired_invocations(l.max_simultaneous_invocations, &coefficients, health, running),
        });
    }
    Ok(out)
}

/// Render a table for people.
pub fn table(rows: &[LabourerStatus]) -> String {
    let mut s = format!(
        "{:<28} {:>6} {:>8} {:>8} {:>8} {:>10} {:>9} {:>12}\n",
        "LABOURER", "HEALTH", "QUEUED", "RUNNING", "EXPIRED", "COMPLETED", "RETRYING", "WOULD INVOKE"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<28} {:>6} {:>8} {:>8} {:>8} {:>10} {:>9} {:>12}\n",
            r.labourer_id,
            r.health,
            r.queued,
            r.running,
            r.expired,
            r.completed_not_archived,
            r.retrying,
            r.would_invoke
        ));
    }
    if rows.is_empty() {
        s.push_str(
            "(no labourers configured: add them to `task_config.labourers` in sosw_essential_config)\n",
        );
    }
    s
}

/// Run `sosw status`.
pub async fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load("sosw_orchestrator", crate::ctx::custom_layer(&args.config)?).await?;
    let rows = collect(&ctx).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}
