//! Single flight: concurrent misses of one key in one process share one fill.
//!
//! The first caller starts the fill; later callers await the same future (`Shared`), so a burst of
//! reads of a cold key makes one table read. The waiters drive the fill, in their own task (so
//! what their task carries — a span, a task-local — covers its reads); when the last waiter is
//! dropped before the answer (a deadline, a hang-up), the fill is handed to a task of its own. So
//! a fill always finishes — landing its value, or giving its leases back — and leaves the map when
//! it does: no abandoned flight lingers for a later reader to join, no lease stays held. An
//! invalidation forgets the key's flight: readers after a write start a fresh fill instead of
//! joining one that read before the write.

use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type Flight<T> = Shared<BoxFuture<'static, T>>;
/// Fills in progress: the key, the fill's id (to remove only one's own), the fill, its waiters.
type Running<T> = HashMap<Arc<str>, (u64, Flight<T>, Arc<AtomicUsize>)>;

/// Fills in progress, by key.
pub struct Flights<T: Clone> {
    running: Arc<Mutex<Running<T>>>,
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
            running: Arc::default(),
            next_id: AtomicU64::new(1),
        }
    }
}

fn lock<T>(running: &Mutex<Running<T>>) -> std::sync::MutexGuard<'_, Running<T>> {
    running.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
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

    /// Joins the fill of `key` in progress, or starts one with `start`.
    pub async fn run(&self, key: &Arc<str>, start: impl FnOnce() -> BoxFuture<'static, T>) -> T {
        let waiter = {
            let mut running = self.running();
            let (id, flight, waiters) = match running.get(key) {
                Some((id, flight, waiters)) => (*id, flight.clone(), waiters.clone()),
                None => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let flight = start().shared();
                    let waiters = Arc::new(AtomicUsize::new(0));
                    running.insert(key.clone(), (id, flight.clone(), waiters.clone()));
                    (id, flight, waiters)
                }
            };
            waiters.fetch_add(1, Ordering::SeqCst);
            Waiter {
                running: Arc::clone(&self.running),
                key: key.clone(),
                id,
                flight,
                waiters,
                answered: false,
            }
        };
        waiter.wait().await
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

/// One caller's wait for a flight; the last one dropped before the answer hands the fill to a
/// task of its own.
struct Waiter<T: Clone + Send + Sync + 'static> {
    running: Arc<Mutex<Running<T>>>,
    key: Arc<str>,
    id: u64,
    flight: Flight<T>,
    waiters: Arc<AtomicUsize>,
    answered: bool,
}

impl<T: Clone + Send + Sync + 'static> Waiter<T> {
    async fn wait(mut self) -> T {
        let result = self.flight.clone().await;
        self.answered = true;
        remove(&self.running, &self.key, self.id);
        result
    }
}

impl<T: Clone + Send + Sync + 'static> Drop for Waiter<T> {
    fn drop(&mut self) {
        let last = self.waiters.fetch_sub(1, Ordering::SeqCst) == 1;
        if self.answered || !last {
            return;
        }
        // Nobody waits any more, the fill has not answered: finish it on a task of its own.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (flight, running, key, id) = (
            self.flight.clone(),
            Arc::clone(&self.running),
            self.key.clone(),
            self.id,
        );
        runtime.spawn(async move {
            let _ = flight.await;
            remove(&running, &key, id);
        });
    }
}

/// Takes flight `id` of `key` out of the map, if it is still there (a forget may have made room
/// for a newer fill).
fn remove<T>(running: &Mutex<Running<T>>, key: &str, id: u64) {
    let mut running = lock(running);
    if running
        .get(key)
        .is_some_and(|(current, _, _)| *current == id)
    {
        running.remove(key);
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
        assert!(flights.is_empty(), "finished fills leave the map");
    }

    /// #15 finding 4: when every waiter of a flight was dropped, the half-run fill stayed in the
    /// map (for a later reader to join, minutes on) and never finished (its leases held).
    #[tokio::test]
    async fn a_flight_every_waiter_dropped_still_finishes_and_leaves() {
        let flights: Arc<Flights<usize>> = Arc::default();
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
