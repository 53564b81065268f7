//! The demo: the whole orchestration lifecycle on this machine, with no AWS account.
//!
//! 1. the local AWS (moto) with the stacks of `cloudformation/` (storage) and sosw's config documents;
//! 2. the four essentials and the example worker as real Lambda functions under `cargo lambda watch`
//!    (routed by binary name; functions reach each other through it);
//! 3. a job submitted to the scheduler; orchestrator and scavenger triggered every `--interval`
//!    seconds in place of EventBridge's minute; the worker fails or times out on a share of tasks;
//! 4. live progress, then a summary that accounts for every task: completed + dead = scheduled.
//!
//! Exits non-zero if anything does not add up.

use anyhow::{bail, Context as _};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use clap::Args;
use serde_json::{json, Value};
use sosw_core::{SystemClock, TaskConfig, TaskManager};
use sosw_test_support::{repo_root, venv_bin, LocalAws};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The labourer of the demo: the example worker's binary name (cargo lambda watch routes by it).
pub const WORKER: &str = "sosw-example-worker";

/// Arguments of `sosw-demo`.
#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Tasks the job chunks into.
    #[arg(long, default_value_t = 300)]
    pub tasks: usize,
    /// Share of tasks on which the worker fails (0.0-1.0, deterministic per task).
    #[arg(long, default_value_t = 0.1)]
    pub fail_rate: f64,
    /// Share of tasks on which the worker runs past its expected duration.
    #[arg(long, default_value_t = 0.03)]
    pub timeout_rate: f64,
    /// Seconds between orchestrator and scavenger runs (EventBridge's minute, shortened).
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
    /// max_simultaneous_invocations of the worker.
    #[arg(long, default_value_t = 40)]
    pub max_simultaneous: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub deadline: u64,
    /// Print a line per round instead of redrawing a progress bar.
    #[arg(long)]
    pub plain: bool,
}

/// `cargo lambda watch`, in its own process group, stopped on drop.
struct LambdaEmulator {
    child: Child,
    port: u16,
}

impl LambdaEmulator {
    fn start(aws: &LocalAws, args: &DemoArgs) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(repo_root().join("target/sosw-demo-lambdas.log"))?;
        let mut cmd = Command::new(venv_bin("cargo-lambda"));
        cmd.args([
            "lambda",
            "watch",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--concurrency",
            "48",
        ])
        .current_dir(repo_root())
        .envs(aws.env())
        .env("AWS_ENDPOINT_URL_LAMBDA", format!("http://127.0.0.1:{port}"))
        .env("SOSW_CONFIG_SOURCE", "dynamo")
        .env("SOSW_WORKER_ASSISTANT_LAMBDA", "sosw_worker_assistant")
        .env("SOSW_EXAMPLE_FAIL_RATE", args.fail_rate.to_string())
        .env("SOSW_EXAMPLE_TIMEOUT_RATE", args.timeout_rate.to_string())
        .env("SOSW_EXAMPLE_TIMEOUT_SECS", "12")
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .context("starting `cargo lambda watch` (run scripts/setup)")?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("cargo lambda watch did not listen on port {port}; see target/sosw-demo-lambdas.log");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { child, port })
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        // The emulator runs each function as a child process: stop its whole process group (and
        // only that group: a pid of 0 or 1 here would signal far more than the emulator).
        if let Some(group) = i32::try_from(self.child.id())
            .ok()
            .filter(|pid| *pid > 1)
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, payload: &Value) -> anyhow::Result<Value> {
    let out = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(sosw_core::error::render_error(&e)))
        .with_context(|| format!("invoking `{function}`"))?;
    let body = out.payload.map(|b| b.into_inner()).unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if out.function_error.is_some() {
        bail!("`{function}` failed: {value}");
    }
    Ok(value)
}

/// Where the tasks of the worker are.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tally {
    pub queued: u64,
    pub running: u64,
    pub expired: u64,
    pub completed: u64,
    pub retrying: u64,
    pub archived: u64,
    pub dead: u64,
}

impl Tally {
    fn in_flight(&self) -> u64 {
        self.queued + self.running + self.expired + self.completed + self.retrying
    }
}

async fn tally(tasks: &TaskManager) -> anyhow::Result<Tally> {
    let l = tasks
        .register_labourer(WORKER)
        .expect("the demo labourer is configured");
    Ok(Tally {
        queued: tasks.queue_length(WORKER).await?,
        running: tasks.running_count(&l).await?,
        expired: tasks.expired_count(&l).await?,
        completed: tasks.completed_count(&l).await?,
        retrying: tasks.retry_count(WORKER).await?,
        archived: tasks.closed_count(WORKER, true).await?,
        dead: tasks.closed_count(WORKER, false).await?,
    })
}

