//! `goalstore-sidecar`: loads the configuration, builds the store, serves until SIGTERM/SIGINT,
//! drains, exits 0.

use anyhow::Context;
use goalstore_sidecar::config::Config;
use goalstore_sidecar::server::{self, Listener, ServeOptions};

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
    init_logs(&config.log_format);
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
    server::run(listener, store, options, shutdown_signal()).await?;
    let _ = stop_metrics.send(());
    let _ = metrics_server.await;
    tracing::info!("goalstore sidecar stopped");
    Ok(())
}

/// Structured logs: JSON for log queries (`op`, `user_id`, `error_type`, `duration`), or text for
/// a person at a terminal.
fn init_logs(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        "json" => true,
        "text" => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        logs.init();
    }
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
