//! Latency percentiles from recorded samples (microseconds), nearest-rank, exact: a run keeps
//! every sample (4 bytes each), so nothing is lost to histogram buckets.

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// The summary of `micros` (sorted here).
    pub fn of(micros: &mut [u32]) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let sum: u64 = micros.iter().map(|us| u64::from(*us)).sum();
        Self {
            count: micros.len() as u64,
            mean_ms: sum as f64 / micros.len() as f64 / 1000.0,
            p50_ms: ms(percentile(micros, 50.0)),
            p95_ms: ms(percentile(micros, 95.0)),
            p99_ms: ms(percentile(micros, 99.0)),
            max_ms: ms(micros[micros.len() - 1]),
        }
    }
}

/// The nearest-rank percentile `p` (0-100] of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let summary = LatencySummary::of(&mut samples);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p95_ms, 95.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        assert!((summary.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(LatencySummary::of(&mut []), LatencySummary::default());
    }
}
