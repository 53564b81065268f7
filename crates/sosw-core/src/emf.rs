//! Run statistics as CloudWatch Embedded Metric Format: one JSON line per labourer on stdout,
//! which Lambda turns into metrics (namespace `sosw`; per labourer with the dimensions `function`
//! and `labourer_id`, and rolled up per essential with `function` alone) with no PutMetricData
//! call. `cloudformation/sosw-monitoring.yaml` graphs and alarms on them; `tests/tests/monitoring.rs`
//! checks its metric names against the lines the essentials print.

use serde_json::{json, Map, Value};

/// A metric's CloudWatch unit, by its name: `*_seconds` are Seconds, the rest are counts.
fn unit(name: &str) -> &'static str {
    if name.ends_with("_seconds") {
        "Seconds"
    } else {
        "Count"
    }
}

/// The EMF line for one labourer's figures of a run.
pub fn line(function: &str, labourer_id: &str, metrics: &[(&str, f64)], timestamp_ms: i64) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": unit(name)}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "sosw",
                // Per labourer, and rolled up per essential (what alarms read: an alarm cannot
                // search over labourer ids).
                "Dimensions": [["function", "labourer_id"], ["function"]],
                "Metrics": definitions
            }]
        }),
    );
    doc.insert("function".into(), json!(function));
    doc.insert("labourer_id".into(), json!(labourer_id));
    for (name, value) in metrics {
        doc.insert((*name).to_string(), json!(value));
    }
    Value::Object(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_and_carries_each_metric() {
        let text = line(
            "sosw_orchestrator",
            "worker",
            &[("invoked", 5.0), ("skipped", 1.0)],
            1_700_000_000_000,
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let decl = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], "sosw");
        assert_eq!(
            decl["Dimensions"],
            json!([["function", "labourer_id"], ["function"]])
        );
        assert_eq!(decl["Metrics"][0], json!({"Name": "invoked", "Unit": "Count"}));
        assert_eq!(v["invoked"], 5.0);
        assert_eq!(v["skipped"], 1.0);
        assert_eq!(v["labourer_id"], "worker");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert!(!text.contains('\n'));
    }
}
