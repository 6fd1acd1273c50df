//! What the cache is told: the strategy, lifetimes, bounds, the Redis tier and the auditor; and
//! the check that refuses, at construction, settings that would panic or quietly break a tier.
//!
//! It holds no state and does no I/O.

use super::keys::CacheKind;
use crate::error::Error;
use std::str::FromStr;
use std::time::Duration;

/// Which tiers serve reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// No cache: every read goes to the table (the baseline).
    None,
    /// An in-process cache per instance.
    Local,
    /// Redis, shared by all instances.
    Redis,
    /// Local in front of Redis, with cross-instance invalidation over pub/sub.
    Tiered,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 4] = [
        Strategy::None,
        Strategy::Local,
        Strategy::Redis,
        Strategy::Tiered,
    ];

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Local => "local",
            Strategy::Redis => "redis",
            Strategy::Tiered => "tiered",
        }
    }

    pub(super) fn has_local(self) -> bool {
        matches!(self, Strategy::Local | Strategy::Tiered)
    }

    pub(super) fn has_redis(self) -> bool {
        matches!(self, Strategy::Redis | Strategy::Tiered)
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not one of local, redis, tiered, none"))
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the cache behaves. The defaults are DESIGN.md's.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub strategy: Strategy,
    /// Goes in front of every key with the schema version: `{namespace}:v1:`.
    pub namespace: String,
    /// Lifetime of a user's active goals.
    pub ttl_active_goals: Duration,
    /// Lifetime of a goal's progress.
    pub ttl_progress: Duration,
    /// Lifetime of one goal.
    pub ttl_goal: Duration,
    /// Lifetime of the marker that a goal does not exist.
    pub ttl_missing: Duration,
    /// Bound of the local tier, in bytes of keys, values and overhead.
    pub local_capacity_bytes: u64,
    /// Local TTLs are shortened by a random share of up to this (0.0-1.0).
    pub ttl_jitter: f64,
    /// The Redis tier (strategies `redis` and `tiered`).
    pub redis: RedisConfig,
    /// Share of writes and events (0.0-1.0) whose keys the consistency auditor checks in every
    /// tier once `audit_window` has passed (`audit.rs`). Off (0.0) in the library by default:
    /// the embedding program opts in (the sidecar at 1%; Lambda only when asked).
    pub audit_sample_rate: f64,
    /// The pub/sub window: how long after a write every tier must agree with the table.
    pub audit_window: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Local,
            namespace: "gs".into(),
            ttl_active_goals: Duration::from_secs(300),
            ttl_progress: Duration::from_secs(3600),
            ttl_goal: Duration::from_secs(300),
            ttl_missing: Duration::from_secs(30),
            local_capacity_bytes: 64 * 1024 * 1024,
            ttl_jitter: 0.1,
            redis: RedisConfig::default(),
            audit_sample_rate: 0.0,
            audit_window: Duration::from_millis(100),
        }
    }
}

impl CacheConfig {
    /// The lifetime of entries of `kind`.
    pub fn ttl(&self, kind: CacheKind) -> Duration {
        match kind {
            CacheKind::ActiveGoals => self.ttl_active_goals,
            CacheKind::Progress => self.ttl_progress,
            CacheKind::Goal => self.ttl_goal,
        }
    }
}

