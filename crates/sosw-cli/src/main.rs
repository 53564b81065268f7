//! `sosw`: the command-line tool of sosw-rs. Every command, its flags, its JSON fields and its exit
//! codes: docs/cli.md.
//!
//! | command | what it does | module |
//! |---|---|---|
//! | `sosw plan --config CONFIG.json JOB.json` | the tasks a job would become, offline (JSON lines) | [`plan`] |
//! | `sosw status [--watch]` | per labourer: queued, running, expired, completed, retrying, health, would invoke; workers' async retries; failed scheduler jobs; exit 3 on problems | [`status`] |
//! | `sosw submit JOB.json [--wait]` | invoke the scheduler; follow the tasks to the end | [`submit`] |
//! | `sosw task TASK_ID` | where a task is, its attributes and history | [`task`] |
//! | `sosw retry-dead --labourer ID [--since T]` | dead tasks back to the front of the queue | [`retry_dead`] |
//! | `sosw run <essential> [--event FILE]` | run an essential once, locally | [`run`] |
//! | `sosw config get\|put\|diff` | read, store and compare config documents | [`config_cmd`] |
//! | `sosw check [--max-rcu N]` | read-only fsck: counts per labourer and every inconsistency; exit 3 on problems | [`check`] |
//! | `sosw completions <shell>` | a shell completion script | [`main`](self) |
//!
//! `--json` (before or after the command) makes every command print JSON with stable field names.
//! Exit codes ([`exit::Exit`]): 0 ok, 1 failure, 2 usage, 3 problems found.
//!
//! AWS commands use the standard AWS environment (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`,
//! ...) and read config documents like the essentials do (`SOSW_CONFIG_SOURCE`, `SOSW_CONFIG_TABLE`).
//!
//! The offline demo is not here: it needs the repository checkout, so it is the developer tool
//! `sosw-demo` (crate `crates/sosw-demo`, run by `scripts/demo`).

use clap::{CommandFactory, Parser, Subcommand};
use exit::Exit;
use std::process::ExitCode;

mod check;
mod config_cmd;
mod ctx;
mod exit;
mod output;
mod plan;
mod progress;
mod resume;
mod retry_dead;
mod run;
mod status;
mod submit;
mod task;

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 failure, 2 usage, 3 problems found (status, check, submit --wait).
Every command, its flags and its JSON fields: docs/cli.md.

Example:
  sosw status --json | jq '.labourers[] | {labourer_id, queued}'";

#[derive(Parser)]
#[command(
    name = "sosw",
    version,
    about = "sosw-rs: the Serverless Orchestrator of Serverless Workers",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Print JSON with stable field names (docs/cli.md) instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tasks a job would become, one JSON object per line, in queue order (no AWS access).
    #[command(
        after_help = "Example:\n  sosw plan --config sosw_scheduler_config.json --today 2026-01-31 job.json | wc -l"
    )]
    Plan(plan::PlanArgs),
    /// Per labourer: queued, running, expired, completed, retrying, health, and what the orchestrator
    /// would invoke now. Exit 3 when there are warnings or failed Scheduler jobs waiting.
    #[command(
        after_help = "Examples:\n  sosw status\n  sosw status --watch --interval 10\n  sosw status --json | jq '.labourers[] | select(.queued > 0)'"
    )]
    Status(status::StatusArgs),
    /// Invoke the scheduler with a job (asynchronously); --wait follows its tasks to the end
    /// (exit 3 when some died).
    #[command(after_help = "Example:\n  sosw submit job.json --wait --timeout 600")]
    Submit(submit::SubmitArgs),
    /// Deliver a Scheduler queue file's continuation again: the fix for a file `sosw check` finds
    /// locked too long or not picked up. Rows already written are skipped.
    #[command(
        after_help = "Example:\n  sosw resume tasks_queue_8d7f0c1e.txt\n  sosw check --json | jq -r '.findings[] | select(.kind | startswith(\"queue_file\")) | .key' | xargs -n1 sosw resume"
    )]
    Resume(resume::ResumeArgs),
    /// Where a task is (queue, retry, archive), its attributes and its history.
    #[command(after_help = "Example:\n  sosw task 3f2b6c1e-0d5a-4c47-9a51-8e1f0b7c2d90 --json | jq .state")]
    Task(task::TaskArgs),
    /// Put dead tasks of a labourer back at the front of its queue.
    #[command(after_help = "Example:\n  sosw retry-dead --labourer worker_a --since 2026-01-31")]
    RetryDead(retry_dead::RetryDeadArgs),
    /// Run an essential's core once, locally, through the same code path as its Lambda (prints JSON).
    #[command(after_help = "Examples:\n  sosw run orchestrator\n  sosw run scheduler --event job.json")]
    Run(run::RunArgs),
    /// Read, store and compare the essentials' config documents (config table or SSM).
    #[command(
        after_help = "Example:\n  sosw config diff sosw_scheduler --with sosw_scheduler_config=new.json"
    )]
    Config(config_cmd::ConfigArgs),
    /// Read-only fsck of the installation: per labourer where tasks are, and every inconsistency.
    /// Exit codes: 0 clean, 1 the check could not run, 2 usage, 3 problems found.
    #[command(after_help = "Example:\n  sosw check --max-rcu 50 --json > check.json || echo \"exit $?\"")]
    Check(check::CheckArgs),
    /// Print a shell completion script for sosw.
    #[command(
        after_help = "Examples:\n  sosw completions bash > ~/.local/share/bash-completion/completions/sosw\n  sosw completions zsh > \"${fpath[1]}/_sosw\"\n  sosw completions fish > ~/.config/fish/completions/sosw.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; a usage error to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage } else { Exit::Ok }.into();
        }
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Plan(args) => plan::run(&args).map(|()| Exit::Ok),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sosw", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        other => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(async move {
                    match other {
                        Command::Status(a) => status::run(&a, json).await,
                        Command::Submit(a) => submit::run(&a, json).await,
                        Command::Resume(a) => resume::run(&a, json).await,
                        Command::Task(a) => task::run(&a, json).await,
                        Command::RetryDead(a) => retry_dead::run(&a, json).await,
                        Command::Run(a) => run::run(&a).await.map(|()| Exit::Ok),
                        Command::Config(a) => config_cmd::run(&a, json).await.map(|()| Exit::Ok),
                        Command::Check(a) => check::run(&a, json).await,
                        Command::Plan(_) | Command::Completions { .. } => unreachable!("handled above"),
                    }
                })
            }),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("sosw: {e:#}");
            Exit::Failure.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_command(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{path} {}", sub.get_name());
            out.push((name.clone(), sub.clone()));
            every_command(sub, name, out);
        }
    }

    #[test]
    fn every_command_has_an_example_in_its_help() {
        let mut commands = vec![("sosw".to_string(), Cli::command())];
        every_command(&Cli::command(), "sosw".into(), &mut commands);
        assert!(commands.len() > 10, "{}", commands.len());
        for (name, cmd) in commands {
            if name.ends_with(" help") {
                continue; // clap's own `help` subcommand
            }
            let after = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(after.contains("Example"), "`{name} --help` has no example");
            assert!(after.contains("sosw "), "`{name} --help`: {after}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
