//! The system of record: the goals table, behind one small trait.
//!
//! Two implementations share the same semantics: [`DynamoTable`] (aws-sdk-dynamodb) and
//! [`MemoryTable`] (embedded; the zero-setup default and the benchmark backend). The trait is the
//! few DynamoDB operations goalstore needs, each one request: no retries of unprocessed keys here
//! (the batch loader owns that) and no caching (the store owns that).
//!
//! Conditions are a small typed enum rather than expression strings, so both implementations
//! evaluate exactly the same thing.

mod dynamo;
mod memory;
mod metered;

pub use dynamo::DynamoTable;
pub use memory::{MemoryTable, MemoryTableOptions};

/// DynamoDB's limit on one item's size.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// An item's size as DynamoDB counts it (attribute names plus values).
pub fn item_size(item: &Item) -> usize {
    memory::item_size(item)
}
pub use metered::MeteredTable;

use crate::keys::ItemKey;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One item, as DynamoDB holds it.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's limit on keys in one BatchGetItem request.
pub const MAX_BATCH_GET_KEYS: usize = 100;

/// Errors of one table request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    /// The write's condition did not hold; nothing was written.
    #[error("the condition of the write did not hold")]
    ConditionFailed,
    /// DynamoDB throttled the request (ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded).
    #[error("throttled ({code}) after {attempts} attempts")]
    Throttled { code: String, attempts: u32 },
    /// The table could not be reached or failed on its side.
    #[error("table unavailable: {0}")]
    Unavailable(String),
    /// The table refused the request as malformed (a bug in goalstore, or a table of another shape).
    #[error("request rejected: {0}")]
    Rejected(String),
}

/// A condition a write must meet.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// No item with this key exists.
    ItemAbsent,
    /// The item exists and `attribute` equals `value`.
    AttributeEquals {
        attribute: String,
        value: AttributeValue,
    },
}

/// An UpdateItem: sets `set` and removes `remove` on the item `key`, keeping every other
/// attribute it has (the existing handlers' own, and ones this version does not know). An item
/// is created when none exists and the condition allows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub key: ItemKey,
    pub set: Item,
    pub remove: Vec<String>,
    pub condition: Option<Condition>,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// PutItem: the whole item, replacing any item of its key.
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    /// UpdateItem.
    Update(Update),
}

impl Write {
    /// The key of the item written, when it has one.
    pub fn key(&self) -> Option<ItemKey> {
        match self {
            Write::Put { item, .. } => item_key(item),
            Write::Update(update) => Some(update.key.clone()),
        }
    }
}

/// Which sort keys a query visits within one partition.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKeyRange {
    /// Sort keys starting with the prefix.
    BeginsWith(String),
    /// Sort keys from `low` to `high`, both included.
    Between { low: String, high: String },
}

/// A query over one partition, one page at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub pk: String,
    pub sort_keys: SortKeyRange,
    /// Newest (highest sort key) first.
    pub descending: bool,
    /// At most this many items in the page.
    pub limit: Option<u32>,
    /// Continue after this sort key (DynamoDB's ExclusiveStartKey).
    pub start_after: Option<String>,
}

/// One page of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPage {
    pub items: Vec<Item>,
    /// The sort key to continue after, when more items may follow.
    pub last_sort_key: Option<String>,
}

/// What one BatchGetItem request returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchGetOutput {
    pub items: Vec<Item>,
    /// Keys the table did not process this time; ask again.
    pub unprocessed: Vec<ItemKey>,
}

/// The goals table.
#[async_trait]
pub trait Table: Send + Sync + std::fmt::Debug + 'static {
    /// The DynamoDB table's name, when there is one (for traces).
    fn name(&self) -> Option<&str> {
        None
    }

    /// GetItem.
    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError>;

    /// One BatchGetItem request for at most [`MAX_BATCH_GET_KEYS`] distinct keys.
    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError>;

    /// PutItem, refused with [`TableError::ConditionFailed`] when `condition` does not hold.
    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError>;

    /// UpdateItem, refused with [`TableError::ConditionFailed`] when its condition does not hold.
    async fn update_item(&self, update: Update) -> Result<(), TableError>;

    /// TransactWriteItems: all writes land or none does; at most 100, of distinct items.
    /// Refused with [`TableError::ConditionFailed`] when any condition does not hold.
    async fn transact_write(&self, writes: Vec<Write>) -> Result<(), TableError>;

    /// One page of a Query.
    async fn query(&self, query: &Query) -> Result<QueryPage, TableError>;

    /// Requests made and capacity consumed so far.
    fn usage(&self) -> TableUsage;
}