/// Refuses, at construction, the settings that would panic or quietly break a tier later.
pub(super) fn check(config: &CacheConfig) -> Result<(), Error> {
    if !(0.0..=1.0).contains(&config.ttl_jitter) {
        // NaN fails this too.
        return Err(Error::invalid(
            "cache.ttl_jitter",
            format!("is {}; must be within 0.0-1.0", config.ttl_jitter),
        ));
    }
    if !(0.0..=1.0).contains(&config.audit_sample_rate) {
        return Err(Error::invalid(
            "cache.audit_sample_rate",
            format!("is {}; must be within 0.0-1.0", config.audit_sample_rate),
        ));
    }
    if config.audit_window.is_zero() {
        return Err(Error::invalid(
            "cache.audit_window",
            "must be longer than zero",
        ));
    }
    if config.local_capacity_bytes == 0 && config.strategy.has_local() {
        return Err(Error::invalid(
            "cache.local_capacity_bytes",
            "must be more than zero",
        ));
    }
    if !config.strategy.has_redis() {
        return Ok(());
    }
    let redis = &config.redis;
    for (name, value) in [
        ("cache.redis.timeout", redis.timeout),
        ("cache.redis.lease_ttl", redis.lease_ttl),
        ("cache.redis.probe_interval", redis.probe_interval),
    ] {
        if value.is_zero() {
            return Err(Error::invalid(name, "must be longer than zero"));
        }
    }
    if redis.lease_ttl < Duration::from_millis(1) {
        return Err(Error::invalid(
            "cache.redis.lease_ttl",
            "must be at least 1 ms",
        ));
    }
    if redis.breaker_failures == 0 {
        return Err(Error::invalid(
            "cache.redis.breaker_failures",
            "must be at least 1",
        ));
    }
    if redis.max_pending_invalidations == 0 {
        return Err(Error::invalid(
            "cache.redis.max_pending_invalidations",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// How the Redis tier connects and protects itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// One URL for a standalone server; several (the seed nodes) for a Redis Cluster.
    pub urls: Vec<String>,
    /// Whether `urls` name a Redis Cluster (always, when there is more than one).
    pub cluster: bool,
    /// Deadline of one Redis call.
    pub timeout: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_cooldown: Duration,
    /// How long a fill lease lives; a fill slower than this does not land.
    pub lease_ttl: Duration,
    /// Invalidations kept for replay while Redis is unreachable; past this, the namespace is flushed.
    pub max_pending_invalidations: usize,
    /// How often a degraded tier probes Redis.
    pub probe_interval: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            urls: vec!["redis://127.0.0.1:6379/".into()],
            cluster: false,
            timeout: Duration::from_millis(100),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(10),
            max_pending_invalidations: 100_000,
            probe_interval: Duration::from_millis(200),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;

    /// #15 (minor): settings that used to panic later (a zero probe interval in
    /// `tokio::time::interval`, a NaN jitter in the local tier's random range) or break a tier
    /// quietly (a zero lease TTL fails every SET) are refused when the cache is made.
    #[tokio::test]
    async fn settings_that_would_break_a_tier_are_refused_at_construction() {
        let tiered = CacheConfig {
            strategy: Strategy::Tiered,
            ..CacheConfig::default()
        };
        let cases: Vec<(&str, CacheConfig)> = vec![
            (
                "cache.ttl_jitter",
                CacheConfig {
                    ttl_jitter: f64::NAN,
                    ..CacheConfig::default()
                },
            ),
            (
                "cache.ttl_jitter",
                CacheConfig {
                    ttl_jitter: 1.5,
                    ..CacheConfig::default()
                },
            ),
            (
                "cache.local_capacity_bytes",
                CacheConfig {
                    local_capacity_bytes: 0,
                    ..CacheConfig::default()
                },
            ),
            (
                "cache.redis.probe_interval",
                CacheConfig {
                    redis: RedisConfig {
                        probe_interval: Duration::ZERO,
                        ..RedisConfig::default()
                    },
                    ..tiered.clone()
                },
            ),
            (
                "cache.redis.lease_ttl",
                CacheConfig {
                    redis: RedisConfig {
                        lease_ttl: Duration::from_micros(10),
                        ..RedisConfig::default()
                    },
                    ..tiered.clone()
                },
            ),
            (
                "cache.redis.timeout",
                CacheConfig {
                    redis: RedisConfig {
                        timeout: Duration::ZERO,
                        ..RedisConfig::default()
                    },
                    ..tiered.clone()
                },
            ),
            (
                "cache.redis.breaker_failures",
                CacheConfig {
                    redis: RedisConfig {
                        breaker_failures: 0,
                        ..RedisConfig::default()
                    },
                    ..tiered.clone()
                },
            ),
            (
                "cache.redis.max_pending_invalidations",
                CacheConfig {
                    redis: RedisConfig {
                        max_pending_invalidations: 0,
                        ..RedisConfig::default()
                    },
                    ..tiered.clone()
                },
            ),
        ];
        for (field, config) in cases {
            match Cache::new(config) {
                Err(Error::InvalidArgument { field: refused, .. }) => {
                    assert_eq!(refused, field)
                }
                other => panic!("{field}: expected a refusal, got {other:?}"),
            }
        }
        // (A build without the `redis` feature refuses every Redis strategy: `no_redis.rs`.)
        if cfg!(feature = "redis") {
            assert!(Cache::new(tiered).is_ok());
        }
    }
}
