//! The cache in front of the table: strategies, read-through, invalidation, statistics.
//!
//! Strategies: `local` (moka, per process), `redis` (shared), `tiered` (local in front of redis,
//! invalidated across instances over pub/sub), `none` (every read goes to the table).
//!
//! Read-through: local tier, then Redis, then the table (through the store's loader). Fills are
//! leased in each tier before the source is read, so a fill that read before an invalidation never
//! lands after it (see `local.rs`, `redis.rs`). Concurrent misses of a key share one fill
//! (`flight.rs`). A value that does not decode counts as a miss, is deleted and counted.
//!
//! Invalidation drops keys in the local tier (and the fills in progress), deletes them in Redis
//! (kept for replay when Redis is unreachable) and, in `tiered`, tells other instances.
//!
//! What it does not do: decide which keys an event makes stale (`events.rs`), or read the table.

pub mod audit;
pub mod breaker;
pub mod bus;
pub mod codec;
mod config;
pub mod flight;
pub mod keys;
pub mod local;
pub mod pending;
#[cfg(feature = "redis")]
pub mod redis;
/// Without the `redis` feature: the same names, no values (see `no_redis.rs`).
#[cfg(not(feature = "redis"))]
#[path = "no_redis.rs"]
pub mod redis;
mod redis_common;
mod stats;
pub mod write;

pub use self::config::{CacheConfig, RedisConfig, Strategy};
pub use self::stats::{CacheStats, Tier};
use self::stats::{Counters, Metrics};

