//! Benchmark (prints figures, asserts only that every task went through): the whole task lifecycle
//! on one moto behind one request counter, in one process — Scheduler (a job of N tasks) →
//! Orchestrator (invokes them) → the worker SDK reporting each task through the Worker Assistant →
//! Scavenger (archives them). Meta rows on. Prints one table: AWS requests, DynamoDB WCU and RCU
//! (computed from item sizes, see `sosw_test_support::capacity`), items read and client CPU
//! (`getrusage` of this process: the essentials' work, not moto's) per task, per step and in total.
//!
//! Then the Orchestrator's idle cost with `--archived` tasks (default 100,000) seeded into
//! `sosw_closed_tasks` by batch writes, on a fresh moto; and for each `--queue-depth D`, the
//! Scheduler's cost per task for 1,000 more tasks behind D queued ones (seeded by batch writes).
//! Each part starts its own moto, stopped when the part ends: memory stays bounded.
//!
//! Run: `cargo bench -p sosw-tests --bench lifecycle -- [N ...] [--archived M] [--json FILE]
//! [--peer FILE] [--queue-depth D ...]` (default N = 1000 10000). `--peer` takes the JSON of Python sosw's harness
//! (`../shared/bench-peer/sosw_bench.py --out`) and prints the two side by side with the ratio per
//! step; `scripts/bench` runs both in one go.

mod common;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::ecology::CloudWatchMetrics;
use sosw_core::invoker::{Invoker, LambdaInvoker};
use sosw_core::InvokeError;
use sosw_core::{Clock, EcologyManager, MetaHandler, SystemClock, TaskManager};
use sosw_orchestrator::{Orchestrator, OrchestratorConfig};
use sosw_scavenger::{RecordingNotifier, Scavenger, ScavengerConfig};
use sosw_scheduler::{Scheduler, SchedulerConfig, TimeLeft};
use sosw_test_support::capacity::{CapacityCounter, CapacityTotals};
use sosw_test_support::LocalAws;
use sosw_worker::{LambdaReporter, Report, Reporter};
use sosw_worker_assistant::WorkerAssistant;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LABOURER: &str = "worker";
const ASSISTANT: &str = "sosw_worker_assistant";

struct Forever;
impl TimeLeft for Forever {
    fn remaining(&self) -> Duration {
        Duration::from_secs(900)
    }
}

/// The counting proxy runs in this process: on its own runtime, whose threads are named
/// `sosw-proxy`, so that their CPU can be left out of the client's.
fn proxy_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sosw-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime")
    })
}

/// moto behind the counting proxy, the proxy on [`proxy_runtime`].
async fn start_counted() -> LocalAws {
    proxy_runtime()
        .spawn(LocalAws::start_counted())
        .await
        .expect("start moto and the proxy")
}

/// CPU time of the proxy's threads (`/proc/self/task/*/schedstat`, nanoseconds on CPU).
fn proxy_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "sosw-proxy"))
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()))
        .map(Duration::from_nanos)
        .sum()
}

/// This process's CPU time (`getrusage`), less the proxy's: the essentials' work (and the SDK's).
fn cpu() -> Duration {
    process_cpu().saturating_sub(proxy_cpu())
}

fn process_cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    t(u.user_time()) + t(u.system_time())
}

/// One step's figures.
#[derive(Debug, Clone, Default)]
struct Step {
    name: String,
    requests: u64,
    by_op: std::collections::BTreeMap<String, u64>,
    items: u64,
    capacity: CapacityTotals,
    cpu: Duration,
    wall: Duration,
}

