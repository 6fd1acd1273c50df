//! `Client`: the goalstore sidecar over gRPC, behind the same [`GoalService`] trait as the
//! in-process store.
//!
//! One multiplexed HTTP/2 channel, reused by every call (and by clones). Each call has a deadline;
//! UNAVAILABLE is retried with capped exponential backoff and full jitter while the deadline
//! allows — reads always, writes only when they carry an idempotency key (a client-chosen goal or
//! activity id), since only then is a retry safe. TCP (`http://host:port`) or a Unix socket
//! (`unix:/path`). Each attempt is a client span whose W3C trace context travels with the call
//! (`trace_context`), so the sidecar's spans join the caller's trace.

use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{Activity, Goal, Progress};
use crate::service::GoalService;
use crate::store::{
    ActivityFilter, GoalBatch, GoalFilter, GoalUpdate, LoggedActivity, NewActivity, NewGoal, Page,
    PageRequest,
};
use crate::trace_context::{self, Side};
use crate::wire;
use async_trait::async_trait;
use goalstore_proto::v1 as pb;
use goalstore_proto::v1::goal_store_client::GoalStoreClient;
use rand::RngExt;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tracing::Instrument;

/// The gRPC service the client calls, as its spans name it.
const SERVICE: &str = goalstore_proto::v1::goal_store_server::SERVICE_NAME;

/// How a [`Client`] reaches the sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `http://127.0.0.1:50051`, or `unix:/path/to/socket`.
    pub endpoint: String,
    /// Sent as `authorization: Bearer <token>` when set.
    pub auth_token: Option<String>,
    /// Deadline of one call, retries included.
    pub timeout: Duration,
    /// Attempts of a retryable call, the first included.
    pub max_attempts: u32,
    /// Backoff ceiling of the first retry; it doubles each retry.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50051".into(),
            auth_token: None,
            timeout: Duration::from_secs(5),
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
        }
    }
}

/// A client of the goalstore sidecar. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    grpc: GoalStoreClient<Channel>,
    /// The same channel, for the standard health service beside GoalStore.
    channel: Channel,
    config: ClientConfig,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.endpoint)
            .field(
                "auth_token",
                &self.config.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// HTTP/2 PING every this long on an idle or busy connection (the sidecar accepts pings this
/// often: its own interval is the same).
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// A PING unanswered this long closes the connection (the next call reconnects).
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Client {
    /// A client that connects on first use (and reconnects after failures). Makes no network call.
    pub fn new(config: ClientConfig) -> Result<Self> {
        // HTTP/2 keepalive: a connection a middlebox or a restarted sidecar dropped without a
        // word is noticed within interval + timeout, not at the next call's deadline.
        let keepalive = |endpoint: Endpoint| {
            endpoint
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true)
        };
        let channel = if let Some(path) = config.endpoint.strip_prefix("unix:") {
            let path = path.to_owned();
            // The URI is a placeholder: the connector below ignores it and dials the socket.
            keepalive(Endpoint::from_static("http://localhost"))
                .connect_timeout(config.timeout)
                .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
        } else {
            keepalive(
                Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| Error::invalid("endpoint", e.to_string()))?,
            )
            .connect_timeout(config.timeout)
            .connect_lazy()
        };
        let authorization = match &config.auth_token {
            None => None,
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Error::invalid("auth_token", "must be printable ASCII"))?,
            ),
        };
        Ok(Self {
            grpc: GoalStoreClient::new(channel.clone()),
            channel,
            config,
            authorization,
        })
    }

    /// A request carrying the token and what is left of the deadline.
    fn request<T>(&self, message: T, deadline: Instant) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }

    /// Runs `call` (the RPC `method`), retrying UNAVAILABLE when `retryable`, within the deadline.
    ///
    /// Each attempt is a client span (`goalstore.v1.GoalStore/<method>`, with the semantic
    /// conventions' RPC attributes and its `rpc.grpc.status_code`) whose W3C trace context goes
    /// out in the request's headers, so the sidecar's span of the call is its child. Free when
    /// nothing records spans.
    async fn call<T, M, F, Fut>(
        &self,
        method: &'static str,
        retryable: bool,
        message: M,
        call: F,
    ) -> Result<T>
    where
        M: Clone,
        F: Fn(GoalStoreClient<Channel>, Request<M>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.config.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let span = trace_context::rpc_span(Side::Client, SERVICE, method);
            let mut request = self.request(message.clone(), deadline);
            trace_context::inject(&span, request.metadata_mut().as_mut());
            let answer = call(self.grpc.clone(), request)
                .instrument(span.clone())
                .await;
            let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
            trace_context::record_code(&span, Side::Client, code);
            let status = match answer {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            let again = retryable
                && status.code() == Code::Unavailable
                && attempt < self.config.max_attempts.max(1);
            if !again {
                return Err(error_of(&status));
            }
            let ceiling = self
                .config
                .base_delay
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(self.config.max_delay);
            let delay = ceiling.mul_f64(rand::rng().random::<f64>());
            if Instant::now() + delay >= deadline {
                return Err(error_of(&status));
            }
            tokio::time::sleep(delay).await;
        }
    }
}

