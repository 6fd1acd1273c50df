//! Progress of a goal, computed from the goal and its activities at a given instant.
//!
//! Pure functions: no I/O, no clock of their own (the caller passes `now`), so every rule is
//! tested by tables of activities. One rule per pattern:
//! - recurring: per-period totals against `target.value`; `success_rate` over completed periods;
//! - milestone: the running total toward `target.value`, with a projected completion date;
//! - target: from `start_value` toward `target.value` using the latest value;
//! - streak: consecutive days with progress;
//! - limit: per-period totals against the maximum; `percent_complete` is the share of periods
//!   within the limit.
//!
//! Skipped activities never count. Activities with unreadable dates are left out.
//! `period_history` keeps the most recent [`MAX_PERIOD_HISTORY`] completed periods, so the goal
//! item stays far below DynamoDB's 400 KB item limit.

use crate::model::{
    Activity, ActivityType, Direction, Goal, GoalPattern, Period, PeriodRecord, Progress,
    TargetType, Timestamp, Trend,
};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// How many completed periods `period_history` keeps.
pub const MAX_PERIOD_HISTORY: usize = 90;

/// A change of the recent average beyond this share of the older one is a trend.
const TREND_THRESHOLD: f64 = 0.05;

/// The progress of `goal` given all of its `activities`, as of `now`.
pub fn compute(goal: &Goal, activities: &[Activity], now: DateTime<Utc>) -> Progress {
    let mut counted: Vec<(DateTime<Utc>, &Activity)> = activities
        .iter()
        .filter(|a| a.counts())
        .filter_map(|a| a.activity_date.instant().map(|at| (at, a)))
        .collect();
    counted.sort_by_key(|(at, _)| *at);

    let mut progress = match goal.goal_pattern {
        GoalPattern::Recurring => periodic(goal, &counted, now, false),
        GoalPattern::Limit => periodic(goal, &counted, now, true),
        GoalPattern::Milestone => milestone(goal, &counted, now),
        GoalPattern::Target => target(goal, &counted),
        GoalPattern::Streak => streak(goal, &counted, now),
    };
    progress.last_activity_date = counted.last().map(|(at, _)| Timestamp::from_instant(*at));
    progress.average_value = (!counted.is_empty())
        .then(|| counted.iter().map(|(_, a)| a.value).sum::<f64>() / counted.len() as f64);
    progress.trend = Some(trend(goal, &counted));
    progress
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        if part > 0.0 {
            100.0
        } else {
            0.0
        }
    } else {
        (part / whole * 100.0).clamp(0.0, 100.0)
    }
}

/// The first day of the period containing `day`.
fn period_start(period: Period, day: NaiveDate) -> NaiveDate {
    let first_of = |year, month| NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(day);
    match period {
        Period::Day => day,
        Period::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        Period::Month => first_of(day.year(), day.month()),
        Period::Quarter => first_of(day.year(), (day.month0() / 3) * 3 + 1),
        Period::Year => first_of(day.year(), 1),
    }
}

/// The first day of the period after the one starting at `start`.
fn next_period(period: Period, start: NaiveDate) -> NaiveDate {
    let months = |n| start.checked_add_months(chrono::Months::new(n));
    match period {
        Period::Day => start + Duration::days(1),
        Period::Week => start + Duration::days(7),
        Period::Month => months(1).unwrap_or(start + Duration::days(31)),
        Period::Quarter => months(3).unwrap_or(start + Duration::days(92)),
        Period::Year => months(12).unwrap_or(start + Duration::days(366)),
    }
}

