//! Call deadlines: a call gets the shorter of the caller's `grpc-timeout` and the sidecar's
//! request timeout (GOALSTORE_REQUEST_TIMEOUT), and a call past it is answered
//! DEADLINE_EXCEEDED.
//!
//! Why not tonic's own `Server::builder().timeout(..)`: it answers an expired call with
//! CANCELLED "Timeout expired" (still in tonic 0.14: `Status::from_error` maps `TimeoutExpired` to
//! CANCELLED), which tells a client nothing about whether to retry with a longer
//! deadline. tonic still applies a caller's `grpc-timeout` around this layer; this layer's timer
//! is set first with the same duration, and tonic polls the call before its own timer, so this
//! layer's answer is the one that goes out.
//!
//! Dropping the call's future when the deadline passes cancels the store call (and gives back its
//! in-flight place); a write the table already acknowledged stays written.

use futures::future::BoxFuture;
use http::HeaderMap;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::Status;

/// Applies [`Deadline`] to every call.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    /// The deadline of a call whose caller set none (and the longest any call gets).
    pub request_timeout: Duration,
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
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
        let budget = grpc_timeout(request.headers()).map_or(self.request_timeout, |asked| {
            asked.min(self.request_timeout)
        });
        // The instant is fixed now, before tonic sets its own timer for the same call.
        let deadline = tokio::time::Instant::now() + budget;
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, call).await {
                Ok(answer) => answer,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call's deadline ({budget:?}) passed before it finished"
                ))
                .into_http()),
            }
        })
    }
}

/// The caller's `grpc-timeout` header: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`). A malformed header counts as none, as tonic treats it.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "grpc-timeout",
            http::HeaderValue::from_str(value).expect("ascii"),
        );
        headers
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_bad_ones_count_as_none() {
        assert_eq!(grpc_timeout(&header("2H")), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout(&header("3M")), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout(&header("5S")), Some(Duration::from_secs(5)));
        assert_eq!(
            grpc_timeout(&header("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(grpc_timeout(&header("7u")), Some(Duration::from_micros(7)));
        assert_eq!(
            grpc_timeout(&header("99999999n")),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789m", "12x", "-5S", "1.5S", "S5", "５S"] {
            assert_eq!(grpc_timeout(&header(bad)), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_answered_deadline_exceeded() {
        use tower::{Layer, Service, ServiceExt};
        let slow = tower::service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let mut service = DeadlineLayer {
            request_timeout: Duration::from_secs(30),
        }
        .layer(slow);

        // No header: the request timeout.
        let started = tokio::time::Instant::now();
        let answer = service
            .ready()
            .await
            .expect("ready")
            .call(http::Request::new(()))
            .await
            .expect("an answer");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        let status = Status::from_header_map(answer.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);

        // A shorter grpc-timeout wins; a longer one does not.
        for (asked, expected) in [("2S", 2), ("90S", 30)] {
            let mut request = http::Request::new(());
            *request.headers_mut() = header(asked);
            let started = tokio::time::Instant::now();
            let answer = service
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("an answer");
            assert_eq!(started.elapsed(), Duration::from_secs(expected), "{asked}");
            assert_eq!(
                Status::from_header_map(answer.headers()).map(|s| s.code()),
                Some(tonic::Code::DeadlineExceeded)
            );
        }
    }
}
