//! `DynamoTable`: the goals table in DynamoDB, through aws-sdk-dynamodb.
//!
//! Region and credentials come from the standard AWS chain; an endpoint override points it at a
//! local DynamoDB-compatible server. Every request asks for `ReturnConsumedCapacity=TOTAL` and the
//! units are added to [`TableUsage`].
//!
//! BatchGetItem goes out with the SDK's own retries turned off: the batch loader retries throttles
//! and unprocessed keys itself, with its own budget, and two layers of retries would multiply.
//! The other operations keep the SDK's standard retry policy.

use super::{
    BatchGetOutput, Condition, Item, Operation, Query, QueryPage, SortKeyRange, Table, TableError,
    TableUsage, Update, UsageCounters, Write, MAX_BATCH_GET_KEYS,
};
use crate::keys::ItemKey;
use async_trait::async_trait;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, KeysAndAttributes, Put, ReturnConsumedCapacity,
    TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// The goals table in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table_name: String,
    consistent_reads: bool,
    usage: std::sync::Arc<UsageCounters>,
}

impl DynamoTable {
    /// A table over an existing client.
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            consistent_reads: true,
            usage: Default::default(),
        }
    }

    /// A client configured from the standard AWS chain (environment, profile, IMDS), pointed at
    /// `endpoint` when given. Makes no network call: credentials are resolved on first use.
    pub async fn from_environment(table_name: impl Into<String>, endpoint: Option<&str>) -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_sdk_config(&shared, table_name, endpoint)
    }

    /// A table over a client built from an AWS configuration already loaded (region,
    /// credentials), with an optional endpoint override. Makes no network call.
    pub fn from_sdk_config(
        shared: &aws_config::SdkConfig,
        table_name: impl Into<String>,
        endpoint: Option<&str>,
    ) -> Self {
        let mut config = aws_sdk_dynamodb::config::Builder::from(shared);
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self::new(Client::from_conf(config.build()), table_name)
    }

    /// Whether reads are strongly consistent (the default: read-your-writes without a cache needs it)
    /// or eventually consistent (half the read units).
    pub fn with_consistent_reads(mut self, consistent: bool) -> Self {
        self.consistent_reads = consistent;
        self
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    fn record(&self, operation: Operation, capacity: Option<&ConsumedCapacity>) {
        if let Some(capacity) = capacity {
            let read = capacity.read_capacity_units().unwrap_or(0.0);
            let write = capacity.write_capacity_units().unwrap_or(0.0);
            if read == 0.0 && write == 0.0 {
                // Some servers report only the total; attribute it by operation later.
                self.usage
                    .consumed(operation, capacity.capacity_units().unwrap_or(0.0), 0.0);
            } else {
                self.usage.consumed(operation, read, write);
            }
        }
    }

    fn record_write(&self, operation: Operation, capacity: Option<&ConsumedCapacity>) {
        if let Some(capacity) = capacity {
            let write = capacity
                .write_capacity_units()
                .or(capacity.capacity_units())
                .unwrap_or(0.0);
            self.usage.consumed(operation, 0.0, write);
        }
    }

    fn classify<E, R>(&self, error: SdkError<E, R>) -> TableError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let code = error.code().map(str::to_owned);
        match code.as_deref() {
            Some("ConditionalCheckFailedException") => TableError::ConditionFailed,
            // A cancelled transaction: with only conditional puts, a condition did not hold.
            Some("TransactionCanceledException")
                if error
                    .message()
                    .is_some_and(|m| m.contains("ConditionalCheckFailed")) =>
            {
                TableError::ConditionFailed
            }
            Some(
                code @ ("ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"),
            ) => {
                self.usage.throttled();
                TableError::Throttled {
                    code: code.to_owned(),
                    attempts: 1,
                }
            }
            Some(code @ ("ValidationException" | "ResourceNotFoundException")) => {
                TableError::Rejected(format!(
                    "{code}: {}",
                    error.message().unwrap_or("no message")
                ))
            }
            _ => TableError::Unavailable(describe(&error)),
        }
    }
}

fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

type Names = HashMap<String, String>;
type Values = HashMap<String, AttributeValue>;

/// A condition as an expression, with the names and values it uses (`#c`, `:c`; none when
/// there is no condition).
fn condition_expression(condition: Option<Condition>) -> Option<(String, Names, Values)> {
    match condition? {
        Condition::ItemAbsent => Some((
            "attribute_not_exists(pk)".to_owned(),
            Names::new(),
            Values::new(),
        )),
        Condition::AttributeEquals { attribute, value } => Some((
            "attribute_exists(pk) AND #c = :c".to_owned(),
            Names::from([("#c".to_owned(), attribute)]),
            Values::from([(":c".to_owned(), value)]),
        )),
    }
}

/// DynamoDB refuses an empty map of names or values: leave it out instead.
fn non_empty<V>(map: HashMap<String, V>) -> Option<HashMap<String, V>> {
    (!map.is_empty()).then_some(map)
}

/// An UpdateItem as an expression: `SET` and `REMOVE` by placeholders (`#a0 = :a0`, `#r0`, …)
/// so that no attribute name can collide with a reserved word.
struct UpdateExpression {
    update: String,
    condition: Option<String>,
    names: Names,
    values: Values,
}

impl UpdateExpression {
    fn new(update: Update) -> Self {
        let (condition, mut names, mut values) = match condition_expression(update.condition) {
            Some((expression, names, values)) => (Some(expression), names, values),
            None => (None, Names::new(), Values::new()),
        };
        let mut sets = Vec::with_capacity(update.set.len());
        for (index, (name, value)) in update.set.into_iter().enumerate() {
            sets.push(format!("#a{index} = :a{index}"));
            names.insert(format!("#a{index}"), name);
            values.insert(format!(":a{index}"), value);
        }
        let mut removes = Vec::with_capacity(update.remove.len());
        for (index, name) in update.remove.into_iter().enumerate() {
            removes.push(format!("#r{index}"));
            names.insert(format!("#r{index}"), name);
        }
        let mut clauses = Vec::new();
        if !sets.is_empty() {
            clauses.push(format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            clauses.push(format!("REMOVE {}", removes.join(", ")));
        }
        Self {
            update: clauses.join(" "),
            condition,
            names,
            values,
        }
    }
}

fn key_attributes(key: &ItemKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(key.pk.clone())),
        ("sk".to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

#[async_trait]
impl Table for DynamoTable {
    fn name(&self) -> Option<&str> {
        Some(&self.table_name)
    }

    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError> {
        self.usage.request(Operation::GetItem);
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(key_attributes(key)))
            .consistent_read(self.consistent_reads)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        self.record(Operation::GetItem, output.consumed_capacity());
        Ok(output.item)
    }

    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError> {
        if keys.len() > MAX_BATCH_GET_KEYS {
            return Err(TableError::Rejected(format!(
                "{} keys in one BatchGetItem; at most {MAX_BATCH_GET_KEYS}",
                keys.len()
            )));
        }
        if keys.is_empty() {
            return Ok(BatchGetOutput::default());
        }
        self.usage.request(Operation::BatchGetItem);
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys.iter().map(key_attributes).collect()))
            .consistent_read(self.consistent_reads)
            .build()
            .map_err(|e| TableError::Rejected(e.to_string()))?;
        let output = self
            .client
            .batch_get_item()
            .request_items(&self.table_name, request)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .customize()
            .config_override(
                aws_sdk_dynamodb::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        for capacity in output.consumed_capacity() {
            self.record(Operation::BatchGetItem, Some(capacity));
        }
        let items = output
            .responses
            .and_then(|mut tables| tables.remove(&self.table_name))
            .unwrap_or_default();
        let unprocessed = output
            .unprocessed_keys
            .and_then(|mut tables| tables.remove(&self.table_name))
            .map(|pending| pending.keys.iter().filter_map(super::item_key).collect())
            .unwrap_or_default();
        Ok(BatchGetOutput { items, unprocessed })
    }

    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.usage.request(Operation::PutItem);
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some((expression, names, values)) = condition_expression(condition) {
            request = request
                .condition_expression(expression)
                .set_expression_attribute_names(non_empty(names))
                .set_expression_attribute_values(non_empty(values));
        }
        let output = request.send().await.map_err(|e| self.classify(e))?;
        self.record_write(Operation::PutItem, output.consumed_capacity());
        Ok(())
    }

    async fn update_item(&self, update: Update) -> Result<(), TableError> {
        self.usage.request(Operation::UpdateItem);
        let key = key_attributes(&update.key);
        let expression = UpdateExpression::new(update);
        let output = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .set_key(Some(key))
            .update_expression(expression.update)
            .set_condition_expression(expression.condition)
            .set_expression_attribute_names(non_empty(expression.names))
            .set_expression_attribute_values(non_empty(expression.values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        self.record_write(Operation::UpdateItem, output.consumed_capacity());
        Ok(())
    }

    async fn transact_write(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.usage.request(Operation::TransactWriteItems);
        let mut items = Vec::with_capacity(writes.len());
        for write in writes {
            let item = match write {
                Write::Put { item, condition } => {
                    let mut put = Put::builder()
                        .table_name(&self.table_name)
                        .set_item(Some(item));
                    if let Some((expression, names, values)) = condition_expression(condition) {
                        put = put
                            .condition_expression(expression)
                            .set_expression_attribute_names(non_empty(names))
                            .set_expression_attribute_values(non_empty(values));
                    }
                    let put = put
                        .build()
                        .map_err(|e| TableError::Rejected(e.to_string()))?;
                    TransactWriteItem::builder().put(put).build()
                }
                Write::Update(update) => {
                    let key = key_attributes(&update.key);
                    let expression = UpdateExpression::new(update);
                    let update = aws_sdk_dynamodb::types::Update::builder()
                        .table_name(&self.table_name)
                        .set_key(Some(key))
                        .update_expression(expression.update)
                        .set_condition_expression(expression.condition)
                        .set_expression_attribute_names(non_empty(expression.names))
                        .set_expression_attribute_values(non_empty(expression.values))
                        .build()
                        .map_err(|e| TableError::Rejected(e.to_string()))?;
                    TransactWriteItem::builder().update(update).build()
                }
            };
            items.push(item);
        }
        let output = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        for capacity in output.consumed_capacity() {
            self.record_write(Operation::TransactWriteItems, Some(capacity));
        }
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, TableError> {
        self.usage.request(Operation::Query);
        let mut request = self
            .client
            .query()
            .table_name(&self.table_name)
            .consistent_read(self.consistent_reads)
            .scan_index_forward(!query.descending)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .expression_attribute_values(":pk", AttributeValue::S(query.pk.clone()));
        request = match &query.sort_keys {
            SortKeyRange::BeginsWith(prefix) => request
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone())),
            SortKeyRange::Between { low, high } => request
                .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
                .expression_attribute_values(":low", AttributeValue::S(low.clone()))
                .expression_attribute_values(":high", AttributeValue::S(high.clone())),
        };
        if let Some(limit) = query.limit {
            request = request.limit(limit.clamp(1, i32::MAX as u32) as i32);
        }
        if let Some(start) = &query.start_after {
            request = request.set_exclusive_start_key(Some(key_attributes(&ItemKey {
                pk: query.pk.clone(),
                sk: start.clone(),
            })));
        }
        let output = request.send().await.map_err(|e| self.classify(e))?;
        self.record(Operation::Query, output.consumed_capacity());
        let last_sort_key = output
            .last_evaluated_key
            .as_ref()
            .and_then(super::item_key)
            .map(|key| key.sk);
        Ok(QueryPage {
            items: output.items.unwrap_or_default(),
            last_sort_key,
        })
    }

    fn usage(&self) -> TableUsage {
        self.usage.snapshot()
    }
}
