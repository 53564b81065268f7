//! Differential test of config assembly: the same documents in one config table on the local
//! AWS, read by Python sosw 0.7.51's own essentials (tests/oracle/python_config.py) and by ours;
//! the effective TaskManager and EcologyManager configs are compared key by key. Several
//! installations share the account: they differ by function name, so by own document. The
//! MetaHandler's table and the Worker Assistant's tasks table are compared too.

use serde_json::{json, Value};
use sosw_core::config_source::ConfigSource;
use sosw_test_support::{repo_root, venv_bin, LocalAws};
use std::process::Command;

/// Keys Python carries in every component's config that configure nothing we model: the
/// clients to build, and the copy of the own document's `task_config` that Python's
/// TaskManager/EcologyManager merge in with the rest of the own document (inert in Python too).
const INERT: &[&str] = &["init_clients", "task_config"];

fn python(aws: &LocalAws, essential: &str, function: &str) -> Value {
    let out = Command::new(venv_bin("python"))
        .arg(repo_root().join("tests/oracle/python_config.py"))
        .args([essential, function])
        .envs(aws.env())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python sosw failed for {function}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn operator(v: &Value) -> Option<sosw_core::config::ComparisonOperator> {
    serde_json::from_value(v.clone()).ok()
}

/// Differences between ours and Python's, as `path: ours vs python`. Numbers compare by value,
/// lists as sets (Python unions lists through a `set`, so its order is arbitrary), a `null` of
/// (or empty map) of ours equals a key Python does not have (both mean "not set"), operators by
/// meaning.
fn diff(path: &str, ours: &Value, python: &Value, out: &mut Vec<String>) {
    match (ours, python) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                if INERT.contains(&k.as_str()) {
                    continue;
                }
                match b.get(k) {
                    Some(vb) => diff(&format!("{path}.{k}"), va, vb, out),
                    None if va.is_null() || va.as_object().is_some_and(|m| m.is_empty()) => {}
                    None => out.push(format!("{path}.{k}: ours {va}, python has no such key")),
                }
            }
            for (k, vb) in b {
                if !INERT.contains(&k.as_str()) && !a.contains_key(k) {
                    out.push(format!("{path}.{k}: python {vb}, ours has no such key"));
                }
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (Value::Array(a), Value::Array(b)) => {
            let mut a: Vec<String> = a.iter().map(Value::to_string).collect();
            let mut b: Vec<String> = b.iter().map(Value::to_string).collect();
            a.sort();
            a.dedup();
            b.sort();
            if a != b {
                out.push(format!("{path}: ours {a:?} vs python {b:?}"));
            }
        }
        (a, b) if path.ends_with("feeling_comparison_operator") && operator(a).is_some() => {
            if operator(a) != operator(b) {
                out.push(format!("{path}: ours {a} vs python {b}"));
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: ours {a} vs python {b}")),
    }
}

/// The MetaHandler's config of an effective essential document, as the essentials type it.
fn meta_config(doc: &Value) -> sosw_core::config::MetaHandlerConfig {
    match doc.get("meta_handler_config") {
        None => Default::default(),
        Some(m) => sosw_core::config::from_value("meta_handler_config", m.clone()).unwrap(),
    }
}

/// The Worker Assistant's tasks table, as ours loads it, and Python's Worker Assistant's.
async fn worker_assistant_tables(aws: &LocalAws, function: &str) -> (Value, Value) {
    let source = ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        table: "config".into(),
        env: "production".into(),
    };
    let cfg: sosw_worker_assistant::WorkerAssistantConfig =
        source.load_essential(function, json!({}), None).await.unwrap();
    let ours = serde_json::to_value(cfg.task_config().unwrap().dynamo_db_config).unwrap();
    let py = python(aws, "worker_assistant", function);
    (ours, py["essential"]["dynamo_db_config"].clone())
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

async fn ours(aws: &LocalAws, essential: &str, function: &str) -> (Value, sosw_core::TaskConfig) {
    let source = ConfigSource::Dynamo {
        client: aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        table: "config".into(),
        env: "production".into(),
    };
    let defaults = match essential {
        "orchestrator" => sosw_orchestrator::OrchestratorConfig::defaults(),
        "scavenger" => sosw_scavenger::ScavengerConfig::defaults(),
        "scheduler" => sosw_scheduler::SchedulerConfig::defaults(),
        other => panic!("{other}"),
    };
    let doc: Value = source.load_essential(function, defaults, None).await.unwrap();
    // Through each essential's own typed config, as the Lambda loads it.
    let task_config = match essential {
        "orchestrator" => {
            let c: sosw_orchestrator::OrchestratorConfig =
                sosw_core::config::from_value(function, doc.clone()).unwrap();
            c.validate().unwrap();
            c.task_config
        }
        "scavenger" => {
            let c: sosw_scavenger::ScavengerConfig =
                sosw_core::config::from_value(function, doc.clone()).unwrap();
            c.task_config
        }
        _ => {
            sosw_scheduler::SchedulerConfig::from_document(doc.clone())
                .unwrap()
                .task_config
        }
    };
    (doc, task_config)
}

#[tokio::test]
async fn effective_task_config_equals_python_sosw_for_shared_and_per_installation_documents() {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    // Shared by every installation in the account: prefixed tables, shared task settings.
    aws.put_config(
        "sosw_essential_config",
        &json!({
            "task_config": {
                "dynamo_db_config": {
                    "table_name": "qa_sosw_tasks",
                    "index_greenfield": "qa_sosw_tasks_greenfield",
                    "row_mapper": {"task_id": "S", "labourer_id": "S", "greenfield": "N", "attempts": "N",
                                   "closed_at": "N", "completed_at": "N", "desired_launch_time": "N",
                                   "arn": "S", "payload": "S"},
                    "field_names": {"greenfield": "greenfield"}
                },
                "sosw_closed_tasks_table": "qa_sosw_closed_tasks",
                "sosw_retry_tasks_table": "qa_sosw_retry_tasks",
                "max_attempts": 5,
                "max_attempts_w1": 7,
                "greenfield_task_step": 10,
                "greenfield_invocation_delta": 7200,
                "ecology_config": {"default_metric_values": {"Period": 120}},
                "labourers": {
                    "w1": {"max_simultaneous_invocations": 3, "health_metrics": {"cpu": {
                        "details": {"Name": "CPUUtilization", "Namespace": "AWS/RDS"},
                        "feelings": {"3": 50, "4": 25}, "feeling_comparison_operator": "__le__"}}},
                    "w2": {"arn": "arn:aws:lambda:us-west-2:000000000000:function:w2", "max_attempts": 2,
                           "max_duration": 300}
                }
            },
            "meta_handler_config": {"dynamo_db_config": {"table_name": "qa_sosw_tasks_meta"}}
        }),
    )
    .await;
    // Installation 1 (unprefixed function names): own documents refine the shared one.
    aws.put_config(
        "sosw_orchestrator_config",
        &json!({"task_config": {"max_simultaneous_invocations": 4, "labourers": {"w1": {"max_simultaneous_invocations": 6}}},
                "invocation_number_coefficient": {"4": 1.5}}),
    )
    .await;
    aws.put_config(
        "sosw_scavenger_config",
        &json!({"retry_tasks_limit": 0, "sns_config": {"recipient": "arn:aws:sns:us-west-2:000000000000:qa_alerts"}}),
    )
    .await;
    aws.put_config(
        "sosw_scheduler_config",
        &json!({"queue_bucket": "qa-queue", "job_schema": {"chunkable_attrs": []},
                "task_config": {"greenfield_task_step": 20}}),
    )
    .await;
    // Installation 2 (`prod_` function names): its own tables through its own documents; a
    // top-level key of the own document reaches the TaskManager too, as in Python.
    aws.put_config(
        "prod_sosw_orchestrator_config",
        &json!({"task_config": {"dynamo_db_config": {"table_name": "prod_sosw_tasks"},
                                "sosw_closed_tasks_table": "prod_sosw_closed_tasks", "max_attempts": 4},
                "max_closed_to_analyse_for_duration": 20,
                // Python: `MetaHandler(custom_config=None)`, the defaults (not the shared table).
                "meta_handler_config": null}),
    )
    .await;
    aws.put_config(
        "prod_sosw_scavenger_config",
        &json!({"task_config": {"dynamo_db_config": {"table_name": "prod_sosw_tasks"},
                                "sosw_retry_tasks_table": "prod_sosw_retry_tasks",
                                "ecology_config": {"default_metric_values": {"MetricAggregationTimeSlice": 60}}},
                // Python tests it with `if`: 0 writes nothing.
                "meta_handler_config": {"write_meta_to_ddb": 0}}),
    )
    .await;

    let cases = [
        ("orchestrator", "sosw_orchestrator"),
        ("scavenger", "sosw_scavenger"),
        ("scheduler", "sosw_scheduler"),
        ("orchestrator", "prod_sosw_orchestrator"),
        ("scavenger", "prod_sosw_scavenger"),
        // No own document: the shared one alone.
        ("orchestrator", "other_sosw_orchestrator"),
    ];
    for (essential, function) in cases {
        let py = python(&aws, essential, function);
        let (doc, task_config) = ours(&aws, essential, function).await;
        let mut task = serde_json::to_value(&task_config).unwrap();
        let ecology = task.as_object_mut().unwrap().remove("ecology_config").unwrap();

        // Python's TaskManager keeps the `ecology_config` it hands to its EcologyManager; the
        // effective one is the EcologyManager's, compared below.
        let mut py_task = py["task"].clone();
        py_task.as_object_mut().unwrap().remove("ecology_config");
        let mut differences = Vec::new();
        diff("task_config", &task, &py_task, &mut differences);
        diff("ecology_config", &ecology, &py["ecology"], &mut differences);
        assert!(
            differences.is_empty(),
            "{function}: effective config differs from Python sosw's:\n  {}",
            differences.join("\n  ")
        );
        // Key order of the row mapper decides where `created_at` lands in the payload.
        assert_eq!(
            keys(&task["dynamo_db_config"]["row_mapper"]),
            keys(&py["task"]["dynamo_db_config"]["row_mapper"]),
            "{function}"
        );
        // The essential's own settings too.
        for key in ["retry_tasks_limit", "queue_bucket", "sns_config"] {
            if let Some(p) = py["essential"].get(key) {
                let mut d = Vec::new();
                diff(key, &doc[key], p, &mut d);
                assert!(d.is_empty(), "{function}: {d:?}");
            }
        }
        // The MetaHandler's: whether it writes, and where.
        let meta = meta_config(&doc);
        let py_writes = &py["meta"]["write_meta_to_ddb"];
        assert_eq!(
            meta.write_meta_to_ddb,
            !matches!(py_writes, Value::Null | Value::Bool(false)) && py_writes != &json!(0),
            "{function}: python {py_writes}"
        );
        assert_eq!(
            json!(meta.dynamo_db_config.table_name),
            py["meta"]["dynamo_db_config"]["table_name"],
            "{function}"
        );
    }

    // The Worker Assistant. Where Python reads its tasks table (a top-level `dynamo_db_config`
    // in its own document), both use the same table and field names.
    aws.put_config(
        "sosw_worker_assistant_config",
        &json!({"dynamo_db_config": {"table_name": "wa_sosw_tasks", "field_names": {"greenfield": "gf"}}}),
    )
    .await;
    let (wa, py) = worker_assistant_tables(&aws, "sosw_worker_assistant").await;
    assert_eq!(py["table_name"], "wa_sosw_tasks");
    assert_eq!(wa["table_name"], py["table_name"]);
    assert_eq!(wa["field_names"]["greenfield"], py["field_names"]["greenfield"]);
    // Without one, Python's ignores `task_config` and writes to `sosw_tasks`; ours follows the
    // shared document's prefixed table (docs/differences.md, "Worker Assistant's tasks table").
    let (wa, py) = worker_assistant_tables(&aws, "qa_sosw_worker_assistant").await;
    assert_eq!(py["table_name"], "sosw_tasks");
    assert_eq!(wa["table_name"], "qa_sosw_tasks");

    // Spot checks of what the comparison proved, in the terms of the issue.
    let (_, tc) = ours(&aws, "orchestrator", "sosw_orchestrator").await;
    assert_eq!(tc.dynamo_db_config.table_name, "qa_sosw_tasks");
    assert_eq!(tc.max_attempts, 5);
    assert_eq!(tc.max_attempts_for("w1"), 7);
    assert_eq!(tc.labourers["w1"].max_simultaneous_invocations, Some(6));
    let (_, tc) = ours(&aws, "orchestrator", "prod_sosw_orchestrator").await;
    assert_eq!(tc.dynamo_db_config.table_name, "prod_sosw_tasks");
    assert_eq!(tc.max_attempts, 4);
    assert_eq!(tc.max_closed_to_analyse_for_duration, 20);
}