impl Client {
    /// The sidecar's readiness as `grpc.health.v1.Health/Check` answers it for `service` (`""`
    /// for the whole server): `true` when SERVING. Not retried: a readiness probe wants the
    /// answer of now. Health needs no token, so none is sent.
    pub async fn serving(&self, service: &str) -> Result<bool> {
        use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
        let mut request = Request::new(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        });
        request.set_timeout(self.config.timeout);
        let response = tokio::time::timeout(
            self.config.timeout,
            HealthClient::new(self.channel.clone()).check(request),
        )
        .await
        .map_err(|_| Error::Unavailable("health check: deadline exceeded".into()))?
        .map_err(|status| error_of(&status))?;
        Ok(response.into_inner().status == ServingStatus::Serving as i32)
    }

    /// Admin: the sidecar's cache and table statistics.
    pub async fn stats(&self) -> Result<pb::StatsResponse> {
        self.call("Stats", true, pb::StatsRequest {}, |mut c, r| async move {
            c.stats(r).await
        })
        .await
    }

    /// Admin: drops every cached entry of a user; returns how many keys were dropped.
    pub async fn invalidate_user(&self, user_id: &str) -> Result<u64> {
        let message = pb::InvalidateUserRequest {
            user_id: user_id.into(),
        };
        let response = self
            .call("InvalidateUser", true, message, |mut c, r| async move {
                c.invalidate_user(r).await
            })
            .await?;
        Ok(response.keys_invalidated)
    }
}

/// A status as a store error; a deadline the client ran out of is `Unavailable`.
fn error_of(status: &Status) -> Error {
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled => {
            Error::Unavailable(format!("deadline exceeded: {}", status.message()))
        }
        _ => wire::error_of(status),
    }
}

fn required<T>(value: Option<T>, what: &str) -> Result<T> {
    value.ok_or_else(|| Error::Unavailable(format!("the sidecar answered without {what}")))
}

