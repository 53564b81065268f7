//! Creating tasks exactly once: the path the Scheduler uses for the rows of its queue files.
//!
//! Each task is written by a TransactWriteItems that holds, per task, three items:
//! - `Put` into `sosw_tasks` on `attribute_not_exists(task_id)`,
//! - `ConditionCheck` that the id is not in `sosw_closed_tasks`,
//! - `ConditionCheck` that the id is not in `sosw_retry_tasks` (key `labourer_id`, `task_id`).
//!
//! Moves between these tables are themselves transactions (see [`super::manager`]), so a
//! transaction sees a task in exactly one table: a task that exists anywhere — queued, claimed,
//! running, completed, waiting for a retry or archived — is never overwritten, whatever the caller
//! believes (a stale checkpoint, a continuation delivered twice, a retried parent). The
//! cancellation reasons of a refused transaction tell which tasks exist; the others are written
//! again without them.
//!
//! Costs: a transaction writes at most `transaction_items / 3` tasks (33 with DynamoDB's limit of
//! 100 items) and at most [`TRANSACTION_BYTES`] of items.
//! The `Put` consumes two WCU per KB (a plain put: one), and the two `ConditionCheck`s consume
//! transactional capacity of the archive and retry tables at the checked key's size.

use super::manager::{NewTask, TaskManager};
use super::model::{n, Item, TaskId};
use super::size::item_size;
use super::store::{Cond, TxItem, Written};
use crate::error::TaskError;
use aws_sdk_dynamodb::types::AttributeValue;
use tracing::debug;

/// DynamoDB's limit of items per TransactWriteItems (moto 5.2 accepts it too).
pub const TRANSACTION_ITEMS: usize = super::manager::DEFAULT_TRANSACTION_ITEMS;
/// Items of a transaction are kept under this many bytes (DynamoDB's limit is 4 MB per transaction).
pub const TRANSACTION_BYTES: usize = 3_500_000;
/// Items per task in a create-once transaction (a Put and two ConditionChecks).
const ITEMS_PER_TASK: usize = 3;

/// What [`TaskManager::create_tasks_once`] did.
#[derive(Debug, Clone, Default)]
pub struct CreateOnceOutcome {
    /// The items written, in queue order.
    pub written: Vec<Item>,
    /// Tasks that were not written because they already exist in one of sosw's tables.
    pub existing: Vec<TaskId>,
}

/// Queue positions `newest + step * (i + 1)` for `count` new tasks, all below `ceiling` (the
/// queued range is `greenfield < now`). Errors name the labourer and the limit.
pub fn queue_positions(
    labourer_id: &str,
    newest: i64,
    step: i64,
    count: usize,
    ceiling: i64,
) -> Result<Vec<i64>, TaskError> {
    let full = |greenfield: Option<i64>| TaskError::QueueFull {
        labourer_id: labourer_id.to_string(),
        newest,
        step,
        count,
        ceiling,
        greenfield,
    };
    (1..=count)
        .map(|i| {
            let offset = i64::try_from(i).ok().and_then(|i| step.checked_mul(i));
            match offset.and_then(|o| newest.checked_add(o)) {
                Some(g) if g < ceiling => Ok(g),
                Some(g) => Err(full(Some(g))),
                None => Err(full(None)),
            }
        })
        .collect()
}

impl TaskManager {
    /// Create tasks with caller-chosen ids at the end of the labourer's queue, each exactly once:
    /// a task whose id exists in `sosw_tasks`, `sosw_retry_tasks` or `sosw_closed_tasks` is left
    /// as it is and reported in [`CreateOnceOutcome::existing`]. `transaction_items` is the
    /// item limit of one TransactWriteItems (100 on DynamoDB and moto 5.2). Fields are checked as
    /// in strict mode (no generated fields).
    ///
    /// Positions continue from the newest queued greenfield in steps of `greenfield_task_step` and
    /// must stay below now (the queued range, as Python sosw reads it); when they would not, nothing
    /// is written and the error names the labourer and the limit.
    pub async fn create_tasks_once(
        &self,
        labourer_id: &str,
        tasks: Vec<(TaskId, NewTask)>,
        transaction_items: usize,
    ) -> Result<CreateOnceOutcome, TaskError> {
        if tasks.is_empty() {
            return Ok(CreateOnceOutcome::default());
        }
        let per_tx = (transaction_items / ITEMS_PER_TASK).max(1);
        let newest = self.newest_greenfield(labourer_id).await?;
        let positions = queue_positions(
            labourer_id,
            newest,
            self.config().greenfield_task_step,
            tasks.len(),
            self.now_secs(),
        )?;
        let ids: Vec<TaskId> = tasks.iter().map(|(id, _)| id.clone()).collect();
        // Greenfields are replaced below by the checked positions.
        let mut items = self.build_task_items_with_ids(labourer_id, 0, tasks, true)?;
        let greenfield_field = self.config().field("greenfield").to_string();
        for (item, g) in items.iter_mut().zip(&positions) {
            item.insert(greenfield_field.clone(), n(*g));
        }
        let mut outcome = CreateOnceOutcome::default();
        let mut group: Vec<(TaskId, Item)> = Vec::new();
        let mut bytes = 0;
        for (id, item) in ids.into_iter().zip(items) {
            let size = item_size(&item);
            if !group.is_empty() && (group.len() >= per_tx || bytes + size > TRANSACTION_BYTES) {
                self.put_once(labourer_id, std::mem::take(&mut group), &mut outcome)
                    .await?;
                bytes = 0;
            }
            bytes += size;
            group.push((id, item));
        }
        if !group.is_empty() {
            self.put_once(labourer_id, group, &mut outcome).await?;
        }
        Ok(outcome)
    }

