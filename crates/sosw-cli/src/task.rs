//! `sosw task TASK_ID`: where a task is (queue, retry, closed), its attributes and its history.

use crate::ctx::{hint, Ctx};
use crate::exit::Exit;
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Args;
use serde_json::{json, Value};
use sosw_core::task::model::item_to_json;
use sosw_core::task::GreenfieldState;
use std::path::PathBuf;

/// Arguments of `sosw task`.
#[derive(Args)]
pub struct TaskArgs {
    /// The task id.
    task_id: String,
    /// A config document layered over the ones in AWS.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Find a task: (location, state, attributes).
pub async fn locate(ctx: &Ctx, task_id: &str) -> anyhow::Result<Option<(String, String, Value)>> {
    let t = &ctx.tasks;
    if let Some(task) = t.get_task(task_id).await.map_err(|e| hint(e.into()))? {
        let l = ctx.labourer(&task.labourer_id).ok();
        let state = match l {
            Some(l) => match task.state(l.start, l.expired) {
                GreenfieldState::Queued => "queued",
                GreenfieldState::Running => "running",
                GreenfieldState::Expired => "expired",
                GreenfieldState::Completed => "completed (waiting for the scavenger)",
            },
            None => "in the queue of an unconfigured labourer",
        };
        return Ok(Some((
            t.config().dynamo_db_config.table_name.clone(),
            state.into(),
            Value::Object(item_to_json(&task.item)),
        )));
    }
    for id in t.config().labourers.keys() {
        if let Some(task) = t.get_retrying(id, task_id).await? {
            return Ok(Some((
                t.config().sosw_retry_tasks_table.clone(),
                "waiting for a retry".into(),
                Value::Object(item_to_json(&task.item)),
            )));
        }
    }
    // Read raw: a quarantined row may not parse as a task.
    if let Some(item) = t.get_raw(&t.config().sosw_closed_tasks_table, task_id).await? {
        let state = if item.contains_key(t.config().field("completed_at")) {
            "closed: completed".to_string()
        } else if let Some(AttributeValue::S(reason)) = item.get("closed_reason") {
            format!("closed: dead (quarantined: {reason})")
        } else {
            "closed: dead".to_string()
        };
        return Ok(Some((
            t.config().sosw_closed_tasks_table.clone(),
            state,
            Value::Object(item_to_json(&item)),
        )));
    }
    Ok(None)
}

/// Meta rows of a task, oldest first (empty if the meta table is missing).
pub async fn history(ctx: &Ctx, task_id: &str) -> Vec<Value> {
    let table = ctx.document["meta_handler_config"]["dynamo_db_config"]["table_name"]
        .as_str()
        .unwrap_or("sosw_tasks_meta")
        .to_string();
    match ctx
        .clients
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("task_id = :t")
        .expression_attribute_values(":t", AttributeValue::S(task_id.into()))
        .send()
        .await
    {
        Ok(out) => out
            .items()
            .iter()
            .map(|i| Value::Object(item_to_json(i)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A JSON value for a table cell: strings bare, anything else as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text `sosw task` prints for people: where the task is, its attributes, its history.
pub fn text(task: &Value) -> String {
    let mut s = format!(
        "task   {}\ntable  {}\nstate  {}\n\n",
        cell(&task["task_id"]),
        cell(&task["table"]),
        cell(&task["state"])
    );
    let empty = serde_json::Map::new();
    let attributes = task["attributes"].as_object().unwrap_or(&empty);
    s.push_str(&crate::output::text_table(
        &["ATTRIBUTE", "VALUE"],
        attributes.iter().map(|(k, v)| [k.clone(), cell(v)]),
    ));
    let history = task["history"].as_array().map(Vec::as_slice).unwrap_or_default();
    if history.is_empty() {
        s.push_str("\nno history in the meta table\n");
    } else {
        s.push('\n');
        s.push_str(&crate::output::text_table(
            &["CREATED_AT", "ACTION", "DETAILS"],
            history.iter().map(|row| {
                let details: serde_json::Map<String, Value> = row
                    .as_object()
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "task_id" | "created_at" | "action"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                [
                    cell(&row["created_at"]),
                    cell(&row["action"]),
                    Value::Object(details).to_string(),
                ]
            }),
        ));
    }
    s
}

/// Run `sosw task`.
pub async fn run(args: &TaskArgs, json: bool) -> anyhow::Result<Exit> {
    let ctx = Ctx::load("sosw_orchestrator", crate::ctx::custom_layer(&args.config)?).await?;
    let Some((table, state, attributes)) = locate(&ctx, &args.task_id).await? else {
        anyhow::bail!(
            "task `{}` is in none of sosw's tables (queue, retry, archive); check the id and AWS_REGION",
            args.task_id
        );
    };
    // The meta table's rows and the report events still pending on the row, in order.
    let history = sosw_core::meta::full_history(
        history(&ctx, &args.task_id).await,
        attributes.get(sosw_core::meta::PENDING_ATTRIBUTE),
    );
    let out = json!({"task_id": args.task_id, "table": table, "state": state, "attributes": attributes,
                     "history": history});
    if json {
        crate::output::print_json(&out)?;
    } else {
        print!("{}", text(&out));
    }
    Ok(Exit::Ok)
}
