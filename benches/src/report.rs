//! The results of a run: per strategy, every figure; printed side by side as a table, and
//! written as JSON.

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{Cell, CellAlignment, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use crate::keytrace::TraceSummary;
use crate::latency::LatencySummary;
use crate::table::ClassUsage;
use crate::workload::OpKind;

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Where it ran.
    pub machine: Machine,
    /// The flags, as given or defaulted.
    pub settings: BTreeMap<String, String>,
    /// The trace: entries per kind, users touched.
    pub trace_ops: BTreeMap<String, u64>,
    pub trace_users_touched: u64,
    pub seeded_goals: u64,
    pub backend: String,
    pub redis: String,
    /// Strategies skipped and other remarks.
    pub notes: Vec<String>,
    pub strategies: Vec<StrategyReport>,
    /// The history probe: a progress miss and a logged activity as a goal's history grows.
    pub history: Vec<crate::history::HistoryPoint>,
}

/// Where a run ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_gib: Option<f64>,
    pub os: String,
    pub profile: String,
}

impl Machine {
    /// This machine.
    pub fn detect() -> Self {
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some((kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
            });
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            os: std::env::consts::OS.into(),
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
        }
    }
}

/// Hits and misses of one tier for one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HitRatio {
    pub tier: String,
    pub kind: String,
    pub hits: u64,
    pub misses: u64,
    pub ratio: Option<f64>,
}

/// What the cache did, beside lookups.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheSummary {
    pub fills: u64,
    pub fills_refused: u64,
    pub invalidations: u64,
    pub decode_failures: u64,
    pub redis_errors: u64,
    pub degraded_at_end: bool,
    pub local_entries: u64,
    pub local_weight_bytes: u64,
    pub local_purges: u64,
}

/// DynamoDB requests and capacity of the replay (seeding excluded), as the table counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TableSummary {
    pub read_requests: u64,
    pub read_units: f64,
    pub write_requests: u64,
    pub write_units: f64,
    pub get_item: u64,
    pub batch_get_item: u64,
    pub query: u64,
    pub put_item: u64,
    pub update_item: u64,
    pub transact_write_items: u64,
    pub throttled: u64,
}

/// The local tier against the offline optimum on the same key trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BeladyReport {
    pub capacity_bytes: u64,
    pub trace: TraceSummary,
    /// Lookups and hits of the local tier, from the store's statistics.
    pub achieved_lookups: u64,
    pub achieved_hits: u64,
    pub achieved_hit_ratio: f64,
    /// Hits of the offline optimum on the recorded trace.
    pub optimum_hits: u64,
    pub optimum_hit_ratio: f64,
    /// Hit ratio of plain LRU on the same trace and capacity, for reference.
    pub lru_hit_ratio: f64,
    /// achieved_hit_ratio / optimum_hit_ratio.
    pub achieved_over_optimum: f64,
}

/// DynamoDB reads saved against `none`, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reduction {
    /// Read requests of the store (the other writer's excluded).
    pub read_requests_pct: f64,
    /// Read requests made on behalf of read operations (what a cache can save).
    pub read_op_requests_pct: f64,
    /// Estimated read units of the store (the other writer's excluded).
    pub read_units_pct: f64,
}

/// One strategy's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyReport {
    pub strategy: String,
    pub namespace: String,
    /// Operations measured.
    pub ops: u64,
    /// Operations replayed before measuring (to warm the cache).
    pub warmup_ops: u64,
    /// Failed operations, warm-up included.
    pub errors: u64,
    pub wall_seconds: f64,
    pub throughput_ops_per_sec: f64,
    /// Latency of the store's operations (the other writer's entries excluded).
    pub latency: LatencySummary,
    pub latency_by_op: BTreeMap<OpKind, LatencySummary>,
    pub hit_ratios: Vec<HitRatio>,
    pub cache: Option<CacheSummary>,
    pub table: TableSummary,
    /// Table requests by who made them: an operation kind, or `batched` (the batch loader's point
    /// reads, all on behalf of read operations). Units estimated from item sizes.
    pub requests_by: BTreeMap<String, ClassUsage>,
    /// Read requests of the store itself (the other writer's excluded).
    pub store_read_requests: u64,
    /// Estimated read units of the store itself.
    pub store_read_units: f64,
    /// Read requests on behalf of read operations (their own and the batched point reads).
    pub read_op_read_requests: u64,
    pub reduction_vs_none: Option<Reduction>,
    /// Reads that did not reflect an acknowledged write, warm-up included.
    pub stale_reads: u64,
    pub stale_by_op: BTreeMap<OpKind, u64>,
    pub stale_examples: Vec<String>,
    pub error_examples: Vec<String>,
    pub belady: Option<BeladyReport>,
}

