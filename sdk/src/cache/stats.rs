//! What the cache has done: the statistics `stats()` answers, the counters behind them, and the
//! handles of the hot-path metrics (looked up once: a lookup by name per hit would cost more than
//! the hit itself).

use super::keys::CacheKind;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A cache tier, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Local,
    Redis,
}

impl Tier {
    /// Both tiers.
    pub const ALL: [Tier; 2] = [Tier::Local, Tier::Redis];

    /// A short, stable name for statistics and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Redis => "redis",
        }
    }
}

/// What the cache has done since the store started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    /// `(tier, kind) -> (hits, misses)`, for the tiers the strategy has.
    pub lookups: BTreeMap<(Tier, CacheKind), (u64, u64)>,
    /// Values stored after a miss or a write.
    pub fills: u64,
    /// Fills refused because an invalidation came between their read and their write.
    pub fills_refused: u64,
    /// Keys invalidated, by the event that made them stale.
    pub invalidations: BTreeMap<&'static str, u64>,
    /// Cached values that did not decode (counted as misses, and deleted).
    pub decode_failures: u64,
    /// Redis errors and timeouts.
    pub redis_errors: u64,
    /// Whether the Redis tier is unreachable or still replaying lost invalidations.
    pub degraded: bool,
    /// Entries and weight (bytes) of the local tier.
    pub local_entries: u64,
    pub local_weight_bytes: u64,
    /// Times the whole local tier was dropped because the invalidation subscription broke.
    pub local_purges: u64,
    /// Invalidation messages sent to and received from other instances.
    pub messages_published: u64,
    pub messages_received: u64,
    /// Fills in progress (single flights), and leases the local tier holds for them: both
    /// return to 0 once the fills in progress end, whether or not their callers still wait.
    pub flights_in_progress: u64,
    pub local_leases_held: u64,
    /// Checks of the consistency auditor: entries that agreed with the table (or were absent),
    /// and entries still disagreeing with an unchanged table past the pub/sub window.
    pub consistency_checks_consistent: u64,
    pub consistency_checks_stale: u64,
    /// Checks of the auditor running now (each ends within a few pub/sub windows).
    pub consistency_checks_running: u64,
}

impl CacheStats {
    /// Hits of `tier` for `kind`.
    pub fn hits(&self, tier: Tier, kind: CacheKind) -> u64 {
        self.lookups.get(&(tier, kind)).map_or(0, |(hits, _)| *hits)
    }

    /// Misses of `tier` for `kind`.
    pub fn misses(&self, tier: Tier, kind: CacheKind) -> u64 {
        self.lookups
            .get(&(tier, kind))
            .map_or(0, |(_, misses)| *misses)
    }

    /// hits / (hits + misses), or `None` before the first lookup.
    pub fn hit_ratio(&self, tier: Tier, kind: CacheKind) -> Option<f64> {
        let (hits, misses) = (self.hits(tier, kind), self.misses(tier, kind));
        (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    /// [tier][kind][hit = 0, miss = 1]
    pub(super) lookups: [[[AtomicU64; 2]; 3]; 2],
    pub(super) fills: AtomicU64,
    pub(super) fills_refused: AtomicU64,
    pub(super) decode_failures: AtomicU64,
    pub(super) local_purges: AtomicU64,
    pub(super) messages_received: AtomicU64,
    pub(super) invalidations: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub(super) fn lookup(&self, metrics: &Metrics, tier: Tier, kind: CacheKind, hit: bool) {
        self.lookups[tier as usize][kind.index()][usize::from(!hit)]
            .fetch_add(1, Ordering::Relaxed);
        metrics.lookups[tier as usize][kind.index()].requests[usize::from(!hit)].increment(1);
    }

    pub(super) fn fill(&self, metrics: &Metrics, landed: bool) {
        let counter = if landed {
            &self.fills
        } else {
            &self.fills_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics.fills[usize::from(!landed)].increment(1);
    }
}

/// Handles of the hot-path metrics, looked up once (a lookup by name per hit would cost more
/// than the hit itself).
pub(super) struct Metrics {
    pub(super) lookups: [[LookupMetrics; 3]; 2],
    /// [stored, refused]
    pub(super) fills: [metrics::Counter; 2],
    pub(super) local_entries: metrics::Gauge,
    pub(super) local_weight: metrics::Gauge,
}

pub(super) struct LookupMetrics {
    /// [hit, miss] (the hit ratio is PromQL's: deploy/prometheus/rules.yml)
    pub(super) requests: [metrics::Counter; 2],
}

impl Metrics {
    pub(super) fn new() -> Self {
        use crate::metrics::{
            CACHE_FILLS, CACHE_LOCAL_ENTRIES, CACHE_LOCAL_WEIGHT, CACHE_REQUESTS,
        };
        let lookup = |tier: Tier, kind: CacheKind| {
            LookupMetrics {
            requests: ["hit", "miss"].map(|result| {
                metrics::counter!(CACHE_REQUESTS, "tier" => tier.as_str(), "kind" => kind.as_str(), "result" => result)
            }),
        }
        };
        Self {
            lookups: Tier::ALL.map(|tier| CacheKind::ALL.map(|kind| lookup(tier, kind))),
            fills: ["stored", "refused"]
                .map(|result| metrics::counter!(CACHE_FILLS, "result" => result)),
            local_entries: metrics::gauge!(CACHE_LOCAL_ENTRIES),
            local_weight: metrics::gauge!(CACHE_LOCAL_WEIGHT),
        }
    }
}
