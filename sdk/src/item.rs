//! Goals and activities as DynamoDB items, in the layout the existing goal handlers use.
//!
//! | entity   | pk               | sk                                    | also                                        |
//! |----------|------------------|---------------------------------------|---------------------------------------------|
//! | goal     | `USER#{user_id}` | `GOAL#{goal_id}`                      | `EntityType=Goal`, `gsi1_pk=STATUS#{status}`, `gsi1_sk`=created_at |
//! | activity | `USER#{user_id}` | `ACTIVITY#{goal_id}#{logged_at}`      | `EntityType=GoalActivity`, `gsi1_pk=GOAL#{goal_id}`, `gsi1_sk`=logged_at |
//!
//! goalstore's own items sit beside them under sort keys the existing handlers never read:
//! idempotency markers (`IDEMPOTENCY#…`, `idempotency.rs`) and each goal's progress state
//! (`PROGRESS#{goal_id}`, `store/state.rs`).
//!
//! Draft goals carry `TTL` = created_at + 30 days, activities `TTL` = logged_at + 365 days (epoch
//! seconds). Key attributes hold timestamps in upstream's `+00:00` form, plain attributes keep
//! the text as it is.
//!
//! Invariant: decoding never fails on attributes it does not know (they are ignored), and an
//! update writes the goal's attributes over the item it read, so attributes this version does not
//! know survive updates.

use crate::error::Error;
use crate::keys::{activity_sk, goal_key, GoalId, UserId};
use crate::model::{Activity, Goal, GoalStatus, Timestamp};
use crate::table::{Condition, Item, Update};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;

/// How long a draft goal lives before DynamoDB's TTL removes it.
pub const DRAFT_TTL: Duration = Duration::days(30);
/// How long an activity lives before DynamoDB's TTL removes it.
pub const ACTIVITY_TTL: Duration = Duration::days(365);

/// `goal` as a complete item.
pub fn goal_to_item(goal: &Goal) -> Result<Item, Error> {
    let user = UserId::parse(&goal.user_id)?;
    let goal_id = GoalId::parse(&goal.goal_id)?;
    let mut item: Item = serde_dynamo::to_item(goal).map_err(|e| Error::CorruptItem {
        key: goal.goal_id.clone(),
        reason: e.to_string(),
    })?;
    let key = goal_key(&user, &goal_id);
    item.insert("pk".into(), AttributeValue::S(key.pk));
    item.insert("sk".into(), AttributeValue::S(key.sk));
    item.insert("EntityType".into(), AttributeValue::S("Goal".into()));
    item.insert(
        "gsi1_pk".into(),
        AttributeValue::S(format!("STATUS#{}", goal.status)),
    );
    item.insert(
        "gsi1_sk".into(),
        AttributeValue::S(goal.created_at.key_form()),
    );
    if goal.status == GoalStatus::Draft {
        if let Some(created) = goal.created_at.instant() {
            let expires = (created + DRAFT_TTL).timestamp();
            item.insert("TTL".into(), AttributeValue::N(expires.to_string()));
        }
    }
    Ok(item)
}

/// `goal` written over `existing`, the item it was read from: attributes this version does not
/// know are kept, the TTL is dropped once the goal is no longer a draft.
pub fn goal_over_item(goal: &Goal, mut existing: Item) -> Result<Item, Error> {
    existing.remove("TTL");
    existing.extend(goal_to_item(goal)?);
    Ok(existing)
}

/// The UpdateItem that writes `goal` over its item, where `updated_at` still holds `read` (the
/// version the caller read): every attribute `goal_to_item` writes is set, attributes this version
/// does not know are kept, the TTL is removed once the goal is no longer a draft. It needs no
/// copy of the stored item, so a version read from the cache will do.
pub fn goal_update(goal: &Goal, read: &Timestamp) -> Result<Update, Error> {
    let mut set = goal_to_item(goal)?;
    set.remove("pk");
    set.remove("sk");
    let key = goal_key(
        &UserId::parse(&goal.user_id)?,
        &GoalId::parse(&goal.goal_id)?,
    );
    let remove = if set.contains_key("TTL") {
        Vec::new()
    } else {
        vec!["TTL".to_owned()]
    };
    Ok(Update {
        key,
        set,
        remove,
        condition: Some(Condition::AttributeEquals {
            attribute: "updated_at".into(),
            value: AttributeValue::S(read.as_str().to_owned()),
        }),
    })
}

/// The goal an item holds.
pub fn goal_from_item(item: &Item) -> Result<Goal, Error> {
    decode(item)
}

/// `activity` as a complete item.
pub fn activity_to_item(activity: &Activity) -> Result<Item, Error> {
    let user = UserId::parse(&activity.user_id)?;
    let goal_id = GoalId::parse(&activity.goal_id)?;
    let logged_at = activity
        .logged_at
        .instant()
        .ok_or_else(|| Error::invalid("logged_at", "is not an ISO-8601 time"))?;
    let mut item: Item = serde_dynamo::to_item(activity).map_err(|e| Error::CorruptItem {
        key: activity.activity_id.clone(),
        reason: e.to_string(),
    })?;
    item.insert(
        "pk".into(),
        AttributeValue::S(crate::keys::user_partition(&user)),
    );
    item.insert(
        "sk".into(),
        AttributeValue::S(activity_sk(&goal_id, logged_at)),
    );
    item.insert(
        "EntityType".into(),
        AttributeValue::S("GoalActivity".into()),
    );
    item.insert(
        "gsi1_pk".into(),
        AttributeValue::S(format!("GOAL#{goal_id}")),
    );
    item.insert(
        "gsi1_sk".into(),
        AttributeValue::S(activity.logged_at.key_form()),
    );
    item.insert(
        "TTL".into(),
        AttributeValue::N((logged_at + ACTIVITY_TTL).timestamp().to_string()),
    );
    Ok(item)
}

/// The activity an item holds.
pub fn activity_from_item(item: &Item) -> Result<Activity, Error> {
    decode(item)
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, Error> {
    // Layout attributes (pk, sk, EntityType, gsi1_*, TTL) and anything else unknown are ignored.
    serde_dynamo::from_item(item.clone()).map_err(|e| Error::CorruptItem {
        key: describe_key(item),
        reason: e.to_string(),
    })
}

fn describe_key(item: &Item) -> String {
    crate::table::item_key(item)
        .map(|key| format!("{}/{}", key.pk, key.sk))
        .unwrap_or_else(|| "(no key)".into())
}
