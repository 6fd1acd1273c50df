//! The error answers: what can go wrong in a handler ([`ApiError`]), the one mapping of store
//! errors to statuses and codes ([`store_problem`]), and the error body
//! `{error, message, details | validation_errors, request_id, timestamp}` (ORIGIN §2.6, §3.1).

use super::json::Json;
use chrono::{DateTime, Timelike, Utc};
use goalstore::{Error, RuleCode};
use serde_json::{json, Value};

/// One entry of `validation_errors`: a camelCase field path and pydantic-like message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a handler could not answer with success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// No `sub` claim: 401 `UNAUTHORIZED`.
    #[error("no authenticated user")]
    Unauthorized,
    /// No `goalId` path parameter: 400 `VALIDATION_ERROR` `Goal ID is required`.
    #[error("no goal id in the path")]
    MissingGoalId,
    /// The body does not validate: 400 `VALIDATION_ERROR` `Validation failed`.
    #[error("the body does not validate")]
    Body(Vec<FieldError>),
    /// A query parameter of a listing is bad: 400 `Invalid query parameters`.
    #[error("invalid query parameters: {0}")]
    Query(String),
    /// A 400 `VALIDATION_ERROR` with this message and no `validation_errors` (bad `period`).
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed; `user` and `goal_id` name the call for the 404 message.
    #[error("store: {error}")]
    Store {
        error: Error,
        user: String,
        goal_id: String,
    },
}

/// What a failed call answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<Value>,
    pub validation_errors: Option<Vec<FieldError>>,
}

impl Problem {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: None,
            validation_errors: None,
        }
    }
}

/// How a route refuses a goal whose state forbids the call (`Error::FailedPrecondition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// `GOAL_VALIDATION_ERROR`, details `{validation_errors: [reason]}`.
    Goal,
    /// Update: `GOAL_ALREADY_COMPLETED`, `Goal {id} is already completed and cannot be modified`.
    Update,
    /// Log activity: `ACTIVITY_VALIDATION_ERROR`, details `{validation_errors: [reason]}`.
    Activity,
}

impl ApiError {
    /// The store's error, from a call for `user` on `goal_id` (empty when there is none).
    pub fn store(error: Error, user: &str, goal_id: &str) -> Self {
        ApiError::Store {
            error,
            user: user.to_owned(),
            goal_id: goal_id.to_owned(),
        }
    }

    /// The answer, for a route whose refusals of state are `precondition`.
    pub fn problem(&self, precondition: Precondition) -> Problem {
        match self {
            ApiError::Unauthorized => {
                Problem::new(401, "UNAUTHORIZED", "User authentication required")
            }
            ApiError::MissingGoalId => Problem::new(400, "VALIDATION_ERROR", "Goal ID is required"),
            ApiError::Body(errors) => Problem {
                validation_errors: Some(errors.clone()),
                ..Problem::new(400, "VALIDATION_ERROR", "Validation failed")
            },
            ApiError::Query(message) => Problem {
                validation_errors: Some(vec![FieldError::new("query", message.clone())]),
                ..Problem::new(400, "VALIDATION_ERROR", "Invalid query parameters")
            },
            ApiError::Invalid(message) => Problem::new(400, "VALIDATION_ERROR", message.clone()),
            ApiError::Store {
                error,
                user,
                goal_id,
            } => store_problem(error, user, goal_id, precondition),
        }
    }
}