impl Step {
    fn add(&mut self, o: &Step) {
        self.requests += o.requests;
        self.items += o.items;
        self.capacity.wcu_halves += o.capacity.wcu_halves;
        self.capacity.rcu_halves += o.capacity.rcu_halves;
        self.capacity.largest_item = self.capacity.largest_item.max(o.capacity.largest_item);
        self.cpu += o.cpu;
        self.wall += o.wall;
        for (k, v) in &o.by_op {
            *self.by_op.entry(k.clone()).or_default() += v;
        }
    }
    fn json(&self, n: u64) -> Value {
        let per = |x: f64| x / n as f64;
        json!({
            "step": self.name, "requests": self.requests, "requests_per_task": per(self.requests as f64),
            "wcu_per_task": per(self.capacity.wcu()), "rcu_per_task": per(self.capacity.rcu()),
            "items_read_per_task": per(self.items as f64), "cpu_ms_per_task": per(self.cpu.as_secs_f64() * 1e3),
            "wall_s": self.wall.as_secs_f64(), "by_op": self.by_op, "largest_item": self.capacity.largest_item,
        })
    }
}

struct Probe<'a> {
    aws: &'a LocalAws,
    capacity: &'a CapacityCounter,
    cap0: CapacityTotals,
    cpu0: Duration,
    wall0: Instant,
}

impl<'a> Probe<'a> {
    fn begin(aws: &'a LocalAws, capacity: &'a CapacityCounter) -> Self {
        aws.reset_counts();
        Self {
            aws,
            capacity,
            cap0: capacity.totals(),
            cpu0: cpu(),
            wall0: Instant::now(),
        }
    }
    fn end(self, name: &str) -> Step {
        let (wall, cpu) = (self.wall0.elapsed(), cpu() - self.cpu0);
        let c = self.aws.counts();
        Step {
            name: name.into(),
            requests: c.requests,
            by_op: c.by_op,
            items: c.items_returned,
            capacity: self.capacity.totals().since(&self.cap0),
            cpu,
            wall,
        }
    }
}

/// Forwards to Lambda and keeps each payload: what the worker receives.
#[derive(Debug)]
struct Recording {
    inner: LambdaInvoker,
    payloads: Mutex<Vec<String>>,
}

impl Invoker for Recording {
    fn invoke_event<'a>(
        &'a self,
        function: &'a str,
        payload: String,
    ) -> futures::future::BoxFuture<'a, Result<(), InvokeError>> {
        Box::pin(async move {
            self.inner.invoke_event(function, payload.clone()).await?;
            self.payloads.lock().expect("not poisoned").push(payload);
            Ok(())
        })
    }
}

/// The worker's report as deployed: the worker SDK invokes the Worker Assistant Lambda (counted),
/// and the Worker Assistant handles that event (in this process, as Lambda would run it).
struct ThroughAssistant {
    lambda: LambdaReporter,
    assistant: WorkerAssistant,
}

impl Reporter for ThroughAssistant {
    fn send<'a>(&'a self, event: Value) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.lambda.send(event.clone()).await?;
            self.assistant
                .handle(&event)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

fn task_config(n: u64) -> Value {
    json!({"labourers": {LABOURER: {"max_simultaneous_invocations": n + 10, "max_duration": 900}}})
}

