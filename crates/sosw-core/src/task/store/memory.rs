//! [`TaskStore`] in memory, with DynamoDB's semantics for what sosw relies on: conditional writes
//! and transactions are atomic (one lock), a refused transaction writes nothing and reports which
//! items' conditions failed, queries return items in the order of the index's range attribute
//! (ties by primary key), a page evaluates at most `page_size` items before the filter, and a
//! table that was not declared does not exist.
//!
//! For tests and local runs: the essentials' behaviour tests run on it in milliseconds.

use super::{
    Cond, Condition, FailureKind, IndexQuery, Key, Page, Range, StoreError, TaskStore, TxItem, Update,
    Written,
};
use crate::config::TaskConfig;
use crate::task::model::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{BoxStream, StreamExt};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// DynamoDB's limit of items per TransactWriteItems, enforced as DynamoDB does.
pub const TRANSACTION_LIMIT: usize = 100;

#[derive(Debug, Default)]
struct Table {
    key: Vec<String>,
    rows: BTreeMap<String, Item>,
}

/// In-memory tables. Clones share the tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<HashMap<String, Table>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

fn refused(kind: FailureKind, message: String) -> StoreError {
    StoreError::new(kind, Refused(message))
}

fn missing_table(table: &str) -> StoreError {
    refused(
        FailureKind::ResourceNotFound,
        format!("table `{table}` does not exist"),
    )
}

impl MemoryStore {
    /// An empty store without tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store with sosw's task tables as `config` names them: the queue and the archive keyed
    /// by `task_id`, the retry table by `labourer_id` + `task_id`.
    pub fn for_config(config: &TaskConfig) -> Self {
        let store = Self::new();
        let id = config.field("task_id");
        store.create_table(&config.dynamo_db_config.table_name, &[id]);
        store.create_table(&config.sosw_closed_tasks_table, &[id]);
        store.create_table(&config.sosw_retry_tasks_table, &[config.field("labourer_id"), id]);
        store
    }

    /// Declare a table with its key attributes (hash, then range). Existing rows are kept.
    pub fn create_table(&self, table: &str, key: &[&str]) {
        let mut tables = self.lock();
        let t = tables.entry(table.to_string()).or_default();
        t.key = key.iter().map(|k| k.to_string()).collect();
    }

