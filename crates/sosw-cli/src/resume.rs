//! `sosw resume FILE`: deliver a Scheduler queue file's continuation again — the fix for a queue
//! file left locked by a Scheduler that died on it (`sosw check`: `queue_file_locked_too_long`) or
//! handed over to a sibling that never picked it up (`queue_file_not_picked_up`). Every row that
//! already became a task is skipped (tasks are created once), so resuming is always safe.

use crate::ctx::{hint, Ctx};
use crate::exit::Exit;
use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use sosw_scheduler::queue::{QueueFileState, QueueStore};
use std::path::PathBuf;

/// Arguments of `sosw resume`.
#[derive(Args)]
pub struct ResumeArgs {
    /// The queue file, as `sosw check` names it (`tasks_queue_<request id>.txt`); a key, an
    /// `s3://` URL or the `locked_` name are taken too.
    file: String,
    /// The scheduler function.
    #[arg(long, default_value = "sosw_scheduler")]
    function: String,
    /// A config document layered over the ones in AWS (for `queue_bucket`, `s3_prefix`).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// What `sosw resume --json` prints.
#[derive(Debug, Serialize)]
pub struct Resumed {
    /// The scheduler function invoked.
    pub function: String,
    /// The continuation's `file_name`.
    pub file_name: String,
    /// Where the file was: `locked` or `handed_over`.
    pub state: QueueFileState,
    /// The queue bucket.
    pub bucket: String,
}

/// The `file_name` of a continuation, from what an operator pastes: the last path segment,
/// without the `locked_` prefix of a locked copy.
pub fn file_name(given: &str) -> anyhow::Result<String> {
    let base = given.rsplit('/').next().unwrap_or(given);
    let name = base.strip_prefix("locked_").unwrap_or(base);
    if name.is_empty() || name.ends_with(".checkpoint") {
        anyhow::bail!("`{given}` is not a queue file name (e.g. tasks_queue_<request id>.txt, as `sosw check` names it)");
    }
    Ok(name.to_string())
}

/// Run `sosw resume`.
pub async fn run(args: &ResumeArgs, json: bool) -> anyhow::Result<Exit> {
    let name = file_name(&args.file)?;
    let custom = crate::ctx::custom_layer(&args.config)?;
    let ctx = Ctx::load("sosw_scheduler", custom).await?;
    let config = ctx.scheduler_config()?;
    let queue = QueueStore::new(ctx.clients.s3.clone(), &config.queue_bucket, &config.s3_prefix);
    let state = queue
        .state(&name)
        .await
        .map_err(|e| hint(e.into()))?
        .with_context(|| {
            format!(
                "queue file `{name}` is not in s3://{}/{} (neither `locked_{name}` nor `{name}`): nothing to \
                 resume; `sosw check` lists the queue files that wait",
                config.queue_bucket,
                config.s3_prefix
            )
        })?;
    let event = serde_json::json!({"file_name": name});
    crate::ctx::invoke_scheduler(&ctx, &args.function, &event).await?;
    let resumed = Resumed {
        function: args.function.clone(),
        file_name: name,
        state,
        bucket: config.queue_bucket.clone(),
    };
    if json {
        crate::output::print_json(&resumed)?;
    } else {
        println!(
            "resumed `{}` ({}) with `{}`: rows already written are skipped",
            resumed.file_name,
            match state {
                QueueFileState::Locked => "locked",
                QueueFileState::HandedOver => "handed over",
            },
            resumed.function
        );
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_key_url_or_locked_name_becomes_the_continuations_file_name() {
        for given in [
            "tasks_queue_r1.txt",
            "locked_tasks_queue_r1.txt",
            "sosw/scheduler/locked_tasks_queue_r1.txt",
            "s3://bucket/sosw/scheduler/tasks_queue_r1.txt",
        ] {
            assert_eq!(file_name(given).unwrap(), "tasks_queue_r1.txt", "{given}");
        }
        for bad in [
            "",
            "s3://bucket/prefix/",
            "locked_",
            "locked_tasks_queue_r1.txt.checkpoint",
        ] {
            let err = file_name(bad).unwrap_err().to_string();
            assert!(err.contains("is not a queue file name"), "{bad}: {err}");
        }
    }
}