async fn lifecycle(n: u64) -> Vec<Step> {
    let aws = start_counted().await;
    let bucket = aws.deploy_queue_bucket().await;
    common::create_functions(&aws, &[LABOURER, ASSISTANT]).await;
    let capacity = CapacityCounter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
            .interceptor(capacity.clone())
            .build(),
    );
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let meta = || {
        Arc::new(MetaHandler::new(
            dynamo.clone(),
            &MetaHandlerConfig::default(),
            clock.clone(),
        ))
    };
    let mut steps = Vec::new();

    // 1. Scheduler: one job of n tasks (one per word).
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({"queue_bucket": bucket, "task_config": task_config(n),
                "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}}),
    );
    let config = SchedulerConfig::from_document(doc).expect("scheduler config");
    let tasks = TaskManager::new(
        dynamo.clone(),
        lambda.clone(),
        config.task_config.clone(),
        clock.clone(),
    );
    let s3 = aws.s3();
    let scheduler = Scheduler::new(
        tasks,
        s3,
        meta(),
        Arc::new(sosw_core::invoker::RecordingInvoker::default()),
        config,
        "sosw_scheduler",
        None,
    );
    let words: Vec<String> = (0..n).map(|i| format!("w{i:06}")).collect();
    let job = json!({"lambda_name": LABOURER, "words": words, "isolate_words": true});
    let probe = Probe::begin(&aws, &capacity);
    let stats = scheduler.handle(&job, "bench", &Forever).await.expect("schedule");
    steps.push(probe.end("schedule"));
    assert_eq!(stats.tasks_created as u64, n, "every task scheduled");

    // 2. Orchestrator: one run invokes them all.
    let mut doc = OrchestratorConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({"task_config": task_config(n), "max_in_flight": 64}),
    );
    let config: OrchestratorConfig =
        sosw_core::config::from_value("bench", doc).expect("orchestrator config");
    let tasks = TaskManager::new(
        dynamo.clone(),
        lambda.clone(),
        config.task_config.clone(),
        clock.clone(),
    );
    let ecology = EcologyManager::new(
        Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
            aws.sdk_config(),
        ))),
        config.task_config.ecology_config.clone(),
        clock.clone(),
    );
    let invoker = Arc::new(Recording {
        inner: LambdaInvoker(lambda.clone()),
        payloads: Mutex::new(Vec::new()),
    });
    let orchestrator = Orchestrator::new(tasks.clone(), ecology, meta(), invoker.clone(), config);
    let probe = Probe::begin(&aws, &capacity);
    let stats = orchestrator.run().await;
    steps.push(probe.end("invoke"));
    assert_eq!(stats.invoked, n, "every task invoked");

    // 3. Each worker runs the SDK's `process`, which reports through the Worker Assistant.
    let payloads = std::mem::take(&mut *invoker.payloads.lock().expect("not poisoned"));
    let reporter = ThroughAssistant {
        lambda: LambdaReporter::new(lambda.clone(), ASSISTANT),
        assistant: WorkerAssistant::new(tasks.clone(), meta()),
    };
    let handler = |event: Value| async move {
        Ok::<_, std::io::Error>(
            Report::default()
                .stat("rows", 1)
                .result("i", event["word"].clone()),
        )
    };
    let probe = Probe::begin(&aws, &capacity);
    let reported = futures::stream::iter(payloads)
        .map(|p| {
            let (reporter, handler) = (&reporter, &handler);
            async move {
                let event: Value = serde_json::from_str(&p).expect("payload is JSON");
                sosw_worker::process(event, handler, reporter).await.is_ok()
            }
        })
        .buffer_unordered(32)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    steps.push(probe.end("report"));
    assert_eq!(reported as u64, n, "every task reported");

    // 4. Scavenger: one run archives them.
    let mut doc = ScavengerConfig::defaults();
    sosw_core::config::merge(&mut doc, &json!({"task_config": task_config(n)}));
    let config: ScavengerConfig = sosw_core::config::from_value("bench", doc).expect("scavenger config");
    let tasks = TaskManager::new(
        dynamo.clone(),
        lambda.clone(),
        config.task_config.clone(),
        clock.clone(),
    );
    let scavenger = Scavenger::new(tasks, meta(), Arc::new(RecordingNotifier::default()), config);
    let probe = Probe::begin(&aws, &capacity);
    let stats = scavenger.run().await;
    steps.push(probe.end("archive"));
    assert_eq!(stats.total.archived, n, "every task archived");
    steps
}

