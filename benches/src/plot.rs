//! The chart of a run (`--plot FILE.png`): four panels of grouped bars — latency percentiles of
//! all operations, p99 by operation, hit ratios by tier and kind, and DynamoDB reads per
//! operation — one colour per strategy or series.
//!
//! Drawn with plotters' bitmap backend; text uses DejaVu Sans embedded in the binary (the
//! `dejavu` crate, through plotters' `ab_glyph` feature), so no system font library is needed.

use anyhow::Context as _;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;

use crate::report::StrategyReport;
use crate::workload::OpKind;

const FONT: &str = "sans-serif";
const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The colour of a strategy, the same in every panel.
fn strategy_color(strategy: &str) -> RGBColor {
    match strategy {
        "none" => RGBColor(127, 127, 127),
        "local" => RGBColor(31, 119, 180),
        "redis" => RGBColor(214, 39, 40),
        "tiered" => RGBColor(44, 160, 44),
        _ => RGBColor(148, 103, 189),
    }
}

/// One series of bars: a value per group (`None`: no bar).
struct Series {
    name: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

fn register_fonts() -> anyhow::Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the embedded DejaVu Sans font does not load"))?;
    plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
        .map_err(|_| anyhow::anyhow!("the embedded DejaVu Sans Bold font does not load"))
}

/// Draws the chart of `reports` into the PNG file `path`.
pub fn draw(reports: &[StrategyReport], path: &Path) -> anyhow::Result<()> {
    register_fonts()?;
    let root = BitMapBackend::new(path, (1600, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "goalstore-bench: cache strategies on the same trace",
        (FONT, 26).into_font().style(FontStyle::Bold),
    )?;
    let panels = root.split_evenly((2, 2));
    let strategies: Vec<String> = reports.iter().map(|r| r.strategy.clone()).collect();

    type Pick = fn(&StrategyReport) -> f64;
    let percentiles: [(&str, Pick); 3] = [
        ("p50", |r| r.latency.p50_ms),
        ("p95", |r| r.latency.p95_ms),
        ("p99", |r| r.latency.p99_ms),
    ];
    let latency: Vec<Series> = percentiles
        .iter()
        .enumerate()
        .map(|(i, (name, value))| Series {
            name: (*name).into(),
            color: SERIES_COLORS[i],
            values: reports.iter().map(|r| Some(value(r))).collect(),
        })
        .collect();
    log_bars(
        &panels[0],
        "Latency, all operations (ms, log scale)",
        &strategies,
        &latency,
    )?;

    let kinds: Vec<OpKind> = OpKind::ALL
        .into_iter()
        .filter(|k| reports.iter().any(|r| r.latency_by_op.contains_key(k)))
        .collect();
    let by_op: Vec<Series> = reports
        .iter()
        .map(|r| Series {
            name: r.strategy.clone(),
            color: strategy_color(&r.strategy),
            values: kinds
                .iter()
                .map(|k| r.latency_by_op.get(k).map(|l| l.p99_ms))
                .collect(),
        })
        .collect();
    let kind_names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    log_bars(
        &panels[1],
        "p99 latency by operation (ms, log scale)",
        &kind_names,
        &by_op,
    )?;

    let mut hits = Vec::new();
    for tier in ["local", "redis"] {
        for kind in ["active_goals", "goal", "progress"] {
            if reports.iter().any(|r| r.hit_ratio(tier, kind).is_some()) {
                hits.push(Series {
                    name: format!("{tier} {kind}"),
                    color: SERIES_COLORS[hits.len() % SERIES_COLORS.len()],
                    values: reports
                        .iter()
                        .map(|r| {
                            r.hit_ratio(tier, kind)
                                .and_then(|h| h.ratio)
                                .map(|v| v * 100.0)
                        })
                        .collect(),
                });
            }
        }
    }
    if let Some(belady) = reports.iter().find_map(|r| r.belady.map(|b| (r, b))) {
        hits.push(Series {
            name: "local, all kinds".into(),
            color: RGBColor(160, 160, 160),
            values: reports
                .iter()
                .map(|r| {
                    (r.strategy == belady.0.strategy).then_some(belady.1.achieved_hit_ratio * 100.0)
                })
                .collect(),
        });
        hits.push(Series {
            name: "local, offline optimum".into(),
            color: RGBColor(0, 0, 0),
            values: reports
                .iter()
                .map(|r| {
                    (r.strategy == belady.0.strategy).then_some(belady.1.optimum_hit_ratio * 100.0)
                })
                .collect(),
        });
    }
    // Headroom above 100% for the legend.
    linear_bars(
        &panels[2],
        "Hit ratio (%)",
        &strategies,
        &hits,
        135.0,
        100.0,
    )?;

    let per_op = |value: f64, r: &StrategyReport| value / (r.ops.max(1) as f64);
    let reads = vec![
        Series {
            name: "read requests / op (store)".into(),
            color: SERIES_COLORS[0],
            values: reports
                .iter()
                .map(|r| Some(per_op(r.store_read_requests as f64, r)))
                .collect(),
        },
        Series {
            name: "for read operations".into(),
            color: SERIES_COLORS[1],
            values: reports
                .iter()
                .map(|r| Some(per_op(r.read_op_read_requests as f64, r)))
                .collect(),
        },
        Series {
            name: "read units / op (store)".into(),
            color: SERIES_COLORS[2],
            values: reports
                .iter()
                .map(|r| Some(per_op(r.store_read_units, r)))
                .collect(),
        },
    ];
    let top = reads
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    linear_bars(
        &panels[3],
        "DynamoDB reads per operation",
        &strategies,
        &reads,
        (top * 1.25).max(0.01),
        f64::MAX,
    )?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn log_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    groups: &[String],
    series: &[Series],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let values = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied());
    let (low, high) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let floor = if low == f64::MAX {
        0.01
    } else {
        log_floor(low)
    };
    // A decade of headroom above the tallest bar for the legend.
    let ceiling = 10f64.powf(high.max(floor * 10.0).log10().ceil() + 1.0);
    bars(
        area,
        title,
        groups,
        series,
        (floor..ceiling).log_scale(),
        floor,
        f64::MAX,
    )
}

