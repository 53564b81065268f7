//! `sosw`: the command-line tool of sosw-rs.
//!
//! | command | what it does | module |
//! |---|---|---|
//! | `sosw plan --config CONFIG.json JOB.json` | prints the tasks a job would become, offline | [`plan`] |

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod plan;

#[derive(Parser)]
#[command(name = "sosw", version, about = "sosw-rs: the Serverless Orchestrator of Serverless Workers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tasks a job would become, one JSON object per line, in queue order (no AWS access).
    Plan(plan::PlanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sosw: {e:#}");
            ExitCode::FAILURE
        }
    }
}
