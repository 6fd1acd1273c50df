//! `MeteredTable`: any table, with every request counted by operation and outcome, and
//! throttles counted, as metrics. The store wraps its table in one, so both tables report alike.

use super::{
    BatchGetOutput, Condition, Item, Operation, Query, QueryPage, Table, TableError, TableUsage,
    Update, Write,
};
use crate::keys::ItemKey;
use crate::metrics::{DYNAMODB_REQUESTS, DYNAMODB_THROTTLES};
use async_trait::async_trait;
use std::sync::Arc;
use tracing::Instrument;

/// A table whose requests become metrics.
#[derive(Debug)]
pub struct MeteredTable {
    inner: Arc<dyn Table>,
    /// The DynamoDB table's name, for the spans (`aws.dynamodb.table_names`); empty for a table
    /// that has none (the embedded one).
    name: Arc<str>,
}

impl MeteredTable {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn Table>) -> Self {
        let name = inner.name().unwrap_or_default().into();
        Self { inner, name }
    }
}

/// The span of one request, `dynamodb.<Operation>`, with the OpenTelemetry semantic
/// conventions' attributes of a DynamoDB call; free unless a layer records it.
macro_rules! request_span {
    ($self:ident, $operation:literal) => {
        tracing::info_span!(
            concat!("dynamodb.", $operation),
            otel.kind = "client",
            db.system.name = "aws.dynamodb",
            db.operation.name = $operation,
            aws.dynamodb.table_names = &*$self.name,
            outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    };
}

fn record<T>(operation: Operation, result: &Result<T, TableError>, span: &tracing::Span) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(TableError::ConditionFailed) => "condition_failed",
        Err(TableError::Throttled { .. }) => "throttled",
        Err(_) => "error",
    };
    span.record("outcome", outcome);
    if matches!(outcome, "throttled" | "error") {
        span.record("otel.status_code", "ERROR");
    }
    let op = operation.as_str();
    metrics::counter!(DYNAMODB_REQUESTS, "operation" => op, "outcome" => outcome).increment(1);
    if outcome == "throttled" {
        metrics::counter!(DYNAMODB_THROTTLES, "operation" => op).increment(1);
    }
}

#[async_trait]
impl Table for MeteredTable {
    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError> {
        let span = request_span!(self, "GetItem");
        let result = self.inner.get_item(key).instrument(span.clone()).await;
        record(Operation::GetItem, &result, &span);
        result
    }

    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError> {
        let span = request_span!(self, "BatchGetItem");
        let result = self
            .inner
            .batch_get_items(keys)
            .instrument(span.clone())
            .await;
        record(Operation::BatchGetItem, &result, &span);
        result
    }

    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let span = request_span!(self, "PutItem");
        let result = self
            .inner
            .put_item(item, condition)
            .instrument(span.clone())
            .await;
        record(Operation::PutItem, &result, &span);
        result
    }

    async fn update_item(&self, update: Update) -> Result<(), TableError> {
        let span = request_span!(self, "UpdateItem");
        let result = self
            .inner
            .update_item(update)
            .instrument(span.clone())
            .await;
        record(Operation::UpdateItem, &result, &span);
        result
    }

    async fn transact_write(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let span = request_span!(self, "TransactWriteItems");
        let result = self
            .inner
            .transact_write(writes)
            .instrument(span.clone())
            .await;
        record(Operation::TransactWriteItems, &result, &span);
        result
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, TableError> {
        let span = request_span!(self, "Query");
        let result = self.inner.query(query).instrument(span.clone()).await;
        record(Operation::Query, &result, &span);
        result
    }

    fn usage(&self) -> TableUsage {
        self.inner.usage()
    }
}
