//! Ids and the table keys built from them.
//!
//! Invariant: a key is only ever built from a validated id. An id is 1-128 characters of
//! `[A-Za-z0-9_-]` (UUIDs and Cognito subs pass), so it cannot contain the `#` that separates key
//! parts and no id can reach another user's partition or another goal's items.
//! This module does no I/O and knows nothing of caching.

use crate::error::Error;
use crate::model::key_form;
use chrono::{DateTime, Utc};

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 128;

/// A validated user id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

/// A validated goal id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoalId(String);

/// A validated activity id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityId(String);

macro_rules! id_type {
    ($name:ident, $field:literal) => {
        impl $name {
            /// Checks `text` and wraps it; the error names the field.
            pub fn parse(text: &str) -> Result<Self, Error> {
                validate_id($field, text).map(|()| Self(text.to_owned()))
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(UserId, "user_id");
id_type!(GoalId, "goal_id");
id_type!(ActivityId, "activity_id");

/// Checks that `text` is a well-formed id; `field` names it in the error.
pub fn validate_id(field: &'static str, text: &str) -> Result<(), Error> {
    if text.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if text.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("is {} characters long; at most {MAX_ID_LEN}", text.len()),
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Error::invalid(
            field,
            format!("contains {bad:?}; only A-Z, a-z, 0-9, '_' and '-' are allowed"),
        ));
    }
    Ok(())
}

/// The primary key of one item.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

/// `USER#{user_id}`: the partition holding all of a user's goals and activities.
pub fn user_partition(user: &UserId) -> String {
    format!("USER#{user}")
}

/// The key of a goal item.
pub fn goal_key(user: &UserId, goal: &GoalId) -> ItemKey {
    ItemKey {
        pk: user_partition(user),
        sk: format!("GOAL#{goal}"),
    }
}

/// The key of a goal's progress state (`store/state.rs`). The sort key starts with neither
/// `GOAL#` nor `ACTIVITY#`, so the existing handlers never read it as a goal or an activity.
pub fn progress_state_key(user: &UserId, goal: &GoalId) -> ItemKey {
    ItemKey {
        pk: user_partition(user),
        sk: format!("PROGRESS#{goal}"),
    }
}

/// The sort-key prefix of all of a user's goals.
pub const GOAL_SK_PREFIX: &str = "GOAL#";

/// The sort-key prefix of all activities of one goal.
pub fn activity_sk_prefix(goal: &GoalId) -> String {
    format!("ACTIVITY#{goal}#")
}

/// The sort key of an activity logged at `logged_at`.
pub fn activity_sk(goal: &GoalId, logged_at: DateTime<Utc>) -> String {
    format!("ACTIVITY#{goal}#{}", key_form(logged_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_uuids_and_cognito_subs() {
        for ok in [
            "3f1c2a9e-5b7d-4e21-9a0c-8d6e4b2f1a77",
            "us-east-1_abc",
            "a",
            &"x".repeat(128),
        ] {
            assert!(UserId::parse(ok).is_ok(), "{ok} should pass");
        }
    }

    #[test]
    fn ids_refuse_separators_and_oversize() {
        for bad in ["a#b", "", "a b", "ü", "a/b", "USER#x"] {
            let error = GoalId::parse(bad).expect_err(bad);
            assert!(
                matches!(&error, Error::InvalidArgument { field, .. } if field == "goal_id"),
                "{bad}: {error}"
            );
        }
        assert!(GoalId::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn keys_have_the_documented_shape() {
        let user = UserId::parse("u1").expect("valid");
        let goal = GoalId::parse("g1").expect("valid");
        assert_eq!(
            goal_key(&user, &goal),
            ItemKey {
                pk: "USER#u1".into(),
                sk: "GOAL#g1".into()
            }
        );
        let at = DateTime::parse_from_rfc3339("2025-01-06T12:00:00.123456Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(
            activity_sk(&goal, at),
            "ACTIVITY#g1#2025-01-06T12:00:00.123456+00:00"
        );
    }
}
