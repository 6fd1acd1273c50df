//! The configuration of goalstore's deployables: one typed struct, from flags, `GOALSTORE_*`
//! environment and an optional TOML file (`--config`). Precedence: flag, then environment, then
//! file, then default. The sidecar reads all of it; the Lambda handlers read the store's part
//! from the same variables (a crate of its own so that they build without the sidecar's server).
//!
//! Every default is safe: listen on loopback, the embedded table, the local cache, no bind beyond
//! loopback unless asked. A bad value is reported with the name of its setting before anything
//! starts. [`Config::redacted`] is what gets logged: secrets never are.

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use goalstore::cache::redis::RedisConfig;
use goalstore::{CacheConfig, StoreConfig, Strategy};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Runs the goalstore gRPC sidecar.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "goalstore-sidecar", version, about, long_about = None, args_override_self = true)]
pub struct Config {
    /// A TOML file of settings (keys are the long flag names with `_`, e.g. `redis_url`).
    /// Flags and environment variables win over it.
    #[arg(long, env = "GOALSTORE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where to serve gRPC: `host:port` (loopback by default; binding beyond it is an explicit
    /// choice) or `unix:/path/to/socket` (created with mode 0600).
    #[arg(long, env = "GOALSTORE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: Listen,

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

    /// A bearer token every GoalStore call must carry (`authorization: Bearer <token>`); the
    /// health check stays open. Unset: no authentication.
    #[arg(long, env = "GOALSTORE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// The most goal ids one BatchGetGoals may ask for.
    #[arg(long, env = "GOALSTORE_MAX_BATCH_IDS", default_value_t = 1000)]
    pub max_batch_ids: usize,

    /// The largest request message accepted, in bytes.
    #[arg(long, env = "GOALSTORE_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Calls served at once; past it, calls get RESOURCE_EXHAUSTED at once instead of queueing.
    #[arg(long, env = "GOALSTORE_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Deadline of a call that names none (a caller's `grpc-timeout` shorter than this wins).
    #[arg(long, env = "GOALSTORE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Where to serve Prometheus metrics (`GET /metrics`); loopback by default.
    #[arg(
        long,
        env = "GOALSTORE_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,

    /// A successful call slower than this is logged as a warning.
    #[arg(long, env = "GOALSTORE_SLOW_CALL", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub slow_call: Duration,

    /// Share of writes and events (0.0-1.0) whose cache keys the consistency auditor re-reads in
    /// every tier after the pub/sub window and compares with a strongly consistent table read
    /// (`goalstore_consistency_checks_total`). Default 0.01; the Lambda handlers default to 0.
    #[arg(long, env = "GOALSTORE_AUDIT_SAMPLE_RATE", value_parser = parse_share)]
    pub audit_sample_rate: Option<f64>,

    /// Whether writers other than goalstore (the existing handlers' log activity route) may
    /// log activities into the table. While they may, every log and progress read also queries
    /// the goal's newest activities to count theirs; set `false` only once every writer of
    /// activities is a goalstore that keeps the progress state (one request less per log and
    /// per progress miss).
    #[arg(long, env = "GOALSTORE_OTHERS_LOG_ACTIVITIES", default_value_t = true, action = clap::ArgAction::Set)]
    pub others_log_activities: bool,

    /// Log format: `json` (one object a line, for log queries), `text`, or `auto` (text on a
    /// terminal, JSON otherwise). Level from RUST_LOG (default info).
    #[arg(long, env = "GOALSTORE_LOG_FORMAT", default_value = "auto", value_parser = ["auto", "json", "text"])]
    pub log_format: String,

    /// An OTLP/gRPC collector to export tracing spans to (one per RPC, continuing the caller's
    /// W3C trace; store call; shared batch read; DynamoDB request; Redis call), e.g.
    /// `http://127.0.0.1:4317`. Unset: no spans are exported.
    #[arg(long, env = "GOALSTORE_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` of the exported spans.
    #[arg(
        long,
        env = "GOALSTORE_OTLP_SERVICE_NAME",
        default_value = "goalstore-sidecar"
    )]
    pub otlp_service_name: String,

    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish before the sidecar exits.
    #[arg(long, env = "GOALSTORE_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// Where the sidecar listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix("unix:") {
            Some("") => Err("`unix:` needs a socket path".into()),
            Some(path) => Ok(Listen::Unix(PathBuf::from(path))),
            None => text
                .parse()
                .map(Listen::Tcp)
                .map_err(|_| format!("`{text}` is neither host:port nor unix:/path")),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(address) => write!(f, "{address}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
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

/// An `http://host:port` collector address (no TLS in this build: a local collector or agent).
/// The sidecar's share of writes the consistency auditor checks when none is configured.
pub const DEFAULT_AUDIT_SAMPLE_RATE: f64 = 0.01;

/// A share: a number from 0.0 to 1.0.
fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("`{text}` is not a share from 0.0 to 1.0")),
    }
}

