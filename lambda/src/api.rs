//! API Gateway (REST API, Lambda proxy integration) handlers over a [`GoalService`].
//!
//! | handler | route | success |
//! | --- | --- | --- |
//! | [`get_goal`] | `GET /goals/{goalId}` | 200, the goal |
//! | [`list_goals`] | `GET /goals?status=&goalPattern=&category=&pageSize=&pageToken=` | 200, `{goals, nextPageToken}` |
//! | [`log_activity`] | `POST /goals/{goalId}/activities` (body: the activity) | 201, `{activity, progress}` |
//! | [`get_progress`] | `GET /goals/{goalId}/progress` | 200, `{goalId, progress}` |
//!
//! The caller is the authorizer's user: `requestContext.authorizer.claims.sub` (a Cognito user
//! pool authorizer) or `requestContext.authorizer.userId` (a Lambda authorizer's context); without
//! one the answer is 401. Bodies are JSON with camelCase keys (the model's snake_case fields
//! renamed at every level, except inside the free-form `metadata`). Errors are
//! `{"error": {"code", "message", "field"?}}` with the status of [`status_of`]. No input makes a
//! handler panic: every failure is an answer.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use goalstore::{
    ActivitySource, ActivityType, Document, Error, GoalFilter, GoalService, NewActivity,
    PageRequest, Timestamp,
};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// An API Gateway proxy invocation.
pub type ApiEvent = LambdaEvent<ApiGatewayProxyRequest>;

/// The HTTP status of a store error.
pub fn status_of(error: &Error) -> u16 {
    match error {
        Error::InvalidArgument { .. } => 400,
        Error::Unauthenticated(_) => 401,
        Error::NotFound { .. } => 404,
        Error::Rule(rule) => rule.code.http_status(),
        Error::FailedPrecondition(_) | Error::AlreadyExists { .. } => 409,
        Error::ResourceExhausted(_) => 429,
        Error::CorruptItem { .. } => 500,
        Error::Throttled { .. } | Error::Unavailable(_) => 503,
    }
}

