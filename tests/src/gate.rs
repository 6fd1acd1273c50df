//! A table wrapper that can hold one read between reading the table and returning it, so a test
//! can run a write and its invalidation exactly inside a cache fill's window (the stale-fill race).

use async_trait::async_trait;
use goalstore::keys::ItemKey;
use goalstore::table::{
    BatchGetOutput, Condition, Item, Operation, Query, QueryPage, Table, TableError, TableUsage,
    Update, Write,
};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A read to hold: which operation, how to say it was reached, what releases it.
type Armed = (Operation, oneshot::Sender<()>, oneshot::Receiver<()>);

/// Passes every call to the table it wraps, except a read it was told to hold.
#[derive(Debug)]
pub struct GatedTable {
    inner: Arc<dyn Table>,
    armed: Mutex<Option<Armed>>,
}

/// The test's end of a held read.
#[derive(Debug)]
pub struct HeldRead {
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl HeldRead {
    /// Waits until the held read has read the table.
    pub async fn reached(&mut self) -> anyhow::Result<()> {
        (&mut self.reached)
            .await
            .map_err(|_| anyhow::anyhow!("the held read never happened"))
    }

    /// Lets the held read return what it read.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl GatedTable {
    /// A pass-through wrapper of `inner`.
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self {
            inner,
            armed: Mutex::new(None),
        }
    }

    /// The next `operation` (GetItem, BatchGetItem or Query) reads the table, then waits until
    /// the returned handle releases it.
    pub fn hold_next(&self, operation: Operation) -> HeldRead {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((operation, reached_tx, release_rx));
        HeldRead { reached, release }
    }

    async fn maybe_hold(&self, operation: Operation) {
        let gate = {
            let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
            match armed.as_ref() {
                Some((op, _, _)) if *op == operation => armed.take(),
                _ => None,
            }
        };
        if let Some((_, reached, release)) = gate {
            let _ = reached.send(());
            let _ = release.await;
        }
    }
}

#[async_trait]
impl Table for GatedTable {
    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError> {
        let result = self.inner.get_item(key).await;
        self.maybe_hold(Operation::GetItem).await;
        result
    }

    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError> {
        let result = self.inner.batch_get_items(keys).await;
        self.maybe_hold(Operation::BatchGetItem).await;
        result
    }

    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.inner.put_item(item, condition).await
    }

    async fn update_item(&self, update: Update) -> Result<(), TableError> {
        self.inner.update_item(update).await
    }

    async fn transact_write(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.inner.transact_write(writes).await
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, TableError> {
        let result = self.inner.query(query).await;
        self.maybe_hold(Operation::Query).await;
        result
    }

    fn usage(&self) -> TableUsage {
        self.inner.usage()
    }
}
