//! `sosw retry-dead --labourer ID [--since ...]`: put dead tasks back at the front of the queue,
//! with their attempts reset.

use crate::ctx::{hint, Ctx};
use crate::exit::Exit;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `sosw retry-dead`.
#[derive(Args)]
pub struct RetryDeadArgs {
    /// The labourer whose dead tasks to retry.
    #[arg(long)]
    labourer: String,
    /// Only tasks closed at or after this time: epoch seconds, YYYY-MM-DD, or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Parse `--since`.
pub fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    anyhow::bail!("--since `{s}`: expected epoch seconds, YYYY-MM-DD or an RFC 3339 time")
}

/// Revive dead tasks; returns how many went back to the queue.
pub async fn revive(ctx: &Ctx, labourer: &str, since: i64) -> anyhow::Result<usize> {
    let l = ctx.labourer(labourer)?;
    let dead = ctx
        .tasks
        .dead_tasks(&l.id, since)
        .await
        .map_err(|e| hint(e.into()))?;
    let mut greenfield = ctx.tasks.oldest_greenfield(&l.id).await?;
    let mut revived = 0;
    for t in &dead {
        greenfield -= 1;
        if ctx.tasks.revive_dead(t, greenfield).await? {
            revived += 1;
        }
    }
    Ok(revived)
}

/// What `sosw retry-dead --json` prints.
#[derive(Debug, Serialize)]
pub struct Revived {
    /// The labourer.
    pub labourer_id: String,
    /// `--since` as epoch seconds (0 without it).
    pub since: i64,
    /// Dead tasks put back at the front of the queue.
    pub revived: usize,
}

/// Run `sosw retry-dead`.
pub async fn run(args: &RetryDeadArgs, json: bool) -> anyhow::Result<Exit> {
    let ctx = Ctx::load("sosw_scavenger", crate::ctx::custom_layer(&args.config)?).await?;
    let since = args.since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
    let revived = revive(&ctx, &args.labourer, since).await?;
    if json {
        crate::output::print_json(&Revived {
            labourer_id: args.labourer.clone(),
            since,
            revived,
        })?;
    } else {
        println!(
            "{revived} dead task(s) of `{}` put back at the front of the queue",
            args.labourer
        );
    }
    Ok(Exit::Ok)
}
