//! One calculator per goal pattern (ORIGIN.md §4.3): recurring, limit, milestone, target, streak.
//!
//! Each takes the activities in read order ([`super::read_order`]) and fills only the fields
//! upstream fills; the others keep the defaults of ORIGIN.md §1.3.3 (`success_rate` `Some(0.0)`,
//! `trend` `Some(stable)`). Only `progress` activities count toward bucket sums, milestone totals,
//! target values and streaks; trends and most `last_activity_date`s use every type.
//!
//! Where upstream crashes (B3: milestone or target with ≥ 2 activities), this computes what its
//! code was written to compute; see docs/compatibility.md. This file does not build the period
//! window ([`super::buckets`]) nor the slope ([`super::trend`]).

use super::buckets::{self, Bucket};
use super::sum::ExactSum;
use super::trend::slope_trend;
use super::{cap_100, finite, target_value, Read};
use crate::model::{Goal, PeriodRecord, Progress, Timestamp, Trend};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// Fields every calculator starts from: upstream's model defaults, with the optional-but-required
/// ones set.
fn defaults() -> Progress {
    Progress {
        success_rate: Some(0.0),
        trend: Some(Trend::Stable),
        ..Progress::default()
    }
}

/// The activity_date of the first activity read (newest logged, any type).
fn first_read_date(read: &[Read]) -> Option<Timestamp> {
    read.first().map(|a| Timestamp::from_instant(a.at))
}

fn history(buckets: &[Bucket], achieved: impl Fn(f64) -> bool) -> Vec<PeriodRecord> {
    buckets
        .iter()
        .map(|b| PeriodRecord {
            period: b.label.clone(),
            achieved: achieved(b.total),
            value: b.total,
            date: Some(Timestamp::from_instant(b.date)),
        })
        .collect()
}

/// Recurring: a bucket is achieved when its total ≥ target.value; percent = success rate.
pub(crate) fn recurring(goal: &Goal, read: &[Read], now: DateTime<Utc>) -> Progress {
    let window = buckets::window(goal.target.period, read, now);
    recurring_of(goal, &window, first_read_date(read), now)
}

/// [`recurring`] from the window's buckets and the first-read activity's date.
pub(crate) fn recurring_of(
    goal: &Goal,
    buckets: &[Bucket],
    last_activity_date: Option<Timestamp>,
    now: DateTime<Utc>,
) -> Progress {
    let period = goal.target.period;
    let value = target_value(goal);
    let achieved = |total: f64| total >= value;
    let successful = buckets.iter().filter(|b| achieved(b.total)).count();
    let success_rate = if buckets.is_empty() {
        0.0
    } else {
        successful as f64 / buckets.len() as f64 * 100.0
    };
    let current = buckets::label(period, now.date_naive());
    let current_period_value = buckets
        .iter()
        .find(|b| b.label == current)
        .map_or(0.0, |b| b.total);
    let period_history = history(buckets, achieved);
    let values: Vec<f64> = buckets.iter().map(|b| b.total).collect();
    Progress {
        percent_complete: success_rate,
        last_activity_date,
        current_period_value: Some(current_period_value),
        period_history,
        success_rate: Some(success_rate),
        trend: Some(slope_trend(&values)),
        ..defaults()
    }
}

/// Limit: a bucket is over when its total > target.value (strict); percent = success rate.
pub(crate) fn limit(goal: &Goal, read: &[Read], now: DateTime<Utc>) -> Progress {
    let window = buckets::window(goal.target.period, read, now);
    limit_of(goal, &window, first_read_date(read))
}

