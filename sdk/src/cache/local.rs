//! The local tier: an in-process cache (moka), bounded by weight in bytes, with per-entry TTLs.
//!
//! Values are kept encoded, so an entry costs about its encoded size. TTLs are jittered (up to
//! 10% shorter, never longer) so entries filled together do not expire together, and a local
//! entry never outlives the TTL the other tier would give it.
//!
//! Expiry is checked against tokio's clock on every read (moka's own clock only reclaims memory),
//! so tests can move time with a paused clock.
//!
//! No stale fill: a fill takes a lease (a token) before it reads the source, and its value lands
//! only if the lease is still there. An invalidation removes the lease together with the entry,
//! under the same lock, so a fill that read before an invalidation can never land after it.

use super::keys::CacheKey;
use bytes::Bytes;
use rand::RngExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Fixed cost of an entry beside its key and value bytes (moka's nodes, deques and timer wheel,
/// the `Bytes` handle and its header, the key's `Arc`, allocator rounding), counted into the
/// weight so that the configured bound is close to the memory the tier really takes. Measured
/// (`cargo bench -p goalstore-bench --bench micro -- local_tier`): a full tier of goals grew the
/// resident set by key + value + ~510 bytes per entry with the system allocator and ~670 with
/// mimalloc.
pub const ENTRY_OVERHEAD: u32 = 512;
/// Lease shards: fills and invalidations of different keys rarely wait on each other.
const LEASE_SHARDS: usize = 64;

/// A lease on a key, taken before reading the source; see [`LocalTier::begin_fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLease(u64);

#[derive(Debug, Clone)]
struct Entry {
    bytes: Bytes,
    ttl: Duration,
    expires_at: Instant,
}

struct EntryExpiry;

impl moka::Expiry<Arc<str>, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        value: &Entry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The in-process tier.
pub struct LocalTier {
    entries: moka::sync::Cache<Arc<str>, Entry>,
    leases: Vec<Mutex<HashMap<Arc<str>, u64>>>,
    next_lease: AtomicU64,
    jitter: f64,
}

impl std::fmt::Debug for LocalTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTier")
            .field("entries", &self.entries.entry_count())
            .field("weight", &self.entries.weighted_size())
            .finish()
    }
}

