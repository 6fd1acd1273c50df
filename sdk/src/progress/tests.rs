//! Table-driven tests of ORIGIN.md §4, with the expected numbers worked out by hand in the
//! comment of each case. They do not exercise the store (sdk/src/store.rs) nor the wire.

use super::buckets::window;
use super::patterns::projected_completion;
use super::trend::slope_trend;
use super::*;
use crate::model::{
    ActivitySource, Direction, Document, GoalStatus, Period, Target, Timestamp, Trend, Visibility,
};
use chrono::NaiveDate;
use serde_json::json;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .with_timezone(&Utc)
}

/// The Z form with microseconds goalstore writes.
fn z(text: &str) -> Option<Timestamp> {
    Some(Timestamp::from_instant(at(text)))
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
        created_at: Timestamp::from_instant(at("2024-01-01T08:00:00Z")),
        updated_at: Timestamp::from_instant(at("2024-01-01T08:00:00Z")),
        completed_at: None,
        archived_at: None,
        metadata: None,
        is_journal_linked: false,
    }
}

fn target(value: f64, period: Option<Period>) -> Target {
    Target {
        metric: "count".into(),
        value: Some(value),
        period,
        ..Target::default()
    }
}

/// An activity on `date` (a date or an RFC 3339 instant) of `kind`, logged at `logged`.
fn activity(id: &str, date: &str, value: f64, kind: ActivityType, logged: &str) -> Activity {
    let instant = |text: &str| {
        if text.len() == 10 {
            at(&format!("{text}T00:00:00Z"))
        } else {
            at(text)
        }
    };
    Activity {
        activity_id: id.into(),
        goal_id: "g".into(),
        user_id: "u".into(),
        value,
        unit: None,
        activity_type: kind,
        activity_date: Timestamp::from_instant(instant(date)),
        logged_at: Timestamp::from_instant(instant(logged)),
        timezone: None,
        location: None,
        context: None,
        note: None,
        attachments: None,
        source: ActivitySource::Manual,
        device_info: None,
    }
}

use ActivityType::{Completed, Partial, Progress as P, Skipped};

/// Activities as (activity_date, value, type), each logged at its activity_date plus `i`
/// seconds, so the *last* entry is the newest logged (the first read).
fn acts(entries: &[(&str, f64, ActivityType)]) -> Vec<Activity> {
    entries
        .iter()
        .enumerate()
        .map(|(i, (date, value, kind))| {
            // Later entries are logged later, whatever their activity_date.
            let logged = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
            activity(&format!("a{i:03}"), date, *value, *kind, &logged)
        })
        .collect()
}

fn values(p: &Progress) -> Vec<f64> {
    p.period_history.iter().map(|r| r.value).collect()
}

/// Fields upstream requires non-null are always set.
fn assert_required(p: &Progress) {
    assert!(p.success_rate.is_some(), "success_rate: {p:?}");
    assert!(p.trend.is_some(), "trend: {p:?}");
    assert!(p.percent_complete.is_finite());
    assert!(p
        .period_history
        .iter()
        .all(|r| r.date.is_some() && r.value.is_finite()));
}

// ------------------------------------------------------------------------------------- recurring

#[test]
fn recurring_day_window_counts_progress_by_label() {
    // now 2025-03-10 15:30; window now−30 d = 2025-02-08 15:30 … now: Feb 8..28 (21) + Mar 1..10
    // (10) = 31 buckets. Target 10 a day (achieved when total ≥ 10).
    // Progress: 03-10: 6 + 5 = 11 ✓; 03-09: 10 ✓ (≥); 03-08: 9.5 ✗; 02-08: 12 ✓ (first bucket);
    // 02-07: 50 is outside the window. The skipped 100 (03-09) and completed 5 (03-08) don't count.
    // success_rate = 3 / 31 × 100 = 9.67741935483871 = percent_complete.
    // current_period_value = 11 (now's bucket).
    // T1 on the last 5 totals [0, 0, 9.5, 10, 11]: ȳ = 6.1, x̄ = 2,
    //   Σ(x−x̄)(y−ȳ) = (−2)(−6.1) + (−1)(−6.1) + 0 + (1)(3.9) + (2)(4.9) = 32, Σ(x−x̄)² = 10,
    //   slope 3.2 > 0.061 → improving.
    // last_activity_date: the newest logged of any type is the skipped one, dated 03-09.
    let now = at("2025-03-10T15:30:00Z");
    let activities = acts(&[
        ("2025-02-07", 50.0, P),
        ("2025-02-08T23:59:59Z", 12.0, P),
        ("2025-03-08", 9.5, P),
        ("2025-03-08", 5.0, Completed),
        ("2025-03-09", 10.0, P),
        ("2025-03-10T01:00:00Z", 6.0, P),
        ("2025-03-10T14:00:00Z", 5.0, P),
        ("2025-03-09", 100.0, Skipped),
    ]);
    let p = compute(
        &goal(GoalPattern::Recurring, target(10.0, Some(Period::Day))),
        &activities,
        now,
    );
    assert_required(&p);
    assert_eq!(p.period_history.len(), 31);
    assert_eq!(p.success_rate, Some(3.0 / 31.0 * 100.0));
    assert_eq!(p.percent_complete, 9.67741935483871);
    assert_eq!(p.current_period_value, Some(11.0));
    let first = &p.period_history[0];
    assert_eq!(
        (first.period.as_str(), first.achieved, first.value),
        ("2025-02-08", true, 12.0)
    );
    assert_eq!(first.date, z("2025-02-08T15:30:00Z"));
    let last = &p.period_history[30];
    assert_eq!((last.period.as_str(), last.achieved), ("2025-03-10", true));
    assert_eq!(last.date, z("2025-03-10T15:30:00Z"));
    assert_eq!(&values(&p)[26..], &[0.0, 0.0, 9.5, 10.0, 11.0]);
    assert!(!p.period_history[28].achieved, "9.5 < 10");
    assert_eq!(p.trend, Some(Trend::Improving));
    assert_eq!(p.last_activity_date, z("2025-03-09T00:00:00Z"));
    assert_eq!(
        p.last_activity_date.as_ref().map(Timestamp::as_str),
        Some("2025-03-09T00:00:00.000000Z")
    );
    // Fields recurring does not fill keep their defaults.
    assert_eq!(
        (p.average_value, p.days_over_limit, p.total_accumulated),
        (None, None, None)
    );
}

