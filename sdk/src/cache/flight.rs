//! Single flight: concurrent misses of one key in one process share one fill.
//!
//! The first caller starts the fill; later callers await the same future (`Shared`), so a burst of
//! reads of a cold key makes one table read. Any waiter may drive the fill, so it survives the
//! first caller being cancelled. An invalidation forgets the key's flight: readers after a write
//! start a fresh fill instead of joining one that read before the write.

use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Flight<T> = Shared<BoxFuture<'static, T>>;
/// Fills in progress: the key, the fill's id (to remove only one's own), the fill.
type Running<T> = HashMap<Arc<str>, (u64, Flight<T>)>;

/// Fills in progress, by key.
pub struct Flights<T: Clone> {
    running: Mutex<Running<T>>,
    next_id: AtomicU64,
}

impl<T: Clone> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Self {
            running: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    fn running(&self) -> std::sync::MutexGuard<'_, Running<T>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the fill of `key` in progress, or starts one with `start`.
    pub async fn run(&self, key: &Arc<str>, start: impl FnOnce() -> BoxFuture<'static, T>) -> T {
        let (id, flight) = {
            let mut running = self.running();
            match running.get(key) {
                Some((id, flight)) => (*id, flight.clone()),
                None => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let flight = start().shared();
                    running.insert(key.clone(), (id, flight.clone()));
                    (id, flight)
                }
            }
        };
        let result = flight.await;
        let mut running = self.running();
        if running.get(key).is_some_and(|(current, _)| *current == id) {
            running.remove(key);
        }
        result
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
        let flights: Arc<Flights<usize>> = Arc::default();
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
    }
}