/// The label of the period starting at `start`: `2025-01-05`, `2025-W02`, `2025-01`, `2025-Q1`, `2025`.
pub fn period_label(period: Period, start: NaiveDate) -> String {
    match period {
        Period::Day => start.format("%Y-%m-%d").to_string(),
        Period::Week => {
            let week = start.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        Period::Month => start.format("%Y-%m").to_string(),
        Period::Quarter => format!("{}-Q{}", start.year(), start.month0() / 3 + 1),
        Period::Year => start.format("%Y").to_string(),
    }
}

/// Recurring and limit goals: totals per period.
fn periodic(
    goal: &Goal,
    counted: &[(DateTime<Utc>, &Activity)],
    now: DateTime<Utc>,
    is_limit: bool,
) -> Progress {
    let period = goal.target.period.unwrap_or(Period::Day);
    let threshold = if is_limit {
        goal.target
            .max_value
            .or(goal.target.value)
            .unwrap_or(f64::INFINITY)
    } else {
        goal.target.value.unwrap_or(1.0)
    };
    let within = |total: f64| {
        if is_limit || goal.target.target_type == Some(TargetType::Maximum) {
            total <= threshold
        } else {
            total >= threshold
        }
    };

    let mut totals: BTreeMap<NaiveDate, (f64, DateTime<Utc>)> = BTreeMap::new();
    for (at, activity) in counted {
        let entry = totals
            .entry(period_start(period, at.date_naive()))
            .or_insert((0.0, *at));
        entry.0 += activity.value;
        entry.1 = entry.1.max(*at);
    }

    let current = period_start(period, now.date_naive());
    let first_day = goal
        .created_at
        .instant()
        .map(|created| created.date_naive())
        .into_iter()
        .chain(totals.keys().next().copied())
        .min()
        .unwrap_or(current);
    let mut history = Vec::new();
    let mut start = period_start(period, first_day);
    while start < current {
        let (value, last) = totals
            .get(&start)
            .copied()
            .unwrap_or((0.0, DateTime::<Utc>::MIN_UTC));
        let date = if last == DateTime::<Utc>::MIN_UTC {
            start
                .and_hms_opt(0, 0, 0)
                .map(|t| Timestamp::from_instant(t.and_utc()))
        } else {
            Some(Timestamp::from_instant(last))
        };
        history.push(PeriodRecord {
            period: period_label(period, start),
            achieved: within(value),
            value,
            date,
        });
        start = next_period(period, start);
    }

    let current_value = totals.get(&current).map_or(0.0, |(total, _)| *total);
    let completed = history.len();
    let achieved = history.iter().filter(|record| record.achieved).count();
    let success_rate = (completed > 0).then(|| achieved as f64 / completed as f64 * 100.0);
    let (current_streak, longest_streak) = period_streaks(&history, within(current_value));

    let mut progress = Progress {
        current_period_value: Some(current_value),
        current_streak,
        longest_streak,
        success_rate,
        ..Progress::default()
    };
    if is_limit {
        // The current period counts too: being over the limit today is already a day over.
        let considered = completed + 1;
        let over =
            history.iter().filter(|r| !r.achieved).count() + usize::from(!within(current_value));
        progress.days_over_limit = Some(over as u32);
        progress.percent_complete = percent((considered - over) as f64, considered as f64);
        progress.success_rate = Some(progress.percent_complete);
    } else {
        progress.percent_complete = percent(current_value, threshold);
    }
    let keep_from = history.len().saturating_sub(MAX_PERIOD_HISTORY);
    progress.period_history = history.split_off(keep_from);
    progress
}

/// Runs of achieved periods: the one ending now (or at the last completed period, while the
/// current one is not yet achieved) and the longest.
fn period_streaks(history: &[PeriodRecord], current_achieved: bool) -> (u32, u32) {
    let mut longest = 0u32;
    let mut run = 0u32;
    for record in history {
        run = if record.achieved { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let current = if current_achieved { run + 1 } else { run };
    (current, longest.max(current))
}

fn milestone(goal: &Goal, counted: &[(DateTime<Utc>, &Activity)], now: DateTime<Utc>) -> Progress {
    let goal_value = goal.target.value.unwrap_or(0.0);
    let total: f64 = counted.iter().map(|(_, a)| a.value).sum();
    let remaining = (goal_value - total).max(0.0);
    let projected_completion = match counted.first() {
        _ if remaining == 0.0 => counted.last().map(|(at, _)| Timestamp::from_instant(*at)),
        Some((first, _)) if total > 0.0 => {
            let days = ((now - *first).num_seconds() as f64 / 86_400.0).max(1.0);
            let per_day = total / days;
            let days_left = (remaining / per_day).min(365.0 * 100.0);
            Some(Timestamp::from_instant(
                now + Duration::seconds((days_left * 86_400.0) as i64),
            ))
        }
        _ => None,
    };
    Progress {
        percent_complete: percent(total, goal_value),
        total_accumulated: Some(total),
        remaining_to_goal: Some(remaining),
        projected_completion,
        ..Progress::default()
    }
}

fn target(goal: &Goal, counted: &[(DateTime<Utc>, &Activity)]) -> Progress {
    let goal_value = goal.target.value.unwrap_or(0.0);
    let start = goal
        .target
        .start_value
        .or_else(|| counted.first().map(|(_, a)| a.value))
        .or(goal.target.current_value)
        .unwrap_or(0.0);
    let latest = counted
        .last()
        .map(|(_, a)| a.value)
        .or(goal.target.current_value)
        .unwrap_or(start);
    let percent_complete = if (goal_value - start).abs() < f64::EPSILON {
        if (latest - goal_value).abs() < f64::EPSILON {
            100.0
        } else {
            0.0
        }
    } else {
        ((latest - start) / (goal_value - start) * 100.0).clamp(0.0, 100.0)
    };
    let decreasing = goal.target.direction == Some(Direction::Decrease)
        || (goal.target.direction.is_none() && goal_value < start);
    let remaining = match goal.target.target_type {
        Some(TargetType::Exact) => (goal_value - latest).abs(),
        _ if decreasing => (latest - goal_value).max(0.0),
        _ => (goal_value - latest).max(0.0),
    };
    Progress {
        percent_complete,
        current_period_value: Some(latest),
        remaining_to_goal: Some(remaining),
        ..Progress::default()
    }
}

fn streak(goal: &Goal, counted: &[(DateTime<Utc>, &Activity)], now: DateTime<Utc>) -> Progress {
    let days: BTreeSet<NaiveDate> = counted
        .iter()
        .filter(|(_, a)| a.value > 0.0 || a.activity_type == ActivityType::Completed)
        .map(|(at, _)| at.date_naive())
        .collect();
    let mut longest = 0u32;
    let mut run = 0u32;
    let mut previous: Option<NaiveDate> = None;
    for day in &days {
        run = match previous {
            Some(p) if *day - p == Duration::days(1) => run + 1,
            _ => 1,
        };
        longest = longest.max(run);
        previous = Some(*day);
    }
    // The streak is alive if it reaches today, or yesterday (today may still come).
    let today = now.date_naive();
    let mut current = 0u32;
    let mut day = if days.contains(&today) {
        Some(today)
    } else {
        today
            .pred_opt()
            .filter(|yesterday| days.contains(yesterday))
    };
    while let Some(d) = day.filter(|d| days.contains(d)) {
        current += 1;
        day = d.pred_opt();
    }
    let target_streak = goal
        .target
        .value
        .filter(|v| *v >= 1.0)
        .map(|v| v.round().min(f64::from(u32::MAX)) as u32);
    Progress {
        percent_complete: percent(f64::from(current), f64::from(target_streak.unwrap_or(0))),
        current_streak: current,
        longest_streak: longest,
        target_streak,
        ..Progress::default()
    }
}

/// Compares the mean of the recent half of the daily totals with the older half.
fn trend(goal: &Goal, counted: &[(DateTime<Utc>, &Activity)]) -> Trend {
    let mut daily: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for (at, activity) in counted {
        let total = daily.entry(at.date_naive()).or_default();
        // A target goal tracks the latest reading of a day, others the day's sum.
        if goal.goal_pattern == GoalPattern::Target {
            *total = activity.value;
        } else {
            *total += activity.value;
        }
    }
    let values: Vec<f64> = daily.into_values().collect();
    if values.len() < 2 {
        return Trend::Stable;
    }
    let half = values.len() / 2;
    let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len() as f64;
    let (older, recent) = (mean(&values[..half]), mean(&values[values.len() - half..]));
    let (older, recent) = match goal.goal_pattern {
        // For a target, what matters is the distance left to it.
        GoalPattern::Target => {
            let goal_value = goal.target.value.unwrap_or(0.0);
            (-(older - goal_value).abs(), -(recent - goal_value).abs())
        }
        // Less is better under a limit, or when the goal is to decrease.
        GoalPattern::Limit => (-older, -recent),
        _ if goal.target.direction == Some(Direction::Decrease) => (-older, -recent),
        _ => (older, recent),
    };
    let scale = older.abs().max(f64::EPSILON);
    let change = (recent - older) / scale;
    if change > TREND_THRESHOLD {
        Trend::Improving
    } else if change < -TREND_THRESHOLD {
        Trend::Declining
    } else {
        Trend::Stable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivitySource, GoalStatus, Target, Visibility};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn goal(pattern: GoalPattern, target: Target) -> Goal {
        Goal {
            goal_id: "g".into(),
            user_id: "u".into(),
            title: "t".into(),
            description: None,
            category: None,
            icon: None,
            color: None,
            goal_pattern: pattern,
            target,
            schedule: None,
            progress: Progress::default(),
            context: None,
            rewards: None,
            status: GoalStatus::Active,
            visibility: Visibility::Private,
            created_at: Timestamp::from_instant(at("2025-01-01T08:00:00Z")),
            updated_at: Timestamp::from_instant(at("2025-01-01T08:00:00Z")),
            completed_at: None,
            archived_at: None,
            metadata: None,
            is_journal_linked: false,
        }
    }

    fn activities(entries: &[(&str, f64)]) -> Vec<Activity> {
        entries
            .iter()
            .enumerate()
            .map(|(i, (date, value))| Activity {
                activity_id: format!("a{i}"),
                goal_id: "g".into(),
                user_id: "u".into(),
                value: *value,
                unit: None,
                activity_type: ActivityType::Progress,
                activity_date: Timestamp::from_instant(at(date)),
                logged_at: Timestamp::from_instant(at(date)),
                timezone: None,
                location: None,
                context: None,
                note: None,
                attachments: None,
                source: ActivitySource::Manual,
                device_info: None,
            })
            .collect()
    }

    fn target_of(value: f64) -> Target {
        Target {
            metric: "count".into(),
            value: Some(value),
            ..Target::default()
        }
    }

    /// Activities as (date, value).
    type Entries = &'static [(&'static str, f64)];

    #[test]
    fn milestone_sums_caps_and_projects() {
        let cases: &[(Entries, f64, f64, f64)] = &[
            // (activities, total, remaining, percent)
            (&[], 0.0, 100.0, 0.0),
            (
                &[
                    ("2025-01-02T10:00:00Z", 30.0),
                    ("2025-01-03T10:00:00Z", 20.0),
                ],
                50.0,
                50.0,
                50.0,
            ),
            (
                &[
                    ("2025-01-02T10:00:00Z", 80.0),
                    ("2025-01-03T10:00:00Z", 70.0),
                ],
                150.0,
                0.0,
                100.0,
            ),
        ];
        let now = at("2025-01-04T10:00:00Z");
        for (entries, total, remaining, pct) in cases {
            let p = compute(
                &goal(GoalPattern::Milestone, target_of(100.0)),
                &activities(entries),
                now,
            );
            assert_eq!(p.total_accumulated, Some(*total), "{entries:?}");
            assert_eq!(p.remaining_to_goal, Some(*remaining), "{entries:?}");
            assert_eq!(p.percent_complete, *pct, "{entries:?}");
        }
        // 50 in the 2 days since the first activity: 25 a day, 50 left, so 2 more days.
        let p = compute(
            &goal(GoalPattern::Milestone, target_of(100.0)),
            &activities(&[
                ("2025-01-02T10:00:00Z", 30.0),
                ("2025-01-03T10:00:00Z", 20.0),
            ]),
            now,
        );
        assert_eq!(
            p.projected_completion.and_then(|t| t.instant()),
            Some(at("2025-01-06T10:00:00Z"))
        );
    }

    #[test]
    fn skipped_activities_do_not_count() {
        let mut entries = activities(&[
            ("2025-01-02T10:00:00Z", 30.0),
            ("2025-01-03T10:00:00Z", 20.0),
        ]);
        entries[1].activity_type = ActivityType::Skipped;
        let p = compute(
            &goal(GoalPattern::Milestone, target_of(100.0)),
            &entries,
            at("2025-01-04T00:00:00Z"),
        );
        assert_eq!(p.total_accumulated, Some(30.0));
    }

    #[test]
    fn recurring_counts_periods_and_success() {
        // Daily target 10; created 2025-01-01; now 2025-01-04 12:00.
        let entries = activities(&[
            ("2025-01-01T09:00:00Z", 6.0),
            ("2025-01-01T19:00:00Z", 6.0),  // day 1: 12, achieved
            ("2025-01-02T09:00:00Z", 4.0),  // day 2: 4, missed
            ("2025-01-03T09:00:00Z", 10.0), // day 3: 10, achieved
            ("2025-01-04T09:00:00Z", 5.0),  // today: 5 so far
        ]);
        let p = compute(
            &goal(GoalPattern::Recurring, target_of(10.0)),
            &entries,
            at("2025-01-04T12:00:00Z"),
        );
        assert_eq!(p.current_period_value, Some(5.0));
        assert_eq!(p.percent_complete, 50.0);
        let labels: Vec<_> = p
            .period_history
            .iter()
            .map(|r| (r.period.as_str(), r.achieved, r.value))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("2025-01-01", true, 12.0),
                ("2025-01-02", false, 4.0),
                ("2025-01-03", true, 10.0)
            ]
        );
        let rate = p.success_rate.expect("three completed days");
        assert!((rate - 200.0 / 3.0).abs() < 1e-9, "{rate}");
        assert_eq!((p.current_streak, p.longest_streak), (1, 1));
    }

    #[test]
    fn recurring_weeks_and_months_label_their_periods() {
        let cases = [
            (Period::Week, "2025-01-08", "2025-W02"),
            (Period::Month, "2025-02-17", "2025-02"),
            (Period::Quarter, "2025-05-17", "2025-Q2"),
            (Period::Year, "2025-05-17", "2025"),
            (Period::Day, "2025-05-17", "2025-05-17"),
        ];
        for (period, day, label) in cases {
            let day: NaiveDate = day.parse().expect("date");
            assert_eq!(period_label(period, period_start(period, day)), label);
        }
        let target = Target {
            period: Some(Period::Week),
            ..target_of(10.0)
        };
        let entries = activities(&[("2025-01-06T09:00:00Z", 6.0), ("2025-01-08T09:00:00Z", 6.0)]);
        let p = compute(
            &goal(GoalPattern::Recurring, target),
            &entries,
            at("2025-01-09T12:00:00Z"),
        );
        assert_eq!(p.current_period_value, Some(12.0));
        assert_eq!(p.percent_complete, 100.0);
    }

    #[test]
    fn target_moves_from_start_toward_goal() {
        let cases: &[(Option<f64>, Entries, f64, f64)] = &[
            // (start, readings, percent, remaining): weight 82.5 -> 75
            (Some(82.5), &[], 0.0, 7.5),
            (
                Some(82.5),
                &[
                    ("2025-01-02T08:00:00Z", 80.0),
                    ("2025-01-03T08:00:00Z", 78.75),
                ],
                50.0,
                3.75,
            ),
            (Some(82.5), &[("2025-01-02T08:00:00Z", 74.0)], 100.0, 0.0),
            (Some(82.5), &[("2025-01-02T08:00:00Z", 85.0)], 0.0, 10.0),
        ];
        for (start, entries, pct, remaining) in cases {
            let target = Target {
                start_value: *start,
                direction: Some(Direction::Decrease),
                ..target_of(75.0)
            };
            let p = compute(
                &goal(GoalPattern::Target, target),
                &activities(entries),
                at("2025-01-04T00:00:00Z"),
            );
            assert!(
                (p.percent_complete - pct).abs() < 1e-9,
                "{entries:?}: {}",
                p.percent_complete
            );
            assert_eq!(p.remaining_to_goal, Some(*remaining), "{entries:?}");
        }
    }

    #[test]
    fn streaks_count_consecutive_days() {
        let cases: &[(&[&str], &str, u32, u32)] = &[
            // (days with progress, now, current, longest)
            (&[], "2025-01-10T12:00:00Z", 0, 0),
            (
                &["2025-01-08", "2025-01-09", "2025-01-10"],
                "2025-01-10T12:00:00Z",
                3,
                3,
            ),
            (&["2025-01-08", "2025-01-09"], "2025-01-10T12:00:00Z", 2, 2),
            (&["2025-01-07", "2025-01-08"], "2025-01-10T12:00:00Z", 0, 2),
            (
                &[
                    "2025-01-01",
                    "2025-01-02",
                    "2025-01-03",
                    "2025-01-09",
                    "2025-01-10",
                ],
                "2025-01-10T12:00:00Z",
                2,
                3,
            ),
        ];
        for (days, now, current, longest) in cases {
            let dated: Vec<String> = days.iter().map(|d| format!("{d}T07:00:00Z")).collect();
            let entries: Vec<(&str, f64)> = dated.iter().map(|d| (d.as_str(), 1.0)).collect();
            let p = compute(
                &goal(GoalPattern::Streak, target_of(4.0)),
                &activities(&entries),
                at(now),
            );
            assert_eq!(
                (p.current_streak, p.longest_streak),
                (*current, *longest),
                "{days:?}"
            );
            assert_eq!(p.target_streak, Some(4));
            assert_eq!(p.percent_complete, percent(f64::from(*current), 4.0));
        }
    }

    #[test]
    fn limits_count_periods_over_the_maximum() {
        let target = Target {
            period: Some(Period::Day),
            max_value: Some(120.0),
            target_type: Some(TargetType::Maximum),
            ..target_of(120.0)
        };
        let entries = activities(&[
            ("2025-01-01T10:00:00Z", 100.0), // within
            ("2025-01-02T10:00:00Z", 90.0),
            ("2025-01-02T20:00:00Z", 60.0),  // 150: over
            ("2025-01-03T10:00:00Z", 30.0),  // within
            ("2025-01-04T10:00:00Z", 130.0), // today, over
        ]);
        let p = compute(
            &goal(GoalPattern::Limit, target),
            &entries,
            at("2025-01-04T12:00:00Z"),
        );
        assert_eq!(p.days_over_limit, Some(2));
        assert_eq!(p.percent_complete, 50.0);
        assert_eq!(p.current_period_value, Some(130.0));
    }

    #[test]
    fn trends_follow_the_goal_direction() {
        let rising = [
            ("2025-01-01T10:00:00Z", 1.0),
            ("2025-01-02T10:00:00Z", 2.0),
            ("2025-01-03T10:00:00Z", 5.0),
            ("2025-01-04T10:00:00Z", 6.0),
        ];
        let now = at("2025-01-05T00:00:00Z");
        let cases = [
            (GoalPattern::Milestone, Trend::Improving),
            (GoalPattern::Limit, Trend::Declining),
            (GoalPattern::Recurring, Trend::Improving),
        ];
        for (pattern, expected) in cases {
            let p = compute(&goal(pattern, target_of(100.0)), &activities(&rising), now);
            assert_eq!(p.trend, Some(expected), "{pattern}");
        }
        let flat = [("2025-01-01T10:00:00Z", 3.0), ("2025-01-02T10:00:00Z", 3.0)];
        let p = compute(
            &goal(GoalPattern::Milestone, target_of(100.0)),
            &activities(&flat),
            now,
        );
        assert_eq!(p.trend, Some(Trend::Stable));
        assert_eq!(p.average_value, Some(3.0));
        assert_eq!(
            p.last_activity_date.and_then(|t| t.instant()),
            Some(at("2025-01-02T10:00:00Z"))
        );
    }
}
