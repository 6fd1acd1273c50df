//! `MemoryTable`: an embedded table with DynamoDB's semantics for the operations goalstore uses.
//!
//! It is the zero-setup default and the benchmark backend, so it models what matters for both:
//! conditional writes, sort-key ranges, pagination, the 100-key batch limit, capacity units
//! (4 KB read units, 1 KB write units, eventually consistent reads at half cost), and optionally
//! DynamoDB's latency, throttling and partially processed batches.
//!
//! It does not model: secondary indexes (goalstore queries the base table only), item size
//! limits, or eventual consistency (every read sees every acknowledged write).

use super::{
    BatchGetOutput, Condition, Item, Operation, Query, QueryPage, SortKeyRange, Table, TableError,
    TableUsage, Update, UsageCounters, Write, MAX_BATCH_GET_KEYS,
};
use crate::keys::ItemKey;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// How a [`MemoryTable`] imitates DynamoDB's behaviour under load. The default imitates nothing:
/// no latency, no throttling.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTableOptions {
    /// Added to every request.
    pub latency: Duration,
    /// Added per item read or written, on top of `latency`.
    pub latency_per_item: Duration,
    /// Share of requests (0.0-1.0) refused as throttled.
    pub throttle_probability: f64,
    /// Share of keys (0.0-1.0) a BatchGetItem leaves unprocessed.
    pub unprocessed_probability: f64,
    /// Whether reads are strongly consistent (full read units) or eventually consistent (half).
    pub consistent_reads: bool,
    /// Seed of the random draws, so simulated faults repeat.
    pub seed: u64,
}

impl Default for MemoryTableOptions {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            latency_per_item: Duration::ZERO,
            throttle_probability: 0.0,
            unprocessed_probability: 0.0,
            consistent_reads: true,
            seed: 0x5eed,
        }
    }
}

impl MemoryTableOptions {
    /// DynamoDB's typical single-digit-millisecond latency, as seen from a Lambda in-region.
    pub fn dynamodb_like() -> Self {
        Self {
            latency: Duration::from_millis(4),
            latency_per_item: Duration::from_micros(20),
            ..Self::default()
        }
    }
}

/// An in-process table. Cheap to create; everything is lost when it is dropped.
#[derive(Debug)]
pub struct MemoryTable {
    partitions: RwLock<HashMap<String, BTreeMap<String, Item>>>,
    options: MemoryTableOptions,
    faults: Mutex<Faults>,
    usage: UsageCounters,
}

#[derive(Debug)]
struct Faults {
    random: StdRng,
    /// Requests still to refuse as throttled, whatever the probability says.
    throttle_next: u32,
}

impl Default for MemoryTable {
    fn default() -> Self {
        Self::new(MemoryTableOptions::default())
    }
}

impl MemoryTable {
    /// An empty table behaving as `options` say.
    pub fn new(options: MemoryTableOptions) -> Self {
        Self {
            partitions: RwLock::default(),
            faults: Mutex::new(Faults {
                random: StdRng::seed_from_u64(options.seed),
                throttle_next: 0,
            }),
            options,
            usage: UsageCounters::default(),
        }
    }

    /// Refuses the next `requests` requests as throttled.
    pub fn throttle_next(&self, requests: u32) {
        self.faults().throttle_next = requests;
    }

    /// Every item, in key order; for tests and fixtures.
    pub fn items(&self) -> Vec<Item> {
        let partitions = self.read();
        let mut keys: Vec<&String> = partitions.keys().collect();
        keys.sort();
        keys.into_iter()
            .flat_map(|pk| partitions[pk].values().cloned())
            .collect()
    }

