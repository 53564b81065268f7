//! Exactly once under true concurrency: the same continuation (`{"file_name": ...}`) delivered
//! to two Scheduler instances at the same time, and an orchestrator claiming tasks while a
//! continuation runs. These run on the serialised emulator ([`LocalAws::start_serialised`]):
//! moto's conditional writes are not atomic under concurrent requests, DynamoDB's are, and the
//! guarantee rests on them.

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::Budget;
use serde_json::{json, Value};
use sosw_core::config::MetaHandlerConfig;
use sosw_core::invoker::RecordingInvoker;
use sosw_core::{ClaimOutcome, ManualClock, MetaHandler, TaskId, TaskManager};
use sosw_scheduler::{Scheduler, SchedulerConfig, SchedulerError, SchedulerStats, TimeLeft};
use sosw_test_support::LocalAws;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Rows per batch: small, so that two runs over one file interleave batch by batch.
const ROWS_PER_BATCH: usize = 20;

struct Env {
    aws: LocalAws,
    config: SchedulerConfig,
    tasks: TaskManager,
    meta: Arc<MetaHandler>,
    invoker: Arc<RecordingInvoker>,
}

impl Env {
    async fn start(aws: LocalAws) -> Self {
        let bucket = aws.deploy_queue_bucket().await;
        let mut doc = SchedulerConfig::defaults();
        sosw_core::config::merge(
            &mut doc,
            &json!({
                "queue_bucket": bucket,
                "rows_to_process": ROWS_PER_BATCH,
                "task_config": {"labourers": {"worker": {"max_duration": 60}}},
                "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}
            }),
        );
        let config = SchedulerConfig::from_document(doc).unwrap();
        let clock = Arc::new(ManualClock::at(1_750_000_000.0));
        let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
        let tasks = TaskManager::new(
            dynamo.clone(),
            aws_sdk_lambda::Client::new(aws.sdk_config()),
            config.task_config.clone(),
            clock.clone(),
        );
        let meta = Arc::new(MetaHandler::new(dynamo, &MetaHandlerConfig::default(), clock));
        Self {
            aws,
            config,
            tasks,
            meta,
            invoker: Arc::new(RecordingInvoker::default()),
        }
    }

    /// One Scheduler instance (a Lambda execution environment of its own: own S3 client).
    fn scheduler(&self) -> Arc<Scheduler> {
        let s3 = self.aws.s3();
        Arc::new(Scheduler::new(
            self.tasks.clone(),
            s3,
            self.meta.clone(),
            self.invoker.clone(),
            self.config.clone(),
            "sosw_scheduler",
            None,
        ))
    }

    /// A job of `n` rows: the first batch is written, the rest handed over unlocked (as a
    /// parent that ran out of time leaves it). Returns the continuation event.
    async fn handed_over_file(&self, request_id: &str, n: usize) -> Value {
        let words: Vec<String> = (0..n).map(|i| format!("w{i:05}")).collect();
        let job = json!({"lambda_name": "worker", "words": words, "isolate_words": true});
        let stats = self
            .scheduler()
            .handle(&job, request_id, &Budget::batches(1))
            .await
            .unwrap();
        assert_eq!(stats.tasks_created, ROWS_PER_BATCH);
        assert_eq!(stats.rows_handed_over_from, Some(ROWS_PER_BATCH));
        json!({"file_name": self.config.queue_file_for(request_id)})
    }

    /// Every item of `sosw_tasks` whose id is a row of `file`, by task id.
    async fn tasks_of(&self, file: &str, rows: usize) -> BTreeMap<String, (i64, i64)> {
        let ids: BTreeSet<String> = (0..rows).map(|r| TaskId::derived(file, r).0).collect();
        let dynamo = aws_sdk_dynamodb::Client::new(self.aws.sdk_config());
        let items: Vec<_> = dynamo
            .scan()
            .table_name("sosw_tasks")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .unwrap();
        let number = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| -> i64 {
            item[k].as_n().unwrap().parse().unwrap()
        };
        let mut out = BTreeMap::new();
        for item in &items {
            let id = item["task_id"].as_s().unwrap().clone();
            if ids.contains(&id) {
                let previous = out.insert(id.clone(), (number(item, "greenfield"), number(item, "attempts")));
                assert!(previous.is_none(), "task {id} is in sosw_tasks twice");
            }
        }
        out
    }

