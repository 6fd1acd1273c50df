//! The consistency auditor: in production, a sampled share of writes and events is checked
//! against the table once the pub/sub window has passed, in every tier that may hold its keys.
//!
//! After a sampled invalidation (a write or an event), the instance that made it checks its local
//! tier and Redis, and (tiered) asks every other instance over the bus to check its local tier.
//! A check waits the window, peeks at the tier (counting nothing) and compares what is cached with
//! what the table holds now, read strongly consistent by the store (`Source`). Absent is
//! consistent. A disagreement is only **stale** when it outlives a second window with the cached
//! bytes and the table both unchanged: a write racing the check (its own invalidation still within
//! the window) changes one of the two and is not counted. After a few rounds of racing writes the
//! check gives up, counting nothing.
//!
//! Exported as `goalstore_consistency_checks_total{kind,result}` and, for stale entries,
//! `goalstore_consistency_stale_age_seconds{kind}` (time since the audited write). A stale entry is
//! logged with its kind and tier; ids stay out of labels.
//!
//! It does not repair what it finds (the TTL does; an alert tells a human), and it never reads
//! through the cache: a check must not change what it checks.

use super::keys::{CacheKey, CacheKind};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// Rounds of one check before it gives up on a key that keeps changing.
const ROUNDS: usize = 4;
/// Checks running at once; past it, a sampled key is not checked (the sample is a sample).
const IN_FLIGHT: usize = 64;

/// What the auditor compares with: what a key should hold now, read at the source.
pub trait Source: Send + Sync + 'static {
    /// `cached` (the bytes under `key`) and what `key` should hold now, read at the source
    /// (strongly consistent), both in the form compared; `None` when the key cannot be checked
    /// (bytes that do not decode: decoding failures have their own counter).
    fn compare(
        &self,
        key: CacheKey,
        cached: Bytes,
    ) -> BoxFuture<'static, Result<Option<(Bytes, Bytes)>, crate::error::Error>>;
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Consistent,
    Stale,
    /// Writes kept racing the check, or a tier or the table did not answer: not counted.
    Inconclusive,
}

/// What checks compare with, the checks running, and the verdicts so far.
#[derive(Debug)]
pub struct Auditor {
    source: OnceLock<Arc<dyn Source>>,
    /// By kind: `[consistent, stale]`.
    counts: [[AtomicU64; 2]; 3],
    running: Arc<Semaphore>,
}

impl Default for Auditor {
    fn default() -> Self {
        Self {
            source: OnceLock::new(),
            counts: Default::default(),
            running: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }
}

impl std::fmt::Debug for dyn Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source")
    }
}

impl Auditor {
    /// Sets what checks compare with (once; later calls are ignored).
    pub fn set_source(&self, source: Arc<dyn Source>) {
        let _ = self.source.set(source);
    }

    pub fn source(&self) -> Option<Arc<dyn Source>> {
        self.source.get().cloned()
    }

    /// A slot for one more check, if fewer than the bound run now.
    pub fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.running.clone().try_acquire_owned().ok()
    }

    /// Checks running now.
    pub fn running(&self) -> u64 {
        (IN_FLIGHT - self.running.available_permits()) as u64
    }

    /// `(consistent, stale)` checks so far.
    pub fn counts(&self) -> (u64, u64) {
        self.counts
            .iter()
            .fold((0, 0), |(c, s), [consistent, stale]| {
                (
                    c + consistent.load(Ordering::Relaxed),
                    s + stale.load(Ordering::Relaxed),
                )
            })
    }

    /// Counts and exports one verdict on a key of `kind` found in `tier`.
    pub fn record(
        &self,
        kind: CacheKind,
        tier: &'static str,
        verdict: Verdict,
        written: SystemTime,
    ) {
        let result = match verdict {
            Verdict::Consistent => "consistent",
            Verdict::Stale => "stale",
            Verdict::Inconclusive => return,
        };
        let index = usize::from(verdict == Verdict::Stale);
        self.counts[kind.index()][index].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::CONSISTENCY_CHECKS, "kind" => kind.as_str(), "result" => result)
            .increment(1);
        if verdict == Verdict::Stale {
            let age = written.elapsed().unwrap_or_default();
            metrics::histogram!(crate::metrics::CONSISTENCY_STALE_AGE, "kind" => kind.as_str())
                .record(age.as_secs_f64());
            tracing::warn!(
                kind = kind.as_str(),
                tier,
                age_ms = age.as_millis() as u64,
                "the consistency auditor found a stale cache entry past the pub/sub window"
            );
        }
    }
}

