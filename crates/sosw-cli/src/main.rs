//! `sosw`: the command-line tool of sosw-rs.
//!
//! | command | what it does | module |
//! |---|---|---|
//! | `sosw plan --config CONFIG.json JOB.json` | the tasks a job would become, offline | [`plan`] |
//! | `sosw status [--json]` | per labourer: queued, running, expired, completed, retrying, health, would invoke; workers' async retries; failed scheduler jobs | [`status`] |
//! | `sosw submit JOB.json [--wait]` | invoke the scheduler; follow the tasks to the end | [`submit`] |
//! | `sosw task TASK_ID` | where a task is, its attributes and history | [`task`] |
//! | `sosw retry-dead --labourer ID [--since T]` | dead tasks back to the front of the queue | [`retry_dead`] |
//! | `sosw run <essential> [--event FILE]` | run an essential once, locally | [`run`] |
//! | `sosw config get\|put\|diff` | read, store and compare config documents | [`config_cmd`] |
//! | `sosw check [--json] [--max-rcu N]` | read-only fsck: counts per labourer and every inconsistency; exit 0 clean, 1 could not run, 2 usage, 3 problems found | [`check`] |
//!
//! AWS commands use the standard AWS environment (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`,
//! ...) and read config documents like the essentials do (`SOSW_CONFIG_SOURCE`, `SOSW_CONFIG_TABLE`).
//!
//! The offline demo is not here: it needs the repository checkout, so it is the developer tool
//! `sosw-demo` (crate `crates/sosw-demo`, run by `scripts/demo`).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod check;
mod config_cmd;
mod ctx;
mod plan;
mod progress;
mod retry_dead;
mod run;
mod status;
mod submit;
mod task;

#[derive(Parser)]
#[command(
    name = "sosw",
    version,
    about = "sosw-rs: the Serverless Orchestrator of Serverless Workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tasks a job would become, one JSON object per line, in queue order (no AWS access).
    Plan(plan::PlanArgs),
    /// Per labourer: queued, running, expired, completed, retrying, health, and what the orchestrator would invoke now.
    Status(status::StatusArgs),
    /// Invoke the scheduler with a job (asynchronously); --wait follows its tasks to the end.
    Submit(submit::SubmitArgs),
    /// Where a task is (queue, retry, archive), its attributes and its history.
    Task(task::TaskArgs),
    /// Put dead tasks of a labourer back at the front of its queue.
    RetryDead(retry_dead::RetryDeadArgs),
    /// Run an essential's core once, locally, through the same code path as its Lambda.
    Run(run::RunArgs),
    /// Read, store and compare the essentials' config documents (config table or SSM).
    Config(config_cmd::ConfigArgs),
    /// Read-only fsck of the installation: per labourer where tasks are, and every inconsistency.
    /// Exit codes: 0 clean, 1 the check could not run, 2 usage, 3 problems found.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(&args).map(|()| ExitCode::SUCCESS),
        other => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(async move {
                    let done = match other {
                        Command::Status(a) => status::run(&a).await,
                        Command::Submit(a) => submit::run(&a).await,
                        Command::Task(a) => task::run(&a).await,
                        Command::RetryDead(a) => retry_dead::run(&a).await,
                        Command::Run(a) => run::run(&a).await,
                        Command::Config(a) => config_cmd::run(&a).await,
                        Command::Check(a) => {
                            return check::run(&a).await.map(|clean| {
                                if clean {
                                    ExitCode::SUCCESS
                                } else {
                                    ExitCode::from(check::EXIT_PROBLEMS)
                                }
                            })
                        }
                        Command::Plan(_) => unreachable!("handled above"),
                    };
                    done.map(|()| ExitCode::SUCCESS)
                })
            }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sosw: {e:#}");
            ExitCode::FAILURE
        }
    }
}
