//! `GoalStore`: the typed API over the goals table.
//!
//! Reads of single goals go through the batch loader, so concurrent reads share BatchGetItem
//! requests. Writes are conditional: create only where no item exists, update only over the
//! version read (`updated_at` must still hold the value read; it strictly increases with every
//! write), with a few retries from the table when another writer got there first. The version
//! read may be the cached one. A logged activity, its goal's new progress, the goal's progress
//! state and a keyed request's idempotency marker go in one transaction.
//!
//! Invariants:
//! - every id is validated before any I/O; a bad request changes nothing;
//! - a read only ever touches the caller's partition (`USER#{user_id}`);
//! - after a write returns, a read through this store sees it (reads are strongly consistent
//!   unless the table is configured otherwise);
//! - attributes of an item that this version does not know survive updates;
//! - a log or a progress miss reads a bounded number of items, however long the goal's history.
//!
//! Caching (`cache`): reads of active goals, progress and single goals go through the cache; a
//! write leases the keys its event touches after its reads and before its table write and, once
//! it returned, writes through what it wrote (the goal, a logged activity's progress), patches
//! the cached active list (`local` strategy) and drops the rest (`events::written_keys`,
//! `cache/write.rs`).
//!
//! The files: this one holds the types, the store's set-up, statistics, invalidation and events;
//! `reads.rs` the reads and their loaders; `writes.rs` the conditional writes and idempotency;
//! `state.rs` the progress state item (read, caught up, built on first touch); `source.rs` what
//! the consistency auditor compares with.

mod log;
mod reads;
mod source;
mod state;
mod writes;

use crate::batch::{BatchConfig, BatchLoader, BatchStats};
use crate::cache::codec::{self, OwnedProgress};
use crate::cache::{Cache, CacheConfig, CacheStats};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::events::{Event, EventKind};
use crate::idempotency;
use crate::item::{activity_from_item, activity_to_item, goal_from_item, goal_to_item};
use crate::keys::{activity_sk_prefix, goal_key, validate_id, GoalId, UserId, GOAL_SK_PREFIX};
use crate::model::{
    Activity, ActivitySource, ActivityType, Document, Goal, GoalPattern, GoalStatus, Progress,
    Target, Timestamp, Visibility,
};
use crate::table::{
    Condition, Item, Query, SortKeyRange, Table, TableError, TableUsage, Update, Write,
};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures::FutureExt;
use std::sync::Arc;

/// How many times a write is retried when another writer changed the item first.
const WRITE_CONFLICT_RETRIES: u32 = 5;
/// How far in the future an activity date may be (clock skew between devices).
const MAX_ACTIVITY_CLOCK_SKEW: Duration = Duration::minutes(5);

/// How the store behaves; every default is safe.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Batching and retries of point reads.
    pub batch: BatchConfig,
    /// Page size when the caller names none.
    pub default_page_size: u32,
    /// The largest page a caller may ask for.
    pub max_page_size: u32,
    /// The cache in front of the table.
    pub cache: CacheConfig,
    /// A successful call slower than this is logged as a warning.
    pub slow_call: std::time::Duration,
    /// Whether writers other than goalstore (the existing handlers' log activity) may log
    /// activities into the table. When they may (the default, while the existing handlers
    /// serve that route), every read of a goal's progress state also queries the goal's newest
    /// activities to count theirs (`store/state.rs`); once only goalstore logs activities, that
    /// query is needed only for a goal that has no state yet.
    pub others_log_activities: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            default_page_size: 50,
            max_page_size: 1000,
            cache: CacheConfig::default(),
            slow_call: std::time::Duration::from_millis(200),
            others_log_activities: true,
        }
    }
}

/// The fields of a new goal. Deserializes from a JSON map with the table's snake_case names
/// (`title`, `goal_pattern`, `target` required; the rest optional, unknown keys ignored), so an
/// API layer can build one from a request body.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewGoal {
    /// A client-chosen id; a UUID is generated when `None`. With an id, a repeat of the same
    /// request within 24 hours writes nothing and returns the first result.
    #[serde(default)]
    pub goal_id: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    pub goal_pattern: GoalPattern,
    pub target: Target,
    #[serde(default)]
    pub schedule: Option<Document>,
    #[serde(default)]
    pub context: Option<Document>,
    #[serde(default)]
    pub rewards: Option<Document>,
    /// Active when `None`; only draft, active or paused are accepted.
    #[serde(default)]
    pub status: Option<GoalStatus>,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub metadata: Option<Document>,
    #[serde(default)]
    pub is_journal_linked: bool,
}

