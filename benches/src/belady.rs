//! The offline optimum of a cache on a recorded trace of key accesses: Bélády's MIN, made aware
//! of sizes, invalidations and TTLs.
//!
//! A trace is what the replayer saw the store do with its local tier: lookups of keys (with the
//! size the entry would weigh), invalidations (a write made the key stale) and write-throughs
//! (the store put a fresh value without a lookup). The simulation knows the whole future:
//!
//! - an entry is only worth keeping until its next lookup, and only if that lookup comes before
//!   the key's next invalidation or write-through and before the entry expires (its TTL counts
//!   from when it was filled); otherwise it is dead and is dropped at once;
//! - on a miss (or a write-through) the value may be cached; when the bytes exceed the capacity,
//!   the entries whose next use is furthest in the future are evicted, the new one included (so
//!   the optimum may decline to cache a value, as an admission policy may).
//!
//! For entries of one size without TTLs this is exactly Bélády's MIN, the optimum. With sizes it
//! is the usual size-aware heuristic (the exact optimum with sizes is NP-hard), and with TTLs it
//! is close but not always optimal (re-filling an entry restarts its TTL, which MIN does not
//! weigh). So "achieved / optimum" is a ratio to a strong offline policy, not a proven bound.
//!
//! [`lru`] replays the same trace under least-recently-used, as a reference point between the two.

use std::collections::BTreeSet;
use std::time::Duration;

/// One event of a recorded trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// A lookup of `key`; on a miss the value (of `size` bytes) is filled, with `ttl`.
    Access {
        key: u32,
        size: u32,
        at: Duration,
        ttl: Duration,
    },
    /// A value put without a lookup (write-through): cached if worth it, not counted.
    Put {
        key: u32,
        size: u32,
        at: Duration,
        ttl: Duration,
    },
    /// The key's value changed: whatever is cached for it is stale.
    Invalidate { key: u32 },
}

impl Event {
    fn key(&self) -> u32 {
        match self {
            Event::Access { key, .. } | Event::Put { key, .. } | Event::Invalidate { key } => *key,
        }
    }
}

/// What the optimum achieves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub accesses: u64,
    pub hits: u64,
}

impl Outcome {
    /// hits / accesses (0 without accesses).
    pub fn hit_ratio(&self) -> f64 {
        if self.accesses == 0 {
            0.0
        } else {
            self.hits as f64 / self.accesses as f64
        }
    }
}

const NEVER: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    expires_at: Duration,
    next_use: usize,
}

/// The optimum of a cache of `capacity` bytes on `events`, counting only the accesses from
/// index `measure_from` on (the events before warm the cache up).
pub fn optimum(events: &[Event], capacity: u64, measure_from: usize) -> Outcome {
    let keys = events
        .iter()
        .map(|e| e.key() as usize + 1)
        .max()
        .unwrap_or(0);
    // For each event: the index of the key's next access, and of its next invalidation or put.
    let mut next_access = vec![NEVER; events.len()];
    let mut next_barrier = vec![NEVER; events.len()];
    let mut last_access = vec![NEVER; keys];
    let mut last_barrier = vec![NEVER; keys];
    for (index, event) in events.iter().enumerate().rev() {
        let key = event.key() as usize;
        next_access[index] = last_access[key];
        next_barrier[index] = last_barrier[key];
        match event {
            Event::Access { .. } => last_access[key] = index,
            Event::Put { .. } | Event::Invalidate { .. } => last_barrier[key] = index,
        }
    }
    let time_of = |index: usize| match events[index] {
        Event::Access { at, .. } | Event::Put { at, .. } => at,
        Event::Invalidate { .. } => Duration::ZERO,
    };
    // The index of the entry's next useful access, or NEVER when it will be dead by then.
    let useful_next = |index: usize, expires_at: Duration| {
        let next = next_access[index];
        if next != NEVER && next < next_barrier[index] && time_of(next) < expires_at {
            next
        } else {
            NEVER
        }
    };

    let mut cached: Vec<Option<Entry>> = vec![None; keys];
    let mut by_next_use: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut used: u64 = 0;
    let mut outcome = Outcome::default();
    let remove = |cached: &mut Vec<Option<Entry>>,
                  by_next_use: &mut BTreeSet<(usize, u32)>,
                  used: &mut u64,
                  key: u32| {
        if let Some(entry) = cached[key as usize].take() {
            by_next_use.remove(&(entry.next_use, key));
            *used -= entry.size;
        }
    };
    for (index, event) in events.iter().enumerate() {
        let (key, size, at, ttl, is_access) = match *event {
            Event::Invalidate { key } => {
                remove(&mut cached, &mut by_next_use, &mut used, key);
                continue;
            }
            Event::Access { key, size, at, ttl } => (key, size, at, ttl, true),
            Event::Put { key, size, at, ttl } => (key, size, at, ttl, false),
        };
        if is_access {
            let measured = index >= measure_from;
            outcome.accesses += u64::from(measured);
            if let Some(entry) = cached[key as usize] {
                if at < entry.expires_at {
                    outcome.hits += u64::from(measured);
                    remove(&mut cached, &mut by_next_use, &mut used, key);
                    let next_use = useful_next(index, entry.expires_at);
                    if next_use != NEVER {
                        let entry = Entry { next_use, ..entry };
                        cached[key as usize] = Some(entry);
                        by_next_use.insert((next_use, key));
                        used += entry.size;
                    }
                    continue;
                }
            }
        }
        // A miss or a write-through: a fresh value, cached if it will be used in time.
        remove(&mut cached, &mut by_next_use, &mut used, key);
        let expires_at = at + ttl;
        let next_use = useful_next(index, expires_at);
        if next_use == NEVER || u64::from(size) > capacity {
            continue;
        }
        cached[key as usize] = Some(Entry {
            size: u64::from(size),
            expires_at,
            next_use,
        });
        by_next_use.insert((next_use, key));
        used += u64::from(size);
        while used > capacity {
            let Some(&(_, victim)) = by_next_use.last() else {
                break;
            };
            remove(&mut cached, &mut by_next_use, &mut used, victim);
        }
    }
    outcome
}

