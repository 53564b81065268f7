//! Ecology metrics from CloudWatch, config documents from the config table and SSM, and meta rows,
//! against moto.

use crate::common;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use serde_json::{json, Value};
use sosw_core::config::{MetaHandlerConfig, TaskConfig};
use sosw_core::config_source::ConfigSource;
use sosw_core::ecology::CloudWatchMetrics;
use sosw_core::meta::MetaContext;
use sosw_core::{EcoStatus, EcologyManager, MetaHandler, SystemClock};
use std::sync::Arc;

async fn put_metric(aws: &sosw_test_support::LocalAws, name: &str, db: &str, values: &[f64]) {
    let cw = aws_sdk_cloudwatch::Client::new(aws.sdk_config());
    for v in values {
        cw.put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(
                        Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value(db)
                            .build(),
                    )
                    .value(*v)
                    // A few seconds back: CloudWatch (and moto) exclude the current second.
                    .timestamp(aws_smithy_types::DateTime::from_secs_f64(
                        SystemClock.now_f() - 5.0,
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

trait NowF {
    fn now_f(&self) -> f64;
}
impl NowF for SystemClock {
    fn now_f(&self) -> f64 {
        use sosw_core::Clock;
        self.now()
    }
}

fn metric_config(db: &str, op: &str, feelings: Value) -> Value {
    json!({
        "details": {"Name": "CPUUtilization", "Namespace": "AWS/RDS",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": db}]},
        "feelings": feelings,
        "feeling_comparison_operator": op
    })
}

#[tokio::test]
async fn cloudwatch_metrics_drive_labourer_health() {
    let aws = sosw_test_support::LocalAws::start().await;
    aws.deploy_storage().await;
    put_metric(&aws, "CPUUtilization", "busy-db", &[60.0, 80.0]).await;
    put_metric(&aws, "CPUUtilization", "calm-db", &[10.0, 20.0]).await;
    let cfg = TaskConfig::from_user(&json!({"labourers": {
        "calm": {"health_metrics": {"cpu": metric_config("calm-db", "<=", json!({"3": 50, "4": 25}))}},
        "busy": {"health_metrics": {"cpu": metric_config("busy-db", "<=", json!({"3": 50, "4": 25})),
                                     "cpu2": metric_config("calm-db", "le", json!({"3": 50, "4": 25}))}},
        "mid":  {"health_metrics": {"cpu": metric_config("busy-db", "<", json!({"2": 75, "3": 65, "4": 55}))}},
        "none": {}
    }}))
    .unwrap();
    let clock: Arc<dyn sosw_core::Clock> = Arc::new(SystemClock);
    let eco = EcologyManager::new(
        Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
            aws.sdk_config(),
        ))),
        cfg.ecology_config.clone(),
        clock.clone(),
    );
    let labourers = sosw_core::Labourer::register_all(&cfg, 0);
    let health: Vec<EcoStatus> = {
        let mut h = Vec::new();
        for l in &labourers {
            h.push(eco.labourer_health(l).await.unwrap());
        }
        h
    };
    // calm: mean 15 <= 25 -> 4; busy: mean 70 > 50 -> 0 (worst of its metrics);
    // mid: 70 < 75 -> 2; none: no metrics -> 4.
    assert_eq!(
        health,
        [
            EcoStatus::HIGH,
            EcoStatus::BAD,
            EcoStatus::MODERATE,
            EcoStatus::HIGH
        ]
    );

    // Values are cached per run: new datapoints are not seen until reset().
    put_metric(&aws, "CPUUtilization", "calm-db", &[100.0, 100.0, 100.0, 100.0]).await;
    assert_eq!(eco.labourer_health(&labourers[0]).await.unwrap(), EcoStatus::HIGH);
    eco.reset().await;
    assert_eq!(eco.labourer_health(&labourers[0]).await.unwrap(), EcoStatus::BAD);
}

#[tokio::test]
async fn a_metric_without_datapoints_counts_as_bad() {
    let aws = sosw_test_support::LocalAws::start().await;
    let cfg = TaskConfig::from_user(&json!({"labourers": {
        "w": {"health_metrics": {"cpu": metric_config("no-such-db", "<=", json!({"4": 25}))}}}}))
    .unwrap();
    let eco = EcologyManager::new(
        Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
            aws.sdk_config(),
        ))),
        cfg.ecology_config.clone(),
        Arc::new(SystemClock),
    );
    let l = sosw_core::Labourer::register_all(&cfg, 0).remove(0);
    assert_eq!(eco.labourer_health(&l).await.unwrap(), EcoStatus::BAD);
}