/// Write `count` items made by `item` into `table` with BatchWriteItem (25 a request, 4 at a time),
/// the way a benchmark seeds history without paying for it item by item.
async fn seed(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    count: u64,
    item: impl Fn(u64) -> Vec<(&'static str, AttributeValue)>,
) {
    let ids: Vec<u64> = (0..count).collect();
    let batches: Vec<Vec<WriteRequest>> = ids
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| {
                    let item = item(*i).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item))
                                .build()
                                .expect("put request"),
                        )
                        .build()
                })
                .collect()
        })
        .collect();
    futures::stream::iter(batches)
        .map(|batch| async move {
            let mut pending = Some(batch);
            while let Some(batch) = pending.take().filter(|b| !b.is_empty()) {
                let out = dynamo
                    .batch_write_item()
                    .request_items(table, batch)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("seed {table}: {e:?}"));
                pending = out.unprocessed_items.and_then(|mut m| m.remove(table));
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
}

/// The Scheduler's items read per task when `depth` tasks already wait in the labourer's queue
/// (seeded by batch writes): scheduling `n` more must not read the queue.
async fn schedule_at_depth(depth: u64, n: u64) -> Step {
    let aws = start_counted().await;
    let bucket = aws.deploy_queue_bucket().await;
    let capacity = CapacityCounter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
            .interceptor(capacity.clone())
            .build(),
    );
    let seeding = Instant::now();
    seed(&dynamo, "sosw_tasks", depth, |i| {
        vec![
            ("task_id", AttributeValue::S(format!("queued-{i:07}"))),
            ("labourer_id", AttributeValue::S(LABOURER.into())),
            ("greenfield", AttributeValue::N((1_000 * (i + 1)).to_string())),
            ("attempts", AttributeValue::N("0".into())),
            ("created_at", AttributeValue::N("1700000000".into())),
            ("payload", AttributeValue::S(format!("{{\"i\": {i}}}"))),
        ]
    })
    .await;
    println!(
        "seeded {depth} queued tasks by BatchWriteItem in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let mut doc = SchedulerConfig::defaults();
    sosw_core::config::merge(
        &mut doc,
        &json!({"queue_bucket": bucket, "task_config": task_config(n),
                "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}}),
    );
    let config = SchedulerConfig::from_document(doc).expect("scheduler config");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(dynamo.clone(), lambda, config.task_config.clone(), clock.clone());
    let s3 = aws.s3();
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let scheduler = Scheduler::new(
        tasks,
        s3,
        meta,
        Arc::new(sosw_core::invoker::RecordingInvoker::default()),
        config,
        "sosw_scheduler",
        None,
    );
    let words: Vec<String> = (0..n).map(|i| format!("d{i:06}")).collect();
    let job = json!({"lambda_name": LABOURER, "words": words, "isolate_words": true});
    let probe = Probe::begin(&aws, &capacity);
    let stats = scheduler.handle(&job, "bench", &Forever).await.expect("schedule");
    let step = probe.end(&format!("schedule {n} behind {depth} queued"));
    assert_eq!(stats.tasks_created as u64, n, "every task scheduled");
    step
}

/// An idle Orchestrator run (nothing queued) with `archived` tasks in `sosw_closed_tasks`.
async fn idle_with_archive(archived: u64) -> Step {
    let aws = start_counted().await;
    aws.deploy_storage().await;
    let capacity = CapacityCounter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
            .interceptor(capacity.clone())
            .build(),
    );
    let seeding = Instant::now();
    seed(&dynamo, "sosw_closed_tasks", archived, |i| {
        vec![
            ("task_id", AttributeValue::S(format!("archived-{i:07}"))),
            ("labourer_id", AttributeValue::S(LABOURER.into())),
            (
                "labourer_id_task_status",
                AttributeValue::S(format!("{LABOURER}_1")),
            ),
            ("closed_at", AttributeValue::N((1_700_000_000 + i).to_string())),
            ("completed_at", AttributeValue::N((1_700_000_000 + i).to_string())),
            ("greenfield", AttributeValue::N((1_000 * (i + 1)).to_string())),
            ("attempts", AttributeValue::N("1".into())),
            ("payload", AttributeValue::S(format!("{{\"i\": {i}}}"))),
        ]
    })
    .await;
    println!(
        "seeded {archived} archived tasks by BatchWriteItem in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let mut doc = OrchestratorConfig::defaults();
    sosw_core::config::merge(&mut doc, &json!({"task_config": task_config(10)}));
    let config: OrchestratorConfig =
        sosw_core::config::from_value("bench", doc).expect("orchestrator config");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    let tasks = TaskManager::new(
        dynamo.clone(),
        lambda.clone(),
        config.task_config.clone(),
        clock.clone(),
    );
    let ecology = EcologyManager::new(
        Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
            aws.sdk_config(),
        ))),
        config.task_config.ecology_config.clone(),
        clock.clone(),
    );
    let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
    let orchestrator = Orchestrator::new(tasks, ecology, meta, Arc::new(LambdaInvoker(lambda)), config);
    let probe = Probe::begin(&aws, &capacity);
    let stats = orchestrator.run().await;
    let step = probe.end(&format!("idle, {archived} archived"));
    assert_eq!(stats.invoked, 0);
    step
}