#[test]
fn recurring_week_window_keeps_calendar_year_labels_b10() {
    // now Tue 2025-03-25 09:00; start now − 12 weeks = Tue 2024-12-31 09:00, ISO week 1 of 2025
    // but labelled with its calendar year: `2024-W01` (B10). Buckets: 2024-W01, 2025-W02 …
    // 2025-W13 = 13. Target 5 a week.
    // Matching is by label: 2024-12-30 (3, `2024-W01`) and 2024-01-03 (2, also `2024-W01`, a
    // year earlier) both land in the first bucket: 5 ✓ (≥ 5). 2025-01-02 (4) is `2025-W01`, a
    // label outside the window: ignored. 2025-03-24 (7) + 2025-03-25 (1) = 8 in `2025-W13` ✓.
    // success_rate = 2 / 13 × 100 = 15.384615384615385; current_period_value = 8.
    // T1 on [0, 0, 0, 0, 8]: ȳ = 1.6, Σ(x−x̄)(y−ȳ) = 3.2 + 1.6 + 0 − 1.6 + 12.8 = 16, slope 1.6 →
    // improving.
    let now = at("2025-03-25T09:00:00Z");
    let activities = acts(&[
        ("2024-01-03", 2.0, P),
        ("2024-12-30", 3.0, P),
        ("2025-01-02", 4.0, P),
        ("2025-03-24", 7.0, P),
        ("2025-03-25", 1.0, P),
    ]);
    let p = compute(
        &goal(GoalPattern::Recurring, target(5.0, Some(Period::Week))),
        &activities,
        now,
    );
    assert_required(&p);
    let labels: Vec<&str> = p.period_history.iter().map(|r| r.period.as_str()).collect();
    assert_eq!(labels.len(), 13);
    assert_eq!(&labels[..3], &["2024-W01", "2025-W02", "2025-W03"]);
    assert_eq!(labels[12], "2025-W13");
    assert_eq!(p.period_history[0].value, 5.0);
    assert!(p.period_history[0].achieved);
    assert_eq!(p.period_history[0].date, z("2024-12-31T09:00:00Z"));
    assert_eq!(p.period_history[1].date, z("2025-01-07T09:00:00Z"));
    assert_eq!(p.success_rate, Some(2.0 / 13.0 * 100.0));
    assert_eq!(p.percent_complete, 15.384615384615385);
    assert_eq!(p.current_period_value, Some(8.0));
    assert_eq!(p.trend, Some(Trend::Improving));
    // The label function itself.
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    assert_eq!(period_label(Period::Week, day("2024-12-30")), "2024-W01");
    assert_eq!(period_label(Period::Week, day("2021-01-01")), "2021-W53");
    assert_eq!(period_label(Period::Week, day("2025-01-06")), "2025-W02");
    assert_eq!(period_label(Period::Quarter, day("2025-08-31")), "2025-Q3");
    assert_eq!(period_label(Period::Month, day("2025-08-31")), "2025-08");
    assert_eq!(period_label(Period::Year, day("2025-08-31")), "2025");
}

#[test]
fn recurring_month_quarter_and_year_windows() {
    struct Case {
        now: &'static str,
        period: Period,
        labels: &'static [&'static str],
        dates: &'static [&'static str],
    }
    let cases = [
        // now − 365 d = 2024-03-15 12:00 (2024-03-15 → 2025-03-15 is 365 days): months 2024-03 …
        // 2025-03 = 13; the first date is the start, the others the 1st at now's clock time.
        Case {
            now: "2025-03-15T12:00:00Z",
            period: Period::Month,
            labels: &[
                "2024-03", "2024-04", "2024-05", "2024-06", "2024-07", "2024-08", "2024-09",
                "2024-10", "2024-11", "2024-12", "2025-01", "2025-02", "2025-03",
            ],
            dates: &["2024-03-15T12:00:00Z", "2024-04-01T12:00:00Z"],
        },
        // 2024 has 366 days: now − 365 d = 2024-01-01 00:00: 12 months.
        Case {
            now: "2024-12-31T00:00:00Z",
            period: Period::Month,
            labels: &[
                "2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06", "2024-07",
                "2024-08", "2024-09", "2024-10", "2024-11", "2024-12",
            ],
            dates: &["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"],
        },
        // now − 365 d = 2024-02-11 08:00; daily walk; a quarter's date is the last day visited
        // in it: 2024-03-31, 06-30, 09-30, 12-31 (08:00), and now for 2025-Q1.
        Case {
            now: "2025-02-10T08:00:00Z",
            period: Period::Quarter,
            labels: &["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4", "2025-Q1"],
            dates: &[
                "2024-03-31T08:00:00Z",
                "2024-06-30T08:00:00Z",
                "2024-09-30T08:00:00Z",
                "2024-12-31T08:00:00Z",
                "2025-02-10T08:00:00Z",
            ],
        },
        Case {
            now: "2025-02-10T08:00:00Z",
            period: Period::Year,
            labels: &["2024", "2025"],
            dates: &["2024-12-31T08:00:00Z", "2025-02-10T08:00:00Z"],
        },
    ];
    for case in cases {
        let p = compute(
            &goal(GoalPattern::Recurring, target(4.0, Some(case.period))),
            &[],
            at(case.now),
        );
        let labels: Vec<&str> = p.period_history.iter().map(|r| r.period.as_str()).collect();
        assert_eq!(labels, case.labels, "{}", case.now);
        for (record, date) in p.period_history.iter().zip(case.dates) {
            assert_eq!(record.date, z(date), "{} {}", case.now, record.period);
        }
        assert_eq!(p.success_rate, Some(0.0));
        assert_eq!(
            p.trend,
            Some(Trend::Stable),
            "all zeros: slope 0, threshold 0"
        );
    }

    // Month window from 2024-03-15 12:00: 2024-03-01 (5) is before the start, but its label
    // `2024-03` is in the window, so it counts: 5 ≥ 4 ✓. 2025-03-14 (2) ✗.
    // success_rate = 1 / 13 × 100 = 7.6923076923076925; current_period_value = 2.
    let p = compute(
        &goal(GoalPattern::Recurring, target(4.0, Some(Period::Month))),
        &acts(&[("2024-03-01", 5.0, P), ("2025-03-14", 2.0, P)]),
        at("2025-03-15T12:00:00Z"),
    );
    assert_eq!(p.success_rate, Some(7.6923076923076925));
    assert_eq!(p.current_period_value, Some(2.0));
    assert_eq!(p.period_history[0].value, 5.0);

    // Without a period (upstream cannot read such a goal): day labels over 366 days.
    let p = compute(
        &goal(GoalPattern::Recurring, target(4.0, None)),
        &[],
        at("2025-02-10T08:00:00Z"),
    );
    assert_eq!(p.period_history.len(), 366);
    assert_eq!(p.period_history[0].period, "2024-02-11");
}

// ----------------------------------------------------------------------------------------- limit

