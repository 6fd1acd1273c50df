//! goalstore: a caching data-access layer for the goals table.
//!
//! [`GoalStore`] is the typed API; it reads through the [`batch`] loader into a [`table::Table`]
//! (DynamoDB or the embedded [`table::MemoryTable`]), with a [`cache`] in front. The read path is
//! `store` → `cache` → `batch` → `table`.
//! See ARCHITECTURE.md for the map and the invariants.
//!
//! Cargo features: `grpc` (default) adds [`Client`], the sidecar's gRPC client, [`wire`], the
//! conversions between the API's types and the protocol's, and [`trace_context`], the W3C trace
//! context the two ends pass; without it the crate is the
//! in-process store alone, with no tonic or protobuf in the build.

pub mod batch;
pub mod cache;
#[cfg(feature = "grpc")]
pub mod client;
pub mod clock;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod item;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod progress;
pub mod service;
pub mod store;
pub mod table;
#[cfg(feature = "grpc")]
pub mod trace_context;
pub mod validate;
#[cfg(feature = "grpc")]
pub mod wire;

pub use cache::{CacheConfig, CacheStats, Strategy};
#[cfg(feature = "grpc")]
pub use client::{Client, ClientConfig};
pub use error::{Error, Result, RuleCode, RuleViolation};
pub use events::{Event, EventKind};
pub use model::*;
pub use service::GoalService;
pub use store::{
    ActivityFilter, GoalBatch, GoalFilter, GoalStore, GoalUpdate, LoggedActivity, NewActivity,
    NewGoal, Page, PageRequest, StoreConfig, StoreStats,
};
