//! Distributed tracing: with GOALSTORE_OTLP_ENDPOINT set, the sidecar exports a span per RPC, per
//! store call, per DynamoDB request and per Redis call over OTLP/gRPC, to a collector this test
//! runs on loopback; spans still queued at SIGTERM are flushed before the process exits. Without
//! the setting (every other sidecar test) nothing is exported and the sidecar serves as before.
//! A caller tracing with OpenTelemetry (this test, through the SDK's `Client`) sends its trace
//! context, and the sidecar's spans join the caller's trace.

use goalstore_proto::v1 as pb;
use goalstore_tests::ops::send_signal;
use goalstore_tests::servers::RedisServer;
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::time::Duration;
use tokio::sync::mpsc;

/// One span as the collector received it, with its resource's `service.name`.
#[derive(Debug)]
struct Received {
    service: Option<String>,
    span: Span,
}

/// The OTLP/gRPC trace service: every span it is sent goes down the channel.
#[derive(Debug)]
struct TraceSink {
    spans: mpsc::UnboundedSender<Received>,
}

#[tonic::async_trait]
impl TraceService for TraceSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| text_attribute(&resource.attributes, "service.name"));
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                let _ = self.spans.send(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A collector on a free loopback port; stops when dropped.
struct Collector {
    endpoint: String,
    spans: mpsc::UnboundedReceiver<Received>,
    received: Vec<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let (sender, spans) = mpsc::unbounded_channel();
        let service = TraceServiceServer::new(TraceSink { spans: sender });
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self {
            endpoint,
            spans,
            received: Vec::new(),
            server,
        })
    }

    /// Receives spans until `done` holds for all received so far, or fails after `within`.
    async fn until(
        &mut self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> anyhow::Result<&[Received]> {
        let waited = tokio::time::timeout(within, async {
            while !done(&self.received) {
                match self.spans.recv().await {
                    Some(span) => self.received.push(span),
                    None => return false,
                }
            }
            true
        })
        .await;
        if !matches!(waited, Ok(true)) {
            anyhow::bail!(
                "the expected spans did not arrive within {within:?}; got {:?}",
                names(&self.received)
            );
        }
        Ok(&self.received)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn text_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
        .and_then(|value| match value {
            any_value::Value::StringValue(text) => Some(text.clone()),
            _ => None,
        })
}

fn names(received: &[Received]) -> Vec<&str> {
    received.iter().map(|r| r.span.name.as_str()).collect()
}

fn find<'a>(received: &'a [Received], name: &str) -> Option<&'a Span> {
    received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.name == name)
}

const CREATE_RPC: &str = "goalstore.v1.GoalStore/CreateGoal";
const GET_RPC: &str = "goalstore.v1.GoalStore/GetGoal";

/// Spans of a CreateGoal and a GetGoal: both RPCs, both store calls and a DynamoDB request.
fn has_both_calls(received: &[Received]) -> bool {
    [CREATE_RPC, GET_RPC, "store.create_goal", "store.get_goal"]
        .iter()
        .all(|name| find(received, name).is_some())
        && received
            .iter()
            .any(|r| r.span.name.starts_with("dynamodb."))
}

