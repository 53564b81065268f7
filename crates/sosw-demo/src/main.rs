//! `sosw-demo`: the whole sosw orchestration lifecycle on this machine, no AWS account
//! (run it through `scripts/demo`).
//!
//! A developer tool, not part of the installed product: it needs this repository's checkout (the
//! CloudFormation templates of `cloudformation/`, the `.venv` with moto, `cargo lambda`, and the
//! essentials built into `target/debug`), so it is built from the workspace and never shipped.
//!
//! | module | what it holds |
//! |---|---|
//! | [`demo`] | moto + `cargo lambda watch`, a job, live progress, a summary that must balance |
//! | [`progress`] | the terminal progress bar (shared with `sosw submit --wait`) |

use clap::Parser;
use std::process::ExitCode;

mod demo;
// The `sosw` CLI's progress bar, compiled here too rather than copied.
#[path = "../../sosw-cli/src/progress.rs"]
mod progress;

#[derive(Parser)]
#[command(
    name = "sosw-demo",
    about = "The whole orchestration lifecycle on this machine: local AWS, Lambda emulator, a job, a summary."
)]
struct Cli {
    #[command(flatten)]
    args: demo::DemoArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(demo::run(&cli.args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sosw-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
