//! Traces on Lambda, by AWS's conventions.
//!
//! With `GOALSTORE_XRAY=true`, each invocation is a span that continues the trace Lambda started
//! for it (the X-Ray header the Runtime API hands over with the event, which the runtime also
//! puts in `_X_AMZN_TRACE_ID`), and goalstore's spans under it (store calls, the batch loader's
//! shared reads, DynamoDB and Redis calls) go to the X-Ray daemon Lambda runs beside the function
//! (`AWS_XRAY_DAEMON_ADDRESS`, UDP), one segment document each.
//!
//! Why X-Ray and not OTLP, as the sidecar exports: a Lambda has the X-Ray daemon and no collector
//! unless a layer adds one (and the ADOT collector layer receives X-Ray too), and the functions
//! stay free of the OTLP exporter and its gRPC stack.
//!
//! Invariants:
//! - The invocation decides: a header with `Sampled=1` is recorded; `Sampled=0`, or no header,
//!   records nothing (a function never starts a trace of its own, which would have no Lambda
//!   segment to hang from).
//! - Each span is sent as it ends (a simple processor: one datagram, no background thread), so
//!   nothing waits in a buffer when Lambda freezes the sandbox after the invocation.
//! - No user id in any span (the store's spans carry none).
//! - The exporter opens no `tracing` spans of its own (opentelemetry-aws's `internal-logs` stays
//!   off): it runs while a span closes, and a span opened then, under a span still open, kept
//!   that parent from ever closing, so the invocation's segment was never sent. The price: a
//!   segment the translator refuses is dropped without a log line.
//!
//! What this module does not do: sample on its own, export metrics or logs, or trace the runtime's
//! own polling.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::net::SocketAddr;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XrayError {
    #[error("AWS_XRAY_DAEMON_ADDRESS={0:?} is not an ip:port address")]
    DaemonAddress(String),
    #[error("opening a UDP socket to the X-Ray daemon at {address}: {source}")]
    Socket {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The span export of a function: clones share it.
#[derive(Debug, Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    function_name: String,
}

impl Traces {
    /// Spans of the function `function_name`, sent to the X-Ray daemon at `daemon` (the value of
    /// `AWS_XRAY_DAEMON_ADDRESS`, `ip:port`).
    pub fn new(daemon: &str, function_name: &str) -> Result<Self, XrayError> {
        let address: SocketAddr = daemon
            .trim()
            .parse()
            .map_err(|_| XrayError::DaemonAddress(daemon.to_owned()))?;
        let client = XrayDaemonClient::new(address)
            .map_err(|source| XrayError::Socket { address, source })?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(function_name.to_owned())
            .with_attribute(opentelemetry::KeyValue::new("cloud.provider", "aws"))
            .with_attribute(opentelemetry::KeyValue::new("cloud.platform", "aws_lambda"))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(XrayExporter::new(client))
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
            .with_resource(resource)
            .build();
        Ok(Self {
            provider,
            function_name: function_name.to_owned(),
        })
    }

    /// The layer that records goalstore's spans (its own, at info and above) for export.
    pub fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("goalstore-lambda"))
            .with_filter(Targets::new().with_target("goalstore", LevelFilter::INFO))
            .boxed()
    }

    /// The span of one invocation (`request_id`), a child of the trace `trace_header` (the X-Ray
    /// header of the invocation) names; recorded only when that header says `Sampled=1`.
    pub fn invocation_span(&self, request_id: &str, trace_header: Option<&str>) -> tracing::Span {
        let span = tracing::info_span!(
            "invocation",
            otel.name = %self.function_name,
            otel.kind = "server",
            faas.invocation_id = request_id,
            cloud.provider = "aws",
        );
        if let Some(parent) = trace_header.and_then(parent_of) {
            let _ = span.set_parent(parent);
        }
        span
    }
}

/// The context an X-Ray trace header (`Root=1-…;Parent=…;Sampled=1`) names, or `None` when it is
/// malformed.
fn parent_of(header: &str) -> Option<opentelemetry::Context> {
    let span = opentelemetry_aws::trace::xray_propagator::span_context_from_str(header)?;
    span.is_valid()
        .then(|| opentelemetry::Context::new().with_remote_span_context(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_header_names_its_parent_and_its_decision() {
        let parent =
            parent_of("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                .expect("a valid header");
        let span = parent.span();
        let context = span.span_context();
        assert_eq!(
            context.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(context.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(context.is_sampled());
        assert!(context.is_remote());
        let unsampled =
            parent_of("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
                .expect("a valid header");
        assert!(!unsampled.span().span_context().is_sampled());
        for bad in ["", "Root=nonsense", "Parent=53995c3f42cd8ad8;Sampled=1"] {
            assert!(parent_of(bad).is_none(), "{bad:?}");
        }
    }

    /// A sampled invocation's span and its children reach the daemon (a UDP socket here) as they
    /// end, the invocation's as a segment under Lambda's; an unsampled one sends nothing.
    #[test]
    fn spans_reach_the_daemon_as_they_end() -> Result<(), Box<dyn std::error::Error>> {
        use tracing_subscriber::layer::SubscriberExt;
        let daemon = std::net::UdpSocket::bind("127.0.0.1:0")?;
        daemon.set_nonblocking(true)?;
        let traces = Traces::new(&daemon.local_addr()?.to_string(), "get-goal")?;
        let _traced =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(traces.layer()));
        // X-Ray takes trace ids of the last 30 days only: the id starts with its epoch second.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let root = format!("1-{:08x}-bd862e3fe1be46a994272793", now.as_secs());
        for (request_id, sampled) in [("r0", 0), ("r1", 1)] {
            let header = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled={sampled}");
            let span = traces.invocation_span(request_id, Some(&header));
            let _entered = span.enter();
            drop(tracing::info_span!(target: "goalstore::store", "store"));
        }
        let mut documents = Vec::new();
        let mut buffer = vec![0u8; 65_536];
        while let Ok(length) = daemon.recv(&mut buffer) {
            let datagram = String::from_utf8(buffer[..length].to_vec())?;
            let (_, document) = datagram.split_once('\n').ok_or("no daemon header")?;
            documents.push(serde_json::from_str::<serde_json::Value>(document)?);
        }
        assert_eq!(documents.len(), 2, "{documents:?}");
        let segment = documents
            .iter()
            .find(|d| d["name"] == "get-goal")
            .ok_or("no invocation segment")?;
        assert_eq!(segment["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(segment["trace_id"], root.as_str());
        let store = documents
            .iter()
            .find(|d| d["name"] == "store")
            .ok_or("no store subsegment")?;
        assert_eq!(store["parent_id"], segment["id"]);
        Ok(())
    }

    #[test]
    fn a_bad_daemon_address_is_named() {
        let error = Traces::new("localhost", "f").expect_err("not ip:port");
        assert!(
            error.to_string().contains("AWS_XRAY_DAEMON_ADDRESS"),
            "{error}"
        );
    }
}
