//! The gRPC server: the GoalStore service, `grpc.health.v1.Health` and server reflection on one
//! listener (TCP, or a Unix socket with mode 0600), until `shutdown` completes; then in-flight
//! calls get `shutdown_grace` to finish.
//!
//! The listener and the shutdown signal are passed in (as in mini-redis), so tests bind port 0
//! and stop the server when they like. Health reports NOT_SERVING until the table has answered
//! once; a degraded cache never fails health (it shows in Stats). The bearer token, when set, is
//! checked in constant time on every GoalStore call; health and reflection stay open.

use crate::config::Listen;
use crate::service::GoalStoreService;
use goalstore::GoalStore;
use goalstore_proto::v1::goal_store_server::GoalStoreServer;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};
use tonic_health::ServingStatus;

/// The name health checks use for the GoalStore service.
pub const SERVICE_NAME: &str = "goalstore.v1.GoalStore";

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("binding {listen}: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
}

/// How the server guards itself.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub auth_token: Option<String>,
    pub max_batch_ids: usize,
    pub max_message_bytes: usize,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            auth_token: None,
            max_batch_ids: 1000,
            max_message_bytes: 4 * 1024 * 1024,
            max_in_flight: 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `listen`. A Unix socket is created under a temporary name, given mode 0600 and then
    /// renamed into place, so it is never reachable with looser permissions.
    pub async fn bind(listen: &Listen) -> Result<Self, ServeError> {
        let failed = |source| ServeError::Bind {
            listen: listen.to_string(),
            source,
        };
        match listen {
            Listen::Tcp(address) => Ok(Listener::Tcp(
                TcpListener::bind(address).await.map_err(failed)?,
            )),
            Listen::Unix(path) => {
                let staging = staging_path(path);
                let _ = std::fs::remove_file(&staging);
                let listener = UnixListener::bind(&staging).map_err(failed)?;
                restrict(&staging).map_err(failed)?;
                remove_stale_socket(path).map_err(failed)?;
                std::fs::rename(&staging, path).map_err(failed)?;
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| "tcp".into(), |a| a.to_string()),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.staging", std::process::id()));
    path.with_file_name(name)
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Removes a socket left behind by a previous run; refuses to remove anything else.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Checks the bearer token of GoalStore calls.
#[derive(Clone)]
struct BearerAuth {
    expected: Option<Arc<[u8]>>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if bool::from(given.as_bytes().ct_eq(expected)) {
            Ok(request)
        } else {
            Err(goalstore::wire::status_of(
                &goalstore::Error::Unauthenticated("a valid bearer token is required".into()),
            ))
        }
    }
}

/// Serves `store` on `listener` until `shutdown` completes, then lets in-flight calls finish for
/// up to `options.shutdown_grace`.
pub async fn run(
    listener: Listener,
    store: GoalStore,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    let probe = tokio::spawn(report_when_reachable(store.clone(), health));

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(goalstore_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(goalstore_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let service = GoalStoreService::new(store, options.max_in_flight, options.max_batch_ids);
    let goal_store = InterceptedService::new(
        GoalStoreServer::new(service).max_decoding_message_size(options.max_message_bytes),
        BearerAuth {
            expected: options
                .auth_token
                .as_ref()
                .map(|token| Arc::from(token.as_bytes())),
        },
    );
    let router = tonic::transport::Server::builder()
        // HTTP/2 keepalive: a client gone without a word (a crashed process, a dropped NAT
        // entry) is noticed and its connection's calls cancelled within interval + timeout.
        .http2_keepalive_interval(Some(goalstore::client::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(goalstore::client::KEEPALIVE_TIMEOUT))
        // Outermost, so a call the deadline or the token check answers still has its span.
        .layer(crate::rpc_span::RpcSpanLayer)
        .layer(crate::deadline::DeadlineLayer {
            request_timeout: options.request_timeout,
        })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(goal_store);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    // tonic drains gracefully once the incoming stream ends; it gets no signal of its own, since
    // on a signal it would stop polling (and so keep) the listener until every call finished.
    let drained = std::future::pending::<()>();
    let server: std::pin::Pin<
        Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match listener {
        Listener::Tcp(listener) => Box::pin(router.serve_with_incoming_shutdown(
            // tonic sets TCP_NODELAY only on connections it accepts itself; without it every
            // small reply waits ~40 ms for the peer's delayed ACK.
            until_stopped(
                tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |stream| {
                    stream.and_then(|stream| stream.set_nodelay(true).map(|()| stream))
                }),
                stopped,
            ),
            drained,
        )),
        Listener::Unix(listener, _) => Box::pin(router.serve_with_incoming_shutdown(
            until_stopped(UnixListenerStream::new(listener), stopped),
            drained,
        )),
    };
    let mut server = server;
    let result = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
            tracing::info!(grace = ?options.shutdown_grace, "shutting down: no new calls; draining");
            let _ = stop.send(true);
            match tokio::time::timeout(options.shutdown_grace, server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("calls still in flight after the grace period; stopping anyway");
                    Ok(())
                }
            }
        }
    };
    probe.abort();
    Ok(result?)
}

/// The connections `incoming` accepts, until `stopped` turns true; then the stream ends and drops
/// the listener, so new clients are refused at once (UNAVAILABLE) instead of being accepted by the
/// kernel and never served while in-flight calls drain.
fn until_stopped<S>(
    incoming: S,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> impl tokio_stream::Stream<Item = S::Item>
where
    S: tokio_stream::Stream + Unpin,
{
    futures::stream::unfold(
        (incoming, stopped),
        |(mut incoming, mut stopped)| async move {
            let next = tokio::select! {
                next = tokio_stream::StreamExt::next(&mut incoming) => next,
                _ = stopped.wait_for(|stop| *stop) => None,
            };
            next.map(|connection| (connection, (incoming, stopped)))
        },
    )
}

/// Reports SERVING once the table has answered.
async fn report_when_reachable(store: GoalStore, health: tonic_health::server::HealthReporter) {
    loop {
        match store.check_table().await {
            Ok(()) => {
                health.set_service_status("", ServingStatus::Serving).await;
                health
                    .set_service_status(SERVICE_NAME, ServingStatus::Serving)
                    .await;
                tracing::info!("the table answers: serving");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "the table does not answer yet: not serving");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
