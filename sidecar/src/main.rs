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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tracing::info!(config = ?config.redacted(), "effective configuration");
    let store = goalstore_sidecar::build_store(&config)
        .await
        .context("invalid configuration")?;
    let listener = Listener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.describe(), cache = %config.cache, "goalstore sidecar listening");
    let options = ServeOptions {
        auth_token: config.auth_token.clone(),
        max_batch_ids: config.max_batch_ids,
        max_message_bytes: config.max_message_bytes,
        max_in_flight: config.max_in_flight,
        request_timeout: config.request_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    server::run(listener, store, options, shutdown_signal()).await?;
    tracing::info!("goalstore sidecar stopped");
    Ok(())
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
