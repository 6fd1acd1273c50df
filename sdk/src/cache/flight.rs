//! Single flight: concurrent misses of one key in one process share one fill.
//!
//! The first caller starts the fill; later callers await the same future (`Shared`), so a burst of
//! reads of a cold key makes one table read. The fill runs on a task of its own: it finishes —
//! landing its value, or giving its leases back — even when every caller is dropped (a deadline,
//! a hang-up), and takes itself out of the map when it does, so no abandoned flight lingers for a
//! later reader to join, and no lease is left held. An invalidation forgets the key's flight:
//! readers after a write start a fresh fill instead of joining one that read before the write.

use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Flight<T> = Shared<BoxFuture<'static, T>>;
/// Fills in progress: the key, the fill's id (to remove only one's own), the fill.
type Running<T> = HashMap<Arc<str>, (u64, Flight<T>)>;

/// Fills in progress, by key.
pub struct Flights<T: Clone> {
    running: Arc<Mutex<Running<T>>>,
    next_id: AtomicU64,
    /// The answer of a fill whose task ended without one (it panicked).
    lost: fn() -> T,
}

impl<T: Clone> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

fn lock<T>(running: &Mutex<Running<T>>) -> std::sync::MutexGuard<'_, Running<T>> {
    running.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// No fills yet; `lost` answers the waiters of a fill whose task panicked.
    pub fn new(lost: fn() -> T) -> Self {
        Self {
            running: Arc::default(),
            next_id: AtomicU64::new(1),
            lost,
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running<T>> {
        lock(&self.running)
    }

    /// Fills in progress now.
    pub fn len(&self) -> usize {
        self.running().len()
    }

    /// Whether no fill is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Joins the fill of `key` in progress, or starts one with `start` on a task of its own.
    pub async fn run(&self, key: &Arc<str>, start: impl FnOnce() -> BoxFuture<'static, T>) -> T {
        let flight = {
            let mut running = self.running();
            match running.get(key) {
                Some((_, flight)) => flight.clone(),
                None => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let fill = start();
                    let (map, own_key) = (Arc::clone(&self.running), key.clone());
                    let task = tokio::spawn(async move {
                        let result = fill.await;
                        let mut running = lock(&map);
                        // Only its own entry: a forget may have made room for a newer fill.
                        if running
                            .get(&own_key)
                            .is_some_and(|(current, _)| *current == id)
                        {
                            running.remove(&own_key);
                        }
                        result
                    });
                    let lost = self.lost;
                    let flight = async move { task.await.unwrap_or_else(|_| lost()) }
                        .boxed()
                        .shared();
                    running.insert(key.clone(), (id, flight.clone()));
                    flight
                }
            }
        };
        flight.await
    }

    /// Forgets the fill of `key`: later callers start a new one.
    pub fn forget(&self, key: &str) {
        self.running().remove(key);
    }

    /// Forgets every fill.
    pub fn forget_all(&self) {
        self.running().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn concurrent_callers_share_one_fill_and_forget_starts_anew() {
        let flights: Arc<Flights<usize>> = Arc::new(Flights::new(|| 0));
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let key: Arc<str> = "k".into();
        let call = |flights: Arc<Flights<usize>>| {
            let (started, release, key) = (started.clone(), release.clone(), key.clone());
            async move {
                flights
                    .run(&key, move || {
                        async move {
                            let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                            release.notified().await;
                            n
                        }
                        .boxed()
                    })
                    .await
            }
        };
        let first = tokio::spawn(call(flights.clone()));
        let second = tokio::spawn(call(flights.clone()));
        tokio::task::yield_now().await;
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // After a forget, a new caller starts its own fill.
        flights.forget("k");
        let third = tokio::spawn(call(flights.clone()));
        while started.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        let (a, b, c) = (first.await, second.await, third.await);
        assert_eq!((a.ok(), b.ok()), (Some(1), Some(1)));
        assert_eq!(c.ok(), Some(2));
        assert!(flights.is_empty(), "finished fills leave the map");
    }

    /// #15 finding 4: when every waiter of a flight was dropped, the half-run fill stayed in the
    /// map (for a later reader to join, minutes on) and never finished (its leases held).
    #[tokio::test]
    async fn a_flight_every_waiter_dropped_still_finishes_and_leaves() {
        let flights: Arc<Flights<usize>> = Arc::new(Flights::new(|| 0));
        let finished = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let key: Arc<str> = "k".into();
        let waiter = {
            let (finished, release) = (finished.clone(), release.clone());
            flights.run(&key, move || {
                async move {
                    release.notified().await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    7
                }
                .boxed()
            })
        };
        // The only waiter is dropped at its await, as a deadline drops it.
        let dropped = tokio::time::timeout(std::time::Duration::from_millis(10), waiter).await;
        assert!(dropped.is_err());
        assert_eq!(flights.len(), 1, "the fill still runs");
        release.notify_one();
        let left = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while !flights.is_empty() {
                // The fill's task gives nothing to await from here.
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(left.is_ok(), "the abandoned flight never left the map");
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the fill ran to its end"
        );
    }
}
