//! Events: what changed in the table, from a write through the store or from outside
//! (a gRPC `PublishEvents` call, a DynamoDB Streams record).
//!
//! An event names the goal it concerns and its owner. The store applies events to its caches;
//! without a cache there is nothing to invalidate, but events are still validated so a bad one is
//! refused the same way in every configuration.

use crate::cache::keys::{CacheKey, KeySpace};
use crate::error::Error;
use crate::keys::{GoalId, UserId};
use crate::model::Progress;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A goal was created.
    GoalCreated,
    /// A goal's fields changed.
    GoalUpdated,
    /// A goal was archived.
    GoalArchived,
    /// An activity was logged toward the goal.
    ActivityLogged,
    /// The goal's progress was recalculated elsewhere; this is the new value.
    ProgressCalculated(Progress),
}

impl EventKind {
    /// A short, stable name, for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::GoalCreated => "goal_created",
            EventKind::GoalUpdated => "goal_updated",
            EventKind::GoalArchived => "goal_archived",
            EventKind::ActivityLogged => "activity_logged",
            EventKind::ProgressCalculated(_) => "progress_calculated",
        }
    }
}

/// A change to one goal of one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub user_id: String,
    pub goal_id: String,
    pub kind: EventKind,
}

/// An event whose ids have been checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CheckedEvent {
    pub user: UserId,
    pub goal: GoalId,
    pub kind: EventKind,
}

impl Event {
    /// Checks the ids; the error names the field.
    pub(crate) fn check(&self) -> Result<CheckedEvent, Error> {
        Ok(CheckedEvent {
            user: UserId::parse(&self.user_id)?,
            goal: GoalId::parse(&self.goal_id)?,
            kind: self.kind.clone(),
        })
    }
}

/// The cache keys `event` makes stale (DESIGN.md, "Cache keys and lifetimes"):
/// - goal created: the user's active goals, and the goal's missing-marker;
/// - goal updated or archived, activity logged: the user's active goals, the goal, its progress;
/// - progress calculated: the goal's progress (the store then writes the new value through).
pub fn stale_keys(
    keys: &KeySpace,
    user: &UserId,
    goal: &GoalId,
    event: &EventKind,
) -> Vec<CacheKey> {
    match event {
        EventKind::GoalCreated => vec![keys.active_goals(user), keys.goal(user, goal)],
        EventKind::GoalUpdated | EventKind::GoalArchived | EventKind::ActivityLogged => vec![
            keys.active_goals(user),
            keys.goal(user, goal),
            keys.progress(goal),
        ],
        EventKind::ProgressCalculated(_) => vec![keys.progress(goal)],
    }
}

/// How a write that made `event` itself updates the cache (`cache/write.rs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrittenKeys {
    /// Keys whose new value the write knows: the goal it wrote, the progress it computed.
    pub through: Vec<CacheKey>,
    /// Keys whose new value is the cached one with the written goal put in, replaced or taken
    /// out: the user's active goals (patched by the `local` strategy, dropped with Redis).
    pub patched: Vec<CacheKey>,
    /// Keys it only makes stale (dropped).
    pub stale: Vec<CacheKey>,
}

/// The keys of a write that made `event` itself; together they are [`stale_keys`].
pub fn written_keys(
    keys: &KeySpace,
    user: &UserId,
    goal: &GoalId,
    event: &EventKind,
) -> WrittenKeys {
    let patched = vec![keys.active_goals(user)];
    match event {
        EventKind::GoalCreated => WrittenKeys {
            through: vec![keys.goal(user, goal)],
            patched,
            stale: Vec::new(),
        },
        EventKind::GoalUpdated | EventKind::GoalArchived => WrittenKeys {
            through: vec![keys.goal(user, goal)],
            patched,
            stale: vec![keys.progress(goal)],
        },
        EventKind::ActivityLogged => WrittenKeys {
            through: vec![keys.goal(user, goal), keys.progress(goal)],
            patched,
            stale: Vec::new(),
        },
        EventKind::ProgressCalculated(_) => WrittenKeys {
            stale: vec![keys.progress(goal)],
            ..WrittenKeys::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::keys::CacheKind;

    #[test]
    fn each_event_drops_exactly_its_keys() {
        let keys = KeySpace::new("gs").expect("valid");
        let user = UserId::parse("u").expect("valid");
        let goal = GoalId::parse("g").expect("valid");
        let kinds = |event: EventKind| -> Vec<CacheKind> {
            stale_keys(&keys, &user, &goal, &event)
                .iter()
                .map(|k| k.kind)
                .collect()
        };
        use CacheKind::*;
        assert_eq!(kinds(EventKind::GoalCreated), [ActiveGoals, Goal]);
        for event in [
            EventKind::GoalUpdated,
            EventKind::GoalArchived,
            EventKind::ActivityLogged,
        ] {
            assert_eq!(kinds(event), [ActiveGoals, Goal, Progress]);
        }
        assert_eq!(
            kinds(EventKind::ProgressCalculated(Default::default())),
            [Progress]
        );
    }

    #[test]
    fn a_write_writes_through_or_drops_every_key_its_event_makes_stale() {
        let keys = KeySpace::new("gs").expect("valid");
        let user = UserId::parse("u").expect("valid");
        let goal = GoalId::parse("g").expect("valid");
        for event in [
            EventKind::GoalCreated,
            EventKind::GoalUpdated,
            EventKind::GoalArchived,
            EventKind::ActivityLogged,
            EventKind::ProgressCalculated(Default::default()),
        ] {
            let written = written_keys(&keys, &user, &goal, &event);
            let mut both: Vec<String> = written
                .through
                .iter()
                .chain(&written.patched)
                .chain(&written.stale)
                .map(|k| k.text.to_string())
                .collect();
            let mut all: Vec<String> = stale_keys(&keys, &user, &goal, &event)
                .iter()
                .map(|k| k.text.to_string())
                .collect();
            both.sort();
            all.sort();
            assert_eq!(both, all, "{event:?}");
            // The active list is never written through: a write does not know it whole.
            assert!(written
                .through
                .iter()
                .all(|k| k.kind != CacheKind::ActiveGoals));
            assert!(written
                .patched
                .iter()
                .all(|k| k.kind == CacheKind::ActiveGoals));
        }
    }
}
