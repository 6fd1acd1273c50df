//! The sidecar's configuration: one typed struct, from flags and `GOALSTORE_*` environment.
//!
//! Every default is safe: listen on loopback, the embedded table. A bad value is reported with
//! the name of its setting before anything starts.

use clap::Parser;
use goalstore::cache::redis::RedisConfig;
use goalstore::{CacheConfig, StoreConfig, Strategy};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Runs the goalstore gRPC sidecar.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "goalstore-sidecar", version, about, long_about = None)]
pub struct Config {
    /// Address to serve gRPC on. Loopback by default; binding beyond it is an explicit choice.
    #[arg(long, env = "GOALSTORE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// The system of record: `memory` (an embedded, in-process table; data is lost on exit)
    /// or `dynamodb:<table name>` (region and credentials from the standard AWS chain).
    #[arg(long, env = "GOALSTORE_TABLE", default_value = "memory")]
    pub table: TableChoice,

    /// DynamoDB endpoint override, e.g. `http://127.0.0.1:8000` for a local DynamoDB-compatible server.
    #[arg(long, env = "GOALSTORE_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// Read DynamoDB strongly consistently (the default; read-your-writes needs it) or
    /// eventually consistently (half the read units).
    #[arg(long, env = "GOALSTORE_CONSISTENT_READS", default_value_t = true, action = clap::ArgAction::Set)]
    pub consistent_reads: bool,

    /// Cache strategy: `local` (in-process), `redis` (shared), `tiered` (local in front of redis,
    /// invalidated across instances over pub/sub) or `none` (every read goes to the table).
    #[arg(long, env = "GOALSTORE_CACHE", default_value = "local")]
    pub cache: Strategy,

    /// Redis for the `redis` and `tiered` strategies: one URL for a standalone server, or a
    /// comma-separated list of Redis Cluster nodes.
    #[arg(
        long,
        env = "GOALSTORE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/",
        value_delimiter = ','
    )]
    pub redis_url: Vec<String>,

    /// Treat a single GOALSTORE_REDIS_URL as a Redis Cluster seed node.
    #[arg(long, env = "GOALSTORE_REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set)]
    pub redis_cluster: bool,

    /// Deadline of one Redis call; past it the read goes to the table.
    #[arg(long, env = "GOALSTORE_REDIS_TIMEOUT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,

    /// Cache key namespace; keys are `{namespace}:v1:…`, so deployments sharing Redis stay apart.
    #[arg(long, env = "GOALSTORE_CACHE_NAMESPACE", default_value = "gs")]
    pub cache_namespace: String,

    /// Lifetime of a user's cached active goals.
    #[arg(long, env = "GOALSTORE_TTL_ACTIVE_GOALS", default_value = "5m", value_parser = humantime::parse_duration)]
    pub ttl_active_goals: Duration,

    /// Lifetime of a goal's cached progress.
    #[arg(long, env = "GOALSTORE_TTL_PROGRESS", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl_progress: Duration,

    /// Lifetime of one cached goal.
    #[arg(long, env = "GOALSTORE_TTL_GOAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub ttl_goal: Duration,

    /// Lifetime of the marker that a goal does not exist.
    #[arg(long, env = "GOALSTORE_TTL_MISSING", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ttl_missing: Duration,

    /// Bound of the in-process cache tier, in bytes.
    #[arg(long, env = "GOALSTORE_LOCAL_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub local_cache_bytes: u64,
}

impl Config {
    /// The store configuration these settings describe.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            cache: CacheConfig {
                strategy: self.cache,
                namespace: self.cache_namespace.clone(),
                ttl_active_goals: self.ttl_active_goals,
                ttl_progress: self.ttl_progress,
                ttl_goal: self.ttl_goal,
                ttl_missing: self.ttl_missing,
                local_capacity_bytes: self.local_cache_bytes,
                redis: RedisConfig {
                    urls: self.redis_url.clone(),
                    cluster: self.redis_cluster || self.redis_url.len() > 1,
                    timeout: self.redis_timeout,
                    ..RedisConfig::default()
                },
                ..CacheConfig::default()
            },
            ..StoreConfig::default()
        }
    }
}

/// Which table backs the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChoice {
    /// The embedded in-process table.
    Memory,
    /// A DynamoDB table of this name.
    DynamoDb(String),
}

impl FromStr for TableChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None if text == "memory" => Ok(TableChoice::Memory),
            Some(("dynamodb", name)) if valid_table_name(name) => {
                Ok(TableChoice::DynamoDb(name.to_owned()))
            }
            Some(("dynamodb", name)) => Err(format!(
                "`{name}` is not a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ - .)"
            )),
            _ => Err(format!(
                "`{text}` is neither `memory` nor `dynamodb:<table name>`"
            )),
        }
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let config = Config::try_parse_from(["goalstore-sidecar"]).expect("defaults parse");
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.table, TableChoice::Memory);
        assert!(config.consistent_reads);
        assert_eq!(config.cache, Strategy::Local);
        let store = config.store_config();
        assert_eq!(store.cache.ttl_active_goals, Duration::from_secs(300));
        assert_eq!(store.cache.ttl_progress, Duration::from_secs(3600));
        assert_eq!(store.cache.ttl_missing, Duration::from_secs(30));
    }

    #[test]
    fn cluster_urls_are_a_list() {
        let config = Config::try_parse_from([
            "goalstore-sidecar",
            "--cache",
            "tiered",
            "--redis-url",
            "redis://127.0.0.1:7000/,redis://127.0.0.1:7001/",
        ])
        .expect("valid");
        let store = config.store_config();
        assert_eq!(store.cache.strategy, Strategy::Tiered);
        assert_eq!(store.cache.redis.urls.len(), 2);
        assert!(store.cache.redis.cluster);
        let error = Config::try_parse_from(["goalstore-sidecar", "--cache", "memcached"])
            .expect_err("not a strategy");
        assert!(error.to_string().contains("--cache"), "{error}");
        let error = Config::try_parse_from(["goalstore-sidecar", "--ttl-goal", "soon"])
            .expect_err("not a duration");
        assert!(error.to_string().contains("--ttl-goal"), "{error}");
    }

    #[test]
    fn table_choices_parse_or_name_the_problem() {
        assert_eq!(
            "dynamodb:goals-prod".parse(),
            Ok(TableChoice::DynamoDb("goals-prod".into()))
        );
        assert!("dynamodb:a".parse::<TableChoice>().is_err());
        assert!("postgres".parse::<TableChoice>().is_err());
        let error = Config::try_parse_from(["goalstore-sidecar", "--table", "redis"])
            .expect_err("not a table");
        assert!(error.to_string().contains("--table"), "{error}");
    }
}
