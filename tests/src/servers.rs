//! Real servers for integration tests: `moto_server` (DynamoDB-compatible), `redis-server`
//! and a three-master Redis Cluster.
//!
//! Every server listens on a free loopback port, logs to a file so its output can be
//! quoted when it fails to start, and is tied to the lifetime of the test process (see
//! the `process` module), so no test run leaves servers behind.

mod binary;
mod moto;
mod port;
mod process;
mod redis;
mod redis_cluster;

pub use moto::MotoServer;
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