/// A request the handler refuses before calling the store, or the store's error.
#[derive(Debug)]
enum Failure {
    Unauthenticated,
    BadRequest { field: &'static str, reason: String },
    Store(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Store(error)
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> Failure {
    Failure::BadRequest {
        field,
        reason: reason.into(),
    }
}

/// `GET /goals/{goalId}`.
pub async fn get_goal(store: &dyn GoalService, event: ApiEvent) -> ApiGatewayProxyResponse {
    respond(async {
        let request = &event.payload;
        let user = user_id(request)?;
        let goal_id = path_parameter(request, "goalId")?;
        let goal = store.get_goal(&user, &goal_id).await?;
        Ok((200, camel_case(to_value(&goal))))
    })
    .await
}

/// `GET /goals`: the caller's goals, filtered and paged.
pub async fn list_goals(store: &dyn GoalService, event: ApiEvent) -> ApiGatewayProxyResponse {
    respond(async {
        let request = &event.payload;
        let user = user_id(request)?;
        let query = &request.query_string_parameters;
        let filter = GoalFilter {
            status: query
                .first("status")
                .map(|s| parse_enum("status", s))
                .transpose()?,
            goal_pattern: query
                .first("goalPattern")
                .map(|s| parse_enum("goalPattern", s))
                .transpose()?,
            category: query.first("category").map(str::to_owned),
        };
        let page_size = query
            .first("pageSize")
            .map(|s| {
                s.parse::<u32>()
                    .map_err(|_| bad("pageSize", format!("`{s}` is not a page size")))
            })
            .transpose()?;
        let page = PageRequest {
            page_size,
            page_token: query.first("pageToken").map(str::to_owned),
        };
        let page = store.list_goals(&user, &filter, &page).await?;
        let goals: Vec<Value> = page
            .items
            .iter()
            .map(|goal| camel_case(to_value(goal)))
            .collect();
        Ok((
            200,
            json!({"goals": goals, "nextPageToken": page.next_page_token}),
        ))
    })
    .await
}

/// The body of `POST /goals/{goalId}/activities`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityRequest {
    activity_id: Option<String>,
    value: f64,
    unit: Option<String>,
    activity_type: Option<ActivityType>,
    activity_date: Option<Timestamp>,
    timezone: Option<String>,
    location: Option<Document>,
    context: Option<Document>,
    note: Option<String>,
    attachments: Option<Document>,
    source: Option<ActivitySource>,
    device_info: Option<Document>,
}

/// `POST /goals/{goalId}/activities`: logs an activity; answers it and the goal's new progress.
pub async fn log_activity(store: &dyn GoalService, event: ApiEvent) -> ApiGatewayProxyResponse {
    respond(async {
        let request = &event.payload;
        let user = user_id(request)?;
        let goal_id = path_parameter(request, "goalId")?;
        let body: ActivityRequest = json_body(request)?;
        let new = NewActivity {
            activity_id: body.activity_id,
            value: body.value,
            unit: body.unit,
            activity_type: body.activity_type.unwrap_or(ActivityType::Progress),
            activity_date: body.activity_date,
            timezone: body.timezone,
            location: body.location,
            context: body.context,
            note: body.note,
            attachments: body.attachments,
            source: body.source.unwrap_or(ActivitySource::Manual),
            device_info: body.device_info,
        };
        let logged = store.log_activity(&user, &goal_id, new).await?;
        Ok((
            201,
            json!({
                "activity": camel_case(to_value(&logged.activity)),
                "progress": camel_case(to_value(&logged.progress)),
            }),
        ))
    })
    .await
}

/// `GET /goals/{goalId}/progress`.
pub async fn get_progress(store: &dyn GoalService, event: ApiEvent) -> ApiGatewayProxyResponse {
    respond(async {
        let request = &event.payload;
        let user = user_id(request)?;
        let goal_id = path_parameter(request, "goalId")?;
        let progress = store.get_progress(&user, &goal_id).await?;
        Ok((
            200,
            json!({"goalId": goal_id, "progress": camel_case(to_value(&progress))}),
        ))
    })
    .await
}

/// The answer to a handler's outcome.
async fn respond(
    outcome: impl std::future::Future<Output = Result<(u16, Value), Failure>>,
) -> ApiGatewayProxyResponse {
    match outcome.await {
        Ok((status, body)) => response(status, &body),
        Err(Failure::Unauthenticated) => response(
            401,
            &json!({"error": {"code": "unauthenticated", "message": "no authenticated user in the request context"}}),
        ),
        Err(Failure::BadRequest { field, reason }) => response(
            400,
            &json!({"error": {
                "code": "invalid_argument",
                "message": format!("invalid argument `{field}`: {reason}"),
                "field": field,
            }}),
        ),
        Err(Failure::Store(error)) => {
            let mut detail = Map::new();
            detail.insert("code".into(), json!(error.kind()));
            detail.insert("message".into(), json!(error.to_string()));
            if let Error::InvalidArgument { field, .. } = &error {
                detail.insert("field".into(), json!(camel_case_key(field)));
            }
            response(status_of(&error), &json!({ "error": detail }))
        }
    }
}

fn response(status: u16, body: &Value) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// The authenticated user: a Cognito authorizer's `claims.sub`, or a Lambda authorizer's `userId`.
fn user_id(request: &ApiGatewayProxyRequest) -> Result<String, Failure> {
    let fields = &request.request_context.authorizer.fields;
    let claims_sub = fields
        .get("claims")
        .and_then(|claims| claims.get("sub"))
        .and_then(Value::as_str);
    let context_user = fields.get("userId").and_then(Value::as_str);
    match claims_sub.or(context_user) {
        Some(user) if !user.is_empty() => Ok(user.to_owned()),
        _ => Err(Failure::Unauthenticated),
    }
}

fn path_parameter(request: &ApiGatewayProxyRequest, name: &'static str) -> Result<String, Failure> {
    request
        .path_parameters
        .get(name)
        .cloned()
        .ok_or_else(|| bad(name, "missing from the path"))
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    field: &'static str,
    text: &str,
) -> Result<T, Failure> {
    serde_json::from_value(Value::String(text.to_owned()))
        .map_err(|_| bad(field, format!("`{text}` is not a valid value")))
}

fn json_body<T: serde::de::DeserializeOwned>(
    request: &ApiGatewayProxyRequest,
) -> Result<T, Failure> {
    let Some(body) = request.body.as_deref() else {
        return Err(bad("body", "missing"));
    };
    let decoded;
    let text = if request.is_base64_encoded {
        use base64::Engine as _;
        decoded = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad("body", "not valid base64"))?;
        std::str::from_utf8(&decoded).map_err(|_| bad("body", "not UTF-8"))?
    } else {
        body
    };
    serde_json::from_str(text)
        .map_err(|error| bad("body", format!("not the expected JSON: {error}")))
}

fn to_value(value: &impl serde::Serialize) -> Value {
    // The model's types serialize to JSON infallibly (string keys, no non-string map keys).
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `goal_pattern` → `goalPattern`.
pub fn camel_case_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Renames every object key to camelCase, recursively, except inside `metadata` (a free map
/// whose keys belong to the caller).
pub fn camel_case(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let value = if key == "metadata" {
                        value
                    } else {
                        camel_case(value)
                    };
                    (camel_case_key(&key), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_case).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_camel_case_except_in_metadata() {
        let value = json!({
            "goal_id": "g",
            "target": {"target_date": null, "min_value": 1},
            "period_history": [{"period_start": 1}],
            "metadata": {"my_key": {"inner_key": 1}},
        });
        assert_eq!(
            camel_case(value),
            json!({
                "goalId": "g",
                "target": {"targetDate": null, "minValue": 1},
                "periodHistory": [{"periodStart": 1}],
                "metadata": {"my_key": {"inner_key": 1}},
            })
        );
        assert_eq!(camel_case_key("_private"), "_private");
    }

    #[test]
    fn every_error_has_a_status() {
        let cases = [
            (
                Error::InvalidArgument {
                    field: "goal_id".into(),
                    reason: "bad".into(),
                },
                400,
            ),
            (
                Error::NotFound {
                    kind: "goal",
                    id: "g".into(),
                },
                404,
            ),
            (Error::FailedPrecondition("changed".into()), 409),
            (
                Error::AlreadyExists {
                    kind: "goal",
                    id: "g".into(),
                },
                409,
            ),
            (Error::Throttled { attempts: 3 }, 503),
            (Error::Unavailable("down".into()), 503),
            (Error::Unauthenticated("no".into()), 401),
            (Error::ResourceExhausted("busy".into()), 429),
            (
                Error::CorruptItem {
                    key: "k".into(),
                    reason: "r".into(),
                },
                500,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(status_of(&error), status, "{error}");
        }
    }
}
