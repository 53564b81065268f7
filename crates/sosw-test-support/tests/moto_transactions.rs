//! moto's TransactWriteItems as every `LocalAws` serves it (`moto/sitecustomize.py`): all or
//! nothing, the cancellation reasons DynamoDB gives, and a cost that does not grow with the table.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use sosw_test_support::LocalAws;
use std::collections::HashMap;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("id".to_string(), s(id))])
}

fn put(table: &str, id: &str, value: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .item("id", s(id))
                .item("value", s(value))
                .condition_expression("attribute_not_exists(id)")
                .build()
                .unwrap(),
        )
        .build()
}

fn set_value(table: &str, id: &str, value: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(key(id)))
                .update_expression("SET #v = :v")
                .expression_attribute_names("#v", "value")
                .expression_attribute_values(":v", s(value))
                .build()
                .unwrap(),
        )
        .build()
}

async fn value(ddb: &Client, table: &str, id: &str) -> Option<String> {
    let out = ddb
        .get_item()
        .table_name(table)
        .set_key(Some(key(id)))
        .consistent_read(true)
        .send()
        .await;
    out.expect("get_item").item.map(|item| {
        item.get("value")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    })
}

/// The cancellation reasons' codes, one per item ("None" for an item that would have succeeded).
fn reasons(err: SdkError<TransactWriteItemsError>) -> Vec<(String, Option<HashMap<String, AttributeValue>>)> {
    match err.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(e) => e
            .cancellation_reasons
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.code.unwrap_or_default(), r.item))
            .collect(),
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_condition_cancels_the_whole_transaction_and_names_the_item() {
    let aws = LocalAws::start().await;
    let ddb = Client::new(aws.sdk_config());
    aws.create_id_table("t").await;
    ddb.put_item()
        .table_name("t")
        .item("id", s("taken"))
        .item("value", s("old"))
        .send()
        .await
        .unwrap();
    ddb.put_item()
        .table_name("t")
        .item("id", s("present"))
        .item("value", s("here"))
        .send()
        .await
        .unwrap();

    let err = ddb
        .transact_write_items()
        .transact_items(put("t", "fresh", "new"))
        .transact_items(set_value("t", "taken", "changed"))
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name("t")
                        .item("id", s("taken2"))
                        .condition_expression("attribute_not_exists(id)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name("t")
                        .set_key(Some(key("present")))
                        .condition_expression("attribute_not_exists(id)")
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("the condition check on `present` fails");

    let reasons = reasons(err);
    let codes: Vec<&str> = reasons.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, ["None", "None", "None", "ConditionalCheckFailed"]);
    let old = reasons[3]
        .1
        .as_ref()
        .expect("ALL_OLD returns the item that failed its condition");
    assert_eq!(old.get("value"), Some(&s("here")));
    assert_eq!(
        value(&ddb, "t", "fresh").await,
        None,
        "the put before the failed item is not written"
    );
    assert_eq!(
        value(&ddb, "t", "taken").await.as_deref(),
        Some("old"),
        "the update is not applied"
    );
    assert_eq!(value(&ddb, "t", "taken2").await, None);
}

#[tokio::test]
async fn a_write_that_fails_midway_is_undone_item_by_item() {
    let aws = LocalAws::start().await;
    let ddb = Client::new(aws.sdk_config());
    aws.create_id_table("t").await;
    ddb.put_item()
        .table_name("t")
        .item("id", s("kept"))
        .item("value", s("old"))
        .send()
        .await
        .unwrap();
    ddb.put_item()
        .table_name("t")
        .item("id", s("gone"))
        .item("value", s("old"))
        .send()
        .await
        .unwrap();

    // The fourth item passes every check but cannot be written: over DynamoDB's 400 KB item limit.
    let huge = "x".repeat(410 * 1024);
    let err = ddb
        .transact_write_items()
        .transact_items(put("t", "fresh", "new"))
        .transact_items(set_value("t", "kept", "changed"))
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("t")
                        .set_key(Some(key("gone")))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(set_value("t", "other", &huge))
        .send()
        .await
        .expect_err("the oversized item fails the transaction");
    // DynamoDB (and moto) answer a ValidationException for an item over the limit.
    let meta = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&err).map(str::to_string);
    assert_eq!(meta.as_deref(), Some("ValidationException"), "{err:?}");

    assert_eq!(
        value(&ddb, "t", "fresh").await,
        None,
        "the new item is taken back"
    );
    assert_eq!(
        value(&ddb, "t", "kept").await.as_deref(),
        Some("old"),
        "the update is taken back"
    );
    assert_eq!(
        value(&ddb, "t", "gone").await.as_deref(),
        Some("old"),
        "the deleted item is put back"
    );
    assert_eq!(value(&ddb, "t", "other").await, None);
}

#[tokio::test]
async fn two_operations_on_one_item_are_refused_before_anything_is_written() {
    let aws = LocalAws::start().await;
    let ddb = Client::new(aws.sdk_config());
    aws.create_id_table("t").await;
    let err = ddb
        .transact_write_items()
        .transact_items(put("t", "a", "1"))
        .transact_items(set_value("t", "a", "2"))
        .send()
        .await
        .expect_err("one item, two operations");
    let text = format!("{:?}", err.into_service_error());
    assert!(text.contains("multiple operations on one item"), "{text}");
    assert_eq!(value(&ddb, "t", "a").await, None);
}

#[tokio::test]
async fn a_transaction_that_succeeds_writes_every_item_in_one_step() {
    let aws = LocalAws::start_serialised().await;
    let ddb = Client::new(aws.sdk_config());
    aws.create_id_table("t").await;
    aws.create_id_table("u").await;
    ddb.put_item()
        .table_name("u")
        .item("id", s("moved"))
        .item("value", s("v"))
        .send()
        .await
        .unwrap();
    ddb.transact_write_items()
        .transact_items(put("t", "moved", "v"))
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("u")
                        .set_key(Some(key("moved")))
                        .condition_expression("attribute_exists(id)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("the move commits");
    assert_eq!(value(&ddb, "t", "moved").await.as_deref(), Some("v"));
    assert_eq!(value(&ddb, "u", "moved").await, None);
}

/// The patch's reason to be: on moto's own code a 100-item transaction over a 20,000-item table
/// deep-copies the table 100 times (2,000,000 item copies, minutes and gigabytes); patched, it
/// touches its 100 items. The test only checks the outcome; `tests/benches/lifecycle.rs` and
/// `scripts/chaos` print what the size costs.
#[tokio::test]
async fn transactions_over_a_large_table_commit() {
    let aws = LocalAws::start().await;
    let ddb = Client::new(aws.sdk_config());
    aws.create_id_table("big").await;
    let ids: Vec<String> = (0..20_000).map(|i| format!("row-{i:05}")).collect();
    for chunk in ids.chunks(25) {
        let writes = chunk
            .iter()
            .map(|id| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().item("id", s(id)).build().unwrap())
                    .build()
            })
            .collect();
        let out = ddb
            .batch_write_item()
            .request_items("big", writes)
            .send()
            .await
            .expect("seed");
        assert!(out.unprocessed_items.unwrap_or_default().is_empty());
    }
    for round in 0..5 {
        let mut tx = ddb.transact_write_items();
        for i in 0..100 {
            tx = tx.transact_items(set_value("big", &ids[round * 100 + i], "touched"));
        }
        tx.send().await.expect("100-item transaction over 20,000 items");
    }
    assert_eq!(value(&ddb, "big", "row-00499").await.as_deref(), Some("touched"));
    assert_eq!(value(&ddb, "big", "row-00500").await.as_deref(), Some(""));
}