use self::bus::{Message, Publisher};
use self::codec::{Codec, DecodeError};
use self::flight::Flights;
use self::keys::{CacheKey, CacheKind, KeySpace};
use self::local::LocalTier;
use self::redis::RedisTier;
use crate::error::Error;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The cache of one store.
pub struct Cache {
    config: CacheConfig,
    keys: KeySpace,
    local: Option<LocalTier>,
    redis: Option<Arc<RedisTier>>,
    publisher: Option<Publisher>,
    flights: Flights<Result<Bytes, Error>>,
    counters: Counters,
    metrics: Metrics,
    instance: Arc<str>,
    subscription_broken: AtomicBool,
    tombstone: Bytes,
    auditor: audit::Auditor,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("strategy", &self.config.strategy)
            .field("local", &self.local)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// The cache `config` describes, or `None` for the `none` strategy. Makes no network call;
    /// with Redis, starts the background tasks (probe, publisher, subscriber) on the current
    /// tokio runtime.
    pub fn new(config: CacheConfig) -> Result<Option<Arc<Self>>, Error> {
        if config.strategy == Strategy::None {
            return Ok(None);
        }
        let keys = KeySpace::new(&config.namespace)?;
        for (name, ttl) in [
            ("cache.ttl_active_goals", config.ttl_active_goals),
            ("cache.ttl_progress", config.ttl_progress),
            ("cache.ttl_goal", config.ttl_goal),
            ("cache.ttl_missing", config.ttl_missing),
        ] {
            if ttl.is_zero() {
                return Err(Error::invalid(name, "must be longer than zero"));
            }
        }
        config::check(&config)?;
        let tiered = config.strategy == Strategy::Tiered;
        let (pushes, push_receiver) = if tiered {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let redis = if config.strategy.has_redis() {
            let channel = tiered.then(|| format!("{}invalidations", keys.prefix()));
            let tier = RedisTier::new(config.redis.clone(), keys.prefix(), pushes, channel)
                .map_err(|e| Error::invalid("cache.redis_url", e.to_string()))?;
            Some(Arc::new(tier))
        } else {
            None
        };
        let instance: Arc<str> = format!("{:016x}", rand::random::<u64>()).into();
        let publisher = match (&redis, tiered) {
            (Some(redis), true) => Some(Publisher::spawn(redis.clone(), instance.clone())),
            _ => None,
        };
        let local = config
            .strategy
            .has_local()
            .then(|| LocalTier::new(config.local_capacity_bytes, config.ttl_jitter));
        let cache = Arc::new(Self {
            keys,
            local,
            redis,
            publisher,
            flights: Flights::default(),
            counters: Counters::default(),
            metrics: Metrics::new(),
            instance,
            subscription_broken: AtomicBool::new(false),
            tombstone: codec::encode_goal(None),
            auditor: audit::Auditor::default(),
            config,
        });
        if let Some(redis) = &cache.redis {
            tokio::spawn(probe(Arc::downgrade(&cache), redis.clone()));
        }
        if let Some(receiver) = push_receiver {
            tokio::spawn(receive(Arc::downgrade(&cache), receiver));
        }
        Ok(Some(cache))
    }

    /// The key space.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The TTL of a freshly loaded value: the kind's, or the missing-goal marker's.
    pub fn ttl_of(&self, kind: CacheKind, bytes: &Bytes) -> Duration {
        if kind == CacheKind::Goal && *bytes == self.tombstone {
            self.config.ttl_missing
        } else {
            self.config.ttl(kind)
        }
    }

    /// The value under `key`: from a tier, or loaded by `load` and filled into the tiers.
    pub async fn read_through<T: 'static>(
        self: &Arc<Self>,
        key: CacheKey,
        codec: Codec<T>,
        load: impl FnOnce() -> BoxFuture<'static, Result<Bytes, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        if let Some(value) = self.local_hit(&key, codec) {
            return Ok(value);
        }
        let cache = self.clone();
        let flight_key = key.text.clone();
        let bytes = self
            .flights
            .run(&flight_key, move || {
                async move { cache.fill(key, codec, load).await }.boxed()
            })
            .await?;
        (codec.decode)(&bytes).map_err(|e| Error::CorruptItem {
            key: "freshly encoded cache value".into(),
            reason: e.to_string(),
        })
    }

    /// The value under `key` if a tier holds it; fills nothing and joins no fill in flight. For
    /// a write that starts from the cached version (its condition refuses a stale one) and on a
    /// miss reads the table itself: filling would only take a lease its own write-through then
    /// has to outbid, and joining a fill would make the write wait on a read.
    pub async fn lookup<T>(&self, key: &CacheKey, codec: Codec<T>) -> Option<T> {
        if let Some(value) = self.local_hit(key, codec) {
            return Some(value);
        }
        let (bytes, _) = self.redis_hit(key, codec).await?;
        (codec.decode)(&bytes).ok()
    }

    /// The values under `keys`, in order: hits from the tiers, misses loaded together by `load`
    /// (given the indices of the misses, answering in the same order) and filled. No single flight
    /// here: the misses go to the loader as one batch.
    pub async fn read_through_many<T: 'static>(
        self: &Arc<Self>,
        keys: Vec<CacheKey>,
        codec: Codec<T>,
        load: impl FnOnce(Vec<usize>) -> BoxFuture<'static, Result<Vec<Bytes>, Error>>,
    ) -> Result<Vec<T>, Error> {
        let mut values: Vec<Option<T>> =
            keys.iter().map(|key| self.local_hit(key, codec)).collect();
        let misses: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
        if !misses.is_empty() {
            let local_leases: Vec<_> = misses
                .iter()
                .map(|i| self.local.as_ref().map(|l| l.begin_fill(&keys[*i])))
                .collect();
            let mut remaining = Vec::new();
            let mut remaining_leases = Vec::new();
            let redis_hits =
                futures::future::join_all(misses.iter().map(|i| self.redis_hit(&keys[*i], codec)))
                    .await;
            for ((index, lease), hit) in misses.iter().zip(local_leases).zip(redis_hits) {
                match hit {
                    Some((bytes, lifetime)) => {
                        let landed = self.fill_local(&keys[*index], lease, &bytes, lifetime);
                        self.record_fill([None, landed]);
                        values[*index] = Some((codec.decode)(&bytes).map_err(corrupt)?);
                    }
                    None => {
                        remaining.push(*index);
                        remaining_leases.push(lease);
                    }
                }
            }
            if !remaining.is_empty() {
                let redis_leases = futures::future::join_all(
                    remaining.iter().map(|i| self.redis_begin(&keys[*i])),
                )
                .await;
                let loaded = load(remaining.clone()).await;
                let loaded = match loaded {
                    Ok(loaded) => loaded,
                    Err(error) => {
                        for (index, lease) in remaining.iter().zip(remaining_leases) {
                            if let (Some(local), Some(lease)) = (&self.local, lease) {
                                local.abandon_fill(&keys[*index], lease);
                            }
                        }
                        return Err(error);
                    }
                };
                let fills =
                    remaining
                        .iter()
                        .zip(redis_leases)
                        .zip(&loaded)
                        .map(|((i, lease), bytes)| {
                            let ttl = self.ttl_of(keys[*i].kind, bytes);
                            self.fill_redis(&keys[*i], lease, bytes, ttl)
                        });
                let in_redis = futures::future::join_all(fills).await;
                for (((index, lease), bytes), in_redis) in remaining
                    .iter()
                    .zip(remaining_leases)
                    .zip(loaded)
                    .zip(in_redis)
                {
                    let ttl = self.ttl_of(keys[*index].kind, &bytes);
                    let landed = self.fill_local(&keys[*index], lease, &bytes, ttl);
                    self.record_fill([in_redis, landed]);
                    values[*index] = Some((codec.decode)(&bytes).map_err(corrupt)?);
                }
            }
        }
        Ok(values.into_iter().flatten().collect())
    }

    /// Leases `key` in every tier, runs `produce` (which must read its source after this call
    /// began), and stores its encoding unless an invalidation came in between.
    pub async fn write_through<T>(
        &self,
        key: &CacheKey,
        produce: impl std::future::Future<Output = Result<(T, Bytes), Error>>,
    ) -> Result<T, Error> {
        let local_lease = self.local.as_ref().map(|l| l.begin_fill(key));
        let redis_lease = self.redis_begin(key).await;
        let (value, bytes) = match produce.await {
            Ok(produced) => produced,
            Err(error) => {
                if let (Some(local), Some(lease)) = (&self.local, local_lease) {
                    local.abandon_fill(key, lease);
                }
                return Err(error);
            }
        };
        let in_redis = self
            .fill_redis(key, redis_lease, &bytes, self.ttl_of(key.kind, &bytes))
            .await;
        let landed = self.fill_local(key, local_lease, &bytes, self.ttl_of(key.kind, &bytes));
        self.record_fill([in_redis, landed]);
        Ok(value)
    }

    /// Makes `keys` stale everywhere: local entries and fills in progress, Redis (kept for replay
    /// if unreachable), and other instances' local tiers (tiered). `event` names the cause.
    pub async fn invalidate(&self, event: &'static str, keys: &[CacheKey]) {
        if keys.is_empty() {
            return;
        }
        *self
            .counters
            .invalidations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(event)
            .or_default() += keys.len() as u64;
        for (tier, present) in [
            (Tier::Local, self.local.is_some()),
            (Tier::Redis, self.redis.is_some()),
        ] {
            if present {
                metrics::counter!(crate::metrics::CACHE_INVALIDATIONS, "event" => event, "tier" => tier.as_str())
                    .increment(keys.len() as u64);
            }
        }
        self.drop_local(keys.iter().map(|k| &*k.text));
        let texts: Vec<Arc<str>> = keys.iter().map(|k| k.text.clone()).collect();
        if let Some(redis) = &self.redis {
            if let Err(failure) = redis.invalidate(&texts).await {
                tracing::warn!(%failure, keys = texts.len(), "invalidation kept for replay: redis unreachable");
            }
            // Again: a local fill that began after the first drop may have read the old value
            // from Redis before the DEL landed; drop it (and its lease) now that Redis is clean.
            self.drop_local(keys.iter().map(|k| &*k.text));
        }
        if let Some(publisher) = &self.publisher {
            publisher.publish(texts);
        }
    }

    /// [`Cache::invalidate`] on a task of its own, awaited: the caller still returns after the
    /// invalidation (read-your-writes), but a caller dropped at this await — a deadline, a
    /// hang-up, a failed `try_join!` — no longer cuts it short. Once a write has landed, its
    /// Redis DEL, second local drop and publish happen whether or not anyone still waits.
    pub async fn invalidate_detached(self: &Arc<Self>, event: &'static str, keys: Vec<CacheKey>) {
        if keys.is_empty() {
            return;
        }
        let cache = Arc::clone(self);
        let task = tokio::spawn(async move { cache.invalidate(event, &keys).await });
        if let Err(error) = task.await {
            // Only a panic inside `invalidate` gets here; the keys expire by TTL.
            tracing::error!(%error, "an invalidation task failed");
        }
    }

    /// The local copy of `key` and its remaining lifetime. Counts nothing: for the consistency
    /// auditor and diagnostics, not for serving.
    pub fn peek_local(&self, key: &CacheKey) -> Option<(Bytes, Duration)> {
        self.local.as_ref()?.peek(key)
    }

    /// Sets what the consistency auditor compares cached entries with (the store, once built).
    pub fn set_audit_source(&self, source: Arc<dyn audit::Source>) {
        self.auditor.set_source(source);
    }

    /// After a write or an event invalidated `keys`: if sampled, checks them in this instance's
    /// tiers once the pub/sub window has passed, and (tiered) asks the other instances to check
    /// their local tiers too. Returns at once; the checks run on tasks of their own.
    pub fn audit_written(self: &Arc<Self>, keys: &[CacheKey]) {
        let rate = self.config.audit_sample_rate;
        if keys.is_empty() || rate <= 0.0 || rand::random::<f64>() >= rate {
            return;
        }
        let written = std::time::SystemTime::now();
        self.spawn_checks(keys, &[Tier::Local, Tier::Redis], written);
        if let Some(publisher) = &self.publisher {
            let written_at_ms = written
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            publisher.send(Message::Audit {
                written_at_ms,
                keys: keys.iter().map(|k| k.text.clone()).collect(),
            });
        }
    }

    /// Checks `keys` in each of `tiers` this cache has, each on a task of its own (within the
    /// auditor's bound of checks at once).
    fn spawn_checks(
        self: &Arc<Self>,
        keys: &[CacheKey],
        tiers: &[Tier],
        written: std::time::SystemTime,
    ) {
        let Some(source) = self.auditor.source() else {
            return;
        };
        for key in keys {
            for tier in tiers {
                let present = match tier {
                    Tier::Local => self.local.is_some(),
                    Tier::Redis => self.redis.is_some(),
                };
                let Some(slot) = present.then(|| self.auditor.slot()).flatten() else {
                    continue;
                };
                let (cache, key, tier, source) =
                    (Arc::clone(self), key.clone(), *tier, source.clone());
                tokio::spawn(async move {
                    let peeked = (cache.clone(), key.clone());
                    let peek = move || {
                        let (cache, key) = peeked.clone();
                        async move {
                            match tier {
                                Tier::Local => Ok(cache.peek_local(&key).map(|(bytes, _)| bytes)),
                                Tier::Redis => match &cache.redis {
                                    Some(redis) => redis
                                        .get(&key)
                                        .await
                                        .map(|hit| hit.map(|(bytes, _)| bytes))
                                        .map_err(|_| ()),
                                    None => Ok(None),
                                },
                            }
                        }
                    };
                    let verdict =
                        audit::check(source, key.clone(), cache.config.audit_window, peek).await;
                    cache
                        .auditor
                        .record(key.kind, tier.as_str(), verdict, written);
                    drop(slot);
                });
            }
        }
    }

    /// A fault for tests and game days: while set, invalidation messages to other instances are
    /// dropped unsent, as if pub/sub lost them (the consistency auditor must notice).
    pub fn drop_invalidation_messages(&self, dropping: bool) {
        if let Some(publisher) = &self.publisher {
            publisher.set_dropping_invalidations(dropping);
        }
    }

    /// Whether the Redis tier is unreachable or replaying lost invalidations.
    pub fn is_degraded(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.is_degraded())
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        for tier in Tier::ALL {
            let present = match tier {
                Tier::Local => self.local.is_some(),
                Tier::Redis => self.redis.is_some(),
            };
            if !present {
                continue;
            }
            for kind in CacheKind::ALL {
                let [hits, misses] = &self.counters.lookups[tier as usize][kind.index()];
                stats.lookups.insert(
                    (tier, kind),
                    (hits.load(Ordering::Relaxed), misses.load(Ordering::Relaxed)),
                );
            }
        }
        stats.fills = self.counters.fills.load(Ordering::Relaxed);
        stats.fills_refused = self.counters.fills_refused.load(Ordering::Relaxed);
        stats.invalidations = self
            .counters
            .invalidations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        stats.decode_failures = self.counters.decode_failures.load(Ordering::Relaxed);
        stats.redis_errors = self.redis.as_ref().map_or(0, |r| r.errors());
        stats.degraded = self.is_degraded();
        if let Some(local) = &self.local {
            (stats.local_entries, stats.local_weight_bytes) = local.size();
            stats.local_leases_held = local.leases_held() as u64;
        }
        stats.flights_in_progress = self.flights.len() as u64;
        stats.local_purges = self.counters.local_purges.load(Ordering::Relaxed);
        stats.messages_published = self.publisher.as_ref().map_or(0, Publisher::messages);
        stats.messages_received = self.counters.messages_received.load(Ordering::Relaxed);
        (
            stats.consistency_checks_consistent,
            stats.consistency_checks_stale,
        ) = self.auditor.counts();
        stats.consistency_checks_running = self.auditor.running();
        stats
    }

    fn local_hit<T>(&self, key: &CacheKey, codec: Codec<T>) -> Option<T> {
        let local = self.local.as_ref()?;
        if let Some(bytes) = local.get(key) {
            // The local tier holds only bytes this process encoded or checked: no `check`.
            match (codec.decode)(&bytes) {
                Ok(value) => {
                    self.counters
                        .lookup(&self.metrics, Tier::Local, key.kind, true);
                    return Some(value);
                }
                Err(error) => {
                    tracing::warn!(key = %key.text, %error, "dropping a local entry that does not decode");
                    self.counters
                        .decode_failures
                        .fetch_add(1, Ordering::Relaxed);
                    local.invalidate(&key.text);
                }
            }
        }
        self.counters
            .lookup(&self.metrics, Tier::Local, key.kind, false);
        None
    }

    /// The value in Redis and its remaining lifetime. A lookup the tier refuses (degraded,
    /// replaying, timed out) is neither a hit nor a miss: it is counted as a Redis error.
    async fn redis_hit<T>(&self, key: &CacheKey, codec: Codec<T>) -> Option<(Bytes, Duration)> {
        let redis = self.redis.as_ref()?;
        let hit = match redis.get(key).await {
            Ok(hit) => hit,
            Err(_) => return None,
        };
        match hit {
            Some((bytes, remaining)) if (codec.check)(&bytes).is_ok() => {
                self.counters
                    .lookup(&self.metrics, Tier::Redis, key.kind, true);
                // A local copy lives no longer than the Redis key it came from.
                let ttl = self.ttl_of(key.kind, &bytes);
                let ttl = remaining.map_or(ttl, |remaining| remaining.min(ttl));
                return Some((bytes, ttl));
            }
            Some(_) => {
                tracing::warn!(key = %key.text, "deleting a redis value that does not decode");
                self.counters
                    .decode_failures
                    .fetch_add(1, Ordering::Relaxed);
                let _ = redis.invalidate(std::slice::from_ref(&key.text)).await;
            }
            None => {}
        }
        self.counters
            .lookup(&self.metrics, Tier::Redis, key.kind, false);
        None
    }

    async fn redis_begin(&self, key: &CacheKey) -> Option<redis::RedisLease> {
        self.redis.as_ref()?.begin_fill(key).await.ok()
    }

    /// Stores a fill in Redis; whether it landed, `None` if it was not tried or not answered.
    async fn fill_redis(
        &self,
        key: &CacheKey,
        lease: Option<redis::RedisLease>,
        bytes: &Bytes,
        ttl: Duration,
    ) -> Option<bool> {
        let (Some(redis), Some(lease)) = (&self.redis, lease) else {
            return None;
        };
        redis.complete_fill(key, &lease, bytes, ttl).await.ok()
    }

    /// Stores a fill locally for `ttl` (at most); whether it landed, `None` without a local tier.
    fn fill_local(
        &self,
        key: &CacheKey,
        lease: Option<local::LocalLease>,
        bytes: &Bytes,
        ttl: Duration,
    ) -> Option<bool> {
        let jittered = self.local.as_ref().map(|local| local.jittered(ttl));
        self.replace_local(key, lease, bytes, jittered.unwrap_or(ttl))
    }

    /// [`Self::fill_local`] of a value replacing one in place, for exactly `ttl` (no jitter).
    fn replace_local(
        &self,
        key: &CacheKey,
        lease: Option<local::LocalLease>,
        bytes: &Bytes,
        ttl: Duration,
    ) -> Option<bool> {
        let (Some(local), Some(lease)) = (&self.local, lease) else {
            return None;
        };
        let landed = local.complete_replacement(key, lease, bytes.clone(), ttl);
        self.update_size_gauges();
        Some(landed)
    }

    /// Counts one fill, whatever the tiers it went to: stored if any tier took it, refused if
    /// every tier that answered refused it.
    fn record_fill(&self, tiers: [Option<bool>; 2]) {
        let answered: Vec<bool> = tiers.into_iter().flatten().collect();
        if !answered.is_empty() {
            self.counters
                .fill(&self.metrics, answered.iter().any(|landed| *landed));
        }
    }

    fn update_size_gauges(&self) {
        if let Some(local) = &self.local {
            let (entries, weight) = local.approximate_size();
            self.metrics.local_entries.set(entries as f64);
            self.metrics.local_weight.set(weight as f64);
        }
    }

    /// The miss path of one key: lease locally, try Redis, else lease in Redis, load, fill both.
    async fn fill<T>(
        self: Arc<Self>,
        key: CacheKey,
        codec: Codec<T>,
        load: impl FnOnce() -> BoxFuture<'static, Result<Bytes, Error>> + Send,
    ) -> Result<Bytes, Error> {
        let local_lease = self.local.as_ref().map(|l| l.begin_fill(&key));
        if let Some((bytes, lifetime)) = self.redis_hit(&key, codec).await {
            let landed = self.fill_local(&key, local_lease, &bytes, lifetime);
            self.record_fill([None, landed]);
            return Ok(bytes);
        }
        let redis_lease = self.redis_begin(&key).await;
        let bytes = match load().await {
            Ok(bytes) => bytes,
            Err(error) => {
                if let (Some(local), Some(lease)) = (&self.local, local_lease) {
                    local.abandon_fill(&key, lease);
                }
                return Err(error);
            }
        };
        let in_redis = self
            .fill_redis(&key, redis_lease, &bytes, self.ttl_of(key.kind, &bytes))
            .await;
        let landed = self.fill_local(&key, local_lease, &bytes, self.ttl_of(key.kind, &bytes));
        self.record_fill([in_redis, landed]);
        Ok(bytes)
    }

    fn drop_local<'a>(&self, keys: impl Iterator<Item = &'a str>) {
        for key in keys {
            if let Some(local) = &self.local {
                local.invalidate(key);
            }
            self.flights.forget(key);
        }
        self.update_size_gauges();
    }

    fn purge_local(&self, why: &str) {
        if let Some(local) = &self.local {
            local.clear();
            self.flights.forget_all();
            self.counters.local_purges.fetch_add(1, Ordering::Relaxed);
            self.update_size_gauges();
            tracing::info!(why, "dropped the whole local tier");
        }
    }

    /// Handles one push from Redis: an invalidation message, or a change of the subscription.
    fn on_push(self: &Arc<Self>, push: self::redis::PushInfo) {
        use self::redis::Push;
        match self::redis::classify(&push) {
            Push::Message(text) => {
                let Some((sender, message)) = bus::decode(text) else {
                    return;
                };
                if sender == &*self.instance {
                    // Our own echo: acted on when sent.
                    return;
                }
                self.counters
                    .messages_received
                    .fetch_add(1, Ordering::Relaxed);
                match message {
                    Message::Invalidate(keys) => {
                        let keys: Vec<CacheKey> =
                            keys.iter().filter_map(|k| self.keys.parse(k)).collect();
                        self.drop_local(keys.iter().map(|k| &*k.text));
                    }
                    Message::Purge => {
                        self.purge_local("another instance lost invalidations it cannot name")
                    }
                    Message::Audit {
                        written_at_ms,
                        keys,
                    } => {
                        let keys: Vec<CacheKey> =
                            keys.iter().filter_map(|k| self.keys.parse(k)).collect();
                        let written = std::time::UNIX_EPOCH + Duration::from_millis(written_at_ms);
                        self.spawn_checks(&keys, &[Tier::Local], written);
                    }
                }
            }
            Push::Disconnected => {
                if let Some(redis) = &self.redis {
                    redis.mark_unsubscribed();
                }
                self.subscription_broken.store(true, Ordering::Release);
            }
            Push::Subscribed => {
                if let Some(redis) = &self.redis {
                    redis.mark_subscribed();
                }
                // Messages may have been missed while the subscription was down.
                if self.subscription_broken.swap(false, Ordering::AcqRel) {
                    self.purge_local("the invalidation subscription was re-established");
                }
            }
            Push::Other => {}
        }
    }
}