fn parse_otlp_endpoint(text: &str) -> Result<String, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| format!("`{text}` is not a URL like http://127.0.0.1:4317"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(text.to_owned()),
        (Some("https"), _) => Err(format!(
            "`{text}`: TLS is not supported; export to a local collector over http://"
        )),
        _ => Err(format!("`{text}` is not a URL like http://127.0.0.1:4317")),
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] clap::Error),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: unknown setting `{key}`")]
    UnknownSetting { path: PathBuf, key: String },
    #[error("{path}: setting `{key}` must be a string, number, boolean or list")]
    BadValue { path: PathBuf, key: String },
}

impl Config {
    /// Loads the configuration from `args` (the first is the program name), the environment and
    /// the file `--config` names.
    pub fn load<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Config::command().try_get_matches_from(&args)?;
        let config = Config::from_arg_matches(&matches)?;
        let Some(path) = config.config.clone() else {
            return Ok(config);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let file: toml::Table = text.parse().map_err(|source| ConfigError::Toml {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let command = Config::command();
        // File settings go in as flags, ahead of the real arguments, and only where neither a
        // flag nor the environment set the value.
        let mut merged: Vec<OsString> = args.first().cloned().into_iter().collect();
        for (key, value) in &file {
            let known = command
                .get_arguments()
                .any(|arg| arg.get_id() == key.as_str() && key != "config");
            if !known {
                return Err(ConfigError::UnknownSetting {
                    path,
                    key: key.clone(),
                });
            }
            let from_file = matches!(
                matches.value_source(key),
                None | Some(ValueSource::DefaultValue)
            );
            if !from_file {
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => {
                    return Err(ConfigError::BadValue {
                        path,
                        key: key.clone(),
                    })
                }
            };
            merged.push(format!("--{}", key.replace('_', "-")).into());
            merged.push(text.into());
        }
        merged.extend(args.iter().skip(1).cloned());
        Ok(Config::try_parse_from(merged)?)
    }

    /// The configuration with secrets replaced, for logs.
    pub fn redacted(&self) -> Self {
        Self {
            auth_token: self.auth_token.as_ref().map(|_| "<redacted>".into()),
            redis_url: self.redis_url.iter().map(|url| redact_url(url)).collect(),
            otlp_endpoint: self.otlp_endpoint.as_deref().map(redact_url),
            ..self.clone()
        }
    }

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
                audit_sample_rate: self.audit_sample_rate.unwrap_or(DEFAULT_AUDIT_SAMPLE_RATE),
                ..CacheConfig::default()
            },
            slow_call: self.slow_call,
            others_log_activities: self.others_log_activities,
            ..StoreConfig::default()
        }
    }
}

