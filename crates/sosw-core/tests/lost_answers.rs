//! Writes whose answer is lost: DynamoDB applied the write, the connection dropped before the
//! answer arrived, and the SDK's retry met the write's own success as a failed condition. The chaos
//! suite found a claim doing this read as "someone else has it" (an attempt used, no worker run);
//! here the store replays every conditional update the way such a retry does.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use sosw_core::task::store::{
    Condition, IndexQuery, Key, Page, StoreError, TaskStore, TxItem, Update, Written,
};
use sosw_core::task::Item;
use sosw_core::{ClaimOutcome, Clock, ManualClock, MemoryStore, TaskConfig, TaskManager};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A store whose conditional updates are applied once and then sent again, answering with the
/// second answer, as an SDK retry after a dropped connection does.
#[derive(Debug)]
struct RetriedAfterLostAnswer {
    inner: MemoryStore,
    replays: AtomicUsize,
}

#[async_trait::async_trait]
impl TaskStore for RetriedAfterLostAnswer {
    async fn get(&self, table: &str, key: Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(table, key).await
    }
    fn query(&self, query: IndexQuery) -> futures::stream::BoxStream<'_, Result<Page, StoreError>> {
        self.inner.query(query)
    }
    async fn update(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<Written, StoreError> {
        let first = self
            .inner
            .update(table, key.clone(), update.clone(), condition.clone())
            .await?;
        if first != Written::Done {
            return Ok(first);
        }
        self.replays.fetch_add(1, Ordering::SeqCst);
        self.inner.update(table, key, update, condition).await
    }
    async fn transact(&self, items: Vec<TxItem>, token: Option<String>) -> Result<Written, StoreError> {
        self.inner.transact(items, token).await
    }
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
        self.inner.batch_put(table, items).await
    }
    async fn batch_get(&self, keys: Vec<(String, Key)>, attribute: &str) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(keys, attribute).await
    }
}

fn config() -> TaskConfig {
    TaskConfig::from_user(&json!({"labourers": {"worker": {"max_attempts": 3}}})).unwrap()
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_ours_and_its_worker_runs() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(1_750_000_000.0));
    let store = Arc::new(RetriedAfterLostAnswer {
        inner: MemoryStore::for_config(&config()),
        replays: AtomicUsize::new(0),
    });
    let tm = TaskManager::with_store(store.clone(), config(), clock.clone());
    let mut payload = serde_json::Map::new();
    payload.insert("n".into(), json!(1));
    tm.create_task("worker", payload, true).await.unwrap();
    let labourer = tm.register_labourer("worker").unwrap();
    let task = tm.next_tasks(&labourer, 1).await.unwrap().remove(0);

    let outcome = tm.claim(&labourer, &task).await.unwrap();

    assert_eq!(
        store.replays.load(Ordering::SeqCst),
        1,
        "the claim's update was replayed"
    );
    assert_eq!(
        outcome,
        ClaimOutcome::Claimed,
        "the retry met the claim's own write: the task is ours to invoke"
    );
    let row = tm.get_task(&task.task_id.0).await.unwrap().unwrap();
    assert_eq!(
        row.item["attempts"],
        AttributeValue::N("1".into()),
        "one attempt, one run"
    );
}

#[tokio::test]
async fn a_claim_by_someone_else_is_still_refused() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(1_750_000_000.0));
    let (tm, _store) = TaskManager::in_memory(config(), clock);
    let mut payload = serde_json::Map::new();
    payload.insert("n".into(), json!(1));
    tm.create_task("worker", payload, true).await.unwrap();
    let labourer = tm.register_labourer("worker").unwrap();
    let task = tm.next_tasks(&labourer, 1).await.unwrap().remove(0);

    assert_eq!(tm.claim(&labourer, &task).await.unwrap(), ClaimOutcome::Claimed);
    // A second orchestrator read the same queued row before the first claim: its claim carries
    // its own token, finds the task invoked, and must not invoke it again.
    assert_eq!(
        tm.claim(&labourer, &task).await.unwrap(),
        ClaimOutcome::AlreadyInvoked
    );
    let row = tm.get_task(&task.task_id.0).await.unwrap().unwrap();
    assert_eq!(row.item["attempts"], AttributeValue::N("1".into()));
    assert!(
        matches!(
            row.item.get(sosw_core::task::manager::CLAIM_ID),
            Some(AttributeValue::S(_))
        ),
        "the claim's token is on the row"
    );
}

/// What the store does with the next conditional update.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Apply it and answer.
    Pass,
    /// Apply it, then fail as the SDK does when every retry after a lost answer was throttled.
    ApplyThenFail,
    /// Fail without applying it (throttled past the SDK's retries).
    Fail,
}

/// A store whose successive conditional updates follow a script (then pass).
#[derive(Debug)]
struct Scripted {
    inner: MemoryStore,
    script: std::sync::Mutex<std::collections::VecDeque<Next>>,
    updates: AtomicUsize,
}

impl Scripted {
    fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            script: Default::default(),
            updates: AtomicUsize::new(0),
        }
    }
    fn then(&self, steps: impl IntoIterator<Item = Next>) {
        self.script.lock().unwrap().extend(steps);
    }
}

fn throttled() -> StoreError {
    StoreError::new(
        sosw_core::task::store::FailureKind::Exhausted,
        "ProvisionedThroughputExceededException (every SDK retry)",
    )
}