#[tokio::test]
async fn running_task_counts_are_cached_per_run() {
    let e = env().await;
    e.tm.create_tasks("worker", (0..3).map(task).collect(), true)
        .await
        .unwrap();
    let l = e.tm.register_labourer("worker").unwrap();
    for t in e.tm.next_tasks(&l, 2).await.unwrap() {
        e.tm.claim(&l, &t).await.unwrap();
    }
    let eco = EcologyManager::new(
        Arc::new(CloudWatchMetrics(aws_sdk_cloudwatch::Client::new(
            e.aws.sdk_config(),
        ))),
        Default::default(),
        Arc::new(e.clock.clone()),
    );
    assert_eq!(eco.running_tasks(&l, &e.tm).await.unwrap(), 2);
    eco.add_running_tasks("worker", 1);
    assert_eq!(
        eco.running_tasks(&l, &e.tm).await.unwrap(),
        3,
        "cached and incremented, not re-queried"
    );
    eco.reset().await;
    assert_eq!(eco.running_tasks(&l, &e.tm).await.unwrap(), 2);
}

async fn put_config(aws: &sosw_test_support::LocalAws, name: &str, value: &str) {
    aws_sdk_dynamodb::Client::new(aws.sdk_config())
        .put_item()
        .table_name("config")
        .item("env", AttributeValue::S("production".into()))
        .item("config_name", AttributeValue::S(name.into()))
        .item("config_value", AttributeValue::S(value.into()))
        .send()
        .await
        .unwrap();
}

#[derive(serde::Deserialize, Debug)]
struct EssentialCfg {
    task_config: TaskConfig,
    tags: Vec<String>,
    from: String,
}

#[tokio::test]
async fn essential_config_is_assembled_from_the_config_table_in_python_order() {
    let aws = sosw_test_support::LocalAws::start().await;
    aws.deploy_storage().await;
    put_config(&aws, "sosw_essential_config", r#"{"task_config": {"labourers": {"w": {"max_simultaneous_invocations": 3}}}, "from": "essential", "tags": ["e"]}"#).await;
    put_config(
        &aws,
        "sosw_orchestrator_config",
        r#"{"task_config": {"max_attempts": 5}, "from": "function"}"#,
    )
    .await;
    let source = ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        table: "config".into(),
        env: "production".into(),
    };
    let defaults = json!({"task_config": sosw_core::config::default_task_config(), "tags": ["default"], "from": "defaults"});
    let cfg: EssentialCfg = source
        .load_essential(
            "sosw_orchestrator",
            defaults.clone(),
            Some(json!({"tags": ["custom"]})),
        )
        .await
        .unwrap();
    assert_eq!(
        cfg.task_config.labourers["w"].max_simultaneous_invocations,
        Some(3)
    );
    assert_eq!(cfg.task_config.max_attempts, 5);
    assert_eq!(
        cfg.task_config.greenfield_task_step, 1000,
        "defaults fill the rest"
    );
    assert_eq!(cfg.from, "function");
    assert_eq!(cfg.tags, ["custom"], "a later list replaces an earlier one");

    // A config of the wrong shape names the key.
    put_config(
        &aws,
        "sosw_scavenger_config",
        r#"{"task_config": {"max_attempts": "many"}}"#,
    )
    .await;
    let err = source
        .load_essential::<EssentialCfg>("sosw_scavenger", defaults.clone(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sosw_scavenger_config") && err.contains("task_config.max_attempts"),
        "{err}"
    );

    put_config(&aws, "sosw_scheduler_config", "{not json").await;
    let err = source
        .load_essential::<EssentialCfg>("sosw_scheduler", defaults, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid JSON"), "{err}");
}

#[tokio::test]
async fn a_missing_config_table_means_defaults_as_in_python_and_other_read_errors_stop() {
    let aws = sosw_test_support::LocalAws::start().await;
    let source = ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        table: "config".into(),
        env: "production".into(),
    };
    // Python sosw: DescribeTable fails, no config access, every document is `{}`.
    assert_eq!(source.get("sosw_orchestrator_config").await.unwrap(), None);
    let docs = source.load_documents("sosw_orchestrator", None).await.unwrap();
    assert_eq!(docs, sosw_core::config::ConfigDocuments::default());
    // Operator tools ask for the table explicitly.
    let err = source.check_readable().await.unwrap_err().to_string();
    assert!(
        err.contains("DynamoDB table `config`") && err.contains("ResourceNotFound"),
        "{err}"
    );

    // Anything else (here: nothing listening) is an error naming the table and the document.
    let unreachable = sosw_test_support::sdk_config_for("http://127.0.0.1:9").await;
    let source = ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(&unreachable),
        table: "config".into(),
        env: "production".into(),
    };
    let err = source
        .get("sosw_orchestrator_config")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("DynamoDB table `config`"), "{err}");
    assert!(err.contains("sosw_orchestrator_config"), "{err}");
}

