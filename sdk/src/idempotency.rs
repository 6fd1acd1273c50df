//! Idempotent writes: a client-chosen id makes a retried CreateGoal or LogActivity (after a
//! timeout, a Lambda re-delivery) write nothing new and return the first result.
//!
//! The first write puts a marker item beside the goal or activity, in the same transaction:
//! `pk = USER#{user_id}`, `sk = IDEMPOTENCY#goal#{goal_id}` or
//! `IDEMPOTENCY#activity#{goal_id}#{activity_id}`, holding a fingerprint of the request, the result,
//! and a `TTL` 24 hours out (DynamoDB deletes it; until then the store checks the time itself,
//! since TTL deletion may lag). A repeat with the same fingerprint returns the stored result; the
//! same id with a different request is `AlreadyExists`.
//!
//! Listings never see markers: they query `GOAL#` and `ACTIVITY#` prefixes only.

use crate::error::Error;
use crate::keys::{user_partition, GoalId, UserId};
use crate::table::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde::{de::DeserializeOwned, Serialize};

/// How long a repeat is recognised.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

/// The sort key of the marker of a created goal.
pub fn goal_marker_sk(goal: &GoalId) -> String {
    format!("IDEMPOTENCY#goal#{goal}")
}

/// The sort key of the marker of a logged activity.
pub fn activity_marker_sk(goal: &GoalId, activity_id: &str) -> String {
    format!("IDEMPOTENCY#activity#{goal}#{activity_id}")
}

/// A fingerprint of a request: equal requests, equal fingerprints.
pub fn fingerprint<T: Serialize>(request: &T) -> String {
    let text = serde_json::to_string(request).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A marker item holding `result` under `name`.
pub fn marker<T: Serialize>(
    user: &UserId,
    sk: String,
    fingerprint: &str,
    now: DateTime<Utc>,
    fields: &[(&str, &T)],
) -> Result<Item, Error> {
    let mut item = Item::from([
        ("pk".to_owned(), AttributeValue::S(user_partition(user))),
        ("sk".to_owned(), AttributeValue::S(sk)),
        (
            "EntityType".to_owned(),
            AttributeValue::S("IdempotencyKey".into()),
        ),
        (
            "fingerprint".to_owned(),
            AttributeValue::S(fingerprint.to_owned()),
        ),
        (
            "TTL".to_owned(),
            AttributeValue::N((now + IDEMPOTENCY_WINDOW).timestamp().to_string()),
        ),
    ]);
    for (name, value) in fields {
        let value = serde_dynamo::to_attribute_value(value).map_err(|e| Error::CorruptItem {
            key: (*name).to_owned(),
            reason: e.to_string(),
        })?;
        item.insert((*name).to_owned(), value);
    }
    Ok(item)
}

/// What a marker says about a repeat of a request with `fingerprint`, at `now`.
#[derive(Debug, PartialEq)]
pub enum Repeat {
    /// The same request, within the window: its stored result.
    Same(Item),
    /// Another request used the id, or the marker expired.
    Different,
}

/// Compares a stored marker with a repeat.
pub fn check(marker: Item, fingerprint: &str, now: DateTime<Utc>) -> Repeat {
    let expired = match marker.get("TTL") {
        Some(AttributeValue::N(expires)) => expires
            .parse::<i64>()
            .map_or(true, |e| e <= now.timestamp()),
        _ => true,
    };
    let same = matches!(marker.get("fingerprint"), Some(AttributeValue::S(f)) if f == fingerprint);
    if same && !expired {
        Repeat::Same(marker)
    } else {
        Repeat::Different
    }
}

/// The field `name` of a marker, decoded; `None` when absent.
pub fn field<T: DeserializeOwned>(marker: &Item, name: &str) -> Result<Option<T>, Error> {
    match marker.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(value) => serde_dynamo::from_attribute_value(value.clone())
            .map(Some)
            .map_err(|e| Error::CorruptItem {
                key: format!("idempotency marker field {name}"),
                reason: e.to_string(),
            }),
    }
}
