//! The goals HTTP API as the existing Python functions answer it (ORIGIN §2, §3), on
//! `lambda_http`: one handler per route, each taking API Gateway HTTP API 2.0 or REST API 1.0
//! events through one [`Request`].
//!
//! | handler | route | success |
//! | --- | --- | --- |
//! | [`routes::create_goal`] | `POST /goals` | 201 Goal (J), `Location: /goals/{goalId}` |
//! | [`routes::list_goals`] | `GET /goals` | 200 `{goals: [Goal (S)], pagination}` |
//! | [`routes::get_goal`] | `GET /goals/{goalId}` | 200 Goal (J) |
//! | [`routes::update_goal`] | `PUT /goals/{goalId}` | 200 Goal (J) |
//! | [`routes::archive_goal`] | `DELETE /goals/{goalId}` | 200 `{message}` |
//! | [`routes::log_activity`] | `POST /goals/{goalId}/activities` | 201 Activity (J) |
//! | [`routes::list_activities`] | `GET /goals/{goalId}/activities` | 200 `{activities: [Activity (S)], pagination}` |
//! | [`routes::get_progress`] | `GET /goals/{goalId}/progress` | 200 `{goalId, period, progress (S), statistics, insights}` |
//!
//! Modules: [`caller`] (the `sub` claim and the goal id), [`body`] (request bodies → SDK
//! requests), [`query`] (query parameters), [`render`] (model bodies, modes J and S),
//! [`errors`] (error bodies and the one store-error mapping), [`json`] (ordered JSON),
//! [`routes`] (the handlers). Every response is JSON with `X-Request-ID` = the Lambda request
//! id. No input makes a handler panic.
//!
//! Where these handlers answer differently from the Python ones, on purpose:
//! * a body that is not JSON, or `null`, is a 400 `VALIDATION_ERROR` (upstream: 500, B9); a number
//!   DynamoDB cannot store is a 400 (upstream: 500 on write);
//! * update works as upstream meant it to (upstream: 500 for every goal that is not completed or
//!   archived, B1);
//! * a base64-encoded body is decoded (upstream ignores `isBase64Encoded` and fails to parse);
//! * validation messages follow pydantic's wording for the common failures (required, type,
//!   enum, length, pattern, `> 0`); nested constraints of schedule, context and location beyond
//!   required keys are left to the SDK's types; error fields are always camelCase;
//! * `statistics` and `insights` of get progress are computed over every activity of the goal
//!   (`goalstore::progress::report`; upstream reads the newest 1000);
//! * what the store decides (quota, duplicate titles, per-pattern rules, which statuses accept
//!   activities, unit comparison) is the SDK's (`goalstore::validate`): its refusals are mapped
//!   in [`errors::store_problem`].
//!
//! docs/compatibility.md lists every difference with an example.

pub mod body;
pub mod caller;
pub mod errors;
pub mod json;
pub mod query;
pub mod render;
pub mod routes;

pub use lambda_http;
pub use lambda_http::{Body, Request, Response};

use errors::{error_body, ApiError, Precondition, Stamp};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use http::StatusCode;
use json::Json;
use lambda_http::RequestExt as _;
use std::future::Future;

/// What a route answers on success.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    pub status: u16,
    pub body: Json,
    /// `Location` (create).
    pub location: Option<String>,
    /// Written as Python's `json.dumps` (listings, progress, archive) rather than compact
    /// (pydantic's `model_dump_json`: create, get, update, log).
    pub python: bool,
}

impl Success {
    pub fn new(status: u16, body: Json) -> Self {
        Self {
            status,
            body,
            location: None,
            python: false,
        }
    }

    /// [`new`](Self::new), written as Python's `json.dumps`.
    pub fn dumps(status: u16, body: Json) -> Self {
        Self {
            python: true,
            ..Self::new(status, body)
        }
    }
}

/// How a route words its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub stamp: Stamp,
    pub precondition: Precondition,
}

/// The Lambda request id (the `X-Request-ID` header and the errors' `request_id`).
pub fn request_id(request: &Request) -> String {
    request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .unwrap_or_default()
}

/// The invocation's X-Ray trace header, as the Runtime API handed it over.
pub fn trace_header(request: &Request) -> Option<String> {
    request
        .lambda_context_ref()
        .and_then(|context| context.xray_trace_id.clone())
}

/// Parses an API Gateway event (HTTP API 2.0 or REST API 1.0) as the runtime would, with
/// `request_id` as its Lambda request id: for tests and tools that invoke handlers in process.
pub fn request_from_event(event: &str, request_id: &str) -> Result<Request, serde_json::Error> {
    let request = lambda_http::request::from_str(event)?;
    let mut context = lambda_http::Context::default();
    context.request_id = request_id.to_owned();
    Ok(request.with_lambda_context(context))
}

/// Runs a route's work and answers its outcome.
pub async fn answer(
    request: &Request,
    route: Route,
    work: impl Future<Output = Result<Success, ApiError>>,
) -> Response<Body> {
    let id = request_id(request);
    match work.await {
        Ok(success) => {
            let text = if success.python {
                success.body.to_python_text()
            } else {
                success.body.to_text()
            };
            response(success.status, text, &id, success.location.as_deref())
        }
        Err(error) => {
            let problem = error.problem(route.precondition);
            let body = error_body(&problem, &id, route.stamp, chrono::Utc::now());
            response(problem.status, body.to_python_text(), &id, None)
        }
    }
}

/// A JSON response (`body` is its text) with the headers every answer carries.
pub fn response(
    status: u16,
    body: String,
    request_id: &str,
    location: Option<&str>,
) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_carry_json_request_id_and_location_headers() {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "POST /goals", "rawPath": "/goals", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "POST", "path": "/goals", "protocol": "HTTP/1.1", "sourceIp": "1.1.1.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "POST /goals", "stage": "$default", "time": "t", "timeEpoch": 0}
        });
        let request = request_from_event(&event.to_string(), "req-9").expect("a 2.0 event");
        assert_eq!(request_id(&request), "req-9");
        let created = answer(&request, routes_for_test::CREATE, async {
            Ok(Success {
                location: Some("/goals/g-1".into()),
                ..Success::new(201, Json::object().with("goalId", "g-1"))
            })
        })
        .await;
        assert_eq!(created.status(), 201);
        let header = |r: &Response<Body>, name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header(&created, "content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(header(&created, "x-request-id").as_deref(), Some("req-9"));
        assert_eq!(header(&created, "location").as_deref(), Some("/goals/g-1"));
        let refused = answer(&request, routes_for_test::CREATE, async {
            Err(ApiError::Unauthorized)
        })
        .await;
        assert_eq!(refused.status(), 401);
        assert_eq!(header(&refused, "location"), None);
        let Body::Text(text) = refused.body() else {
            panic!("a text body");
        };
        let body: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(body["request_id"], "req-9");
        assert!(body["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00")));
    }

    mod routes_for_test {
        use super::super::{Precondition, Route, Stamp};
        pub const CREATE: Route = Route {
            stamp: Stamp::Offset,
            precondition: Precondition::Goal,
        };
    }
}
