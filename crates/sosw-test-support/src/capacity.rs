//! DynamoDB capacity units, computed from item sizes by an SDK interceptor (for benchmarks).
//!
//! moto answers `ReturnConsumedCapacity` with fixed figures (1.0 a write, 0.5 a read, 2.0 a
//! transaction item, whatever the item's size), so the units are computed here instead, by
//! DynamoDB's rules, from what the client sends and gets back:
//! - writes: `PutItem` and the puts of `BatchWriteItem` cost one WCU per started KiB of the item;
//!   `UpdateItem`, `DeleteItem` and batch deletes cost 1 (their item's size is not in the request:
//!   items of up to 1 KiB assumed; [`CapacityTotals::largest_item`] shows the largest item seen);
//!   every item of a `TransactWriteItems` (`ConditionCheck` included) costs twice that.
//!   Writes are counted when sent (a failed condition consumes capacity on DynamoDB too).
//! - reads: `Query`/`Scan` cost one unit per started 4 KiB of the items returned (at least one),
//!   `GetItem`/`BatchGetItem` one per started 4 KiB per item; half a unit when eventually
//!   consistent; `TransactGetItems` twice. (DynamoDB charges a projected query by the full item
//!   size; here the returned size is used.)
//! - Global secondary index writes are not counted (the same for every implementation).
//!
//! Use: build the DynamoDB client with `.interceptor(counter.clone())` on its config builder.

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Capacity units summed so far (in half units, to stay exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityTotals {
    /// Write capacity units × 2.
    pub wcu_halves: u64,
    /// Read capacity units × 2.
    pub rcu_halves: u64,
    /// The largest item seen written or read, in bytes.
    pub largest_item: u64,
}

impl CapacityTotals {
    /// Write capacity units.
    pub fn wcu(&self) -> f64 {
        self.wcu_halves as f64 / 2.0
    }
    /// Read capacity units.
    pub fn rcu(&self) -> f64 {
        self.rcu_halves as f64 / 2.0
    }
    /// The units consumed since `earlier`.
    pub fn since(&self, earlier: &CapacityTotals) -> CapacityTotals {
        CapacityTotals {
            wcu_halves: self.wcu_halves.saturating_sub(earlier.wcu_halves),
            rcu_halves: self.rcu_halves.saturating_sub(earlier.rcu_halves),
            largest_item: self.largest_item,
        }
    }
}

/// The interceptor: clone it into each DynamoDB client whose requests should be summed.
#[derive(Debug, Clone, Default)]
pub struct CapacityCounter(Arc<Mutex<CapacityTotals>>);

impl CapacityCounter {
    /// The totals so far.
    pub fn totals(&self) -> CapacityTotals {
        *self.0.lock().expect("capacity counter not poisoned")
    }

    fn add(&self, wcu_halves: u64, rcu_halves: u64, largest: u64) {
        let mut t = self.0.lock().expect("capacity counter not poisoned");
        t.wcu_halves += wcu_halves;
        t.rcu_halves += rcu_halves;
        t.largest_item = t.largest_item.max(largest);
    }
}

/// DynamoDB's size of an attribute value, in bytes.
pub fn value_size(v: &AttributeValue) -> u64 {
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<u64>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() as u64 + value_size(x))
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn number_size(n: &str) -> u64 {
    let digits = n
        .trim_start_matches('-')
        .split(['e', 'E'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .count() as u64;
    digits.div_ceil(2) + 1
}

/// DynamoDB's size of an item: attribute names plus values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum()
}

fn write_units(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

fn read_units(size: u64) -> u64 {
    size.div_ceil(4096).max(1)
}

/// How the reads of one request are charged: half-units per 4 KiB read unit.
#[derive(Debug, Clone, Copy)]
struct ReadCharge(u64);
impl Storable for ReadCharge {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CapacityCounter {
    fn name(&self) -> &'static str {
        "CapacityCounter"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation as op;
        let input = context.input();
        let (mut units, mut largest) = (0u64, 0u64);
        let charge = |strong: Option<bool>| if strong == Some(true) { 2 } else { 1 };
        if let Some(i) = input.downcast_ref::<op::put_item::PutItemInput>() {
            let size = i.item.as_ref().map(item_size).unwrap_or(0);
            (units, largest) = (write_units(size), size);
        } else if input.downcast_ref::<op::update_item::UpdateItemInput>().is_some()
            || input.downcast_ref::<op::delete_item::DeleteItemInput>().is_some()
        {
            units = 1;
        } else if let Some(i) = input.downcast_ref::<op::batch_write_item::BatchWriteItemInput>() {
            for request in i.request_items.iter().flat_map(|m| m.values()).flatten() {
                let size = request
                    .put_request
                    .as_ref()
                    .map(|p| item_size(&p.item))
                    .unwrap_or(0);
                largest = largest.max(size);
                units += write_units(size);
            }
        } else if let Some(i) = input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>() {
            for item in i.transact_items.iter().flatten() {
                let size = item.put.as_ref().map(|p| item_size(&p.item)).unwrap_or(0);
                largest = largest.max(size);
                units += 2 * write_units(size);
            }
        } else if let Some(i) = input.downcast_ref::<op::get_item::GetItemInput>() {
            cfg.interceptor_state()
                .store_put(ReadCharge(charge(i.consistent_read)));
        } else if let Some(i) = input.downcast_ref::<op::query::QueryInput>() {
            cfg.interceptor_state()
                .store_put(ReadCharge(charge(i.consistent_read)));
        } else if let Some(i) = input.downcast_ref::<op::scan::ScanInput>() {
            cfg.interceptor_state()
                .store_put(ReadCharge(charge(i.consistent_read)));
        } else if input
            .downcast_ref::<op::batch_get_item::BatchGetItemInput>()
            .is_some()
        {
            cfg.interceptor_state().store_put(ReadCharge(1));
        } else if input
            .downcast_ref::<op::transact_get_items::TransactGetItemsInput>()
            .is_some()
        {
            cfg.interceptor_state().store_put(ReadCharge(4));
        }
        // Whole write units, kept in halves.
        self.add(units * 2, 0, largest);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation as op;
        let Some(ReadCharge(charge)) = cfg.load::<ReadCharge>().copied() else {
            return Ok(());
        };
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        // Items read, grouped as charged: a query or scan is charged on the sum of its items, a get
        // per item.
        let per_item = |items: &mut dyn Iterator<Item = u64>| -> (Vec<u64>, u64) {
            let sizes: Vec<u64> = items.collect();
            let largest = sizes.iter().copied().max().unwrap_or(0);
            (sizes, largest)
        };
        let (charged, largest): (Vec<u64>, u64) =
            if let Some(o) = output.downcast_ref::<op::get_item::GetItemOutput>() {
                let size = o.item.as_ref().map(item_size).unwrap_or(0);
                (vec![size], size)
            } else if let Some(o) = output.downcast_ref::<op::query::QueryOutput>() {
                let (sizes, largest) = per_item(&mut o.items.iter().flatten().map(item_size));
                (vec![sizes.iter().sum()], largest)
            } else if let Some(o) = output.downcast_ref::<op::scan::ScanOutput>() {
                let (sizes, largest) = per_item(&mut o.items.iter().flatten().map(item_size));
                (vec![sizes.iter().sum()], largest)
            } else if let Some(o) = output.downcast_ref::<op::batch_get_item::BatchGetItemOutput>() {
                per_item(
                    &mut o
                        .responses
                        .iter()
                        .flat_map(|m| m.values())
                        .flatten()
                        .map(item_size),
                )
            } else if let Some(o) = output.downcast_ref::<op::transact_get_items::TransactGetItemsOutput>() {
                per_item(
                    &mut o
                        .responses
                        .iter()
                        .flatten()
                        .map(|r| r.item.as_ref().map(item_size).unwrap_or(0)),
                )
            } else {
                (Vec::new(), 0)
            };
        let halves = charged.iter().map(|s| read_units(*s) * charge).sum();
        self.add(0, halves, largest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        // name bytes + string bytes
        assert_eq!(
            item_size(&item(&[("task_id", AttributeValue::S("abc".into()))])),
            10
        );
        // numbers: about one byte per two significant digits, plus one
        assert_eq!(value_size(&AttributeValue::N("1000".into())), 3);
        assert_eq!(value_size(&AttributeValue::N("-12345".into())), 4);
        // a map: 3 bytes + per element 1 + name + value
        let m = AttributeValue::M(item(&[("a", AttributeValue::Bool(true))]));
        assert_eq!(value_size(&m), 3 + 1 + 1 + 1);
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        assert_eq!(read_units(4097), 2);
    }

    #[tokio::test]
    async fn a_client_with_the_counter_sums_writes_and_reads_from_item_sizes() {
        let aws = crate::LocalAws::start().await;
        aws.deploy_storage().await;
        let counter = CapacityCounter::default();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
                .interceptor(counter.clone())
                .build(),
        );
        let big = "x".repeat(1500); // two write units, one read unit
        dynamo
            .put_item()
            .table_name("sosw_tasks_meta")
            .item("task_id", AttributeValue::S("t1".into()))
            .item("created_at", AttributeValue::N("1".into()))
            .item("blob", AttributeValue::S(big))
            .send()
            .await
            .unwrap();
        assert_eq!(counter.totals().wcu(), 2.0);
        let before = counter.totals();
        dynamo
            .query()
            .table_name("sosw_tasks_meta")
            .key_condition_expression("task_id = :t")
            .expression_attribute_values(":t", AttributeValue::S("t1".into()))
            .send()
            .await
            .unwrap();
        let read = counter.totals().since(&before);
        assert_eq!(
            (read.wcu(), read.rcu()),
            (0.0, 0.5),
            "eventually consistent: half a unit"
        );
        let largest = counter.totals().largest_item;
        assert!(
            (1500..2000).contains(&largest),
            "the item, not the query: {largest}"
        );
    }
}
