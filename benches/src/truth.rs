//! What the table holds, as far as the replayer knows: per goal, the latest acknowledged title,
//! status and progress; and the checks of reads against it.
//!
//! Every write of the trace (through the store, or by the other writer followed by
//! `apply_events`) updates this record once it is acknowledged. Operations of one user run one
//! after the other in trace order, so when a read of a user starts, every write of that user
//! before it in the trace has been acknowledged and nothing of that user is in flight: a read that
//! does not match this record is a stale read.
//!
//! What is compared: a goal's title and status; the ids and titles of a user's active goals; a
//! progress's `last_activity_date` and `average_value` (functions of the activities alone, not
//! of the clock, so a freshly computed progress and a cached one must agree).

use goalstore::{Goal, GoalStatus, Progress};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::workload::Trace;

/// The replayer's record of one goal.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalTruth {
    /// Created (seeded, or its `Create` acknowledged).
    pub exists: bool,
    pub title: String,
    pub status: GoalStatus,
    pub progress: Progress,
}

/// Ids of users and goals in one run: `{prefix}u{n}` and `{prefix}g{n}`. A prefix keeps the
/// runs of several strategies apart in one DynamoDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    prefix: String,
}

impl Ids {
    /// Ids under `prefix` (empty, or characters of `[A-Za-z0-9_-]`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn user(&self, user: u32) -> String {
        format!("{}u{user}", self.prefix)
    }

    pub fn goal(&self, goal: u32) -> String {
        format!("{}g{goal}", self.prefix)
    }

    /// The index of a goal id of this run.
    pub fn goal_index(&self, id: &str) -> Option<u32> {
        id.strip_prefix(&self.prefix)?
            .strip_prefix('g')?
            .parse()
            .ok()
    }
}

/// The record of every goal of a run.
#[derive(Debug)]
pub struct Truth {
    goals: Vec<Mutex<GoalTruth>>,
    user_goals: Vec<Vec<u32>>,
    ids: Ids,
}

impl Truth {
    /// Every goal as the trace starts (seeded goals exist, created ones do not yet).
    pub fn new(trace: &Trace, ids: Ids) -> Self {
        let goals = trace
            .goals
            .iter()
            .map(|spec| {
                Mutex::new(GoalTruth {
                    exists: spec.seeded,
                    title: spec.title.clone(),
                    status: if spec.paused {
                        GoalStatus::Paused
                    } else {
                        GoalStatus::Active
                    },
                    progress: Progress::default(),
                })
            })
            .collect();
        Self {
            goals,
            user_goals: trace.user_goals.clone(),
            ids,
        }
    }

