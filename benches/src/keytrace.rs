//! The trace of local-tier key accesses of a run, as the replayer sees them, for Bélády.
//!
//! Each operation knows which cache keys it looks up (`cache/keys.rs`) and which its writes make
//! stale (`events::stale_keys`); it also knows the value it got back, hence the entry's weight
//! as the local tier counts it (key + encoded value + a fixed overhead). A `get_progress` miss
//! reads the goal at the source, not through the goal cache, so it adds no lookup.
//!
//! Events are appended when an operation completes, all of an operation's events together, at the
//! operation's start time. Operations of one user never overlap, so every key's events are in
//! their true order; only the interleaving of different users' keys (which matters for capacity,
//! not for validity) is approximate.

use goalstore::cache::keys::{CacheKey, CacheKind};
use goalstore::CacheConfig;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::belady::Event;

/// Fixed weight of a local entry beside its key and value.
pub use goalstore::cache::local::ENTRY_OVERHEAD;

/// One thing an operation did to the cache, before it is placed in the trace.
#[derive(Debug, Clone)]
pub enum Touch {
    /// Looked `key` up; the value weighs `value_bytes` encoded.
    Access { key: CacheKey, value_bytes: usize },
    /// Looked `key` up, with a value whose size the replayer does not see (the goal a write
    /// starts from): weighs what the key last weighed.
    AccessAgain { key: CacheKey },
    /// Wrote the value through (no lookup).
    Put { key: CacheKey, value_bytes: usize },
    /// Wrote a new version of `key` through whose size the replayer does not see (the goal a
    /// logged activity rewrote): weighs what the key last weighed.
    PutAgain { key: CacheKey },
    /// Made `key` stale.
    Invalidate { key: CacheKey },
}

/// The trace being recorded.
#[derive(Debug)]
pub struct KeyTrace {
    ids: HashMap<Arc<str>, u32>,
    /// Latest weight of each key.
    sizes: Vec<u32>,
    kinds: Vec<CacheKind>,
    events: Vec<Event>,
    ttls: [Duration; 3],
}

/// A summary of a recorded trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TraceSummary {
    pub events: u64,
    pub accesses: u64,
    pub distinct_keys: u64,
    /// Sum over distinct keys of their largest weight: what caching everything would take.
    pub working_set_bytes: u64,
}

impl KeyTrace {
    /// An empty trace; TTLs come from `config` (without jitter).
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            ids: HashMap::new(),
            sizes: Vec::new(),
            kinds: Vec::new(),
            events: Vec::new(),
            ttls: CacheKind::ALL.map(|kind| config.ttl(kind)),
        }
    }

    fn intern(&mut self, key: &CacheKey) -> u32 {
        if let Some(id) = self.ids.get(&key.text) {
            return *id;
        }
        let id = self.sizes.len() as u32;
        self.ids.insert(key.text.clone(), id);
        self.sizes.push(0);
        self.kinds.push(key.kind);
        id
    }

    fn ttl(&self, kind: CacheKind) -> Duration {
        let index = CacheKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        self.ttls[index]
    }

    fn weight(key: &CacheKey, value_bytes: usize) -> u32 {
        (key.text.len() + value_bytes) as u32 + ENTRY_OVERHEAD
    }

    /// Appends what one operation did, at `at` since the run began.
    pub fn record(&mut self, at: Duration, touches: Vec<Touch>) {
        for touch in touches {
            let (key, value_bytes, put) = match touch {
                Touch::Access { key, value_bytes } => (key, Some(value_bytes), false),
                Touch::AccessAgain { key } => (key, None, false),
                Touch::Put { key, value_bytes } => (key, Some(value_bytes), true),
                Touch::PutAgain { key } => (key, None, true),
                Touch::Invalidate { key } => {
                    let id = self.intern(&key);
                    self.events.push(Event::Invalidate { key: id });
                    continue;
                }
            };
            let id = self.intern(&key);
            // A size the replayer does not see weighs what the key last weighed.
            let size = match value_bytes {
                Some(value_bytes) => {
                    let size = Self::weight(&key, value_bytes);
                    self.sizes[id as usize] = self.sizes[id as usize].max(size);
                    size
                }
                None => self.sizes[id as usize].max(Self::weight(&key, 0)),
            };
            let ttl = self.ttl(key.kind);
            self.events.push(if put {
                Event::Put {
                    key: id,
                    size,
                    at,
                    ttl,
                }
            } else {
                Event::Access {
                    key: id,
                    size,
                    at,
                    ttl,
                }
            });
        }
    }

    /// The events recorded.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Counts of what was recorded from event `from` on (distinct keys and working set: of the
    /// whole trace).
    pub fn summary(&self, from: usize) -> TraceSummary {
        let measured = &self.events[from.min(self.events.len())..];
        TraceSummary {
            events: measured.len() as u64,
            accesses: measured
                .iter()
                .filter(|e| matches!(e, Event::Access { .. }))
                .count() as u64,
            distinct_keys: self.sizes.len() as u64,
            working_set_bytes: self.sizes.iter().map(|s| u64::from(*s)).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goalstore::cache::keys::KeySpace;
    use goalstore::keys::{GoalId, UserId};

    #[test]
    fn records_weights_and_ttls() {
        let config = CacheConfig::default();
        let keys = KeySpace::new("t").expect("valid namespace");
        let user = UserId::parse("u1").expect("valid");
        let goal = GoalId::parse("g1").expect("valid");
        let mut trace = KeyTrace::new(&config);
        let goal_key = keys.goal(&user, &goal);
        trace.record(
            Duration::from_secs(1),
            vec![
                Touch::Access {
                    key: goal_key.clone(),
                    value_bytes: 100,
                },
                Touch::Access {
                    key: goal_key.clone(),
                    value_bytes: 80,
                },
                Touch::Invalidate {
                    key: keys.active_goals(&user),
                },
            ],
        );
        let weight = goal_key.text.len() as u32 + 100 + ENTRY_OVERHEAD;
        let events = trace.events();
        assert!(
            matches!(events[0], Event::Access { key: 0, size, ttl, .. } if size == weight && ttl == config.ttl_goal)
        );
        assert!(matches!(events[2], Event::Invalidate { key: 1 }));
        let summary = trace.summary(0);
        assert_eq!(
            (summary.events, summary.accesses, summary.distinct_keys),
            (3, 2, 2)
        );
        assert_eq!(summary.working_set_bytes, u64::from(weight));
    }
}