impl NewGoal {
    /// A goal with a title, a pattern and a target; everything else default.
    pub fn new(title: impl Into<String>, goal_pattern: GoalPattern, target: Target) -> Self {
        Self {
            goal_id: None,
            title: title.into(),
            description: None,
            category: None,
            icon: None,
            color: None,
            goal_pattern,
            target,
            schedule: None,
            context: None,
            rewards: None,
            status: None,
            visibility: Visibility::Private,
            metadata: None,
            is_journal_linked: false,
        }
    }
}

/// A partial update: only the fields that are `Some` change. Deserializes from a JSON map with
/// snake_case names, every key optional.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct GoalUpdate {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub icon: Option<String>,
    pub color: Option<String>,
    /// Refused unless equal to the goal's pattern: a goal's pattern never changes.
    pub goal_pattern: Option<GoalPattern>,
    pub target: Option<Target>,
    pub schedule: Option<Document>,
    pub context: Option<Document>,
    pub rewards: Option<Document>,
    pub status: Option<GoalStatus>,
    pub visibility: Option<Visibility>,
    pub metadata: Option<Document>,
    pub is_journal_linked: Option<bool>,
}

/// The fields of a new activity. Deserializes from a JSON map with snake_case names (`value`
/// required; the rest optional: a progress activity from a manual source, happening now).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewActivity {
    /// A client-chosen id; a UUID is generated when `None`. With an id, a repeat of the same
    /// request within 24 hours writes nothing and returns the first result.
    #[serde(default)]
    pub activity_id: Option<String>,
    pub value: f64,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default = "progress_activity")]
    pub activity_type: ActivityType,
    /// When it happened; now when `None`.
    #[serde(default)]
    pub activity_date: Option<Timestamp>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub location: Option<Document>,
    #[serde(default)]
    pub context: Option<Document>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub attachments: Option<Document>,
    #[serde(default = "manual_source")]
    pub source: ActivitySource,
    #[serde(default)]
    pub device_info: Option<Document>,
}

fn progress_activity() -> ActivityType {
    ActivityType::Progress
}

fn manual_source() -> ActivitySource {
    ActivitySource::Manual
}

impl NewActivity {
    /// A progress activity of `value`, happening now.
    pub fn new(value: f64) -> Self {
        Self {
            activity_id: None,
            value,
            unit: None,
            activity_type: ActivityType::Progress,
            activity_date: None,
            timezone: None,
            location: None,
            context: None,
            note: None,
            attachments: None,
            source: ActivitySource::Manual,
            device_info: None,
        }
    }
}

/// An activity as logged, and the goal's progress after it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedActivity {
    pub activity: Activity,
    pub progress: Progress,
}

/// The goals found among requested ids, and the ids with no goal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoalBatch {
    /// In the order of each id's first mention.
    pub goals: Vec<Goal>,
    pub missing_goal_ids: Vec<String>,
}

/// Which goals `list_goals` returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoalFilter {
    pub status: Option<GoalStatus>,
    pub goal_pattern: Option<GoalPattern>,
    pub category: Option<String>,
}

impl GoalFilter {
    fn matches(&self, goal: &Goal) -> bool {
        self.status.is_none_or(|s| goal.status == s)
            && self.goal_pattern.is_none_or(|p| goal.goal_pattern == p)
            && self
                .category
                .as_deref()
                .is_none_or(|c| goal.category.as_deref() == Some(c))
    }
}

/// Which activities `list_activities` returns: logged within `[from, to]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityFilter {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// Which page to return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageRequest {
    /// At most this many items; the store's default when `None`.
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The typed goal store. Cheap to clone; clones share the table, the loader and the clock.
#[derive(Debug, Clone)]
pub struct GoalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    table: Arc<dyn Table>,
    loader: BatchLoader,
    cache: Option<Arc<Cache>>,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
}

