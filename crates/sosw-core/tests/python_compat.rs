//! Wire compatibility with Python sosw 0.7.x (PyPI `sosw`, installed in .venv by scripts/setup):
//! both implementations share one DynamoDB on moto and operate on each other's tasks.

use aws_sdk_dynamodb::types::AttributeValue;

use serde_json::{json, Value};
use sosw_core::{ClaimOutcome, Clock, SystemClock};
use sosw_test_support::{repo_root, venv_bin, LocalAws};
use std::collections::BTreeMap;
use std::process::Command;

fn python(aws: &LocalAws, args: &[&str]) -> Value {
    let script = repo_root().join("crates/sosw-core/tests/python/sosw_compat.py");
    let out = Command::new(venv_bin("python"))
        .arg(script)
        .args(args)
        .envs(aws.env())
        .env("AWS_LAMBDA_FUNCTION_NAME", "sosw_compat_test")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python sosw failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The DynamoDB type of each attribute of a raw item as Python's client returns it.
fn python_types(raw: &Value) -> BTreeMap<String, String> {
    raw.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_object().unwrap().keys().next().unwrap().clone()))
        .collect()
}

fn rust_types(item: &sosw_core::task::Item) -> BTreeMap<String, String> {
    item.iter()
        .map(|(k, v)| {
            let t = match v {
                AttributeValue::S(_) => "S",
                AttributeValue::N(_) => "N",
                AttributeValue::Bool(_) => "BOOL",
                AttributeValue::M(_) => "M",
                AttributeValue::L(_) => "L",
                _ => "other",
            };
            (k.clone(), t.to_string())
        })
        .collect()
}

/// The system clock: Python sosw reads real time, so both sides must agree on "now".
async fn env_real_time() -> (LocalAws, sosw_core::TaskManager) {
    let aws = LocalAws::start().await;
    aws.deploy_storage().await;
    let cfg =
        sosw_core::TaskConfig::from_user(&json!({"labourers": {"worker": {"max_duration": 600}}})).unwrap();
    let tm = sosw_core::TaskManager::new(
        aws_sdk_dynamodb::Client::new(aws.sdk_config()),
        aws_sdk_lambda::Client::new(aws.sdk_config()),
        cfg,
        std::sync::Arc::new(SystemClock),
    );
    (aws, tm)
}