/// THE mapping of store errors to answers.
pub fn store_problem(
    error: &Error,
    user: &str,
    goal_id: &str,
    precondition: Precondition,
) -> Problem {
    match error {
        // A path id the store cannot hold names no goal: upstream's GetItem just misses.
        Error::InvalidArgument { field, .. } if field == "goal_id" && !goal_id.is_empty() => {
            Problem::new(
                404,
                "GOAL_NOT_FOUND",
                format!("Goal {goal_id} not found for user {user}"),
            )
        }
        Error::InvalidArgument { field, reason } => Problem {
            validation_errors: Some(vec![FieldError::new(camel_path(field), reason.clone())]),
            ..Problem::new(400, "VALIDATION_ERROR", "Validation failed")
        },
        Error::NotFound { id, .. } => {
            let id = if goal_id.is_empty() {
                id.as_str()
            } else {
                goal_id
            };
            Problem::new(
                404,
                "GOAL_NOT_FOUND",
                format!("Goal {id} not found for user {user}"),
            )
        }
        Error::Rule(rule) => Problem {
            details: Some(rule.details.clone()),
            ..Problem::new(
                rule.code.http_status(),
                rule.code.as_str(),
                rule.message.clone(),
            )
        },
        Error::FailedPrecondition(reason) => match precondition {
            Precondition::Update => Problem {
                details: Some(json!({ "goal_id": goal_id })),
                ..Problem::new(
                    422,
                    RuleCode::GoalAlreadyCompleted.as_str(),
                    format!("Goal {goal_id} is already completed and cannot be modified"),
                )
            },
            Precondition::Activity => Problem {
                details: Some(json!({ "validation_errors": [reason] })),
                ..Problem::new(
                    422,
                    RuleCode::ActivityValidationError.as_str(),
                    "Activity validation failed",
                )
            },
            Precondition::Goal => Problem {
                details: Some(json!({ "validation_errors": [reason] })),
                ..Problem::new(
                    422,
                    RuleCode::GoalValidationError.as_str(),
                    "Goal validation failed",
                )
            },
        },
        _ => {
            tracing::error!(%error, kind = error.kind(), "store call failed");
            Problem::new(500, "SYSTEM_ERROR", "An unexpected error occurred")
        }
    }
}

/// The `timestamp` of an error body: offset-form (create, update, list goals, log) or naive
/// UTC (get goal, archive, list activities, progress), as Python's `isoformat()` writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Offset,
    Naive,
}

impl Stamp {
    pub fn format(self, now: DateTime<Utc>) -> String {
        let base = python_isoformat(now);
        match self {
            Stamp::Offset => format!("{base}+00:00"),
            Stamp::Naive => base,
        }
    }
}

