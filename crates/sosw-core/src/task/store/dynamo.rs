//! [`TaskStore`] over DynamoDB: typed requests rendered to expressions, the SDK's paginators,
//! typed error predicates, and sosw's one bounded backoff ([`crate::aws::backoff`]) for what the
//! SDK's own retries do not cover (unprocessed batch items, transaction conflicts).

use super::{
    Cond, Condition, FailureKind, IndexQuery, Key, Page, Range, StoreError, TaskStore, TxItem, Update,
    Written,
};
use crate::task::model::Item;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, PutRequest, ReturnValue, Select,
    TransactWriteItem, WriteRequest,
};
use futures::stream::{BoxStream, StreamExt};
use std::collections::HashMap;
use tracing::{debug, warn};

pub use crate::attr::BATCH_WRITE_LIMIT;
/// DynamoDB's limit of keys per BatchGetItem.
pub const BATCH_GET_LIMIT: usize = 100;

/// The DynamoDB store: a client, cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoStore {
    /// A store over this client.
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client }
    }

    /// The client.
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }
}

/// Placeholders of one expression set: `#n0`, `:v0`, ...
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, name: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| *v == name) {
            return k.clone();
        }
        let k = format!("#n{}", self.names.len());
        self.names.insert(k.clone(), name.to_string());
        k
    }

    fn value(&mut self, value: &AttributeValue) -> String {
        let k = format!(":v{}", self.values.len());
        self.values.insert(k.clone(), value.clone());
        k
    }

    fn condition(&mut self, condition: &Condition) -> Option<String> {
        if condition.is_empty() {
            return None;
        }
        let parts: Vec<String> = condition
            .iter()
            .map(|c| match c {
                Cond::Exists(a) => format!("attribute_exists({})", self.name(a)),
                Cond::NotExists(a) => format!("attribute_not_exists({})", self.name(a)),
                Cond::Eq(a, v) => format!("{} = {}", self.name(a), self.value(v)),
                Cond::Lt(a, v) => format!("{} < {}", self.name(a), self.value(v)),
                Cond::Gt(a, v) => format!("{} > {}", self.name(a), self.value(v)),
            })
            .collect();
        Some(parts.join(" AND "))
    }

    fn update(&mut self, update: &Update) -> String {
        let mut sets: Vec<String> = update
            .set
            .iter()
            .map(|(a, v)| format!("{} = {}", self.name(a), self.value(v)))
            .collect();
        for a in &update.increment {
            let n = self.name(a);
            let zero = self.value(&AttributeValue::N("0".into()));
            let one = self.value(&AttributeValue::N("1".into()));
            sets.push(format!("{n} = if_not_exists({n}, {zero}) + {one}"));
        }
        for (a, values) in &update.append {
            let n = self.name(a);
            let empty = self.value(&AttributeValue::L(Vec::new()));
            let tail = self.value(&AttributeValue::L(values.clone()));
            sets.push(format!("{n} = list_append(if_not_exists({n}, {empty}), {tail})"));
        }
        let mut out = String::new();
        if !sets.is_empty() {
            out = format!("SET {}", sets.join(", "));
        }
        if !update.remove.is_empty() {
            let removes: Vec<String> = update.remove.iter().map(|a| self.name(a)).collect();
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("REMOVE {}", removes.join(", ")));
        }
        out
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The kind of an SDK error, by the operation's typed error variants (the SDK's standard retry
/// mode has already retried throttling and 5xx when this is called).
macro_rules! classify {
    ($err:expr, $E:ty) => {{
        type Op = $E;
        match $err.as_service_error() {
            Some(Op::ResourceNotFoundException(_)) => FailureKind::ResourceNotFound,
            Some(Op::ProvisionedThroughputExceededException(_))
            | Some(Op::RequestLimitExceeded(_))
            | Some(Op::ThrottlingException(_)) => FailureKind::Exhausted,
            // DynamoDB's ValidationException is not modelled by the SDK: its code is all there is.
            Some(e)
                if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e) == Some("ValidationException") =>
            {
                FailureKind::Validation
            }
            _ => FailureKind::Other,
        }
    }};
}

