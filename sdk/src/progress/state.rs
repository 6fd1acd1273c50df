//! Bounded progress: what [`super::compute`] needs of a goal's activities, kept up to date one
//! activity at a time, so logging an activity or computing progress does not read every activity
//! the goal ever had (#16).
//!
//! What each calculator reads of the history, and what is kept for it:
//!
//! | needed | kept |
//! | --- | --- |
//! | the first activity in read order (last_activity_date) | that activity's mark |
//! | the last five by activity_date (trend T2; streak's last date) | those five marks |
//! | the latest `progress` activity by date (target) | its mark |
//! | how many were read, and the earliest date (milestone projection) | a count, a date |
//! | the total of `progress` values (milestone) | an exact sum |
//! | the total per period label in the window (recurring, limit) | exact sums per UTC day for the last 500 days, per month before that back to January two years ago |
//! | the distinct days with a `progress` activity (streak) | those days as runs |
//!
//! Every figure equals the one computed from all activities: sums are exact ([`super::sum`]), so
//! order does not matter; labels of any period (a week labelled with its calendar year reaches
//! back ~450 days, a year label up to two years) are covered by what the pruning keeps, for any
//! `now` at or after the last pruning. A backdated activity updates the day, month or run it
//! falls in; one older than everything kept still counts in the totals, runs and marks.
//!
//! Size: bounded by the days kept (≤ 500 day sums, ≤ 36 month sums) and by the runs of active
//! days (one per streak, over the goal's life), never by the number of activities.
//!
//! It does no I/O and has no clock: the caller says what "today" is when pruning.

use super::buckets;
use super::patterns::{self, Summary};
use super::sum::ExactSum;
use super::trend::slope_trend;
use super::{finite, sanitize};
use crate::model::{Activity, ActivityType, Goal, GoalPattern, Period, Progress};
use crate::model::{Timestamp, Trend};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// Days kept as day sums; older ones are folded into their month.
const DAYS_KEPT: i64 = 500;
/// Calendar years of month sums kept before the current one.
const YEARS_KEPT: i32 = 2;
/// The trend reads the last five values.
const LATEST: usize = 5;

/// One activity, as much of it as the calculators may need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Mark {
    at: DateTime<Utc>,
    logged: Option<DateTime<Utc>>,
    id: String,
    value: f64,
    progress: bool,
}

impl Mark {
    /// Read order: newest `logged_at` first (unreadable last), then `activity_id` ascending.
    fn read_cmp(&self, other: &Mark) -> Ordering {
        other
            .logged
            .cmp(&self.logged)
            .then_with(|| self.id.cmp(&other.id))
    }

    /// The by-date order of the calculators: activity_date ascending, ties in read order.
    fn date_cmp(&self, other: &Mark) -> Ordering {
        self.at.cmp(&other.at).then_with(|| self.read_cmp(other))
    }
}

/// The bounded summary of a goal's activities. `Default` is a goal with none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressState {
    /// Activities with a readable activity_date (any type).
    count: u64,
    earliest: Option<DateTime<Utc>>,
    first_read: Option<Mark>,
    /// The last [`LATEST`] in by-date order, ascending.
    latest: Vec<Mark>,
    latest_progress: Option<Mark>,
    total: ExactSum,
    #[serde(with = "day_keys")]
    days: BTreeMap<NaiveDate, ExactSum>,
    /// `(year, month)` sums of the days before `days_from`.
    months: BTreeMap<(i32, u32), ExactSum>,
    /// Days before this live in `months`.
    days_from: Option<NaiveDate>,
    /// Months of years before this are dropped (no window reaches them).
    months_from: Option<i32>,
    /// Distinct UTC days with a `progress` activity, as `(first, last)` runs of consecutive
    /// days, sorted and apart by at least one missing day.
    #[serde(with = "day_pairs")]
    runs: Vec<(NaiveDate, NaiveDate)>,
}