#[tokio::test]
async fn a_task_created_by_python_sosw_is_read_claimed_and_archived_by_ours() {
    let (aws, tm) = env_real_time().await;
    let created = python(&aws, &["create", "worker", r#"{"region": "eu", "ids": [1, 2]}"#]);
    let task_id = created["task_id"].as_str().unwrap().to_string();

    let l = tm.register_labourer("worker").unwrap();
    let next = tm.next_tasks(&l, 5).await.unwrap();
    assert_eq!(next.len(), 1);
    let t = &next[0];
    assert_eq!(t.task_id.0, task_id);
    assert_eq!(
        t.greenfield, 2000,
        "Python starts an empty queue at 1000 + step, as we do"
    );
    assert_eq!(t.attempts, 0);
    let payload: Value = serde_json::from_str(&tm.invocation_payload(t).unwrap()).unwrap();
    assert_eq!(payload["region"], "eu");
    assert_eq!(payload["ids"], json!([1, 2]));
    assert_eq!(payload["task_id"], task_id.as_str());

    assert_eq!(tm.claim(&l, t).await.unwrap(), ClaimOutcome::Claimed);
    let stats = json!({"rows": 2}).as_object().cloned().unwrap();
    tm.mark_completed(&task_id, Some(&stats), None).await.unwrap();
    let l = tm.register_labourer("worker").unwrap();
    let done = tm.completed_tasks(&l).await.unwrap().remove(0);
    assert!(tm.archive(&done).await.unwrap());
    let closed = tm.get_from("sosw_closed_tasks", &task_id).await.unwrap().unwrap();
    assert_eq!(
        closed.item["labourer_id_task_status"],
        AttributeValue::S("worker_1".into())
    );
    assert_eq!(closed.attempts, 1);
    assert!(
        python(&aws, &["get", &task_id]).as_object().unwrap().is_empty(),
        "gone from Python's view of the queue"
    );
}

#[tokio::test]
async fn a_task_created_by_ours_is_read_by_python_sosw_with_identical_attributes_and_types() {
    let (aws, tm) = env_real_time().await;
    // One task from each implementation, same payload, same queue.
    let py = python(
        &aws,
        &["create", "worker", r#"{"region": "eu", "n": 1.5, "name": "é"}"#],
    );
    let ours = tm
        .create_task(
            "worker",
            json!({"payload": {"region": "eu", "n": 1.5, "name": "é"}})
                .as_object()
                .cloned()
                .unwrap(),
            true,
        )
        .await
        .unwrap();
    let our_id = ours["task_id"].as_s().unwrap().clone();

    let py_raw = python(&aws, &["raw", py["task_id"].as_str().unwrap()]);
    let our_raw = python(&aws, &["raw", &our_id]);
    assert_eq!(
        python_types(&our_raw),
        python_types(&py_raw),
        "same attributes with the same DynamoDB types"
    );
    assert_eq!(
        our_raw["payload"], py_raw["payload"],
        "payload bytes identical to Python's json.dumps"
    );
    assert_eq!(our_raw["attempts"], json!({"N": "0"}));
    assert_eq!(
        our_raw["greenfield"],
        json!({"N": "3000"}),
        "ours continues Python's queue"
    );
    assert_eq!(rust_types(&ours), python_types(&our_raw));
    assert!(our_id.len() == 32 && py["task_id"].as_str().unwrap().len() == 32);

    // Python reads our task the way it reads its own.
    let via_python = python(&aws, &["get", &our_id]);
    assert_eq!(via_python["labourer_id"], "worker");
    assert_eq!(via_python["greenfield"], 3000);
    assert_eq!(via_python["attempts"], 0);
    assert_eq!(
        via_python["payload"],
        json!({"region": "eu", "n": 1.5, "name": "é"})
    );
    let created_at = via_python["created_at"].as_f64().unwrap();
    assert!((created_at - SystemClock.now()).abs() < 120.0);

    // And Python's queue order puts its own task first, then ours.
    let next = python(&aws, &["next", "worker", "5"]);
    let ids: Vec<&str> = next
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [py["task_id"].as_str().unwrap(), our_id.as_str()]);
}

/// Numbers Python keeps exactly and serde_json without `arbitrary_precision` does not.
const EXTREME_PAYLOAD: &str = r#"{"big": 18446744073709551623, "neg_big": -18446744073709551623, "tiny": 5e-324, "small": 1e-07, "huge": 1.7976931348623157e+308, "neg_zero": -0.0, "zero": 0, "int_float": 1e+16, "nested": {"ids": [18446744073709551616, 1.5, -0.0]}, "name": "\u00e9"}"#;

#[tokio::test]
async fn invocation_payload_bytes_equal_python_sosw_for_extreme_numbers() {
    let (aws, tm) = env_real_time().await;
    // One task created by Python sosw, one by ours, with the same payload.
    let py_task = python(&aws, &["create", "worker", EXTREME_PAYLOAD]);
    let payload: Value = serde_json::from_str(EXTREME_PAYLOAD).unwrap();
    let ours = tm
        .create_task(
            "worker",
            json!({ "payload": payload }).as_object().cloned().unwrap(),
            true,
        )
        .await
        .unwrap();
    let our_id = ours["task_id"].as_s().unwrap().clone();

    // The stored payload: Python's json.dumps bytes.
    let py_raw = python(&aws, &["raw", py_task["task_id"].as_str().unwrap()]);
    let our_raw = python(&aws, &["raw", &our_id]);
    assert_eq!(our_raw["payload"], py_raw["payload"]);
    assert_eq!(
        py_raw["payload"]["S"].as_str().unwrap(),
        sosw_core::pyjson::dumps(&payload),
    );

    // What the worker receives, for both tasks, byte for byte.
    let expected: Vec<String> =
        serde_json::from_value(python(&aws, &["invocations", "worker", "5"])).unwrap();
    let l = tm.register_labourer("worker").unwrap();
    let got: Vec<String> = tm
        .next_tasks(&l, 5)
        .await
        .unwrap()
        .iter()
        .map(|t| tm.invocation_payload(t).unwrap())
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got, expected);
    assert!(got[0].contains("\"big\": 18446744073709551623"), "{}", got[0]);
    assert!(got[0].contains("\"neg_zero\": -0.0"), "{}", got[0]);
    assert!(got[0].contains("\"tiny\": 5e-324"), "{}", got[0]);
}