/// [`limit`] from the window's buckets and the first-read activity's date.
pub(crate) fn limit_of(
    goal: &Goal,
    buckets: &[Bucket],
    last_activity_date: Option<Timestamp>,
) -> Progress {
    let value = target_value(goal);
    let over = |total: f64| total > value;
    let days_over = buckets.iter().filter(|b| over(b.total)).count();
    let sum = buckets.iter().fold(0.0, |sum, b| sum + b.total);
    let (average, success_rate) = if buckets.is_empty() {
        (0.0, 100.0)
    } else {
        let n = buckets.len() as f64;
        (sum / n, (buckets.len() - days_over) as f64 / n * 100.0)
    };
    let values: Vec<f64> = buckets.iter().map(|b| b.total).collect();
    Progress {
        percent_complete: success_rate,
        last_activity_date,
        period_history: history(buckets, |total| !over(total)),
        average_value: Some(average),
        days_over_limit: Some(u32::try_from(days_over).unwrap_or(u32::MAX)),
        success_rate: Some(success_rate),
        trend: Some(slope_trend(&values)),
        ..defaults()
    }
}

/// Milestone: the running total of `progress` values toward target.value, with a projection
/// (upstream crashes before it, B3).
pub(crate) fn milestone(goal: &Goal, read: &[Read], now: DateTime<Utc>) -> Progress {
    let mut exact = ExactSum::default();
    read.iter()
        .filter(|a| a.is_progress())
        .for_each(|a| exact.add(a.value));
    let summary = Summary {
        count: read.len(),
        earliest: read.iter().map(|a| a.at).min(),
        last_activity_date: first_read_date(read),
        trend: value_trend(read),
    };
    milestone_of(goal, exact.value(), &summary, now)
}

/// What the milestone and target calculators read of the history beside their totals.
pub(crate) struct Summary {
    /// Activities read (any type).
    pub count: usize,
    /// The earliest activity_date (any type).
    pub earliest: Option<DateTime<Utc>>,
    pub last_activity_date: Option<Timestamp>,
    /// T2 over every activity.
    pub trend: Trend,
}

/// [`milestone`] from the exact total of `progress` values and the rest of the history.
pub(crate) fn milestone_of(
    goal: &Goal,
    total: f64,
    summary: &Summary,
    now: DateTime<Utc>,
) -> Progress {
    let value = target_value(goal);
    let percent = if value > 0.0 {
        cap_100(total / value * 100.0)
    } else {
        0.0
    };
    let remaining = (value - total).max(0.0);
    Progress {
        percent_complete: percent,
        last_activity_date: summary.last_activity_date.clone(),
        total_accumulated: Some(total),
        remaining_to_goal: Some(remaining),
        projected_completion: projected_completion(
            summary.count,
            summary.earliest,
            total,
            remaining,
            now,
        )
        .map(Timestamp::from_instant),
        trend: Some(summary.trend),
        ..defaults()
    }
}

/// What utils.py's milestone projection computes, had it not crashed (B3): with at least 2
/// activities read (`count`, any type), the whole days since the earliest activity_date
/// (`earliest`, any type); if more than 0, rate = total / days; if the rate is above 0,
/// `now + remaining / rate` days. A goal already reached projects to `now`. `None` otherwise,
/// and when the instant is past year 9999 (Python cannot represent it either).
pub(crate) fn projected_completion(
    count: usize,
    earliest: Option<DateTime<Utc>>,
    total: f64,
    remaining: f64,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if count < 2 {
        return None;
    }
    let first = earliest?;
    // timedelta.days floors; only positive spans matter, where truncation agrees.
    let days = now.signed_duration_since(first).num_days();
    if days <= 0 {
        return None;
    }
    let rate = total / days as f64;
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    add_days(now, remaining / rate)
}

/// `at + timedelta(days=days)`: whole days, then whole seconds, then microseconds rounded half
/// to even.
fn add_days(at: DateTime<Utc>, days: f64) -> Option<DateTime<Utc>> {
    if !days.is_finite() || !(0.0..1e9).contains(&days) {
        return None;
    }
    let whole_days = days.trunc();
    let seconds = (days - whole_days) * 86_400.0;
    let whole_seconds = seconds.trunc();
    let micros = ((seconds - whole_seconds) * 1e6).round_ties_even();
    let span = Duration::try_days(whole_days as i64)?
        .checked_add(&Duration::try_seconds(whole_seconds as i64)?)?
        .checked_add(&Duration::microseconds(micros as i64))?;
    at.checked_add_signed(span).filter(|t| t.year() <= 9999)
}

