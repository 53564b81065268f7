//! A TransactWriteItems that DynamoDB applied but whose answer was lost (the connection dropped),
//! when the SDK gives up on it: it surfaces as a dispatch failure (the 10,000-task chaos soak saw
//! `connection closed before message completed` reach the Scheduler). Such an applied move
//! must not be reported as failed: with the request's idempotency token the store sends it again
//! and DynamoDB (here the harness's proxy, which emulates DynamoDB's token handling) answers with
//! its success. The client here has the SDK's retries off, so the failure reaches the store.

use aws_sdk_dynamodb::types::AttributeValue;
use sosw_core::task::store::{Cond, DynamoStore, TaskStore, TxItem, Written};
use sosw_core::task::Item;
use sosw_test_support::proxy::{RequestInfo, Verdict};
use sosw_test_support::LocalAws;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// A moto whose first TransactWriteItems is applied and then loses its answer.
async fn dropping_first_transaction() -> (LocalAws, Arc<AtomicUsize>) {
    let transactions = Arc::new(AtomicUsize::new(0));
    let seen = transactions.clone();
    let aws = LocalAws::start_behind(true, move |b| {
        b.intercept(move |req: &RequestInfo| {
            if req.op() == "dynamodb.TransactWriteItems" && seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Verdict::ForwardThenDrop
            } else {
                Verdict::Forward
            }
        })
    })
    .await;
    aws.deploy_storage().await;
    (aws, transactions)
}

fn no_sdk_retries(aws: &LocalAws) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    )
}

fn put_new(id: &str) -> TxItem {
    let item: Item = [
        ("task_id".to_string(), s(id)),
        ("labourer_id".to_string(), s("w")),
    ]
    .into_iter()
    .collect();
    TxItem::Put {
        table: "sosw_tasks".into(),
        item,
        condition: vec![Cond::NotExists("task_id".into())],
    }
}

#[tokio::test]
async fn a_transaction_with_a_token_whose_answer_was_lost_is_sent_again_and_succeeds() {
    let (aws, transactions) = dropping_first_transaction().await;
    let store = DynamoStore::new(no_sdk_retries(&aws));

    let written = store
        .transact(vec![put_new("t-1")], Some("token-of-one-logical-move".into()))
        .await
        .expect("the applied transaction is reported as applied");

    assert_eq!(written, Written::Done);
    assert_eq!(
        transactions.load(Ordering::SeqCst),
        1,
        "the repeat was answered from the token"
    );
}

#[tokio::test]
async fn without_a_token_a_lost_answer_stays_an_error() {
    let (aws, _) = dropping_first_transaction().await;
    let store = DynamoStore::new(no_sdk_retries(&aws));

    // Sending it again could not tell its own success from someone else's write: the caller decides.
    let err = store.transact(vec![put_new("t-2")], None).await.unwrap_err();
    assert!(sosw_core::error::render_error(&err).contains("dispatch"), "{err}");
}