/// `2025-01-05T10:00:00.123456` (no fraction when the microseconds are 0), without offset.
pub fn python_isoformat(at: DateTime<Utc>) -> String {
    let micros = at.nanosecond() / 1_000 % 1_000_000;
    if micros == 0 {
        at.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", at.format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// The error body of `problem`.
pub fn error_body(problem: &Problem, request_id: &str, stamp: Stamp, now: DateTime<Utc>) -> Json {
    let mut body = Json::object()
        .with("error", problem.code.as_str())
        .with("message", problem.message.as_str());
    if let Some(details) = &problem.details {
        body.push("details", Json::from(details.clone()));
    }
    if let Some(errors) = &problem.validation_errors {
        let entries = errors
            .iter()
            .map(|e| {
                Json::object()
                    .with("field", e.field.as_str())
                    .with("message", e.message.as_str())
            })
            .collect::<Vec<_>>();
        body.push("validation_errors", entries);
    }
    body.with("request_id", request_id)
        .with("timestamp", stamp.format(now))
}

/// `target.target_date` → `target.targetDate`; numeric segments stay.
pub fn camel_path(path: &str) -> String {
    path.split('.')
        .map(camel_case_key)
        .collect::<Vec<_>>()
        .join(".")
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(micros: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 5, 10, 0, 0)
            .single()
            .map(|t| t + chrono::Duration::microseconds(i64::from(micros)))
            .expect("a valid time")
    }

    #[test]
    fn timestamps_follow_python_isoformat() {
        assert_eq!(
            Stamp::Offset.format(at(123_456)),
            "2025-01-05T10:00:00.123456+00:00"
        );
        assert_eq!(
            Stamp::Naive.format(at(123_456)),
            "2025-01-05T10:00:00.123456"
        );
        assert_eq!(Stamp::Naive.format(at(0)), "2025-01-05T10:00:00");
        assert_eq!(
            Stamp::Offset.format(at(5)),
            "2025-01-05T10:00:00.000005+00:00"
        );
    }

    #[test]
    fn error_bodies_have_their_keys_in_order() {
        let problem = ApiError::Body(vec![FieldError::new("target.value", "Field required")])
            .problem(Precondition::Goal);
        let body = error_body(&problem, "req-1", Stamp::Offset, at(0)).to_text();
        assert_eq!(
            body,
            r#"{"error":"VALIDATION_ERROR","message":"Validation failed","validation_errors":[{"field":"target.value","message":"Field required"}],"request_id":"req-1","timestamp":"2025-01-05T10:00:00+00:00"}"#
        );
        let body = error_body(
            &ApiError::Unauthorized.problem(Precondition::Goal),
            "r",
            Stamp::Naive,
            at(0),
        )
        .to_value();
        assert_eq!(body["error"], "UNAUTHORIZED");
        assert_eq!(body["message"], "User authentication required");
        assert!(body.get("details").is_none() && body.get("validation_errors").is_none());
        let missing = ApiError::MissingGoalId.problem(Precondition::Goal);
        assert_eq!(
            (missing.status, missing.message.as_str()),
            (400, "Goal ID is required")
        );
        assert!(missing.validation_errors.is_none());
        let query = ApiError::Query("bad".into()).problem(Precondition::Goal);
        assert_eq!(query.message, "Invalid query parameters");
        assert_eq!(
            query.validation_errors,
            Some(vec![FieldError::new("query", "bad")])
        );
    }

    #[test]
    fn store_errors_map_in_one_place() {
        let problem =
            |error: Error, precondition| store_problem(&error, "u-1", "g-1", precondition);
        let invalid = problem(
            Error::InvalidArgument {
                field: "target.target_date".into(),
                reason: "is in the past".into(),
            },
            Precondition::Goal,
        );
        assert_eq!(
            (invalid.status, invalid.code.as_str()),
            (400, "VALIDATION_ERROR")
        );
        assert_eq!(
            invalid.validation_errors,
            Some(vec![FieldError::new("target.targetDate", "is in the past")])
        );
        let bad_id = problem(
            Error::InvalidArgument {
                field: "goal_id".into(),
                reason: "contains '#'".into(),
            },
            Precondition::Goal,
        );
        assert_eq!(
            (bad_id.status, bad_id.code.as_str()),
            (404, "GOAL_NOT_FOUND")
        );
        let missing = problem(
            Error::NotFound {
                kind: "goal",
                id: "g-1".into(),
            },
            Precondition::Goal,
        );
        assert_eq!(
            (missing.status, missing.code.as_str()),
            (404, "GOAL_NOT_FOUND")
        );
        assert_eq!(missing.message, "Goal g-1 not found for user u-1");
        assert!(missing.details.is_none());
        let rule = problem(
            Error::rule(
                RuleCode::InvalidGoalPatternOperation,
                "no",
                json!({"pattern": "streak", "operation": "skipped"}),
            ),
            Precondition::Activity,
        );
        assert_eq!(
            (rule.status, rule.code.as_str()),
            (400, "INVALID_GOAL_PATTERN_OPERATION")
        );
        assert_eq!(
            rule.details,
            Some(json!({"pattern": "streak", "operation": "skipped"}))
        );
        let quota = problem(
            Error::rule(
                RuleCode::GoalQuotaExceeded,
                "Goal quota exceeded. Current: 50, Max: 50",
                json!({}),
            ),
            Precondition::Goal,
        );
        assert_eq!(
            (quota.status, quota.code.as_str()),
            (422, "GOAL_QUOTA_EXCEEDED")
        );
        let precondition = Error::FailedPrecondition("archived".into());
        assert_eq!(
            problem(precondition.clone(), Precondition::Goal).code,
            "GOAL_VALIDATION_ERROR"
        );
        assert_eq!(
            problem(precondition.clone(), Precondition::Activity).code,
            "ACTIVITY_VALIDATION_ERROR"
        );
        let update = problem(precondition, Precondition::Update);
        assert_eq!(
            (update.status, update.code.as_str()),
            (422, "GOAL_ALREADY_COMPLETED")
        );
        assert_eq!(update.details, Some(json!({"goal_id": "g-1"})));
        for error in [
            Error::Unavailable("down".into()),
            Error::Throttled { attempts: 3 },
            Error::CorruptItem {
                key: "k".into(),
                reason: "r".into(),
            },
        ] {
            let p = problem(error, Precondition::Goal);
            assert_eq!(
                (p.status, p.code.as_str(), p.message.as_str()),
                (500, "SYSTEM_ERROR", "An unexpected error occurred")
            );
        }
    }

    #[test]
    fn paths_become_camel_case() {
        assert_eq!(
            camel_path("attachments.0.entity_id"),
            "attachments.0.entityId"
        );
        assert_eq!(camel_case_key("_private"), "_private");
    }
}
