//! Failure paths of the DynamoDB store that the local emulator cannot produce, with canned SDK
//! responses (`aws-smithy-mocks`): unprocessed items, transaction conflicts, retries exhausted,
//! typed refusals, and errors that keep their cause and name the table. Time is paused, so the
//! backoff costs nothing.

use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ResourceNotFoundException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, PutRequest, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use sosw_core::aws::SOSW_RETRIES;
use sosw_core::task::store::{Cond, DynamoStore, FailureKind, TaskStore, TxItem, Update, Written};
use sosw_core::task::Item;
use sosw_core::{ManualClock, TaskConfig, TaskError, TaskManager};
use std::sync::Arc;

fn item(id: &str) -> Item {
    Item::from([("task_id".to_string(), AttributeValue::S(id.into()))])
}

fn store(rules: &[&Rule]) -> DynamoStore {
    DynamoStore::new(mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, rules))
}

fn unprocessed(ids: &[&str]) -> BatchWriteItemOutput {
    let requests = ids
        .iter()
        .map(|id| {
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item(id))).build().unwrap())
                .build()
        })
        .collect();
    BatchWriteItemOutput::builder()
        .unprocessed_items("sosw_tasks", requests)
        .build()
}

fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
    let reasons = codes
        .iter()
        .map(|c| CancellationReason::builder().code(*c).build())
        .collect();
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .build(),
    )
}

fn put(id: &str) -> TxItem {
    TxItem::Put {
        table: "sosw_tasks".into(),
        item: item(id),
        condition: vec![Cond::NotExists("task_id".into())],
    }
}

#[tokio::test(start_paused = true)]
async fn unprocessed_items_are_written_again_until_done() {
    let rule = mock!(Client::batch_write_item)
        .sequence()
        .output(|| unprocessed(&["b", "c"]))
        .output(|| unprocessed(&["c"]))
        .output(|| BatchWriteItemOutput::builder().build())
        .build();
    let s = store(&[&rule]);
    s.batch_put("sosw_tasks", vec![item("a"), item("b"), item("c")])
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn items_still_unprocessed_after_the_bounded_retries_fail_the_write_naming_the_table() {
    let rule = mock!(Client::batch_write_item)
        .sequence()
        .output(|| unprocessed(&["a"]))
        .repeatedly()
        .build();
    let config = TaskConfig::from_user(&serde_json::json!({})).unwrap();
    let tm = TaskManager::with_store(
        Arc::new(store(&[&rule])),
        config,
        Arc::new(ManualClock::at(1_750_000_000.0)),
    );
    let err = tm.batch_put("sosw_tasks", vec![item("a")]).await.unwrap_err();
    assert_eq!(
        rule.num_calls(),
        SOSW_RETRIES + 1,
        "bounded: one try and {SOSW_RETRIES} retries"
    );
    let TaskError::Store {
        operation,
        table,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*operation, table.as_str()), ("BatchWriteItem", "sosw_tasks"));
    assert_eq!(source.kind, FailureKind::Exhausted);
    assert!(source.is_retryable());
    let text = sosw_core::error::render_error(&err);
    assert!(
        text.contains("1 item(s) still unprocessed after 8 attempts"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_transaction_conflict_is_retried_and_then_succeeds() {
    let rule = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled(&["None", "TransactionConflict"]))
        .times(2)
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let s = store(&[&rule]);
    let out = s
        .transact(vec![put("a"), put("b")], Some("t".into()))
        .await
        .unwrap();
    assert_eq!(out, Written::Done);
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_transaction_still_conflicting_after_the_bounded_retries_is_an_exhausted_error() {
    let rule = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled(&["TransactionConflict"]))
        .repeatedly()
        .build();
    let s = store(&[&rule]);
    let err = s.transact(vec![put("a")], None).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Exhausted);
    assert_eq!(rule.num_calls(), SOSW_RETRIES + 1);
    // The SDK error stays in the chain.
    let text = sosw_core::error::render_error(&err);
    assert!(
        text.contains("still conflicting or throttled after 8 attempts"),
        "{text}"
    );
    assert!(
        text.contains("TransactionCanceledException") || text.contains("service error"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_condition_is_final_and_names_the_items_that_failed() {
    let rule =
        mock!(Client::transact_write_items).then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
    let s = store(&[&rule]);
    let out = s.transact(vec![put("a"), put("b")], None).await.unwrap();
    assert_eq!(out, Written::ConditionFailed(vec![false, true]));
    assert_eq!(rule.num_calls(), 1, "not retried");
}

#[tokio::test(start_paused = true)]
async fn update_errors_are_told_apart_by_their_type() {
    let lost = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
    });
    let missing = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let ok = mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build());
    let s = store(&[&lost, &missing, &ok]);
    let update = || Update {
        increment: vec!["attempts".into()],
        ..Update::default()
    };
    let out = s.update("sosw_tasks", item("a"), update(), vec![]).await.unwrap();
    assert_eq!(
        out,
        Written::ConditionFailed(vec![true]),
        "a lost race, not a fault"
    );
    let err = s
        .update("sosw_tasks", item("a"), update(), vec![])
        .await
        .unwrap_err();
    assert!(err.is_resource_not_found(), "{err}");
    assert_eq!(
        s.update("sosw_tasks", item("a"), update(), vec![]).await.unwrap(),
        Written::Done
    );
}

#[tokio::test(start_paused = true)]
async fn unprocessed_keys_are_read_again() {
    let first = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses("sosw_tasks", vec![item("a")])
            .unprocessed_keys(
                "sosw_tasks",
                KeysAndAttributes::builder().keys(item("b")).build().unwrap(),
            )
            .build()
    });
    let second = mock!(Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses("sosw_tasks", vec![item("b")])
            .build()
    });
    let s = store(&[&first, &second]);
    let keys = vec![
        ("sosw_tasks".to_string(), item("a")),
        ("sosw_tasks".to_string(), item("b")),
    ];
    let found = s.batch_get(keys, "task_id").await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}