/// `redis://user:secret@host/` → `redis://user:<redacted>@host/`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let config = Config::load(["goalstore-sidecar"]).expect("defaults parse");
        assert!(matches!(config.listen, Listen::Tcp(address) if address.ip().is_loopback()));
        assert!(config.metrics_listen.ip().is_loopback());
        assert_eq!(config.table, TableChoice::Memory);
        assert!(config.consistent_reads);
        assert_eq!(config.cache, Strategy::Local);
        assert_eq!(config.auth_token, None);
        assert!(config.max_batch_ids >= 1000);
        let store = config.store_config();
        assert_eq!(store.cache.ttl_active_goals, Duration::from_secs(300));
        assert_eq!(store.cache.ttl_progress, Duration::from_secs(3600));
        assert_eq!(store.cache.ttl_missing, Duration::from_secs(30));
        assert_eq!(config.otlp_endpoint, None, "no span export unless asked");
        assert_eq!(config.otlp_service_name, "goalstore-sidecar");
        assert_eq!(store.cache.audit_sample_rate, 0.01, "1% of writes audited");
    }

    #[test]
    fn the_audit_sample_rate_is_a_share() {
        let config = Config::load(["goalstore-sidecar", "--audit-sample-rate", "0.25"])
            .expect("a share parses");
        assert_eq!(config.store_config().cache.audit_sample_rate, 0.25);
        for bad in ["1.5", "-0.1", "NaN", "lots"] {
            let flag = format!("--audit-sample-rate={bad}");
            let error = Config::load(["goalstore-sidecar", flag.as_str()]).expect_err("refused");
            assert!(error.to_string().contains("not a share"), "{bad}: {error}");
        }
    }

    #[test]
    fn otlp_endpoints_are_plain_http_urls() {
        let config = Config::load([
            "goalstore-sidecar",
            "--otlp-endpoint",
            "http://127.0.0.1:4317",
            "--otlp-service-name",
            "goals-eu",
        ])
        .expect("valid");
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(config.otlp_service_name, "goals-eu");
        for bad in ["127.0.0.1:4317", "https://collector:4317", "not a url"] {
            let error = Config::load(["goalstore-sidecar", "--otlp-endpoint", bad])
                .expect_err("not a plain http URL");
            assert!(error.to_string().contains("--otlp-endpoint"), "{error}");
        }
    }

    #[test]
    fn table_choices_and_listeners_parse_or_name_the_problem() {
        assert_eq!(
            "dynamodb:goals-prod".parse(),
            Ok(TableChoice::DynamoDb("goals-prod".into()))
        );
        assert!("dynamodb:a".parse::<TableChoice>().is_err());
        assert!("postgres".parse::<TableChoice>().is_err());
        assert_eq!(
            "unix:/run/gs.sock".parse(),
            Ok(Listen::Unix("/run/gs.sock".into()))
        );
        assert!("unix:".parse::<Listen>().is_err());
        let error =
            Config::load(["goalstore-sidecar", "--table", "redis"]).expect_err("not a table");
        assert!(error.to_string().contains("--table"), "{error}");
    }

    #[test]
    fn cluster_urls_are_a_list() {
        let config = Config::load([
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
        let error = Config::load(["goalstore-sidecar", "--cache", "memcached"])
            .expect_err("not a strategy");
        assert!(error.to_string().contains("--cache"), "{error}");
        let error =
            Config::load(["goalstore-sidecar", "--ttl-goal", "soon"]).expect_err("not a duration");
        assert!(error.to_string().contains("--ttl-goal"), "{error}");
    }

    #[test]
    fn a_file_fills_in_what_flags_do_not_set() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("goalstore.toml");
        std::fs::write(
            &path,
            "cache = \"tiered\"\nttl_goal = \"2m\"\nredis_url = [\"redis://a:1/\", \"redis://b:2/\"]\nmax_in_flight = 7\n",
        )?;
        let config = Config::load([
            "goalstore-sidecar".into(),
            "--config".into(),
            path.clone().into_os_string(),
            "--max-in-flight".into(),
            "9".into(),
        ] as [OsString; 5])?;
        assert_eq!(config.cache, Strategy::Tiered);
        assert_eq!(config.ttl_goal, Duration::from_secs(120));
        assert_eq!(config.redis_url.len(), 2);
        assert_eq!(config.max_in_flight, 9, "a flag wins over the file");

        std::fs::write(&path, "cache_strategy = \"local\"\n")?;
        let error = Config::load([
            "goalstore-sidecar".into(),
            "--config".into(),
            path.clone().into_os_string(),
        ] as [OsString; 3])
        .expect_err("unknown key");
        assert!(error.to_string().contains("cache_strategy"), "{error}");
        std::fs::write(&path, "ttl_goal = \"forever\"\n")?;
        let error = Config::load([
            "goalstore-sidecar".into(),
            "--config".into(),
            path.into_os_string(),
        ] as [OsString; 3])
        .expect_err("bad value");
        assert!(error.to_string().contains("--ttl-goal"), "{error}");
        Ok(())
    }

    #[test]
    fn secrets_are_redacted() {
        let config = Config::load([
            "goalstore-sidecar",
            "--auth-token",
            "s3cret",
            "--redis-url",
            "redis://default:hunter2@cache.internal:6379/",
        ])
        .expect("valid");
        let shown = format!("{:?}", config.redacted());
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("cache.internal"), "{shown}");
    }
}
