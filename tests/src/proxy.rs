//! A counting HTTP reverse proxy in front of the DynamoDB-compatible server.
//!
//! Tests point the store at the proxy and assert how many requests actually reached
//! DynamoDB, per operation: that is how caching and batching are observed from outside.
//! Every request passes through `handle`, where the proxy's fault plan ([`Faults`]: added
//! latency, throttling responses, dropped connections, unprocessed keys) applies.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::{self, Fault, Faults};

/// Operation name counted for requests without a usable `X-Amz-Target` header.
pub const UNKNOWN_OPERATION: &str = "unknown";

/// The header naming the DynamoDB operation, e.g. `DynamoDB_20120810.GetItem`.
const TARGET: HeaderName = HeaderName::from_static("x-amz-target");

/// Back-off after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// An HTTP/1.1 reverse proxy in front of a DynamoDB-compatible server that counts
/// requests per DynamoDB operation (taken from the `X-Amz-Target` header, e.g.
/// "DynamoDB_20120810.BatchGetItem" -> "BatchGetItem").
#[derive(Debug)]
pub struct DynamoProxy {
    address: SocketAddr,
    counts: Arc<Counts>,
    faults: Arc<Faults>,
    /// Accepts connections and owns them; aborted on drop.
    task: JoinHandle<()>,
}

impl DynamoProxy {
    /// Listens on 127.0.0.1:0 and forwards every request to `upstream` (e.g.
    /// `MotoServer::shared().endpoint()`). The proxy lives until it is dropped.
    pub async fn start(upstream: &str) -> anyhow::Result<DynamoProxy> {
        let upstream = parse_upstream(upstream)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the proxy's listener")?;
        let address = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let faults = Arc::new(Faults::default());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            upstream,
            // The default (set_host) keeps a Host header that is already there: the
            // client's, which its SigV4 signature covers.
            client: Client::builder(TokioExecutor::new()).build(connector),
            counts: Arc::clone(&counts),
            faults: Arc::clone(&faults),
        });
        let task = tokio::spawn(serve(listener, shared));
        Ok(DynamoProxy {
            address,
            counts,
            faults,
            task,
        })
    }

    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Requests of one operation forwarded so far.
    pub fn count(&self, operation: &str) -> u64 {
        self.counts.lock().get(operation).copied().unwrap_or(0)
    }

    /// All requests forwarded so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().values().sum()
    }

    /// All counts, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().clone()
    }

    /// The fault plan: what to do to the requests that come next (nothing, at first).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Forget the counts so far.
    pub fn reset(&self) {
        self.counts.lock().clear();
    }
}

impl Drop for DynamoProxy {
    fn drop(&mut self) {
        // Dropping the task's JoinSet aborts every connection too.
        self.task.abort();
    }
}

/// Requests received, by operation.
#[derive(Debug, Default)]
struct Counts(Mutex<BTreeMap<String, u64>>);

impl Counts {
    /// A panicking test thread must not turn every later count into a second panic.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, operation: &str) {
        *self.lock().entry(operation.to_owned()).or_default() += 1;
    }
}

/// What every connection needs.
#[derive(Debug)]
struct Shared {
    /// Scheme and authority of the upstream; the path comes from each request.
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: Arc<Counts>,
    faults: Arc<Faults>,
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connections belong to this task so that aborting it ends them as well.
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        // Small requests and responses: do not let Nagle delay them.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            // A client hanging up mid-request is its business; there is no one to tell.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why the proxy closed a connection without answering (an injected reset).
#[derive(Debug)]
struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset injected by the goalstore-tests fault proxy")
    }
}

impl std::error::Error for InjectedReset {}

/// Counts one request, applies the fault plan, and forwards it.
///
/// The single path every request takes: the fault plan decides between counting and
/// forwarding (sleep for added latency, answer a throttling error instead of forwarding,
/// return `Err` so hyper drops the connection, or rewrite a BatchGetItem's answer).
async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    let operation = operation(request.headers());
    // Counted on arrival, so a request counts even when forwarding fails.
    shared.counts.record(&operation);
    let fault = shared.faults.next(&operation);
    match &fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Reset) => return Err(InjectedReset),
        Some(Fault::Throttle(code)) => return Ok(throttled(code)),
        Some(Fault::Unprocessed) | None => {}
    }
    Ok(
        match forward(&shared, request, fault == Some(Fault::Unprocessed)).await {
            Ok(response) => response,
            Err(error) => bad_gateway(&error),
        },
    )
}

/// DynamoDB's answer to a throttled request.
fn throttled(code: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(faults::throttle_body(code)));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