fn store_error<E, R>(kind: FailureKind, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::new(kind, err)
}

/// What a refused TransactWriteItems means.
enum TxVerdict {
    /// A condition failed: flags per item.
    ConditionFailed(Vec<bool>),
    /// A conflict, a throttle or a server-side failure: worth another try.
    Retry,
    /// Final.
    Fail(FailureKind),
}

fn tx_verdict(
    err: &SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> TxVerdict {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match err.as_service_error() {
        Some(E::TransactionCanceledException(c)) => {
            let reasons = c.cancellation_reasons();
            let failed: Vec<bool> = reasons
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect();
            if failed.iter().any(|f| *f) {
                return TxVerdict::ConditionFailed(failed);
            }
            // Reason codes are strings in the API (no typed enum exists). A conflict, a throttle,
            // or a reason we do not know (moto reports internal errors under concurrent
            // transactions) is retried; a missing table or an invalid item is final.
            let codes = || reasons.iter().filter_map(|r| r.code()).filter(|c| *c != "None");
            if codes().any(|c| c.contains("ResourceNotFound")) {
                TxVerdict::Fail(FailureKind::ResourceNotFound)
            } else if codes().any(|c| c.contains("Validation")) {
                TxVerdict::Fail(FailureKind::Validation)
            } else {
                TxVerdict::Retry
            }
        }
        Some(E::TransactionInProgressException(_))
        | Some(E::ProvisionedThroughputExceededException(_))
        | Some(E::ThrottlingException(_))
        | Some(E::RequestLimitExceeded(_))
        | Some(E::InternalServerError(_)) => TxVerdict::Retry,
        Some(E::ResourceNotFoundException(_)) => TxVerdict::Fail(FailureKind::ResourceNotFound),
        _ if err.raw_response().is_some_and(|r| r.status().is_server_error()) => TxVerdict::Retry,
        _ => TxVerdict::Fail(classify!(err, E)),
    }
}

/// `true` when an UpdateItem failed on its condition (a lost race, not a fault).
fn update_condition_failed(
    err: &SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_smithy_runtime_api::http::Response,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError as E;
    matches!(
        err.as_service_error(),
        Some(E::ConditionalCheckFailedException(_))
    )
}

fn sdk_range(expr: &mut Expr, sort: &str, range: &Range) -> String {
    let s = expr.name(sort);
    match range {
        Range::Lt(v) => format!("{s} < {}", expr.value(v)),
        Range::Le(v) => format!("{s} <= {}", expr.value(v)),
        Range::Ge(v) => format!("{s} >= {}", expr.value(v)),
        Range::Between(a, b) => format!("{s} BETWEEN {} AND {}", expr.value(a), expr.value(b)),
    }
}

/// Items still unprocessed when the bounded retries ran out.
#[derive(Debug, thiserror::Error)]
#[error("{count} item(s) still unprocessed after {attempts} attempts (throttled)")]
pub struct Unprocessed {
    /// Items left.
    pub count: usize,
    /// Attempts made.
    pub attempts: usize,
}

/// A transaction still conflicting when the bounded retries ran out.
#[derive(Debug, thiserror::Error)]
#[error("transaction still conflicting or throttled after {attempts} attempts")]
pub struct StillConflicting {
    /// Attempts made.
    pub attempts: usize,
    /// The last refusal.
    #[source]
    pub last: Box<dyn std::error::Error + Send + Sync + 'static>,
}

#[async_trait::async_trait]
impl TaskStore for DynamoStore {
    async fn get(&self, table: &str, key: Key) -> Result<Option<Item>, StoreError> {
        use aws_sdk_dynamodb::operation::get_item::GetItemError;
        self.client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| store_error(classify!(e, GetItemError), e))
    }

    fn query(&self, q: IndexQuery) -> BoxStream<'_, Result<Page, StoreError>> {
        use aws_sdk_dynamodb::operation::query::QueryError;
        let mut expr = Expr::default();
        let hash = expr.name(&q.hash.0);
        let hash_value = expr.value(&q.hash.1);
        let mut key_condition = format!("{hash} = {hash_value}");
        if let (Some(sort), Some(range)) = (&q.sort, &q.range) {
            key_condition = format!("{key_condition} AND {}", sdk_range(&mut expr, sort, range));
        }
        let filter = expr.condition(&q.filter);
        let mut builder = self
            .client
            .query()
            .table_name(&q.table)
            .set_index_name(q.index.clone())
            .key_condition_expression(key_condition)
            .set_filter_expression(filter)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .scan_index_forward(q.forward);
        if q.count_only {
            builder = builder.select(Select::Count);
        }
        let mut paginator = builder.into_paginator();
        if let Some(size) = q.page_size {
            paginator = paginator.page_size(i32::try_from(size.max(1)).unwrap_or(i32::MAX));
        }
        let pages = paginator.send();
        futures::stream::unfold(pages, |mut pages| async move {
            let page = pages.next().await?;
            Some((page, pages))
        })
        .map(|page| match page {
            Ok(out) => Ok(Page {
                count: u64::try_from(out.count()).unwrap_or(0),
                items: out.items.unwrap_or_default(),
            }),
            Err(e) => Err(store_error(classify!(e, QueryError), e)),
        })
        .boxed()
    }

    async fn update(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<Written, StoreError> {
        self.update_with(table, key, update, condition, None)
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
        self.update_with(table, key, update, condition, Some(ReturnValue::AllOld))
            .await
    }

    async fn transact(&self, items: Vec<TxItem>, token: Option<String>) -> Result<Written, StoreError> {
        let request: Vec<TransactWriteItem> = items.iter().map(sdk_tx_item).collect();
        let mut delays = crate::aws::backoff();
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(request.clone()))
                .set_client_request_token(token.clone())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Written::Done),
                Err(e) => e,
            };
            // A request that may have reached DynamoDB without its answer reaching us (a dropped
            // connection, a timeout) is sent again when it carries an idempotency token: DynamoDB
            // answers a repeat of an applied transaction with its success (for ten minutes).
            // Without the retry the caller would count an applied move as failed.
            let answer_lost = matches!(
                err,
                SdkError::DispatchFailure(_) | SdkError::ResponseError(_) | SdkError::TimeoutError(_)
            );
            let verdict = match tx_verdict(&err) {
                TxVerdict::Fail(_) if answer_lost && token.is_some() => TxVerdict::Retry,
                verdict => verdict,
            };
            match verdict {
                TxVerdict::ConditionFailed(flags) => return Ok(Written::ConditionFailed(flags)),
                TxVerdict::Fail(kind) => return Err(store_error(kind, err)),
                TxVerdict::Retry => match delays.next() {
                    Some(delay) => {
                        debug!(attempts, ?delay, error = %crate::error::render_error(&err), "transaction conflicted or throttled; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        return Err(StoreError::new(
                            FailureKind::Exhausted,
                            StillConflicting {
                                attempts,
                                last: Box::new(err),
                            },
                        ))
                    }
                },
            }
        }
    }

    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
        let requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("item is set"),
                    )
                    .build()
            })
            .collect();
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = chunk.to_vec();
            let mut delays = crate::aws::backoff();
            let mut attempts = 0usize;
            loop {
                attempts += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(|e| store_error(classify!(e, BatchWriteItemError), e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                let Some(delay) = delays.next() else {
                    return Err(StoreError::new(
                        FailureKind::Exhausted,
                        Unprocessed {
                            count: pending.len(),
                            attempts,
                        },
                    ));
                };
                debug!(
                    table,
                    unprocessed = pending.len(),
                    ?delay,
                    "retrying unprocessed items"
                );
                tokio::time::sleep(delay).await;
            }
        }
        Ok(())
    }

    async fn batch_get(&self, keys: Vec<(String, Key)>, attribute: &str) -> Result<Vec<Item>, StoreError> {
        use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut by_table: HashMap<String, Vec<Key>> = HashMap::new();
            for (table, key) in chunk {
                by_table.entry(table.clone()).or_default().push(key.clone());
            }
            let mut request: HashMap<String, KeysAndAttributes> = by_table
                .into_iter()
                .map(|(table, keys)| {
                    let ka = KeysAndAttributes::builder()
                        .set_keys(Some(keys))
                        .projection_expression("#a")
                        .expression_attribute_names("#a", attribute)
                        .build()
                        .expect("keys are set");
                    (table, ka)
                })
                .collect();
            let mut delays = crate::aws::backoff();
            let mut attempts = 0usize;
            while !request.is_empty() {
                attempts += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| store_error(classify!(e, BatchGetItemError), e))?;
                found.extend(out.responses.unwrap_or_default().into_values().flatten());
                request = out.unprocessed_keys.unwrap_or_default();
                if request.is_empty() {
                    break;
                }
                let Some(delay) = delays.next() else {
                    let count = request.values().map(|k| k.keys().len()).sum();
                    warn!(count, attempts, "keys still unprocessed");
                    return Err(StoreError::new(
                        FailureKind::Exhausted,
                        Unprocessed { count, attempts },
                    ));
                };
                tokio::time::sleep(delay).await;
            }
        }
        Ok(found)
    }
}

