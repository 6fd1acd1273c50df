//! Loads the population into a table before a strategy runs: each seeded goal with its past
//! activities and the progress they make, in the item layout the store reads.
//!
//! The embedded table is loaded directly (no latency, no accounting); a DynamoDB table gets
//! conditionless PutItems, 32 at a time. Either way, the replayer's record ([`Truth`]) starts
//! from what was loaded.

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use goalstore::item::{activity_to_item, goal_to_item};
use goalstore::table::{Item, Table};
use goalstore::{
    Activity, ActivitySource, ActivityType, CacheConfig, Goal, GoalStatus, GoalStore, Progress,
    StoreConfig, Strategy, Timestamp, Visibility,
};
use indicatif::ProgressBar;
use std::sync::Arc;

use crate::table::Prepared;
use crate::truth::{Ids, Truth};
use crate::workload::{target_for, GoalSpec, Trace};

/// PutItems in flight at once when seeding DynamoDB.
const SEED_CONCURRENCY: usize = 32;

/// The goal item of `spec` as it stands at `now`, and its activities.
pub fn seeded_goal(spec: &GoalSpec, ids: &Ids, now: DateTime<Utc>) -> (Goal, Vec<Activity>) {
    let user_id = ids.user(spec.user);
    let goal_id = ids.goal(spec.index);
    let created = now - Duration::seconds(spec.created_seconds_ago);
    let target = target_for(spec.pattern);
    let activities: Vec<Activity> = spec
        .activities
        .iter()
        .enumerate()
        .map(|(n, seeded)| {
            let at = Timestamp::from_instant(now - Duration::seconds(seeded.seconds_ago));
            Activity {
                activity_id: format!("{goal_id}-a{n}"),
                goal_id: goal_id.clone(),
                user_id: user_id.clone(),
                value: seeded.value,
                unit: target.unit.clone(),
                activity_type: ActivityType::Progress,
                activity_date: at.clone(),
                logged_at: at,
                timezone: Some("Europe/Berlin".into()),
                location: None,
                context: None,
                note: None,
                attachments: None,
                source: ActivitySource::Manual,
                device_info: None,
            }
        })
        .collect();
    // As goalstore itself writes them (no NULL unit, timezone or attachments), or the first
    // progress recompute of each goal would rewrite every one of them.
    let mut activities = activities;
    for activity in &mut activities {
        goalstore::validate::readable_activity(activity, target.unit.as_deref());
    }
    let updated = activities
        .last()
        .map_or_else(|| Timestamp::from_instant(created), |a| a.logged_at.clone());
    let mut goal = Goal {
        goal_id,
        user_id,
        title: spec.title.clone(),
        description: Some(format!("A {} goal of the benchmark", spec.pattern)),
        category: Some(
            ["health", "learning", "finance", "mindfulness"][spec.index as usize % 4].into(),
        ),
        icon: Some("target".into()),
        color: Some("#4A90D9".into()),
        goal_pattern: spec.pattern,
        target,
        schedule: None,
        progress: Progress::default(),
        context: None,
        rewards: None,
        status: if spec.paused {
            GoalStatus::Paused
        } else {
            GoalStatus::Active
        },
        visibility: Visibility::Private,
        created_at: Timestamp::from_instant(created),
        updated_at: updated,
        completed_at: None,
        archived_at: None,
        metadata: None,
        is_journal_linked: false,
    };
    goal.progress = goalstore::progress::compute(&goal, &activities, now);
    (goal, activities)
}

/// Loads every seeded goal of `trace` into `prepared` and records it in `truth`.
pub async fn seed(
    trace: &Trace,
    prepared: &Prepared,
    truth: &Truth,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let seeded: Vec<&GoalSpec> = trace.goals.iter().filter(|g| g.seeded).collect();
    bar.set_length(seeded.len() as u64);
    bar.set_position(0);
    let mut items: Vec<Item> = Vec::new();
    for spec in seeded {
        let (goal, activities) = seeded_goal(spec, truth.ids(), now);
        for activity in &activities {
            items.push(activity_to_item(activity).context("encoding a seeded activity")?);
        }
        items.push(goal_to_item(&goal).context("encoding a seeded goal")?);
        truth.goal(spec.index).progress = goal.progress;
        match &prepared.memory {
            Some(memory) => {
                for item in items.drain(..) {
                    memory.insert(item).context("loading the embedded table")?;
                }
                bar.inc(1);
            }
            None if items.len() >= 256 => {
                put_all(prepared, std::mem::take(&mut items)).await?;
                bar.inc(1);
            }
            None => bar.inc(1),
        }
    }
    put_all(prepared, items).await
}

/// Builds the progress state of every seeded goal (`GoalStore::backfill_progress_state`), as a
/// migration job leaves the table: the embedded table directly (no latency, no accounting), a
/// DynamoDB table with as many goals at once as PutItems when seeding.
pub async fn seed_progress_states(
    trace: &Trace,
    prepared: &Prepared,
    truth: &Truth,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let table: Arc<dyn Table> = match &prepared.memory {
        Some(memory) => memory.clone(),
        None => prepared.table.clone(),
    };
    let store = GoalStore::new(
        table,
        StoreConfig {
            cache: CacheConfig {
                strategy: Strategy::None,
                ..CacheConfig::default()
            },
            ..StoreConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seeded: Vec<&GoalSpec> = trace.goals.iter().filter(|g| g.seeded).collect();
    bar.set_length(seeded.len() as u64);
    bar.set_position(0);
    let ids = truth.ids();
    let mut backfills = futures::stream::iter(seeded)
        .map(|spec| {
            let store = store.clone();
            let (user, goal) = (ids.user(spec.user), ids.goal(spec.index));
            async move { store.backfill_progress_state(&user, &goal).await }
        })
        .buffer_unordered(SEED_CONCURRENCY);
    while let Some(result) = backfills.next().await {
        result.map_err(|e| anyhow::anyhow!("backfilling a progress state: {e}"))?;
        bar.inc(1);
    }
    Ok(())
}

async fn put_all(prepared: &Prepared, items: Vec<Item>) -> anyhow::Result<()> {
    let table = prepared.table.clone();
    let mut puts = futures::stream::iter(items)
        .map(|item| {
            let table = table.clone();
            async move { table.put_item(item, None).await }
        })
        .buffer_unordered(SEED_CONCURRENCY);
    while let Some(result) = puts.next().await {
        result.context("seeding the DynamoDB table")?;
    }
    Ok(())
}
