//! The errors of the store's public API.
//!
//! One enum, one variant per way a caller must react: fix the request (`InvalidArgument`),
//! look elsewhere (`NotFound`), change the goal first (`FailedPrecondition`), use the existing
//! one (`AlreadyExists`), or retry later (`Throttled`, `Unavailable`). The sidecar maps each
//! variant to one gRPC code in one place.

use crate::table::TableError;

/// What went wrong with a store call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names the offending field. Nothing was read or written.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// No such item for this user.
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    /// The item exists but is in a state that refuses the request.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// An item with this id already exists.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// DynamoDB kept throttling after every retry the budget allowed.
    #[error("throttled by the table after {attempts} attempts")]
    Throttled { attempts: u32 },
    /// The table could not be reached or answered with a server error.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The sidecar refused the caller's credentials (a client-side error; the store never raises it).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The sidecar is at its limit of calls in flight (client-side); retry with backoff.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// An item in the table could not be decoded; the table holds something this version cannot read.
    #[error("corrupt item `{key}`: {reason}")]
    CorruptItem { key: String, reason: String },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// A short, stable name of the variant, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::NotFound { .. } => "not_found",
            Error::FailedPrecondition(_) => "failed_precondition",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Throttled { .. } => "throttled",
            Error::Unavailable(_) => "unavailable",
            Error::CorruptItem { .. } => "corrupt_item",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::ResourceExhausted(_) => "resource_exhausted",
        }
    }

    /// Whether the caller caused it (bad input, missing item, a state that refuses the call),
    /// rather than the store or its dependencies.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidArgument { .. }
                | Error::NotFound { .. }
                | Error::FailedPrecondition(_)
                | Error::AlreadyExists { .. }
                | Error::Unauthenticated(_)
        )
    }
}

impl From<TableError> for Error {
    fn from(error: TableError) -> Self {
        match error {
            TableError::Throttled { attempts, .. } => Error::Throttled { attempts },
            TableError::ConditionFailed => {
                Error::FailedPrecondition("the item changed concurrently".into())
            }
            TableError::Unavailable(message) => Error::Unavailable(message),
            TableError::Rejected(message) => {
                Error::Unavailable(format!("the table rejected the request: {message}"))
            }
        }
    }
}

/// The result of a store call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
