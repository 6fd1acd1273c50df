//! Every metric goalstore exports: names, labels, units and help, in one place.
//!
//! Recorded through the `metrics` facade, so the sidecar exports them as Prometheus text and a
//! Lambda as CloudWatch EMF, with no change here. All names start with `goalstore_`; no label ever
//! holds a user or goal id (unbounded cardinality, and personal data).
//!
//! [`describe`] registers help and units, and sets every documented series to zero, so alerts and
//! panels see no gaps before the first call. Install the recorder before building a store: the
//! cache keeps handles to its hot-path counters.

use crate::cache::keys::CacheKind;
use crate::cache::Tier;
use crate::model::GoalPattern;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Latency of each store call, by `op`.
pub const OPERATION_DURATION: &str = "goalstore_operation_duration_seconds";
/// Store calls by `op` and `outcome` (`ok` or the error kind).
pub const OPERATIONS: &str = "goalstore_operations_total";
/// Cache lookups by `tier`, `kind` and `result` (`hit`, `miss`).
pub const CACHE_REQUESTS: &str = "goalstore_cache_requests_total";
/// Values stored in the cache by `result` (`stored`, `refused`: an invalidation came in between).
pub const CACHE_FILLS: &str = "goalstore_cache_fills_total";
/// Keys invalidated by `event` and `tier`.
pub const CACHE_INVALIDATIONS: &str = "goalstore_cache_invalidations_total";
/// Cached values that did not decode.
pub const CACHE_DECODE_FAILURES: &str = "goalstore_cache_decode_failures_total";
/// Entries of the local tier.
pub const CACHE_LOCAL_ENTRIES: &str = "goalstore_cache_local_entries";
/// Weight of the local tier, in bytes.
pub const CACHE_LOCAL_WEIGHT: &str = "goalstore_cache_local_weight_bytes";
/// DynamoDB requests by `operation` and `outcome` (`ok`, `throttled`, `condition_failed`, `error`).
pub const DYNAMODB_REQUESTS: &str = "goalstore_dynamodb_requests_total";
/// Read capacity consumed, by `operation`, in thousandths of a unit (a counter of integers:
/// units are fractional, 0.5 for an eventually consistent read).
pub const DYNAMODB_READ_CAPACITY: &str = "goalstore_dynamodb_read_capacity_milliunits_total";
/// Write capacity consumed, by `operation`, in thousandths of a unit.
pub const DYNAMODB_WRITE_CAPACITY: &str = "goalstore_dynamodb_write_capacity_milliunits_total";
/// Throttled DynamoDB requests, by `operation`.
pub const DYNAMODB_THROTTLES: &str = "goalstore_dynamodb_throttles_total";
/// Retries of BatchGetItem by `reason` (`unprocessed`, `throttled`, `unavailable`).
pub const DYNAMODB_RETRIES: &str = "goalstore_dynamodb_retries_total";
/// Keys per BatchGetItem request.
pub const DYNAMODB_BATCH_KEYS: &str = "goalstore_dynamodb_batch_keys";
/// Redis errors and timeouts.
pub const REDIS_ERRORS: &str = "goalstore_redis_errors_total";
/// 1 while Redis is unreachable or replaying lost invalidations.
pub const REDIS_DEGRADED: &str = "goalstore_redis_degraded";
/// Sampled checks of cached entries against the table by `kind` and `result` (`consistent`,
/// `stale`: still disagreeing with an unchanged table past the pub/sub window).
pub const CONSISTENCY_CHECKS: &str = "goalstore_consistency_checks_total";
/// How long after the audited write a stale entry was found, by `kind`.
pub const CONSISTENCY_STALE_AGE: &str = "goalstore_consistency_stale_age_seconds";
/// Goals created, by `pattern`.
pub const GOALS_CREATED: &str = "goalstore_goals_created_total";
/// Activities logged, by the goal's `pattern`.
pub const ACTIVITIES_LOGGED: &str = "goalstore_activities_logged_total";
/// Change in active goals by `pattern` since this process started (creates and reactivations
/// minus archives, completions and pauses).
pub const ACTIVE_GOALS: &str = "goalstore_active_goals";
/// 1, labelled with the running build's `version` and `git_sha` (see [`build_info`]).
pub const BUILD_INFO: &str = "goalstore_build_info";