fn corrupt(error: DecodeError) -> Error {
    Error::CorruptItem {
        key: "cached value".into(),
        reason: error.to_string(),
    }
}

/// Probes a degraded Redis tier, replays lost invalidations (and republishes them), and keeps
/// the invalidation subscription up. Ends when the cache is dropped.
async fn probe(cache: Weak<Cache>, redis: Arc<RedisTier>) {
    let interval = cache.upgrade().map_or(Duration::from_millis(200), |c| {
        c.config.redis.probe_interval
    });
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        let degraded = redis.is_degraded();
        metrics::gauge!(crate::metrics::REDIS_DEGRADED).set(if degraded { 1.0 } else { 0.0 });
        if degraded {
            if let Some(replayed) = redis.recover().await {
                if let Some(publisher) = &cache.publisher {
                    // Other instances never heard of these (the publish failed with Redis): tell
                    // them now; after a flush, the keys are unknown, so they drop everything.
                    publisher.publish(replayed.keys);
                    if replayed.flush {
                        publisher.send(Message::Purge);
                    }
                }
            }
        }
        if cache.publisher.is_some() && !redis.is_degraded() {
            let was_subscribed = redis.is_subscribed();
            if !was_subscribed && redis.ensure_subscribed().await {
                // Whatever was filled while unsubscribed may have missed invalidations.
                cache.purge_local("subscribed to invalidations");
            }
        }
    }
}

/// Receives pushes (pub/sub messages, disconnections) until the cache is dropped.
async fn receive(
    cache: Weak<Cache>,
    mut pushes: tokio::sync::mpsc::UnboundedReceiver<self::redis::PushInfo>,
) {
    while let Some(push) = pushes.recv().await {
        let Some(cache) = cache.upgrade() else {
            return;
        };
        cache.on_push(push);
    }
}
