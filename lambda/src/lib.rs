//! goalstore on AWS Lambda.
//!
//! - [`init`]: reads the same `GOALSTORE_*` configuration as the sidecar and builds the store
//!   once per container, before the first invocation and without a network call;
//! - [`emf`]: a `metrics` recorder writing CloudWatch Embedded Metric Format to stdout, flushed
//!   once per invocation;
//! - [`http`]: the goals HTTP API on `lambda_http` (API Gateway HTTP API 2.0 and REST API 1.0
//!   events), answered as the existing Python handlers answer it: eight routes, one binary each;
//! - [`stream`]: the DynamoDB Streams handler, turning changed goal and activity items into the
//!   invalidation events the store applies to its caches.
//!
//! Handlers are plain async functions of a `&dyn GoalService` and a `lambda_http::Request` (HTTP
//! routes) or a `LambdaEvent` (the stream), so tests call them in process; the binaries in
//! `src/bin/` only wire them to the runtime ([`http_main!`], [`lambda_main!`]).

pub mod emf;
pub mod http;
pub mod init;
pub mod stream;
pub mod xray;

pub use init::{Builder, InitError, Lambda, LambdaSettings};