/// The store calls, as the `op` label names them.
pub const OPERATION_NAMES: [&str; 13] = [
    "get_goal",
    "get_goals",
    "list_active_goals",
    "list_goals",
    "create_goal",
    "update_goal",
    "archive_goal",
    "log_activity",
    "list_activities",
    "get_progress",
    "apply_events",
    "invalidate_user",
    "check_table",
];

/// The `outcome` labels of a store call.
pub const OUTCOMES: [&str; 11] = [
    "ok",
    "invalid_argument",
    "not_found",
    "rule",
    "failed_precondition",
    "already_exists",
    "throttled",
    "unavailable",
    "corrupt_item",
    "unauthenticated",
    "resource_exhausted",
];

/// The DynamoDB operations, as the `operation` label names them.
pub const DYNAMODB_OPERATIONS: [&str; 6] = [
    "GetItem",
    "BatchGetItem",
    "PutItem",
    "UpdateItem",
    "TransactWriteItems",
    "Query",
];
/// The `outcome` labels of a DynamoDB request.
pub const DYNAMODB_OUTCOMES: [&str; 4] = ["ok", "throttled", "condition_failed", "error"];
/// The events that invalidate, as the `event` label names them.
pub const INVALIDATION_EVENTS: [&str; 6] = [
    "goal_created",
    "goal_updated",
    "goal_archived",
    "activity_logged",
    "progress_calculated",
    "invalidate_user",
];

/// Latency buckets, 50 µs to 5 s: the hit path is microseconds, the targets are 50/100/200 ms.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25,
    0.5, 1.0, 2.5, 5.0,
];

/// Buckets of the age of a stale entry found by the auditor, 100 ms to 1 h.
pub const STALE_AGE_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 60.0, 300.0, 3600.0];

/// Buckets of keys per BatchGetItem.
pub const BATCH_KEY_BUCKETS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0];

