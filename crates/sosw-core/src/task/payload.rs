//! The payloads of sosw, as pure functions (no I/O): the task payload Python's `create_task`
//! stores, the event a worker receives, and a worker's report flattened into attributes. Bytes are
//! those of Python's `json.dumps` ([`crate::pyjson`]).

use super::model::{attribute_to_json, guess_attribute, Item};
use crate::error::TaskError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

/// The event a worker receives for the task `item`: its payload (a JSON-object string, or a map),
/// flattened with the task's own fields named in `row_mapper` (as the original reads them), as
/// Python's `json.dumps` writes it. `task_id` names the task in errors.
pub fn invocation_payload<'a>(
    item: &Item,
    payload_field: &str,
    row_mapper: impl IntoIterator<Item = &'a String>,
    task_id: &str,
) -> Result<String, TaskError> {
    let mut event = match item.get(payload_field) {
        None => Map::new(),
        Some(AttributeValue::S(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(TaskError::InvalidPayload(format!(
                    "task {task_id}: `{payload_field}` is not a JSON object: {s}"
                )))
            }
        },
        Some(map @ AttributeValue::M(_)) => match attribute_to_json(map) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        Some(other) => {
            return Err(TaskError::InvalidPayload(format!(
                "task {task_id}: `{payload_field}` has unsupported type {other:?}"
            )))
        }
    };
    for key in row_mapper {
        if key == payload_field {
            continue;
        }
        if let Some(av) = item.get(key) {
            event.insert(key.clone(), attribute_to_json(av));
        }
    }
    Ok(crate::pyjson::dumps(&event))
}

/// Flatten a worker's report into `stat_<k>` / `result_<k>` attributes, typed as the original does.
pub fn flatten_report(
    stats: Option<&Map<String, Value>>,
    result: Option<&Map<String, Value>>,
) -> Vec<(String, AttributeValue)> {
    let mut out = Vec::new();
    for (prefix, map) in [("stat_", stats), ("result_", result)] {
        for (k, v) in map.into_iter().flatten() {
            out.push((format!("{prefix}{k}"), guess_attribute(v)));
        }
    }
    out
}

/// Python's `construct_payload_for_task`: `payload` (object, JSON string, or any value wrapped
/// as `{"payload": value}`), then every other field added to it, serialized with `json.dumps`.
pub fn construct_payload(mut fields: Map<String, Value>, payload_field: &str) -> Result<String, TaskError> {
    let mut payload = match fields.shift_remove(payload_field) {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(TaskError::InvalidPayload(format!(
                    "`{payload_field}` is a JSON string that is not an object: {s}"
                )))
            }
            Err(_) => Map::from_iter([("payload".to_string(), Value::String(s))]),
        },
        Some(other) => Map::from_iter([("payload".to_string(), other)]),
    };
    for (k, v) in fields {
        payload.insert(k, v);
    }
    Ok(crate::pyjson::dumps(&payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn payload_is_built_like_python_create_task() {
        assert_eq!(
            construct_payload(obj(json!({"payload": {"a": 1}, "b": "x"})), "payload").unwrap(),
            r#"{"a": 1, "b": "x"}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"payload": "{\"a\": 1}"})), "payload").unwrap(),
            r#"{"a": 1}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"payload": "plain"})), "payload").unwrap(),
            r#"{"payload": "plain"}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"payload": 5})), "payload").unwrap(),
            r#"{"payload": 5}"#
        );
        assert_eq!(
            construct_payload(obj(json!({"x": [1, 2]})), "payload").unwrap(),
            r#"{"x": [1, 2]}"#
        );
    }

    #[test]
    fn a_json_string_that_is_not_an_object_is_rejected() {
        // Python would crash on `result[key] = value` for a JSON list; we name the problem.
        let err = construct_payload(obj(json!({"payload": "[1]", "k": 1})), "payload").unwrap_err();
        assert!(err.to_string().contains("not an object"));
    }

    #[test]
    fn reports_flatten_with_prefixes() {
        let stats = obj(json!({"rows": 3}));
        let result = obj(json!({"ok": "true"}));
        let flat = flatten_report(Some(&stats), Some(&result));
        assert_eq!(flat[0], ("stat_rows".into(), AttributeValue::N("3".into())));
        assert_eq!(flat[1], ("result_ok".into(), AttributeValue::Bool(true)));
    }

    #[test]
    fn the_invocation_event_is_the_payload_flattened_with_the_mapped_fields() {
        let item: Item = HashMap::from([
            (
                "payload".to_string(),
                AttributeValue::S(r#"{"b": 2, "a": 1}"#.into()),
            ),
            ("task_id".to_string(), AttributeValue::S("t1".into())),
            ("attempts".to_string(), AttributeValue::N("3".into())),
            ("other".to_string(), AttributeValue::S("not mapped".into())),
        ]);
        let mapper = [
            "task_id".to_string(),
            "attempts".to_string(),
            "payload".to_string(),
        ];
        assert_eq!(
            invocation_payload(&item, "payload", &mapper, "t1").unwrap(),
            r#"{"b": 2, "a": 1, "task_id": "t1", "attempts": 3}"#
        );
    }

    #[test]
    fn an_invocation_payload_that_is_not_an_object_is_refused_naming_the_task() {
        let item: Item = HashMap::from([("payload".to_string(), AttributeValue::S("[1]".into()))]);
        let err = invocation_payload(&item, "payload", &[], "t9")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t9") && err.contains("not a JSON object"), "{err}");
        let item: Item = HashMap::from([("payload".to_string(), AttributeValue::N("1".into()))]);
        let err = invocation_payload(&item, "payload", &[], "t9")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported type"), "{err}");
    }
}
