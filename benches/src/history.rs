//! The history probe: what logging one activity and one progress miss cost as a goal's history
//! grows. A daily habit kept for years has tens of thousands of activities; the cost of either
//! call must not grow with them (#16).
//!
//! For each size, a fresh embedded table (the run's latency model) holds one recurring daily goal
//! with that many past activities, loaded directly (no latency, no accounting) as the existing
//! handlers (or a goalstore before #16) left them: with no progress state. A store with the
//! `local` strategy logs one activity (the *first touch*, which builds the state from every
//! activity, once); then a store with a cold cache makes a progress miss, another store with a
//! cold cache logs an activity (what a log costs when neither its goal nor its state is cached),
//! and the first store logs one more (its goal and state cached). Each call is measured alone:
//! wall time, DynamoDB requests, read and write units.
//!
//! It reads no trace and checks nothing: the replayer's stale-read checks cover correctness.

use anyhow::Context as _;
use chrono::Utc;
use goalstore::item::{activity_to_item, goal_to_item};
use goalstore::table::{MemoryTable, MemoryTableOptions, Table as _, TableUsage};
use goalstore::{CacheConfig, GoalPattern, GoalStore, NewActivity, StoreConfig, Strategy};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

use crate::seed::seeded_goal;
use crate::table::usage_delta;
use crate::truth::Ids;
use crate::workload::{GoalSpec, SeedActivity};

/// Seconds between two past activities: 30 000 of them span about 7 years.
const SPACING_SECONDS: i64 = 2 * 3600;

/// What one call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CallCost {
    pub ms: f64,
    pub requests: u64,
    pub read_units: f64,
    pub write_units: f64,
}

/// The calls at one history size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub activities: u32,
    /// The first log after the history was loaded: builds the goal's progress state (once).
    pub first_touch: CallCost,
    pub progress_miss: CallCost,
    /// A log on a cold cache.
    pub log_activity: CallCost,
    /// A log whose goal and progress state are cached.
    pub log_cached: CallCost,
}

fn cost(before: &TableUsage, after: &TableUsage, started: Instant) -> CallCost {
    let delta = usage_delta(before, after);
    CallCost {
        ms: started.elapsed().as_secs_f64() * 1000.0,
        requests: delta.get_item
            + delta.batch_get_item
            + delta.query
            + delta.put_item
            + delta.update_item
            + delta.transact_write_items,
        read_units: delta.read_units,
        write_units: delta.write_units,
    }
}

/// Runs the probe at each of `sizes` over tables made with `options`.
pub async fn probe(
    options: &MemoryTableOptions,
    sizes: &[u32],
) -> anyhow::Result<Vec<HistoryPoint>> {
    let mut points = Vec::with_capacity(sizes.len());
    for &size in sizes {
        points.push(
            probe_one(options, size)
                .await
                .with_context(|| format!("the history probe at {size} activities"))?,
        );
    }
    Ok(points)
}

async fn probe_one(options: &MemoryTableOptions, size: u32) -> anyhow::Result<HistoryPoint> {
    let ids = Ids::new("h");
    let spec = GoalSpec {
        index: 0,
        user: 0,
        pattern: GoalPattern::Recurring,
        title: "a daily habit".into(),
        paused: false,
        seeded: true,
        created_seconds_ago: i64::from(size + 1) * SPACING_SECONDS,
        activities: (0..size)
            .map(|n| SeedActivity {
                seconds_ago: i64::from(size - n) * SPACING_SECONDS,
                value: 10.0 + f64::from(n % 7),
            })
            .collect(),
    };
    let (goal, activities) = seeded_goal(&spec, &ids, Utc::now());
    let table = Arc::new(MemoryTable::new(options.clone()));
    for activity in &activities {
        table.insert(activity_to_item(activity)?)?;
    }
    table.insert(goal_to_item(&goal)?)?;
    let config = StoreConfig {
        cache: CacheConfig {
            strategy: Strategy::Local,
            ..CacheConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = GoalStore::new(table.clone(), config.clone())?;
    let (user, goal_id) = (ids.user(0), ids.goal(0));
    let log = || {
        let mut activity = NewActivity::new(15.0);
        activity.unit = goal.target.unit.clone();
        activity
    };

    let before = table.usage();
    let started = Instant::now();
    store.log_activity(&user, &goal_id, log()).await?;
    let first_touch = cost(&before, &table.usage(), started);

    // Other instances, their caches cold.
    let cold = GoalStore::new(table.clone(), config.clone())?;
    let before = table.usage();
    let started = Instant::now();
    cold.get_progress(&user, &goal_id).await?;
    let progress_miss = cost(&before, &table.usage(), started);

    let cold = GoalStore::new(table.clone(), config)?;
    let before = table.usage();
    let started = Instant::now();
    cold.log_activity(&user, &goal_id, log()).await?;
    let log_activity = cost(&before, &table.usage(), started);

    // The first instance caches the goal and state of its own log, a version behind the cold
    // instance's: its next log is refused and starts again from the table (not measured), and
    // the one after starts from what that one wrote through.
    store.log_activity(&user, &goal_id, log()).await?;
    let before = table.usage();
    let started = Instant::now();
    store.log_activity(&user, &goal_id, log()).await?;
    let log_cached = cost(&before, &table.usage(), started);

    Ok(HistoryPoint {
        activities: size,
        first_touch,
        progress_miss,
        log_activity,
        log_cached,
    })
}