/// Python sosw's figures for one step, from `../shared/bench-peer`'s JSON (`--out`).
struct PeerStep {
    requests: f64,
    wcu: f64,
    items: f64,
    cpu_ms: f64,
}

/// The peer's phase for each of our steps, per task. Its WCU is computed from its write
/// operations (PutItem, UpdateItem, DeleteItem: one item each, every item under 1 KiB).
fn peer_steps(peer: &Value, n: u64) -> Vec<(String, PeerStep)> {
    let phases = [
        ("schedule", "scheduler"),
        ("invoke", "orchestrator"),
        ("report", "worker_assistant"),
        ("archive", "scavenger.archive"),
    ];
    let results = peer["results"].as_array().cloned().unwrap_or_default();
    phases
        .iter()
        .filter_map(|(ours, theirs)| {
            let r = results
                .iter()
                .find(|r| r["phase"] == *theirs && r["n"].as_u64() == Some(n))?;
            let per = |x: f64| x / n as f64;
            let writes: u64 = ["dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem"]
                .iter()
                .map(|op| r["by_op"][op].as_u64().unwrap_or(0))
                .sum();
            Some((
                ours.to_string(),
                PeerStep {
                    requests: per(r["requests"].as_f64().unwrap_or(0.0)),
                    wcu: per(writes as f64),
                    items: per(r["items_returned"].as_f64().unwrap_or(0.0)),
                    cpu_ms: per(r["client_cpu_s"].as_f64().unwrap_or(0.0) * 1e3),
                },
            ))
        })
        .collect()
}

fn print_side_by_side(n: u64, steps: &[Step], peer: &[(String, PeerStep)]) {
    println!("\nside by side with Python sosw 0.7.51 (../shared/bench-peer, same run), {n} tasks, per task");
    println!("| step | requests: ours | Python | Python/ours | WCU: ours | Python | items read: ours | Python | client CPU ms: ours | Python | Python/ours |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let per = |x: f64| x / n as f64;
    let mut total = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for s in steps {
        let Some((_, p)) = peer.iter().find(|(name, _)| *name == s.name) else {
            continue;
        };
        // Python's harness calls its Worker Assistant in process: compare without the worker's Invoke.
        let wa = if s.name == "report" {
            s.by_op.get("lambda.Invoke").copied().unwrap_or(0)
        } else {
            0
        };
        let ours = (
            per((s.requests - wa) as f64),
            per(s.capacity.wcu()),
            per(s.items as f64),
            per(s.cpu.as_secs_f64() * 1e3),
        );
        total.0 += ours.0;
        total.1 += p.requests;
        total.2 += ours.1;
        total.3 += p.wcu;
        total.4 += ours.2;
        total.5 += p.items;
        total.6 += ours.3;
        total.7 += p.cpu_ms;
        println!(
            "| {} | {:.3} | {:.3} | {:.1}× | {:.2} | {:.2} | {:.4} | {:.1} | {:.3} | {:.2} | {:.1}× |",
            s.name,
            ours.0,
            p.requests,
            p.requests / ours.0,
            ours.1,
            p.wcu,
            ours.2,
            p.items,
            ours.3,
            p.cpu_ms,
            p.cpu_ms / ours.3
        );
    }
    println!(
        "| total | {:.3} | {:.3} | {:.1}× | {:.2} | {:.2} | {:.4} | {:.1} | {:.3} | {:.2} | {:.1}× |",
        total.0,
        total.1,
        total.1 / total.0,
        total.2,
        total.3,
        total.4,
        total.5,
        total.6,
        total.7,
        total.7 / total.6
    );
}

fn print_table(n: u64, steps: &[Step]) {
    println!("\nlifecycle of {n} tasks (per task; meta rows on; one counter for every request)");
    println!(
        "| step | requests | requests w/o the worker's Invoke of the assistant | WCU | RCU | items read | client CPU ms | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut total = Step {
        name: "total".into(),
        ..Step::default()
    };
    for s in steps.iter() {
        total.add(s);
    }
    for s in steps.iter().chain(std::iter::once(&total)) {
        let per = |x: f64| x / n as f64;
        let wa_invokes = if s.name == "report" || s.name == "total" {
            // The report step's Invokes are the worker's calls of the Worker Assistant.
            steps
                .iter()
                .find(|x| x.name == "report")
                .and_then(|r| r.by_op.get("lambda.Invoke"))
                .copied()
                .unwrap_or(0)
        } else {
            0
        };
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} | {:.3} | {:.1} |",
            s.name,
            per(s.requests as f64),
            per((s.requests - wa_invokes) as f64),
            per(s.capacity.wcu()),
            per(s.capacity.rcu()),
            per(s.items as f64),
            per(s.cpu.as_secs_f64() * 1e3),
            s.wall.as_secs_f64()
        );
    }
    for s in steps {
        let ops: Vec<String> = s.by_op.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {}: {}", s.name, ops.join(", "));
    }
    println!("  largest item seen: {} bytes", total.capacity.largest_item);
}

