//! The errors of the store's public API.
//!
//! One enum, one variant per way a caller must react: fix the request (`InvalidArgument`),
//! look elsewhere (`NotFound`), respect a business rule of the goals API (`Rule`, with the rule's
//! code), change the goal first (`FailedPrecondition`), use the existing one (`AlreadyExists`),
//! or retry later (`Throttled`, `Unavailable`). The sidecar maps each variant to one gRPC code in
//! one place (`wire::status_of`), the Lambda handlers to one HTTP status.

use crate::table::TableError;

/// What went wrong with a store call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `field` names the offending field, a dotted path into nested
    /// values (`target.unit`, `context.importance_level`, `attachments.0.url`). Nothing was read
    /// or written.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// A business rule of the goals API refused the request (the existing handlers' rules:
    /// quota, duplicate titles, dates, per-pattern values, status transitions, units). Nothing
    /// was written. gRPC: FAILED_PRECONDITION carrying the rule's code; HTTP: 422 (400 for
    /// `INVALID_GOAL_PATTERN_OPERATION`), as the existing handlers answer.
    #[error("{}: {}", .0.code, .0.message)]
    Rule(Box<RuleViolation>),
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

/// The code of a business rule, as the existing handlers name it in their error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleCode {
    /// The user already has the most active goals allowed.
    GoalQuotaExceeded,
    /// A goal's fields break a rule: a date in the past, a pattern's configuration, a duplicate
    /// active title, a streak longer than a year.
    GoalValidationError,
    /// The goal is completed or archived and can no longer be modified.
    GoalAlreadyCompleted,
    /// An activity breaks a rule of its goal: status, unit, value, date.
    ActivityValidationError,
    /// The operation does not exist for the goal's pattern (a streak activity that is not
    /// progress).
    InvalidGoalPatternOperation,
}

impl RuleCode {
    /// Every code, for tests and lookups.
    pub const ALL: &'static [RuleCode] = &[
        RuleCode::GoalQuotaExceeded,
        RuleCode::GoalValidationError,
        RuleCode::GoalAlreadyCompleted,
        RuleCode::ActivityValidationError,
        RuleCode::InvalidGoalPatternOperation,
    ];

    /// The wire spelling: `GOAL_QUOTA_EXCEEDED`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RuleCode::GoalQuotaExceeded => "GOAL_QUOTA_EXCEEDED",
            RuleCode::GoalValidationError => "GOAL_VALIDATION_ERROR",
            RuleCode::GoalAlreadyCompleted => "GOAL_ALREADY_COMPLETED",
            RuleCode::ActivityValidationError => "ACTIVITY_VALIDATION_ERROR",
            RuleCode::InvalidGoalPatternOperation => "INVALID_GOAL_PATTERN_OPERATION",
        }
    }

    /// The code of a wire spelling.
    pub fn from_text(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == text)
    }

    /// The HTTP status the existing handlers answer it with.
    pub fn http_status(self) -> u16 {
        match self {
            RuleCode::InvalidGoalPatternOperation => 400,
            _ => 422,
        }
    }
}

impl std::fmt::Display for RuleCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A business rule that refused a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleViolation {
    pub code: RuleCode,
    /// For people, e.g. `Goal quota exceeded. Current: 50, Max: 50`.
    pub message: String,
    /// For programs, as the existing handlers' `details`: e.g. `{"current_count": 50,
    /// "max_allowed": 50}` or `{"validation_errors": ["..."]}`; an empty map when there is none.
    pub details: serde_json::Value,
}

impl Error {
    /// A business rule's refusal.
    pub fn rule(code: RuleCode, message: impl Into<String>, details: serde_json::Value) -> Self {
        Self::Rule(Box::new(RuleViolation {
            code,
            message: message.into(),
            details,
        }))
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::invalid_at(field, reason)
    }

    /// An invalid argument at a path built at run time.
    pub(crate) fn invalid_at(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field an `InvalidArgument` names; `None` for every other error.
    pub fn invalid_field(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument { field, .. } => Some(field),
            _ => None,
        }
    }

    /// A short, stable name of the variant, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::NotFound { .. } => "not_found",
            Error::Rule(_) => "rule",
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
                | Error::Rule(_)
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
