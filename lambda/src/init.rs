//! Start-up: the configuration, the metrics recorder and the store, built once per container.
//!
//! The store's settings are the sidecar's (`goalstore_config::Config`, the same
//! `GOALSTORE_*` variables, parsed by the same code); [`LambdaSettings`] adds the few that only a
//! Lambda has (the EMF namespace and dimensions, X-Ray). [`Builder::build`] makes no network call:
//! the DynamoDB client resolves credentials on its first request (the region comes from
//! `AWS_REGION`, which Lambda sets), and Redis connects on first use. With the `tiered` strategy
//! the cache's background task subscribes to invalidations soon after, off the start-up path.

use crate::emf::{EmfConfig, EmfError, EmfRecorder, ENVIRONMENT_DIMENSION, FUNCTION_DIMENSION};
use crate::xray::{Traces, XrayError};
use clap::Parser;
use goalstore::table::{DynamoTable, MemoryTable, Table};
use goalstore::GoalStore;
use goalstore_config::{Config, ConfigError, TableChoice};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The program name the configuration is parsed under (errors name it).
const PROGRAM: &str = "goalstore-lambda";

/// What only a Lambda needs to know, from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "goalstore-lambda", about, long_about = None)]
pub struct LambdaSettings {
    /// The CloudWatch namespace of the EMF metrics.
    #[arg(long, env = "GOALSTORE_EMF_NAMESPACE", default_value = crate::emf::DEFAULT_NAMESPACE)]
    pub emf_namespace: String,

    /// The `environment` dimension of every metric (e.g. `dev`, `staging`, `prod`).
    #[arg(long, env = "GOALSTORE_ENVIRONMENT", default_value = "dev")]
    pub environment: String,

    /// The `function` dimension of every metric; Lambda sets it to the function's name.
    #[arg(
        long,
        env = "AWS_LAMBDA_FUNCTION_NAME",
        default_value = "goalstore-lambda"
    )]
    pub function_name: String,

    /// Export spans to the X-Ray daemon, each invocation's continuing the trace Lambda started
    /// for it (with the function's active tracing on); see [`crate::xray`].
    #[arg(long, env = "GOALSTORE_XRAY", action = clap::ArgAction::Set, default_value_t = false)]
    pub xray: bool,

    /// Where the X-Ray daemon listens (`ip:port`); Lambda sets it. Read only with
    /// GOALSTORE_XRAY.
    #[arg(
        long,
        env = "AWS_XRAY_DAEMON_ADDRESS",
        default_value = "127.0.0.1:2000"
    )]
    pub xray_daemon_address: String,
}

impl LambdaSettings {
    /// The settings from the environment alone.
    pub fn from_env() -> Result<Self, InitError> {
        Ok(Self::try_parse_from([PROGRAM])?)
    }

    /// The span export these settings ask for: `None` unless GOALSTORE_XRAY is on.
    pub fn traces(&self) -> Result<Option<Traces>, XrayError> {
        self.xray
            .then(|| Traces::new(&self.xray_daemon_address, &self.function_name))
            .transpose()
    }

    /// The EMF configuration these settings describe.
    pub fn emf_config(&self) -> Result<EmfConfig, EmfError> {
        EmfConfig::new(self.emf_namespace.clone())?
            .with_dimension(ENVIRONMENT_DIMENSION, self.environment.clone())?
            .with_dimension(FUNCTION_DIMENSION, self.function_name.clone())
    }
}