impl StrategyReport {
    /// Hit ratio of `tier` for `kind`, if looked up.
    pub fn hit_ratio(&self, tier: &str, kind: &str) -> Option<&HitRatio> {
        self.hit_ratios
            .iter()
            .find(|h| h.tier == tier && h.kind == kind)
    }
}

/// Fills in each strategy's savings against `none` (when `none` ran).
pub fn compare_with_none(reports: &mut [StrategyReport]) {
    let Some(none) = reports.iter().find(|r| r.strategy == "none").cloned() else {
        return;
    };
    let saved = |base: f64, value: f64| {
        if base > 0.0 {
            (1.0 - value / base) * 100.0
        } else {
            0.0
        }
    };
    for report in reports.iter_mut() {
        report.reduction_vs_none = Some(Reduction {
            read_requests_pct: saved(
                none.store_read_requests as f64,
                report.store_read_requests as f64,
            ),
            read_op_requests_pct: saved(
                none.read_op_read_requests as f64,
                report.read_op_read_requests as f64,
            ),
            read_units_pct: saved(none.store_read_units, report.store_read_units),
        });
    }
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn count(value: u64) -> String {
    value.to_string()
}

impl StrategyReport {
    /// Table requests (reads and writes) an operation of `kind` made, on average, over the
    /// measured operations; only requests its own task made (a write's reads go to the table
    /// directly, not through the batch loader, so they are all counted).
    pub fn requests_per_op(&self, kind: OpKind) -> Option<f64> {
        let ops = self.latency_by_op.get(&kind)?.count;
        let usage = self.requests_by.get(&kind.to_string())?;
        (ops > 0).then(|| (usage.read_requests + usage.write_requests) as f64 / ops as f64)
    }
}

/// The side-by-side table of `reports`.
pub fn table(reports: &[StrategyReport]) -> Table {
    let mut table = Table::new();
    table.load_style(ASCII_MARKDOWN);
    let mut header = vec![Cell::new("")];
    header.extend(reports.iter().map(|r| Cell::new(&r.strategy)));
    table.set_header(header);
    let mut row = |name: &str, cell: &dyn Fn(&StrategyReport) -> String| {
        let mut cells = vec![Cell::new(name)];
        cells.extend(
            reports
                .iter()
                .map(|r| Cell::new(cell(r)).set_alignment(CellAlignment::Right)),
        );
        table.add_row(cells);
    };
    row("operations (after warm-up)", &|r| {
        format!("{} ({})", count(r.ops), count(r.warmup_ops))
    });
    row("errors (warm-up included)", &|r| count(r.errors));
    row("wall time (s)", &|r| format!("{:.1}", r.wall_seconds));
    row("throughput (ops/s)", &|r| {
        format!("{:.0}", r.throughput_ops_per_sec)
    });
    row("store ops latency p50 / p95 / p99 / max (ms)", &|r| {
        let l = &r.latency;
        format!(
            "{} / {} / {} / {}",
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms),
            ms(l.max_ms)
        )
    });
    for kind in OpKind::ALL {
        if reports.iter().all(|r| !r.latency_by_op.contains_key(&kind)) {
            continue;
        }
        row(&format!("  {kind} p50 / p95 / p99 / max"), &|r| {
            r.latency_by_op.get(&kind).map_or_else(String::new, |l| {
                format!(
                    "{} / {} / {} / {}",
                    ms(l.p50_ms),
                    ms(l.p95_ms),
                    ms(l.p99_ms),
                    ms(l.max_ms)
                )
            })
        });
    }
    for tier in ["local", "redis"] {
        for kind in ["active_goals", "goal", "progress"] {
            if reports.iter().any(|r| r.hit_ratio(tier, kind).is_some()) {
                row(&format!("hit ratio {tier} {kind}"), &|r| {
                    r.hit_ratio(tier, kind)
                        .map_or_else(String::new, |h| pct(h.ratio))
                });
            }
        }
    }
    row("DynamoDB read requests (table)", &|r| {
        count(r.table.read_requests)
    });
    row("  of the store (other writer excluded)", &|r| {
        count(r.store_read_requests)
    });
    row("  for read operations", &|r| count(r.read_op_read_requests));
    row("DynamoDB read units (table)", &|r| {
        format!("{:.0}", r.table.read_units)
    });
    row("  of the store (estimated)", &|r| {
        format!("{:.0}", r.store_read_units)
    });
    if reports.iter().any(|r| r.reduction_vs_none.is_some()) {
        row("read requests saved vs none", &|r| {
            r.reduction_vs_none
                .map_or_else(String::new, |x| format!("{:.1}%", x.read_requests_pct))
        });
        row("  for read operations", &|r| {
            r.reduction_vs_none
                .map_or_else(String::new, |x| format!("{:.1}%", x.read_op_requests_pct))
        });
        row("read units saved vs none", &|r| {
            r.reduction_vs_none
                .map_or_else(String::new, |x| format!("{:.1}%", x.read_units_pct))
        });
    }
    row("DynamoDB write requests", &|r| {
        count(r.table.write_requests)
    });
    row(
        "requests per write op (log / create / update / archive)",
        &|r| {
            [
                OpKind::LogActivity,
                OpKind::Create,
                OpKind::Update,
                OpKind::Archive,
            ]
            .into_iter()
            .map(|kind| {
                r.requests_per_op(kind)
                    .map_or_else(|| "-".to_owned(), |n| format!("{n:.1}"))
            })
            .collect::<Vec<_>>()
            .join(" / ")
        },
    );
    row("stale reads (warm-up included)", &|r| count(r.stale_reads));
    row("cache fills (refused)", &|r| {
        r.cache.as_ref().map_or_else(String::new, |c| {
            format!("{} ({})", count(c.fills), count(c.fills_refused))
        })
    });
    row("invalidated keys", &|r| {
        r.cache
            .as_ref()
            .map_or_else(String::new, |c| count(c.invalidations))
    });
    row("redis errors", &|r| {
        r.cache
            .as_ref()
            .map_or_else(String::new, |c| count(c.redis_errors))
    });
    if reports.iter().any(|r| r.belady.is_some()) {
        row("local hit ratio (all kinds)", &|r| {
            r.belady
                .map_or_else(String::new, |b| pct(Some(b.achieved_hit_ratio)))
        });
        row("offline optimum (Bélády)", &|r| {
            r.belady
                .map_or_else(String::new, |b| pct(Some(b.optimum_hit_ratio)))
        });
        row("LRU on the same trace (reference)", &|r| {
            r.belady
                .map_or_else(String::new, |b| pct(Some(b.lru_hit_ratio)))
        });
        row("achieved / optimum", &|r| {
            r.belady
                .map_or_else(String::new, |b| format!("{:.3}", b.achieved_over_optimum))
        });
        row("local lookups (key trace accesses)", &|r| {
            r.belady.map_or_else(String::new, |b| {
                format!("{} ({})", b.achieved_lookups, b.trace.accesses)
            })
        });
        row("local capacity / working set (MiB)", &|r| {
            r.belady.map_or_else(String::new, |b| {
                format!(
                    "{:.1} / {:.1}",
                    b.capacity_bytes as f64 / 1048576.0,
                    b.trace.working_set_bytes as f64 / 1048576.0
                )
            })
        });
    }
    table
}