#[tokio::test]
async fn config_documents_can_come_from_ssm() {
    let aws = sosw_test_support::LocalAws::start().await;
    let ssm = aws_sdk_ssm::Client::new(aws.sdk_config());
    ssm.put_parameter()
        .name("sosw_orchestrator_config")
        .value(r#"{"task_config": {"max_attempts": 9}}"#)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let source = ConfigSource::Ssm { client: ssm };
    let got = source.get("sosw_orchestrator_config").await.unwrap().unwrap();
    assert_eq!(got["task_config"]["max_attempts"], 9);
    assert!(source.get("absent").await.unwrap().is_none());
}

#[tokio::test]
async fn meta_rows_are_batched_and_a_missing_table_never_fails() {
    let aws = sosw_test_support::LocalAws::start().await;
    let clock: Arc<dyn sosw_core::Clock> = Arc::new(sosw_core::ManualClock::at(T0));
    let dynamo = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    // No tables yet: flushing logs and returns 0.
    let meta = MetaHandler::new(dynamo.clone(), &MetaHandlerConfig::default(), clock.clone());
    meta.post("t1", "invoked", &[("labourer_id", json!("w"))]);
    assert_eq!(meta.flush().await, 0);

    aws.deploy_storage().await;
    meta.set_context(MetaContext {
        author: "sosw_orchestrator".into(),
        invocation_id: "req-1".into(),
        log_stream_name: "ls".into(),
    });
    for i in 0..30 {
        meta.post(&format!("t{i}"), "invoked", &[("labourer_id", json!("w"))]);
    }
    meta.post("t0", "archived", &[]);
    assert_eq!(meta.flush().await, 31);
    let rows = dynamo.scan().table_name("sosw_tasks_meta").send().await.unwrap();
    assert_eq!(rows.count(), 31);
    let row = rows
        .items()
        .iter()
        .find(|r| r["task_id"].as_s().unwrap() == "t5")
        .unwrap();
    assert_eq!(row["action"], AttributeValue::S("invoked".into()));
    assert_eq!(row["author"], AttributeValue::S("sosw_orchestrator".into()));
    assert_eq!(row["invocation_id"], AttributeValue::S("req-1".into()));
    assert_eq!(row["labourer_id"], AttributeValue::S("w".into()));

    // Disabled meta writes nothing.
    let off: MetaHandlerConfig = serde_json::from_value(json!({"write_meta_to_ddb": false})).unwrap();
    let quiet = MetaHandler::new(dynamo.clone(), &off, clock);
    quiet.post("t99", "invoked", &[]);
    assert_eq!(quiet.flush().await, 0);
}
