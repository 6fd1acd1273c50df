//! `MeteredTable`: any table, with every request counted by operation and outcome, and
//! throttles counted, as metrics. The store wraps its table in one, so both tables report alike.

use super::{
    BatchGetOutput, Condition, Item, Operation, Query, QueryPage, Table, TableError, TableUsage,
};
use crate::keys::ItemKey;
use crate::metrics::{DYNAMODB_REQUESTS, DYNAMODB_THROTTLES};
use async_trait::async_trait;
use std::sync::Arc;

/// A table whose requests become metrics.
#[derive(Debug)]
pub struct MeteredTable {
    inner: Arc<dyn Table>,
}

impl MeteredTable {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self { inner }
    }
}

fn record<T>(operation: Operation, result: &Result<T, TableError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(TableError::ConditionFailed) => "condition_failed",
        Err(TableError::Throttled { .. }) => "throttled",
        Err(_) => "error",
    };
    let op = operation.as_str();
    metrics::counter!(DYNAMODB_REQUESTS, "operation" => op, "outcome" => outcome).increment(1);
    if outcome == "throttled" {
        metrics::counter!(DYNAMODB_THROTTLES, "operation" => op).increment(1);
    }
}

#[async_trait]
impl Table for MeteredTable {
    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError> {
        let result = self.inner.get_item(key).await;
        record(Operation::GetItem, &result);
        result
    }

    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError> {
        let result = self.inner.batch_get_items(keys).await;
        record(Operation::BatchGetItem, &result);
        result
    }

    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let result = self.inner.put_item(item, condition).await;
        record(Operation::PutItem, &result);
        result
    }

    async fn transact_put(&self, puts: Vec<(Item, Option<Condition>)>) -> Result<(), TableError> {
        let result = self.inner.transact_put(puts).await;
        record(Operation::TransactWriteItems, &result);
        result
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, TableError> {
        let result = self.inner.query(query).await;
        record(Operation::Query, &result);
        result
    }

    fn usage(&self) -> TableUsage {
        self.inner.usage()
    }
}
