//! A circuit breaker for the Redis tier.
//!
//! After `failure_threshold` consecutive failures the breaker opens: calls are refused at once
//! (the store goes to the table) instead of each waiting out a timeout. After `cooldown` one
//! probe call is let through; its success closes the breaker, its failure opens it again.
//! Time is tokio's, so tests drive it with a paused clock.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Opens after consecutive failures, probes after a cooldown.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    failure_threshold: u32,
    cooldown: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            failure_threshold: failure_threshold.max(1),
            cooldown,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for a call that may go ahead now, `None` when calls are refused. Past the
    /// cooldown, the first caller becomes the probe. The caller reports the call's outcome on
    /// the permit; a permit dropped without one (its call was cancelled at an await: a
    /// deadline, a hang-up, a failed `try_join!`) tells nothing, and a probe's lets the next
    /// caller probe at once — so a cancelled probe never leaves the breaker half-open.
    pub fn allow(&self) -> Option<Permit<'_>> {
        let mut state = self.state();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => return None,
        };
        Some(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    fn success(&self) {
        *self.state() = State::Closed { failures: 0 };
    }

    fn failure(&self) {
        let mut state = self.state();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.failure_threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Instant::now() + self.cooldown,
            },
        };
    }

    /// Whether calls are being refused (open, or waiting on a probe).
    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

/// Leave for one call; report how it went with [`Permit::success`] or [`Permit::failure`].
#[derive(Debug)]
#[must_use = "report the call's outcome on the permit"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    /// This call is the probe of a half-open breaker.
    probe: bool,
    reported: bool,
}

impl Permit<'_> {
    /// The call succeeded: the breaker closes.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.success();
    }

    /// The call failed: one more failure, or the probe failed and the breaker opens again.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.reported || !self.probe {
            return;
        }
        // A probe cancelled before its answer: nothing was learned, so the next caller probes.
        let mut state = self.breaker.state();
        if *state == State::HalfOpen {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_and_probes_after_the_cooldown() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(1));
        let fail = |b: &CircuitBreaker| b.allow().expect("allowed").failure();
        fail(&breaker);
        fail(&breaker);
        assert!(!breaker.is_open());
        fail(&breaker);
        assert!(breaker.is_open());
        assert!(breaker.allow().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = breaker.allow().expect("the probe");
        assert!(breaker.allow().is_none(), "only one probe at a time");
        probe.failure();
        assert!(breaker.allow().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        breaker.allow().expect("the next probe").success();
        assert!(!breaker.is_open());
        assert!(breaker.allow().is_some());
    }

    /// #15 finding 1: a probe whose call is cancelled (its future dropped at an await) used to
    /// leave the breaker half-open for good, refusing every later call.
    #[tokio::test(start_paused = true)]
    async fn a_probe_cancelled_before_its_answer_lets_the_next_call_probe() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(1));
        breaker.allow().expect("allowed").failure();
        tokio::time::advance(Duration::from_secs(1)).await;
        let cancelled = async {
            let _permit = breaker.allow().expect("the probe");
            std::future::pending::<()>().await;
        };
        // The probe's call is dropped at its await, as a deadline drops it.
        let timed_out = tokio::time::timeout(Duration::from_millis(10), cancelled).await;
        assert!(timed_out.is_err());
        assert!(breaker.is_open(), "nothing was learned");
        breaker
            .allow()
            .expect("the next caller probes at once, no cooldown lost")
            .success();
        assert!(!breaker.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_breakers_dropped_permit_changes_nothing() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(1));
        breaker.allow().expect("allowed").failure();
        drop(breaker.allow().expect("allowed"));
        breaker.allow().expect("allowed").failure();
        assert!(
            breaker.is_open(),
            "two failures open it; the dropped call counted for nothing"
        );
    }
}
