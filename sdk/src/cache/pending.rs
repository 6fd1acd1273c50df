//! Invalidations Redis has not seen yet, kept until a replay lands them.
//!
//! A write whose Redis DEL fails (or that comes while earlier ones wait) keeps its keys here; the
//! Redis tier bypasses itself for reads while anything is kept, and its probe replays the keys
//! once Redis answers. Past a bound, the keys are dropped and the whole namespace is flushed
//! instead ("overflowed").
//!
//! The invariant that matters: **a key kept after a replay took its snapshot stays kept after
//! that replay**. The replay's DEL may have landed before the new write reached the table; a fill
//! on another instance that leased after that DEL and read the old row would then land for a full
//! TTL if the key were forgotten. So every keep is stamped with a generation, a replay removes only
//! what its snapshot covered (stamps at or below the snapshot's), and a keep during a replay is
//! replayed again by the next one. The same holds for the namespace flush.
//!
//! It does no I/O: `redis.rs` replays, this file only counts.

use std::collections::HashMap;
use std::sync::Arc;

/// The kept invalidations.
#[derive(Debug, Default)]
pub struct Pending {
    /// Key -> generation of its latest keep.
    keys: HashMap<Arc<str>, u64>,
    /// Whether more keys were kept than the bound: the namespace must be flushed.
    overflowed: bool,
    /// Generation of the latest overflow.
    overflowed_at: u64,
    /// Bumped by every keep.
    generation: u64,
}

/// What one replay covers: the keys kept so far and whether a flush is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub keys: Vec<Arc<str>>,
    pub flush: bool,
    generation: u64,
}

impl Pending {
    /// Whether anything waits for a replay (reads must bypass Redis until then).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.overflowed
    }

    /// Keeps `keys` for replay; past `bound` keys, forgets them and asks for a flush instead.
    pub fn keep(&mut self, keys: &[Arc<str>], bound: usize) {
        self.generation += 1;
        for key in keys {
            self.keys.insert(key.clone(), self.generation);
        }
        if self.keys.len() > bound {
            self.keys.clear();
            self.overflowed = true;
            self.overflowed_at = self.generation;
        }
    }

    /// Asks for a flush of the whole namespace (and a purge of every instance's local tier): what
    /// was lost cannot be named key by key.
    pub fn overflow(&mut self) {
        self.generation += 1;
        self.keys.clear();
        self.overflowed = true;
        self.overflowed_at = self.generation;
    }

    /// What a replay starting now must do.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            // With a flush due, the flush covers every key kept so far.
            keys: if self.overflowed {
                Vec::new()
            } else {
                self.keys.keys().cloned().collect()
            },
            flush: self.overflowed,
            generation: self.generation,
        }
    }

    /// The replay of `snapshot` landed: forgets what it covered, nothing kept since.
    pub fn replayed(&mut self, snapshot: &Snapshot) {
        self.keys
            .retain(|_, generation| *generation > snapshot.generation);
        if snapshot.flush && self.overflowed_at <= snapshot.generation {
            self.overflowed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn a_replay_forgets_what_it_replayed() {
        let mut pending = Pending::default();
        pending.keep(&keys(&["a", "b"]), 10);
        let snapshot = pending.snapshot();
        assert!(!snapshot.flush);
        assert_eq!(snapshot.keys.len(), 2);
        pending.replayed(&snapshot);
        assert!(pending.is_empty());
    }

    /// #15 finding 3: a write to a key already kept, made while the replay ran, used to be a
    /// no-op on the set and was then forgotten with the snapshot.
    #[test]
    fn a_key_kept_again_during_a_replay_stays_kept() {
        let mut pending = Pending::default();
        pending.keep(&keys(&["a", "b"]), 10);
        let snapshot = pending.snapshot();
        // The replay's DELs are in flight; a write to `a` lands in the table and keeps `a`.
        pending.keep(&keys(&["a"]), 10);
        pending.replayed(&snapshot);
        assert!(
            !pending.is_empty(),
            "the write made during the replay was lost"
        );
        assert_eq!(pending.snapshot().keys, keys(&["a"]));
        let again = pending.snapshot();
        pending.replayed(&again);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_new_key_kept_during_a_replay_stays_kept() {
        let mut pending = Pending::default();
        pending.keep(&keys(&["a"]), 10);
        let snapshot = pending.snapshot();
        pending.keep(&keys(&["c"]), 10);
        pending.replayed(&snapshot);
        assert_eq!(pending.snapshot().keys, keys(&["c"]));
    }

    #[test]
    fn past_the_bound_a_flush_is_due_and_covers_what_came_before_it() {
        let mut pending = Pending::default();
        pending.keep(&keys(&["a", "b", "c"]), 2);
        let snapshot = pending.snapshot();
        assert!(snapshot.flush);
        assert!(snapshot.keys.is_empty());
        pending.replayed(&snapshot);
        assert!(pending.is_empty());
    }

    /// The overflow path's window: a key kept while the flush scans must be replayed after it,
    /// and an overflow during the flush must flush again.
    #[test]
    fn keeps_during_a_flush_are_replayed_after_it() {
        let mut pending = Pending::default();
        pending.keep(&keys(&["a", "b", "c"]), 2);
        let flush = pending.snapshot();
        pending.keep(&keys(&["d"]), 2);
        pending.replayed(&flush);
        assert!(!pending.is_empty());
        let next = pending.snapshot();
        assert!(!next.flush);
        assert_eq!(next.keys, keys(&["d"]));

        let mut pending = Pending::default();
        pending.keep(&keys(&["a", "b", "c"]), 2);
        let flush = pending.snapshot();
        pending.keep(&keys(&["d", "e", "f"]), 2);
        pending.replayed(&flush);
        assert!(
            pending.snapshot().flush,
            "an overflow during the flush needs another"
        );
    }
}
