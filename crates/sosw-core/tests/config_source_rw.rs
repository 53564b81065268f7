//! Reading, writing and overlaying config documents (`ConfigSource`) against the local AWS:
//! the config table is read with the action the roles of a Python sosw deployment grant (Query),
//! `put` keeps what else a row or parameter holds, and an overlay replaces only named documents.

use serde_json::{json, Value};
use sosw_core::config_source::ConfigSource;
use sosw_test_support::LocalAws;
use sosw_test_support::{Reply, TestServer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn dynamo(aws: &LocalAws) -> ConfigSource {
    ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        table: "config".into(),
        env: "production".into(),
    }
}

/// A loopback DynamoDB that answers only Query (with one config row) and records every
/// operation (`X-Amz-Target`) and request body it receives.
/// (`X-Amz-Target`, body) of each request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn query_only_dynamodb() -> (TestServer, Seen) {
    let seen: Seen = Default::default();
    let record = seen.clone();
    let server = TestServer::start(move |request| {
        let target = request.header("x-amz-target").unwrap_or_default().to_string();
        record.lock().unwrap().push((
            target.clone(),
            String::from_utf8_lossy(&request.body).into_owned(),
        ));
        let (status, reply) = if target == "DynamoDB_20120810.Query" {
            (
                200,
                json!({"Count": 1, "ScannedCount": 1, "Items": [{
                    "env": {"S": "production"}, "config_name": {"S": "sosw_orchestrator_config"},
                    "config_value": {"S": "{\"task_config\": {\"max_attempts\": 4}}"}}]}),
            )
        } else {
            (
                400,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
                       "message": format!("not granted: {target}")}),
            )
        };
        Reply {
            status,
            headers: vec![("content-type".into(), "application/x-amz-json-1.0".into())],
            body: reply.to_string().into_bytes(),
        }
    });
    (server, seen)
}

/// Python sosw's roles grant `dynamodb:Query` (and DescribeTable) on the config table, not
/// GetItem: a document is read with one Query on its full key, nothing else.
#[tokio::test]
async fn the_config_table_is_read_with_one_query_as_python_roles_allow() {
    let (server, seen) = query_only_dynamodb();
    let sdk = sosw_test_support::sdk_config_for(&server.url).await;
    let source = ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table: "config".into(),
        env: "production".into(),
    };
    let doc = source.get("sosw_orchestrator_config").await.unwrap().unwrap();
    assert_eq!(doc["task_config"]["max_attempts"], 4);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "DynamoDB_20120810.Query");
    let body: Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(body["TableName"], "config");
    let values = &body["ExpressionAttributeValues"];
    assert_eq!(values[":env"], json!({"S": "production"}));
    assert_eq!(values[":name"], json!({"S": "sosw_orchestrator_config"}));
}

#[tokio::test]
async fn a_missing_document_is_none_when_read_with_query_on_moto() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let source = dynamo(&aws);
    assert!(source.get("absent_config").await.unwrap().is_none());
}