/// Least-recently-used on the same trace, for reference: the same capacity, sizes, TTLs and
/// invalidations, every miss and write-through cached, the least recently used entries evicted.
pub fn lru(events: &[Event], capacity: u64, measure_from: usize) -> Outcome {
    let keys = events
        .iter()
        .map(|e| e.key() as usize + 1)
        .max()
        .unwrap_or(0);
    // key -> (size, expires_at, last use); and last use -> key, oldest first.
    let mut cached: Vec<Option<(u64, Duration, usize)>> = vec![None; keys];
    let mut by_recency: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut used = 0u64;
    let mut outcome = Outcome::default();
    for (index, event) in events.iter().enumerate() {
        let key = event.key();
        let present = cached[key as usize];
        if let Some((size, _, last)) = present {
            by_recency.remove(&(last, key));
            used -= size;
            cached[key as usize] = None;
        }
        let (size, at, ttl) = match *event {
            Event::Invalidate { .. } => continue,
            Event::Access { size, at, ttl, .. } => {
                let measured = index >= measure_from;
                outcome.accesses += u64::from(measured);
                if let Some((size, expires_at, _)) = present.filter(|(_, e, _)| at < *e) {
                    outcome.hits += u64::from(measured);
                    cached[key as usize] = Some((size, expires_at, index));
                    by_recency.insert((index, key));
                    used += size;
                    continue;
                }
                (size, at, ttl)
            }
            Event::Put { size, at, ttl, .. } => (size, at, ttl),
        };
        let size = u64::from(size);
        if size > capacity {
            continue;
        }
        cached[key as usize] = Some((size, at + ttl, index));
        by_recency.insert((index, key));
        used += size;
        while used > capacity {
            let Some((last, victim)) = by_recency.pop_first() else {
                break;
            };
            if let Some((size, _, _)) = cached[victim as usize].take() {
                used -= size;
            }
            let _ = last;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::collections::HashMap;

    const LONG: Duration = Duration::from_secs(3600);

    fn access(key: u32) -> Event {
        Event::Access {
            key,
            size: 1,
            at: Duration::ZERO,
            ttl: LONG,
        }
    }

    fn accesses(keys: &[u32]) -> Vec<Event> {
        keys.iter().map(|k| access(*k)).collect()
    }

    #[test]
    fn the_textbook_reference_string() {
        // Silberschatz's example: 20 references, 3 frames, MIN (which must load every miss)
        // takes 9 faults, 11 hits. Allowed to bypass, as a cache with admission is, the optimum
        // does one better (it declines to cache the first 7, used once until the end).
        let trace = accesses(&[7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]);
        let outcome = optimum(&trace, 3, 0);
        assert_eq!(outcome.accesses, 20);
        assert_eq!(outcome.hits, 12);
        assert_eq!(brute_force(&trace, 3), 12);
    }

    #[test]
    fn lru_evicts_the_least_recently_used_and_never_beats_the_optimum() {
        // Capacity 2: 1 2 1 3 (evicts 2) 2 (miss, evicts 1) 1 (miss).
        let trace = accesses(&[1, 2, 1, 3, 2, 1]);
        assert_eq!(lru(&trace, 2, 0).hits, 1);
        // The optimum never caches 3 (never used again): hits on 1, 2 and 1.
        assert_eq!(optimum(&trace, 2, 0).hits, 3);
        let mut random = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let events: Vec<Event> = (0..40)
                .map(|_| match random.random_range(0..12) {
                    0 => Event::Invalidate {
                        key: random.random_range(0..8),
                    },
                    _ => access(random.random_range(0..8)),
                })
                .collect();
            for capacity in 0..6 {
                assert!(lru(&events, capacity, 0).hits <= optimum(&events, capacity, 0).hits);
            }
        }
    }

    #[test]
    fn accesses_before_the_measurement_only_warm_the_cache() {
        let trace = accesses(&[1, 2, 1, 2, 3, 1]);
        let outcome = optimum(&trace, 100, 2);
        assert_eq!((outcome.accesses, outcome.hits), (4, 3));
    }

    #[test]
    fn nothing_fits_in_nothing_and_everything_fits_in_plenty() {
        let trace = accesses(&[1, 2, 1, 2, 3, 1]);
        assert_eq!(optimum(&trace, 0, 0).hits, 0);
        assert_eq!(optimum(&trace, 100, 0).hits, 3);
        assert_eq!(optimum(&[], 10, 0), Outcome::default());
    }

    #[test]
    fn an_invalidation_forces_a_refetch() {
        let trace = vec![
            access(1),
            access(1),
            Event::Invalidate { key: 1 },
            access(1),
            access(1),
        ];
        assert_eq!(optimum(&trace, 10, 0).hits, 2);
    }

    #[test]
    fn a_write_through_fills_without_a_lookup() {
        let put = Event::Put {
            key: 1,
            size: 1,
            at: Duration::ZERO,
            ttl: LONG,
        };
        let trace = vec![Event::Invalidate { key: 1 }, put, access(1), access(1)];
        let outcome = optimum(&trace, 10, 0);
        assert_eq!((outcome.accesses, outcome.hits), (2, 2));
    }

    #[test]
    fn an_entry_older_than_its_ttl_is_a_miss() {
        let at = |key: u32, seconds: u64| Event::Access {
            key,
            size: 1,
            at: Duration::from_secs(seconds),
            ttl: Duration::from_secs(10),
        };
        // Filled at 0: a hit at 9, a miss at 10 (the TTL counts from the fill, not the hit),
        // refilled at 10: a hit at 19.
        let trace = vec![at(1, 0), at(1, 9), at(1, 10), at(1, 19)];
        assert_eq!(optimum(&trace, 10, 0).hits, 2);
    }

    #[test]
    fn sizes_count_against_the_capacity() {
        let sized = |key: u32, size: u32| Event::Access {
            key,
            size,
            at: Duration::ZERO,
            ttl: LONG,
        };
        // 1 (size 6) and 2 (size 6) cannot both fit in 10; 3 (size 4) fits beside either.
        let trace = vec![
            sized(1, 6),
            sized(2, 6),
            sized(3, 4),
            sized(1, 6),
            sized(3, 4),
            sized(2, 6),
        ];
        // Keep 1 and 3 (hits on both), miss 2 again: 2 hits.
        assert_eq!(optimum(&trace, 10, 0).hits, 2);
        // A value larger than the cache is never kept.
        assert_eq!(optimum(&[sized(1, 20), sized(1, 20)], 10, 0).hits, 0);
    }

    /// The true optimum of unit-size entries without TTLs, by trying every choice (memoized on
    /// the position and the set of cached keys; keys must be below 32).
    fn brute_force(events: &[Event], capacity: usize) -> u64 {
        fn go(
            events: &[Event],
            index: usize,
            capacity: usize,
            cache: u32,
            memo: &mut HashMap<(usize, u32), u64>,
        ) -> u64 {
            let Some(event) = events.get(index) else {
                return 0;
            };
            if let Some(best) = memo.get(&(index, cache)) {
                return *best;
            }
            let best = match *event {
                Event::Invalidate { key } => {
                    go(events, index + 1, capacity, cache & !(1 << key), memo)
                }
                Event::Access { key, .. } if cache & (1 << key) != 0 => {
                    1 + go(events, index + 1, capacity, cache, memo)
                }
                Event::Access { key, .. } | Event::Put { key, .. } => {
                    let stale = cache & !(1 << key);
                    let mut best = go(events, index + 1, capacity, stale, memo);
                    if capacity > 0 {
                        if (stale.count_ones() as usize) < capacity {
                            best =
                                best.max(go(events, index + 1, capacity, stale | 1 << key, memo));
                        } else {
                            for victim in (0..32).filter(|v| stale & (1 << v) != 0) {
                                let next = (stale & !(1 << victim)) | 1 << key;
                                best = best.max(go(events, index + 1, capacity, next, memo));
                            }
                        }
                    }
                    best
                }
            };
            memo.insert((index, cache), best);
            best
        }
        go(events, 0, capacity, 0, &mut HashMap::new())
    }

    #[test]
    fn matches_the_brute_force_optimum_on_random_unit_traces() {
        let mut random = StdRng::seed_from_u64(42);
        for round in 0..300 {
            let length = random.random_range(1..13);
            let keys = random.random_range(1..6);
            let events: Vec<Event> = (0..length)
                .map(|_| {
                    let key = random.random_range(0..keys);
                    match random.random_range(0..10) {
                        0 => Event::Invalidate { key },
                        1 => Event::Put {
                            key,
                            size: 1,
                            at: Duration::ZERO,
                            ttl: LONG,
                        },
                        _ => access(key),
                    }
                })
                .collect();
            for capacity in 0..4 {
                assert_eq!(
                    optimum(&events, capacity as u64, 0).hits,
                    brute_force(&events, capacity),
                    "round {round}, capacity {capacity}: {events:?}"
                );
            }
        }
    }
}
