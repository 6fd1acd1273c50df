//! The `statistics` and `insights` of GET progress (ORIGIN.md §4.4), as the API answers them
//! (camelCase keys, upstream's message strings).
//!
//! [`report`] takes the progress already computed by [`super::compute`] and the same activities.
//! `period` changes only `statistics.consistency` (B7: upstream's period filters no activity).
//! `bestTimeOfDay` is always null (B6), as users see it. This file does not compute progress,
//! nor read anything but the goal, the progress and the activities it is given.

use super::{finite, read_order, target_value, Read};
use crate::model::{Activity, ActivityType, Goal, GoalPattern, Progress, Trend};
use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use serde::{Serialize, Serializer};
use std::collections::BTreeSet;

/// The `period` query parameter of GET progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportPeriod {
    #[default]
    Current,
    Week,
    Month,
    Quarter,
    Year,
    All,
}

impl ReportPeriod {
    /// Every value, in the order upstream's error message lists them.
    pub const ALL: &'static [ReportPeriod] = &[
        ReportPeriod::Current,
        ReportPeriod::Week,
        ReportPeriod::Month,
        ReportPeriod::Quarter,
        ReportPeriod::Year,
        ReportPeriod::All,
    ];

    /// The query text.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportPeriod::Current => "current",
            ReportPeriod::Week => "week",
            ReportPeriod::Month => "month",
            ReportPeriod::Quarter => "quarter",
            ReportPeriod::Year => "year",
            ReportPeriod::All => "all",
        }
    }

    /// The period whose query text is exactly `text` (case-sensitive, as upstream).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == text)
    }

    /// The days a period spans for consistency: week 7, month 30, quarter 90, year 365, and 30
    /// for `current` (and `all`, which never asks).
    fn base_days(self) -> u32 {
        match self {
            ReportPeriod::Week => 7,
            ReportPeriod::Quarter => 90,
            ReportPeriod::Year => 365,
            ReportPeriod::Current | ReportPeriod::Month | ReportPeriod::All => 30,
        }
    }
}