    /// Writes `item` as it is, with no condition and no accounting; for loading fixtures.
    pub fn insert(&self, item: Item) -> Result<(), TableError> {
        let key = super::item_key(&item)
            .ok_or_else(|| TableError::Rejected("item has no string pk and sk".into()))?;
        self.write().entry(key.pk).or_default().insert(key.sk, item);
        Ok(())
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        // A panic while holding this lock cannot leave the fault state inconsistent.
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, BTreeMap<String, Item>>> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, BTreeMap<String, Item>>> {
        self.partitions.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the request, waits out the simulated latency and maybe throttles it.
    async fn begin(&self, operation: Operation, items: usize) -> Result<(), TableError> {
        self.usage.request(operation);
        let latency = self.options.latency + self.options.latency_per_item * items as u32;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let throttled = {
            let mut faults = self.faults();
            if faults.throttle_next > 0 {
                faults.throttle_next -= 1;
                true
            } else {
                self.options.throttle_probability > 0.0
                    && faults
                        .random
                        .random_bool(self.options.throttle_probability.min(1.0))
            }
        };
        if throttled {
            self.usage.throttled();
            return Err(TableError::Throttled {
                code: "ProvisionedThroughputExceededException".into(),
                attempts: 1,
            });
        }
        Ok(())
    }

    fn read_units(&self, bytes: usize) -> f64 {
        let units = bytes.div_ceil(4096).max(1) as f64;
        if self.options.consistent_reads {
            units
        } else {
            units / 2.0
        }
    }
}

#[async_trait]
impl Table for MemoryTable {
    async fn get_item(&self, key: &ItemKey) -> Result<Option<Item>, TableError> {
        self.begin(Operation::GetItem, 1).await?;
        let item = self
            .read()
            .get(&key.pk)
            .and_then(|partition| partition.get(&key.sk))
            .cloned();
        self.usage.consumed(
            Operation::GetItem,
            self.read_units(item.as_ref().map_or(0, item_size)),
            0.0,
        );
        Ok(item)
    }

    async fn batch_get_items(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, TableError> {
        if keys.len() > MAX_BATCH_GET_KEYS {
            return Err(TableError::Rejected(format!(
                "{} keys in one BatchGetItem; at most {MAX_BATCH_GET_KEYS}",
                keys.len()
            )));
        }
        let mut distinct = keys.to_vec();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != keys.len() {
            return Err(TableError::Rejected(
                "BatchGetItem keys must be distinct".into(),
            ));
        }
        self.begin(Operation::BatchGetItem, keys.len()).await?;
        let mut output = BatchGetOutput::default();
        let mut units = 0.0;
        {
            let partitions = self.read();
            let mut faults = self.faults();
            for key in keys {
                if self.options.unprocessed_probability > 0.0
                    && faults
                        .random
                        .random_bool(self.options.unprocessed_probability.min(1.0))
                {
                    output.unprocessed.push(key.clone());
                    continue;
                }
                if let Some(item) = partitions.get(&key.pk).and_then(|p| p.get(&key.sk)) {
                    units += self.read_units(item_size(item));
                    output.items.push(item.clone());
                }
            }
        }
        self.usage.consumed(Operation::BatchGetItem, units, 0.0);
        Ok(output)
    }

    async fn put_item(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let key = super::item_key(&item)
            .ok_or_else(|| TableError::Rejected("item has no string pk and sk".into()))?;
        self.begin(Operation::PutItem, 1).await?;
        let units = item_size(&item).div_ceil(1024).max(1) as f64;
        let mut partitions = self.write();
        let partition = partitions.entry(key.pk).or_default();
        let existing = partition.get(&key.sk);
        let holds = holds(existing, condition.as_ref());
        // DynamoDB charges a refused conditional write as a write.
        self.usage.consumed(Operation::PutItem, 0.0, units);
        if !holds {
            return Err(TableError::ConditionFailed);
        }
        partition.insert(key.sk, item);
        Ok(())
    }

    async fn update_item(&self, update: Update) -> Result<(), TableError> {
        self.begin(Operation::UpdateItem, 1).await?;
        let mut partitions = self.write();
        let partition = partitions.entry(update.key.pk.clone()).or_default();
        let existing = partition.get(&update.key.sk);
        let holds = holds(existing, update.condition.as_ref());
        let sk = update.key.sk.clone();
        let updated = updated(existing, update);
        let units = item_size(&updated).div_ceil(1024).max(1) as f64;
        // DynamoDB charges a refused conditional write as a write.
        self.usage.consumed(Operation::UpdateItem, 0.0, units);
        if !holds {
            return Err(TableError::ConditionFailed);
        }
        partition.insert(sk, updated);
        Ok(())
    }

    async fn transact_write(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let mut keyed = Vec::with_capacity(writes.len());
        for write in writes {
            let key = write
                .key()
                .ok_or_else(|| TableError::Rejected("item has no string pk and sk".into()))?;
            keyed.push((key, write));
        }
        let mut distinct: Vec<&ItemKey> = keyed.iter().map(|(key, _)| key).collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != keyed.len() || keyed.len() > 100 {
            return Err(TableError::Rejected(
                "a transaction takes at most 100 distinct items".into(),
            ));
        }
        self.begin(Operation::TransactWriteItems, keyed.len())
            .await?;
        let mut partitions = self.write();
        let existing = |key: &ItemKey| partitions.get(&key.pk).and_then(|p| p.get(&key.sk));
        let mut all_hold = true;
        let mut units = 0.0;
        let mut results = Vec::with_capacity(keyed.len());
        for (key, write) in keyed {
            let current = existing(&key);
            let item = match write {
                Write::Put { item, condition } => {
                    all_hold &= holds(current, condition.as_ref());
                    item
                }
                Write::Update(update) => {
                    all_hold &= holds(current, update.condition.as_ref());
                    updated(current, update)
                }
            };
            // Transactions cost twice the write units.
            units += 2.0 * item_size(&item).div_ceil(1024).max(1) as f64;
            results.push((key, item));
        }
        self.usage
            .consumed(Operation::TransactWriteItems, 0.0, units);
        if !all_hold {
            return Err(TableError::ConditionFailed);
        }
        for (key, item) in results {
            partitions.entry(key.pk).or_default().insert(key.sk, item);
        }
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, TableError> {
        self.begin(Operation::Query, query.limit.unwrap_or(1) as usize)
            .await?;
        let partitions = self.read();
        let Some(partition) = partitions.get(&query.pk) else {
            self.usage
                .consumed(Operation::Query, self.read_units(0), 0.0);
            return Ok(QueryPage::default());
        };
        let in_range = |sk: &String| match &query.sort_keys {
            SortKeyRange::BeginsWith(prefix) => sk.starts_with(prefix.as_str()),
            SortKeyRange::Between { low, high } => sk >= low && sk <= high,
        };
        let after_start = |sk: &String| match &query.start_after {
            None => true,
            Some(start) if query.descending => sk < start,
            Some(start) => sk > start,
        };
        let candidates: Box<dyn Iterator<Item = (&String, &Item)>> = if query.descending {
            Box::new(partition.iter().rev())
        } else {
            Box::new(partition.iter())
        };
        let limit = query.limit.map_or(usize::MAX, |l| l.max(1) as usize);
        let mut page = QueryPage::default();
        let mut bytes = 0;
        let mut matching = candidates.filter(|(sk, _)| after_start(sk) && in_range(sk));
        for (sk, item) in matching.by_ref().take(limit) {
            bytes += item_size(item);
            page.items.push(item.clone());
            page.last_sort_key = Some(sk.clone());
        }
        // DynamoDB returns a LastEvaluatedKey whenever the limit cut the page, even if nothing follows;
        // we only return one when something does, which callers must treat the same.
        if matching.next().is_none() {
            page.last_sort_key = None;
        }
        // A query is charged on the summed size of the items it read, not per item.
        self.usage
            .consumed(Operation::Query, self.read_units(bytes), 0.0);
        Ok(page)
    }

    fn usage(&self) -> TableUsage {
        self.usage.snapshot()
    }
}

/// Whether `condition` holds for the item `existing` (or its absence).
/// The item `update` leaves of `existing` (or of just the key, when there is none).
fn updated(existing: Option<&Item>, update: Update) -> Item {
    let key = update.key;
    let mut item = existing.cloned().unwrap_or_else(|| {
        Item::from([
            ("pk".to_owned(), AttributeValue::S(key.pk)),
            ("sk".to_owned(), AttributeValue::S(key.sk)),
        ])
    });
    for name in &update.remove {
        item.remove(name);
    }
    item.extend(update.set);
    item
}

fn holds(existing: Option<&Item>, condition: Option<&Condition>) -> bool {
    match condition {
        None => true,
        Some(Condition::ItemAbsent) => existing.is_none(),
        Some(Condition::AttributeEquals { attribute, value }) => {
            existing.and_then(|item| item.get(attribute)) == Some(value)
        }
    }
}

/// An item's size as DynamoDB counts it: attribute names plus values.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.into())),
            ("sk".to_owned(), AttributeValue::S(sk.into())),
        ])
    }

