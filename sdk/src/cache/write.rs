//! Writes through the cache: a write that knows the new value of a key (the goal it wrote, the
//! progress it computed) puts it in every tier instead of dropping it, so the next read hits.
//!
//! The protocol is the fill's: the write takes a lease on each key in every tier *before* it
//! writes the table, and the value lands only while its lease holds. Any fill or write that began
//! after it took a newer lease, so a write-through can never overwrite a newer value; a refused
//! write-through falls back to invalidation (value and lease deleted), which also refuses any
//! older fill still in flight. Other instances drop their local copies of every key (pub/sub)
//! and read the new value from Redis.
//!
//! A *patched* key (the active list) is one whose new value is its cached value with the written
//! goal put in: the write reads the value under its lease, patches it and stores it back under
//! the same lease, for no longer than the value it patched had left, so a patch never extends how
//! long a change made elsewhere (the existing handlers) can go unseen. The lease makes the
//! read-patch-store safe: whatever changed the value after the lease was taken took a newer lease
//! or deleted it, and the store is refused. With no cached value there is nothing to patch, and
//! the key is invalidated.
//!
//! Patching is for the `local` strategy only. With Redis, a value can be stale for a while after
//! all: while another instance's Redis calls fail, its invalidation reaches Redis only at its
//! replay. An invalidation by a later write removes such a value (the next read goes to the
//! table); a patch would build on it and store it again, so with a Redis tier patched keys are
//! invalidated instead. (The cancellation harness's auditor caught it: stale active lists in the
//! local tier of the other instance during Redis faults.) Keys the write makes stale without
//! knowing their new value are invalidated as before.
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

/// The new value of a patched key, made from its cached value (`None`: drop the key instead).
pub type Patch = Box<dyn FnOnce(&Bytes) -> Option<Bytes> + Send>;

/// The leases of one write, taken before it touches the table.
#[derive(Debug)]
pub struct WriteLeases {
    cache: Arc<Cache>,
    event: &'static str,
    through: Vec<Leased>,
    patched: Vec<Leased>,
    stale: Vec<CacheKey>,
    settled: bool,
}

impl Cache {
    /// Takes the leases of a write that will know the new values of `keys.through`, patch
    /// `keys.patched` and make `keys.stale` stale; `event` names it in the statistics. Call
    /// before the table write.
    pub async fn begin_write(
        self: &Arc<Self>,
        event: &'static str,
        keys: crate::events::WrittenKeys,
    ) -> WriteLeases {
        let mut through = Vec::with_capacity(keys.through.len());
        for key in keys.through {
            through.push(self.lease(key).await);
        }
        let mut stale = keys.stale;
        let mut patched = Vec::with_capacity(keys.patched.len());
        for key in keys.patched {
            if self.redis.is_some() {
                stale.push(key);
            } else {
                patched.push(self.lease(key).await);
            }
        }
        WriteLeases {
            cache: Arc::clone(self),
            event,
            through,
            patched,
            stale,
            settled: false,
        }
    }

    async fn lease(&self, key: CacheKey) -> Leased {
        let local = self.local.as_ref().map(|l| l.begin_fill(&key));
        let redis = self.redis_begin(&key).await;
        Leased { key, local, redis }
    }

    /// Stores a write's value of one key under its leases, for `ttl` at most (exactly, for a
    /// `patch`: it keeps what the value it replaces had left); whether it landed (when it did
    /// not, the local lease is given back and the caller invalidates the key).
    async fn store_leased(
        &self,
        leased: Leased,
        bytes: &Bytes,
        ttl: std::time::Duration,
        patch: bool,
    ) -> bool {
        // A read that starts now must not join a fill that began before the write.
        self.flights.forget(&leased.key.text);
        let in_redis = match (&self.redis, leased.redis) {
            (None, _) => None,
            (Some(_), None) => Some(false),
            (Some(_), lease) => Some(
                self.fill_redis(&leased.key, lease, bytes, ttl)
                    .await
                    .unwrap_or(false),
            ),
        };
        if in_redis == Some(false) {
            // Refused, failed, or never leased: fall back to invalidation.
            if let (Some(local), Some(lease)) = (&self.local, leased.local) {
                local.abandon_fill(&leased.key, lease);
            }
            return false;
        }
        let local = if patch {
            self.replace_local(&leased.key, leased.local, bytes, ttl)
        } else {
            self.fill_local(&leased.key, leased.local, bytes, ttl)
        };
        if local == Some(false) {
            // A newer local fill took the lease; what it read may predate Redis's value.
            self.drop_local(std::iter::once(&*leased.key.text));
        }
        self.record_fill([in_redis, local]);
        true
    }
}

impl WriteLeases {
    /// The write landed with these `values` (encoded, in the order of the keys written through)
    /// and `patches` (in the order of the patched keys). Stores each under its lease (or
    /// invalidates it), invalidates the stale keys and tells the other instances; finishes
    /// whether or not the caller still waits.
    pub async fn landed(mut self, values: Vec<Bytes>, patches: Vec<Patch>) {
        self.settled = true;
        let cache = Arc::clone(&self.cache);
        let (event, through, patched, stale) = (
            self.event,
            std::mem::take(&mut self.through),
            std::mem::take(&mut self.patched),
            std::mem::take(&mut self.stale),
        );
        let audited: Vec<CacheKey> = through
            .iter()
            .chain(&patched)
            .map(|leased| leased.key.clone())
            .chain(stale.iter().cloned())
            .collect();
        let task = tokio::spawn(async move {
            let mut invalidate = stale;
            let mut written = Vec::new();
            for (leased, bytes) in through.into_iter().zip(values) {
                let key = leased.key.clone();
                let ttl = cache.ttl_of(key.kind, &bytes);
                if cache.store_leased(leased, &bytes, ttl, false).await {
                    written.push(key.text);
                } else {
                    invalidate.push(key);
                }
            }
            let mut patches = patches.into_iter();
            for leased in patched {
                let key = leased.key.clone();
                let patch = patches.next();
                // Patches are for the `local` strategy only: the local copy is the value.
                let new = match (patch, cache.peek_local(&key)) {
                    (Some(patch), Some((base, left))) => patch(&base).map(|bytes| (bytes, left)),
                    _ => None,
                };
                let stored = match new {
                    Some((bytes, left)) => cache.store_leased(leased, &bytes, left, true).await,
                    None => {
                        if let (Some(local), Some(lease)) = (&cache.local, leased.local) {
                            local.abandon_fill(&key, lease);
                        }
                        false
                    }
                };
                if stored {
                    written.push(key.text);
                } else {
                    invalidate.push(key);
                }
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

    /// Makes `key` stale too (before the table write: a write that turned out to touch it).
    pub fn also_stale(&mut self, key: CacheKey) {
        if !self.stale.iter().any(|k| k.text == key.text) {
            self.stale.push(key);
        }
    }

    /// The write certainly changed nothing (refused before writing, or its condition failed):
    /// gives the leases back.
    pub fn unchanged(mut self) {
        self.settled = true;
        if let Some(local) = &self.cache.local {
            let mut leases = std::mem::take(&mut self.through);
            leases.append(&mut self.patched);
            for leased in leases {
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
            .chain(std::mem::take(&mut self.patched))
            .map(|leased| leased.key)
            .collect();
        keys.append(&mut self.stale);
        let (cache, event) = (Arc::clone(&self.cache), self.event);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { cache.invalidate(event, &keys).await });
        }
    }
}
