//! The table under the store: the embedded `MemoryTable` with a DynamoDB-like latency model, or
//! a real DynamoDB table; and [`CountingTable`], which tells which operation of the trace made
//! each table request.
//!
//! Attribution uses a tokio task-local set around every replayed operation ([`OP_CONTEXT`]):
//! a request made while that operation's task polls it is counted for the operation's kind.
//! Point reads go through the store's batch loader, a task of its own, so they carry no context
//! and are counted as `batched` (only read operations read through the loader).
//!
//! Read units here are estimated from item sizes exactly as `MemoryTable` charges them (4 KB
//! units, halved for eventually consistent reads); the store's own totals (`stats().table`) are
//! reported beside them.

use async_trait::async_trait;
use goalstore::keys::ItemKey;
use goalstore::table::{
    item_size, BatchGetOutput, Condition, DynamoTable, Item, MemoryTable, MemoryTableOptions,
    Query, QueryPage, Table, TableError, TableUsage, Update, Write,
};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::workload::OpKind;

/// What the replayer knows about the operation a task is running.
#[derive(Debug)]
pub struct OpContext {
    pub kind: OpKind,
    /// Query requests made by this operation (a `get_progress` that queries missed its cache).
    pub queries: Cell<u32>,
}

impl OpContext {
    /// A context for an operation of `kind`.
    pub fn new(kind: OpKind) -> Self {
        Self {
            kind,
            queries: Cell::new(0),
        }
    }
}

tokio::task_local! {
    /// The operation the current task is replaying.
    pub static OP_CONTEXT: OpContext;
}

/// Who made table requests: an operation kind, or the batch loader.
pub const CLASSES: usize = OpKind::ALL.len() + 1;
/// The class of the batch loader's requests.
pub const BATCHED: usize = OpKind::ALL.len();

/// Requests of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ClassUsage {
    pub read_requests: u64,
    pub read_units: f64,
    pub write_requests: u64,
}

/// A table that counts requests by the operation that made them.
#[derive(Debug)]
pub struct CountingTable {
    inner: Arc<dyn Table>,
    consistent_reads: bool,
    classes: Mutex<[ClassUsage; CLASSES]>,
}

impl CountingTable {
    /// Counts the requests to `inner`.
    pub fn new(inner: Arc<dyn Table>, consistent_reads: bool) -> Self {
        Self {
            inner,
            consistent_reads,
            classes: Mutex::new([ClassUsage::default(); CLASSES]),
        }
    }

    /// Requests so far, by class (index: [`OpKind::index`], or [`BATCHED`]).
    pub fn classes(&self) -> [ClassUsage; CLASSES] {
        *self.classes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn class() -> usize {
        OP_CONTEXT
            .try_with(|context| context.kind.index())
            .unwrap_or(BATCHED)
    }

    fn read(&self, bytes: &[usize], is_query: bool) {
        let class = Self::class();
        if is_query {
            let _ = OP_CONTEXT.try_with(|context| context.queries.set(context.queries.get() + 1));
        }
        let units: f64 = if is_query {
            // A query is charged on the summed size of what it read.
            self.units(bytes.iter().sum())
        } else {
            bytes.iter().map(|b| self.units(*b)).sum::<f64>()
        };
        let mut classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        classes[class].read_requests += 1;
        classes[class].read_units += units;
    }

    fn wrote(&self) {
        let class = Self::class();
        self.classes.lock().unwrap_or_else(|e| e.into_inner())[class].write_requests += 1;
    }

    fn units(&self, bytes: usize) -> f64 {
        let units = bytes.div_ceil(4096).max(1) as f64;
        if self.consistent_reads {
            units
        } else {
            units / 2.0
        }
    }
}

#[async_trait]
impl Table for CountingTable {
    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError> {
        let result = self.inner.get_item(key).await;
        let size = result
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map_or(0, item_size);
        self.read(&[size], false);
        result
    }

    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError> {
        let result = self.inner.batch_get_items(keys).await;
        let sizes: Vec<usize> = result
            .as_ref()
            .map(|output| output.items.iter().map(item_size).collect())
            .unwrap_or_default();
        // DynamoDB charges per item found; a batch that finds nothing costs nothing, but it is
        // still a request.
        let class = Self::class();
        let units: f64 = sizes.iter().map(|b| self.units(*b)).sum();
        let mut classes = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        classes[class].read_requests += 1;
        classes[class].read_units += units;
        result
    }

    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let result = self.inner.put_item(item, condition).await;
        self.wrote();
        result
    }