/// A decade boundary below `low`, far enough that a bar of height `low` still shows (a local
/// hit's p50 of exactly 0.01 ms would otherwise be a bar of no height). Never below 0.0001.
fn log_floor(low: f64) -> f64 {
    let low = low.max(0.001);
    let decade = 10f64.powf(low.log10().floor());
    if decade > low / 2.0 {
        decade / 10.0
    } else {
        decade
    }
}

fn linear_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    groups: &[String],
    series: &[Series],
    top: f64,
    label_limit: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    bars(
        area,
        title,
        groups,
        series,
        0.0..top * 1.15,
        0.0,
        label_limit,
    )
}

/// Grouped bars: one group per entry of `groups`, one bar per series in each.
fn bars<DB, Y>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    groups: &[String],
    series: &[Series],
    y: Y,
    base: f64,
    label_limit: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let count = groups.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d::<std::ops::Range<f64>, Y>(-0.5..count as f64 - 0.5, y)?;
    let label = |x: &f64| {
        let index = x.round();
        if (x - index).abs() < 1e-6 && index >= 0.0 && (index as usize) < groups.len() {
            groups[index as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(count)
        .x_label_formatter(&label)
        .y_label_formatter(&|v: &f64| number(*v, label_limit))
        .label_style((FONT, 15))
        .draw()?;
    let width = 0.8 / series.len().max(1) as f64;
    for (index, one) in series.iter().enumerate() {
        let color = one.color;
        let rectangles = one
            .values
            .iter()
            .enumerate()
            .filter_map(|(group, value)| value.map(|v| (group, v)))
            .map(move |(group, value)| {
                let left = group as f64 - 0.4 + index as f64 * width;
                Rectangle::new(
                    [(left, base), (left + width * 0.92, value.max(base))],
                    color.filled(),
                )
            });
        chart
            .draw_series(rectangles)?
            .label(one.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// An axis label: up to three decimals, trailing zeros dropped; nothing above `limit`.
fn number(value: f64, limit: f64) -> String {
    if value > limit + 1e-9 {
        return String::new();
    }
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn the_log_axis_starts_far_enough_below_the_lowest_bar() {
        assert!((log_floor(0.01) - 0.001).abs() < 1e-12);
        assert!((log_floor(0.012) - 0.001).abs() < 1e-12);
        assert!((log_floor(0.05) - 0.01).abs() < 1e-12);
        assert!((log_floor(5.8) - 1.0).abs() < 1e-12);
        assert!((log_floor(0.0) - 0.0001).abs() < 1e-12);
    }

    #[test]
    fn draws_a_png_with_the_embedded_font() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("chart.png");
        draw(&[sample("none", 1000), sample("local", 50)], &path)?;
        let bytes = std::fs::read(&path)?;
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        assert!(
            bytes.len() > 10_000,
            "suspiciously small: {} bytes",
            bytes.len()
        );
        assert_eq!(number(12.5, f64::MAX), "12.5");
        assert_eq!(number(0.01, f64::MAX), "0.01");
        assert_eq!(number(120.0, 100.0), "");
        Ok(())
    }
}