#[test]
fn limit_counts_buckets_strictly_over() {
    // Day window of 31 buckets ending 2025-03-10 15:30; limit 3.
    // 03-10: 3 (not over: 3 > 3 is false); 03-09: 4 over; 03-08: 2 + 2 = 4 over; 02-08: 10 over;
    // 03-07 completed 50 doesn't count. days_over_limit = 3.
    // success_rate = (31 − 3) / 31 × 100 = 90.32258064516128 = percent_complete.
    // average_value = (3 + 4 + 4 + 10) / 31 = 21 / 31 = 0.6774193548387096 (empty buckets are 0).
    // T1 on [0, 0, 4, 4, 3]: ȳ = 2.2, Σ = (−2)(−2.2) + (−1)(−2.2) + 0 + (1)(1.8) + (2)(0.8) = 10,
    // slope 1.0 > 0.022 → improving (rising totals count as improving even under a limit).
    let now = at("2025-03-10T15:30:00Z");
    let activities = acts(&[
        ("2025-02-08", 10.0, P),
        ("2025-03-07", 50.0, Completed),
        ("2025-03-08", 2.0, P),
        ("2025-03-08", 2.0, P),
        ("2025-03-09", 4.0, P),
        ("2025-03-10", 3.0, P),
    ]);
    let p = compute(
        &goal(GoalPattern::Limit, target(3.0, Some(Period::Day))),
        &activities,
        now,
    );
    assert_required(&p);
    assert_eq!(p.days_over_limit, Some(3));
    assert_eq!(p.success_rate, Some(90.32258064516128));
    assert_eq!(p.percent_complete, 28.0 / 31.0 * 100.0);
    assert_eq!(p.average_value, Some(21.0 / 31.0));
    assert_eq!(p.current_period_value, None);
    let last = &p.period_history[30];
    assert_eq!((last.value, last.achieved), (3.0, true));
    assert!(!p.period_history[29].achieved);
    assert_eq!(p.trend, Some(Trend::Improving));
    assert_eq!(p.last_activity_date, z("2025-03-10T00:00:00Z"));

    // No activities: 0 over, 100 %, average 0.
    let p = compute(
        &goal(GoalPattern::Limit, target(3.0, Some(Period::Week))),
        &[],
        now,
    );
    assert_eq!(
        (p.days_over_limit, p.percent_complete, p.average_value),
        (Some(0), 100.0, Some(0.0))
    );
    assert_eq!(p.period_history.len(), 13);
}

// ------------------------------------------------------------------------------------- milestone

#[test]
fn milestone_totals_progress_and_projects_completion() {
    let now = at("2025-01-11T12:00:00Z");
    let milestone = goal(GoalPattern::Milestone, target(100.0, None));
    struct Case {
        name: &'static str,
        entries: &'static [(&'static str, f64, ActivityType)],
        total: f64,
        remaining: f64,
        percent: f64,
        projected: Option<&'static str>,
        trend: Trend,
    }
    let cases = [
        // total = 25 + 15 = 40 (the skipped 5 doesn't count); percent 40; remaining 60.
        // Projection: earliest activity (any type) 2025-01-01 00:00, now − it = 10 d 12 h → 10
        // whole days; rate 40 / 10 = 4 a day; 60 / 4 = 15 days → 2025-01-26 12:00.
        // T2 by activity_date: [5, 25, 15], ȳ = 15, Σ = (−1)(−10) + 0 + (1)(0) = 10, Σx² = 2,
        // slope 5 > 0.15 → improving.
        Case {
            name: "projects from the rate since the first activity",
            entries: &[
                ("2025-01-01", 5.0, Skipped),
                ("2025-01-02", 25.0, P),
                ("2025-01-05", 15.0, P),
            ],
            total: 40.0,
            remaining: 60.0,
            percent: 40.0,
            projected: Some("2025-01-26T12:00:00Z"),
            trend: Trend::Improving,
        },
        // 80 + 70 = 150: percent min(100, 150) = 100, remaining max(0, −50) = 0; rate 150 / 9
        // (2025-01-02 → 01-11 12:00 = 9 d 12 h) > 0, 0 days left → now.
        // T2 [80, 70]: slope −10 < −0.75 → declining.
        Case {
            name: "complete projects to now",
            entries: &[("2025-01-02", 80.0, P), ("2025-01-03", 70.0, P)],
            total: 150.0,
            remaining: 0.0,
            percent: 100.0,
            projected: Some("2025-01-11T12:00:00Z"),
            trend: Trend::Declining,
        },
        // One activity: no projection (upstream needs ≥ 2). T2 with 1 value: stable.
        Case {
            name: "one activity",
            entries: &[("2025-01-02", 30.0, P)],
            total: 30.0,
            remaining: 70.0,
            percent: 30.0,
            projected: None,
            trend: Trend::Stable,
        },
        // Only non-progress activities: total 0, rate 0 → no projection.
        // T2 [10, 10]: slope 0 → stable.
        Case {
            name: "nothing counted",
            entries: &[
                ("2025-01-02", 10.0, Completed),
                ("2025-01-03", 10.0, Partial),
            ],
            total: 0.0,
            remaining: 100.0,
            percent: 0.0,
            projected: None,
            trend: Trend::Stable,
        },
        // Both today: 0 whole days elapsed → no projection. T2 [20, 20] stable.
        Case {
            name: "no whole day yet",
            entries: &[("2025-01-11", 20.0, P), ("2025-01-11T06:00:00Z", 20.0, P)],
            total: 40.0,
            remaining: 60.0,
            percent: 40.0,
            projected: None,
            trend: Trend::Stable,
        },
    ];
    for case in cases {
        let p = compute(&milestone, &acts(case.entries), now);
        assert_required(&p);
        assert_eq!(p.total_accumulated, Some(case.total), "{}", case.name);
        assert_eq!(p.remaining_to_goal, Some(case.remaining), "{}", case.name);
        assert_eq!(p.percent_complete, case.percent, "{}", case.name);
        assert_eq!(
            p.projected_completion,
            case.projected.and_then(z),
            "{}",
            case.name
        );
        assert_eq!(p.trend, Some(case.trend), "{}", case.name);
        assert_eq!(p.success_rate, Some(0.0), "{}", case.name);
    }
    // last_activity_date: the newest logged (the last entry), not the latest activity_date.
    let p = compute(
        &milestone,
        &acts(&[("2025-01-05", 1.0, P), ("2025-01-02", 1.0, Completed)]),
        now,
    );
    assert_eq!(p.last_activity_date, z("2025-01-02T00:00:00Z"));
}

#[test]
fn projection_rounds_to_microseconds_and_refuses_absurd_spans() {
    // Total 10 over the 3 whole days since 2025-01-01: rate 10 / 3 a day; 1 left → 1 / (10 / 3)
    // = 0.3 days = 7 h 12 min after now.
    let now = at("2025-01-04T00:00:00Z");
    let read = read_order(&acts(&[("2025-01-01", 5.0, P), ("2025-01-02", 5.0, P)]));
    assert_eq!(
        projected_completion(read.len(), read.iter().map(|a| a.at).min(), 10.0, 1.0, now),
        Some(at("2025-01-04T07:12:00Z"))
    );
    // A rate so small that the date passes year 9999: none.
    let earliest = read.iter().map(|a| a.at).min();
    assert_eq!(
        projected_completion(read.len(), earliest, 1e-12, 1e6, now),
        None
    );
}

// ---------------------------------------------------------------------------------------- target

