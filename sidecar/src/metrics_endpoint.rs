//! The Prometheus endpoint: `GET /metrics` on its own listener (`GOALSTORE_METRICS_LISTEN`,
//! loopback by default), Prometheus text format, until shutdown.
//!
//! The recorder is installed before the store is built (the cache keeps handles to its hot-path
//! counters), and every documented series is set to zero at once, so panels have no gaps. Beside
//! goalstore's own: `goalstore_build_info` and the standard process metrics (CPU seconds,
//! resident memory, open file descriptors, ... from `metrics-process`), read at each scrape.

use goalstore::metrics::{
    BATCH_KEY_BUCKETS, CONSISTENCY_STALE_AGE, DYNAMODB_BATCH_KEYS, LATENCY_BUCKETS,
    OPERATION_DURATION, STALE_AGE_BUCKETS,
};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Installs the Prometheus recorder as the process's `metrics` recorder and describes every
/// goalstore metric.
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(OPERATION_DURATION.into()), &LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(DYNAMODB_BATCH_KEYS.into()),
            &BATCH_KEY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(CONSISTENCY_STALE_AGE.into()),
            &STALE_AGE_BUCKETS,
        )?
        .install_recorder()?;
    goalstore::metrics::describe();
    goalstore::metrics::build_info(env!("CARGO_PKG_VERSION"), env!("GOALSTORE_GIT_SHA"));
    metrics_process::Collector::default().describe();
    Ok(handle)
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(5));
            loop {
                ticks.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let process = std::sync::Arc::new(metrics_process::Collector::default());
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let (handle, process) = (handle.clone(), process.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (handle, process) = (handle.clone(), process.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(respond(&request, &handle, &process))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
    upkeep.abort();
}

fn respond<B>(
    request: &Request<B>,
    handle: &PrometheusHandle,
    process: &metrics_process::Collector,
) -> Response<Full<Bytes>> {
    let mut response = if request.uri().path() == "/metrics" {
        process.collect();
        let mut response = Response::new(Full::new(Bytes::from(handle.render())));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    } else {
        Response::new(Full::new(Bytes::from_static(b"not found; try /metrics\n")))
    };
    if request.uri().path() != "/metrics" {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}
