//! Tables with the store's key schema, uniquely named so tests sharing one server never
//! see each other's data, and loading items into them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use super::connect::{client, sdk_error};
use crate::servers::MotoServer;

const GSI1: &str = "gsi1";
const ACTIVE_DEADLINE: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Leaves room for the suffix within DynamoDB's 255-character limit on table names.
const MAX_PREFIX_LEN: usize = 180;

/// A name unique within this process and across runs: `{prefix}-{pid}-{counter}-{nanos}`.
///
/// Characters DynamoDB does not allow in table names (anything but `A-Za-z0-9_.-`) are
/// replaced by `-`, so any test name can serve as the prefix.
pub fn unique_table_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix: String = prefix
        .chars()
        .take(MAX_PREFIX_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The pid repeats across runs, the clock does not (at nanosecond resolution).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{counter}-{nanos}", std::process::id())
}

/// Creates a table with hash key `pk` (S), range key `sk` (S), and a global secondary
/// index named `gsi1` on `gsi1_pk` (S, hash) / `gsi1_sk` (S, range), projection ALL,
/// billing PAY_PER_REQUEST; waits until it (and its index) is ACTIVE.
pub async fn create_table(client: &Client, name: &str) -> anyhow::Result<()> {
    let gsi1 = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key("gsi1_pk", KeyType::Hash)?)
        .key_schema(key("gsi1_sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()?;
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?)
        .attribute_definitions(string_attribute("gsi1_pk")?)
        .attribute_definitions(string_attribute("gsi1_sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi1)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|error| sdk_error(format!("creating table {name}"), error))?;
    wait_until_active(client, name).await
}

/// Creates a uniquely named table on the shared moto server and returns its name.
pub async fn fresh_table(prefix: &str) -> anyhow::Result<String> {
    // Starting moto blocks for a while the first time; keep that off the async workers.
    let moto = tokio::task::spawn_blocking(MotoServer::try_shared)
        .await
        .context("starting moto_server")??;
    let name = unique_table_name(prefix);
    create_table(&client(moto.endpoint()), &name).await?;
    Ok(name)
}

/// PutItem each item as it is.
pub async fn put_items(
    client: &Client,
    table: &str,
    items: &[HashMap<String, AttributeValue>],
) -> anyhow::Result<()> {
    for (index, item) in items.iter().enumerate() {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .map_err(|error| {
                let key = (item.get("pk"), item.get("sk"));
                sdk_error(format!("putting item {index} {key:?} into {table}"), error)
            })?;
    }
    Ok(())
}

/// Every item of `table`, page by page (a test's table is small).
pub async fn scan(
    client: &Client,
    table: &str,
) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| sdk_error(format!("scanning {table}"), error))?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}

/// Real DynamoDB creates tables asynchronously (moto: instantly); a table is usable once
/// it and every index are ACTIVE.
async fn wait_until_active(client: &Client, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + ACTIVE_DEADLINE;
    loop {
        let description = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|error| sdk_error(format!("describing table {name}"), error))?;
        let table = description
            .table()
            .with_context(|| format!("DescribeTable {name} returned no table"))?;
        let table_active = table.table_status() == Some(&TableStatus::Active);
        let indexes_active = table
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status() == Some(&IndexStatus::Active));
        if table_active && indexes_active {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("table {name} is not ACTIVE after {ACTIVE_DEADLINE:?}: {table:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn key(name: &str, key_type: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()?)
}

fn string_attribute(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid() {
        let a = unique_table_name("store tests/ü");
        let b = unique_table_name("store tests/ü");
        assert_ne!(a, b);
        assert!(a.starts_with("store-tests--"), "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
        assert!(unique_table_name(&"x".repeat(1000)).len() <= 255);
    }

    #[tokio::test]
    async fn fresh_table_has_the_store_schema() -> anyhow::Result<()> {
        let name = fresh_table("harness-schema").await?;
        let client = client(MotoServer::shared().endpoint());
        let description = client.describe_table().table_name(&name).send().await?;
        let table = description.table().context("table")?;
        let keys: Vec<_> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().clone()))
            .collect();
        assert_eq!(keys, [("pk", KeyType::Hash), ("sk", KeyType::Range)]);
        let gsi = table.global_secondary_indexes().first().context("gsi1")?;
        assert_eq!(gsi.index_name(), Some(GSI1));
        let gsi_keys: Vec<_> = gsi
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().clone()))
            .collect();
        assert_eq!(
            gsi_keys,
            [("gsi1_pk", KeyType::Hash), ("gsi1_sk", KeyType::Range)]
        );
        assert_eq!(
            gsi.projection().and_then(|p| p.projection_type()),
            Some(&ProjectionType::All)
        );
        Ok(())
    }
}
