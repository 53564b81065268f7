//! Chunking behaviours, each named. Expected rows were checked against Python sosw 0.7.51
//! (the differential test in crates/sosw-cli compares many more jobs byte for byte).

use super::*;
use serde_json::json;

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2019, 4, 30).unwrap()
}

fn config(attrs: &[&str]) -> Value {
    let attrs: Vec<Value> = attrs.iter().map(|a| json!([a, {}])).collect();
    json!({
        "task_config": {"labourers": {"worker": {}}},
        "job_schema_variants": {"default": {"chunkable_attrs": attrs}, "flat": {"chunkable_attrs": []}}
    })
}

fn plan(attrs: &[&str], job: Value) -> Result<Vec<Value>, JobError> {
    plan_event(&config(attrs), &job, today()).map(|rows| rows.into_iter().map(Value::Object).collect())
}

#[test]
fn a_job_without_chunking_becomes_one_task_with_labourer_id_first() {
    let rows = plan(
        &["section"],
        json!({"lambda_name": "worker", "a": 1, "sections": ["x", "y"]}),
    )
    .unwrap();
    assert_eq!(
        rows,
        [json!({"labourer_id": "worker", "a": 1, "sections": ["x", "y"]})]
    );
    assert_eq!(
        serde_json::to_string(&rows[0]).unwrap(),
        r#"{"labourer_id":"worker","a":1,"sections":["x","y"]}"#
    );
}

#[test]
fn isolate_flag_gives_one_task_per_value_with_labourer_id_last() {
    let rows = plan(
        &["section"],
        json!({"lambda_name": "worker", "sections": ["x", "y"], "isolate_sections": true}),
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        serde_json::to_string(&rows[0]).unwrap(),
        r#"{"isolate_sections":true,"sections":["x"],"labourer_id":"worker"}"#
    );
}

#[test]
fn max_per_batch_groups_values() {
    let rows = plan(
        &["store"],
        json!({"lambda_name": "worker", "stores": [1, 2, 3, 4, 5], "max_stores_per_batch": 2}),
    )
    .unwrap();
    let stores: Vec<&Value> = rows.iter().map(|r| &r["stores"]).collect();
    assert_eq!(stores, [&json!([1, 2]), &json!([3, 4]), &json!([5])]);
}

#[test]
fn dict_with_null_values_is_a_list_of_its_keys() {
    let rows = plan(
        &["store"],
        json!({"lambda_name": "worker", "stores": {"a": null, "b": null}, "isolate_stores": true}),
    )
    .unwrap();
    let stores: Vec<&Value> = rows.iter().map(|r| &r["stores"]).collect();
    assert_eq!(stores, [&json!(["a"]), &json!(["b"])]);
}

#[test]
fn nested_sub_jobs_chunk_recursively_with_isolation_at_a_lower_level() {
    let job = json!({"lambda_name": "worker", "sections": {
        "s1": {"stores": ["a", "b"], "isolate_stores": true},
        "s2": {"stores": ["c"]}
    }});
    let rows = plan(&["section", "store"], job).unwrap();
    let pairs: Vec<(Value, Value)> = rows
        .iter()
        .map(|r| (r["sections"].clone(), r["stores"].clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (json!(["s1"]), json!(["a"])),
            (json!(["s1"]), json!(["b"])),
            (json!(["s2"]), json!(["c"]))
        ]
    );
}

#[test]
fn isolate_flag_at_root_applies_to_nested_levels() {
    let job =
        json!({"lambda_name": "worker", "isolate_stores": true, "sections": {"s1": {"stores": ["a", "b"]}}});
    assert_eq!(plan(&["section", "store"], job).unwrap().len(), 2);
}

#[test]
fn dates_are_chunked_before_attributes() {
    let job = json!({"lambda_name": "worker", "period": "last_2_days", "isolate_days": true,
                     "stores": ["a", "b"], "isolate_stores": true});
    let rows = plan(&["store"], job).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["date_list"], json!(["2019-04-28"]));
    assert_eq!(rows[1]["stores"], json!(["b"]));
    assert_eq!(rows[2]["date_list"], json!(["2019-04-29"]));
}

#[test]
fn period_is_left_untouched_when_nothing_needs_chunking() {
    let rows = plan(&["store"], json!({"lambda_name": "worker", "period": "today"})).unwrap();
    assert_eq!(rows, [json!({"labourer_id": "worker", "period": "today"})]);
}

#[test]
fn job_wrapped_in_job_key_as_object_or_string() {
    let a = plan(&[], json!({"job": {"lambda_name": "worker", "x": 1}})).unwrap();
    let b = plan(&[], json!({"job": "{\"lambda_name\": \"worker\", \"x\": 1}"})).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, [json!({"labourer_id": "worker", "x": 1})]);
}

#[test]
fn lambda_arn_is_trimmed_to_the_function_name() {
    assert_eq!(
        trim_arn_to_name("arn:aws:lambda:us-west-2:123456789012:function:worker"),
        "worker"
    );
    assert_eq!(
        trim_arn_to_name("arn:aws:lambda:us-west-2:123456789012:function:worker:prod"),
        "worker"
    );
    assert_eq!(trim_arn_to_name("worker"), "worker");
    let rows = plan(
        &[],
        json!({"lambda_name": "arn:aws:lambda:us-west-2:123456789012:function:worker"}),
    )
    .unwrap();
    assert_eq!(rows[0]["labourer_id"], "worker");
}