    /// One group of tasks in one transaction; tasks reported as existing are dropped and the
    /// rest written again. Conflicts and throttles are retried by the store with sosw's bounded
    /// backoff.
    async fn put_once(
        &self,
        labourer_id: &str,
        mut group: Vec<(TaskId, Item)>,
        outcome: &mut CreateOnceOutcome,
    ) -> Result<(), TaskError> {
        let cfg = self.config();
        let tasks_table = cfg.dynamo_db_config.table_name.clone();
        let id_field = cfg.field("task_id").to_string();
        let labourer_field = cfg.field("labourer_id").to_string();
        let absent = || vec![Cond::NotExists(id_field.clone())];
        while !group.is_empty() {
            let mut tx = Vec::with_capacity(group.len() * ITEMS_PER_TASK);
            for (id, item) in &group {
                tx.push(TxItem::Put {
                    table: tasks_table.clone(),
                    item: item.clone(),
                    condition: absent(),
                });
                tx.push(TxItem::Check {
                    table: cfg.sosw_closed_tasks_table.clone(),
                    key: Item::from([(id_field.clone(), AttributeValue::S(id.0.clone()))]),
                    condition: absent(),
                });
                tx.push(TxItem::Check {
                    table: cfg.sosw_retry_tasks_table.clone(),
                    key: Item::from([
                        (labourer_field.clone(), AttributeValue::S(labourer_id.to_string())),
                        (id_field.clone(), AttributeValue::S(id.0.clone())),
                    ]),
                    condition: absent(),
                });
            }
            // One token per logical request: the retries of it are idempotent.
            let token = uuid::Uuid::new_v4().to_string();
            let flags = match self.store().transact(tx, Some(token)).await {
                Ok(Written::Done) => {
                    outcome.written.extend(group.drain(..).map(|(_, item)| item));
                    return Ok(());
                }
                Ok(Written::ConditionFailed(flags)) => flags,
                Err(source) => {
                    return Err(TaskError::Store {
                        operation: "TransactWriteItems(create_once)",
                        table: tasks_table,
                        source,
                    })
                }
            };
            let mut rest = Vec::with_capacity(group.len());
            for (i, task) in group.into_iter().enumerate() {
                let start = i * ITEMS_PER_TASK;
                let exists = flags
                    .get(start..start + ITEMS_PER_TASK)
                    .is_some_and(|f| f.iter().any(|x| *x));
                if exists {
                    debug!(labourer_id, task_id = %task.0 .0, "task exists; not written again");
                    outcome.existing.push(task.0);
                } else {
                    rest.push(task);
                }
            }
            if rest.len() == flags.len() / ITEMS_PER_TASK && !rest.is_empty() {
                // A refusal that names no task of ours cannot make progress.
                return Err(TaskError::Malformed {
                    task_id: rest[0].0 .0.clone(),
                    reason: "the create transaction was refused without naming which task exists".into(),
                });
            }
            group = rest;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_continue_from_the_newest_in_steps() {
        assert_eq!(
            queue_positions("w", 1000, 1000, 3, 1_750_000_000).unwrap(),
            [2000, 3000, 4000]
        );
    }

    #[test]
    fn positions_that_would_reach_now_are_refused_naming_the_labourer_and_the_limit() {
        let err = queue_positions("w", 1_749_999_000, 1000, 2, 1_750_000_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`w`"), "{err}");
        assert!(err.contains("1750000000"), "{err}");
        assert!(err.contains("greenfield_task_step"), "{err}");
    }

    #[test]
    fn positions_that_overflow_are_refused_not_wrapped() {
        let err = queue_positions("w", 1000, i64::MAX / 2, 3, i64::MAX)
            .unwrap_err()
            .to_string();
        assert!(err.contains("overflow"), "{err}");
    }
}