    fn key(pk: &str, sk: &str) -> ItemKey {
        ItemKey {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    #[tokio::test]
    async fn conditional_puts_refuse_and_change_nothing() {
        let table = MemoryTable::default();
        table
            .put_item(item("p", "a"), Some(Condition::ItemAbsent))
            .await
            .expect("absent item");
        let again = table
            .put_item(item("p", "a"), Some(Condition::ItemAbsent))
            .await;
        assert_eq!(again, Err(TableError::ConditionFailed));
        let mut changed = item("p", "a");
        changed.insert("v".into(), AttributeValue::N("2".into()));
        let refused = table
            .put_item(
                changed,
                Some(Condition::AttributeEquals {
                    attribute: "v".into(),
                    value: AttributeValue::N("1".into()),
                }),
            )
            .await;
        assert_eq!(refused, Err(TableError::ConditionFailed));
        assert_eq!(table.items(), vec![item("p", "a")]);
    }

    #[tokio::test]
    async fn queries_page_in_both_directions() {
        let table = MemoryTable::default();
        for sk in ["A#1", "A#2", "A#3", "B#1"] {
            table.insert(item("p", sk)).expect("valid item");
        }
        let mut query = Query {
            pk: "p".into(),
            sort_keys: SortKeyRange::BeginsWith("A#".into()),
            descending: true,
            limit: Some(2),
            start_after: None,
        };
        let first = table.query(&query).await.expect("query");
        assert_eq!(first.items, vec![item("p", "A#3"), item("p", "A#2")]);
        query.start_after = first.last_sort_key;
        let second = table.query(&query).await.expect("query");
        assert_eq!(second.items, vec![item("p", "A#1")]);
        assert_eq!(second.last_sort_key, None);
    }

    #[tokio::test]
    async fn batches_are_limited_and_may_leave_keys_unprocessed() {
        let table = MemoryTable::new(MemoryTableOptions {
            unprocessed_probability: 0.5,
            ..MemoryTableOptions::default()
        });
        let keys: Vec<ItemKey> = (0..100).map(|i| key("p", &i.to_string())).collect();
        for k in &keys {
            table.insert(item(&k.pk, &k.sk)).expect("valid item");
        }
        let output = table.batch_get_items(&keys).await.expect("batch");
        assert_eq!(output.items.len() + output.unprocessed.len(), 100);
        assert!(!output.unprocessed.is_empty());
        let too_many: Vec<ItemKey> = (0..101).map(|i| key("p", &i.to_string())).collect();
        assert!(matches!(
            table.batch_get_items(&too_many).await,
            Err(TableError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn throttles_on_request() {
        let table = MemoryTable::default();
        table.throttle_next(1);
        assert!(matches!(
            table.get_item(&key("p", "a")).await,
            Err(TableError::Throttled { .. })
        ));
        assert_eq!(table.get_item(&key("p", "a")).await, Ok(None));
        assert_eq!(table.usage().throttled, 1);
        assert_eq!(table.usage().get_item, 2);
    }
}