    /// How many `created` meta rows each task of `file` has.
    async fn created_rows(&self, file: &str, rows: usize) -> BTreeMap<String, usize> {
        let ids: BTreeSet<String> = (0..rows).map(|r| TaskId::derived(file, r).0).collect();
        let dynamo = aws_sdk_dynamodb::Client::new(self.aws.sdk_config());
        let items: Vec<_> = dynamo
            .scan()
            .table_name("sosw_tasks_meta")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for item in &items {
            let id = item["task_id"].as_s().unwrap();
            if ids.contains(id) && item["action"].as_s().unwrap() == "created" {
                *out.entry(id.clone()).or_default() += 1;
            }
        }
        out
    }

    fn labourer_start(&self) -> i64 {
        self.tasks.register_labourer("worker").unwrap().start
    }

    /// Continuation events handed to siblings since the last call.
    fn take_sibling_events(&self, seen: &mut usize) -> Vec<Value> {
        let calls = self.invoker.calls();
        let new = calls[*seen..]
            .iter()
            .map(|(_, payload)| serde_json::from_str(payload).unwrap())
            .collect();
        *seen = calls.len();
        new
    }
}

/// Plenty of time, but at its `at`-th check of the clock (before a batch) the run stops and waits
/// until the test lets it go on: a continuation held mid-file, deterministically.
struct Gate {
    checks: AtomicUsize,
    at: usize,
    reached: Mutex<mpsc::Sender<()>>,
    resume: Mutex<mpsc::Receiver<()>>,
}

impl TimeLeft for Gate {
    fn remaining(&self) -> Duration {
        if self.checks.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            self.reached.lock().unwrap().send(()).unwrap();
            // `block_in_place` hands this worker's queue (its LIFO slot included) to another thread
            // while the delivery is held: a plain blocking wait here would also hold any task parked
            // in that slot — such as the connection that delivery B's request then waits on.
            // Bounded: a test that never opens the gate fails instead of hanging.
            tokio::task::block_in_place(|| {
                self.resume
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(300))
                    .expect("the test opens the gate")
            });
        }
        Duration::from_secs(900)
    }
}

