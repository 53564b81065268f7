//! The fault-injecting proxy in front of moto: classification and counts, the observer, and each
//! verdict as an AWS SDK client experiences it.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use sosw_test_support::proxy::{RequestInfo, ResponseInfo, Verdict};
use sosw_test_support::LocalAws;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn no_retries(aws: &LocalAws) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

async fn put(ddb: &aws_sdk_dynamodb::Client, table: &str, id: &str) -> Result<(), String> {
    ddb.put_item()
        .table_name(table)
        .item("id", AttributeValue::S(id.into()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{:?}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}

async fn stored(ddb: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    ddb.scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items()
        .len()
}

/// The first `n` requests of operation `op` get `verdict`; the rest are forwarded.
fn first_n(op: &'static str, n: usize, verdict: Verdict) -> impl Fn(&RequestInfo) -> Verdict + Send + Sync {
    let seen = AtomicUsize::new(0);
    move |req: &RequestInfo| {
        if req.op() == op && seen.fetch_add(1, Ordering::SeqCst) < n {
            verdict.clone()
        } else {
            Verdict::Forward
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_requests_by_service_operation_and_items_and_shows_each_exchange() {
    let pairs: Arc<Mutex<Vec<(String, u16)>>> = Default::default();
    let seen = pairs.clone();
    let aws = LocalAws::start_behind(false, |b| {
        b.observe(move |req: &RequestInfo, resp: &ResponseInfo| {
            seen.lock().unwrap().push((req.op(), resp.status));
        })
    })
    .await;
    let ddb = aws.create_id_table("t").await;
    put(&ddb, "t", "a").await.unwrap();
    put(&ddb, "t", "b").await.unwrap();
    let got = ddb
        .get_item()
        .table_name("t")
        .key("id", AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    assert!(got.item().is_some());
    assert_eq!(stored(&ddb, "t").await, 2);
    let s3 = aws_sdk_s3::Client::new(aws.sdk_config());
    s3.create_bucket()
        .bucket("proxy-bucket")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("proxy-bucket")
        .key("k.csv")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();

    let c = aws.counts();
    let n = |op: &str| c.by_op.get(op).copied().unwrap_or(0);
    assert_eq!(n("dynamodb.CreateTable"), 1);
    assert_eq!(n("dynamodb.PutItem"), 2);
    assert_eq!(n("dynamodb.GetItem"), 1);
    assert_eq!(n("dynamodb.Scan"), 1);
    assert_eq!(n("s3.CreateBucket"), 1);
    assert_eq!(n("s3.PutObject"), 1);
    assert_eq!(c.requests, 7, "{c:?}");
    assert_eq!(c.items_returned, 3, "GetItem 1 + Scan 2: {c:?}");
    let pairs = pairs.lock().unwrap().clone();
    assert_eq!(pairs.len(), 7);
    assert!(pairs.iter().all(|(_, status)| *status == 200), "{pairs:?}");
    assert_eq!(pairs[1], ("dynamodb.PutItem".to_string(), 200));

    aws.reset_counts();
    assert_eq!(aws.counts(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_answered_by_the_proxy_and_retried_by_the_sdk() {
    let aws = LocalAws::start_behind(false, |b| {
        let throttle = first_n("dynamodb.PutItem", 2, Verdict::dynamodb_throttled());
        let fail = first_n("dynamodb.GetItem", 1, Verdict::server_error(500));
        b.intercept(move |req: &RequestInfo| match throttle(req) {
            Verdict::Forward => fail(req),
            v => v,
        })
    })
    .await;
    let ddb = aws.create_id_table("t").await;
    put(&ddb, "t", "a").await.expect("the third attempt passes");
    ddb.get_item()
        .table_name("t")
        .key("id", AttributeValue::S("a".into()))
        .send()
        .await
        .expect("retried");
    let c = aws.counts();
    assert_eq!(c.by_op["dynamodb.PutItem"], 3, "{c:?}");
    assert_eq!(c.by_op["dynamodb.GetItem"], 2, "{c:?}");

    // Without retries the client sees the typed errors themselves.
    let aws = LocalAws::start_behind(false, |b| {
        b.intercept(|req: &RequestInfo| match req.operation.as_str() {
            "PutItem" => Verdict::dynamodb_throttled(),
            "GetItem" => Verdict::server_error(503),
            _ => Verdict::Forward,
        })
    })
    .await;
    aws.create_id_table("t").await;
    let ddb = no_retries(&aws);
    let err = put(&ddb, "t", "a").await.unwrap_err();
    assert!(err.contains("ProvisionedThroughputExceededException"), "{err}");
    let err = ddb
        .get_item()
        .table_name("t")
        .key("id", AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(stored(&ddb, "t").await, 0, "a throttled write never reaches moto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_request_is_forwarded_after_its_delay() {
    let aws = LocalAws::start_behind(false, |b| {
        b.intercept(first_n(
            "dynamodb.PutItem",
            1,
            Verdict::Delay(Duration::from_millis(300)),
        ))
    })
    .await;
    let ddb = aws.create_id_table("t").await;
    let started = Instant::now();
    put(&ddb, "t", "a").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(stored(&ddb, "t").await, 1);
    assert_eq!(aws.counts().by_op["dynamodb.PutItem"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_then_drop_applies_the_write_and_leaves_the_client_without_an_answer() {
    let injected: Arc<Mutex<Vec<bool>>> = Default::default();
    let record = injected.clone();
    let aws = LocalAws::start_behind(false, |b| {
        b.intercept(first_n("dynamodb.PutItem", 1, Verdict::ForwardThenDrop))
            .observe(move |req: &RequestInfo, resp: &ResponseInfo| {
                if req.operation == "PutItem" {
                    record.lock().unwrap().push(resp.injected);
                }
            })
    })
    .await;
    aws.create_id_table("t").await;
    let ddb = no_retries(&aws);
    let err = put(&ddb, "t", "a").await.unwrap_err();
    assert!(
        err.to_lowercase().contains("dispatch") || err.contains("io"),
        "an I/O failure: {err}"
    );
    assert_eq!(stored(&ddb, "t").await, 1, "the write took effect upstream");
    // The SDK retries a dropped connection: its retry meets its own earlier success.
    let ddb = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    put(&ddb, "t", "b").await.unwrap();
    assert_eq!(stored(&ddb, "t").await, 2);
    assert_eq!(*injected.lock().unwrap(), vec![true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_forwards_some_items_and_returns_the_rest_unprocessed() {
    let aws = LocalAws::start_behind(false, |b| {
        b.intercept(|req: &RequestInfo| match req.operation.as_str() {
            "BatchWriteItem" => Verdict::PartialBatch { forward: 2 },
            _ => Verdict::Forward,
        })
    })
    .await;
    aws.create_id_table("t").await;
    let ddb = no_retries(&aws);
    let writes: Vec<WriteRequest> = (0..5)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("id", AttributeValue::S(format!("id{i}")))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    let out = ddb
        .batch_write_item()
        .request_items("t", writes)
        .send()
        .await
        .unwrap();
    let unprocessed = out.unprocessed_items().unwrap()["t"].clone();
    let ids: Vec<String> = unprocessed
        .iter()
        .map(|w| w.put_request().unwrap().item()["id"].as_s().unwrap().clone())
        .collect();
    assert_eq!(ids, ["id2", "id3", "id4"]);
    assert_eq!(stored(&ddb, "t").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_invoke_can_be_refused_with_429_or_accepted_by_the_proxy_itself() {
    let events: Arc<Mutex<Vec<(String, String)>>> = Default::default();
    let record = events.clone();
    let refused = AtomicUsize::new(0);
    let aws = LocalAws::start_behind(false, |b| {
        b.intercept(move |req: &RequestInfo| {
            if req.op() != "lambda.Invoke" {
                return Verdict::Forward;
            }
            if refused.fetch_add(1, Ordering::SeqCst) == 0 {
                return Verdict::lambda_too_many_requests();
            }
            let name = req.lambda_function().unwrap_or_default().to_string();
            record
                .lock()
                .unwrap()
                .push((name, String::from_utf8_lossy(&req.body).into_owned()));
            Verdict::lambda_accepted()
        })
    })
    .await;
    let conf = aws_sdk_lambda::config::Builder::from(aws.sdk_config())
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    let lambda = aws_sdk_lambda::Client::from_conf(conf);
    let invoke = || {
        lambda
            .invoke()
            .function_name("worker")
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_smithy_types::Blob::new(br#"{"task_id":"t1"}"#.to_vec()))
            .send()
    };
    let err = invoke().await.unwrap_err();
    assert!(
        matches!(err.as_service_error(), Some(e) if e.is_too_many_requests_exception()),
        "{err:?}"
    );
    let ok = invoke().await.expect("accepted");
    assert_eq!(ok.status_code(), 202);
    assert_eq!(
        *events.lock().unwrap(),
        vec![("worker".to_string(), r#"{"task_id":"t1"}"#.to_string())]
    );
    assert_eq!(aws.counts().by_op["lambda.Invoke"], 2);
}

/// A conditional TransactWriteItems (`attribute_not_exists(id)`) with this token.
async fn create_once(ddb: &aws_sdk_dynamodb::Client, id: &str, token: &str) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
    ddb.transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name("t")
                        .item("id", AttributeValue::S(id.into()))
                        .condition_expression("attribute_not_exists(id)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_retried_with_its_token_after_a_lost_answer_meets_its_own_success() {
    let aws = LocalAws::start_behind(false, |b| {
        b.intercept(first_n(
            "dynamodb.TransactWriteItems",
            1,
            Verdict::ForwardThenDrop,
        ))
    })
    .await;
    aws.create_id_table("t").await;
    let ddb = no_retries(&aws);
    assert!(
        create_once(&ddb, "a", "token-1").await.is_err(),
        "the answer was lost"
    );
    assert_eq!(stored(&ddb, "t").await, 1, "the transaction was applied");
    // DynamoDB answers a retry with the same token with the first success (moto alone would
    // evaluate it again and refuse it: the item exists).
    create_once(&ddb, "a", "token-1").await.unwrap();
    // A new token is a new transaction: its condition is evaluated.
    let err = create_once(&ddb, "a", "token-2").await.unwrap_err();
    assert!(err.contains("TransactionCanceled"), "{err}");
    assert_eq!(stored(&ddb, "t").await, 1);
}