/// Why a Lambda could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("configuration: {0}")]
    Settings(#[from] clap::Error),
    #[error("metrics: {0}")]
    Emf(#[from] EmfError),
    #[error("a metrics recorder is already installed")]
    RecorderInstalled,
    #[error("store: {0}")]
    Store(#[from] goalstore::Error),
    #[error("traces: {0}")]
    Xray(#[from] XrayError),
}

/// Builds a [`Lambda`].
#[derive(Debug)]
pub struct Builder {
    config: Config,
    settings: LambdaSettings,
    sdk_config: Option<aws_config::SdkConfig>,
    recorder: Option<EmfRecorder>,
    traces: Option<Traces>,
}

impl Builder {
    /// From `GOALSTORE_*` (and `AWS_LAMBDA_FUNCTION_NAME`) in the environment. Without
    /// `GOALSTORE_TABLE`, the table is the existing functions' `TABLE_NAME`, else
    /// `MAIN_TABLE_NAME` (else the embedded table, the sidecar's default).
    pub fn from_env() -> Result<Self, InitError> {
        Self::from_env_with(LambdaSettings::from_env()?)
    }

    /// [`from_env`](Self::from_env), with the Lambda settings already parsed.
    pub fn from_env_with(settings: LambdaSettings) -> Result<Self, InitError> {
        let var = |name: &str| std::env::var(name).ok();
        let args = table_args(
            var("GOALSTORE_TABLE"),
            var("TABLE_NAME"),
            var("MAIN_TABLE_NAME"),
        );
        Ok(Self::new(Config::load(args)?, settings))
    }

    /// From settings already parsed.
    pub fn new(config: Config, settings: LambdaSettings) -> Self {
        Self {
            config,
            settings,
            sdk_config: None,
            recorder: None,
            traces: None,
        }
    }

    /// Export the invocations' spans through `traces` (whose layer the caller installed).
    pub fn with_traces(mut self, traces: Option<Traces>) -> Self {
        self.traces = traces;
        self
    }

    /// The AWS configuration of the DynamoDB client, instead of the standard chain.
    pub fn with_sdk_config(mut self, sdk_config: aws_config::SdkConfig) -> Self {
        self.sdk_config = Some(sdk_config);
        self
    }

    /// Use `recorder`, which the caller has installed (and after which it called
    /// `goalstore::metrics::describe()` and [`EmfRecorder::reset`]), instead of installing one.
    pub fn with_recorder(mut self, recorder: EmfRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The store's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Installs the recorder (before the store: the cache keeps handles to its counters),
    /// zeroes the documented series without emitting them, and builds the store. Must be called
    /// within a tokio runtime; makes no network call.
    pub async fn build(self) -> Result<Lambda, InitError> {
        let started = Instant::now();
        let emf = match self.recorder {
            Some(recorder) => recorder,
            None => install_recorder(&self.settings)?,
        };
        let table: Arc<dyn Table> = match &self.config.table {
            TableChoice::Memory => Arc::new(MemoryTable::default()),
            TableChoice::DynamoDb(name) => {
                let shared = match self.sdk_config {
                    Some(shared) => shared,
                    None => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
                };
                Arc::new(
                    DynamoTable::from_sdk_config(
                        &shared,
                        name.clone(),
                        self.config.dynamodb_endpoint.as_deref(),
                    )
                    .with_consistent_reads(self.config.consistent_reads),
                )
            }
        };
        let mut store_config = self.config.store_config();
        if self.config.audit_sample_rate.is_none() {
            // A check outlives the invocation that sampled it, and a frozen sandbox would report
            // it late or never: off in Lambda unless GOALSTORE_AUDIT_SAMPLE_RATE asks for it.
            store_config.cache.audit_sample_rate = 0.0;
        }
        let store = GoalStore::new(table, store_config)?;
        Ok(Lambda {
            store,
            emf,
            traces: self.traces,
            init: started.elapsed(),
        })
    }
}

/// The arguments the configuration is parsed from: the program name, and `--table
/// dynamodb:<name>` from `TABLE_NAME` (else `MAIN_TABLE_NAME`) when `GOALSTORE_TABLE` is unset
/// (an empty variable counts as unset).
pub fn table_args(
    goalstore_table: Option<String>,
    table_name: Option<String>,
    main_table_name: Option<String>,
) -> Vec<String> {
    let mut args = vec![PROGRAM.to_owned()];
    let set = |v: Option<String>| v.filter(|v| !v.is_empty());
    if set(goalstore_table).is_none() {
        if let Some(name) = set(table_name).or(set(main_table_name)) {
            args.push("--table".into());
            args.push(format!("dynamodb:{name}"));
        }
    }
    args
}

/// Installs an EMF recorder as the global `metrics` recorder, describes goalstore's metrics and
/// forgets the zeroes that sets (so the first invocation does not emit every series).
pub fn install_recorder(settings: &LambdaSettings) -> Result<EmfRecorder, InitError> {
    let recorder = EmfRecorder::new(settings.emf_config()?);
    metrics::set_global_recorder(recorder.clone()).map_err(|_| InitError::RecorderInstalled)?;
    goalstore::metrics::describe();
    recorder.reset();
    Ok(recorder)
}

/// What a Lambda container keeps between invocations: the store and the metrics recorder.
#[derive(Debug, Clone)]
pub struct Lambda {
    pub store: GoalStore,
    pub emf: EmfRecorder,
    /// The span export, when GOALSTORE_XRAY asks for it.
    pub traces: Option<Traces>,
    /// How long [`Builder::build`] took.
    pub init: Duration,
}

impl Lambda {
    /// Runs one invocation, then writes its metrics to stdout (outside any trace).
    pub async fn invoke<T>(&self, invocation: impl Future<Output = T>) -> T {
        self.invoke_traced("", None, invocation).await
    }

    /// [`invoke`](Self::invoke) within the invocation's span (with traces on): `request_id`'s,
    /// continuing the trace its X-Ray header `trace_header` names. Its spans have been sent when
    /// this returns.
    pub async fn invoke_traced<T>(
        &self,
        request_id: &str,
        trace_header: Option<&str>,
        invocation: impl Future<Output = T>,
    ) -> T {
        let span = match &self.traces {
            Some(traces) => traces.invocation_span(request_id, trace_header),
            None => tracing::Span::none(),
        };
        // The span ends (and is sent) when the instrumented call is dropped, before the metrics.
        let result = tracing::Instrument::instrument(invocation, span).await;
        self.emf.flush_stdout();
        result
    }

    /// [`invoke`](Self::invoke), writing the metrics to `out` instead of stdout.
    pub async fn invoke_to<T>(
        &self,
        invocation: impl Future<Output = T>,
        out: &mut dyn std::io::Write,
    ) -> T {
        let result = invocation.await;
        if let Err(error) = self.emf.flush_to(out) {
            tracing::warn!(%error, "could not write EMF metrics");
        }
        result
    }
}

/// How a function logs, from Lambda's advanced logging controls.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// `AWS_LAMBDA_LOG_LEVEL` (`TRACE` … `ERROR`; `FATAL` is `ERROR`), else `RUST_LOG`'s
    /// directives, else `info`.
    pub filter: String,
    /// `AWS_LAMBDA_LOG_FORMAT`: `JSON` (also when unset: the operations guide's queries read
    /// the fields) or `Text`.
    pub json: bool,
}

impl LogSettings {
    /// The settings `var` (an environment lookup) gives.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let level = var("AWS_LAMBDA_LOG_LEVEL").map(|level| match level.to_ascii_lowercase() {
            fatal if fatal == "fatal" => "error".to_owned(),
            level => level,
        });
        let filter = level
            .or_else(|| var("RUST_LOG"))
            .filter(|filter| !filter.trim().is_empty())
            .unwrap_or_else(|| "info".to_owned());
        let json = !var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
        Self { filter, json }
    }
}