/// One check of one key in one tier: `peek` reads the tier without counting, `window` is the
/// pub/sub window.
pub async fn check<F, Fut>(
    source: Arc<dyn Source>,
    key: CacheKey,
    window: Duration,
    mut peek: F,
) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Bytes>, ()>>,
{
    let mut previous: Option<(Bytes, Bytes)> = None;
    for _ in 0..ROUNDS {
        // The window is what is being checked: waiting it out is the point.
        tokio::time::sleep(window).await;
        let cached = match peek().await {
            Ok(Some(cached)) => cached,
            Ok(None) => return Verdict::Consistent,
            Err(()) => return Verdict::Inconclusive,
        };
        let (cached, current) = match source.compare(key.clone(), cached).await {
            Ok(Some(compared)) => compared,
            Ok(None) | Err(_) => return Verdict::Inconclusive,
        };
        if cached == current {
            return Verdict::Consistent;
        }
        let now = (cached, current);
        if previous.as_ref() == Some(&now) {
            // The same cached bytes, disagreeing with the same table, a whole window later.
            return Verdict::Stale;
        }
        previous = Some(now);
    }
    Verdict::Inconclusive
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::keys::KeySpace;
    use futures::FutureExt;
    use std::sync::Mutex;

    /// A table whose value is `table` and a cache whose value is `cached`, each changed at will.
    #[derive(Default)]
    struct World {
        table: Mutex<Vec<u8>>,
        cached: Mutex<Option<Vec<u8>>>,
        /// Writes landing in the table between the peek and the source read, one per round.
        racing: Mutex<Vec<Vec<u8>>>,
    }

    struct Table(Arc<World>);

    impl Source for Table {
        fn compare(
            &self,
            _key: CacheKey,
            cached: Bytes,
        ) -> BoxFuture<'static, Result<Option<(Bytes, Bytes)>, crate::error::Error>> {
            let world = self.0.clone();
            async move {
                if let Some(next) = world.racing.lock().expect("unpoisoned").pop() {
                    *world.table.lock().expect("unpoisoned") = next;
                }
                let current = Bytes::from(world.table.lock().expect("unpoisoned").clone());
                Ok(Some((cached, current)))
            }
            .boxed()
        }
    }

    async fn run(world: Arc<World>) -> Verdict {
        let key = KeySpace::new("t")
            .expect("namespace")
            .parse("t:v1:{goal:user:u:g}")
            .expect("a key");
        let peeked = world.clone();
        check(
            Arc::new(Table(world)),
            key,
            Duration::from_millis(100),
            move || {
                let cached = peeked
                    .cached
                    .lock()
                    .expect("unpoisoned")
                    .clone()
                    .map(Bytes::from);
                async move { Ok(cached) }
            },
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn absent_or_equal_is_consistent_and_a_lasting_disagreement_is_stale() {
        let world = Arc::new(World::default());
        assert_eq!(run(world.clone()).await, Verdict::Consistent);
        *world.table.lock().expect("unpoisoned") = b"v2".to_vec();
        *world.cached.lock().expect("unpoisoned") = Some(b"v2".to_vec());
        assert_eq!(run(world.clone()).await, Verdict::Consistent);
        *world.cached.lock().expect("unpoisoned") = Some(b"v1".to_vec());
        let started = tokio::time::Instant::now();
        assert_eq!(run(world.clone()).await, Verdict::Stale);
        assert_eq!(started.elapsed(), Duration::from_millis(200), "two windows");
    }

    /// A write landing while the check reads: the table moves every round, so the disagreement
    /// is never the same twice and nothing is counted.
    #[tokio::test(start_paused = true)]
    async fn writes_racing_the_check_are_not_called_stale() {
        let world = Arc::new(World::default());
        *world.cached.lock().expect("unpoisoned") = Some(b"v1".to_vec());
        *world.racing.lock().expect("unpoisoned") =
            (2..=10).map(|v| format!("v{v}").into_bytes()).collect();
        assert_eq!(run(world).await, Verdict::Inconclusive);
    }
}
