//! The trend of a series of values (ORIGIN.md §4.3 "Trend"): the least-squares slope of the last
//! five values against 0..n−1, compared with 1 % of their mean's magnitude.
//!
//! T1 (recurring, limit) passes the period totals; T2 (milestone, target) passes every
//! activity's value ordered by activity_date. This file does not choose the series, nor read the
//! goal's direction: upstream ignores it, so rising values are always "improving", also under a
//! limit.

use crate::model::Trend;

/// How many of the latest values the slope uses.
const WINDOW: usize = 5;

/// The share of |mean| the slope must exceed to be a trend.
const THRESHOLD: f64 = 0.01;

/// `improving`, `declining` or `stable` for `values` (oldest first). Fewer than 2 values are
/// `stable`. The sums run left to right, as Python 3.11's `sum` does.
pub(crate) fn slope_trend(values: &[f64]) -> Trend {
    if values.len() < 2 {
        return Trend::Stable;
    }
    let recent = &values[values.len().saturating_sub(WINDOW)..];
    let n = recent.len() as f64;
    let xs = (0..recent.len()).map(|x| x as f64);
    let mean_x = xs.clone().fold(0.0, |sum, x| sum + x) / n;
    let mean_y = recent.iter().fold(0.0, |sum, y| sum + y) / n;
    let numerator = xs
        .clone()
        .zip(recent)
        .fold(0.0, |sum, (x, y)| sum + (x - mean_x) * (y - mean_y));
    let spread = xs.fold(0.0, |sum, x| sum + (x - mean_x) * (x - mean_x));
    // Python's `or 1`; only a single value has no spread, and it never gets here.
    let denominator = if spread == 0.0 { 1.0 } else { spread };
    let slope = numerator / denominator;
    let threshold = mean_y.abs() * THRESHOLD;
    if slope > threshold {
        Trend::Improving
    } else if slope < -threshold {
        Trend::Declining
    } else {
        Trend::Stable
    }
}
