//! The storage capabilities the [`TaskManager`](super::TaskManager) stands on, in the manner of
//! apalis' backends: a small trait, [`TaskStore`], and two implementations with the same
//! semantics for what sosw relies on.
//!
//! | store | what it is |
//! |---|---|
//! | [`DynamoStore`] | DynamoDB through the AWS SDK: the production store (items byte-identical to Python sosw's) |
//! | [`MemoryStore`] | in-process tables with DynamoDB's semantics: atomic conditional writes, all-or-nothing transactions with cancellation reasons, index order, `Limit` applied before filters, pagination |
//!
//! Requests are typed ([`Condition`], [`Range`], [`Update`], [`TxItem`]) rather than expression
//! text, so that the in-memory store evaluates exactly what the DynamoDB store renders. The
//! contract suite `crates/sosw-core/tests/store_contract.rs` runs the same checks on both.

pub mod dynamo;
pub mod memory;

pub use crate::error::{FailureKind, StoreError};

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;

use super::model::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::BoxStream;
use std::fmt;

/// The key attributes of an item (`task_id`, or `labourer_id` + `task_id` in the retry table).
pub type Key = Item;

/// One test on an attribute of the item a write targets.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The attribute exists.
    Exists(String),
    /// The attribute does not exist.
    NotExists(String),
    /// The attribute equals the value (numbers compare by value).
    Eq(String, AttributeValue),
    /// The attribute is a number (or string) below the value.
    Lt(String, AttributeValue),
    /// The attribute is a number (or string) above the value.
    Gt(String, AttributeValue),
}

/// A conjunction of [`Cond`]s (empty: no condition).
pub type Condition = Vec<Cond>;

/// A key condition on an index's range attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// Below the value.
    Lt(AttributeValue),
    /// At or below the value.
    Le(AttributeValue),
    /// At or above the value.
    Ge(AttributeValue),
    /// Between both values, inclusive.
    Between(AttributeValue, AttributeValue),
}

/// A query on a table or index: every item whose `hash` attribute equals the value, in the
/// order of the `sort` attribute, optionally limited by a [`Range`] on it and then filtered.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexQuery {
    /// The table.
    pub table: String,
    /// The index, or `None` for the table itself.
    pub index: Option<String>,
    /// The hash attribute of the index and the value looked for.
    pub hash: (String, AttributeValue),
    /// The range attribute of the index (items without it are not in the index).
    pub sort: Option<String>,
    /// A key condition on the range attribute.
    pub range: Option<Range>,
    /// A filter applied after the key condition and after `page_size` (as DynamoDB's `Limit`).
    pub filter: Condition,
    /// Ascending (`true`) or descending order of the range attribute.
    pub forward: bool,
    /// Items evaluated per page (DynamoDB's `Limit`, applied before the filter).
    pub page_size: Option<usize>,
    /// Only count the matching items (DynamoDB's `Select::Count`): pages carry no items.
    pub count_only: bool,
}

impl IndexQuery {
    /// A query on `index` of `table` for `hash` = `value`, ascending, unfiltered.
    pub fn new(table: &str, index: Option<&str>, hash: &str, value: AttributeValue) -> Self {
        Self {
            table: table.to_string(),
            index: index.map(str::to_string),
            hash: (hash.to_string(), value),
            sort: None,
            range: None,
            filter: Vec::new(),
            forward: true,
            page_size: None,
            count_only: false,
        }
    }

    /// With the index's range attribute and a condition on it.
    pub fn range(mut self, sort: &str, range: Option<Range>) -> Self {
        self.sort = Some(sort.to_string());
        self.range = range;
        self
    }

    /// With a filter.
    pub fn filter(mut self, filter: Condition) -> Self {
        self.filter = filter;
        self
    }

    /// The table, or `table/index`, for errors and logs.
    pub fn target(&self) -> String {
        match &self.index {
            Some(i) => format!("{}/{i}", self.table),
            None => self.table.clone(),
        }
    }
}

/// One page of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The items that passed the filter (empty for a count).
    pub items: Vec<Item>,
    /// How many items passed the filter.
    pub count: u64,
}

/// An update of one item: `SET` values, `REMOVE` attributes, `+1` counters
/// (`if_not_exists(x, 0) + 1`), values appended to list attributes
/// (`list_append(if_not_exists(x, []), [...])`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Attributes set to values.
    pub set: Vec<(String, AttributeValue)>,
    /// Attributes removed.
    pub remove: Vec<String>,
    /// Attributes incremented by one (from 0 when absent).
    pub increment: Vec<String>,
    /// Values appended, in order, to list (`L`) attributes (created when absent).
    pub append: Vec<(String, Vec<AttributeValue>)>,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxItem {
    /// Put an item, if the item it replaces meets the condition.
    Put {
        /// The table.
        table: String,
        /// The item.
        item: Item,
        /// Tested on the item it replaces (absent attributes when none).
        condition: Condition,
    },
    /// Delete an item, if it meets the condition.
    Delete {
        /// The table.
        table: String,
        /// The key.
        key: Key,
        /// Tested on the item.
        condition: Condition,
    },
    /// Write nothing; only test the condition.
    Check {
        /// The table.
        table: String,
        /// The key.
        key: Key,
        /// Tested on the item.
        condition: Condition,
    },
}

/// How a conditional write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written.
    Done,
    /// A condition failed: nothing was written. For a transaction, one flag per item of the
    /// request: `true` where that item's condition failed (DynamoDB's cancellation reasons).
    ConditionFailed(Vec<bool>),
}

/// The storage capabilities of the [`TaskManager`](super::TaskManager). Every method names the
/// table it works on; keys and items are DynamoDB items in both stores.
#[async_trait::async_trait]
pub trait TaskStore: Send + Sync + fmt::Debug {
    /// A strongly consistent read of one item.
    async fn get(&self, table: &str, key: Key) -> Result<Option<Item>, StoreError>;

    /// The pages of a query, in index order. Each page evaluates at most `page_size` items of the
    /// key condition before the filter, as DynamoDB's `Limit` does.
    fn query(&self, query: IndexQuery) -> BoxStream<'_, Result<Page, StoreError>>;

    /// Update one item if it exists and meets the condition.
    async fn update(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<Written, StoreError>;

    /// [`Self::update`], also returning the item as it was before an applied update (DynamoDB's
    /// `ReturnValues: ALL_OLD`, which costs no capacity): the Worker Assistant learns a reported
    /// task's labourer from its one write. A store that cannot tell returns `None`.
    async fn update_returning_old(
        &self,
        table: &str,
        key: Key,
        update: Update,
        condition: Condition,
    ) -> Result<(Written, Option<Item>), StoreError> {
        Ok((self.update(table, key, update, condition).await?, None))
    }

    /// Write all items or none. A conflict with a concurrent transaction or a throttle is retried
    /// with bounded backoff; a failed condition is final. `token` makes retries idempotent.
    async fn transact(&self, items: Vec<TxItem>, token: Option<String>) -> Result<Written, StoreError>;

    /// Put items (unconditionally), any number, unprocessed ones retried with bounded backoff.
    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError>;

    /// Of these keys, the ones that exist, as their `attribute` only (any number of keys).
    async fn batch_get(&self, keys: Vec<(String, Key)>, attribute: &str) -> Result<Vec<Item>, StoreError>;
}