    /// Every row of a table, in key order (for tests and inspection).
    pub fn rows(&self, table: &str) -> Vec<Item> {
        self.lock()
            .get(table)
            .map(|t| t.rows.values().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Table>> {
        // A panic while holding the lock cannot leave a half-applied write: every write is
        // computed first and applied with plain inserts and removes.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key_string(key_attrs: &[String], item: &Item, table: &str) -> Result<String, StoreError> {
    let mut out = String::new();
    for k in key_attrs {
        match item.get(k) {
            Some(AttributeValue::S(s)) => out.push_str(&format!("S{}:{s}|", s.len())),
            Some(AttributeValue::N(n)) => out.push_str(&format!("N{n}|")),
            _ => {
                return Err(refused(
                    FailureKind::Validation,
                    format!("key attribute `{k}` of table `{table}` is missing or not a string/number"),
                ))
            }
        }
    }
    Ok(out)
}

/// Order of two attribute values of the same type (numbers by value); `None` across types.
fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => {
            if let (Ok(x), Ok(y)) = (x.parse::<i128>(), y.parse::<i128>()) {
                return Some(x.cmp(&y));
            }
            x.parse::<f64>().ok()?.partial_cmp(&y.parse::<f64>().ok()?)
        }
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::N(_), AttributeValue::N(_)) => compare(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

fn holds(condition: &Condition, item: Option<&Item>) -> bool {
    let get = |a: &str| item.and_then(|i| i.get(a));
    condition.iter().all(|c| match c {
        Cond::Exists(a) => get(a).is_some(),
        Cond::NotExists(a) => get(a).is_none(),
        Cond::Eq(a, v) => get(a).is_some_and(|x| equal(x, v)),
        Cond::Lt(a, v) => get(a).and_then(|x| compare(x, v)) == Some(Ordering::Less),
        Cond::Gt(a, v) => get(a).and_then(|x| compare(x, v)) == Some(Ordering::Greater),
    })
}

fn in_range(value: &AttributeValue, range: &Range) -> bool {
    let c = |v| compare(value, v);
    match range {
        Range::Lt(v) => c(v) == Some(Ordering::Less),
        Range::Le(v) => matches!(c(v), Some(Ordering::Less | Ordering::Equal)),
        Range::Ge(v) => matches!(c(v), Some(Ordering::Greater | Ordering::Equal)),
        Range::Between(a, b) => {
            matches!(c(a), Some(Ordering::Greater | Ordering::Equal))
                && matches!(c(b), Some(Ordering::Less | Ordering::Equal))
        }
    }
}

/// `list_append(if_not_exists(a, []), values)`: DynamoDB refuses a non-list operand.
fn append(
    value: Option<AttributeValue>,
    values: Vec<AttributeValue>,
    attr: &str,
) -> Result<AttributeValue, StoreError> {
    match value {
        None => Ok(AttributeValue::L(values)),
        Some(AttributeValue::L(mut list)) => {
            list.extend(values);
            Ok(AttributeValue::L(list))
        }
        Some(_) => Err(refused(
            FailureKind::Validation,
            format!("cannot append to `{attr}`: not a list"),
        )),
    }
}

fn increment(value: Option<&AttributeValue>, attr: &str) -> Result<AttributeValue, StoreError> {
    let bad = || {
        refused(
            FailureKind::Validation,
            format!("cannot increment `{attr}`: not a number"),
        )
    };
    match value {
        None => Ok(AttributeValue::N("1".into())),
        Some(AttributeValue::N(n)) => {
            let next = n
                .parse::<i128>()
                .map_err(|_| bad())?
                .checked_add(1)
                .ok_or_else(bad)?;
            Ok(AttributeValue::N(next.to_string()))
        }
        Some(_) => Err(bad()),
    }
}

/// One planned write of a transaction: the table, the row key, and the write (`None`: a check,
/// `Some(None)`: a delete, `Some(Some(row))`: a put).
type Planned = (String, String, Option<Option<Item>>);

#[async_trait::async_trait]
impl TaskStore for MemoryStore {
    async fn get(&self, table: &str, key: Key) -> Result<Option<Item>, StoreError> {
        let tables = self.lock();
        let t = tables.get(table).ok_or_else(|| missing_table(table))?;
        Ok(t.rows.get(&key_string(&t.key, &key, table)?).cloned())
    }

    fn query(&self, q: IndexQuery) -> BoxStream<'_, Result<Page, StoreError>> {
        let tables = self.lock();
        let Some(t) = tables.get(&q.table) else {
            return futures::stream::once(async move { Err(missing_table(&q.table)) }).boxed();
        };
        let mut matched: Vec<(&AttributeValue, &String, &Item)> = t
            .rows
            .iter()
            .filter(|(_, item)| item.get(&q.hash.0).is_some_and(|h| *h == q.hash.1))
            .filter_map(|(key, item)| match &q.sort {
                None => Some((&q.hash.1, key, item)),
                // An item without the index's range attribute is not in the index.
                Some(sort) => item.get(sort).map(|s| (s, key, item)),
            })
            .filter(|(s, _, _)| match &q.range {
                None => true,
                Some(r) => in_range(s, r),
            })
            .collect();
        matched.sort_by(|a, b| compare(a.0, b.0).unwrap_or(Ordering::Equal).then(a.1.cmp(b.1)));
        if !q.forward {
            matched.reverse();
        }
        let size = q.page_size.unwrap_or(usize::MAX).max(1);
        let mut pages: Vec<Result<Page, StoreError>> = Vec::new();
        for chunk in matched.chunks(size) {
            let items: Vec<Item> = chunk
                .iter()
                .filter(|(_, _, item)| holds(&q.filter, Some(item)))
                .map(|(_, _, item)| (*item).clone())
                .collect();
            let count = items.len() as u64;
            pages.push(Ok(Page {
                items: if q.count_only { Vec::new() } else { items },
                count,
            }));
        }
        if pages.is_empty() {
            pages.push(Ok(Page::default()));
        }
        futures::stream::iter(pages).boxed()
    }

    async fn update(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<Written, StoreError> {
        self.update_returning_old(table, key, update, condition)
            .await
            .map(|(written, _)| written)
    }

    async fn update_returning_old(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<(Written, Option<Item>), StoreError> {
        let mut tables = self.lock();
        let t = tables.get_mut(table).ok_or_else(|| missing_table(table))?;
        let k = key_string(&t.key, &key, table)?;
        let current = t.rows.get(&k);
        if !holds(&condition, current) {
            return Ok((Written::ConditionFailed(vec![true]), None));
        }
        // UpdateItem creates the item when it does not exist (and the condition allows it).
        let mut row = current.cloned().unwrap_or(key);
        for (a, v) in update.set {
            row.insert(a, v);
        }
        for a in &update.increment {
            let next = increment(row.get(a), a)?;
            row.insert(a.clone(), next);
        }
        for (a, values) in update.append {
            let next = append(row.remove(&a), values, &a)?;
            row.insert(a, next);
        }
        for a in &update.remove {
            row.remove(a);
        }
        let old = t.rows.insert(k, row);
        Ok((Written::Done, old))
    }

    async fn transact(&self, items: Vec<TxItem>, _token: Option<String>) -> Result<Written, StoreError> {
        if items.is_empty() || items.len() > TRANSACTION_LIMIT {
            return Err(refused(
                FailureKind::Validation,
                format!(
                    "a transaction holds 1 to {TRANSACTION_LIMIT} items, not {}",
                    items.len()
                ),
            ));
        }
        let mut tables = self.lock();
        let mut plan: Vec<Planned> = Vec::with_capacity(items.len());
        let mut failed = Vec::with_capacity(items.len());
        for item in &items {
            let (table, key, condition, write) = match item {
                TxItem::Put {
                    table,
                    item,
                    condition,
                } => (table, item, condition, Some(Some(item.clone()))),
                TxItem::Delete {
                    table,
                    key,
                    condition,
                } => (table, key, condition, Some(None)),
                TxItem::Check {
                    table,
                    key,
                    condition,
                } => (table, key, condition, None),
            };
            let t = tables.get(table).ok_or_else(|| missing_table(table))?;
            let k = key_string(&t.key, key, table)?;
            if plan.iter().any(|(pt, pk, _)| pt == table && *pk == k) {
                return Err(refused(
                    FailureKind::Validation,
                    format!("a transaction cannot include two operations on one item (table `{table}`)"),
                ));
            }
            failed.push(!holds(condition, t.rows.get(&k)));
            plan.push((table.clone(), k, write));
        }
        if failed.iter().any(|f| *f) {
            return Ok(Written::ConditionFailed(failed));
        }
        for (table, key, write) in plan {
            let t = tables.get_mut(&table).expect("checked above");
            match write {
                Some(Some(row)) => {
                    t.rows.insert(key, row);
                }
                Some(None) => {
                    t.rows.remove(&key);
                }
                None => {}
            }
        }
        Ok(Written::Done)
    }

    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
        let mut tables = self.lock();
        let t = tables.get_mut(table).ok_or_else(|| missing_table(table))?;
        let keyed = items
            .into_iter()
            .map(|item| Ok((key_string(&t.key, &item, table)?, item)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        t.rows.extend(keyed);
        Ok(())
    }

    async fn batch_get(&self, keys: Vec<(String, Key)>, attribute: &str) -> Result<Vec<Item>, StoreError> {
        let tables = self.lock();
        let mut out = Vec::new();
        for (table, key) in keys {
            let t = tables.get(&table).ok_or_else(|| missing_table(&table))?;
            if let Some(row) = t.rows.get(&key_string(&t.key, &key, &table)?) {
                out.push(
                    row.get(attribute)
                        .map(|v| Item::from([(attribute.to_string(), v.clone())]))
                        .unwrap_or_default(),
                );
            }
        }
        Ok(out)
    }
}
