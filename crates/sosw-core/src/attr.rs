//! DynamoDB attributes as Python sosw writes them: an item, numbers formatted as Python's `str`,
//! and JSON values turned into attributes the way its `DynamoDbClient.dict_to_dynamo` guesses
//! them. Shared by the task rows (module `task`) and the meta rows (module `meta`); depends on
//! nothing in the crate (JSON numbers as Python writes them come from [`sosw_pyjson`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Number, Value};
use std::collections::HashMap;
use std::fmt;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Items per BatchWriteItem request: DynamoDB's limit (moto accepts more; we never send more).
pub const BATCH_WRITE_LIMIT: usize = 25;

/// Format an integer number attribute.
pub fn n(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Format a float number attribute the way Python's `str(float)` does.
pub fn n_float(value: f64) -> AttributeValue {
    AttributeValue::N(sosw_pyjson::float_repr(value))
}

/// Convert a JSON value to an attribute the way Python sosw's `DynamoDbClient.dict_to_dynamo`
/// does for fields outside the row mapper: booleans and the strings `"true"`/`"false"` become
/// `BOOL`, numbers and numeric strings `N`, other strings `S`, objects `M` (recursively), lists
/// `L`, null `NULL`.
pub fn guess_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(num) => AttributeValue::N(number_text(num)),
        Value::String(s) => {
            let lower = s.to_lowercase();
            if lower == "true" || lower == "false" {
                AttributeValue::Bool(lower == "true")
            } else if is_python_numeric(s) {
                AttributeValue::N(s.clone())
            } else {
                AttributeValue::S(s.clone())
            }
        }
        Value::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), guess_attribute(v))).collect())
        }
        // boto3's TypeSerializer, which the original falls back to for lists, keeps strings as S.
        Value::Array(list) => AttributeValue::L(list.iter().map(serialize_attribute).collect()),
    }
}

/// boto3 `TypeSerializer` semantics (no guessing from string contents).
fn serialize_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(num) => AttributeValue::N(number_text(num)),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(list) => AttributeValue::L(list.iter().map(serialize_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), serialize_attribute(v)))
                .collect(),
        ),
    }
}

fn number_text(num: &Number) -> String {
    match num.as_f64() {
        Some(f) if num.is_f64() => sosw_pyjson::float_repr(f),
        _ => num.to_string(),
    }
}

/// Python's `s.isnumeric() or s.replace('.', '', 1).isnumeric()` for ASCII digits.
fn is_python_numeric(s: &str) -> bool {
    let without_one_dot = s.replacen('.', "", 1);
    !without_one_dot.is_empty() && without_one_dot.chars().all(|c| c.is_ascii_digit())
}
