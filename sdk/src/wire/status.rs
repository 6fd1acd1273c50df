//! Store errors ↔ gRPC statuses: one code per error, the message naming the field or id, the
//! standard rich details any gRPC client can read (`google.rpc.ErrorInfo` always,
//! `google.rpc.BadRequest` with the field violation of an invalid argument, `google.rpc.RetryInfo`
//! when DynamoDB throttled), and goalstore's own metadata, from which [`error_of`] rebuilds the
//! exact error for the Rust client.

use crate::error::{Error, RuleCode};
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` goalstore sends.
pub const ERROR_DOMAIN: &str = "goalstore.v1";

/// How long a throttled caller is told to wait before retrying (`google.rpc.RetryInfo`): the
/// store already retried with backoff, so DynamoDB is short of capacity for a moment.
const THROTTLED_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Metadata carrying the parts of an error a client needs to rebuild it exactly.
const FIELD: &str = "x-goalstore-field";
const KIND: &str = "x-goalstore-kind";
const ID: &str = "x-goalstore-id";
const REASON: &str = "x-goalstore-reason";
/// The business rule's code (`GOAL_QUOTA_EXCEEDED`, ...) of a FAILED_PRECONDITION.
const RULE: &str = "x-goalstore-rule";
/// The rule's details, as JSON text.
const RULE_DETAILS: &str = "x-goalstore-rule-details";

const KNOWN_KINDS: &[&str] = &["goal", "activity", "item"];

fn known(list: &[&'static str], name: &str, otherwise: &'static str) -> &'static str {
    list.iter()
        .copied()
        .find(|f| *f == name)
        .unwrap_or(otherwise)
}

/// The gRPC status of a store error: one code per variant, the message naming the field or id,
/// the standard details ([`details_of`]), and metadata from which [`error_of`] rebuilds the same
/// error.
pub fn status_of(error: &Error) -> Status {
    let code = match error {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound { .. } => Code::NotFound,
        Error::FailedPrecondition(_) | Error::Rule(_) => Code::FailedPrecondition,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::Throttled { .. } | Error::Unavailable(_) => Code::Unavailable,
        Error::CorruptItem { .. } => Code::DataLoss,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
    };
    let mut status = Status::with_error_details(code, error.to_string(), details_of(error));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = value.parse() {
            status.metadata_mut().insert(name, value);
        }
    };
    match error {
        Error::InvalidArgument { field, reason } => {
            put(FIELD, field);
            put(REASON, reason);
        }
        Error::NotFound { kind, id } | Error::AlreadyExists { kind, id } => {
            put(KIND, kind);
            put(ID, id);
        }
        Error::Rule(rule) => {
            put(RULE, rule.code.as_str());
            put(RULE_DETAILS, &rule.details.to_string());
        }
        _ => {}
    }
    status
}

/// The store error a gRPC status stands for (for clients of the sidecar).
pub fn error_of(status: &Status) -> Error {
    let message = status.message().to_owned();
    let meta = |name: &str| {
        status
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match status.code() {
        Code::InvalidArgument => Error::InvalidArgument {
            field: meta(FIELD).unwrap_or_else(|| "request".to_owned()),
            reason: meta(REASON).unwrap_or(message),
        },
        Code::NotFound => Error::NotFound {
            kind: known(KNOWN_KINDS, &meta(KIND).unwrap_or_default(), "item"),
            id: meta(ID).unwrap_or(message),
        },
        Code::FailedPrecondition if meta(RULE).is_some() => {
            let code = meta(RULE).as_deref().and_then(RuleCode::from_text);
            match code {
                Some(code) => Error::rule(
                    code,
                    message
                        .strip_prefix(&format!("{code}: "))
                        .unwrap_or(&message)
                        .to_owned(),
                    meta(RULE_DETAILS)
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or_else(|| serde_json::json!({})),
                ),
                None => Error::FailedPrecondition(message),
            }
        }
        Code::FailedPrecondition => Error::FailedPrecondition(
            message
                .strip_prefix("failed precondition: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Code::AlreadyExists => Error::AlreadyExists {
            kind: known(KNOWN_KINDS, &meta(KIND).unwrap_or_default(), "item"),
            id: meta(ID).unwrap_or(message),
        },
        Code::DataLoss => Error::CorruptItem {
            key: String::new(),
            reason: message,
        },
        Code::Unavailable => Error::Unavailable(
            message
                .strip_prefix("unavailable: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Code::Unauthenticated => Error::Unauthenticated(
            message
                .strip_prefix("unauthenticated: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        Code::ResourceExhausted => Error::ResourceExhausted(
            message
                .strip_prefix("resource exhausted: ")
                .unwrap_or(&message)
                .to_owned(),
        ),
        code => Error::Unavailable(format!("{code:?}: {message}")),
    }
}

/// The standard details of a store error: `ErrorInfo` (a reason in `UPPER_SNAKE_CASE` — the
/// rule's code for a business rule — in [`ERROR_DOMAIN`], with the field, kind or id as
/// metadata), a `BadRequest` field violation for an invalid argument, `RetryInfo` when throttled.
fn details_of(error: &Error) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    let mut metadata = std::collections::HashMap::new();
    let reason = match error {
        Error::InvalidArgument { field, reason } => {
            details.add_bad_request_violation(field.clone(), reason.clone());
            metadata.insert("field".to_owned(), field.clone());
            "INVALID_ARGUMENT".to_owned()
        }
        Error::NotFound { kind, id } => {
            metadata.insert("kind".to_owned(), (*kind).to_owned());
            metadata.insert("id".to_owned(), id.clone());
            format!("{}_NOT_FOUND", kind.to_ascii_uppercase())
        }
        Error::AlreadyExists { kind, id } => {
            metadata.insert("kind".to_owned(), (*kind).to_owned());
            metadata.insert("id".to_owned(), id.clone());
            format!("{}_ALREADY_EXISTS", kind.to_ascii_uppercase())
        }
        Error::Rule(rule) => rule.code.as_str().to_owned(),
        Error::FailedPrecondition(_) => "FAILED_PRECONDITION".to_owned(),
        Error::Throttled { attempts } => {
            details.set_retry_info(Some(THROTTLED_RETRY_DELAY));
            metadata.insert("attempts".to_owned(), attempts.to_string());
            "THROTTLED".to_owned()
        }
        Error::Unavailable(_) => "UNAVAILABLE".to_owned(),
        Error::CorruptItem { .. } => "CORRUPT_ITEM".to_owned(),
        Error::Unauthenticated(_) => "UNAUTHENTICATED".to_owned(),
        Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED".to_owned(),
    };
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_one_code_and_back() {
        let errors = [
            Error::invalid("goal_id", "bad"),
            Error::NotFound {
                kind: "goal",
                id: "g".into(),
            },
            Error::FailedPrecondition("archived".into()),
            Error::AlreadyExists {
                kind: "goal",
                id: "g".into(),
            },
            Error::Unavailable("down".into()),
            Error::Unauthenticated("no token".into()),
            Error::ResourceExhausted("too many calls".into()),
        ];
        for error in errors {
            let status = status_of(&error);
            assert_eq!(error_of(&status), error, "round trip of {error}");
        }
        assert_eq!(
            status_of(&Error::Throttled { attempts: 3 }).code(),
            Code::Unavailable
        );
    }

    #[test]
    fn statuses_carry_the_standard_details() {
        let status = status_of(&Error::invalid("target.unit", "must not be empty"));
        let details = status.get_error_details();
        let violations = details
            .bad_request()
            .map(|bad| bad.field_violations.clone())
            .unwrap_or_default();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "target.unit");
        assert_eq!(violations[0].description, "must not be empty");
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", ERROR_DOMAIN)
        );

        let throttled = status_of(&Error::Throttled { attempts: 3 }).get_error_details();
        assert_eq!(
            throttled.retry_info().and_then(|r| r.retry_delay),
            Some(THROTTLED_RETRY_DELAY)
        );
        assert_eq!(
            throttled.error_info().map(|i| i.reason.as_str()),
            Some("THROTTLED")
        );
        let missing = status_of(&Error::NotFound {
            kind: "goal",
            id: "g1".into(),
        })
        .get_error_details();
        let info = missing.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "GOAL_NOT_FOUND");
        assert_eq!(info.metadata.get("id").map(String::as_str), Some("g1"));
        assert!(missing.bad_request().is_none() && missing.retry_info().is_none());
    }
}
