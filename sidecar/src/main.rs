//! `goalstore-sidecar`: loads the configuration, builds the store, serves until SIGTERM/SIGINT,
//! drains, exits 0.

use anyhow::Context;
use goalstore_sidecar::config::Config;
use goalstore_sidecar::server::{self, Listener, ServeOptions};

/// mimalloc: a cache hit is mostly allocation (decoding a goal into its strings and documents,
/// building the reply); with it the sidecar served ~15-25% more hits per second than with the
/// system allocator, for ~15% more memory per cached entry (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::load(std::env::args_os()) {
        Ok(config) => config,
        Err(goalstore_sidecar::config::ConfigError::Invalid(error)) => error.exit(),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    };
    let spans = match init_logs(&config) {
        Ok(spans) => spans,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    };
    tracing::info!(config = ?config.redacted(), "effective configuration");
    // Before the store: the cache keeps handles to its counters.
    let metrics = goalstore_sidecar::metrics_endpoint::install_recorder()?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding GOALSTORE_METRICS_LISTEN={}", config.metrics_listen))?;
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = tokio::spawn(goalstore_sidecar::metrics_endpoint::serve(
        metrics_listener,
        metrics,
        async {
            let _ = metrics_stopped.await;
        },
    ));
    let store = goalstore_sidecar::build_store(&config)
        .await
        .context("invalid configuration")?;
    let listener = Listener::bind(&config.listen).await?;
    tracing::info!(
        listen = %listener.describe(),
        metrics = %config.metrics_listen,
        cache = %config.cache,
        "goalstore sidecar listening"
    );
    let options = ServeOptions {
        auth_token: config.auth_token.clone(),
        max_batch_ids: config.max_batch_ids,
        max_message_bytes: config.max_message_bytes,
        max_in_flight: config.max_in_flight,
        request_timeout: config.request_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    let served = server::run(listener, store, options, shutdown_signal()).await;
    let _ = stop_metrics.send(());
    let _ = metrics_server.await;
    if let Some(provider) = spans {
        // Exports what is still queued. Off the runtime's workers: shutdown blocks until the
        // batch thread has exported, and the exporter's HTTP/2 connection runs on those workers.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "could not flush the last spans");
        }
    }
    served?;
    tracing::info!("goalstore sidecar stopped");
    Ok(())
}

/// Structured logs: JSON for log queries (`op`, `user_id`, `error_type`, `duration`), or text for
/// a person at a terminal. With GOALSTORE_OTLP_ENDPOINT, goalstore's spans (per RPC, store call,
/// DynamoDB request, Redis call) are also exported over OTLP/gRPC by a batch processor (its own
/// thread); the returned provider flushes them at exit.
///
/// Logs never include those spans (their lines stay as they were), so without an exporter no layer
/// wants them and each costs one cached callsite check. The export follows its own filter, not
/// RUST_LOG: goalstore's spans and the events inside them, at info and above.
fn init_logs(
    config: &Config,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match config.log_format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let logs = tracing_subscriber::fmt::layer();
    let logs = if json {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        logs.boxed()
    };
    let own_span =
        |meta: &tracing::Metadata<'_>| meta.is_span() && meta.target().starts_with("goalstore");
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![logs
        .with_filter(filter.and(filter_fn(move |meta| !own_span(meta))))
        .boxed()];
    let provider = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            use opentelemetry::trace::TracerProvider as _;
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .with_context(|| format!("GOALSTORE_OTLP_ENDPOINT={endpoint}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(config.otlp_service_name.clone())
                .build();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let spans = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("goalstore-sidecar"))
                .with_filter(Targets::new().with_target("goalstore", LevelFilter::INFO));
            layers.push(spans.boxed());
            Some(provider)
        }
    };
    tracing_subscriber::registry().with(layers).init();
    Ok(provider)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the sidecar");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