    /// The ids of this run.
    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// The record of `goal`, to read or to change after an acknowledged write.
    pub fn goal(&self, goal: u32) -> MutexGuard<'_, GoalTruth> {
        self.goals[goal as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Why `got` (read as goal `goal`) is stale, or `None` when it matches.
    pub fn check_goal(&self, goal: u32, got: &Goal) -> Option<String> {
        let truth = self.goal(goal);
        if !truth.exists {
            return Some(format!("goal {} read before its creation", got.goal_id));
        }
        (got.title != truth.title || got.status != truth.status).then(|| {
            format!(
                "goal {}: read ({:?}, {}), latest write ({:?}, {})",
                got.goal_id, got.title, got.status, truth.title, truth.status
            )
        })
    }

    /// Why `goal`, reported missing, is stale (it exists), or `None`.
    pub fn check_missing(&self, goal: u32) -> Option<String> {
        self.goal(goal)
            .exists
            .then(|| format!("goal {} reported missing", self.ids.goal(goal)))
    }

    /// Why `got`, read as the active goals of `user`, is stale, or `None`.
    pub fn check_active(&self, user: u32, got: &[Goal]) -> Option<String> {
        let expected: BTreeMap<String, String> = self.user_goals[user as usize]
            .iter()
            .filter_map(|goal| {
                let truth = self.goal(*goal);
                (truth.exists && truth.status == GoalStatus::Active)
                    .then(|| (self.ids.goal(*goal), truth.title.clone()))
            })
            .collect();
        let read: BTreeMap<String, String> = got
            .iter()
            .map(|g| (g.goal_id.clone(), g.title.clone()))
            .collect();
        (read != expected || read.len() != got.len()).then(|| {
            format!(
                "active goals of {}: read {:?}, latest writes {:?}",
                self.ids.user(user),
                read,
                expected
            )
        })
    }

    /// Why `got`, read as the progress of `goal`, is stale, or `None`.
    pub fn check_progress(&self, goal: u32, got: &Progress) -> Option<String> {
        let truth = self.goal(goal);
        let expected = &truth.progress;
        (got.last_activity_date != expected.last_activity_date
            || got.average_value != expected.average_value)
            .then(|| {
                format!(
                    "progress of {}: read (last {:?}, average {:?}), latest write (last {:?}, average {:?})",
                    self.ids.goal(goal),
                    got.last_activity_date.as_ref().map(|t| t.to_string()),
                    got.average_value,
                    expected.last_activity_date.as_ref().map(|t| t.to_string()),
                    expected.average_value
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{generate, OpMix, WorkloadConfig};

    #[test]
    fn ids_round_trip_under_a_prefix() {
        let ids = Ids::new("r1-");
        assert_eq!(ids.user(3), "r1-u3");
        assert_eq!(ids.goal(42), "r1-g42");
        assert_eq!(ids.goal_index("r1-g42"), Some(42));
        assert_eq!(ids.goal_index("r2-g42"), None);
        assert_eq!(Ids::new("").goal_index("g7"), Some(7));
    }

    #[test]
    fn reads_that_miss_a_write_are_stale() {
        let trace = generate(&WorkloadConfig {
            users: 2,
            goals_per_user: 1,
            seed_activities: 0,
            zipf_exponent: 0.0,
            mix: OpMix::default(),
            external_rate: 0.0,
            ops: 0,
            batch_max: 2,
            seed: 1,
        });
        let truth = Truth::new(&trace, Ids::new(""));
        let goal = trace.user_goals[0][0];
        let spec = &trace.goals[goal as usize];
        truth.goal(goal).status = GoalStatus::Active;
        let read = Goal {
            goal_id: format!("g{goal}"),
            user_id: "u0".into(),
            title: spec.title.clone(),
            description: None,
            category: None,
            icon: None,
            color: None,
            goal_pattern: spec.pattern,
            target: Default::default(),
            schedule: None,
            progress: Progress::default(),
            context: None,
            rewards: None,
            status: GoalStatus::Active,
            visibility: goalstore::Visibility::Private,
            created_at: goalstore::Timestamp::from_instant(chrono::Utc::now()),
            updated_at: goalstore::Timestamp::from_instant(chrono::Utc::now()),
            completed_at: None,
            archived_at: None,
            metadata: None,
            is_journal_linked: false,
        };
        assert_eq!(truth.check_goal(goal, &read), None);
        assert_eq!(truth.check_active(0, std::slice::from_ref(&read)), None);
        truth.goal(goal).title = "renamed".into();
        assert!(truth.check_goal(goal, &read).is_some());
        assert!(truth.check_active(0, std::slice::from_ref(&read)).is_some());
        truth.goal(goal).title = spec.title.clone();
        truth.goal(goal).status = GoalStatus::Paused;
        assert!(truth.check_active(0, &[read]).is_some());
        assert_eq!(truth.check_active(0, &[]), None);
        assert!(truth.check_missing(goal).is_some());
        let progress = Progress {
            average_value: Some(2.0),
            ..Progress::default()
        };
        assert!(truth.check_progress(goal, &progress).is_some());
        truth.goal(goal).progress = progress.clone();
        assert_eq!(truth.check_progress(goal, &progress), None);
    }
}