#[test]
fn job_schema_name_picks_a_variant_and_stays_in_the_task() {
    let job = json!({"lambda_name": "worker", "job_schema_name": "flat", "stores": ["a", "b"], "isolate_stores": true});
    let rows = plan(&["store"], job).unwrap();
    assert_eq!(rows.len(), 1, "the flat variant has no chunkable attrs");
    assert_eq!(rows[0]["job_schema_name"], "flat");
}

#[test]
fn rejections_name_the_problem() {
    let cases = [
        (json!({"a": 1}), "lambda_name"),
        (json!({"lambda_name": 5}), "lambda_name"),
        (json!({"lambda_name": "nobody"}), "unknown labourer `nobody`"),
        (
            json!({"lambda_name": "worker", "job_schema_name": "nope"}),
            "unknown job schema `nope`",
        ),
        (
            json!({"lambda_name": "worker", "period": "fortnight", "stores": ["a"], "isolate_stores": true}),
            "unsupported period `fortnight`",
        ),
        (
            json!({"lambda_name": "worker", "stores": [{"x": [1]}, "b"], "isolate_stores": true}),
            "cannot chunk `stores`",
        ),
        (
            json!({"lambda_name": "worker", "stores": ["a"], "isolate_stores": true, "max_stores_per_batch": "x"}),
            "max_stores_per_batch",
        ),
        (json!({"job": "{broken"}), "invalid JSON"),
        (json!([1, 2]), "expected a JSON object"),
    ];
    for (job, needle) in cases {
        let err = plan(&["store"], job.clone()).unwrap_err().to_string();
        assert!(err.contains(needle), "{job}: {err}");
    }
}

#[test]
fn flat_values_at_a_level_with_nested_attrs_are_rejected_not_crashed() {
    // Python raises AttributeError here ('str' object has no attribute 'items').
    let err = plan(
        &["section", "store"],
        json!({"lambda_name": "worker", "sections": ["a", "b"]}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("must be objects"), "{err}");
}

#[test]
fn config_with_plural_attr_names_is_rejected() {
    let err = SchedulerRules::from_config(&config(&["stores"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("singular"), "{err}");
}

#[test]
fn other_keys_of_a_sub_job_are_dropped_where_the_original_drops_them() {
    // A sub-job whose next level needs no chunking keeps only the attribute values (as Python).
    let job = json!({"lambda_name": "worker", "isolate_sections": true, "sections": {"s1": {"stores": ["a"], "note": 1}}});
    let rows = plan(&["section", "store"], job).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].get("note").is_none());
    assert_eq!(rows[0]["stores"], json!(["a"]));
}

#[test]
fn custom_period_patterns_load_as_python_checks_them() {
    // The built-in forms, listed again as Python users do, load and work.
    let doc = json!({"custom_period_patterns": ["last_[0-9]+_days", "yesterday"]});
    SchedulerRules::from_config(&doc).unwrap();
    SchedulerRules::from_config(&json!({"custom_period_patterns": null})).unwrap();
    for bad in [
        json!({"custom_period_patterns": "today"}),
        json!({"custom_period_patterns": [1]}),
    ] {
        let err = SchedulerRules::from_config(&bad).unwrap_err().to_string();
        assert!(err.contains("custom_period_patterns"), "{err}");
    }
}

#[test]
fn a_labourer_id_other_than_lambda_name_is_refused_chunked_or_not() {
    for job in [
        json!({"lambda_name": "worker", "labourer_id": "ghost"}),
        json!({"lambda_name": "worker", "labourer_id": "ghost", "sections": ["a"], "isolate_sections": true}),
        json!({"lambda_name": "arn:aws:lambda:us-west-2:123456789012:function:worker", "labourer_id": 7}),
    ] {
        let err = plan(&["section"], job.clone()).unwrap_err();
        assert!(matches!(err, JobError::LabourerMismatch { .. }), "{job}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("labourer_id") && text.contains("`worker`"),
            "{text}"
        );
    }
}

#[test]
fn a_labourer_id_equal_to_lambda_name_is_accepted_as_python_does() {
    let rows = plan(
        &["section"],
        json!({"lambda_name": "arn:aws:lambda:us-west-2:123456789012:function:worker", "labourer_id": "worker", "a": 1}),
    )
    .unwrap();
    assert_eq!(rows, [json!({"labourer_id": "worker", "a": 1})]);
}

#[test]
fn rows_are_generated_lazily_in_the_same_order_as_plan() {
    let job = json!({"lambda_name": "worker", "period": "last_3_days", "isolate_days": true,
                     "sections": {"s1": {"stores": ["a", "b"]}, "s2": null}, "isolate_stores": true});
    let rules = SchedulerRules::from_config(&config(&["section", "store"])).unwrap();
    let parsed = parse_job(&job).unwrap();
    let all = rules.plan(parsed.clone(), today()).unwrap();
    let mut rows = rules.rows(parsed, today()).unwrap();
    let first = rows.next().unwrap().unwrap();
    assert_eq!(first, all[0]);
    let rest: Vec<Object> = rows.collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, all[1..]);
    assert_eq!(all.len(), 9);
}