/// Sends the request upstream as received and returns the upstream's response as sent.
///
/// Bodies are buffered rather than streamed: DynamoDB bodies are small, and a whole body
/// is what a fault hook would want to inspect.
///
/// With `withhold`, a successful BatchGetItem answer is rewritten to hand half its keys back as
/// unprocessed.
async fn forward(
    shared: &Shared,
    request: Request<Incoming>,
    withhold: bool,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let (mut parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .context("reading the request body")?
        .to_bytes();
    let request_body = body.clone();
    parts.uri = upstream_uri(&shared.upstream, &parts.uri)?;
    parts.version = http::Version::HTTP_11;
    remove_hop_by_hop(&mut parts.headers);
    let response = shared
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .with_context(|| format!("forwarding to {}", shared.upstream))?;
    let (mut parts, body) = response.into_parts();
    let mut body = body
        .collect()
        .await
        .context("reading the upstream's response body")?
        .to_bytes();
    remove_hop_by_hop(&mut parts.headers);
    if withhold && parts.status.is_success() {
        if let Some(rewritten) = faults::withhold_half(&request_body, &body) {
            body = rewritten;
            // The length and checksum of the original body no longer hold.
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.remove("x-amz-crc32");
        }
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The DynamoDB operation of a request: the part of `X-Amz-Target` after the last dot.
fn operation(headers: &HeaderMap) -> String {
    headers
        .get(TARGET)
        .and_then(|target| target.to_str().ok())
        .and_then(|target| target.rsplit('.').next())
        .filter(|operation| !operation.is_empty())
        .unwrap_or(UNKNOWN_OPERATION)
        .to_owned()
}

fn parse_upstream(upstream: &str) -> anyhow::Result<Uri> {
    let uri: Uri = upstream
        .parse()
        .with_context(|| format!("upstream {upstream:?} is not a URI"))?;
    anyhow::ensure!(
        uri.scheme() == Some(&http::uri::Scheme::HTTP) && uri.authority().is_some(),
        "upstream {upstream:?} must be an http://host:port URL"
    );
    anyhow::ensure!(
        matches!(uri.path(), "" | "/") && uri.query().is_none(),
        "upstream {upstream:?} must not have a path: requests keep their own"
    );
    Ok(uri)
}

/// The request's path and query on the upstream.
fn upstream_uri(upstream: &Uri, request: &Uri) -> anyhow::Result<Uri> {
    let mut parts = upstream.clone().into_parts();
    parts.path_and_query = Some(
        request
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Ok(Uri::from_parts(parts)?)
}

/// Removes the headers that describe one connection rather than the message (RFC 9110
/// section 7.6.1); the proxy's own connections set their own.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn bad_gateway(error: &anyhow::Error) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "goalstore-tests proxy: {error:#}"
    ))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::dynamo::{client, fresh_table, origin_items, put_items};
    use crate::servers::MotoServer;

    #[tokio::test]
    async fn get_item_through_the_proxy_is_counted_once() -> anyhow::Result<()> {
        let table = fresh_table("harness-proxy").await?;
        let moto = MotoServer::shared();
        let items = origin_items()?;
        put_items(&client(moto.endpoint()), &table, &items).await?;

        let proxy = DynamoProxy::start(moto.endpoint()).await?;
        let through_proxy = client(&proxy.endpoint());
        let item = items.first().context("the fixture has items")?;
        let key: HashMap<String, AttributeValue> = ["pk", "sk"]
            .into_iter()
            .map(|name| Ok((name.to_owned(), item.get(name).context(name)?.clone())))
            .collect::<anyhow::Result<_>>()?;
        let output = through_proxy
            .get_item()
            .table_name(&table)
            .set_key(Some(key))
            .send()
            .await?;

        assert_eq!(output.item(), Some(item), "read back as written");
        assert_eq!(proxy.count("GetItem"), 1);
        assert_eq!(proxy.count("PutItem"), 0, "the puts went around the proxy");
        assert_eq!(proxy.total(), 1);
        assert_eq!(proxy.counts(), BTreeMap::from([("GetItem".to_owned(), 1)]));
        proxy.reset();
        assert_eq!(proxy.total(), 0);
        assert!(proxy.counts().is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_dead_upstream_is_a_counted_bad_gateway() -> anyhow::Result<()> {
        // A port that was just free: nothing listens there.
        let dead = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let upstream = format!("http://{}", dead.local_addr()?);
        drop(dead);
        let proxy = DynamoProxy::start(&upstream).await?;

        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let request = Request::post(proxy.endpoint())
            .header("x-amz-target", "DynamoDB_20120810.Query")
            .body(Full::new(Bytes::from_static(b"{}")))?;
        let response = client.request(request).await?;

        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(proxy.counts(), BTreeMap::from([("Query".to_owned(), 1)]));
        Ok(())
    }

    #[test]
    fn operation_is_the_target_after_the_last_dot() {
        let mut headers = HeaderMap::new();
        assert_eq!(operation(&headers), UNKNOWN_OPERATION);
        headers.insert(
            TARGET,
            header::HeaderValue::from_static("DynamoDB_20120810.BatchGetItem"),
        );
        assert_eq!(operation(&headers), "BatchGetItem");
    }

    #[test]
    fn upstream_must_be_a_plain_http_origin() {
        assert!(parse_upstream("http://127.0.0.1:8000").is_ok());
        assert!(parse_upstream("http://127.0.0.1:8000/").is_ok());
        assert!(parse_upstream("https://127.0.0.1:8000").is_err());
        assert!(parse_upstream("http://127.0.0.1:8000/prefix").is_err());
        assert!(parse_upstream("127.0.0.1:8000").is_err());
    }
}