/// The outcome of one delivery: it wrote or skipped rows, or found the file already finished.
fn delivery_outcome(result: Result<SchedulerStats, SchedulerError>, file: &str) -> Option<SchedulerStats> {
    match result {
        Ok(stats) => Some(stats),
        Err(SchedulerError::NoSuchQueueFile(name)) => {
            assert_eq!(name, file, "only the finished file may be missing");
            None
        }
        Err(e) => panic!("a duplicate delivery of `{file}` failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_continuation_delivered_to_two_schedulers_at_once_writes_every_row_exactly_once() {
    let env = Env::start(LocalAws::start_serialised().await).await;
    let rows = 160;
    let mut seen_siblings = 0;
    // Rounds: both instances with all the time they need; then one of them runs out of time
    // after two batches and hands the rest over while the other is still writing.
    for (round, short_budget) in [(0, None), (1, None), (2, Some(2)), (3, Some(3))] {
        let request_id = format!("req-concurrent-{round}");
        let event = env.handed_over_file(&request_id, rows).await;
        let file = event["file_name"].as_str().unwrap().to_string();
        env.take_sibling_events(&mut seen_siblings); // the parent's hand-over: delivered below, twice
        let (a, b) = (env.scheduler(), env.scheduler());
        let budget_a = short_budget.map_or_else(Budget::unlimited, Budget::batches);
        let (id_a, id_b, budget_b) = (
            format!("{request_id}-a"),
            format!("{request_id}-b"),
            Budget::unlimited(),
        );
        let (ra, rb) = tokio::join!(
            a.handle(&event, &id_a, &budget_a),
            b.handle(&event, &id_b, &budget_b),
        );
        let outcomes: Vec<SchedulerStats> = [ra, rb]
            .into_iter()
            .filter_map(|r| delivery_outcome(r, &file))
            .collect();
        assert!(
            !outcomes.is_empty(),
            "round {round}: at least one delivery took the file"
        );
        for s in &outcomes {
            eprintln!(
                "round {round}: created {}, found existing {}, handed over {}",
                s.tasks_created, s.rows_already_written, s.sibling_spawned
            );
        }
        let mut written: usize = ROWS_PER_BATCH + outcomes.iter().map(|s| s.tasks_created).sum::<usize>();

        // A sibling spawned by a hand-over is delivered too (bounded: each hand-over happens
        // only on a short budget).
        let mut pending = env.take_sibling_events(&mut seen_siblings);
        assert_eq!(
            pending.len(),
            usize::from(outcomes.iter().any(|s| s.sibling_spawned))
        );
        for hop in 0.. {
            assert!(hop < 5, "round {round}: siblings keep handing over");
            let Some(sibling) = pending.pop() else { break };
            assert_eq!(sibling, event);
            let rerun = env
                .scheduler()
                .handle(&sibling, "sibling", &Budget::unlimited())
                .await;
            if let Some(stats) = delivery_outcome(rerun, &file) {
                written += stats.tasks_created;
            }
            pending.extend(env.take_sibling_events(&mut seen_siblings));
        }

        // Every row is exactly one task, written once, untouched since.
        let tasks = env.tasks_of(&file, rows).await;
        assert_eq!(
            tasks.len(),
            rows,
            "round {round}: every row of `{file}` is a task"
        );
        assert_eq!(
            written, rows,
            "round {round}: the runs together wrote each row once"
        );
        let start = env.labourer_start();
        for (id, (greenfield, attempts)) in &tasks {
            assert_eq!(*attempts, 0, "round {round}: task {id} was never invoked");
            assert!(
                *greenfield < start,
                "round {round}: task {id} is queued ({greenfield})"
            );
        }
        let created = env.created_rows(&file, rows).await;
        assert_eq!(created.len(), rows);
        assert!(
            created.values().all(|n| *n == 1),
            "round {round}: one `created` meta row per task: {created:?}"
        );
        // The file ends deleted: nothing is left for an operator, and a rerun has nothing to do.
        let left = env.scheduler().queue().list().await.unwrap();
        assert!(
            left.is_empty(),
            "round {round}: `{file}` is finished but {left:?} remain"
        );
        let rerun = env.scheduler().handle(&event, "late", &Budget::unlimited()).await;
        assert!(
            matches!(rerun, Err(SchedulerError::NoSuchQueueFile(ref n)) if *n == file),
            "round {round}: a late delivery finds the file finished: {rerun:?}"
        );
        assert_eq!(
            env.tasks_of(&file, rows).await,
            tasks,
            "round {round}: nothing rewritten"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_claimed_while_a_continuation_runs_keep_their_state_when_it_is_delivered_again() {
    let env = Env::start(LocalAws::start_serialised().await).await;
    let rows = 200;
    let event = env.handed_over_file("req-claimed", rows).await;
    let file = event["file_name"].as_str().unwrap().to_string();

    // Delivery A takes the file, writes two batches (rows 20..60) and is held before its third.
    let (reached_tx, reached_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let gate = Gate {
        checks: AtomicUsize::new(0),
        at: 3,
        reached: Mutex::new(reached_tx),
        resume: Mutex::new(resume_rx),
    };
    let a = env.scheduler();
    let event_a = event.clone();
    let first = tokio::spawn(async move { a.handle(&event_a, "req-a", &gate).await });
    tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(300)))
        .await
        .unwrap()
        .expect("delivery A reaches its third batch");

    // The orchestrator claims the first 30 queued tasks (the parent's rows and some of A's).
    let labourer = env.tasks.register_labourer("worker").unwrap();
    let queued = env.tasks.next_tasks(&labourer, 30).await.unwrap();
    assert_eq!(queued.len(), 30);
    for task in &queued {
        assert_eq!(
            env.tasks.claim(&labourer, task).await.unwrap(),
            ClaimOutcome::Claimed
        );
    }
    let claimed: BTreeMap<String, (i64, i64)> = env
        .tasks_of(&file, rows)
        .await
        .into_iter()
        .filter(|(id, _)| queued.iter().any(|t| t.task_id.0 == *id))
        .collect();
    assert_eq!(claimed.len(), 30);
    assert!(claimed
        .values()
        .all(|(g, attempts)| *g >= labourer.start && *attempts == 1));

    // Delivery B arrives while A is held: it resumes the locked file from the hand-over's row.
    let second = env
        .scheduler()
        .handle(&event, "req-b", &Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(
        second.rows_already_written, 40,
        "A's two batches are found, not rewritten"
    );
    assert_eq!(second.tasks_created, rows - 60);

    // A goes on: every row it still has exists.
    resume_tx.send(()).unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.tasks_created, 40);
    assert_eq!(first.rows_already_written, rows - 60);

    let tasks = env.tasks_of(&file, rows).await;
    assert_eq!(tasks.len(), rows, "every row of `{file}` is a task");
    for (id, state) in &claimed {
        assert_eq!(
            &tasks[id], state,
            "claimed task {id} keeps its greenfield and attempts"
        );
    }
    let fresh = tasks.iter().filter(|(id, _)| !claimed.contains_key(*id));
    assert!(fresh
        .clone()
        .all(|(_, (g, attempts))| *g < labourer.start && *attempts == 0));
    assert_eq!(fresh.count(), rows - 30);
    let created = env.created_rows(&file, rows).await;
    assert!(
        created.len() == rows && created.values().all(|n| *n == 1),
        "{created:?}"
    );
    assert!(
        env.scheduler().queue().list().await.unwrap().is_empty(),
        "the file is finished"
    );
}

/// Claims racing two concurrent deliveries: whatever the interleaving, a claimed task is never
/// reset to the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_racing_two_concurrent_deliveries_are_never_reset() {
    let env = Env::start(LocalAws::start_serialised().await).await;
    let rows = 160;
    let event = env.handed_over_file("req-race", rows).await;
    let file = event["file_name"].as_str().unwrap().to_string();
    let labourer = env.tasks.register_labourer("worker").unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, b) = (env.scheduler(), env.scheduler());
    let claimer = {
        let tasks = env.tasks.clone();
        let labourer = labourer.clone();
        let done = done.clone();
        async move {
            let mut claimed = BTreeSet::new();
            // Bounded by the deliveries: a last pass after they finish.
            loop {
                let last = done.load(Ordering::SeqCst);
                for task in tasks.next_tasks(&labourer, 5).await.unwrap() {
                    if tasks.claim(&labourer, &task).await.unwrap() == ClaimOutcome::Claimed {
                        claimed.insert(task.task_id.0.clone());
                    }
                }
                if last || claimed.len() >= 60 {
                    break claimed;
                }
            }
        }
    };
    let (budget_a, budget_b) = (Budget::unlimited(), Budget::unlimited());
    let deliveries = async {
        let r = tokio::join!(
            a.handle(&event, "req-race-a", &budget_a),
            b.handle(&event, "req-race-b", &budget_b),
        );
        done.store(true, Ordering::SeqCst);
        r
    };
    let ((ra, rb), claimed) = tokio::join!(deliveries, claimer);
    let written: usize = [ra, rb]
        .into_iter()
        .filter_map(|r| delivery_outcome(r, &file))
        .map(|s| s.tasks_created)
        .sum();
    assert_eq!(
        written + ROWS_PER_BATCH,
        rows,
        "each row written by exactly one run"
    );
    assert!(!claimed.is_empty());

    let tasks = env.tasks_of(&file, rows).await;
    assert_eq!(tasks.len(), rows);
    for (id, (greenfield, attempts)) in &tasks {
        if claimed.contains(id) {
            assert_eq!(*attempts, 1, "claimed task {id} keeps its attempt");
            assert!(
                *greenfield >= labourer.start,
                "claimed task {id} stays invoked ({greenfield})"
            );
        } else {
            assert_eq!(*attempts, 0, "task {id} was never invoked");
            assert!(*greenfield < labourer.start, "task {id} is queued");
        }
    }
    assert!(env.scheduler().queue().list().await.unwrap().is_empty());
}