/// What a store has done since it started.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// The cache's statistics; `None` with the `none` strategy.
    pub cache: Option<CacheStats>,
    /// Requests and capacity of the table.
    pub table: TableUsage,
    /// What the batch loader did.
    pub batch: BatchStats,
}

impl GoalStore {
    /// A store over `table` with the system clock. Must be called within a tokio runtime (the
    /// batch loader's and the cache's tasks start here); makes no network call. Fails only on an
    /// invalid cache configuration, naming the setting.
    pub fn new(table: Arc<dyn Table>, config: StoreConfig) -> Result<Self> {
        Self::with_clock(table, config, Arc::new(SystemClock))
    }

    /// A store with an injected clock.
    pub fn with_clock(
        table: Arc<dyn Table>,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let cache = Cache::new(config.cache.clone())?;
        let table: Arc<dyn Table> = Arc::new(crate::table::MeteredTable::new(table));
        let loader = BatchLoader::spawn(table.clone(), config.batch.clone());
        let inner = Arc::new(Inner {
            table,
            loader,
            cache,
            clock,
            config,
        });
        if let Some(cache) = &inner.cache {
            cache.set_audit_source(source::of(&inner));
        }
        Ok(Self { inner })
    }

    /// What the store has done so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            cache: self.inner.cache.as_ref().map(|c| c.stats()),
            table: self.inner.table.usage(),
            batch: self.inner.loader.stats(),
        }
    }

    /// Runs one public call: its latency and outcome become metrics, a failure becomes one log
    /// line (`op`, `user_id`, `error_type`, `duration` in ms), and so does a slow success.
    async fn observe<T>(
        &self,
        op: &'static str,
        user_id: &str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        // `store.<op>` as the exported span's name; the tracing name is one static "store".
        // Nothing here is evaluated unless a layer records the span. No user id in it: a span
        // leaves the process (an OTLP collector, a tracing vendor), and a person's id is
        // personal data; the log lines below carry it, for the operations guide's queries.
        let span = tracing::info_span!(
            "store",
            otel.name = format!("store.{op}"),
            op,
            error_type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = tracing::Instrument::instrument(call, span.clone()).await;
        let elapsed = started.elapsed();
        let duration = elapsed.as_secs_f64() * 1000.0;
        if let Err(error) = &result {
            span.record("error_type", error.kind());
            if !error.is_caller_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        match &result {
            Ok(_) => {
                crate::metrics::operation(op, elapsed.as_secs_f64(), "ok");
                if elapsed > self.inner.config.slow_call {
                    tracing::warn!(op, user_id, duration, "slow call");
                }
            }
            Err(error) if error.is_caller_error() => {
                crate::metrics::operation(op, elapsed.as_secs_f64(), error.kind());
                tracing::info!(op, user_id, error_type = error.kind(), duration, error = %error, "call failed");
            }
            Err(error) => {
                crate::metrics::operation(op, elapsed.as_secs_f64(), error.kind());
                tracing::warn!(op, user_id, error_type = error.kind(), duration, error = %error, "call failed");
            }
        }
        result
    }

    /// Whether the table answers: one GetItem of a key no item has.
    pub async fn check_table(&self) -> Result<()> {
        let probe = crate::keys::ItemKey {
            pk: "HEALTH#goalstore".into(),
            sk: "HEALTH#probe".into(),
        };
        self.inner.table.get_item(&probe).await?;
        Ok(())
    }

    /// The cache strategy in use.
    pub fn strategy(&self) -> crate::cache::Strategy {
        self.inner
            .cache
            .as_ref()
            .map_or(crate::cache::Strategy::None, |c| c.config().strategy)
    }

    /// Drops every cached entry of a user (active goals, each goal, each goal's progress).
    /// Returns how many keys were dropped.
    pub async fn invalidate_user(&self, user_id: &str) -> Result<usize> {
        self.observe("invalidate_user", user_id, async {
            let user = UserId::parse(user_id)?;
            let Some(cache) = &self.inner.cache else {
                return Ok(0);
            };
            let mut keys = vec![cache.keys().active_goals(&user)];
            let items = self
                .query_all(&user, SortKeyRange::BeginsWith(GOAL_SK_PREFIX.into()))
                .await?;
            for item in &items {
                let id = crate::table::item_key(item)
                    .and_then(|key| key.sk.strip_prefix(GOAL_SK_PREFIX).map(str::to_owned))
                    .and_then(|id| GoalId::parse(&id).ok());
                if let Some(goal) = id {
                    keys.push(cache.keys().goal(&user, &goal));
                    keys.push(cache.keys().progress(&goal));
                }
            }
            let count = keys.len();
            cache.invalidate_detached("invalidate_user", keys).await;
            Ok(count)
        })
        .await
    }

    /// The cache, if the strategy has one (for diagnostics and tests; reads and writes go
    /// through the store).
    pub fn cache(&self) -> Option<&Arc<crate::cache::Cache>> {
        self.inner.cache.as_ref()
    }

    /// Whether the shared cache tier is unreachable; reads and writes still work from the table.
    pub fn is_degraded(&self) -> bool {
        self.inner.cache.as_ref().is_some_and(|c| c.is_degraded())
    }

    /// The table's requests and consumed capacity so far.
    pub fn table_usage(&self) -> TableUsage {
        self.inner.table.usage()
    }

    /// What the batch loader has done so far.
    pub fn batch_stats(&self) -> BatchStats {
        self.inner.loader.stats()
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The cache leases of a write that makes `event`, taken before its table write (see
    /// `cache/write.rs`); `None` without a cache. `keeps_progress`: the write leaves the goal's
    /// progress as it is (`WriteLeases::also_stale` adds the key back when it turns out
    /// otherwise, see `modify_goal`).
    pub(super) async fn begin_write(
        &self,
        user: &UserId,
        goal: &GoalId,
        event: &EventKind,
        keeps_progress: bool,
    ) -> Option<crate::cache::write::WriteLeases> {
        let cache = self.inner.cache.as_ref()?;
        let mut keys = crate::events::written_keys(cache.keys(), user, goal, event);
        if keeps_progress {
            let progress = cache.keys().progress(goal);
            keys.stale.retain(|key| key.text != progress.text);
        }
        Some(cache.begin_write(event.name(), keys).await)
    }

    /// The cache key of a goal's progress; `None` without a cache.
    pub(super) fn progress_key(&self, goal: &GoalId) -> Option<crate::cache::keys::CacheKey> {
        Some(self.inner.cache.as_ref()?.keys().progress(goal))
    }

    /// Drops the cache keys `event` makes stale — all of them, even if the caller is dropped
    /// meanwhile (see `Cache::invalidate_detached`).
    pub(super) async fn invalidate(&self, user: &UserId, goal: &GoalId, event: &EventKind) {
        if let Some(cache) = &self.inner.cache {
            let keys = crate::events::stale_keys(cache.keys(), user, goal, event);
            cache.invalidate_detached(event.name(), keys.clone()).await;
            cache.audit_written(&keys);
        }
    }

    /// Applies events from outside. Every event is checked before any is applied; returns how
    /// many were applied. Without a cache there is nothing to invalidate.
    pub async fn apply_events(&self, events: &[Event]) -> Result<usize> {
        self.observe("apply_events", "", async {
            let checked = events
                .iter()
                .map(Event::check)
                .collect::<Result<Vec<_>>>()?;
            for event in &checked {
                self.invalidate(&event.user, &event.goal, &event.kind).await;
                if let (Some(cache), EventKind::ProgressCalculated(progress)) =
                    (&self.inner.cache, &event.kind)
                {
                    let owned = OwnedProgress {
                        user_id: event.user.as_str().to_owned(),
                        progress: progress.clone(),
                        state: None,
                    };
                    let key = cache.keys().progress(&event.goal);
                    let bytes = codec::encode_progress(&owned);
                    cache.write_through(&key, async { Ok(((), bytes)) }).await?;
                }
            }
            Ok(checked.len())
        })
        .await
    }

    pub(super) fn page_size(&self, page: &PageRequest) -> Result<u32> {
        match page.page_size {
            None | Some(0) => Ok(self.inner.config.default_page_size),
            Some(size) if size > self.inner.config.max_page_size => Err(Error::invalid(
                "page_size",
                format!("is {size}; at most {}", self.inner.config.max_page_size),
            )),
            Some(size) => Ok(size),
        }
    }
}

fn not_found_goal(goal: &GoalId) -> Error {
    Error::NotFound {
        kind: "goal",
        id: goal.as_str().to_owned(),
    }
}
