//! The Redis tier of a build without the `redis` feature: the same names, and no values. The
//! cache asks for a tier only for the `redis` and `tiered` strategies, and [`RedisTier::new`]
//! refuses them here, so none of the methods below can ever be called (each matches on a type
//! with no values). The `redis` crate is not in such a build.

use super::keys::CacheKey;
use super::pending::Snapshot;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub use super::config::RedisConfig;
pub use super::redis_common::{Push, RedisFailure};

/// A pub/sub push; there are none without Redis.
#[derive(Debug)]
pub enum PushInfo {}

/// What `push` says: there is no push to classify.
pub fn classify(push: &PushInfo) -> Push<'_> {
    match *push {}
}

/// A fill lease in Redis; there are none without Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisLease {}

/// The Redis tier; there is none without the `redis` feature.
#[derive(Debug)]
pub enum RedisTier {}

impl RedisTier {
    /// Always refuses: this build has no Redis tier.
    pub fn new(
        _config: RedisConfig,
        _prefix: &str,
        _pushes: Option<UnboundedSender<PushInfo>>,
        _subscription: Option<String>,
    ) -> Result<Self, RedisFailure> {
        Err(RedisFailure::Config(
            "goalstore was built without the `redis` feature; use the `local` or `none` strategy"
                .into(),
        ))
    }

    pub fn errors(&self) -> u64 {
        match *self {}
    }

    pub fn is_degraded(&self) -> bool {
        match *self {}
    }

    pub async fn get(
        &self,
        _key: &CacheKey,
    ) -> Result<Option<(Bytes, Option<Duration>)>, RedisFailure> {
        match *self {}
    }

    pub async fn begin_fill(&self, _key: &CacheKey) -> Result<RedisLease, RedisFailure> {
        match *self {}
    }

    pub async fn complete_fill(
        &self,
        _key: &CacheKey,
        _lease: &RedisLease,
        _bytes: &Bytes,
        _ttl: Duration,
    ) -> Result<bool, RedisFailure> {
        match *self {}
    }

    pub async fn invalidate(&self, _keys: &[Arc<str>]) -> Result<(), RedisFailure> {
        match *self {}
    }

    pub fn keep(&self, _keys: &[Arc<str>]) {
        match *self {}
    }

    pub fn keep_all(&self) {
        match *self {}
    }

    pub async fn recover(&self) -> Option<Snapshot> {
        match *self {}
    }

    pub async fn flush_namespace(&self) -> Result<(), RedisFailure> {
        match *self {}
    }

    pub async fn ensure_subscribed(&self) -> bool {
        match *self {}
    }

    pub fn is_subscribed(&self) -> bool {
        match *self {}
    }

    pub fn mark_unsubscribed(&self) {
        match *self {}
    }

    pub fn mark_subscribed(&self) {
        match *self {}
    }

    pub async fn publish(&self, _payload: String) -> Result<(), RedisFailure> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::{Cache, CacheConfig, Strategy};

    #[test]
    fn redis_strategies_are_a_configuration_error_and_local_works() {
        for strategy in [Strategy::Redis, Strategy::Tiered] {
            let refused = Cache::new(CacheConfig {
                strategy,
                ..CacheConfig::default()
            });
            assert!(
                matches!(&refused, Err(crate::Error::InvalidArgument { field, reason })
                    if field == "cache.redis_url" && reason.contains("`redis` feature")),
                "{strategy:?}: {refused:?}"
            );
        }
        let local = Cache::new(CacheConfig {
            strategy: Strategy::Local,
            ..CacheConfig::default()
        });
        assert!(matches!(local, Ok(Some(_))));
    }
}