/// T2: every activity's value, by activity_date ascending (ties keep read order).
pub(crate) fn value_trend(read: &[Read]) -> Trend {
    let mut by_date: Vec<&Read> = read.iter().collect();
    by_date.sort_by_key(|a| a.at);
    let values: Vec<f64> = by_date.iter().map(|a| a.value).collect();
    slope_trend(&values)
}

/// Target: from start_value toward target.value with the latest `progress` value; the direction
/// is ignored (distances are absolute). A null or 0 start_value leaves every field at its default.
pub(crate) fn target(goal: &Goal, read: &[Read]) -> Progress {
    // The greatest activity_date; ties go to the first in read order.
    let latest =
        read.iter()
            .filter(|a| a.is_progress())
            .fold(None::<&Read>, |best, a| match best {
                Some(b) if a.at <= b.at => Some(b),
                _ => Some(a),
            });
    target_of(goal, latest.map(|a| (a.at, a.value)), value_trend(read))
}

/// [`target`] from the latest `progress` activity (date, value) and T2.
pub(crate) fn target_of(
    goal: &Goal,
    latest: Option<(DateTime<Utc>, f64)>,
    trend: Trend,
) -> Progress {
    let start = goal.target.start_value.map_or(0.0, finite);
    if start == 0.0 {
        return defaults();
    }
    let value = target_value(goal);
    let current = latest.map_or(start, |(_, value)| value);
    let need = (value - start).abs();
    let done = (current - start).abs();
    let percent = if need > 0.0 {
        cap_100(done / need * 100.0)
    } else if current == value {
        100.0
    } else {
        0.0
    };
    Progress {
        percent_complete: percent,
        last_activity_date: latest.map(|(at, _)| Timestamp::from_instant(at)),
        trend: Some(trend),
        ..defaults()
    }
}

/// Streak: consecutive UTC days with a `progress` activity, broken when today is more than a day
/// after the last one. target.period is ignored.
pub(crate) fn streak(goal: &Goal, read: &[Read], now: DateTime<Utc>) -> Progress {
    let mut by_date: Vec<&Read> = read.iter().collect();
    by_date.sort_by_key(|a| a.at);
    let mut runs: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for day in by_date
        .iter()
        .filter(|a| a.is_progress())
        .map(|a| a.at.date_naive())
    {
        match runs.last_mut() {
            Some((_, last)) if day.signed_duration_since(*last).num_days() <= 1 => *last = day,
            _ => runs.push((day, day)),
        }
    }
    let last_by_date = by_date.last().map(|a| a.at);
    streak_of(goal, !read.is_empty(), &runs, last_by_date, now)
}

/// [`streak`] from the runs of consecutive days with a `progress` activity (sorted), whether any
/// activity was read, and the greatest activity_date (any type).
pub(crate) fn streak_of(
    goal: &Goal,
    any: bool,
    runs: &[(NaiveDate, NaiveDate)],
    last_by_date: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Progress {
    // int(): truncation; the cast saturates (negative and NaN give 0).
    let target_streak = target_value(goal).trunc() as u32;
    if !any {
        return Progress {
            target_streak: Some(target_streak),
            ..defaults()
        };
    }
    let length = |(first, last): &(NaiveDate, NaiveDate)| {
        u32::try_from(last.signed_duration_since(*first).num_days() + 1).unwrap_or(u32::MAX)
    };
    // Every run ends a streak; the last is the current one unless today is past the day after.
    let longest = runs.iter().map(length).max().unwrap_or(0);
    let current = match runs.last() {
        Some(run) if now.date_naive().signed_duration_since(run.1).num_days() <= 1 => length(run),
        _ => 0,
    };
    let percent = if target_streak > 0 {
        cap_100(f64::from(current) / f64::from(target_streak) * 100.0)
    } else {
        0.0
    };
    Progress {
        percent_complete: percent,
        last_activity_date: last_by_date.map(Timestamp::from_instant),
        current_streak: current,
        longest_streak: longest,
        target_streak: Some(target_streak),
        trend: Some(if current > 0 {
            Trend::Improving
        } else {
            Trend::Declining
        }),
        ..defaults()
    }
}