/// Prints the run: a header, the table, examples of stale reads and errors, notes.
pub fn print(report: &RunReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let trace: Vec<String> = report
        .trace_ops
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    writeln!(
        out,
        "goalstore-bench: {} seeded goals, {} users touched; trace: {}",
        report.seeded_goals,
        report.trace_users_touched,
        trace.join(", ")
    )?;
    writeln!(out, "table: {}; {}", report.backend, report.redis)?;
    writeln!(
        out,
        "machine: {} cpus, {} GiB, {} build",
        report.machine.cpus,
        report
            .machine
            .memory_gib
            .map_or_else(|| "?".into(), |g| g.to_string()),
        report.machine.profile
    )?;
    writeln!(out)?;
    writeln!(out, "{}", table(&report.strategies))?;
    for strategy in &report.strategies {
        for example in &strategy.stale_examples {
            writeln!(out, "stale read ({}): {example}", strategy.strategy)?;
        }
        for example in &strategy.error_examples {
            writeln!(out, "error ({}): {example}", strategy.strategy)?;
        }
    }
    if !report.history.is_empty() {
        writeln!(out)?;
        writeln!(out, "history probe (local; one recurring daily goal):")?;
        writeln!(out, "{}", history_table(&report.history))?;
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

/// The history probe as a table: one row per size.
fn history_table(points: &[crate::history::HistoryPoint]) -> Table {
    let mut table = Table::new();
    table.load_style(ASCII_MARKDOWN);
    table.set_header(vec![
        "activities",
        "first touch ms",
        "read units",
        "progress miss ms",
        "requests",
        "read units",
        "log_activity ms",
        "requests",
        "read units",
        "write units",
        "cached log ms",
        "requests",
    ]);
    for point in points {
        let (f, p, l, c) = (
            &point.first_touch,
            &point.progress_miss,
            &point.log_activity,
            &point.log_cached,
        );
        table.add_row(vec![
            Cell::new(point.activities).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", f.ms)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", f.read_units)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", p.ms)).set_alignment(CellAlignment::Right),
            Cell::new(p.requests).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", p.read_units)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", l.ms)).set_alignment(CellAlignment::Right),
            Cell::new(l.requests).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", l.read_units)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", l.write_units)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", c.ms)).set_alignment(CellAlignment::Right),
            Cell::new(c.requests).set_alignment(CellAlignment::Right),
        ]);
    }
    table
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_json(report: &RunReport, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n")?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(strategy: &str, reads: u64) -> StrategyReport {
        StrategyReport {
            strategy: strategy.into(),
            namespace: format!("bench-{strategy}"),
            ops: 1000,
            warmup_ops: 0,
            errors: 0,
            wall_seconds: 1.0,
            throughput_ops_per_sec: 1000.0,
            latency: LatencySummary {
                count: 1000,
                mean_ms: 1.0,
                p50_ms: 0.5,
                p95_ms: 2.0,
                p99_ms: 4.0,
                max_ms: 9.0,
            },
            latency_by_op: BTreeMap::from([(OpKind::ListActive, LatencySummary::default())]),
            hit_ratios: vec![HitRatio {
                tier: "local".into(),
                kind: "goal".into(),
                hits: 9,
                misses: 1,
                ratio: Some(0.9),
            }],
            cache: None,
            table: TableSummary::default(),
            requests_by: BTreeMap::new(),
            store_read_requests: reads,
            store_read_units: reads as f64,
            read_op_read_requests: reads / 2,
            reduction_vs_none: None,
            stale_reads: 0,
            stale_by_op: BTreeMap::new(),
            stale_examples: Vec::new(),
            error_examples: Vec::new(),
            belady: None,
        }
    }

    #[test]
    fn savings_are_against_none() {
        let mut reports = vec![sample("none", 1000), sample("local", 50)];
        compare_with_none(&mut reports);
        let saved = reports[1].reduction_vs_none.expect("compared");
        assert!((saved.read_requests_pct - 95.0).abs() < 1e-9);
        assert!((saved.read_op_requests_pct - 95.0).abs() < 1e-9);
        assert_eq!(
            reports[0].reduction_vs_none.map(|r| r.read_requests_pct),
            Some(0.0)
        );
        let printed = table(&reports).to_string();
        assert!(printed.contains("95.0%"), "{printed}");
        assert!(printed.contains("hit ratio local goal"));
    }
}
