//! End-to-end tests of goalstore against real servers: a DynamoDB-compatible server
//! (`moto_server`) over HTTP, `redis-server` standalone and as a three-master cluster, and the
//! sidecar as a separate process. One test binary, so the SDK is linked once; the harness
//! (`goalstore_tests`) starts and stops the servers.

mod access;
mod cache;
mod cancellation;
mod client;
mod compat;
mod consistency;
mod faults_dynamodb;
mod faults_redis;
mod goalctl;
mod hostile;
mod items;
mod lambda;
mod lambda_contract;
mod observability;
mod otlp;
mod progress_state;
mod python;
mod service;
mod sidecar;
mod sidecar_cache;
mod sidecar_ops;
mod soak;
mod store;
mod table;

/// Held by the tests that judge timing under load (the soak, the consistency checker, the
/// cancellation harness), so that they never run at the same time and starve each other's
/// callers on a 2-core machine. Other tests still run beside them.
pub(crate) async fn timed_load() -> tokio::sync::MutexGuard<'static, ()> {
    static TIMED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TIMED.lock().await
}