#[async_trait]
impl GoalService for Client {
    async fn get_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        let message = pb::GetGoalRequest {
            user_id: user_id.into(),
            goal_id: goal_id.into(),
        };
        let response = self
            .call("GetGoal", true, message, |mut c, r| async move {
                c.get_goal(r).await
            })
            .await?;
        wire::goal_of(&required(response.goal, "a goal")?)
    }

    async fn get_goals(&self, user_id: &str, goal_ids: &[String]) -> Result<GoalBatch> {
        let message = pb::BatchGetGoalsRequest {
            user_id: user_id.into(),
            goal_ids: goal_ids.to_vec(),
        };
        let response = self
            .call("BatchGetGoals", true, message, |mut c, r| async move {
                c.batch_get_goals(r).await
            })
            .await?;
        Ok(GoalBatch {
            goals: response
                .goals
                .iter()
                .map(wire::goal_of)
                .collect::<Result<_>>()?,
            missing_goal_ids: response.missing_goal_ids,
        })
    }

    async fn list_active_goals(&self, user_id: &str) -> Result<Vec<Goal>> {
        let message = pb::ListActiveGoalsRequest {
            user_id: user_id.into(),
        };
        let response = self
            .call("ListActiveGoals", true, message, |mut c, r| async move {
                c.list_active_goals(r).await
            })
            .await?;
        response.goals.iter().map(wire::goal_of).collect()
    }

    async fn list_goals(
        &self,
        user_id: &str,
        filter: &GoalFilter,
        page: &PageRequest,
    ) -> Result<Page<Goal>> {
        let message = pb::ListGoalsRequest {
            user_id: user_id.into(),
            status: filter.status.map_or(0, |s| pb::GoalStatus::from(s) as i32),
            goal_pattern: filter
                .goal_pattern
                .map_or(0, |p| pb::GoalPattern::from(p) as i32),
            category: filter.category.clone(),
            page_size: page_size(page)?,
            page_token: page.page_token.clone().unwrap_or_default(),
        };
        let response = self
            .call("ListGoals", true, message, |mut c, r| async move {
                c.list_goals(r).await
            })
            .await?;
        Ok(Page {
            items: response
                .goals
                .iter()
                .map(wire::goal_of)
                .collect::<Result<_>>()?,
            next_page_token: wire::page_token_of(&response.next_page_token),
        })
    }

    async fn create_goal(&self, user_id: &str, new: NewGoal) -> Result<Goal> {
        let retryable = new.goal_id.is_some();
        let message = wire::create_request_of(user_id, &new);
        let response = self
            .call("CreateGoal", retryable, message, |mut c, r| async move {
                c.create_goal(r).await
            })
            .await?;
        wire::goal_of(&required(response.goal, "a goal")?)
    }

    async fn update_goal(&self, user_id: &str, goal_id: &str, update: GoalUpdate) -> Result<Goal> {
        let message = wire::update_request_of(user_id, goal_id, &update);
        let response = self
            .call("UpdateGoal", false, message, |mut c, r| async move {
                c.update_goal(r).await
            })
            .await?;
        wire::goal_of(&required(response.goal, "a goal")?)
    }

    async fn archive_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        let message = pb::ArchiveGoalRequest {
            user_id: user_id.into(),
            goal_id: goal_id.into(),
        };
        // Archiving is idempotent by nature: archiving twice changes nothing.
        let response = self
            .call("ArchiveGoal", true, message, |mut c, r| async move {
                c.archive_goal(r).await
            })
            .await?;
        wire::goal_of(&required(response.goal, "a goal")?)
    }

    async fn log_activity(
        &self,
        user_id: &str,
        goal_id: &str,
        new: NewActivity,
    ) -> Result<LoggedActivity> {
        let retryable = new.activity_id.is_some();
        let message = wire::log_request_of(user_id, goal_id, &new);
        let response = self
            .call("LogActivity", retryable, message, |mut c, r| async move {
                c.log_activity(r).await
            })
            .await?;
        Ok(LoggedActivity {
            activity: wire::activity_of(&required(response.activity, "an activity")?)?,
            progress: wire::progress_of(&required(response.progress, "progress")?)?,
        })
    }

    async fn list_activities(
        &self,
        user_id: &str,
        goal_id: &str,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> Result<Page<Activity>> {
        let message = pb::ListActivitiesRequest {
            user_id: user_id.into(),
            goal_id: goal_id.into(),
            from: filter
                .from
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            to: filter
                .to
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            page_size: page_size(page)?,
            page_token: page.page_token.clone().unwrap_or_default(),
        };
        let response = self
            .call("ListActivities", true, message, |mut c, r| async move {
                c.list_activities(r).await
            })
            .await?;
        Ok(Page {
            items: response
                .activities
                .iter()
                .map(wire::activity_of)
                .collect::<Result<_>>()?,
            next_page_token: wire::page_token_of(&response.next_page_token),
        })
    }

    async fn get_progress(&self, user_id: &str, goal_id: &str) -> Result<Progress> {
        let message = pb::GetProgressRequest {
            user_id: user_id.into(),
            goal_id: goal_id.into(),
        };
        let response = self
            .call("GetProgress", true, message, |mut c, r| async move {
                c.get_progress(r).await
            })
            .await?;
        wire::progress_of(&required(response.progress, "progress")?)
    }

    async fn apply_events(&self, events: &[Event]) -> Result<usize> {
        let message = pb::PublishEventsRequest {
            events: events.iter().map(wire::wire_event_of).collect(),
        };
        // Invalidations are idempotent: applying an event twice drops the same keys twice.
        let response = self
            .call("PublishEvents", true, message, |mut c, r| async move {
                c.publish_events(r).await
            })
            .await?;
        Ok(usize::try_from(response.applied).unwrap_or(0))
    }
}

fn page_size(page: &PageRequest) -> Result<i32> {
    page.page_size.map_or(Ok(0), |size| {
        i32::try_from(size).map_err(|_| Error::invalid("page_size", format!("{size} is too large")))
    })
}
