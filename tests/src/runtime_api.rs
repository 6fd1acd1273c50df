//! A stand-in for the AWS Lambda Runtime API on a loopback port, so a handler binary
//! (`bootstrap`) runs as it would in Lambda: it polls `GET /2018-06-01/runtime/invocation/next`
//! for events the test queued, and posts each answer to `…/invocation/{id}/response` (or
//! `…/error`, or `/runtime/init/error` if it could not start), which the test receives in order.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, JoinSet};

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function posted back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST /invocation/{request_id}/response`.
    Response { request_id: String, body: String },
    /// `POST /invocation/{request_id}/error`.
    Error { request_id: String, body: String },
    /// `POST /init/error`: the function could not start.
    InitError { body: String },
}

/// A queued invocation: its request id, its event, its X-Ray trace header.
#[derive(Debug)]
struct Invocation {
    request_id: String,
    event: String,
    trace: String,
}

/// The trace header of an invocation queued without one: a trace Lambda did not sample.
pub const UNSAMPLED_TRACE: &str = "Root=1-67a1b2c3-0123456789abcdef01234567;Sampled=0";

#[derive(Debug)]
struct State {
    events: Mutex<VecDeque<Invocation>>,
    queued: Notify,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

/// The Runtime API, serving until dropped.
#[derive(Debug)]
pub struct RuntimeApi {
    address: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on 127.0.0.1:0; the receiver gets every outcome the function posts.
    pub async fn start() -> anyhow::Result<(Self, mpsc::UnboundedReceiver<Outcome>)> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the runtime API's listener")?;
        let address = listener.local_addr()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            events: Mutex::default(),
            queued: Notify::new(),
            outcomes: sender,
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok((
            Self {
                address,
                state,
                task,
            },
            receiver,
        ))
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues an invocation: `event` (JSON) under `request_id`, in a trace Lambda did not sample.
    pub fn invoke(&self, request_id: &str, event: String) {
        self.invoke_traced(request_id, event, UNSAMPLED_TRACE);
    }

    /// Queues an invocation in the X-Ray trace `trace` (`Root=…;Parent=…;Sampled=…`, as Lambda
    /// sends it in `Lambda-Runtime-Trace-Id`).
    pub fn invoke_traced(&self, request_id: &str, event: String, trace: &str) {
        self.state
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Invocation {
                request_id: request_id.to_owned(),
                event,
                trace: trace.to_owned(),
            });
        self.state.queued.notify_waiters();
    }

    /// The environment Lambda gives the function `name`, polling this API; test credentials,
    /// no instance metadata, JSON logs at info.
    pub fn function_environment(&self, name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2025/01/05/[$LATEST]0123456789abcdef".to_owned(),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    if method == Method::GET && route == "/invocation/next" {
        return Ok(next(&state).await);
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let outcome = if route == "/init/error" {
        Some(Outcome::InitError { body })
    } else {
        match route
            .strip_prefix("/invocation/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((id, "response")) => Some(Outcome::Response {
                request_id: id.to_owned(),
                body,
            }),
            Some((id, "error")) => Some(Outcome::Error {
                request_id: id.to_owned(),
                body,
            }),
            _ => None,
        }
    };
    match outcome {
        Some(outcome) if method == Method::POST => {
            let _ = state.outcomes.send(outcome);
            Ok(status(StatusCode::ACCEPTED))
        }
        _ => Ok(status(StatusCode::NOT_FOUND)),
    }
}

/// The next queued event, waiting for one if there is none.
async fn next(state: &State) -> Response<Full<Bytes>> {
    loop {
        let queued = state.queued.notified();
        let event = state
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        if let Some(Invocation {
            request_id,
            event: body,
            trace,
        }) = event
        {
            let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
            let mut response = Response::new(Full::new(Bytes::from(body)));
            let headers = response.headers_mut();
            let pairs = [
                ("lambda-runtime-aws-request-id", request_id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:goalstore-test".to_owned(),
                ),
                ("lambda-runtime-trace-id", trace),
                ("content-type", "application/json".to_owned()),
            ];
            for (name, value) in pairs {
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            return response;
        }
        queued.await;
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
