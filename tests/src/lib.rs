//! Test harness for goalstore: starts the real servers the integration tests talk to.
//!
//! Nothing here is a mock. [`servers`] starts a real `moto_server` (a DynamoDB-compatible
//! server) and real `redis-server` processes on loopback ports, [`dynamo`] creates tables
//! on them and loads the fixture items, and [`proxy`] sits between the store and the
//! DynamoDB-compatible server so tests can assert how many requests actually reached it;
//! [`faults`] injects latency, resets, throttling and partitions into it and into Redis.
//! [`runtime_api`] stands in for the Lambda Runtime API, so a handler binary runs as in Lambda.

pub mod dynamo;
pub mod faults;
pub mod gate;
pub mod goals;
pub mod ops;
pub mod origin;
pub mod proxy;
pub mod runtime_api;
pub mod servers;
pub mod sidecar;
pub mod stores;