#[test]
fn target_measures_distance_from_start_ignoring_direction() {
    let with = |start: Option<f64>, value: f64, direction: Direction| Target {
        start_value: start,
        direction: Some(direction),
        ..target(value, None)
    };
    // Latest progress by activity_date is 2025-01-05 (80), although 2025-01-04 (70) was logged
    // after it; the completed 10 on 01-06 doesn't count.
    let entries: &[(&str, f64, ActivityType)] = &[
        ("2025-01-02", 82.0, P),
        ("2025-01-05", 80.0, P),
        ("2025-01-04", 70.0, P),
        ("2025-01-06", 10.0, Completed),
    ];
    let cases: &[(Target, f64, Option<&str>)] = &[
        // start 85 → 75: need |75 − 85| = 10, done |80 − 85| = 5 → 50 %.
        (
            with(Some(85.0), 75.0, Direction::Decrease),
            50.0,
            Some("2025-01-05T00:00:00Z"),
        ),
        // The direction is ignored: "increase" gives the same 50 %.
        (
            with(Some(85.0), 75.0, Direction::Increase),
            50.0,
            Some("2025-01-05T00:00:00Z"),
        ),
        // start 90 → 85: need 5, done |80 − 90| = 10 → 200 → min(100, 200) = 100.
        (
            with(Some(90.0), 85.0, Direction::Decrease),
            100.0,
            Some("2025-01-05T00:00:00Z"),
        ),
        // start == value (need 0): current 80 == 80 → 100.
        (
            with(Some(80.0), 80.0, Direction::Maintain),
            100.0,
            Some("2025-01-05T00:00:00Z"),
        ),
        // need 0 and current 80 ≠ 81 → 0.
        (
            with(Some(81.0), 81.0, Direction::Maintain),
            0.0,
            Some("2025-01-05T00:00:00Z"),
        ),
        // start null or 0: every field keeps its default.
        (with(None, 75.0, Direction::Decrease), 0.0, None),
        (with(Some(0.0), 75.0, Direction::Increase), 0.0, None),
    ];
    let now = at("2025-01-10T00:00:00Z");
    for (t, percent, last) in cases {
        let p = compute(&goal(GoalPattern::Target, t.clone()), &acts(entries), now);
        assert_required(&p);
        assert_eq!(p.percent_complete, *percent, "{t:?}");
        assert_eq!(p.last_activity_date, last.and_then(z), "{t:?}");
        // Upstream's calculator fills none of these.
        assert_eq!(
            (
                p.current_period_value,
                p.remaining_to_goal,
                p.projected_completion.clone()
            ),
            (None, None, None),
            "{t:?}"
        );
        if t.start_value.unwrap_or(0.0) == 0.0 {
            let defaults = Progress {
                success_rate: Some(0.0),
                trend: Some(Trend::Stable),
                ..Progress::default()
            };
            assert_eq!(p, defaults, "{t:?}");
        } else {
            // T2 over every type by activity_date: [82, 70, 80, 10], ȳ = 60.5, x̄ = 1.5,
            // Σ = (−1.5)(21.5) + (−0.5)(9.5) + (0.5)(19.5) + (1.5)(−50.5) = −32.25 − 4.75 + 9.75
            // − 75.75 = −103, Σx² = 5, slope −20.6 < −0.605 → declining.
            assert_eq!(p.trend, Some(Trend::Declining), "{t:?}");
        }
    }

    // No progress activity: current = start → done 0 → 0 %, no last_activity_date.
    let p = compute(
        &goal(
            GoalPattern::Target,
            with(Some(85.0), 75.0, Direction::Decrease),
        ),
        &acts(&[("2025-01-02", 70.0, Completed)]),
        now,
    );
    assert_eq!((p.percent_complete, p.last_activity_date), (0.0, None));

    // Same activity_date: the first read (newest logged, 79) wins: |79 − 85| / 10 = 60 %.
    let mut tied = acts(&[("2025-01-05", 78.0, P), ("2025-01-05", 79.0, P)]);
    tied.swap(0, 1); // input order does not matter
    let p = compute(
        &goal(
            GoalPattern::Target,
            with(Some(85.0), 75.0, Direction::Decrease),
        ),
        &tied,
        now,
    );
    assert_eq!(p.percent_complete, 60.0);
}

// ---------------------------------------------------------------------------------------- streak

#[test]
fn streaks_count_consecutive_progress_days() {
    let now = at("2025-01-10T12:00:00Z");
    // target 7.9 → int() → 7.
    let streak = goal(GoalPattern::Streak, target(7.9, Some(Period::Day)));
    struct Case {
        name: &'static str,
        entries: &'static [(&'static str, f64, ActivityType)],
        current: u32,
        longest: u32,
        percent: f64,
        last: Option<&'static str>,
        trend: Trend,
    }
    let cases = [
        // 05 → 1, 06 → 2, 06 again (same day) → 2, 08 (gap 2) → longest 2, current 1, 09 → 2,
        // 10 → 3; today − 10 = 0 → kept; longest max(2, 3) = 3. percent 3 / 7 × 100.
        Case {
            name: "gaps and same day",
            entries: &[
                ("2025-01-05", 1.0, P),
                ("2025-01-06", 1.0, P),
                ("2025-01-06T18:00:00Z", 1.0, P),
                ("2025-01-08", 1.0, P),
                ("2025-01-09", 1.0, P),
                ("2025-01-10", 1.0, P),
            ],
            current: 3,
            longest: 3,
            percent: 3.0 / 7.0 * 100.0,
            last: Some("2025-01-10T00:00:00Z"),
            trend: Trend::Improving,
        },
        // 07 → 1, 08 → 2; today − 08 = 2 > 1 → longest 2, current 0 → declining.
        Case {
            name: "broken by today",
            entries: &[("2025-01-07", 1.0, P), ("2025-01-08", 1.0, P)],
            current: 0,
            longest: 2,
            percent: 0.0,
            last: Some("2025-01-08T00:00:00Z"),
            trend: Trend::Declining,
        },
        // 08, 09: today − 09 = 1 → still alive: 2.
        Case {
            name: "yesterday keeps it",
            entries: &[("2025-01-08", 1.0, P), ("2025-01-09", 1.0, P)],
            current: 2,
            longest: 2,
            percent: 2.0 / 7.0 * 100.0,
            last: Some("2025-01-09T00:00:00Z"),
            trend: Trend::Improving,
        },
        // Only 08 is progress (the completed 09 and 10 don't count): 1, then today − 08 = 2 →
        // longest 1, current 0. last_activity_date is the greatest of any type: 10.
        Case {
            name: "only progress counts",
            entries: &[
                ("2025-01-08", 1.0, P),
                ("2025-01-09", 1.0, Completed),
                ("2025-01-10", 1.0, Completed),
            ],
            current: 0,
            longest: 1,
            percent: 0.0,
            last: Some("2025-01-10T00:00:00Z"),
            trend: Trend::Declining,
        },
        // Eight days 03..10 → 8; min(100, 8 / 7 × 100) = 100.
        Case {
            name: "capped",
            entries: &[
                ("2025-01-03", 1.0, P),
                ("2025-01-04", 1.0, P),
                ("2025-01-05", 1.0, P),
                ("2025-01-06", 1.0, P),
                ("2025-01-07", 1.0, P),
                ("2025-01-08", 1.0, P),
                ("2025-01-09", 1.0, P),
                ("2025-01-10", 1.0, P),
            ],
            current: 8,
            longest: 8,
            percent: 100.0,
            last: Some("2025-01-10T00:00:00Z"),
            trend: Trend::Improving,
        },
        // No activities: zeros and stable.
        Case {
            name: "empty",
            entries: &[],
            current: 0,
            longest: 0,
            percent: 0.0,
            last: None,
            trend: Trend::Stable,
        },
    ];
    for case in cases {
        let p = compute(&streak, &acts(case.entries), now);
        assert_required(&p);
        assert_eq!(
            (p.current_streak, p.longest_streak),
            (case.current, case.longest),
            "{}",
            case.name
        );
        assert_eq!(p.percent_complete, case.percent, "{}", case.name);
        assert_eq!(p.target_streak, Some(7), "{}", case.name);
        assert_eq!(p.last_activity_date, case.last.and_then(z), "{}", case.name);
        assert_eq!(p.trend, Some(case.trend), "{}", case.name);
    }
}

