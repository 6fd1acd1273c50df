//! The goalstore sidecar: `GoalStore` served over gRPC for services in any language.
//!
//! `config` (what to run), `service` (the RPCs over the store), `server` (the listener, health,
//! reflection, shutdown). The binary in `main.rs` only wires these together.

/// What to run: the typed configuration, shared with the Lambda handlers (crate
/// `goalstore-config`).
pub use goalstore_config as config;
pub mod deadline;
pub mod metrics_endpoint;
pub mod rpc_span;
pub mod server;
pub mod service;

use config::{Config, TableChoice};
use goalstore::table::{DynamoTable, MemoryTable, Table};
use goalstore::GoalStore;
use std::sync::Arc;

/// The table the configuration names. Makes no network call.
pub async fn build_table(config: &Config) -> Arc<dyn Table> {
    match &config.table {
        TableChoice::Memory => Arc::new(MemoryTable::default()),
        TableChoice::DynamoDb(name) => Arc::new(
            DynamoTable::from_environment(name.clone(), config.dynamodb_endpoint.as_deref())
                .await
                .with_consistent_reads(config.consistent_reads),
        ),
    }
}

/// The store the configuration describes. Fails on an invalid cache setting, naming it.
pub async fn build_store(config: &Config) -> goalstore::Result<GoalStore> {
    GoalStore::new(build_table(config).await, config.store_config())
}
