//! Benchmark (prints figures): the cold start of each essential's release binary, driven by a
//! minimal Lambda Runtime API on loopback (`sosw_test_support::coldstart`), its config read from
//! moto's `config` table. Per essential, `--runs` cold starts (default 20): process start → first
//! `GET /runtime/invocation/next` (ready), → the answer to its first event; median and max; peak RSS
//! (`VmHWM`) after the first invocation. With `--breakdown`, one more run per essential at log
//! level `debug` (5 runs) prints where the milliseconds go, from when each log line arrived.
//!
//! Build first: `cargo build --release -p sosw-orchestrator -p sosw-scheduler -p sosw-scavenger
//! -p sosw-worker-assistant`; then `cargo bench -p sosw-tests --bench coldstart -- [--runs N]
//! [--bin-dir DIR] [--breakdown]` (default DIR: `$CARGO_TARGET_DIR/release`, else `target/release`).

mod common;

use serde_json::json;
use sosw_test_support::coldstart::{measure, median_max_ms, ColdStart};
use sosw_test_support::LocalAws;
use std::path::PathBuf;
use std::time::Duration;

/// The essentials: binary, function name, first event.
fn essentials() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("sosw_orchestrator", "sosw_orchestrator", "{}".into()),
        ("sosw_scavenger", "sosw_scavenger", "{}".into()),
        (
            "sosw_worker_assistant",
            "sosw_worker_assistant",
            // An unknown task: the same reads as a report, answered `ReportRefused`.
            json!({"action": "mark_task_as_completed", "task_id": "coldstart-unknown"}).to_string(),
        ),
        (
            "sosw_scheduler",
            "sosw_scheduler",
            json!({"lambda_name": "worker", "words": ["coldstart"], "isolate_words": true}).to_string(),
        ),
    ]
}

/// Milestones of one debug-level run, from when each log line arrived: the first line (process
/// start, tokio runtime, tracing), the first AWS request being built (SDK config: profile files,
/// region, credentials chain; the clients), ready (the config reads and the essential built).
struct Milestones {
    first_log: Duration,
    first_request: Duration,
    ready: Duration,
    answered: Duration,
    init_requests: usize,
}

fn milestones(cold: &ColdStart) -> Milestones {
    let first_log = cold.output.first().map(|(at, _)| *at).unwrap_or_default();
    let first_request = cold
        .output
        .iter()
        .find(|(_, l)| l.contains("rpc.method="))
        .map(|(at, _)| *at)
        .unwrap_or(cold.to_ready);
    let init_requests = cold
        .output
        .iter()
        .filter(|(at, l)| *at <= cold.to_ready && l.contains("entering 'serialization' phase"))
        .count();
    Milestones {
        first_log,
        first_request,
        ready: cold.to_ready,
        answered: cold.to_response,
        init_requests,
    }
}

fn print_breakdown(binary: &str, runs: &[Milestones]) {
    let med = |f: &dyn Fn(&Milestones) -> Duration| median_max_ms(&runs.iter().map(f).collect::<Vec<_>>()).0;
    println!(
        "| {binary} | {:.1} | {:.1} | {:.1} ({} requests) | {:.1} | {:.1} |",
        med(&|m| m.first_log),
        med(&|m| m.first_request.saturating_sub(m.first_log)),
        med(&|m| m.ready.saturating_sub(m.first_request)),
        runs.last().map(|m| m.init_requests).unwrap_or(0),
        med(&|m| m.answered.saturating_sub(m.ready)),
        med(&|m| m.ready),
    );
}

#[tokio::main]
async fn main() {
    let mut runs = 20usize;
    let mut bin_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sosw_test_support::repo_root().join("target"))
        .join("release");
    let mut show_breakdown = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--bin-dir" => bin_dir = PathBuf::from(args.next().expect("--bin-dir DIR")),
            "--breakdown" => show_breakdown = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let aws = LocalAws::start().await;
    let bucket = aws.deploy_queue_bucket().await;
    common::create_functions(&aws, &["worker"]).await;
    let labourers = json!({"task_config": {"labourers": {"worker": {"max_simultaneous_invocations": 10}}}});
    aws.put_config("sosw_orchestrator_config", &labourers).await;
    aws.put_config("sosw_scavenger_config", &labourers).await;
    let mut scheduler = labourers.clone();
    scheduler["queue_bucket"] = json!(bucket);
    scheduler["job_schema_variants"] = json!({"default": {"chunkable_attrs": [["word", {}]]}});
    aws.put_config("sosw_scheduler_config", &scheduler).await;

    let env = aws.env();
    println!("cold start, {runs} runs each, binaries in {}", bin_dir.display());
    println!("| essential | ready median ms | ready max ms | first answer median ms | first answer max ms | peak RSS MiB (max) | answer | binary size MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut breakdowns = Vec::new();
    for (binary, function, event) in essentials() {
        let path = bin_dir.join(binary);
        assert!(
            path.exists(),
            "{} is missing: build the release binaries first",
            path.display()
        );
        let mut ready = Vec::new();
        let mut answered = Vec::new();
        let mut rss = 0u64;
        let mut last = None;
        for _ in 0..runs {
            let cold = measure(&path, function, &env, &event, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{e}"));
            ready.push(cold.to_ready);
            answered.push(cold.to_response);
            rss = rss.max(cold.peak_rss_kib);
            last = Some(cold);
        }
        let last = last.expect("at least one run");
        let (rm, rx) = median_max_ms(&ready);
        let (am, ax) = median_max_ms(&answered);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        let answer = if last.succeeded {
            "response".to_string()
        } else {
            let kind: serde_json::Value = serde_json::from_str(&last.answer).unwrap_or_default();
            format!("error {}", kind["errorType"].as_str().unwrap_or("?"))
        };
        println!(
            "| {binary} | {rm:.1} | {rx:.1} | {am:.1} | {ax:.1} | {:.1} | {answer} | {size:.1} |",
            rss as f64 / 1024.0
        );
        if show_breakdown {
            let mut debug_env = env.clone();
            debug_env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "debug".into()));
            let runs: Vec<Milestones> = (0..5)
                .map(|_| {
                    let cold = measure(&path, function, &debug_env, &event, Duration::from_secs(30))
                        .unwrap_or_else(|e| panic!("{e}"));
                    if std::env::var_os("SOSW_COLDSTART_LOG").is_some() {
                        for (at, line) in &cold.output {
                            println!(
                                "    {:8.2}  {}",
                                at.as_secs_f64() * 1e3,
                                line.chars().take(160).collect::<String>()
                            );
                        }
                    }
                    milestones(&cold)
                })
                .collect();
            breakdowns.push((binary, runs));
        }
    }
    if !breakdowns.is_empty() {
        println!("\nwhere the milliseconds go (median of 5 runs at log level debug, which adds its own cost; SOSW_COLDSTART_LOG=1 prints the lines)");
        println!("| essential | process start, tokio runtime, tracing (→ first log line) | SDK config, credentials chain, clients (→ first request) | config reads, essential built (→ ready) | first invocation | ready |");
        println!("|---|---|---|---|---|---|");
        for (binary, runs) in &breakdowns {
            print_breakdown(binary, runs);
        }
    }
}
