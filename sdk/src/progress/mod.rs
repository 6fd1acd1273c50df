//! Progress of a goal, computed from the goal and its activities at a given instant, exactly as
//! the existing Python goal handlers define it (ORIGIN.md §4), plus the statistics and insights
//! their GET progress answers ([`report`]).
//!
//! Pure functions: no I/O, no clock of their own (the caller passes `now`), nothing panics on any
//! input. Where goalstore deliberately differs from upstream, docs/compatibility.md (`## Progress`)
//! says how and why.
//!
//! The files:
//! - [`buckets`]: the period window and its labels (recurring and limit goals);
//! - [`patterns`]: one calculator per goal pattern;
//! - [`trend`]: the least-squares trend of the last five values;
//! - [`report`]: statistics and insights of GET progress.
//!
//! This file holds the entry point and the *read order*: the order in which upstream sees the
//! activities (newest logged first), which decides "the first activity read", ties and the order
//! of every floating-point sum. It does not decide any pattern's rule.

mod buckets;
mod patterns;
mod report;
mod state;
mod sum;
mod trend;

#[cfg(test)]
mod tests;

pub use buckets::period_label;
pub use report::{report, Insights, ParsePeriodError, Report, ReportPeriod, Statistics};
pub use state::ProgressState;
pub use sum::ExactSum;

use crate::model::{Activity, ActivityType, Goal, GoalPattern, Progress};
use chrono::{DateTime, Utc};
use std::cmp::Ordering;

/// Whether the progress of `after` may differ from that of `before`, a version of the same goal,
/// for the same activities and `now`: the calculators read the goal's pattern and target only.
pub fn depends_on_change(before: &Goal, after: &Goal) -> bool {
    before.goal_pattern != after.goal_pattern || before.target != after.target
}

/// The progress of `goal` given all of its `activities` (any order), as of `now`.
///
/// Upstream reads only the newest 1000 (GET progress) or 100 (recompute on log) activities;
/// goalstore uses all of them.
pub fn compute(goal: &Goal, activities: &[Activity], now: DateTime<Utc>) -> Progress {
    let read = read_order(activities);
    let mut progress = match goal.goal_pattern {
        GoalPattern::Recurring => patterns::recurring(goal, &read, now),
        GoalPattern::Limit => patterns::limit(goal, &read, now),
        GoalPattern::Milestone => patterns::milestone(goal, &read, now),
        GoalPattern::Target => patterns::target(goal, &read),
        GoalPattern::Streak => patterns::streak(goal, &read, now),
    };
    sanitize(&mut progress);
    progress
}

/// One activity as the calculators see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Read {
    /// The activity_date, as an instant.
    pub at: DateTime<Utc>,
    /// The value; a non-finite value reads as 0 (upstream cannot store one: NaN and ±inf are
    /// written as NULL, which its read then refuses).
    pub value: f64,
    pub kind: ActivityType,
}

impl Read {
    pub fn is_progress(&self) -> bool {
        self.kind == ActivityType::Progress
    }
}

/// The activities in upstream's read order: newest `logged_at` first. Ties (upstream cannot have
/// them: `logged_at` is part of the sort key) go by `activity_id` ascending; an unreadable
/// `logged_at` sorts after every readable one. Activities whose `activity_date` is unreadable are
/// left out (upstream refuses to read them at all).
pub(crate) fn read_order(activities: &[Activity]) -> Vec<Read> {
    let mut keyed: Vec<(Option<DateTime<Utc>>, &str, Read)> = activities
        .iter()
        .filter_map(|a| {
            let at = a.activity_date.instant()?;
            let read = Read {
                at,
                value: finite(a.value),
                kind: a.activity_type,
            };
            Some((a.logged_at.instant(), a.activity_id.as_str(), read))
        })
        .collect();
    keyed.sort_by(|(logged_a, id_a, _), (logged_b, id_b, _)| {
        // Descending time (None is the smallest, so it goes last), then ascending id.
        match logged_b.cmp(logged_a) {
            Ordering::Equal => id_a.cmp(id_b),
            other => other,
        }
    });
    keyed.into_iter().map(|(_, _, read)| read).collect()
}

/// `x`, or 0 when it is NaN or infinite.
pub(crate) fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// The goal's `target.value` (0 when absent or not finite; upstream requires a value > 0).
pub(crate) fn target_value(goal: &Goal) -> f64 {
    goal.target.value.map_or(0.0, finite)
}

/// Python's `min(100, x)` for the percentages (NaN cannot reach here: inputs are finite).
pub(crate) fn cap_100(x: f64) -> f64 {
    if x < 100.0 {
        x
    } else {
        100.0
    }
}

/// Upstream writes NaN and ±inf as NULL; a sum can overflow to infinity, so the results are
/// brought back to finite numbers: optional fields become `None`, required ones 0.
fn sanitize(progress: &mut Progress) {
    let optional = |x: &mut Option<f64>| {
        if x.is_some_and(|v| !v.is_finite()) {
            *x = None;
        }
    };
    progress.percent_complete = finite(progress.percent_complete);
    progress.success_rate = Some(progress.success_rate.map_or(0.0, finite));
    optional(&mut progress.current_period_value);
    optional(&mut progress.total_accumulated);
    optional(&mut progress.remaining_to_goal);
    optional(&mut progress.average_value);
    for record in &mut progress.period_history {
        record.value = finite(record.value);
    }
    if progress.trend.is_none() {
        progress.trend = Some(crate::model::Trend::Stable);
    }
}