/// A sidecar over the store's table that exports its spans to `collector`, batching them for
/// `schedule_delay_ms`, with `more` settings.
async fn traced_sidecar(
    t: &DynamoStore,
    collector: &Collector,
    schedule_delay_ms: &str,
    more: &[(&str, &str)],
) -> anyhow::Result<SidecarProcess> {
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let mut env = vec![
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("GOALSTORE_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms),
    ];
    env.extend_from_slice(more);
    SidecarProcess::start(&env).await
}

async fn create_and_get(sidecar: &SidecarProcess) -> anyhow::Result<()> {
    let mut client = sidecar.client().await?;
    client
        .create_goal(pb::CreateGoalRequest {
            user_id: "u-traced".into(),
            goal_id: "g1".into(),
            title: "Read 10 books".into(),
            goal_pattern: pb::GoalPattern::Milestone as i32,
            target: Some(pb::Target {
                metric: "count".into(),
                value: Some(10.0),
                target_date: Some(goalstore_tests::goals::FAR_AHEAD.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let goal = client
        .get_goal(pb::GetGoalRequest {
            user_id: "u-traced".into(),
            goal_id: "g1".into(),
        })
        .await?
        .into_inner();
    assert_eq!(goal.goal.map(|g| g.goal_id).as_deref(), Some("g1"));
    Ok(())
}

#[tokio::test]
async fn rpc_store_dynamodb_and_redis_spans_reach_an_otlp_collector() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let redis = RedisServer::start().await?;
    let mut collector = Collector::start().await?;
    let redis_url = redis.url();
    let sidecar = traced_sidecar(
        &t,
        &collector,
        "100",
        &[
            ("GOALSTORE_CACHE", "redis"),
            ("GOALSTORE_REDIS_URL", redis_url.as_str()),
        ],
    )
    .await?;
    create_and_get(&sidecar).await?;

    let received = collector
        .until(Duration::from_secs(20), |received| {
            has_both_calls(received) && find(received, "redis.GET").is_some()
        })
        .await?;
    for r in received {
        assert_eq!(
            r.service.as_deref(),
            Some("goalstore-sidecar"),
            "service.name of {}",
            r.span.name
        );
    }
    // One trace per call: RPC → store call → DynamoDB request.
    let rpc = find(received, CREATE_RPC).expect("seen");
    let store = find(received, "store.create_goal").expect("seen");
    assert_eq!(store.trace_id, rpc.trace_id);
    assert_eq!(
        store.parent_span_id, rpc.span_id,
        "the store call is in the RPC"
    );
    assert_eq!(
        text_attribute(&store.attributes, "op").as_deref(),
        Some("create_goal")
    );
    // A person's id is personal data: no span carries it.
    for span in received.iter().map(|r| &r.span) {
        assert!(
            span.attributes.iter().all(|a| !a.key.contains("user")
                && text_attribute(&span.attributes, &a.key).as_deref() != Some("u-traced")),
            "{} carries the user id: {:?}",
            span.name,
            span.attributes
        );
    }
    let write = received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.name.starts_with("dynamodb.") && span.trace_id == rpc.trace_id)
        .unwrap_or_else(|| panic!("no DynamoDB write in the trace: {:?}", names(received)));
    assert_eq!(
        write.parent_span_id, store.span_id,
        "the request is in the store call"
    );
    // The semantic conventions' attributes of a DynamoDB call and of a Redis call.
    let operation = write.name.trim_start_matches("dynamodb.");
    for (key, value) in [
        ("db.system.name", "aws.dynamodb"),
        ("db.operation.name", operation),
        ("aws.dynamodb.table_names", t.table_name.as_str()),
    ] {
        assert_eq!(
            text_attribute(&write.attributes, key).as_deref(),
            Some(value),
            "{key} of {}: {:?}",
            write.name,
            write.attributes
        );
    }
    let redis_get = find(received, "redis.GET").expect("seen");
    for (key, value) in [
        ("db.system.name", "redis"),
        ("db.operation.name", "GET"),
        ("server.address", "127.0.0.1"),
    ] {
        assert_eq!(
            text_attribute(&redis_get.attributes, key).as_deref(),
            Some(value),
            "{key}: {:?}",
            redis_get.attributes
        );
    }
    assert!(
        redis_get.attributes.iter().any(|a| a.key == "server.port"),
        "{:?}",
        redis_get.attributes
    );
    let get = find(received, "store.get_goal").expect("seen");
    assert_eq!(
        get.parent_span_id,
        find(received, GET_RPC).expect("seen").span_id
    );
    // (A create also reads Redis: the active list its rules check.)
    assert!(
        received
            .iter()
            .any(|r| r.span.name == "redis.GET" && r.span.trace_id == get.trace_id),
        "the cache read is in GetGoal's trace: {:?}",
        names(received)
    );
    // No id in a span name: names are per operation, ids are attributes.
    assert!(
        received
            .iter()
            .all(|r| !r.span.name.contains("u-traced") && !r.span.name.contains("g1")),
        "{:?}",
        names(received)
    );
    Ok(())
}

#[tokio::test]
async fn spans_still_queued_are_exported_before_the_sidecar_exits() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let mut collector = Collector::start().await?;
    // Ten minutes between exports: only the flush at exit can deliver these spans in time.
    let mut sidecar = traced_sidecar(&t, &collector, "600000", &[]).await?;
    create_and_get(&sidecar).await?;

    send_signal(sidecar.pid().expect("running"), "TERM")?;
    let status = tokio::time::timeout(Duration::from_secs(15), sidecar.wait()).await??;
    assert!(status.success(), "exit status {status}");
    collector
        .until(Duration::from_secs(5), has_both_calls)
        .await?;
    Ok(())
}

/// The caller's spans: an exporter that hands every finished span to a channel.
#[derive(Debug)]
struct ChannelExporter(std::sync::mpsc::Sender<opentelemetry_sdk::trace::SpanData>);

impl opentelemetry_sdk::trace::SpanExporter for ChannelExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        for span in batch {
            let _ = self.0.send(span);
        }
        Ok(())
    }
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
        .and_then(|value| match value {
            any_value::Value::IntValue(number) => Some(*number),
            _ => None,
        })
}

#[tokio::test]
async fn one_trace_runs_from_the_caller_through_the_sidecar_to_dynamodb() -> anyhow::Result<()> {
    use goalstore::GoalService;
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let t = DynamoStore::start().await?;
    let mut collector = Collector::start().await?;
    // No cache: the read goes to the table, through the batch loader.
    let sidecar = traced_sidecar(&t, &collector, "100", &[("GOALSTORE_CACHE", "none")]).await?;

    // The caller: an application tracing with tracing-opentelemetry (this test's thread only).
    let (sent, caller_spans) = std::sync::mpsc::channel();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(ChannelExporter(sent))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("goals-app")));
    let _traced = tracing::subscriber::set_default(subscriber);
    let client = goalstore::Client::new(goalstore::ClientConfig {
        endpoint: sidecar.endpoint(),
        ..goalstore::ClientConfig::default()
    })?;
    let new_goal = goalstore::NewGoal::new(
        "Read 10 books",
        goalstore::GoalPattern::Milestone,
        goalstore::Target {
            metric: "count".into(),
            value: Some(10.0),
            target_date: goalstore::Timestamp::parse(goalstore_tests::goals::FAR_AHEAD),
            ..goalstore::Target::default()
        },
    );
    let created = client
        .create_goal("u-traced", new_goal)
        .instrument(tracing::info_span!("handler.create"))
        .await?;
    client
        .get_goal("u-traced", &created.goal_id)
        .instrument(tracing::info_span!("handler.get"))
        .await?;
    let refused = client
        .get_goal("u-traced", "")
        .instrument(tracing::info_span!("handler.refused"))
        .await;
    assert!(refused.is_err(), "an empty goal id is refused");
    drop(_traced);
    let caller: Vec<_> = caller_spans.try_iter().collect();
    let client_span = |handler: &str| {
        let parent = caller
            .iter()
            .find(|span| span.name == handler)
            .unwrap_or_else(|| panic!("no {handler} span"));
        caller
            .iter()
            .find(|span| {
                span.parent_span_id == parent.span_context.span_id()
                    && span.span_kind == opentelemetry::trace::SpanKind::Client
            })
            .unwrap_or_else(|| panic!("no client span under {handler}"))
            .clone()
    };
    let (create, get, refused) = (
        client_span("handler.create"),
        client_span("handler.get"),
        client_span("handler.refused"),
    );
    assert_eq!(create.name, CREATE_RPC);
    let id = |span: &opentelemetry_sdk::trace::SpanData| {
        (
            span.span_context.trace_id().to_bytes().to_vec(),
            span.span_context.span_id().to_bytes().to_vec(),
        )
    };

    let received = collector
        .until(Duration::from_secs(20), |received| {
            [CREATE_RPC, GET_RPC, "store.create_goal", "store.get_goal"]
                .iter()
                .all(|name| find(received, name).is_some())
                && received.iter().filter(|r| r.span.name == GET_RPC).count() == 2
                && find(received, "batch_loader.BatchGetItem").is_some()
                && find(received, "dynamodb.BatchGetItem").is_some()
        })
        .await?;
    // client span → sidecar RPC span → store span → DynamoDB span, one trace.
    let (trace, client_id) = id(&create);
    let rpc = received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.name == CREATE_RPC)
        .expect("seen");
    assert_eq!(
        rpc.trace_id, trace,
        "the sidecar continues the caller's trace"
    );
    assert_eq!(
        rpc.parent_span_id, client_id,
        "the RPC span is the client span's child"
    );
    let store = find(received, "store.create_goal").expect("seen");
    assert_eq!(store.parent_span_id, rpc.span_id);
    let write = received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.name.starts_with("dynamodb.") && span.parent_span_id == store.span_id)
        .unwrap_or_else(|| {
            panic!(
                "no DynamoDB request in the store call: {:?}",
                names(received)
            )
        });
    assert_eq!(write.trace_id, trace);
    // The RPC attributes and codes, on both ends.
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "goalstore.v1.GoalStore"),
        ("rpc.method", "CreateGoal"),
    ] {
        assert_eq!(
            text_attribute(&rpc.attributes, key).as_deref(),
            Some(value),
            "{key}"
        );
        assert!(
            create
                .attributes
                .iter()
                .any(|a| a.key.as_str() == key && a.value.as_str() == value),
            "{key} of the client span: {:?}",
            create.attributes
        );
    }
    assert_eq!(
        int_attribute(&rpc.attributes, "rpc.grpc.status_code"),
        Some(0)
    );
    let code_of = |span: &opentelemetry_sdk::trace::SpanData| {
        span.attributes
            .iter()
            .find(|a| a.key.as_str() == "rpc.grpc.status_code")
            .map(|a| a.value.clone())
    };
    assert_eq!(code_of(&create), Some(opentelemetry::Value::I64(0)));
    assert_eq!(
        code_of(&refused),
        Some(opentelemetry::Value::I64(
            tonic::Code::InvalidArgument as i64
        ))
    );
    let (refused_trace, refused_id) = id(&refused);
    let refused_rpc = received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.trace_id == refused_trace && span.name == GET_RPC)
        .expect("the refused call's RPC span");
    assert_eq!(refused_rpc.parent_span_id, refused_id);
    assert_eq!(
        int_attribute(&refused_rpc.attributes, "rpc.grpc.status_code"),
        Some(tonic::Code::InvalidArgument as i64)
    );

    // The read: the batch loader's shared request links to the store call it serves (and, as
    // it serves that one only, is its child); the DynamoDB request is inside the shared one.
    let (get_trace, get_id) = id(&get);
    let get_rpc = received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.trace_id == get_trace && span.name == GET_RPC)
        .expect("the read's RPC span");
    assert_eq!(get_rpc.parent_span_id, get_id);
    let get_store = received
        .iter()
        .map(|r| &r.span)
        .find(|span| span.name == "store.get_goal" && span.parent_span_id == get_rpc.span_id)
        .expect("the read's store span");
    let shared = find(received, "batch_loader.BatchGetItem").expect("seen");
    assert!(
        shared
            .links
            .iter()
            .any(|link| link.trace_id == get_trace && link.span_id == get_store.span_id),
        "the shared request links to the store call: {:?}",
        shared.links
    );
    assert_eq!(shared.parent_span_id, get_store.span_id);
    let batch_get = find(received, "dynamodb.BatchGetItem").expect("seen");
    assert_eq!(batch_get.parent_span_id, shared.span_id);
    assert_eq!(batch_get.trace_id, get_trace);
    // Still no person's id anywhere.
    for span in received.iter().map(|r| &r.span) {
        assert!(
            span.attributes
                .iter()
                .all(|a| text_attribute(&span.attributes, &a.key).as_deref() != Some("u-traced")),
            "{} carries the user id",
            span.name
        );
    }
    Ok(())
}