// ----------------------------------------------------------------------------------------- trend

#[test]
fn trend_slope_of_the_last_five_against_one_percent_of_the_mean() {
    let cases: &[(&[f64], Trend)] = &[
        (&[], Trend::Stable),
        (&[5.0], Trend::Stable),
        // slope 1, threshold 0.015.
        (&[1.0, 2.0], Trend::Improving),
        // slope 0.5, threshold 0.01 × 100.25 = 1.0025 → stable.
        (&[100.0, 100.5], Trend::Stable),
        // slope 2 > 1.01.
        (&[100.0, 102.0], Trend::Improving),
        // slope −2 < −0.99.
        (&[100.0, 98.0], Trend::Declining),
        // slope −0.5, threshold 0.9975 → stable.
        (&[100.0, 99.5], Trend::Stable),
        // slope 0 and threshold 0: 0 > 0 is false → stable.
        (&[0.0, 0.0], Trend::Stable),
        // Only the last 5 count: [0, 0, 0, 0, 1], ȳ = 0.2, Σ = 0.4 + 0.2 + 0 − 0.2 + 1.6 = 2,
        // slope 0.2 > 0.002 → improving (all six would be declining).
        (&[100.0, 0.0, 0.0, 0.0, 0.0, 1.0], Trend::Improving),
        // Negative values: [−10, −20], slope −10 < −0.15 → declining.
        (&[-10.0, -20.0], Trend::Declining),
    ];
    for (values, expected) in cases {
        assert_eq!(slope_trend(values), *expected, "{values:?}");
    }
}

// ------------------------------------------------------------------------------------ read order

#[test]
fn read_order_is_newest_logged_first_then_activity_id() {
    let now = at("2025-01-10T12:00:00Z");
    let recurring = goal(GoalPattern::Recurring, target(1.0, Some(Period::Day)));
    // Same logged_at: `a` sorts before `b`, so a's activity_date is "the first read".
    let same = "2025-01-09T10:00:00Z";
    let p = compute(
        &recurring,
        &[
            activity("b", "2025-01-08", 1.0, P, same),
            activity("a", "2025-01-07", 1.0, P, same),
        ],
        now,
    );
    assert_eq!(p.last_activity_date, z("2025-01-07T00:00:00Z"));
    // Newer logged wins over the id.
    let p = compute(
        &recurring,
        &[
            activity("a", "2025-01-07", 1.0, P, same),
            activity("b", "2025-01-08", 1.0, P, "2025-01-09T11:00:00Z"),
        ],
        now,
    );
    assert_eq!(p.last_activity_date, z("2025-01-08T00:00:00Z"));
}

// ------------------------------------------------------------------------------------ statistics

fn with_schedule(mut g: Goal, schedule: serde_json::Value) -> Goal {
    g.schedule = Some(Document::from(schedule));
    g
}

#[test]
fn statistics_count_types_and_values() {
    // progress 4 and completed 6 give the values: mean 5, best 6, worst 4; partial and skipped
    // are counted in totalActivities only (skipped also in skippedActivities).
    let activities = acts(&[
        ("2025-03-01", 4.0, P),
        ("2025-03-02", 6.0, Completed),
        ("2025-03-02", 100.0, Skipped),
        ("2025-03-05", 1.0, Partial),
    ]);
    let g = goal(GoalPattern::Milestone, target(100.0, None));
    let now = at("2025-03-06T00:00:00Z");
    let p = compute(&g, &activities, now);
    let s = report(&g, &p, &activities, ReportPeriod::All, now).statistics;
    assert_eq!(
        (
            s.total_activities,
            s.completed_activities,
            s.skipped_activities
        ),
        (4, 2, 1)
    );
    assert_eq!(
        (s.average_value, s.best_value, s.worst_value),
        (5.0, 6.0, 4.0)
    );
    assert_eq!(s.consistency, 0.0, "period all");
    // None valued: zeros.
    let only_skipped = acts(&[("2025-03-01", 3.0, Skipped)]);
    let s = report(&g, &p, &only_skipped, ReportPeriod::Week, now).statistics;
    assert_eq!(
        (s.average_value, s.best_value, s.worst_value),
        (0.0, 0.0, 0.0)
    );
}

#[test]
fn consistency_follows_frequency_pattern_and_period() {
    // Three distinct UTC dates (03-01, 03-02 twice, 03-05), of mixed types.
    let activities = acts(&[
        ("2025-03-01", 4.0, P),
        ("2025-03-02T01:00:00Z", 6.0, Completed),
        ("2025-03-02T23:00:00Z", 1.0, Skipped),
        ("2025-03-05", 1.0, Partial),
    ]);
    let now = at("2025-03-06T00:00:00Z");
    use GoalPattern::{Limit, Milestone, Recurring, Streak, Target as T};
    use ReportPeriod::{All, Current, Month, Quarter, Week, Year};
    let cases: &[(GoalPattern, Option<serde_json::Value>, ReportPeriod, f64)] = &[
        // daily × 1: week 7 → 3 / 7 × 100 = 42.857142857142854.
        (
            Recurring,
            Some(json!({"frequency": "daily"})),
            Week,
            3.0 / 7.0 * 100.0,
        ),
        // daily, current 30 → 10.
        (
            Milestone,
            Some(json!({"frequency": "daily"})),
            Current,
            10.0,
        ),
        // weekly: month 30 // 7 = 4 → 75.
        (Recurring, Some(json!({"frequency": "weekly"})), Month, 75.0),
        // weekly: week 7 // 7 = 1 → 300 → capped at 100.
        (Recurring, Some(json!({"frequency": "weekly"})), Week, 100.0),
        // monthly: year 365 // 30 = 12 → 25.
        (Recurring, Some(json!({"frequency": "monthly"})), Year, 25.0),
        // monthly: week 7 // 30 = 0 → stays 0.
        (Recurring, Some(json!({"frequency": "monthly"})), Week, 0.0),
        // null frequency: recurring, streak, limit × 1 → quarter 90 → 3 / 90 × 100.
        (
            Recurring,
            Some(json!({"frequency": null})),
            Quarter,
            3.0 / 90.0 * 100.0,
        ),
        (
            Streak,
            Some(json!({"frequency": null})),
            Quarter,
            3.0 / 90.0 * 100.0,
        ),
        (Limit, Some(json!({})), Quarter, 3.0 / 90.0 * 100.0),
        // null or custom for milestone/target: // 7 → year 52 → 3 / 52 × 100 = 5.769230769230769.
        (
            Milestone,
            Some(json!({"frequency": "custom"})),
            Year,
            3.0 / 52.0 * 100.0,
        ),
        // current 30 // 7 = 4 → 75.
        (T, Some(json!({"frequency": null})), Current, 75.0),
        // custom recurring: × 1 → current 30 → 10.
        (
            Recurring,
            Some(json!({"frequency": "custom"})),
            Current,
            10.0,
        ),
        // A frequency upstream cannot read counts like custom: recurring × 1 → 3 / 7 × 100.
        (
            Recurring,
            Some(json!({"frequency": "yearly"})),
            Week,
            3.0 / 7.0 * 100.0,
        ),
        // A schedule that is not a map is no schedule: 0.
        (Recurring, Some(json!(null)), Week, 0.0),
        // `all`, or no schedule: 0.
        (Recurring, Some(json!({"frequency": "daily"})), All, 0.0),
        (Recurring, None, Week, 0.0),
    ];
    for (pattern, schedule, period, expected) in cases {
        let mut g = goal(*pattern, target(10.0, Some(Period::Day)));
        if let Some(schedule) = schedule {
            g = with_schedule(g, schedule.clone());
        }
        let p = compute(&g, &activities, now);
        let s = report(&g, &p, &activities, *period, now).statistics;
        assert_eq!(s.consistency, *expected, "{pattern} {schedule:?} {period}");
    }
}

