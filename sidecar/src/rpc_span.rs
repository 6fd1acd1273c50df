//! The span of each GoalStore call: named after its RPC (`goalstore.v1.GoalStore/GetGoal`), with
//! the OpenTelemetry semantic conventions' RPC attributes (`rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code`), and a child of the caller's span when the caller sent a
//! W3C `traceparent` (`goalstore::trace_context`).
//!
//! One layer for every method, outside the deadline layer and the token check, so a call those
//! refuse still has its span and its status code. Health and reflection calls get none (a
//! readiness probe every few seconds is not worth a trace).
//!
//! The status code is read from the response head: tonic answers a failed unary call
//! trailers-only (`grpc-status` in the headers), and a response head without `grpc-status` is a
//! unary success whose trailer says OK. A call whose future is dropped (the client hung up) ends
//! its span without a code.
//!
//! Free when nothing records spans: the span is disabled and the traceparent never parsed.

use futures::future::BoxFuture;
use goalstore::trace_context::{self, Side};
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::Code;
use tracing::Instrument;

/// The gRPC service whose calls get spans.
const SERVICE: &str = goalstore_proto::v1::goal_store_server::SERVICE_NAME;

/// Applies [`RpcSpan`] to every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcSpanLayer;

impl<S> tower::Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> RpcSpan<S> {
        RpcSpan { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RpcSpan<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(method) = method_of(request.uri().path()) else {
            return Box::pin(self.inner.call(request));
        };
        let span = trace_context::rpc_span(Side::Server, SERVICE, method);
        if !span.is_disabled() {
            trace_context::continue_trace(&span, request.headers());
        }
        let call = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let answer = call.await;
            if let Ok(response) = &answer {
                trace_context::record_code(&span, Side::Server, code_of(response.headers()));
            }
            answer
        })
    }
}

/// The method of a GoalStore call's path (`/goalstore.v1.GoalStore/GetGoal`), as a `'static`
/// name; `None` for another service's call or an unknown method.
fn method_of(path: &str) -> Option<&'static str> {
    let method = path
        .strip_prefix('/')?
        .strip_prefix(SERVICE)?
        .strip_prefix('/')?;
    METHODS.iter().copied().find(|known| *known == method)
}

/// Every method of `goalstore.v1.GoalStore`; a test checks the list against the descriptor.
pub const METHODS: [&str; 13] = [
    "GetGoal",
    "BatchGetGoals",
    "ListActiveGoals",
    "ListGoals",
    "CreateGoal",
    "UpdateGoal",
    "ArchiveGoal",
    "LogActivity",
    "ListActivities",
    "GetProgress",
    "PublishEvents",
    "Stats",
    "InvalidateUser",
];

/// The call's code as the response head states it (see the module documentation).
fn code_of(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .map_or(Code::Ok, |value| Code::from_bytes(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_method_list_is_the_services() {
        let set = prost_types::FileDescriptorSet::decode(goalstore_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let methods: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| &file.service)
            .filter(|service| service.name() == "GoalStore")
            .flat_map(|service| &service.method)
            .map(|method| method.name().to_owned())
            .collect();
        let mut listed: Vec<&str> = METHODS.to_vec();
        let mut described: Vec<&str> = methods.iter().map(String::as_str).collect();
        listed.sort_unstable();
        described.sort_unstable();
        assert_eq!(listed, described);
    }

    #[test]
    fn only_goalstore_calls_have_a_method() {
        assert_eq!(
            method_of("/goalstore.v1.GoalStore/GetGoal"),
            Some("GetGoal")
        );
        for other in [
            "/grpc.health.v1.Health/Check",
            "/goalstore.v1.GoalStore/Nope",
            "/goalstore.v1.GoalStoreX/GetGoal",
            "goalstore.v1.GoalStore/GetGoal",
            "/",
        ] {
            assert_eq!(method_of(other), None, "{other}");
        }
    }

    #[test]
    fn the_code_is_read_from_the_head() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_of(&headers), Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(code_of(&headers), Code::InvalidArgument);
    }
}
