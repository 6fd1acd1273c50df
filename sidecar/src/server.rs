//! The gRPC server: the GoalStore service, `grpc.health.v1.Health` and server reflection on one
//! listener, until `shutdown` completes.
//!
//! The listener and the shutdown signal are passed in (as in mini-redis), so tests bind port 0
//! and stop the server when they like.

use crate::service::GoalStoreService;
use goalstore::GoalStore;
use goalstore_proto::v1::goal_store_server::GoalStoreServer;
use std::future::Future;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `store` on `listener` until `shutdown` completes; in-flight calls then finish.
pub async fn run(
    listener: TcpListener,
    store: GoalStore,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (mut health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<GoalStoreServer<GoalStoreService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(goalstore_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(goalstore_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(GoalStoreServer::new(GoalStoreService::new(store)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