#[test]
fn capped_consistency_serializes_as_the_integer_100() {
    let g = with_schedule(
        goal(GoalPattern::Recurring, target(1.0, Some(Period::Day))),
        json!({"frequency": "weekly"}),
    );
    let activities = acts(&[("2025-03-01", 2.5, P)]);
    let now = at("2025-03-02T00:00:00Z");
    let p = compute(&g, &activities, now);
    // weekly, week: expected 1, 1 day → min(100, 100.0) = the integer 100.
    let r = report(&g, &p, &activities, ReportPeriod::Week, now);
    let body = serde_json::to_string(&r).expect("serializes");
    assert!(body.contains(r#""consistency":100}"#), "{body}");
    assert!(body.contains(r#""averageValue":2.5"#), "{body}");
    assert!(body.contains(r#""bestTimeOfDay":null"#), "{body}");
    assert!(body.contains(r#""totalActivities":1"#), "{body}");
    // Below the cap it stays a float: month 30 // 7 = 4 → 25.0.
    let r = report(&g, &p, &activities, ReportPeriod::Month, now);
    let value = serde_json::to_value(&r).expect("serializes");
    assert_eq!(value["statistics"]["consistency"], json!(25.0));
    assert!(value["statistics"]["consistency"].is_f64());
    assert_eq!(value["statistics"]["skippedActivities"], json!(0));
    assert!(value["insights"]["successPatterns"].is_array());
}

// -------------------------------------------------------------------------------------- insights

#[test]
fn recommendations_keep_upstream_order_and_at_most_three() {
    let now = at("2025-03-31T12:00:00Z");
    // Streak (target 10), 11 progress activities of 1 on 2025-01-01..11: current 0 (last day
    // far behind today). No schedule → consistency 0.
    // 1. consistency 0 < 50 → low consistency;
    // 2. percent 0 < 25 with 11 > 10 activities → slow progress;
    // 3. streak with current 0 → broken;
    // 4. average 1 < 10 × 0.5 → low average: the 4th, cut by the cap of 3.
    let entries: Vec<(String, f64, ActivityType)> = (1..=11)
        .map(|d| (format!("2025-01-{d:02}"), 1.0, P))
        .collect();
    let entries: Vec<(&str, f64, ActivityType)> = entries
        .iter()
        .map(|(d, v, k)| (d.as_str(), *v, *k))
        .collect();
    let activities = acts(&entries);
    let g = goal(GoalPattern::Streak, target(10.0, Some(Period::Day)));
    let p = compute(&g, &activities, now);
    assert_eq!(p.current_streak, 0);
    let i = report(&g, &p, &activities, ReportPeriod::Current, now).insights;
    assert_eq!(
        i.recommendations,
        vec![
            "Your consistency is below 50%. Try setting daily reminders or linking this goal to an existing habit.",
            "You're making slow progress. Consider breaking down your goal into smaller milestones.",
            "Your streak was broken. Start fresh today - every journey begins with a single step!",
        ]
    );
    // consistency 0 < 50 → inconsistent; trend declining (streak with current 0).
    assert_eq!(
        i.success_patterns,
        vec![
            "Inconsistent activity - try setting reminders",
            "Performance is declining - consider adjusting your approach",
        ]
    );
    assert_eq!(i.best_time_of_day, None);

    // Limit 3 a day, 6 days over (value 10 each, 2025-03-20..25), daily schedule, current:
    // consistency 6 / 30 × 100 = 20 → (1); success (31 − 6) / 31 × 100 = 80.6 > 75 → close to
    // the goal (2); days over 6 > 5 → the count (3); average 10 ≥ 1.5 → no (4).
    let entries: Vec<(String, f64, ActivityType)> = (20..=25)
        .map(|d| (format!("2025-03-{d:02}"), 10.0, P))
        .collect();
    let entries: Vec<(&str, f64, ActivityType)> = entries
        .iter()
        .map(|(d, v, k)| (d.as_str(), *v, *k))
        .collect();
    let activities = acts(&entries);
    let g = with_schedule(
        goal(GoalPattern::Limit, target(3.0, Some(Period::Day))),
        json!({"frequency": "daily"}),
    );
    let p = compute(&g, &activities, now);
    assert_eq!(p.days_over_limit, Some(6));
    let r = report(&g, &p, &activities, ReportPeriod::Current, now);
    assert_eq!(r.statistics.consistency, 20.0);
    assert_eq!(
        r.insights.recommendations,
        vec![
            "Your consistency is below 50%. Try setting daily reminders or linking this goal to an existing habit.",
            "You're close to your goal! Stay focused and maintain your current pace.",
            "You've exceeded your limit 6 times. Consider adjusting your target or identifying triggers.",
        ]
    );
    // Exactly 5 over is not "more than 5": drop 03-25 → 5 over, consistency 5 / 30 → 16.7.
    let five = &activities[..5];
    let p = compute(&g, five, now);
    let r = report(&g, &p, five, ReportPeriod::Current, now);
    assert_eq!(r.insights.recommendations.len(), 2, "{r:?}");

    // High consistency: milestone 100, weekly schedule, period week → expected 1 → 100 > 80.
    // percent 80 > 75 → close; average 80 ≥ 50 → nothing more; 1 activity → trend stable.
    let activities = acts(&[("2025-03-30", 80.0, P)]);
    let g = with_schedule(
        goal(GoalPattern::Milestone, target(100.0, None)),
        json!({"frequency": "weekly"}),
    );
    let p = compute(&g, &activities, now);
    let i = report(&g, &p, &activities, ReportPeriod::Week, now).insights;
    assert_eq!(i.success_patterns, vec!["High consistency - keep it up!"]);
    assert_eq!(
        i.recommendations,
        vec!["You're close to your goal! Stay focused and maintain your current pace."]
    );
    assert_eq!(i.best_day_of_week.as_deref(), Some("sunday"));

    // Consistency 50..=80 adds no pattern: milestone, weekly, month → 30 // 7 = 4 expected,
    // 3 days → 75. Trend T2 [10, 20, 30] improving. Average 20 < 50 → low average (only rec).
    let activities = acts(&[
        ("2025-03-01", 10.0, P),
        ("2025-03-02", 20.0, P),
        ("2025-03-03", 30.0, P),
    ]);
    let p = compute(&g, &activities, now);
    let i = report(&g, &p, &activities, ReportPeriod::Month, now).insights;
    assert_eq!(
        i.success_patterns,
        vec!["Performance is improving over time"]
    );
    assert_eq!(
        i.recommendations,
        vec!["Your average performance is less than 50% of your target. Consider adjusting your goal or approach."]
    );

    // No activities: one "start logging" line, nothing else.
    let p = compute(&g, &[], now);
    let i = report(&g, &p, &[], ReportPeriod::Week, now).insights;
    assert_eq!(
        i,
        Insights {
            best_time_of_day: None,
            best_day_of_week: None,
            success_patterns: vec![],
            recommendations: vec!["Start logging activities to build insights".into()],
        }
    );
}

#[test]
fn best_day_of_week_is_the_highest_mean_first_seen_on_ties() {
    let g = goal(GoalPattern::Milestone, target(10.0, None));
    let now = at("2025-03-10T00:00:00Z");
    let best = |entries: &[(&str, f64, ActivityType)]| {
        let activities = acts(entries);
        let p = compute(&g, &activities, now);
        report(&g, &p, &activities, ReportPeriod::All, now)
            .insights
            .best_day_of_week
    };
    // Monday 03-03 and Tuesday 03-04 both mean 4: the first read (newest logged = last entry)
    // wins.
    assert_eq!(
        best(&[("2025-03-03", 4.0, P), ("2025-03-04", 4.0, P)]).as_deref(),
        Some("tuesday")
    );
    assert_eq!(
        best(&[("2025-03-04", 4.0, P), ("2025-03-03", 4.0, P)]).as_deref(),
        Some("monday")
    );
    // Mean, not sum: Monday (6 + 0) / 2 = 3 < Tuesday 4.
    assert_eq!(
        best(&[
            ("2025-03-03", 6.0, P),
            ("2025-03-03T08:00:00Z", 0.0, P),
            ("2025-03-04", 4.0, P),
        ])
        .as_deref(),
        Some("tuesday")
    );
    // Every type counts, skipped included: Sunday 03-09 skipped 9 beats Tuesday 4.
    assert_eq!(
        best(&[("2025-03-04", 4.0, P), ("2025-03-09", 9.0, Skipped)]).as_deref(),
        Some("sunday")
    );
}

#[test]
fn report_periods_parse_from_query_text() {
    for (text, period) in [
        ("current", ReportPeriod::Current),
        ("week", ReportPeriod::Week),
        ("month", ReportPeriod::Month),
        ("quarter", ReportPeriod::Quarter),
        ("year", ReportPeriod::Year),
        ("all", ReportPeriod::All),
    ] {
        assert_eq!(ReportPeriod::parse(text), Some(period));
        assert_eq!(text.parse::<ReportPeriod>(), Ok(period));
        assert_eq!(period.as_str(), text);
        assert_eq!(
            serde_json::to_value(period).expect("serializes"),
            json!(text)
        );
    }
    for bad in ["", "Week", "day", "all "] {
        assert_eq!(ReportPeriod::parse(bad), None, "{bad:?}");
        assert!(bad.parse::<ReportPeriod>().is_err());
    }
    assert_eq!(ReportPeriod::default(), ReportPeriod::Current);
}

// ------------------------------------------------------------------------------------ robustness

#[test]
fn nothing_panics_on_odd_input() {
    let extremes = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        at("0001-01-01T00:00:00Z"),
        at("9999-12-31T23:59:59Z"),
        at("2025-03-10T00:00:00Z"),
    ];
    let mut activities = acts(&[
        ("2025-03-10", f64::NAN, P),
        ("2025-03-10", f64::INFINITY, P),
        ("2025-03-10", 1e308, P),
        ("2025-03-10", 1e308, P),
        ("2025-03-09", -5.0, Completed),
        ("0001-01-01", 1.0, P),
        ("9999-12-31", 1.0, Skipped),
    ]);
    let mut bad = activity("z", "2025-03-10", 1.0, P, "2025-03-10");
    bad.activity_date = Timestamp::parse("2025-03-10T00:00:00").expect("naive parses");
    activities.push(bad);
    let mut unreadable = activities[0].clone();
    unreadable.activity_id = "unreadable".into();
    unreadable.activity_date = crate::model::Timestamp::from_instant(DateTime::<Utc>::MAX_UTC);
    unreadable.logged_at = crate::model::Timestamp::from_instant(DateTime::<Utc>::MIN_UTC);
    activities.push(unreadable);
    let nan_target = Target {
        start_value: Some(f64::NAN),
        ..target(f64::NAN, Some(Period::Week))
    };
    for now in extremes {
        for pattern in GoalPattern::ALL {
            for t in [
                target(10.0, Some(Period::Day)),
                target(10.0, Some(Period::Month)),
                target(0.5, Some(Period::Quarter)),
                target(10.0, None),
                nan_target.clone(),
                Target {
                    start_value: Some(3.0),
                    ..target(f64::INFINITY, Some(Period::Year))
                },
            ] {
                let g = with_schedule(goal(*pattern, t), json!({"frequency": "daily"}));
                for list in [&activities[..], &[]] {
                    let p = compute(&g, list, now);
                    assert_required(&p);
                    for f in [p.average_value, p.total_accumulated, p.remaining_to_goal] {
                        assert!(f.is_none_or(f64::is_finite), "{p:?}");
                    }
                    for period in ReportPeriod::ALL {
                        let r = report(&g, &p, list, *period, now);
                        assert!(r.statistics.average_value.is_finite());
                        assert!(r.insights.recommendations.len() <= 3);
                        serde_json::to_string(&r).expect("serializes");
                    }
                }
            }
        }
    }
    // The unreadable instants are left out, the rest is read.
    let p = compute(
        &goal(GoalPattern::Milestone, target(10.0, None)),
        &activities,
        at("2025-03-10T00:00:00Z"),
    );
    // NaN and inf read as 0; 1e308 + 1e308 overflows to inf → total_accumulated None.
    assert_eq!(p.total_accumulated, None);
    assert_eq!(p.percent_complete, 100.0);
}

#[test]
fn non_finite_values_read_as_zero() {
    // docs/compatibility.md §5: milestone 10 with progress 4 and NaN → total 4 + 0 = 4, 40 %.
    // The NaN activity still counts as an activity (statistics: 2 completed).
    let g = goal(GoalPattern::Milestone, target(10.0, None));
    let activities = acts(&[("2025-03-01", 4.0, P), ("2025-03-02", f64::NAN, P)]);
    let now = at("2025-03-03T00:00:00Z");
    let p = compute(&g, &activities, now);
    assert_eq!((p.total_accumulated, p.percent_complete), (Some(4.0), 40.0));
    let s = report(&g, &p, &activities, ReportPeriod::All, now).statistics;
    assert_eq!((s.completed_activities, s.average_value), (2, 2.0));
}

#[test]
fn window_is_empty_when_its_start_is_out_of_range() {
    let read = read_order(&[]);
    assert!(window(Some(Period::Day), &read, DateTime::<Utc>::MIN_UTC).is_empty());
    assert_eq!(
        window(Some(Period::Day), &read, at("2025-03-10T00:00:00Z")).len(),
        31
    );
}

#[test]
fn totals_are_exact_sums_docs_compatibility_10() {
    // Logged 0.1, 0.6, 0.3 today; upstream reads 0.3, 0.6, 0.1 and adds to 0.9999999999999999.
    let now = at("2025-03-10T15:30:00Z");
    let g = goal(GoalPattern::Recurring, target(1.0, Some(Period::Day)));
    let p = compute(
        &g,
        &acts(&[
            ("2025-03-10", 0.1, P),
            ("2025-03-10", 0.6, P),
            ("2025-03-10", 0.3, P),
        ]),
        now,
    );
    assert_eq!(p.current_period_value, Some(1.0));
    assert!(p.period_history.last().is_some_and(|r| r.achieved));
}

// ------------------------------------------------------------------------------ bounded progress

mod bounded {
    //! #16: the bounded state, kept up to date one logged activity at a time (pruned as of each
    //! log's day), answers exactly what the full recomputation from every activity answers, field
    //! by field, for all five patterns and every period: random histories with backdated
    //! activities (up to ~2.5 years back, and a few days ahead), same-microsecond logs, every
    //! activity type, and values whose floating-point sums depend on their order.

    use super::*;
    use proptest::prelude::*;

    /// One logged activity: days before (or after) the log, seconds into that day, value, type,
    /// and whether it was logged in the same microsecond as the one before.
    type Entry = (i64, i64, f64, u8, bool);

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0i32..40).prop_map(f64::from),
            (0i32..1000).prop_map(|n| f64::from(n) * 0.1),
            -50.0f64..500.0,
            Just(1e16),
            Just(-1e16),
        ]
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        prop::collection::vec(
            (
                prop_oneof![0i64..3, 0i64..40, -3i64..900],
                0i64..86_400,
                value(),
                0u8..10,
                prop::bool::weighted(0.1),
            ),
            0..60,
        )
    }

    fn kind(n: u8) -> ActivityType {
        match n {
            0 => Completed,
            1 => Skipped,
            2 => Partial,
            _ => P,
        }
    }

    /// The activities, logged in order from `start`, 5 hours apart (or in the same microsecond).
    fn history(start: DateTime<Utc>, entries: &[Entry]) -> Vec<Activity> {
        let mut logged = start;
        entries
            .iter()
            .enumerate()
            .map(|(i, (days_back, second, value, type_, same))| {
                if !same {
                    logged += chrono::Duration::hours(5);
                }
                let date = logged
                    .date_naive()
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc()
                    - chrono::Duration::days(*days_back)
                    + chrono::Duration::seconds(*second);
                let mut a = activity(
                    &format!("a{i:03}"),
                    "2026-01-01",
                    *value,
                    kind(*type_),
                    "2026-01-01",
                );
                a.activity_date = Timestamp::from_instant(date);
                a.logged_at = Timestamp::from_instant(logged);
                a
            })
            .collect()
    }

    /// The labels that reach back furthest: a week labelled with its calendar year (2025-12-29
    /// is `2025-W01`, as are 2025-01-01..05, 15 months before a window of March 2026) and a year
    /// label whose window starts on the last day of the year before (all of that year counts).
    #[test]
    fn the_labels_that_reach_back_furthest_are_kept() {
        let cases = [
            (Period::Week, "2025-01-02", "2026-03-23T12:00:00Z"),
            (Period::Year, "2025-01-15", "2026-12-31T12:00:00Z"),
            (Period::Quarter, "2025-07-02", "2026-09-29T12:00:00Z"),
        ];
        for (period, backdated, now) in cases {
            let now = at(now);
            let logged = Timestamp::from_instant(now - chrono::Duration::hours(1));
            let mut a = activity("a1", backdated, 5.0, P, "2026-01-01");
            a.logged_at = logged.clone();
            let mut b = activity("a2", "2026-01-01", 1.0, P, "2026-01-01");
            b.logged_at = logged;
            let activities = vec![a, b];
            let mut state = ProgressState::default();
            for activity in &activities {
                state.prune(now.date_naive());
                state.add(activity);
            }
            let g = goal(GoalPattern::Recurring, target(3.0, Some(period)));
            let full = compute(&g, &activities, now);
            assert!(
                full.period_history.iter().any(|r| r.value >= 5.0),
                "{period:?}: the backdated activity is in the window: {:?}",
                full.period_history
            );
            assert_eq!(state.progress(&g, now), full, "{period:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_bounded_state_equals_a_full_recomputation(
            entries in entries(),
            start_day in 0i64..800,
            later in 0i64..4,
            value in 1.0f64..200.0,
            start_value in prop_oneof![Just(0.0), -20.0f64..300.0],
        ) {
            let start = at("2024-06-01T07:00:00Z") + chrono::Duration::days(start_day);
            let activities = history(start, &entries);
            let mut state = ProgressState::default();
            for activity in &activities {
                state.add(activity);
                if let Some(logged) = activity.logged_at.instant() {
                    state.prune(logged.date_naive());
                }
            }
            let last = activities
                .last()
                .and_then(|a| a.logged_at.instant())
                .unwrap_or(start);
            let now = last + chrono::Duration::days(later) + chrono::Duration::minutes(7);
            let rebuilt = ProgressState::of(&activities, last.date_naive());
            // As stored (store/state.rs) and read back, it is the same state.
            let stored: ProgressState =
                rmp_serde::from_slice(&rmp_serde::to_vec(&state).expect("encodes")).expect("decodes");
            prop_assert_eq!(&stored, &state);
            for &pattern in GoalPattern::ALL {
                for period in [
                    None,
                    Some(Period::Day),
                    Some(Period::Week),
                    Some(Period::Month),
                    Some(Period::Quarter),
                    Some(Period::Year),
                ] {
                    let mut t = target(value, period);
                    t.start_value = Some(start_value);
                    let g = goal(pattern, t);
                    let full = compute(&g, &activities, now);
                    prop_assert_eq!(&state.progress(&g, now), &full, "{} {:?}", pattern, period);
                    prop_assert_eq!(&rebuilt.progress(&g, now), &full, "rebuilt: {} {:?}", pattern, period);
                }
            }
        }
    }
}