/// Describes every metric and sets every documented series to zero. Call once, after installing
/// the recorder.
pub fn describe() {
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Latency of each store call, by op."
    );
    describe_counter!(
        OPERATIONS,
        Unit::Count,
        "Store calls by op and outcome (ok or the error kind)."
    );
    describe_counter!(
        CACHE_REQUESTS,
        Unit::Count,
        "Cache lookups by tier, kind and result (hit, miss)."
    );
    describe_counter!(
        CACHE_FILLS,
        Unit::Count,
        "Values stored in the cache, by result (stored, refused)."
    );
    describe_counter!(
        CACHE_INVALIDATIONS,
        Unit::Count,
        "Cache keys invalidated, by event and tier."
    );
    describe_counter!(
        CACHE_DECODE_FAILURES,
        Unit::Count,
        "Cached values that did not decode."
    );
    describe_gauge!(
        CACHE_LOCAL_ENTRIES,
        Unit::Count,
        "Entries of the local cache tier."
    );
    describe_gauge!(
        CACHE_LOCAL_WEIGHT,
        Unit::Bytes,
        "Weight of the local cache tier."
    );
    describe_counter!(
        DYNAMODB_REQUESTS,
        Unit::Count,
        "DynamoDB requests by operation and outcome."
    );
    describe_counter!(
        DYNAMODB_READ_CAPACITY,
        Unit::Count,
        "DynamoDB read capacity consumed, by operation, in thousandths of a unit."
    );
    describe_counter!(
        DYNAMODB_WRITE_CAPACITY,
        Unit::Count,
        "DynamoDB write capacity consumed, by operation, in thousandths of a unit."
    );
    describe_counter!(
        DYNAMODB_THROTTLES,
        Unit::Count,
        "Throttled DynamoDB requests, by operation."
    );
    describe_counter!(
        DYNAMODB_RETRIES,
        Unit::Count,
        "BatchGetItem retries by reason."
    );
    describe_histogram!(
        DYNAMODB_BATCH_KEYS,
        Unit::Count,
        "Keys per BatchGetItem request."
    );
    describe_counter!(REDIS_ERRORS, Unit::Count, "Redis errors and timeouts.");
    describe_gauge!(
        REDIS_DEGRADED,
        Unit::Count,
        "1 while Redis is unreachable or replaying lost invalidations."
    );
    describe_counter!(
        CONSISTENCY_CHECKS,
        Unit::Count,
        "Sampled checks of cached entries against the table, by kind and result (consistent, stale)."
    );
    describe_histogram!(
        CONSISTENCY_STALE_AGE,
        Unit::Seconds,
        "How long after the audited write a stale cached entry was found, by kind."
    );
    describe_counter!(GOALS_CREATED, Unit::Count, "Goals created, by pattern.");
    describe_counter!(
        ACTIVITIES_LOGGED,
        Unit::Count,
        "Activities logged, by the goal's pattern."
    );
    describe_gauge!(
        ACTIVE_GOALS,
        Unit::Count,
        "Change in active goals by pattern since the process started."
    );

    for op in OPERATION_NAMES {
        // Registering a histogram makes its series (all buckets at zero) exist before a sample.
        let _ = metrics::histogram!(OPERATION_DURATION, "op" => op);
        for outcome in OUTCOMES {
            metrics::counter!(OPERATIONS, "op" => op, "outcome" => outcome).absolute(0);
        }
    }
    for tier in Tier::ALL {
        for kind in CacheKind::ALL {
            for result in ["hit", "miss"] {
                metrics::counter!(CACHE_REQUESTS, "tier" => tier.as_str(), "kind" => kind.as_str(), "result" => result)
                    .absolute(0);
            }
        }
        for event in INVALIDATION_EVENTS {
            metrics::counter!(CACHE_INVALIDATIONS, "event" => event, "tier" => tier.as_str())
                .absolute(0);
        }
    }
    for result in ["stored", "refused"] {
        metrics::counter!(CACHE_FILLS, "result" => result).absolute(0);
    }
    metrics::counter!(CACHE_DECODE_FAILURES).absolute(0);
    for kind in CacheKind::ALL {
        for result in ["consistent", "stale"] {
            metrics::counter!(CONSISTENCY_CHECKS, "kind" => kind.as_str(), "result" => result)
                .absolute(0);
        }
        let _ = metrics::histogram!(CONSISTENCY_STALE_AGE, "kind" => kind.as_str());
    }
    metrics::gauge!(CACHE_LOCAL_ENTRIES).set(0.0);
    metrics::gauge!(CACHE_LOCAL_WEIGHT).set(0.0);
    for operation in DYNAMODB_OPERATIONS {
        for outcome in DYNAMODB_OUTCOMES {
            metrics::counter!(DYNAMODB_REQUESTS, "operation" => operation, "outcome" => outcome)
                .absolute(0);
        }
        metrics::counter!(DYNAMODB_READ_CAPACITY, "operation" => operation).absolute(0);
        metrics::counter!(DYNAMODB_WRITE_CAPACITY, "operation" => operation).absolute(0);
        metrics::counter!(DYNAMODB_THROTTLES, "operation" => operation).absolute(0);
    }
    let _ = metrics::histogram!(DYNAMODB_BATCH_KEYS);
    for reason in ["unprocessed", "throttled", "unavailable"] {
        metrics::counter!(DYNAMODB_RETRIES, "reason" => reason).absolute(0);
    }
    metrics::counter!(REDIS_ERRORS).absolute(0);
    metrics::gauge!(REDIS_DEGRADED).set(0.0);
    for pattern in GoalPattern::ALL {
        metrics::counter!(GOALS_CREATED, "pattern" => pattern.as_str()).absolute(0);
        metrics::counter!(ACTIVITIES_LOGGED, "pattern" => pattern.as_str()).absolute(0);
        metrics::gauge!(ACTIVE_GOALS, "pattern" => pattern.as_str()).set(0.0);
    }
}

/// Sets [`BUILD_INFO`] for the running binary: `version` (its crate version) and `git_sha` (the
/// commit it was built from, or `unknown`). Binaries call it once, after [`describe`].
pub fn build_info(version: &'static str, git_sha: &'static str) {
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "1, labelled with the running build's version and git_sha."
    );
    metrics::gauge!(BUILD_INFO, "version" => version, "git_sha" => git_sha).set(1.0);
}

/// Records one finished store call.
pub fn operation(op: &'static str, seconds: f64, outcome: &'static str) {
    metrics::histogram!(OPERATION_DURATION, "op" => op).record(seconds);
    metrics::counter!(OPERATIONS, "op" => op, "outcome" => outcome).increment(1);
}