/// Logs to stderr (stdout carries the EMF documents), as [`LogSettings`] from the environment
/// say. Each line logged during an invocation carries its request id: the runtime's
/// `Lambda runtime invoke` span (`requestId`), the first of the line's `spans` in JSON (so also
/// on a line logged inside a store call's span), the span prefix in text.
///
/// With `traces`, goalstore's spans are also recorded for export, whatever the log level.
pub fn init_logs(traces: Option<&Traces>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};
    let settings = LogSettings::from_env(|name| std::env::var(name).ok());
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time();
    let logs = if settings.json {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed()
    } else {
        logs.with_target(false).boxed()
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![logs.with_filter(filter).boxed()];
    if let Some(traces) = traces {
        layers.push(traces.layer().boxed());
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// What a binary does before serving: logs, then the [`Lambda`] from the environment.
pub async fn start() -> Result<Lambda, InitError> {
    // Logs first, so that a bad setting is reported as a log line too.
    let settings = LambdaSettings::from_env();
    let traces = match &settings {
        Ok(settings) => settings.traces(),
        Err(_) => Ok(None),
    };
    init_logs(traces.as_ref().ok().and_then(Option::as_ref));
    let lambda = Builder::from_env_with(settings?)?
        .with_traces(traces?)
        .build()
        .await?;
    tracing::info!(init_ms = lambda.init.as_secs_f64() * 1000.0, "store ready");
    Ok(lambda)
}

/// The `main` of a handler binary: [`start`], then serve `$handler` (an async fn of
/// `&dyn GoalService` and a `LambdaEvent`) with `lambda_runtime`, flushing metrics after each
/// invocation. The binary's package needs `tokio`, `anyhow` and `lambda_runtime`.
#[macro_export]
macro_rules! lambda_main {
    ($handler:path) => {
        #[tokio::main]
        async fn main() -> ::anyhow::Result<()> {
            let lambda = $crate::init::start().await?;
            let lambda = &lambda;
            ::lambda_runtime::run(::lambda_runtime::service_fn(
                move |event: ::lambda_runtime::LambdaEvent<_>| async move {
                    let request_id = event.context.request_id.clone();
                    let trace = event.context.xray_trace_id.clone();
                    Ok::<_, ::std::convert::Infallible>(
                        lambda
                            .invoke_traced(
                                &request_id,
                                trace.as_deref(),
                                $handler(&lambda.store, event),
                            )
                            .await,
                    )
                },
            ))
            .await
            .map_err(|error| ::anyhow::anyhow!("{error}"))
        }
    };
}

/// The `main` of an HTTP route binary: [`start`], then serve `$handler` (an async fn of
/// `&dyn GoalService` and a `lambda_http::Request`, answering a `Response<Body>`) with
/// `lambda_http`, flushing metrics after each invocation. The binary's package needs `tokio` and
/// `anyhow`.
#[macro_export]
macro_rules! http_main {
    ($handler:path) => {
        #[tokio::main]
        async fn main() -> ::anyhow::Result<()> {
            let lambda = $crate::init::start().await?;
            let lambda = &lambda;
            $crate::http::lambda_http::run($crate::http::lambda_http::service_fn(
                move |request: $crate::http::Request| async move {
                    let request_id = $crate::http::request_id(&request);
                    let trace = $crate::http::trace_header(&request);
                    Ok::<_, ::std::convert::Infallible>(
                        lambda
                            .invoke_traced(
                                &request_id,
                                trace.as_deref(),
                                $handler(&lambda.store, request),
                            )
                            .await,
                    )
                },
            ))
            .await
            .map_err(|error| ::anyhow::anyhow!("{error}"))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn logs_follow_the_advanced_logging_controls() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert_eq!(
            LogSettings::from_env(env(&[])),
            LogSettings {
                filter: "info".into(),
                json: true
            }
        );
        let set = LogSettings::from_env(env(&[
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
            ("RUST_LOG", "trace"),
        ]));
        assert_eq!((set.filter.as_str(), set.json), ("debug", false));
        assert_eq!(
            LogSettings::from_env(env(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")])).filter,
            "error"
        );
        let rust_log = LogSettings::from_env(env(&[
            ("RUST_LOG", "goalstore=debug,info"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ]));
        assert_eq!(
            (rust_log.filter.as_str(), rust_log.json),
            ("goalstore=debug,info", true)
        );
    }

    fn settings() -> LambdaSettings {
        LambdaSettings {
            emf_namespace: crate::emf::DEFAULT_NAMESPACE.into(),
            environment: "test".into(),
            function_name: "init-test".into(),
            xray: false,
            xray_daemon_address: "127.0.0.1:2000".into(),
        }
    }

    /// DynamoDB and Redis point at a listener that counts connections: building the store must
    /// open none, and a bad setting fails naming it.
    #[tokio::test]
    async fn building_a_store_makes_no_network_call() -> Result<(), Box<dyn std::error::Error>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let accepting = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        let redis = format!("redis://127.0.0.1:{port}/");
        let config = Config::load([
            "goalstore-lambda",
            "--table",
            "dynamodb:goals",
            "--dynamodb-endpoint",
            &endpoint,
            "--cache",
            "redis",
            "--redis-url",
            &redis,
        ])?;
        let sdk = aws_config::SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "a", "b", None, None, "test",
            )))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let recorder = EmfRecorder::new(settings().emf_config()?);
        let lambda = Builder::new(config, settings())
            .with_sdk_config(sdk)
            .with_recorder(recorder)
            .build()
            .await?;
        assert_eq!(lambda.store.strategy(), goalstore::Strategy::Redis);
        let cache = lambda.store.cache().ok_or("a cache")?;
        assert_eq!(
            cache.config().audit_sample_rate,
            0.0,
            "no audit unless asked"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(connections.load(Ordering::SeqCst), 0);
        accepting.abort();

        let config = Config::load(["goalstore-lambda", "--audit-sample-rate", "0.5"])?;
        let lambda = Builder::new(config, settings())
            .with_recorder(EmfRecorder::new(settings().emf_config()?))
            .build()
            .await?;
        let cache = lambda.store.cache().ok_or("a cache")?;
        assert_eq!(cache.config().audit_sample_rate, 0.5, "asked for");

        let config = Config::load(["goalstore-lambda", "--cache-namespace", "a:b"])?;
        let error = Builder::new(config, settings())
            .with_recorder(EmfRecorder::new(settings().emf_config()?))
            .build()
            .await
            .expect_err("an invalid namespace");
        assert!(error.to_string().contains("namespace"), "{error}");
        Ok(())
    }

    #[test]
    fn the_table_comes_from_table_name_when_goalstore_table_is_unset() {
        let some = |s: &str| Some(s.to_owned());
        let table = |args: Vec<String>| Config::load(args).map(|c| c.table);
        assert_eq!(
            table(table_args(None, some("goals-prod"), some("main"))).ok(),
            Some(TableChoice::DynamoDb("goals-prod".into()))
        );
        assert_eq!(
            table(table_args(None, None, some("main-table"))).ok(),
            Some(TableChoice::DynamoDb("main-table".into()))
        );
        assert_eq!(
            table(table_args(None, some(""), some("main-table"))).ok(),
            Some(TableChoice::DynamoDb("main-table".into()))
        );
        // GOALSTORE_TABLE (read by the parser itself) wins: no flag is added.
        assert_eq!(
            table_args(some("dynamodb:x"), some("goals-prod"), None),
            [PROGRAM]
        );
        assert_eq!(table_args(None, None, None), [PROGRAM]);
    }

    #[test]
    fn settings_default_to_the_issue_s_namespace_and_name_bad_values() {
        let settings = LambdaSettings::try_parse_from(["goalstore-lambda"]).expect("defaults");
        assert_eq!(settings.emf_namespace, "ai-lifestyle-app/Goals");
        let bad = LambdaSettings {
            emf_namespace: String::new(),
            ..settings
        };
        assert!(bad.emf_config().is_err());
    }
}
