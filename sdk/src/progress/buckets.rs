//! The period window of recurring and limit goals (ORIGIN.md §4.2): its buckets, their labels and
//! `date`s, and the per-bucket totals of `progress` activities.
//!
//! Labels are upstream's, B10 included: a week is labelled with the *calendar* year and the ISO
//! week number (2024-12-30 is `2024-W01`), because users see these labels. Activities are matched
//! to buckets by label only, as upstream does.
//!
//! This file does not decide what a bucket's total means (achieved, over the limit): that is
//! [`super::patterns`].

use super::sum::ExactSum;
use super::Read;
use crate::model::Period;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use std::collections::HashMap;

/// One bucket of the window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bucket {
    pub label: String,
    /// Upstream's bucket `date`: the last instant of the walk that fell inside this label.
    pub date: DateTime<Utc>,
    /// The exact sum of the values of the `progress` activities whose activity_date has this
    /// label.
    pub total: f64,
}

/// The label of the period containing `day`: `2025-01-05`, `2025-W02` (calendar year + ISO
/// week, B10), `2025-01`, `2025-Q1`, `2025`.
pub fn period_label(period: Period, day: NaiveDate) -> String {
    label(Some(period), day)
}

/// As [`period_label`]; without a period, upstream's calculator falls back to day labels.
pub(crate) fn label(period: Option<Period>, day: NaiveDate) -> String {
    match period {
        Some(Period::Week) => format!("{}-W{:02}", day.format("%Y"), day.iso_week().week()),
        Some(Period::Month) => day.format("%Y-%m").to_string(),
        Some(Period::Quarter) => format!("{}-Q{}", day.year(), day.month0() / 3 + 1),
        Some(Period::Year) => day.year().to_string(),
        Some(Period::Day) | None => day.format("%Y-%m-%d").to_string(),
    }
}

/// The window ending at `now`, one bucket per label in chronological order, with the totals of
/// the `progress` activities of `read` (exact sums: see [`super::sum`]).
pub(crate) fn window(period: Option<Period>, read: &[Read], now: DateTime<Utc>) -> Vec<Bucket> {
    let mut buckets = walk(period, now);
    let index: HashMap<String, usize> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| (b.label.clone(), i))
        .collect();
    let mut sums = vec![ExactSum::default(); buckets.len()];
    for activity in read.iter().filter(|a| a.is_progress()) {
        if let Some(&i) = index.get(&label(period, activity.at.date_naive())) {
            if let Some(sum) = sums.get_mut(i) {
                sum.add(activity.value);
            }
        }
    }
    for (bucket, sum) in buckets.iter_mut().zip(sums) {
        bucket.total = sum.value();
    }
    buckets
}

/// The buckets of the window ending at `now`, totals at 0:
///
/// | period | start | step |
/// |---|---|---|
/// | day | now − 30 d | 1 day (31 buckets) |
/// | week | now − 12 weeks | 1 week (13 buckets) |
/// | month | now − 365 d | the 1st of the next month, same clock time (12–13 buckets) |
/// | quarter, year, none | now − 365 d | 1 day (4–5, 1–2, 366 buckets) |
///
/// The walk visits every instant from the start up to and including `now`; a label seen again
/// keeps its place and takes the later instant as its `date` (a Python dict assignment). When the
/// start is out of chrono's range the window is empty.
pub(crate) fn walk(period: Option<Period>, now: DateTime<Utc>) -> Vec<Bucket> {
    let back = match period {
        Some(Period::Day) => Duration::days(30),
        Some(Period::Week) => Duration::weeks(12),
        _ => Duration::days(365),
    };
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut current = now.checked_sub_signed(back);
    while let Some(at) = current.filter(|at| *at <= now) {
        let key = label(period, at.date_naive());
        match index.get(&key) {
            Some(&i) => {
                if let Some(bucket) = buckets.get_mut(i) {
                    bucket.date = at;
                }
            }
            None => {
                index.insert(key.clone(), buckets.len());
                buckets.push(Bucket {
                    label: key,
                    date: at,
                    total: 0.0,
                });
            }
        }
        current = step(period, at);
    }
    buckets
}

/// The next instant of the walk, or `None` past chrono's range.
fn step(period: Option<Period>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match period {
        Some(Period::Week) => at.checked_add_signed(Duration::weeks(1)),
        Some(Period::Month) => {
            let day = at.date_naive();
            let (year, month) = if day.month() == 12 {
                (day.year().checked_add(1)?, 1)
            } else {
                (day.year(), day.month() + 1)
            };
            let first = NaiveDate::from_ymd_opt(year, month, 1)?;
            Some(first.and_time(at.time()).and_utc())
        }
        _ => at.checked_add_signed(Duration::days(1)),
    }
}