impl std::fmt::Display for ReportPeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `period` that is not one of `current|week|month|quarter|year|all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsePeriodError(pub String);

impl std::fmt::Display for ParsePeriodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid period {:?}: must be one of current, week, month, quarter, year, all",
            self.0
        )
    }
}

impl std::error::Error for ParsePeriodError {}

impl std::str::FromStr for ReportPeriod {
    type Err = ParsePeriodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| ParsePeriodError(text.to_owned()))
    }
}

/// What GET progress answers beside the progress itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub statistics: Statistics,
    pub insights: Insights,
}

/// Counts and values over every activity.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Every activity.
    pub total_activities: u64,
    /// `completed` plus `progress` activities.
    pub completed_activities: u64,
    pub skipped_activities: u64,
    /// Mean, max and min value of `progress` and `completed` activities; 0 when there are none.
    pub average_value: f64,
    pub best_value: f64,
    pub worst_value: f64,
    /// Share (0–100) of the period's expected days that have an activity. Upstream caps it with
    /// Python's `min(100, x)`, which yields the *integer* 100: exactly 100 serializes as `100`,
    /// any other value as a float (`0.0`, `42.5`).
    #[serde(serialize_with = "integer_when_capped")]
    pub consistency: f64,
}

/// Patterns and advice derived from the activities.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Insights {
    /// Always `None`, as upstream (B6).
    pub best_time_of_day: Option<String>,
    /// Lowercase English weekday of the best mean value.
    pub best_day_of_week: Option<String>,
    pub success_patterns: Vec<String>,
    /// At most 3, in upstream's order.
    pub recommendations: Vec<String>,
}

// Upstream's wire strings (get_progress/service.py).
const START_LOGGING: &str = "Start logging activities to build insights";
const HIGH_CONSISTENCY: &str = "High consistency - keep it up!";
const INCONSISTENT: &str = "Inconsistent activity - try setting reminders";
const IMPROVING: &str = "Performance is improving over time";
const DECLINING: &str = "Performance is declining - consider adjusting your approach";
const LOW_CONSISTENCY: &str = "Your consistency is below 50%. Try setting daily reminders or linking this goal to an existing habit.";
const SLOW_PROGRESS: &str =
    "You're making slow progress. Consider breaking down your goal into smaller milestones.";
const CLOSE_TO_GOAL: &str =
    "You're close to your goal! Stay focused and maintain your current pace.";
const STREAK_BROKEN: &str =
    "Your streak was broken. Start fresh today - every journey begins with a single step!";
const LOW_AVERAGE: &str = "Your average performance is less than 50% of your target. Consider adjusting your goal or approach.";

fn over_limit(times: u32) -> String {
    format!(
        "You've exceeded your limit {times} times. Consider adjusting your target or identifying triggers."
    )
}

/// How many recommendations are kept.
const MAX_RECOMMENDATIONS: usize = 3;

/// The statistics and insights of GET progress for `goal`, whose progress (from
/// [`super::compute`] over the same `activities`) is `progress`, as of `now`.
///
/// `now` is not used by today's rules (upstream's consistency counts activity dates without a
/// window, B7); it is taken so that the signature need not change when a window is added.
pub fn report(
    goal: &Goal,
    progress: &Progress,
    activities: &[Activity],
    period: ReportPeriod,
    now: DateTime<Utc>,
) -> Report {
    let _ = now;
    let read = read_order(activities);
    let statistics = statistics(goal, &read, period);
    let insights = insights(goal, &read, progress, &statistics);
    Report {
        statistics,
        insights,
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn statistics(goal: &Goal, read: &[Read], period: ReportPeriod) -> Statistics {
    let of = |kind| read.iter().filter(|a| a.kind == kind).count();
    let valued: Vec<f64> = read
        .iter()
        .filter(|a| matches!(a.kind, ActivityType::Progress | ActivityType::Completed))
        .map(|a| a.value)
        .collect();
    let (average_value, best_value, worst_value) = match valued.first() {
        None => (0.0, 0.0, 0.0),
        Some(first) => (
            finite(valued.iter().fold(0.0, |sum, v| sum + v) / valued.len() as f64),
            valued.iter().copied().fold(*first, f64::max),
            valued.iter().copied().fold(*first, f64::min),
        ),
    };
    Statistics {
        total_activities: count(read.len()),
        completed_activities: count(of(ActivityType::Completed) + of(ActivityType::Progress)),
        skipped_activities: count(of(ActivityType::Skipped)),
        average_value,
        best_value,
        worst_value,
        consistency: consistency(goal, read, period),
    }
}

/// What a goal's schedule says about how often to act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frequency {
    Daily,
    Weekly,
    Monthly,
    /// `custom`, null, absent, or a text upstream would not read.
    Other,
}

/// The schedule's frequency, or `None` when the goal has no schedule. The only place that reads
/// the schedule: when `Goal::schedule` becomes a typed struct, only this changes.
fn schedule_frequency(goal: &Goal) -> Option<Frequency> {
    let schedule = goal.schedule.as_ref()?.to_value();
    let schedule = schedule.as_object()?;
    Some(
        match schedule
            .get("frequency")
            .and_then(serde_json::Value::as_str)
        {
            Some("daily") => Frequency::Daily,
            Some("weekly") => Frequency::Weekly,
            Some("monthly") => Frequency::Monthly,
            _ => Frequency::Other,
        },
    )
}

/// The days with an activity expected in `period`: the base days, kept (daily), divided by 7
/// (weekly) or by 30 (monthly), with integer division; without a frequency, recurring, streak
/// and limit goals expect daily activity and the others weekly.
fn expected_days(pattern: GoalPattern, frequency: Frequency, period: ReportPeriod) -> u32 {
    let days = period.base_days();
    match frequency {
        Frequency::Daily => days,
        Frequency::Weekly => days / 7,
        Frequency::Monthly => days / 30,
        Frequency::Other => match pattern {
            GoalPattern::Recurring | GoalPattern::Streak | GoalPattern::Limit => days,
            GoalPattern::Milestone | GoalPattern::Target => days / 7,
        },
    }
}

/// Distinct UTC activity dates over the expected days, in percent, capped at 100; 0 for `all`,
/// without a schedule, or when no day is expected.
fn consistency(goal: &Goal, read: &[Read], period: ReportPeriod) -> f64 {
    if period == ReportPeriod::All {
        return 0.0;
    }
    let Some(frequency) = schedule_frequency(goal) else {
        return 0.0;
    };
    let expected = expected_days(goal.goal_pattern, frequency, period);
    if expected == 0 {
        return 0.0;
    }
    let days: BTreeSet<NaiveDate> = read.iter().map(|a| a.at.date_naive()).collect();
    let share = days.len() as f64 / f64::from(expected) * 100.0;
    if share < 100.0 {
        share
    } else {
        100.0
    }
}

fn integer_when_capped<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if *value == 100.0 {
        serializer.serialize_u64(100)
    } else {
        serializer.serialize_f64(*value)
    }
}

fn insights(goal: &Goal, read: &[Read], progress: &Progress, stats: &Statistics) -> Insights {
    if read.is_empty() {
        return Insights {
            recommendations: vec![START_LOGGING.to_owned()],
            ..Insights::default()
        };
    }
    let mut success_patterns = Vec::new();
    if stats.consistency > 80.0 {
        success_patterns.push(HIGH_CONSISTENCY.to_owned());
    } else if stats.consistency < 50.0 {
        success_patterns.push(INCONSISTENT.to_owned());
    }
    match progress.trend {
        Some(Trend::Improving) => success_patterns.push(IMPROVING.to_owned()),
        Some(Trend::Declining) => success_patterns.push(DECLINING.to_owned()),
        Some(Trend::Stable) | None => {}
    }
    Insights {
        best_time_of_day: None,
        best_day_of_week: best_day_of_week(read),
        success_patterns,
        recommendations: recommendations(goal, read, progress, stats),
    }
}

/// The lowercase weekday (of the UTC activity_date) with the highest mean value over every
/// activity; ties go to the day seen first in read order.
fn best_day_of_week(read: &[Read]) -> Option<String> {
    // (day, sum, count) in order of first appearance.
    let mut days: Vec<(Weekday, f64, u32)> = Vec::new();
    for activity in read {
        let day = activity.at.weekday();
        match days.iter_mut().find(|(d, _, _)| *d == day) {
            Some((_, sum, n)) => {
                *sum += activity.value;
                *n += 1;
            }
            None => days.push((day, activity.value, 1)),
        }
    }
    let mut best: Option<(Weekday, f64)> = None;
    for (day, sum, n) in days {
        let mean = sum / f64::from(n);
        if best.is_none_or(|(_, top)| mean > top) {
            best = Some((day, mean));
        }
    }
    best.map(|(day, _)| crate::model::weekday_name(day).to_owned())
}

fn recommendations(
    goal: &Goal,
    read: &[Read],
    progress: &Progress,
    stats: &Statistics,
) -> Vec<String> {
    let mut out = Vec::new();
    if stats.consistency < 50.0 {
        out.push(LOW_CONSISTENCY.to_owned());
    }
    if progress.percent_complete < 25.0 && read.len() > 10 {
        out.push(SLOW_PROGRESS.to_owned());
    } else if progress.percent_complete > 75.0 {
        out.push(CLOSE_TO_GOAL.to_owned());
    }
    let days_over = progress.days_over_limit.unwrap_or(0);
    if goal.goal_pattern == GoalPattern::Streak && progress.current_streak == 0 {
        out.push(STREAK_BROKEN.to_owned());
    } else if goal.goal_pattern == GoalPattern::Limit && days_over > 5 {
        out.push(over_limit(days_over));
    }
    if stats.average_value < target_value(goal) * 0.5 {
        out.push(LOW_AVERAGE.to_owned());
    }
    out.truncate(MAX_RECOMMENDATIONS);
    out
}
