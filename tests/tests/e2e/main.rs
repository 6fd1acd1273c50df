//! End-to-end tests of goalstore against real servers: a DynamoDB-compatible server
//! (`moto_server`) over HTTP, and the sidecar as a separate process. One test binary, so the SDK
//! is linked once; the harness (`goalstore_tests`) starts and stops the servers.

mod items;
mod sidecar;
mod store;
mod table;