/// The config documents the demo stores: `sosw_essential_config` and `<function name>_config` of
/// the essential they configure. An essential reads the document named after its function
/// (`AWS_LAMBDA_FUNCTION_NAME`, as Python sosw does); under `cargo lambda watch` a function is
/// named after its binary, and the binaries are named as the stacks of `cloudformation/` deploy
/// the functions (`sosw_scheduler`), so the demo stores `sosw_scheduler_config` and
/// `sosw_scavenger_config`, as a deployment does (docs/config.md).
/// Settings with a built-in default (queue_bucket) go in the essential's own document, which
/// overrides `sosw_essential_config` as in Python sosw.
pub fn config_documents(
    labourer: &Value,
    queue_bucket: &str,
    dead_task_topic: &str,
) -> Vec<(&'static str, Value)> {
    vec![
        (
            "sosw_essential_config",
            json!({
                "task_config": {"labourers": {WORKER: labourer}},
                "job_schema_variants": {"default": {"chunkable_attrs": [["item", {}]]}}
            }),
        ),
        (
            "sosw_scheduler_config",
            json!({"queue_bucket": queue_bucket, "rows_to_process": 100}),
        ),
        (
            "sosw_scavenger_config",
            json!({
                "sns_config": {"recipient": dead_task_topic, "subject": "sosw demo: dead task"},
                "retry_tasks_limit": 200
            }),
        ),
    ]
}