/// The table operations goalstore makes, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    GetItem,
    BatchGetItem,
    PutItem,
    UpdateItem,
    TransactWriteItems,
    Query,
}

impl Operation {
    /// DynamoDB's name of the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetItem => "GetItem",
            Operation::BatchGetItem => "BatchGetItem",
            Operation::PutItem => "PutItem",
            Operation::UpdateItem => "UpdateItem",
            Operation::TransactWriteItems => "TransactWriteItems",
            Operation::Query => "Query",
        }
    }
}

/// Requests and consumed capacity of a table since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableUsage {
    pub get_item: u64,
    pub batch_get_item: u64,
    pub put_item: u64,
    pub update_item: u64,
    pub transact_write_items: u64,
    pub query: u64,
    pub throttled: u64,
    /// Read capacity units, as DynamoDB reports them (or MemoryTable computes them).
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
}

impl TableUsage {
    /// Every request, of any operation.
    pub fn requests(&self) -> u64 {
        self.get_item
            + self.batch_get_item
            + self.put_item
            + self.update_item
            + self.transact_write_items
            + self.query
    }

    /// Read requests (GetItem, BatchGetItem, Query).
    pub fn read_requests(&self) -> u64 {
        self.get_item + self.batch_get_item + self.query
    }
}

/// Counters shared by both tables. Capacity is kept in milli-units so it can be atomic.
#[derive(Debug, Default)]
pub(crate) struct UsageCounters {
    get_item: AtomicU64,
    batch_get_item: AtomicU64,
    put_item: AtomicU64,
    update_item: AtomicU64,
    transact_write_items: AtomicU64,
    query: AtomicU64,
    throttled: AtomicU64,
    read_milli_units: AtomicU64,
    write_milli_units: AtomicU64,
}

impl UsageCounters {
    pub(crate) fn request(&self, operation: Operation) {
        let counter = match operation {
            Operation::GetItem => &self.get_item,
            Operation::BatchGetItem => &self.batch_get_item,
            Operation::PutItem => &self.put_item,
            Operation::UpdateItem => &self.update_item,
            Operation::TransactWriteItems => &self.transact_write_items,
            Operation::Query => &self.query,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn consumed(&self, operation: Operation, read_units: f64, write_units: f64) {
        // Capacity is fractional (0.5 units per eventually consistent read): counted in
        // thousandths, so the counters stay integers and rate() reads them as it should.
        let (read, write) = (to_milli(read_units), to_milli(write_units));
        self.read_milli_units.fetch_add(read, Ordering::Relaxed);
        self.write_milli_units.fetch_add(write, Ordering::Relaxed);
        let op = operation.as_str();
        if read > 0 {
            metrics::counter!(crate::metrics::DYNAMODB_READ_CAPACITY, "operation" => op)
                .increment(read);
        }
        if write > 0 {
            metrics::counter!(crate::metrics::DYNAMODB_WRITE_CAPACITY, "operation" => op)
                .increment(write);
        }
    }

    pub(crate) fn snapshot(&self) -> TableUsage {
        TableUsage {
            get_item: self.get_item.load(Ordering::Relaxed),
            batch_get_item: self.batch_get_item.load(Ordering::Relaxed),
            put_item: self.put_item.load(Ordering::Relaxed),
            update_item: self.update_item.load(Ordering::Relaxed),
            transact_write_items: self.transact_write_items.load(Ordering::Relaxed),
            query: self.query.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            read_units: self.read_milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
            write_units: self.write_milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

fn to_milli(units: f64) -> u64 {
    if units.is_finite() && units > 0.0 {
        (units * 1000.0).round() as u64
    } else {
        0
    }
}

/// The key attributes of `item`, when it has them as strings.
pub fn item_key(item: &Item) -> Option<ItemKey> {
    match (item.get("pk"), item.get("sk")) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some(ItemKey {
            pk: pk.clone(),
            sk: sk.clone(),
        }),
        _ => None,
    }
}