    async fn update_item(&self, update: Update) -> Result<(), TableError> {
        let result = self.inner.update_item(update).await;
        self.wrote();
        result
    }

    async fn transact_write(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let result = self.inner.transact_write(writes).await;
        self.wrote();
        result
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, TableError> {
        let result = self.inner.query(query).await;
        let sizes: Vec<usize> = result
            .as_ref()
            .map(|page| page.items.iter().map(item_size).collect())
            .unwrap_or_default();
        self.read(&sizes, true);
        result
    }

    fn usage(&self) -> TableUsage {
        self.inner.usage()
    }
}

/// `after - before`, field by field.
pub fn usage_delta(before: &TableUsage, after: &TableUsage) -> TableUsage {
    TableUsage {
        get_item: after.get_item - before.get_item,
        batch_get_item: after.batch_get_item - before.batch_get_item,
        put_item: after.put_item - before.put_item,
        update_item: after.update_item - before.update_item,
        transact_write_items: after.transact_write_items - before.transact_write_items,
        query: after.query - before.query,
        throttled: after.throttled - before.throttled,
        read_units: after.read_units - before.read_units,
        write_units: after.write_units - before.write_units,
    }
}

/// Which table a run uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// A fresh embedded table per strategy, with this latency model.
    Memory(MemoryTableOptions),
    /// A real DynamoDB table (one per run; each strategy seeds users of its own).
    Dynamo {
        table: String,
        endpoint: Option<String>,
        consistent_reads: bool,
    },
}

/// A table for one strategy's run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The table as the store sees it.
    pub table: Arc<dyn Table>,
    /// The embedded table itself, for loading fixtures without accounting.
    pub memory: Option<Arc<MemoryTable>>,
}

impl Backend {
    /// The embedded table with DynamoDB-like latency: `latency` per request plus
    /// `latency_per_item` per item read or written, strongly consistent reads.
    pub fn memory(latency: Duration, latency_per_item: Duration, consistent_reads: bool) -> Self {
        Backend::Memory(MemoryTableOptions {
            latency,
            latency_per_item,
            consistent_reads,
            ..MemoryTableOptions::dynamodb_like()
        })
    }

    /// Whether reads are strongly consistent.
    pub fn consistent_reads(&self) -> bool {
        match self {
            Backend::Memory(options) => options.consistent_reads,
            Backend::Dynamo {
                consistent_reads, ..
            } => *consistent_reads,
        }
    }

    /// A line describing it.
    pub fn describe(&self) -> String {
        match self {
            Backend::Memory(options) => format!(
                "embedded MemoryTable, {:?} per request + {:?} per item, {} reads",
                options.latency,
                options.latency_per_item,
                if options.consistent_reads {
                    "strongly consistent"
                } else {
                    "eventually consistent"
                }
            ),
            Backend::Dynamo {
                table, endpoint, ..
            } => format!(
                "DynamoDB table `{table}`{}",
                endpoint
                    .as_deref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// A table for one strategy: a new embedded table, or a new client of the DynamoDB table
    /// (so its usage counts only this strategy's requests).
    pub async fn prepare(&self) -> Prepared {
        match self {
            Backend::Memory(options) => {
                let memory = Arc::new(MemoryTable::new(options.clone()));
                Prepared {
                    table: memory.clone(),
                    memory: Some(memory),
                }
            }
            Backend::Dynamo {
                table,
                endpoint,
                consistent_reads,
            } => {
                let dynamo = DynamoTable::from_environment(table.clone(), endpoint.as_deref())
                    .await
                    .with_consistent_reads(*consistent_reads);
                Prepared {
                    table: Arc::new(dynamo),
                    memory: None,
                }
            }
        }
    }
}