impl ProgressState {
    /// The state of `activities` (any order), pruned as of `today`.
    pub fn of(activities: &[Activity], today: NaiveDate) -> Self {
        let mut state = Self::default();
        for activity in activities {
            state.add(activity);
        }
        state.prune(today);
        state
    }

    /// How many activities it summarises.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Takes `activity` into account. An activity whose activity_date does not parse is left out,
    /// as the calculators leave it out.
    pub fn add(&mut self, activity: &Activity) {
        let Some(at) = activity.activity_date.instant() else {
            return;
        };
        let mark = Mark {
            at,
            logged: activity.logged_at.instant(),
            id: activity.activity_id.clone(),
            value: finite(activity.value),
            progress: activity.activity_type == ActivityType::Progress,
        };
        self.count += 1;
        self.earliest = Some(self.earliest.map_or(at, |e| e.min(at)));
        if self
            .first_read
            .as_ref()
            .is_none_or(|first| mark.read_cmp(first) == Ordering::Less)
        {
            self.first_read = Some(mark.clone());
        }
        let place = self
            .latest
            .partition_point(|m| m.date_cmp(&mark) == Ordering::Less);
        self.latest.insert(place, mark.clone());
        if self.latest.len() > LATEST {
            self.latest.remove(0);
        }
        if !mark.progress {
            return;
        }
        let replaces = |best: &Mark| match mark.at.cmp(&best.at) {
            Ordering::Greater => true,
            Ordering::Equal => mark.read_cmp(best) == Ordering::Less,
            Ordering::Less => false,
        };
        if self.latest_progress.as_ref().is_none_or(replaces) {
            self.latest_progress = Some(mark.clone());
        }
        self.total.add(mark.value);
        let day = at.date_naive();
        match (self.days_from, self.months_from) {
            (Some(from), _) if day >= from => self.days.entry(day).or_default().add(mark.value),
            (None, _) => self.days.entry(day).or_default().add(mark.value),
            (Some(_), Some(year)) if day.year() < year => {}
            (Some(_), _) => self
                .months
                .entry((day.year(), day.month()))
                .or_default()
                .add(mark.value),
        }
        self.insert_day(day);
    }

    fn insert_day(&mut self, day: NaiveDate) {
        let next = |d: NaiveDate| d.succ_opt();
        // The first run that ends at or after the day before `day`.
        let i = self
            .runs
            .partition_point(|(_, last)| next(*last).is_some_and(|n| n < day));
        match self.runs.get(i).copied() {
            Some((first, last)) if first <= day && day <= last => {}
            Some((first, last)) if next(last) == Some(day) => {
                self.runs[i] = (first, day);
                // It may now touch the following run.
                if let Some(&(after_first, after_last)) = self.runs.get(i + 1) {
                    if next(day) == Some(after_first) {
                        self.runs[i] = (first, after_last);
                        self.runs.remove(i + 1);
                    }
                }
            }
            Some((first, last)) if next(day) == Some(first) => self.runs[i] = (day, last),
            _ => self.runs.insert(i, (day, day)),
        }
    }

    /// Folds what no window can reach any more, as of `today` (and any later day), into months,
    /// and drops months older than that.
    pub fn prune(&mut self, today: NaiveDate) {
        let Some(from) = today.checked_sub_signed(Duration::days(DAYS_KEPT)) else {
            return;
        };
        let year = today.year() - YEARS_KEPT;
        let from = self.days_from.map_or(from, |f| f.max(from));
        let year = self.months_from.map_or(year, |y| y.max(year));
        let kept = self.days.split_off(&from);
        for (day, sum) in std::mem::replace(&mut self.days, kept) {
            if day.year() >= year {
                self.months
                    .entry((day.year(), day.month()))
                    .or_default()
                    .merge(&sum);
            }
        }
        self.months = self.months.split_off(&(year, 1));
        self.days_from = Some(from);
        self.months_from = Some(year);
    }

