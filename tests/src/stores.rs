//! Stores under test: a `GoalStore` over a fresh table on the shared DynamoDB-compatible server,
//! reached through a counting proxy so tests can assert what reached DynamoDB.

use crate::dynamo;
use crate::gate::GatedTable;
use crate::proxy::DynamoProxy;
use crate::servers::MotoServer;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use goalstore::table::{DynamoTable, Item};
use goalstore::{GoalStore, StoreConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// A store over its own table, with the means to look behind it.
#[derive(Debug)]
pub struct DynamoStore {
    pub store: GoalStore,
    /// Counts every request the store makes to DynamoDB.
    pub proxy: DynamoProxy,
    /// A client straight to the server (not counted), for seeding and inspecting items.
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
    /// The table the store reads, which a test can tell to hold a read.
    pub gate: Arc<GatedTable>,
}

impl DynamoStore {
    /// A store over a fresh table, with the default configuration.
    pub async fn start() -> anyhow::Result<Self> {
        Self::with_config(StoreConfig::default()).await
    }

    /// A store over a fresh table.
    pub async fn with_config(config: StoreConfig) -> anyhow::Result<Self> {
        let table_name = dynamo::fresh_table("store").await?;
        let proxy = DynamoProxy::start(MotoServer::shared().endpoint()).await?;
        let table = DynamoTable::new(dynamo::client(&proxy.endpoint()), table_name.clone());
        let gate = Arc::new(GatedTable::new(Arc::new(table)));
        Ok(Self {
            store: GoalStore::new(gate.clone(), config)?,
            proxy,
            client: dynamo::client(MotoServer::shared().endpoint()),
            table_name,
            gate,
        })
    }

    /// A second store over the same table (and the same gate and proxy): another instance.
    pub fn another_store(&self, config: StoreConfig) -> anyhow::Result<GoalStore> {
        Ok(GoalStore::new(self.gate.clone(), config)?)
    }

    /// The item at `pk`/`sk`, read straight from the server.
    pub async fn raw_item(&self, pk: &str, sk: &str) -> anyhow::Result<Option<Item>> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table_name)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await?
            .item)
    }

    /// Every item of the table, read straight from the server.
    pub async fn all_items(&self) -> anyhow::Result<Vec<Item>> {
        crate::dynamo::scan(&self.client, &self.table_name).await
    }

    /// Fails naming every item of the table the existing goal handlers could not read (see
    /// [`crate::origin`]); returns how many items it read.
    pub async fn assert_origin_readable(&self) -> anyhow::Result<usize> {
        let items = self.all_items().await?;
        let problems = crate::origin::table_problems(&items);
        anyhow::ensure!(
            problems.is_empty(),
            "the existing handlers could not read {} of the items left in `{}`:\n{}",
            problems.len(),
            self.table_name,
            problems.join("\n")
        );
        Ok(items.len())
    }

    /// Writes `items` as they are, 25 to a BatchWriteItem, straight to the server (not counted).
    pub async fn seed(&self, items: Vec<HashMap<String, AttributeValue>>) -> anyhow::Result<()> {
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    Ok(WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item.clone())).build()?)
                        .build())
                })
                .collect::<anyhow::Result<_>>()?;
            while !requests.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table_name, requests)
                    .send()
                    .await?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut tables| tables.remove(&self.table_name))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}