#[async_trait::async_trait]
impl TaskStore for Scripted {
    async fn get(&self, table: &str, key: Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(table, key).await
    }
    fn query(&self, query: IndexQuery) -> futures::stream::BoxStream<'_, Result<Page, StoreError>> {
        self.inner.query(query)
    }
    async fn update(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<Written, StoreError> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front().unwrap_or(Next::Pass);
        match next {
            Next::Pass => self.inner.update(table, key, update, condition).await,
            Next::ApplyThenFail => {
                self.inner.update(table, key, update, condition).await?;
                Err(throttled())
            }
            Next::Fail => Err(throttled()),
        }
    }
    async fn transact(&self, items: Vec<TxItem>, token: Option<String>) -> Result<Written, StoreError> {
        self.inner.transact(items, token).await
    }
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
        self.inner.batch_put(table, items).await
    }
    async fn batch_get(&self, keys: Vec<(String, Key)>, attribute: &str) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(keys, attribute).await
    }
}

async fn scripted_queue() -> (
    TaskManager,
    Arc<Scripted>,
    sosw_core::Labourer,
    sosw_core::task::Task,
) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(1_750_000_000.0));
    let store = Arc::new(Scripted::new(MemoryStore::for_config(&config())));
    let tm = TaskManager::with_store(store.clone(), config(), clock);
    let mut payload = serde_json::Map::new();
    payload.insert("n".into(), json!(1));
    tm.create_task("worker", payload, true).await.unwrap();
    let labourer = tm.register_labourer("worker").unwrap();
    let task = tm.next_tasks(&labourer, 1).await.unwrap().remove(0);
    (tm, store, labourer, task)
}

/// Found by the 10,000-task chaos soak: a claim applied, its answer lost and every retry throttled
/// came back as an error; the run took the task for untouched, so the task expired with an attempt
/// counted and no worker run. The row tells: its token is the claim's.
#[tokio::test]
async fn a_claim_whose_tries_all_failed_after_one_was_applied_is_still_ours() {
    let (tm, store, labourer, task) = scripted_queue().await;
    store.then([Next::ApplyThenFail]);
    store.then(std::iter::repeat_n(Next::Fail, sosw_core::aws::SOSW_RETRIES));

    let claim = tm.claim_for_invocation(&labourer, &task).await.unwrap();

    assert!(
        claim.is_some(),
        "the claim was applied: the task is ours to invoke"
    );
    assert_eq!(
        store.updates.load(Ordering::SeqCst),
        1 + sosw_core::aws::SOSW_RETRIES
    );
    let row = tm.get_task(&task.task_id.0).await.unwrap().unwrap();
    assert_eq!(row.item["attempts"], AttributeValue::N("1".into()));
}

#[tokio::test]
async fn a_claim_that_failed_without_being_applied_is_an_error_and_leaves_the_task_queued() {
    let (tm, store, labourer, task) = scripted_queue().await;
    store.then(std::iter::repeat_n(Next::Fail, 1 + sosw_core::aws::SOSW_RETRIES));

    let err = tm.claim_for_invocation(&labourer, &task).await.unwrap_err();

    assert!(err.to_string().contains("UpdateItem"), "{err}");
    let row = tm.get_task(&task.task_id.0).await.unwrap().unwrap();
    assert_eq!(
        row.item["attempts"],
        AttributeValue::N("0".into()),
        "no attempt counted"
    );
    assert!(!row.item.contains_key(sosw_core::task::manager::CLAIM_ID));
}

#[tokio::test]
async fn a_claim_throttled_past_the_sdk_retries_is_tried_again() {
    let (tm, store, labourer, task) = scripted_queue().await;
    store.then([Next::Fail, Next::Fail]);

    assert!(tm.claim_for_invocation(&labourer, &task).await.unwrap().is_some());
    assert_eq!(store.updates.load(Ordering::SeqCst), 3);
}

/// The other half of the soak's finding: Lambda refused the invocation, and giving the claim back
/// was throttled past the SDK's retries, so the attempt stayed counted with no run.
#[tokio::test]
async fn a_claim_given_back_while_throttled_is_tried_again_until_it_is_given_back() {
    let (tm, store, labourer, task) = scripted_queue().await;
    let claim = tm.claim_for_invocation(&labourer, &task).await.unwrap().unwrap();
    store.then([Next::Fail, Next::Fail, Next::Fail]);

    assert!(tm.release_claim(&task, &claim).await.unwrap());

    let row = tm.get_task(&task.task_id.0).await.unwrap().unwrap();
    assert_eq!(
        row.item["attempts"],
        AttributeValue::N("0".into()),
        "attempts as before the claim"
    );
    assert_eq!(row.greenfield, task.greenfield);
}

#[tokio::test]
async fn a_claim_given_back_whose_answer_was_lost_counts_as_given_back() {
    let (tm, store, labourer, task) = scripted_queue().await;
    let claim = tm.claim_for_invocation(&labourer, &task).await.unwrap().unwrap();
    // Applied, answer lost; the next try meets the task as it was before the claim.
    store.then([Next::ApplyThenFail]);

    assert!(
        tm.release_claim(&task, &claim).await.unwrap(),
        "our own give-back, not a change"
    );

    let row = tm.get_task(&task.task_id.0).await.unwrap().unwrap();
    assert!(!row.item.contains_key(sosw_core::task::manager::CLAIM_ID));
    assert_eq!(row.greenfield, task.greenfield);
}

#[tokio::test]
async fn a_claim_not_given_back_because_the_task_changed_still_says_so() {
    let (tm, _store, labourer, task) = scripted_queue().await;
    let claim = tm.claim_for_invocation(&labourer, &task).await.unwrap().unwrap();
    // The worker started after all and reported: the claim must stay.
    tm.mark_completed(&task.task_id.0, None, None).await.unwrap();

    assert!(!tm.release_claim(&task, &claim).await.unwrap());
}
