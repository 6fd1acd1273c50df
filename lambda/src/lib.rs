//! goalstore on AWS Lambda.
//!
//! - [`init`]: reads the same `GOALSTORE_*` configuration as the sidecar and builds the store
//!   once per container, before the first invocation and without a network call;
//! - [`emf`]: a `metrics` recorder writing CloudWatch Embedded Metric Format to stdout, flushed
//!   once per invocation;
//! - [`api`]: API Gateway (REST, proxy integration) handlers: get goal, list goals, log activity,
//!   get progress;
//! - [`stream`]: the DynamoDB Streams handler, turning changed goal and activity items into the
//!   invalidation events the store applies to its caches.
//!
//! Handlers are plain async functions of a `&dyn GoalService` and a `LambdaEvent`, so tests call
//! them in process; the binaries in `src/bin/` only wire them to `lambda_runtime`.

pub mod api;
pub mod emf;
pub mod init;
pub mod stream;

pub use init::{Builder, InitError, Lambda, LambdaSettings};
