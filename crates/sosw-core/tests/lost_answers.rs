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
