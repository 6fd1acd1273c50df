//! Who calls, and on which goal: the `sub` claim of the authorizer (REST API 1.0:
//! `requestContext.authorizer.claims.sub`; HTTP API 2.0 with a JWT authorizer:
//! `requestContext.authorizer.jwt.claims.sub`) and the `goalId` path parameter (ORIGIN §2.1).

use super::errors::ApiError;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt as _};
use serde_json::Value;

/// The caller's `sub`; missing or empty is [`ApiError::Unauthorized`].
pub fn caller(request: &Request) -> Result<String, ApiError> {
    let authorizer = request
        .request_context_ref()
        .and_then(RequestContext::authorizer);
    let Some(authorizer) = authorizer else {
        return Err(ApiError::Unauthorized);
    };
    // `claims` first (a Cognito user pool authorizer of a REST API, or a Lambda authorizer
    // context), then the JWT authorizer's claims, as the existing handlers read them.
    let claims = authorizer
        .fields
        .get("claims")
        .filter(|claims| claims.as_object().is_some_and(|map| !map.is_empty()));
    let sub = match claims {
        Some(claims) => claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        None => authorizer
            .jwt
            .as_ref()
            .and_then(|jwt| jwt.claims.get("sub").cloned()),
    };
    match sub {
        Some(sub) if !sub.is_empty() => Ok(sub),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The `goalId` path parameter; missing or empty is [`ApiError::MissingGoalId`].
pub fn goal_id(request: &Request) -> Result<String, ApiError> {
    request
        .path_parameters_ref()
        .and_then(|parameters| parameters.first("goalId"))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or(ApiError::MissingGoalId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(event: Value) -> Request {
        lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event")
    }

    fn v2(authorizer: Value, path: Value) -> Request {
        request(json!({
            "version": "2.0",
            "routeKey": "GET /goals/{goalId}",
            "rawPath": "/goals/g-1",
            "rawQueryString": "",
            "headers": {"accept": "application/json"},
            "pathParameters": path,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "authorizer": authorizer,
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {"method": "GET", "path": "/goals/g-1", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.1", "userAgent": "t"},
                "requestId": "r",
                "routeKey": "GET /goals/{goalId}",
                "stage": "$default",
                "time": "05/Jan/2025:10:00:00 +0000",
                "timeEpoch": 1736071200000u64
            },
            "isBase64Encoded": false
        }))
    }

    fn v1(authorizer: Value) -> Request {
        request(json!({
            "resource": "/goals/{goalId}",
            "path": "/goals/g-1",
            "httpMethod": "GET",
            "headers": {},
            "multiValueHeaders": {},
            "queryStringParameters": null,
            "multiValueQueryStringParameters": null,
            "pathParameters": {"goalId": "g-1"},
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "resourceId": "abc",
                "stage": "prod",
                "requestId": "r",
                "identity": {"sourceIp": "203.0.113.1"},
                "resourcePath": "/goals/{goalId}",
                "httpMethod": "GET",
                "apiId": "api",
                "authorizer": authorizer
            },
            "body": null,
            "isBase64Encoded": false
        }))
    }

    #[test]
    fn the_caller_comes_from_jwt_claims_in_http_api_events() {
        let with_jwt = v2(
            json!({"jwt": {"claims": {"sub": "user-2", "email": "a@b"}, "scopes": null}}),
            json!({"goalId": "g-1"}),
        );
        assert_eq!(caller(&with_jwt), Ok("user-2".to_owned()));
        assert_eq!(goal_id(&with_jwt), Ok("g-1".to_owned()));
        let empty_sub = v2(
            json!({"jwt": {"claims": {"sub": ""}}}),
            json!({"goalId": ""}),
        );
        assert_eq!(caller(&empty_sub), Err(ApiError::Unauthorized));
        assert_eq!(goal_id(&empty_sub), Err(ApiError::MissingGoalId));
        let none = v2(Value::Null, Value::Null);
        assert_eq!(caller(&none), Err(ApiError::Unauthorized));
        assert_eq!(goal_id(&none), Err(ApiError::MissingGoalId));
    }

    #[test]
    fn the_caller_comes_from_claims_in_rest_api_events() {
        let cognito = v1(json!({"claims": {"sub": "user-1", "token_use": "id"}}));
        assert_eq!(caller(&cognito), Ok("user-1".to_owned()));
        assert_eq!(goal_id(&cognito), Ok("g-1".to_owned()));
        assert_eq!(caller(&v1(json!({}))), Err(ApiError::Unauthorized));
        assert_eq!(caller(&v1(Value::Null)), Err(ApiError::Unauthorized));
        assert_eq!(
            caller(&v1(json!({"claims": {"email": "no-sub@example.com"}}))),
            Err(ApiError::Unauthorized)
        );
    }
}
