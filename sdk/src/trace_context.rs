//! W3C trace context (`traceparent`, `tracestate`) across the gRPC hop.
//!
//! The [`Client`](crate::client::Client) writes the context of each call's span into the
//! request's headers ([`inject`]); the sidecar reads it back ([`extract`]) and makes its RPC span
//! a child of the caller's, so one trace runs from the caller through the sidecar to DynamoDB.
//!
//! The format is fixed to W3C Trace Context, whatever global propagator the process set: it is
//! the wire contract between goalstore's two ends (and what gRPC clients in other languages send
//! with their OpenTelemetry instrumentation).
//!
//! Both ends make their call spans here too ([`rpc_span`], [`record_code`]), so the client's and
//! the server's carry the same semantic-convention attributes.
//!
//! Free when nothing records spans: a span no OpenTelemetry layer saw has no context, and
//! nothing is written.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the trace context of `span` into `headers`. When `span` is not recorded by an
/// OpenTelemetry layer, the caller's current OpenTelemetry context is used instead (for a caller
/// that uses the OpenTelemetry API without `tracing`); when neither has a span, nothing is
/// written.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let mut context = span.context();
    if !context.span().span_context().is_valid() {
        context = opentelemetry::Context::current();
    }
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut Headers(headers));
    }
}

/// The trace context the caller sent in `headers`; an empty context when there is none or it is
/// malformed (a malformed `traceparent` starts a new trace, as the W3C recommendation says).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeadersRef(headers))
}

/// Makes `span` a child of the caller's span, when the caller sent one in `headers`.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let caller = extract(headers);
    if caller.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer records `span`: nothing to join then.
        let _ = span.set_parent(caller);
    }
}

/// Which end of a call a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// The span of one call of `service`'s `method` (`service/method`), with the OpenTelemetry
/// semantic conventions' RPC attributes; its code comes later, by [`record_code`].
pub fn rpc_span(side: Side, service: &str, method: &str) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        otel.name = format!("{service}/{method}"),
        otel.kind = match side {
            Side::Client => "client",
            Side::Server => "server",
        },
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records the call's `rpc.grpc.status_code`, and marks the span failed as the conventions say:
/// a client span for any code but OK; a server span only for the codes that mean the server
/// failed (not the caller's request).
pub fn record_code(span: &tracing::Span, side: Side, code: tonic::Code) {
    use tonic::Code;
    span.record("rpc.grpc.status_code", code as i32);
    let failed = match side {
        Side::Client => code != Code::Ok,
        Side::Server => matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ),
    };
    if failed {
        span.record("otel.status_code", "ERROR");
    }
}

struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only its own header names and values in their grammar; anything
        // else (never seen) is left out rather than sent malformed.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeadersRef<'a>(&'a http::HeaderMap);

impl Extractor for HeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn remote(trace: u128, span: u64) -> opentelemetry::Context {
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).expect("a valid trace state"),
        ))
    }

    #[test]
    fn a_context_survives_the_round_trip_through_headers() {
        let sent = remote(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331);
        let mut headers = http::HeaderMap::new();
        let _attached = sent.clone().attach();
        inject(&tracing::Span::none(), &mut headers);
        assert_eq!(
            headers["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(headers["tracestate"], "vendor=value");
        let received = extract(&headers);
        assert_eq!(
            received.span().span_context().trace_id(),
            sent.span().span_context().trace_id()
        );
        assert_eq!(
            received.span().span_context().span_id(),
            sent.span().span_context().span_id()
        );
        assert!(received.span().span_context().is_remote());
    }

    #[test]
    fn without_a_span_nothing_is_written() {
        let mut headers = http::HeaderMap::new();
        inject(&tracing::Span::none(), &mut headers);
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn a_malformed_traceparent_is_no_context() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", http::HeaderValue::from_static(bad));
            let context = extract(&headers);
            assert!(!context.span().span_context().is_valid(), "{bad}");
        }
    }
}