    /// The progress of `goal` as of `now`: what [`super::compute`] answers from all of the
    /// activities this state summarises.
    pub fn progress(&self, goal: &Goal, now: DateTime<Utc>) -> Progress {
        let period = goal.target.period;
        let mut progress = match goal.goal_pattern {
            GoalPattern::Recurring => {
                patterns::recurring_of(goal, &self.window(period, now), self.first_read_date(), now)
            }
            GoalPattern::Limit => {
                patterns::limit_of(goal, &self.window(period, now), self.first_read_date())
            }
            GoalPattern::Milestone => {
                patterns::milestone_of(goal, self.total.value(), &self.summary(), now)
            }
            GoalPattern::Target => patterns::target_of(
                goal,
                self.latest_progress.as_ref().map(|m| (m.at, m.value)),
                self.value_trend(),
            ),
            GoalPattern::Streak => patterns::streak_of(
                goal,
                self.count > 0,
                &self.runs,
                self.latest.last().map(|m| m.at),
                now,
            ),
        };
        sanitize(&mut progress);
        progress
    }

    fn first_read_date(&self) -> Option<Timestamp> {
        self.first_read
            .as_ref()
            .map(|m| Timestamp::from_instant(m.at))
    }

    fn value_trend(&self) -> Trend {
        let values: Vec<f64> = self.latest.iter().map(|m| m.value).collect();
        slope_trend(&values)
    }

    /// The window's buckets with their totals, from the day and month sums.
    fn window(&self, period: Option<Period>, now: DateTime<Utc>) -> Vec<buckets::Bucket> {
        let mut by_label: HashMap<String, ExactSum> = HashMap::new();
        for (day, sum) in &self.days {
            by_label
                .entry(buckets::label(period, *day))
                .or_default()
                .merge(sum);
        }
        if matches!(
            period,
            Some(Period::Month) | Some(Period::Quarter) | Some(Period::Year)
        ) {
            for ((year, month), sum) in &self.months {
                if let Some(first) = NaiveDate::from_ymd_opt(*year, *month, 1) {
                    by_label
                        .entry(buckets::label(period, first))
                        .or_default()
                        .merge(sum);
                }
            }
        }
        let mut window = buckets::walk(period, now);
        for bucket in &mut window {
            bucket.total = by_label.get(&bucket.label).map_or(0.0, ExactSum::value);
        }
        window
    }

    fn summary(&self) -> Summary {
        Summary {
            count: usize::try_from(self.count).unwrap_or(usize::MAX),
            earliest: self.earliest,
            last_activity_date: self.first_read_date(),
            trend: self.value_trend(),
        }
    }
}

/// Days stored as numbers (days since 1 January of year 1), not text: most of a stored state is
/// its day sums.
fn day_number(day: &NaiveDate) -> i32 {
    day.num_days_from_ce()
}

fn from_day_number<E: serde::de::Error>(n: i32) -> Result<NaiveDate, E> {
    NaiveDate::from_num_days_from_ce_opt(n)
        .ok_or_else(|| E::custom(format!("day {n} out of range")))
}

mod day_keys {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        days: &BTreeMap<NaiveDate, ExactSum>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(days.iter().map(|(day, sum)| (day_number(day), sum)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<NaiveDate, ExactSum>, D::Error> {
        Vec::<(i32, ExactSum)>::deserialize(deserializer)?
            .into_iter()
            .map(|(n, sum)| Ok((from_day_number(n)?, sum)))
            .collect()
    }
}

mod day_pairs {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        runs: &[(NaiveDate, NaiveDate)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(runs.iter().map(|(a, b)| (day_number(a), day_number(b))))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(NaiveDate, NaiveDate)>, D::Error> {
        Vec::<(i32, i32)>::deserialize(deserializer)?
            .into_iter()
            .map(|(a, b)| Ok((from_day_number(a)?, from_day_number(b)?)))
            .collect()
    }
}
