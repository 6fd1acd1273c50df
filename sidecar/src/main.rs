//! `goalstore-sidecar`: parses the configuration, builds the store, serves until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use goalstore_sidecar::config::Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let store = goalstore_sidecar::build_store(&config)
        .await
        .context("invalid configuration")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding GOALSTORE_LISTEN={}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        table = ?config.table,
        dynamodb_endpoint = ?config.dynamodb_endpoint,
        cache = %config.cache,
        "goalstore sidecar serving"
    );
    goalstore_sidecar::server::run(listener, store, shutdown_signal()).await?;
    tracing::info!("goalstore sidecar stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
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
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