#[tokio::test]
async fn put_writes_config_value_and_keeps_the_rest_of_the_row() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let ddb = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    use aws_sdk_dynamodb::types::AttributeValue as A;
    ddb.put_item()
        .table_name("config")
        .item("env", A::S("production".into()))
        .item("config_name", A::S("sosw_scheduler_config".into()))
        .item("config_value", A::S("{}".into()))
        .item("owner", A::S("data team".into()))
        .send()
        .await
        .unwrap();
    let source = dynamo(&aws);
    let doc = json!({"queue_bucket": "b", "n": 18446744073709551615u64});
    source.put("sosw_scheduler_config", &doc).await.unwrap();
    assert_eq!(source.get("sosw_scheduler_config").await.unwrap(), Some(doc));
    let row = ddb
        .get_item()
        .table_name("config")
        .key("env", A::S("production".into()))
        .key("config_name", A::S("sosw_scheduler_config".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        row["owner"],
        A::S("data team".into()),
        "other attributes are kept"
    );

    // Not an object: refused before anything is written, naming the document.
    let err = source
        .put("sosw_scheduler_config", &json!([1]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sosw_scheduler_config") && err.contains("JSON object"),
        "{err}"
    );
    assert_eq!(
        source.get("sosw_scheduler_config").await.unwrap().unwrap()["queue_bucket"],
        "b"
    );
}

#[tokio::test]
async fn put_to_ssm_creates_a_string_or_overwrites_keeping_the_type() {
    let aws = LocalAws::start().await;
    let ssm = aws_sdk_ssm::Client::new(aws.sdk_config());
    ssm.put_parameter()
        .name("sosw_scavenger_config")
        .value("{}")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let source = ConfigSource::Ssm { client: ssm.clone() };
    source
        .put("sosw_scavenger_config", &json!({"a": 1}))
        .await
        .unwrap();
    source
        .put("sosw_orchestrator_config", &json!({"b": 2}))
        .await
        .unwrap();
    assert_eq!(
        source.get("sosw_scavenger_config").await.unwrap(),
        Some(json!({"a": 1}))
    );
    assert_eq!(
        source.get("sosw_orchestrator_config").await.unwrap(),
        Some(json!({"b": 2}))
    );
    let types: BTreeMap<String, String> = ssm
        .get_parameters()
        .names("sosw_scavenger_config")
        .names("sosw_orchestrator_config")
        .send()
        .await
        .unwrap()
        .parameters()
        .iter()
        .map(|p| {
            (
                p.name().unwrap().to_string(),
                p.r#type().unwrap().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(types["sosw_scavenger_config"], "SecureString");
    assert_eq!(types["sosw_orchestrator_config"], "String");
}

#[tokio::test]
async fn an_overlay_replaces_only_the_named_documents() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    aws.put_config("sosw_essential_config", &json!({"x": "stored"}))
        .await;
    aws.put_config("sosw_orchestrator_config", &json!({"y": "stored"}))
        .await;
    let overlay = ConfigSource::Overlay {
        base: Box::new(dynamo(&aws)),
        documents: [("sosw_orchestrator_config".to_string(), json!({"y": "proposed"}))].into(),
    };
    assert_eq!(
        overlay.get("sosw_essential_config").await.unwrap(),
        Some(json!({"x": "stored"}))
    );
    let doc: Value = overlay
        .load_essential("sosw_orchestrator", json!({}), None)
        .await
        .unwrap();
    assert_eq!(doc["y"], "proposed");
    assert_eq!(doc["x"], "stored");
    let err = overlay
        .put("sosw_orchestrator_config", &json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot store config `sosw_orchestrator_config`"),
        "{err}"
    );
}

/// An essential's start-up reads `sosw_essential_config` and its own document with both Queries
/// in flight at once (one round trip): each Query is held back by the proxy, and the second
/// arrives before the first is answered. Read sequentially, the first would be answered first.
#[tokio::test]
async fn the_two_documents_of_an_essential_are_read_concurrently() {
    use sosw_test_support::proxy::Verdict;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (arrived, answered) = (log.clone(), log.clone());
    let aws = LocalAws::start_behind(false, move |b| {
        b.intercept(move |r: &sosw_test_support::proxy::RequestInfo| {
            if r.operation == "Query" {
                arrived.lock().unwrap().push("sent".into());
                Verdict::Delay(std::time::Duration::from_secs(2))
            } else {
                Verdict::Forward
            }
        })
        .observe(
            move |r: &sosw_test_support::proxy::RequestInfo, _: &sosw_test_support::proxy::ResponseInfo| {
                if r.operation == "Query" {
                    answered.lock().unwrap().push("answered".into());
                }
            },
        )
    })
    .await;
    aws.deploy_storage().await;
    let source = dynamo(&aws);
    source
        .put(
            "sosw_essential_config",
            &json!({"task_config": {"max_attempts": 5}}),
        )
        .await
        .unwrap();
    source
        .put(
            "sosw_orchestrator_config",
            &json!({"task_config": {"max_attempts": 4}}),
        )
        .await
        .unwrap();
    log.lock().unwrap().clear();
    let docs = source.load_documents("sosw_orchestrator", None).await.unwrap();
    assert_eq!(docs.essential.unwrap()["task_config"]["max_attempts"], 5);
    assert_eq!(docs.own.unwrap()["task_config"]["max_attempts"], 4);
    assert_eq!(
        *log.lock().unwrap(),
        ["sent", "sent", "answered", "answered"],
        "both Queries in flight at once"
    );
}
