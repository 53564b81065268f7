//! Run statistics as CloudWatch Embedded Metric Format: one JSON line per labourer on stdout,
//! which Lambda turns into metrics (namespace `sosw`, dimensions `function` and `labourer_id`)
//! with no PutMetricData call.

use serde_json::{json, Map, Value};

/// The EMF line for one labourer's figures of a run.
pub fn line(function: &str, labourer_id: &str, metrics: &[(&str, f64)], timestamp_ms: i64) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "sosw",
                "Dimensions": [["function", "labourer_id"]],
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
        assert_eq!(decl["Dimensions"], json!([["function", "labourer_id"]]));
        assert_eq!(decl["Metrics"][0], json!({"Name": "invoked", "Unit": "Count"}));
        assert_eq!(v["invoked"], 5.0);
        assert_eq!(v["skipped"], 1.0);
        assert_eq!(v["labourer_id"], "worker");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert!(!text.contains('\n'));
    }
}