impl LocalTier {
    /// A tier holding at most `capacity_bytes` (keys, values and overhead), with TTLs shortened
    /// by a random share of up to `jitter` (0.0-1.0).
    pub fn new(capacity_bytes: u64, jitter: f64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &Arc<str>, entry: &Entry| {
                let size = key.len() + entry.bytes.len();
                u32::try_from(size)
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .expire_after(EntryExpiry)
            .build();
        Self {
            entries,
            leases: (0..LEASE_SHARDS).map(|_| Mutex::default()).collect(),
            next_lease: AtomicU64::new(1),
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u64>> {
        let index = fxhash(key) % LEASE_SHARDS;
        self.leases[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key`, unless absent or expired.
    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        let entry = self.entries.get(&key.text)?;
        if entry.expires_at <= Instant::now() {
            self.entries.invalidate(&key.text);
            return None;
        }
        Some(entry.bytes)
    }

    /// The value under `key` and how long it has left (for the consistency auditor and tests).
    pub fn peek(&self, key: &CacheKey) -> Option<(Bytes, Duration)> {
        let entry = self.entries.get(&key.text)?;
        let left = entry.expires_at.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some((entry.bytes, left))
    }

    /// Leases taken and not yet used or given back.
    pub fn leases_held(&self) -> usize {
        self.leases
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Takes a lease on `key` before the source is read. A later lease on the same key replaces it.
    pub fn begin_fill(&self, key: &CacheKey) -> LocalLease {
        let token = self.next_lease.fetch_add(1, Ordering::Relaxed);
        self.shard(&key.text).insert(key.text.clone(), token);
        LocalLease(token)
    }

    /// Stores `bytes` under `key` for `ttl` (jittered) if the lease still holds; returns whether
    /// it landed. The lease is used up either way.
    pub fn complete_fill(
        &self,
        key: &CacheKey,
        lease: LocalLease,
        bytes: Bytes,
        ttl: Duration,
    ) -> bool {
        self.complete_replacement(key, lease, bytes, self.jittered(ttl))
    }

    /// [`Self::complete_fill`] for exactly `ttl`: a value that replaces one in place (a patch)
    /// keeps the lifetime the old one had left, already jittered.
    pub fn complete_replacement(
        &self,
        key: &CacheKey,
        lease: LocalLease,
        bytes: Bytes,
        ttl: Duration,
    ) -> bool {
        let mut leases = self.shard(&key.text);
        if leases.get(&key.text) != Some(&lease.0) {
            return false;
        }
        leases.remove(&key.text);
        self.entries.insert(
            key.text.clone(),
            Entry {
                bytes,
                ttl,
                expires_at: Instant::now() + ttl,
            },
        );
        true
    }

    /// Gives a lease back without filling (the source read failed).
    pub fn abandon_fill(&self, key: &CacheKey, lease: LocalLease) {
        let mut leases = self.shard(&key.text);
        if leases.get(&key.text) == Some(&lease.0) {
            leases.remove(&key.text);
        }
    }

    /// Drops the entry and any fill in progress for `key`.
    pub fn invalidate(&self, key: &str) {
        let mut leases = self.shard(key);
        leases.remove(key);
        self.entries.invalidate(key);
    }

    /// Drops every entry and every fill in progress.
    pub fn clear(&self) {
        let guards: Vec<_> = self
            .leases
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        self.entries.invalidate_all();
        for mut guard in guards {
            guard.clear();
        }
    }

    /// Entries and their summed weight in bytes (after pending maintenance).
    pub fn size(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// Entries and weight without waiting for pending maintenance (cheap; may lag slightly).
    pub fn approximate_size(&self) -> (u64, u64) {
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// `ttl` shortened by a random part of the configured jitter.
    pub fn jittered(&self, ttl: Duration) -> Duration {
        if self.jitter == 0.0 {
            return ttl;
        }
        let cut: f64 = rand::rng().random_range(0.0..=self.jitter);
        ttl.mul_f64(1.0 - cut)
    }
}

/// FNV-1a: a small, fixed hash to pick a lease shard.
fn fxhash(text: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::keys::CacheKind;

    fn key(text: &str) -> CacheKey {
        CacheKey {
            kind: CacheKind::Goal,
            text: text.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_tokio_time() {
        let tier = LocalTier::new(1 << 20, 0.0);
        let k = key("a");
        let lease = tier.begin_fill(&k);
        assert!(tier.complete_fill(
            &k,
            lease,
            Bytes::from_static(b"v"),
            Duration::from_secs(300)
        ));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(tier.get(&k), Some(Bytes::from_static(b"v")));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(tier.get(&k), None);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_only_shortens() {
        let tier = LocalTier::new(1 << 20, 0.1);
        let keys: Vec<CacheKey> = (0..200).map(|i| key(&i.to_string())).collect();
        for k in &keys {
            let lease = tier.begin_fill(k);
            tier.complete_fill(k, lease, Bytes::from_static(b"v"), Duration::from_secs(100));
        }
        tokio::time::advance(Duration::from_secs(89)).await;
        assert!(
            keys.iter().all(|k| tier.get(k).is_some()),
            "none before 90%"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        let alive = keys.iter().filter(|k| tier.get(k).is_some()).count();
        assert!(alive > 0 && alive < 200, "spread out: {alive} alive at 95%");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(keys.iter().all(|k| tier.get(k).is_none()), "none past 100%");
    }

    #[test]
    fn an_invalidation_defeats_the_fill_in_progress() {
        let tier = LocalTier::new(1 << 20, 0.0);
        let k = key("a");
        let lease = tier.begin_fill(&k);
        tier.invalidate(&k.text);
        assert!(!tier.complete_fill(
            &k,
            lease,
            Bytes::from_static(b"old"),
            Duration::from_secs(60)
        ));
        assert_eq!(tier.get(&k), None);
        // A newer fill replaces an older one's lease.
        let first = tier.begin_fill(&k);
        let second = tier.begin_fill(&k);
        assert!(!tier.complete_fill(&k, first, Bytes::from_static(b"1"), Duration::from_secs(60)));
        assert!(tier.complete_fill(
            &k,
            second,
            Bytes::from_static(b"2"),
            Duration::from_secs(60)
        ));
        let lease = tier.begin_fill(&k);
        tier.clear();
        assert!(!tier.complete_fill(&k, lease, Bytes::from_static(b"3"), Duration::from_secs(60)));
        assert_eq!(tier.get(&k), None);
    }

    #[test]
    fn weight_is_bounded() {
        let tier = LocalTier::new(64 * 1024, 0.0);
        for i in 0..1000 {
            let k = key(&format!("key-{i}"));
            let lease = tier.begin_fill(&k);
            tier.complete_fill(
                &k,
                lease,
                Bytes::from(vec![0u8; 500]),
                Duration::from_secs(60),
            );
        }
        let (entries, weight) = tier.size();
        assert!(weight <= 64 * 1024, "{weight}");
        assert!(entries > 50 && entries < 1000, "{entries}");
    }
}