impl DynamoStore {
    /// UpdateItem with the given `ReturnValues` (the old item comes back with `ALL_OLD`).
    async fn update_with(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
        return_values: Option<ReturnValue>,
    ) -> Result<(Written, Option<Item>), StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

        let mut expr = Expr::default();
        let update_expression = expr.update(&update);
        let condition = expr.condition(&condition);
        let result = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update_expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .set_return_values(return_values)
            .send()
            .await;
        match result {
            Ok(out) => Ok((Written::Done, out.attributes)),
            Err(e) if update_condition_failed(&e) => Ok((Written::ConditionFailed(vec![true]), None)),
            Err(e) => Err(store_error(classify!(e, UpdateItemError), e)),
        }
    }
}

fn sdk_tx_item(item: &TxItem) -> TransactWriteItem {
    let mut expr = Expr::default();
    match item {
        TxItem::Put {
            table,
            item,
            condition,
        } => {
            let condition = expr.condition(condition);
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item.clone()))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .expect("table and item are set");
            TransactWriteItem::builder().put(put).build()
        }
        TxItem::Delete {
            table,
            key,
            condition,
        } => {
            let condition = expr.condition(condition);
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(key.clone()))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .expect("table and key are set");
            TransactWriteItem::builder().delete(delete).build()
        }
        TxItem::Check {
            table,
            key,
            condition,
        } => {
            // DynamoDB requires a condition on a ConditionCheck; an empty one is refused as invalid.
            let condition = expr.condition(condition).unwrap_or_default();
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key.clone()))
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .expect("table, key and condition are set");
            TransactWriteItem::builder().condition_check(check).build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_updates_render_with_placeholders() {
        let mut e = Expr::default();
        let c = e
            .condition(&vec![
                Cond::Lt("greenfield".into(), AttributeValue::N("5".into())),
                Cond::NotExists("completed_at".into()),
            ])
            .unwrap();
        assert_eq!(c, "#n0 < :v0 AND attribute_not_exists(#n1)");
        let u = e.update(&Update {
            set: vec![("greenfield".into(), AttributeValue::N("9".into()))],
            remove: vec!["x".into()],
            increment: vec!["attempts".into()],
            append: vec![("sosw_meta_pending".into(), vec![AttributeValue::S("e".into())])],
        });
        assert_eq!(
            u,
            "SET #n0 = :v1, #n2 = if_not_exists(#n2, :v2) + :v3, \
             #n3 = list_append(if_not_exists(#n3, :v4), :v5) REMOVE #n4"
        );
        assert_eq!(
            e.values[":v5"],
            AttributeValue::L(vec![AttributeValue::S("e".into())])
        );
        assert_eq!(e.names().unwrap()["#n2"], "attempts");
    }
}
