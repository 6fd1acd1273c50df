//! `GoalStore`: the typed API over the goals table.
//!
//! Reads of single goals go through the batch loader, so concurrent reads share BatchGetItem
//! requests. Writes are conditional puts: create only where no item exists, update only over the
//! version read (`updated_at` must still hold the value read; it strictly increases with every
//! write), with a few retries when another writer got there first.
//!
//! Invariants:
//! - every id is validated before any I/O; a bad request changes nothing;
//! - a read only ever touches the caller's partition (`USER#{user_id}`);
//! - after a write returns, a read through this store sees it (reads are strongly consistent
//!   unless the table is configured otherwise);
//! - attributes of an item that this version does not know survive updates.
//!
//! Caching (`cache`): reads of active goals, progress and single goals go through the cache;
//! every write drops exactly the keys its event makes stale (`events.rs`) after the table write
//! returns, and `log_activity` writes the new progress through.

mod source;

use crate::batch::{BatchConfig, BatchLoader, BatchStats};
use crate::cache::codec::{self, OwnedProgress};
use crate::cache::{Cache, CacheConfig, CacheStats};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::events::{Event, EventKind};
use crate::idempotency;
use crate::item::{
    activity_from_item, activity_to_item, goal_from_item, goal_over_item, goal_to_item,
};
use crate::keys::{activity_sk_prefix, goal_key, validate_id, GoalId, UserId, GOAL_SK_PREFIX};
use crate::model::{
    Activity, ActivitySource, ActivityType, Document, Goal, GoalPattern, GoalStatus, Progress,
    Target, Timestamp, Visibility,
};
use crate::table::{Condition, Item, Query, SortKeyRange, Table, TableError, TableUsage};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            default_page_size: 50,
            max_page_size: 1000,
            cache: CacheConfig::default(),
            slow_call: std::time::Duration::from_millis(200),
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
        // Nothing here is evaluated unless a layer records the span.
        let span = tracing::info_span!(
            "store",
            otel.name = format!("store.{op}"),
            op,
            user_id,
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
            let mut start_after = None;
            loop {
                let page = self
                    .inner
                    .table
                    .query(&Query {
                        pk: crate::keys::user_partition(&user),
                        sort_keys: SortKeyRange::BeginsWith(GOAL_SK_PREFIX.into()),
                        descending: false,
                        limit: None,
                        start_after,
                    })
                    .await?;
                for item in &page.items {
                    let id = crate::table::item_key(item)
                        .and_then(|key| key.sk.strip_prefix(GOAL_SK_PREFIX).map(str::to_owned))
                        .and_then(|id| GoalId::parse(&id).ok());
                    if let Some(goal) = id {
                        keys.push(cache.keys().goal(&user, &goal));
                        keys.push(cache.keys().progress(&goal));
                    }
                }
                match page.last_sort_key {
                    Some(last) => start_after = Some(last),
                    None => break,
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

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// One goal of a user.
    pub async fn get_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        self.observe("get_goal", user_id, self.fetch_goal(user_id, goal_id))
            .await
    }

    /// `get_goal` without the metrics and logs of a public call (for calls made within one).
    async fn fetch_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        let user = UserId::parse(user_id)?;
        let goal = GoalId::parse(goal_id)?;
        let found = match &self.inner.cache {
            None => self.load_goal(&user, &goal).await?,
            Some(cache) => {
                let store = self.clone();
                let key = cache.keys().goal(&user, &goal);
                cache
                    .read_through(key, codec::GOAL, move || {
                        async move {
                            let found = store.load_goal(&user, &goal).await?;
                            Ok(codec::encode_goal(found.as_ref()))
                        }
                        .boxed()
                    })
                    .await?
            }
        };
        // `goal_id` is valid: it parsed above.
        found.ok_or_else(|| Error::NotFound {
            kind: "goal",
            id: goal_id.to_owned(),
        })
    }

    /// One goal from the table, through the batch loader.
    async fn load_goal(&self, user: &UserId, goal: &GoalId) -> Result<Option<Goal>> {
        match self.inner.loader.load(goal_key(user, goal)).await? {
            Some(item) => goal_from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The goals among `goal_ids` that exist, and the ids that do not. Every id is checked
    /// before anything is read; duplicates are read once.
    pub async fn get_goals(&self, user_id: &str, goal_ids: &[String]) -> Result<GoalBatch> {
        self.observe("get_goals", user_id, async {
            let user = UserId::parse(user_id)?;
            let mut ids: Vec<GoalId> = Vec::with_capacity(goal_ids.len());
            let mut seen = std::collections::HashSet::with_capacity(goal_ids.len());
            for id in goal_ids {
                let goal = GoalId::parse(id)?;
                if seen.insert(goal.clone()) {
                    ids.push(goal);
                }
            }
            let found: Vec<Option<Goal>> = match &self.inner.cache {
                None => self.load_goals(&user, &ids).await?,
                Some(cache) => {
                    let keys = ids
                        .iter()
                        .map(|goal| cache.keys().goal(&user, goal))
                        .collect();
                    let store = self.clone();
                    let ids = ids.clone();
                    cache
                        .read_through_many(keys, codec::GOAL, move |misses| {
                            async move {
                                let wanted: Vec<GoalId> =
                                    misses.iter().map(|i| ids[*i].clone()).collect();
                                let found = store.load_goals(&user, &wanted).await?;
                                Ok(found
                                    .iter()
                                    .map(|g| codec::encode_goal(g.as_ref()))
                                    .collect())
                            }
                            .boxed()
                        })
                        .await?
                }
            };
            let mut batch = GoalBatch::default();
            for (goal, found) in ids.into_iter().zip(found) {
                match found {
                    Some(found) => batch.goals.push(found),
                    None => batch.missing_goal_ids.push(goal.as_str().to_owned()),
                }
            }
            Ok(batch)
        })
        .await
    }

    /// Goals from the table, all queued at once so they form as few BatchGetItems as possible.
    async fn load_goals(&self, user: &UserId, ids: &[GoalId]) -> Result<Vec<Option<Goal>>> {
        let keys = ids.iter().map(|goal| goal_key(user, goal)).collect();
        let items = self.inner.loader.load_many(keys).await;
        items
            .into_iter()
            .map(|item| match item? {
                Some(item) => goal_from_item(&item).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// Every active goal of a user, oldest first. Queries the user's partition, not the
    /// `STATUS#active` index (one hot partition for all users).
    pub async fn list_active_goals(&self, user_id: &str) -> Result<Vec<Goal>> {
        self.observe("list_active_goals", user_id, async {
            let user = UserId::parse(user_id)?;
            match &self.inner.cache {
                None => self.load_active_goals(&user).await,
                Some(cache) => {
                    let store = self.clone();
                    let key = cache.keys().active_goals(&user);
                    cache
                        .read_through(key, codec::GOALS, move || {
                            async move {
                                Ok(codec::encode_goals(&store.load_active_goals(&user).await?))
                            }
                            .boxed()
                        })
                        .await
                }
            }
        })
        .await
    }

    async fn load_active_goals(&self, user: &UserId) -> Result<Vec<Goal>> {
        let filter = GoalFilter {
            status: Some(GoalStatus::Active),
            ..GoalFilter::default()
        };
        let mut goals = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .inner
                .table
                .query(&Query {
                    pk: crate::keys::user_partition(user),
                    sort_keys: SortKeyRange::BeginsWith(GOAL_SK_PREFIX.into()),
                    descending: false,
                    limit: None,
                    start_after,
                })
                .await?;
            goals.extend(decode_goals(&page.items).filter(|g| filter.matches(g)));
            match page.last_sort_key {
                Some(last) => start_after = Some(last),
                None => break,
            }
        }
        goals.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(goals)
    }

    /// A page of a user's goals that match `filter`, in goal-id order.
    pub async fn list_goals(
        &self,
        user_id: &str,
        filter: &GoalFilter,
        page: &PageRequest,
    ) -> Result<Page<Goal>> {
        self.observe("list_goals", user_id, async {
            let user = UserId::parse(user_id)?;
            let page_size = self.page_size(page)?;
            let mut start_after = decode_page_token(page.page_token.as_deref(), GOAL_SK_PREFIX)?;
            let mut goals = Vec::new();
            loop {
                let result = self
                    .inner
                    .table
                    .query(&Query {
                        pk: crate::keys::user_partition(&user),
                        sort_keys: SortKeyRange::BeginsWith(GOAL_SK_PREFIX.into()),
                        descending: false,
                        limit: Some(page_size.max(100)),
                        start_after: start_after.clone(),
                    })
                    .await?;
                let count = result.items.len();
                for (index, item) in result.items.iter().enumerate() {
                    start_after = crate::table::item_key(item).map(|k| k.sk);
                    if let Some(goal) = decode_goals(std::slice::from_ref(item)).next() {
                        if filter.matches(&goal) {
                            goals.push(goal);
                        }
                    }
                    if goals.len() == page_size as usize {
                        let more = index + 1 < count || result.last_sort_key.is_some();
                        return Ok(Page {
                            items: goals,
                            next_page_token: more.then(|| encode_page_token(start_after)).flatten(),
                        });
                    }
                }
                match result.last_sort_key {
                    Some(last) => start_after = Some(last),
                    None => {
                        return Ok(Page {
                            items: goals,
                            next_page_token: None,
                        })
                    }
                }
            }
        })
        .await
    }

    /// Creates a goal. Refused with `AlreadyExists` when the id is taken.
    pub async fn create_goal(&self, user_id: &str, new: NewGoal) -> Result<Goal> {
        self.observe("create_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal_id = match &new.goal_id {
                Some(id) => GoalId::parse(id)?,
                None => GoalId::parse(&uuid::Uuid::new_v4().to_string())?,
            };
            let request_fingerprint = new
                .goal_id
                .is_some()
                .then(|| idempotency::fingerprint(&new));
            let mut new = new;
            crate::validate::new_goal(&mut new)?;
            let status = new.status.unwrap_or(GoalStatus::Active);
            if !matches!(
                status,
                GoalStatus::Draft | GoalStatus::Active | GoalStatus::Paused
            ) {
                return Err(Error::invalid(
                    "status",
                    format!("a new goal cannot be {status}; use draft, active or paused"),
                ));
            }
            let now = Timestamp::from_instant(self.now());
            let mut goal = Goal {
                goal_id: goal_id.as_str().to_owned(),
                user_id: user.as_str().to_owned(),
                title: new.title,
                description: new.description,
                category: new.category,
                icon: new.icon,
                color: new.color,
                goal_pattern: new.goal_pattern,
                target: new.target,
                schedule: new.schedule,
                progress: Progress::default(),
                context: new.context,
                rewards: new.rewards,
                status,
                visibility: new.visibility,
                created_at: now.clone(),
                updated_at: now,
                completed_at: None,
                archived_at: None,
                metadata: new.metadata,
                is_journal_linked: new.is_journal_linked,
            };
            crate::validate::goal(&mut goal)?;
            let active = self.load_active_goals(&user).await?;
            if let Err(refused) = crate::validate::rules::new_goal(
                goal.goal_pattern,
                &goal.title,
                &goal.target,
                &active,
                self.now(),
            ) {
                // A retry of a create that landed sees its own goal as a duplicate title: the
                // first result wins over the rules, as it would had nothing changed since.
                if request_fingerprint.is_some() {
                    let sk = idempotency::goal_marker_sk(&goal_id);
                    match self
                        .repeat(&user, &sk, request_fingerprint.as_ref())
                        .await?
                    {
                        Some(idempotency::Repeat::Same(first)) => {
                            if let Some(goal) = idempotency::field(&first, "goal")? {
                                // The first attempt may have been cancelled before it invalidated.
                                self.invalidate(&user, &goal_id, &EventKind::GoalCreated)
                                    .await;
                                return Ok(goal);
                            }
                        }
                        Some(idempotency::Repeat::Different) => {
                            return Err(Error::AlreadyExists {
                                kind: "goal",
                                id: goal.goal_id,
                            })
                        }
                        None => {}
                    }
                }
                return Err(refused);
            }
            // What the existing handlers' create writes: every default, none computed.
            goal.progress = Progress {
                success_rate: Some(0.0),
                trend: Some(crate::model::Trend::Stable),
                ..Progress::default()
            };
            let item = fits("goal", goal_to_item(&goal)?)?;
            let marker = request_fingerprint
                .as_ref()
                .map(|fingerprint| {
                    idempotency::marker(
                        &user,
                        idempotency::goal_marker_sk(&goal_id),
                        fingerprint,
                        self.now(),
                        &[("goal", &goal)],
                    )
                })
                .transpose()?;
            let leases = self
                .begin_write(&user, &goal_id, &EventKind::GoalCreated)
                .await;
            let written = self.put_new(item, marker).await;
            match written {
                Ok(()) => {
                    if let Some(leases) = leases {
                        leases.landed(vec![codec::encode_goal(Some(&goal))]).await;
                    }
                    let pattern = goal.goal_pattern.as_str();
                    metrics::counter!(crate::metrics::GOALS_CREATED, "pattern" => pattern)
                        .increment(1);
                    active_goals_status_changed(goal.goal_pattern, None, goal.status);
                    tracing::info!(goalPattern = pattern, op = "create_goal", "Created goal");
                    Ok(goal)
                }
                Err(TableError::ConditionFailed) => {
                    if let Some(leases) = leases {
                        leases.unchanged();
                    }
                    let sk = idempotency::goal_marker_sk(&goal_id);
                    let repeat = self
                        .repeat(&user, &sk, request_fingerprint.as_ref())
                        .await?;
                    if let Some(idempotency::Repeat::Same(first)) = repeat {
                        if let Some(goal) = idempotency::field(&first, "goal")? {
                            // The first attempt may have been cancelled before it invalidated:
                            // a repeat invalidates again (idempotent, and cheap next to a retry).
                            self.invalidate(&user, &goal_id, &EventKind::GoalCreated)
                                .await;
                            return Ok(goal);
                        }
                    }
                    Err(Error::AlreadyExists {
                        kind: "goal",
                        id: goal.goal_id,
                    })
                }
                Err(error) => Err(error.into()),
            }
        })
        .await
    }

    /// Writes a new item where none is, with its idempotency marker (in one transaction) when the
    /// request carries an id.
    async fn put_new(&self, item: Item, marker: Option<Item>) -> Result<(), TableError> {
        match marker {
            None => {
                self.inner
                    .table
                    .put_item(item, Some(Condition::ItemAbsent))
                    .await
            }
            Some(marker) => {
                self.inner
                    .table
                    .transact_put(vec![
                        (item, Some(Condition::ItemAbsent)),
                        (marker, Some(Condition::ItemAbsent)),
                    ])
                    .await
            }
        }
    }

    /// What the marker at `sk` says of a request with `fingerprint`: `None` when there is none.
    async fn repeat(
        &self,
        user: &UserId,
        sk: &str,
        fingerprint: Option<&String>,
    ) -> Result<Option<idempotency::Repeat>> {
        let Some(fingerprint) = fingerprint else {
            return Ok(None);
        };
        let key = crate::keys::ItemKey {
            pk: crate::keys::user_partition(user),
            sk: sk.to_owned(),
        };
        Ok(self
            .inner
            .table
            .get_item(&key)
            .await?
            .map(|marker| idempotency::check(marker, fingerprint, self.now())))
    }

    /// Changes the fields set in `update`. Refuses pattern changes and edits of archived or
    /// completed goals; keeps `gsi1_pk` in step with the status; bumps `updated_at`.
    pub async fn update_goal(
        &self,
        user_id: &str,
        goal_id: &str,
        update: GoalUpdate,
    ) -> Result<Goal> {
        self.observe("update_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let previous = std::sync::Mutex::new(None);
            let leases = self
                .begin_write(&user, &goal, &EventKind::GoalUpdated)
                .await;
            let updated = self
                .modify_goal(&user, &goal, |current, now| {
                    *previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(current.status);
                    crate::validate::rules::update(
                        current,
                        update.status,
                        update.target.as_ref(),
                        now,
                    )?;
                    if let Some(pattern) = update.goal_pattern {
                        if pattern != current.goal_pattern {
                            return Err(Error::invalid(
                                "goal_pattern",
                                format!(
                                    "a goal's pattern cannot change (it is {})",
                                    current.goal_pattern
                                ),
                            ));
                        }
                    }
                    let mut goal = current.clone();
                    crate::validate::readable(&mut goal);
                    let update = update.clone();
                    set(&mut goal.title, update.title);
                    set_some(&mut goal.description, update.description);
                    set_some(&mut goal.category, update.category);
                    set_some(&mut goal.icon, update.icon);
                    set_some(&mut goal.color, update.color);
                    set(&mut goal.target, update.target);
                    set_some(&mut goal.schedule, update.schedule);
                    set_some(&mut goal.context, update.context);
                    set_some(&mut goal.rewards, update.rewards);
                    set(&mut goal.visibility, update.visibility);
                    set_some(&mut goal.metadata, update.metadata);
                    set(&mut goal.is_journal_linked, update.is_journal_linked);
                    if let Some(status) = update.status {
                        if status == GoalStatus::Completed && goal.status != GoalStatus::Completed {
                            goal.completed_at = Some(Timestamp::from_instant(now));
                        }
                        goal.status = status;
                    }
                    crate::validate::goal(&mut goal)?;
                    Ok(Some(goal))
                })
                .await;
            let updated = settle(leases, updated).await?;
            let before = *previous.lock().unwrap_or_else(|e| e.into_inner());
            active_goals_status_changed(updated.goal_pattern, before, updated.status);
            Ok(updated)
        })
        .await
    }

    /// Archives a goal (a soft delete). Archiving an archived goal returns it unchanged.
    pub async fn archive_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        self.observe("archive_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let previous = std::sync::Mutex::new(None);
            // Written through even when it was archived already: a cache may hold an older copy.
            let leases = self
                .begin_write(&user, &goal, &EventKind::GoalArchived)
                .await;
            let archived = self
                .modify_goal(&user, &goal, |current, now| {
                    *previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(current.status);
                    if current.status == GoalStatus::Archived {
                        return Ok(None);
                    }
                    let mut goal = current.clone();
                    goal.status = GoalStatus::Archived;
                    goal.archived_at = Some(Timestamp::from_instant(now));
                    Ok(Some(goal))
                })
                .await;
            let archived = settle(leases, archived).await?;
            let before = *previous.lock().unwrap_or_else(|e| e.into_inner());
            if before != Some(GoalStatus::Archived) {
                active_goals_status_changed(archived.goal_pattern, before, archived.status);
            }
            Ok(archived)
        })
        .await
    }

    /// Records an activity toward an active goal, recomputes the goal's progress and stores it
    /// on the goal.
    pub async fn log_activity(
        &self,
        user_id: &str,
        goal_id: &str,
        new: NewActivity,
    ) -> Result<LoggedActivity> {
        self.observe("log_activity", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal_id = GoalId::parse(goal_id)?;
            let activity_id = match &new.activity_id {
                Some(id) => {
                    validate_id("activity_id", id)?;
                    id.clone()
                }
                None => uuid::Uuid::new_v4().to_string(),
            };
            let mut new = new;
            crate::validate::new_activity(&mut new)?;
            let now = self.now();
            if let Some(date) = &new.activity_date {
                match date.instant() {
                    None => return Err(Error::invalid("activity_date", "is not an ISO-8601 time")),
                    Some(at) if at > now + MAX_ACTIVITY_CLOCK_SKEW => {
                        return Err(Error::invalid("activity_date", "is in the future"))
                    }
                    Some(_) => {}
                }
            }
            let request_fingerprint = new
                .activity_id
                .is_some()
                .then(|| idempotency::fingerprint(&new));
            let marker_sk = idempotency::activity_marker_sk(&goal_id, &activity_id);
            // A retry of a logged activity returns the first result before anything is checked again.
            match self
                .repeat(&user, &marker_sk, request_fingerprint.as_ref())
                .await?
            {
                Some(idempotency::Repeat::Same(first)) => {
                    return self
                        .replay_activity(&user, &goal_id, &marker_sk, first)
                        .await
                }
                Some(idempotency::Repeat::Different) => {
                    return Err(Error::AlreadyExists {
                        kind: "activity",
                        id: activity_id,
                    })
                }
                None => {}
            }
            let read = self.get_goal_for_write(&user, &goal_id).await?;
            let goal = &read.0;
            // An empty unit means the goal's, as the existing handlers take it.
            let unit = match new.unit.as_deref() {
                Some(unit) if !unit.is_empty() => unit.to_owned(),
                _ => goal.target.unit.clone().unwrap_or_default(),
            };
            let date = new
                .activity_date
                .as_ref()
                .and_then(Timestamp::instant)
                .unwrap_or(now);
            crate::validate::rules::activity(goal, &new, &unit, date)?;

            let mut logged_at = now;
            let mut activity = Activity {
                activity_id,
                goal_id: goal_id.as_str().to_owned(),
                user_id: user.as_str().to_owned(),
                value: new.value,
                unit: Some(unit),
                activity_type: new.activity_type,
                activity_date: new
                    .activity_date
                    .unwrap_or_else(|| Timestamp::from_instant(now)),
                logged_at: Timestamp::from_instant(now),
                timezone: new.timezone,
                location: new.location,
                context: new.context,
                note: new.note,
                attachments: new.attachments,
                source: new.source,
                device_info: new.device_info,
            };
            crate::validate::complete_activity(&mut activity, date);
            // The sort key holds logged_at: two activities of one goal in the same microsecond
            // would collide, so the later one moves on by a microsecond.
            let mut written = false;
            for _ in 0..WRITE_CONFLICT_RETRIES {
                activity.logged_at = Timestamp::from_instant(logged_at);
                let item = fits("activity", activity_to_item(&activity)?)?;
                let marker = request_fingerprint
                    .as_ref()
                    .map(|fingerprint| {
                        idempotency::marker(
                            &user,
                            marker_sk.clone(),
                            fingerprint,
                            now,
                            &[("activity", &activity)],
                        )
                    })
                    .transpose()?;
                let result = self.put_new(item, marker).await;
                match result {
                    Ok(()) => {
                        written = true;
                        break;
                    }
                    Err(TableError::ConditionFailed) => {
                        // A concurrent repeat may have won the race for the marker.
                        match self
                            .repeat(&user, &marker_sk, request_fingerprint.as_ref())
                            .await?
                        {
                            Some(idempotency::Repeat::Same(first)) => {
                                return self
                                    .replay_activity(&user, &goal_id, &marker_sk, first)
                                    .await
                            }
                            Some(idempotency::Repeat::Different) => {
                                return Err(Error::AlreadyExists {
                                    kind: "activity",
                                    id: activity.activity_id,
                                })
                            }
                            None => logged_at += Duration::microseconds(1),
                        }
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            if !written {
                return Err(conflict(&goal_id));
            }

            // The activity is in the table: from here, every failure may leave the goal's cached
            // values stale, and dropping the leases invalidates them.
            let leases = self
                .begin_write(&user, &goal_id, &EventKind::ActivityLogged)
                .await;
            let goal = self.update_progress(&user, &goal_id, Some(read)).await?;
            if let Some(leases) = leases {
                let owned = OwnedProgress {
                    user_id: user.as_str().to_owned(),
                    progress: goal.progress.clone(),
                };
                leases
                    .landed(vec![
                        codec::encode_goal(Some(&goal)),
                        codec::encode_progress(&owned),
                    ])
                    .await;
            }
            metrics::counter!(crate::metrics::ACTIVITIES_LOGGED, "pattern" => goal.goal_pattern.as_str())
                .increment(1);
            tracing::info!(
                goalPattern = goal.goal_pattern.as_str(),
                op = "log_activity",
                user_id = user.as_str(),
                "Activity logged"
            );
            if let Some(fingerprint) = &request_fingerprint {
                self.record_result(
                    &user,
                    &marker_sk,
                    fingerprint,
                    now,
                    &activity,
                    &goal.progress,
                )
                .await?;
            }
            Ok(LoggedActivity {
                activity,
                progress: goal.progress,
            })
        })
        .await
    }

    /// The first result of a repeated LogActivity. When the first call stopped before recording
    /// its progress, the progress is brought up to date now (once).
    async fn replay_activity(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        marker_sk: &str,
        first: Item,
    ) -> Result<LoggedActivity> {
        let activity: Activity =
            idempotency::field(&first, "activity")?.ok_or_else(|| Error::CorruptItem {
                key: marker_sk.to_owned(),
                reason: "the marker holds no activity".into(),
            })?;
        if let Some(progress) = idempotency::field(&first, "progress")? {
            // The first attempt may have been cancelled before it invalidated: a repeat
            // invalidates again (idempotent, and cheap next to a retry).
            self.invalidate(user, goal_id, &EventKind::ActivityLogged)
                .await;
            return Ok(LoggedActivity { activity, progress });
        }
        let goal = self.update_progress(user, goal_id, None).await?;
        self.invalidate(user, goal_id, &EventKind::ActivityLogged)
            .await;
        if let Some(AttributeValue::S(fingerprint)) = first.get("fingerprint") {
            self.record_result(
                user,
                marker_sk,
                fingerprint,
                self.now(),
                &activity,
                &goal.progress,
            )
            .await?;
        }
        Ok(LoggedActivity {
            activity,
            progress: goal.progress,
        })
    }

    /// Completes an activity's marker with the progress the first call computed.
    async fn record_result(
        &self,
        user: &UserId,
        marker_sk: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        activity: &Activity,
        progress: &Progress,
    ) -> Result<()> {
        let mut marker = idempotency::marker(
            user,
            marker_sk.to_owned(),
            fingerprint,
            now,
            &[("activity", activity)],
        )?;
        let progress =
            serde_dynamo::to_attribute_value(progress).map_err(|e| Error::CorruptItem {
                key: marker_sk.to_owned(),
                reason: e.to_string(),
            })?;
        marker.insert("progress".into(), progress);
        self.inner.table.put_item(marker, None).await?;
        Ok(())
    }

    /// A page of a goal's activities logged within `filter`, newest first.
    pub async fn list_activities(
        &self,
        user_id: &str,
        goal_id: &str,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> Result<Page<Activity>> {
        self.observe("list_activities", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let page_size = self.page_size(page)?;
            let prefix = activity_sk_prefix(&goal);
            let bound = |field: &'static str, at: &Option<Timestamp>, open: &str| match at {
                None => Ok(format!("{prefix}{open}")),
                Some(at) => at
                    .instant()
                    .map(|instant| format!("{prefix}{}", crate::model::key_form(instant)))
                    .ok_or_else(|| Error::invalid(field, "is not an ISO-8601 time")),
            };
            // '0' sorts before every time and '~' after, within the goal's prefix.
            let low = bound("from", &filter.from, "0")?;
            let high = bound("to", &filter.to, "~")?;
            let start_after = decode_page_token(page.page_token.as_deref(), &prefix)?;
            let result = self
                .inner
                .table
                .query(&Query {
                    pk: crate::keys::user_partition(&user),
                    sort_keys: SortKeyRange::Between { low, high },
                    descending: true,
                    limit: Some(page_size),
                    start_after,
                })
                .await?;
            let items = result
                .items
                .iter()
                .filter_map(|item| match activity_from_item(item) {
                    Ok(activity) => Some(activity),
                    Err(error) => {
                        tracing::warn!(%error, "skipping an activity item that does not decode");
                        None
                    }
                })
                .collect();
            Ok(Page {
                items,
                next_page_token: encode_page_token(result.last_sort_key),
            })
        })
        .await
    }

    /// A goal's progress, computed now from the goal and all of its activities.
    pub async fn get_progress(&self, user_id: &str, goal_id: &str) -> Result<Progress> {
        self.observe("get_progress", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal_id = GoalId::parse(goal_id)?;
            let Some(cache) = &self.inner.cache else {
                return self.compute_progress(&user, &goal_id).await;
            };
            let store = self.clone();
            let key = cache.keys().progress(&goal_id);
            let (owner, goal) = (user.clone(), goal_id.clone());
            let cached = cache
                .read_through(key, codec::PROGRESS, move || {
                    async move {
                        let progress = store.compute_progress(&owner, &goal).await?;
                        Ok(codec::encode_progress(&OwnedProgress {
                            user_id: owner.as_str().to_owned(),
                            progress,
                        }))
                    }
                    .boxed()
                })
                .await?;
            if cached.user_id == user.as_str() {
                Ok(cached.progress)
            } else {
                // Goal ids are unique per user only: this entry is another user's goal of the same id.
                self.compute_progress(&user, &goal_id).await
            }
        })
        .await
    }

    /// Progress from the table: the goal and its activities read at the source, never through
    /// the goal cache. This fills the progress cache for an hour; a goal read from a local tier
    /// that has not yet heard of another instance's update would store a progress computed from
    /// the old target there (#15 finding 5).
    async fn compute_progress(&self, user: &UserId, goal_id: &GoalId) -> Result<Progress> {
        let (goal, activities) = futures::try_join!(
            self.load_goal(user, goal_id),
            self.all_activities(user, goal_id)
        )?;
        let goal = goal.ok_or_else(|| not_found_goal(goal_id))?;
        Ok(crate::progress::compute(&goal, &activities, self.now()))
    }

    /// Recomputes a goal's progress from all of its activities and stores it on the goal. The
    /// activities are read after the goal version each attempt writes over, so the stored progress
    /// always includes every activity written before the last successful write.
    ///
    /// `read`: a version of the goal read before the caller wrote its activity; the first attempt
    /// writes over it (saving a GetItem), and when the goal changed since, the conditional write
    /// fails and the next attempt reads it again.
    async fn update_progress(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        mut read: Option<(Goal, Item)>,
    ) -> Result<Goal> {
        for _ in 0..WRITE_CONFLICT_RETRIES {
            let (current, item) = match read.take() {
                Some(read) => read,
                None => self.get_goal_for_write(user, goal_id).await?,
            };
            let activities = self.all_activities(user, goal_id).await?;
            self.rewrite_legacy_activities(&current, &activities)
                .await?;
            let now = self.now();
            let mut goal = current.clone();
            goal.progress = crate::progress::compute(&goal, &activities, now);
            match self.write_over(&current, goal, item, now).await? {
                Some(goal) => return Ok(goal),
                None => continue,
            }
        }
        Err(conflict(goal_id))
    }

    /// Rewrites, in the existing handlers' form, the activities of `goal` an older goalstore
    /// wrote with NULLs their model refuses (see `validate::readable_activity`). Activities are
    /// never written again otherwise, so the first progress recompute after the upgrade is their
    /// next write. Each put is conditioned on the item still being the one read.
    async fn rewrite_legacy_activities(&self, goal: &Goal, activities: &[Activity]) -> Result<()> {
        for activity in activities {
            let mut readable = activity.clone();
            if !crate::validate::readable_activity(&mut readable, goal.target.unit.as_deref()) {
                continue;
            }
            let condition = Condition::AttributeEquals {
                attribute: "activity_id".into(),
                value: AttributeValue::S(activity.activity_id.clone()),
            };
            match self
                .inner
                .table
                .put_item(activity_to_item(&readable)?, Some(condition))
                .await
            {
                // Gone since (its TTL ran out): nothing to rewrite.
                Ok(()) | Err(TableError::ConditionFailed) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// The cache leases of a write that makes `event`, taken before its table write (see
    /// `cache/write.rs`); `None` without a cache.
    async fn begin_write(
        &self,
        user: &UserId,
        goal: &GoalId,
        event: &EventKind,
    ) -> Option<crate::cache::write::WriteLeases> {
        let cache = self.inner.cache.as_ref()?;
        let (through, stale) = crate::events::written_keys(cache.keys(), user, goal, event);
        Some(cache.begin_write(event.name(), through, stale).await)
    }

    /// Drops the cache keys `event` makes stale — all of them, even if the caller is dropped
    /// meanwhile (see `Cache::invalidate_detached`).
    async fn invalidate(&self, user: &UserId, goal: &GoalId, event: &EventKind) {
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

    fn page_size(&self, page: &PageRequest) -> Result<u32> {
        match page.page_size {
            None | Some(0) => Ok(self.inner.config.default_page_size),
            Some(size) if size > self.inner.config.max_page_size => Err(Error::invalid(
                "page_size",
                format!("is {size}; at most {}", self.inner.config.max_page_size),
            )),
            Some(size) => Ok(size),
        }
    }

    /// The goal and its raw item, read directly (not batched): a write needs the item as it is.
    async fn get_goal_for_write(&self, user: &UserId, goal: &GoalId) -> Result<(Goal, Item)> {
        match self.inner.table.get_item(&goal_key(user, goal)).await? {
            Some(item) => Ok((goal_from_item(&item)?, item)),
            None => Err(not_found_goal(goal)),
        }
    }

    /// Reads the goal, lets `change` make a new version (or `None` for no change), and writes it
    /// over the version read. Retries when another writer got there first.
    async fn modify_goal<F>(&self, user: &UserId, goal_id: &GoalId, change: F) -> Result<Goal>
    where
        F: Fn(&Goal, DateTime<Utc>) -> Result<Option<Goal>>,
    {
        for _ in 0..WRITE_CONFLICT_RETRIES {
            let (current, item) = self.get_goal_for_write(user, goal_id).await?;
            let now = self.now();
            let Some(goal) = change(&current, now)? else {
                return Ok(current);
            };
            if let Some(goal) = self.write_over(&current, goal, item, now).await? {
                return Ok(goal);
            }
        }
        Err(conflict(goal_id))
    }

    /// Writes `goal` over `item`, the version `current` was read from. `None` when another writer
    /// changed the goal since (nothing was written).
    async fn write_over(
        &self,
        current: &Goal,
        mut goal: Goal,
        item: Item,
        now: DateTime<Utc>,
    ) -> Result<Option<Goal>> {
        // updated_at strictly increases, so the condition below tells every version apart.
        // Whatever wrote the stored version, what goes back is what the existing handlers read.
        crate::validate::readable(&mut goal);
        let previous = current.updated_at.instant().unwrap_or(now);
        goal.updated_at = Timestamp::from_instant(now.max(previous + Duration::microseconds(1)));
        let condition = Condition::AttributeEquals {
            attribute: "updated_at".into(),
            value: AttributeValue::S(current.updated_at.as_str().to_owned()),
        };
        match self
            .inner
            .table
            .put_item(fits("goal", goal_over_item(&goal, item)?)?, Some(condition))
            .await
        {
            Ok(()) => Ok(Some(goal)),
            Err(TableError::ConditionFailed) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

/// Settles a goal write's cache leases by its outcome: the goal written goes through the cache;
/// a write refused before the table, or whose condition kept failing, gives them back; any other
/// failure may have landed, so its keys are invalidated (dropping the leases does that).
async fn settle(
    leases: Option<crate::cache::write::WriteLeases>,
    written: Result<Goal>,
) -> Result<Goal> {
    let Some(leases) = leases else {
        return written;
    };
    match &written {
        Ok(goal) => leases.landed(vec![codec::encode_goal(Some(goal))]).await,
        Err(
            Error::InvalidArgument { .. }
            | Error::Rule(_)
            | Error::NotFound { .. }
            | Error::FailedPrecondition(_),
        ) => leases.unchanged(),
        Err(_) => drop(leases),
    }
    written
}

fn conflict(goal_id: &GoalId) -> Error {
    Error::Unavailable(format!(
        "goal `{goal_id}` kept changing concurrently; gave up after {WRITE_CONFLICT_RETRIES} attempts"
    ))
}

impl GoalStore {
    /// Every activity of a goal, oldest first.
    async fn all_activities(&self, user: &UserId, goal: &GoalId) -> Result<Vec<Activity>> {
        let mut activities = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .inner
                .table
                .query(&Query {
                    pk: crate::keys::user_partition(user),
                    sort_keys: SortKeyRange::BeginsWith(activity_sk_prefix(goal)),
                    descending: false,
                    limit: None,
                    start_after,
                })
                .await?;
            activities.extend(
                page.items
                    .iter()
                    .filter_map(|item| activity_from_item(item).ok()),
            );
            match page.last_sort_key {
                Some(last) => start_after = Some(last),
                None => return Ok(activities),
            }
        }
    }
}

/// Moves the active-goals gauge when a write changes a goal's status.
fn active_goals_status_changed(
    pattern: GoalPattern,
    before: Option<GoalStatus>,
    after: GoalStatus,
) {
    let was = before == Some(GoalStatus::Active);
    let is = after == GoalStatus::Active;
    if was != is {
        let gauge = metrics::gauge!(crate::metrics::ACTIVE_GOALS, "pattern" => pattern.as_str());
        if is {
            gauge.increment(1.0);
        } else {
            gauge.decrement(1.0);
        }
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn set_some<T>(field: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *field = value;
    }
}

fn not_found_goal(goal: &GoalId) -> Error {
    Error::NotFound {
        kind: "goal",
        id: goal.as_str().to_owned(),
    }
}

fn decode_goals(items: &[Item]) -> impl Iterator<Item = Goal> + '_ {
    items.iter().filter_map(|item| match goal_from_item(item) {
        Ok(goal) => Some(goal),
        Err(error) => {
            tracing::warn!(%error, "skipping a goal item that does not decode");
            None
        }
    })
}

fn encode_page_token(sort_key: Option<String>) -> Option<String> {
    sort_key.map(|sk| URL_SAFE_NO_PAD.encode(sk))
}

/// The sort key a page token stands for; it must lie under `prefix`, so a token can neither
/// leave the listing it came from nor the caller's partition.
fn decode_page_token(token: Option<&str>, prefix: &str) -> Result<Option<String>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let invalid = || Error::invalid("page_token", "is not a token this listing returned");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let sort_key = String::from_utf8(bytes).map_err(|_| invalid())?;
    if !sort_key.starts_with(prefix) {
        return Err(invalid());
    }
    Ok(Some(sort_key))
}

/// `item`, if DynamoDB will store it: a caller's oversized value is their mistake, not an outage.
fn fits(field: &'static str, item: Item) -> Result<Item> {
    let size = crate::table::item_size(&item);
    if size > crate::table::MAX_ITEM_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "would be a {size}-byte item; DynamoDB stores at most {} bytes",
                crate::table::MAX_ITEM_BYTES
            ),
        ));
    }
    Ok(item)
}
