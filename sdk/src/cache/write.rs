//! Writes through the cache: a write that knows the new value of a key (the goal it wrote, the
//! progress it computed) puts it in every tier instead of dropping it, so the next read hits.
//!
//! The protocol is the fill's: the write takes a lease on each key in every tier *before* it
//! writes the table, and the value lands only while its lease holds. Any fill or write that began
//! after it took a newer lease, so a write-through can never overwrite a newer value; a refused
//! write-through falls back to invalidation (value and lease deleted), which also refuses any
//! older fill still in flight. Keys the write makes stale without knowing their new value (the
//! active list) are invalidated as before. Other instances drop their local copies of every key
//! (pub/sub) and read the new value from Redis.
//!
//! Cancellation: after the table write landed, [`WriteLeases::landed`] finishes on a task of its
//! own. Leases dropped unused (the caller was dropped, or the write failed in a way that may have
//! landed) invalidate every key, on a task of their own; [`WriteLeases::unchanged`] gives them
//! back when the write certainly changed nothing.

use super::keys::CacheKey;
use super::local::LocalLease;
use super::redis::RedisLease;
use super::Cache;
use bytes::Bytes;
use std::sync::Arc;

/// One key's leases.
#[derive(Debug)]
struct Leased {
    key: CacheKey,
    local: Option<LocalLease>,
    redis: Option<RedisLease>,
}

/// The leases of one write, taken before it touches the table.
#[derive(Debug)]
pub struct WriteLeases {
    cache: Arc<Cache>,
    event: &'static str,
    through: Vec<Leased>,
    stale: Vec<CacheKey>,
    settled: bool,
}

impl Cache {
    /// Takes the leases of a write that will know the new values of `through` and makes `stale`
    /// stale; `event` names it in the statistics. Call before the table write.
    pub async fn begin_write(
        self: &Arc<Self>,
        event: &'static str,
        through: Vec<CacheKey>,
        stale: Vec<CacheKey>,
    ) -> WriteLeases {
        let mut leased = Vec::with_capacity(through.len());
        for key in through {
            let local = self.local.as_ref().map(|l| l.begin_fill(&key));
            let redis = self.redis_begin(&key).await;
            leased.push(Leased { key, local, redis });
        }
        WriteLeases {
            cache: Arc::clone(self),
            event,
            through: leased,
            stale,
            settled: false,
        }
    }
}

impl WriteLeases {
    /// The write landed with these `values` (encoded, in the order of the keys written through).
    /// Stores each under its lease (or invalidates it), invalidates the stale keys and tells the
    /// other instances; finishes whether or not the caller still waits.
    pub async fn landed(mut self, values: Vec<Bytes>) {
        self.settled = true;
        let cache = Arc::clone(&self.cache);
        let (event, through, stale) = (
            self.event,
            std::mem::take(&mut self.through),
            std::mem::take(&mut self.stale),
        );
        let audited: Vec<CacheKey> = through
            .iter()
            .map(|leased| leased.key.clone())
            .chain(stale.iter().cloned())
            .collect();
        let task = tokio::spawn(async move {
            let mut invalidate = stale;
            let mut written = Vec::new();
            for (leased, bytes) in through.into_iter().zip(values) {
                // A read that starts now must not join a fill that began before the write.
                cache.flights.forget(&leased.key.text);
                let in_redis = match (&cache.redis, leased.redis) {
                    (None, _) => None,
                    (Some(_), None) => Some(false),
                    (Some(_), lease) => Some(
                        cache
                            .fill_redis(&leased.key, lease, &bytes)
                            .await
                            .unwrap_or(false),
                    ),
                };
                if in_redis == Some(false) {
                    // Refused, failed, or never leased: fall back to invalidation.
                    if let (Some(local), Some(lease)) = (&cache.local, leased.local) {
                        local.abandon_fill(&leased.key, lease);
                    }
                    invalidate.push(leased.key);
                    continue;
                }
                let ttl = cache.ttl_of(leased.key.kind, &bytes);
                let local = cache.fill_local(&leased.key, leased.local, &bytes, ttl);
                if local == Some(false) {
                    // A newer local fill took the lease; what it read may predate Redis's value.
                    cache.drop_local(std::iter::once(&*leased.key.text));
                }
                cache.record_fill([in_redis, local]);
                written.push(leased.key.text.clone());
            }
            cache.invalidate(event, &invalidate).await;
            if let Some(publisher) = &cache.publisher {
                publisher.publish(written);
            }
            cache.audit_written(&audited);
        });
        if let Err(error) = task.await {
            tracing::error!(%error, "a write-through task failed");
        }
    }

    /// The write certainly changed nothing (refused before writing, or its condition failed):
    /// gives the leases back.
    pub fn unchanged(mut self) {
        self.settled = true;
        if let Some(local) = &self.cache.local {
            for leased in std::mem::take(&mut self.through) {
                if let Some(lease) = leased.local {
                    local.abandon_fill(&leased.key, lease);
                }
            }
        }
        // A Redis lease expires by itself; until then it only refuses fills of the old value.
    }
}

impl Drop for WriteLeases {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropped before the outcome was known: the write may have landed. Invalidate it all.
        let mut keys: Vec<CacheKey> = std::mem::take(&mut self.through)
            .into_iter()
            .map(|leased| leased.key)
            .collect();
        keys.append(&mut self.stale);
        let (cache, event) = (Arc::clone(&self.cache), self.event);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { cache.invalidate(event, &keys).await });
        }
    }
}
