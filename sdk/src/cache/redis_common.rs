//! What the cache says of Redis in both builds, with and without the Redis tier (feature
//! `redis`): why a call failed ([`RedisFailure`]; without the tier, asking for a Redis strategy
//! fails with [`RedisFailure::Config`]) and what a pub/sub push said ([`Push`]).

use std::time::Duration;

/// Why a Redis call did not happen or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RedisFailure {
    #[error("the circuit breaker is open")]
    Open,
    #[error("invalidations are waiting to be replayed")]
    Replaying,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(String),
    #[error("bad redis configuration: {0}")]
    Config(String),
}

/// What a push from Redis says, in the cache's terms.
#[derive(Debug, PartialEq)]
pub enum Push<'a> {
    /// A message on the invalidation channel (its text).
    Message(&'a str),
    /// The connection (and so the subscription) dropped.
    Disconnected,
    /// The subscription is (again) in place.
    Subscribed,
    /// Anything else.
    Other,
}
