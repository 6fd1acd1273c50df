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

    /// Whether a call may go ahead now. Past the cooldown, the first caller becomes the probe.
    pub fn allow(&self) -> bool {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    /// The call succeeded.
    pub fn success(&self) {
        *self.state() = State::Closed { failures: 0 };
    }

    /// The call failed.
    pub fn failure(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_and_probes_after_the_cooldown() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(1));
        breaker.failure();
        breaker.failure();
        assert!(breaker.allow() && !breaker.is_open());
        breaker.failure();
        assert!(breaker.is_open());
        assert!(!breaker.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.failure();
        assert!(!breaker.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow());
        breaker.success();
        assert!(!breaker.is_open());
        assert!(breaker.allow());
    }
}