/// Run the lifecycle; returns the final tally and the number of tasks scheduled.
pub async fn lifecycle(args: &DemoArgs) -> anyhow::Result<(Tally, u64)> {
    let t0 = Instant::now();
    eprintln!("==> local AWS: moto on loopback, stacks from cloudformation/");
    let aws = LocalAws::start().await;
    let outputs = aws.deploy_storage().await;
    let output = |k: &str| {
        outputs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let labourer = json!({
        "max_simultaneous_invocations": args.max_simultaneous,
        "max_attempts": 3,
        // Short times so that expiry and retries happen within seconds, not minutes.
        "duration": 5, "cooldown": 2, "max_duration": 3
    });
    for (name, document) in
        config_documents(&labourer, &output("QueueBucketName"), &output("DeadTaskTopicArn"))
    {
        aws.put_config(name, &document).await;
    }
    eprintln!(
        "==> labourer `{WORKER}` configured: max {} at once, 3 attempts",
        args.max_simultaneous
    );

    eprintln!(
        "==> Lambda emulator: cargo lambda watch (a function not yet built is compiled on its first call)"
    );
    let emulator = LambdaEmulator::start(&aws, args)?;
    let lambda_conf = aws_sdk_lambda::config::Builder::from(aws.sdk_config())
        .endpoint_url(format!("http://127.0.0.1:{}", emulator.port))
        .build();
    let lambda = aws_sdk_lambda::Client::from_conf(lambda_conf);
    let tasks = TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        TaskConfig::from_user(&json!({"labourers": {WORKER: &labourer}}))?,
        Arc::new(SystemClock),
    );

    let items: Vec<String> = (0..args.tasks).map(|i| format!("item-{i:05}")).collect();
    let job = json!({"lambda_name": WORKER, "items": items, "isolate_items": true, "note": "sosw demo"});
    eprintln!("==> submitting a job of {} items to the scheduler", args.tasks);
    let scheduled = invoke(&lambda, "sosw_scheduler", &job).await?;
    let mut scheduled_count = scheduled["tasks_created"].as_u64().unwrap_or(0);
    // A big job may continue in sibling invocations; count what reached the queue.
    let started = Instant::now();
    while tally(&tasks).await?.queued < args.tasks as u64 && scheduled_count < args.tasks as u64 {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        scheduled_count = tally(&tasks).await?.queued;
    }
    eprintln!(
        "==> {} tasks queued; orchestrator and scavenger every {} s",
        scheduled_count.max(tally(&tasks).await?.queued),
        args.interval
    );
    let total = args.tasks as u64;
    let deadline = Instant::now() + Duration::from_secs(args.deadline);
    let mut round = 0;
    // A bar on a terminal; plain lines when stderr is piped (crate::progress decides).
    let mut progress = (!args.plain).then(|| crate::progress::Progress::on_stderr(total));
    let result = loop {
        round += 1;
        invoke(
            &lambda,
            "sosw_orchestrator",
            &json!({"source": "sosw demo", "round": round}),
        )
        .await?;
        invoke(
            &lambda,
            "sosw_scavenger",
            &json!({"source": "sosw demo", "round": round}),
        )
        .await?;
        let t = tally(&tasks).await?;
        let line = format!(
            "queued {:>4}  running {:>3}  expired {:>3}  completed {:>3}  retrying {:>3}  archived {:>4}  dead {:>3}",
            t.queued, t.running, t.expired, t.completed, t.retrying, t.archived, t.dead
        );
        match &mut progress {
            None => eprintln!("round {round:>3}: {line}"),
            Some(p) => p.set(t.archived + t.dead, &line),
        }
        if t.archived + t.dead >= total && t.in_flight() == 0 {
            break t;
        }
        if Instant::now() > deadline {
            if let Some(p) = &mut progress {
                p.finish();
            }
            bail!("gave up after {} s with tasks in flight: {t:?}", args.deadline);
        }
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    };
    if let Some(p) = &mut progress {
        p.finish();
    }
    drop(emulator);
    eprintln!("==> done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok((result, total))
}

/// Run the demo: the lifecycle, then a summary that must balance.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let (t, scheduled) = lifecycle(args).await?;
    println!(
        "summary: scheduled {scheduled}, archived completed {}, dead {}, in flight {}",
        t.archived,
        t.dead,
        t.in_flight()
    );
    if t.archived + t.dead != scheduled || t.in_flight() != 0 {
        bail!(
            "the books do not balance: completed {} + dead {} != scheduled {scheduled}",
            t.archived,
            t.dead
        );
    }
    println!(
        "every task accounted for: {} + {} = {scheduled}",
        t.archived, t.dead
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sosw_core::config_source::ConfigSource;

    /// Under `cargo lambda watch` the essentials are named after their binaries and read
    /// `<binary>_config`: the demo's documents must reach the Scheduler and the Scavenger so named,
    /// and carry the names a deployment reads: each binary is named as its stack names the
    /// function (the end-to-end proof is `tests/tests/lifecycle.rs`, which runs the demo).
    #[tokio::test]
    async fn the_demo_documents_are_named_as_the_emulated_and_the_deployed_essentials_read_them() {
        let labourer = json!({"max_simultaneous_invocations": 2});
        let documents = config_documents(&labourer, "demo-bucket", "arn:aws:sns:us-west-2:1:dead");
        let mut essentials = 0;
        for (name, _) in &documents {
            let function = name.strip_suffix("_config").expect("a config document name");
            if *name == "sosw_essential_config" {
                continue;
            }
            essentials += 1;
            let package = function.replace('_', "-");
            let manifest =
                std::fs::read_to_string(repo_root().join("crates").join(&package).join("Cargo.toml"))
                    .unwrap_or_else(|e| panic!("`{package}` is a workspace crate: {e}"));
            assert!(
                manifest.contains(&format!("[[bin]]\nname = \"{function}\"")),
                "crates/{package}'s binary (the emulated function) is `{function}`"
            );
            let stack =
                std::fs::read_to_string(repo_root().join("cloudformation").join(format!("{package}.yaml")))
                    .unwrap();
            assert!(
                stack.contains(&format!("FunctionName: !Sub \"${{NamePrefix}}{function}\"")),
                "cloudformation/{package}.yaml deploys the function `{function}`"
            );
        }
        assert_eq!(essentials, 2, "the Scheduler's and the Scavenger's documents");
        let source = ConfigSource::Overlay {
            base: Box::new(ConfigSource::None),
            documents: documents.into_iter().map(|(n, d)| (n.to_string(), d)).collect(),
        };
        let scheduler: Value = source
            .load_essential(
                "sosw_scheduler",
                json!({"queue_bucket": "built-in-default"}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(scheduler["queue_bucket"], "demo-bucket");
        assert_eq!(scheduler["task_config"]["labourers"][WORKER], labourer);
        let scavenger: Value = source
            .load_essential("sosw_scavenger", json!({"retry_tasks_limit": 1}), None)
            .await
            .unwrap();
        assert_eq!(scavenger["retry_tasks_limit"], 200);
        assert_eq!(
            scavenger["sns_config"]["recipient"],
            "arn:aws:sns:us-west-2:1:dead"
        );
    }
}