#[tokio::main]
async fn main() {
    // Every moto that LocalAws starts loads crates/sosw-test-support/moto/sitecustomize.py:
    // transactions cost O(items), not O(table), so moto's memory stays bounded.
    let mut ns = Vec::new();
    let mut archived = 100_000u64;
    let mut json_out = None;
    let mut peer: Option<Value> = None;
    let mut depths: Vec<u64> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--archived" => archived = args.next().and_then(|v| v.parse().ok()).expect("--archived M"),
            "--json" => json_out = args.next(),
            "--queue-depth" => {
                depths.push(args.next().and_then(|v| v.parse().ok()).expect("--queue-depth D"))
            }
            "--peer" => {
                let path = args.next().expect("--peer FILE");
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
                peer =
                    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}")));
            }
            "--bench" => {}
            other => ns.push(
                other
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("not a task count: {other}")),
            ),
        }
    }
    if ns.is_empty() {
        ns = vec![1_000, 10_000];
    }
    let mut report = json!({"lifecycle": {}, "idle": null, "schedule_at_depth": {}});
    for n in ns {
        let steps = lifecycle(n).await;
        print_table(n, &steps);
        match peer.as_ref().map(|p| peer_steps(p, n)) {
            Some(p) if !p.is_empty() => print_side_by_side(n, &steps, &p),
            Some(_) => println!("(Python sosw's figures hold no run of {n} tasks)"),
            None => println!("(no Python sosw figures: run scripts/bench where ../shared/bench-peer exists)"),
        }
        report["lifecycle"][n.to_string()] = steps.iter().map(|s| s.json(n)).collect();
    }
    if archived > 0 {
        let idle = idle_with_archive(archived).await;
        println!(
            "\norchestrator idle run, {archived} archived tasks: {} requests ({}), {} items read, {:.1} RCU",
            idle.requests,
            idle.by_op
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            idle.items,
            idle.capacity.rcu()
        );
        report["idle"] = idle.json(1);
    }
    for depth in depths {
        let step = schedule_at_depth(depth, 1_000).await;
        println!(
            "\n{}: {:.3} requests, {:.4} items read, {:.3} WCU per task; {}",
            step.name,
            step.requests as f64 / 1_000.0,
            step.items as f64 / 1_000.0,
            step.capacity.wcu() / 1_000.0,
            step.by_op
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        report["schedule_at_depth"][depth.to_string()] = step.json(1_000);
    }
    if let Some(path) = json_out {
        std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON")).expect("write --json");
    }
}
