//! The progress state (`store/state.rs`) and one-transaction writes (#16) over the real
//! DynamoDB-compatible server: activities the existing handlers log are counted exactly once,
//! a log reads a bounded number of items however long the history (none at all when its goal
//! and state are cached), a log from a cached state leaves what they logged to the next
//! catch-up and loses none of it, a write over a stale cached goal is refused and retried, and
//! a write keeps the cached active list current.

use crate::cache::retitle;
use aws_sdk_dynamodb::types::AttributeValue;
use goalstore::item::{activity_from_item, goal_from_item};
use goalstore::{
    Activity, CacheConfig, Event, EventKind, GoalPattern, GoalStore, GoalUpdate, NewActivity,
    NewGoal, Progress, StoreConfig, Strategy,
};
use goalstore_tests::dynamo::origin_written;
use goalstore_tests::stores::DynamoStore;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// A milestone goal `id` (target 1 000 000).
fn milestone(id: &str) -> NewGoal {
    NewGoal {
        goal_id: Some(id.into()),
        ..NewGoal::new(
            format!("goal {id}"),
            GoalPattern::Milestone,
            goalstore_tests::goals::target_for(GoalPattern::Milestone, 1e6),
        )
    }
}

fn uncached(t: &DynamoStore) -> anyhow::Result<GoalStore> {
    t.another_store(StoreConfig {
        cache: CacheConfig {
            strategy: Strategy::None,
            ..CacheConfig::default()
        },
        ..StoreConfig::default()
    })
}

fn sort_key(item: &Item) -> &str {
    match item.get("sk") {
        Some(AttributeValue::S(sk)) => sk,
        _ => "",
    }
}

/// `template` (an activity item their code wrote) as another activity of the same goal,
/// logged at `logged_at` with `value`, the way their log handler writes one.
fn their_activity(
    template: &Item,
    id: &str,
    logged_at: chrono::DateTime<chrono::Utc>,
    value: f64,
) -> Item {
    let goal = match template.get("goal_id") {
        Some(AttributeValue::S(goal)) => goal.clone(),
        _ => String::new(),
    };
    let offset_form = logged_at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
    let z_form = logged_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut item = template.clone();
    let mut set = |name: &str, value: AttributeValue| {
        item.insert(name.to_owned(), value);
    };
    set(
        "sk",
        AttributeValue::S(format!("ACTIVITY#{goal}#{offset_form}")),
    );
    set("gsi1_sk", AttributeValue::S(offset_form));
    set("activity_id", AttributeValue::S(id.to_owned()));
    set("logged_at", AttributeValue::S(z_form.clone()));
    set("activity_date", AttributeValue::S(z_form));
    set("value", AttributeValue::N(format!("{value:?}")));
    item
}

/// The progress of `goal_id` computed from every activity in the table, as the definition has
/// it, beside `progress`; both without the projection (it moves with the clock).
async fn recomputed(
    t: &DynamoStore,
    goal_id: &str,
    progress: &Progress,
) -> anyhow::Result<(Progress, Progress)> {
    let items = t.all_items().await?;
    let goal = items
        .iter()
        .find(|i| sort_key(i) == format!("GOAL#{goal_id}"))
        .map(goal_from_item)
        .ok_or_else(|| anyhow::anyhow!("no goal {goal_id}"))??;
    let activities: Vec<Activity> = items
        .iter()
        .filter(|i| sort_key(i).starts_with(&format!("ACTIVITY#{goal_id}#")))
        .filter_map(|i| activity_from_item(i).ok())
        .collect();
    let mut expected = goalstore::progress::compute(&goal, &activities, chrono::Utc::now());
    let mut got = progress.clone();
    expected.projected_completion = None;
    got.projected_completion = None;
    Ok((got, expected))
}

/// A goal `id` of user `u1` as the existing handlers (or a goalstore before the progress state)
/// leave it: `template`'s item under another id, with no state item beside it.
async fn legacy_goal(t: &DynamoStore, template: &str, id: &str) -> anyhow::Result<()> {
    let mut goal = uncached(t)?.get_goal("u1", template).await?;
    goal.goal_id = id.to_owned();
    goal.title = format!("goal {id}");
    goal.progress = Progress::default();
    t.seed(vec![goalstore::item::goal_to_item(&goal)?]).await?;
    assert_eq!(state_count(t, "u1", id).await?, None);
    Ok(())
}

/// Replaces the progress cached for goal `id` of `u1` with the same progress from outside (a
/// progress-calculated event), which carries no state: the next log reads the state item.
async fn forget_cached_state(store: &GoalStore, id: &str) -> anyhow::Result<()> {
    let progress = store.get_progress("u1", id).await?;
    store
        .apply_events(&[Event {
            user_id: "u1".into(),
            goal_id: id.into(),
            kind: EventKind::ProgressCalculated(progress),
        }])
        .await?;
    Ok(())
}

/// The event of an activity their handler logged (as a stream of the table delivers it).
fn their_log(user: &str, goal_id: &str) -> Event {
    Event {
        user_id: user.into(),
        goal_id: goal_id.into(),
        kind: EventKind::ActivityLogged,
    }
}

/// How many activities the goal's state item says it holds.
async fn state_count(t: &DynamoStore, user: &str, goal_id: &str) -> anyhow::Result<Option<u64>> {
    let item = t
        .raw_item(&format!("USER#{user}"), &format!("PROGRESS#{goal_id}"))
        .await?;
    Ok(item.and_then(|item| match item.get("activities") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }))
}

#[tokio::test]
async fn activities_the_existing_handlers_log_are_counted_exactly_once() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let fresh = uncached(&t)?;
    let (user, items) = origin_written()?;
    t.seed(items.clone()).await?;
    let goal = items
        .iter()
        .filter(|i| sort_key(i).starts_with("GOAL#"))
        .map(goal_from_item)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|g| g.goal_pattern == GoalPattern::Milestone)
        .ok_or_else(|| anyhow::anyhow!("the fixture has a milestone goal"))?;
    let theirs: Vec<&Item> = items
        .iter()
        .filter(|i| sort_key(i).starts_with(&format!("ACTIVITY#{}#", goal.goal_id)))
        .collect();
    assert!(
        !theirs.is_empty(),
        "the fixture logged to its milestone goal"
    );
    assert_eq!(state_count(&t, &user, &goal.goal_id).await?, None);

    // First touch: the state is built from their activities, once, with this one.
    let unit = goal.target.unit.clone();
    let log = |value: f64| NewActivity {
        unit: unit.clone(),
        ..NewActivity::new(value)
    };
    let logged = t.store.log_activity(&user, &goal.goal_id, log(2.0)).await?;
    let (got, expected) = recomputed(&t, &goal.goal_id, &logged.progress).await?;
    assert_eq!(got, expected, "the first log counts their activities");
    let held = theirs.len() as u64 + 1;
    assert_eq!(state_count(&t, &user, &goal.goal_id).await?, Some(held));

    // Their handler logs two more: one a second before ours (it landed late), one after.
    let now = chrono::Utc::now();
    t.seed(vec![
        their_activity(
            theirs[0],
            "11111111-1111-4111-8111-111111111111",
            now - chrono::Duration::seconds(1),
            3.25,
        ),
        their_activity(
            theirs[0],
            "22222222-2222-4222-8222-222222222222",
            now + chrono::Duration::milliseconds(5),
            4.5,
        ),
    ])
    .await?;
    let progress = fresh.get_progress(&user, &goal.goal_id).await?;
    let (got, expected) = recomputed(&t, &goal.goal_id, &progress).await?;
    assert_eq!(got, expected, "a read catches up with theirs");
    // Their writes reach this instance's cache as events (a stream of the table): it drops the
    // progress and the state cached beside it, so its next log catches up too.
    t.store
        .apply_events(&[their_log(&user, &goal.goal_id)])
        .await?;

    // Ours again: theirs are counted once, whether or not the read stored its catch-up.
    let logged = t.store.log_activity(&user, &goal.goal_id, log(1.0)).await?;
    let (got, expected) = recomputed(&t, &goal.goal_id, &logged.progress).await?;
    assert_eq!(got, expected, "nothing counted twice");
    assert_eq!(state_count(&t, &user, &goal.goal_id).await?, Some(held + 3));
    let progress = fresh.get_progress(&user, &goal.goal_id).await?;
    assert_eq!(recomputed(&t, &goal.goal_id, &progress).await?.0, expected);
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn a_log_reads_a_bounded_number_of_items_however_long_the_history() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let fresh = uncached(&t)?;
    // 300 activities of a goal logged before the state existed, one a day (their handlers'
    // layout; an activity of another goal is the template).
    t.store.create_goal("u1", milestone("template")).await?;
    let first = t
        .store
        .log_activity("u1", "template", NewActivity::new(1.0))
        .await?;
    legacy_goal(&t, "template", "long").await?;
    let mut template = goalstore::item::activity_to_item(&first.activity)?;
    template.insert("goal_id".into(), AttributeValue::S("long".into()));
    let now = chrono::Utc::now();
    let history: Vec<Item> = (1..=300)
        .map(|day| {
            their_activity(
                &template,
                &format!("00000000-0000-4000-8000-{day:012}"),
                now - chrono::Duration::days(day),
                day as f64,
            )
        })
        .collect();
    t.seed(history).await?;
    assert_eq!(state_count(&t, "u1", "long").await?, None);

    // The first read after them catches up with all 300 (paging), and stores the state.
    let progress = fresh.get_progress("u1", "long").await?;
    assert_eq!(progress.total_accumulated, Some(45_150.0));
    // The next log stores what it knows too; from then on, whatever the history:
    t.store
        .log_activity("u1", "long", NewActivity::new(1.0))
        .await?;
    assert_eq!(state_count(&t, "u1", "long").await?, Some(301));

    // A log whose state is not cached (here: a progress from outside replaced the cached one).
    forget_cached_state(&t.store, "long").await?;
    t.proxy.reset();
    let logged = t
        .store
        .log_activity("u1", "long", NewActivity::new(1.0))
        .await?;
    assert_eq!(logged.progress.total_accumulated, Some(2.0 + 45_150.0));
    let counts = t.proxy.counts();
    assert_eq!(
        (
            t.proxy.count("BatchGetItem"),
            t.proxy.count("Query"),
            t.proxy.count("TransactWriteItems")
        ),
        (1, 1, 1),
        "a log, its goal cached: the state, the newest activities, one write: {counts:?}"
    );
    assert_eq!(t.proxy.total(), 3, "{counts:?}");

    // The log wrote its state through, beside the progress: the next one starts from it.
    t.proxy.reset();
    let logged = t
        .store
        .log_activity("u1", "long", NewActivity::new(1.0))
        .await?;
    assert_eq!(logged.progress.total_accumulated, Some(3.0 + 45_150.0));
    assert_eq!(
        (t.proxy.count("TransactWriteItems"), t.proxy.total()),
        (1, 1),
        "a log, its goal and state cached: one write and nothing else: {:?}",
        t.proxy.counts()
    );
    assert_eq!(state_count(&t, "u1", "long").await?, Some(303));

    t.proxy.reset();
    let progress = fresh.get_progress("u1", "long").await?;
    assert_eq!(progress.total_accumulated, Some(3.0 + 45_150.0));
    assert_eq!(
        (t.proxy.count("BatchGetItem"), t.proxy.count("Query")),
        (1, 1),
        "a progress miss: the goal and the state in one batch, the newest activities: {:?}",
        t.proxy.counts()
    );
    assert_eq!(t.proxy.total(), 2, "{:?}", t.proxy.counts());
    Ok(())
}

#[tokio::test]
async fn a_write_over_a_stale_cached_goal_is_refused_and_retried() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let other = uncached(&t)?;
    t.store.create_goal("u1", milestone("g")).await?;
    assert_eq!(t.store.get_goal("u1", "g").await?.title, "goal g");
    // Another instance renames it; this one's cache still holds the first version.
    other.update_goal("u1", "g", retitle("renamed")).await?;

    t.proxy.reset();
    let logged = t
        .store
        .log_activity("u1", "g", NewActivity::new(40.0))
        .await?;
    assert_eq!(logged.progress.total_accumulated, Some(40.0));
    assert_eq!(
        t.proxy.count("TransactWriteItems"),
        2,
        "the write over the cached version is refused, the one over the table's lands"
    );
    let stored = other.get_goal("u1", "g").await?;
    assert_eq!(stored.title, "renamed", "the rename is not lost");
    assert_eq!(stored.progress.total_accumulated, Some(40.0));
    assert_eq!(
        t.store.get_goal("u1", "g").await?,
        stored,
        "written through"
    );

    // The same for an update: a stale cached version never overwrites a newer one.
    other
        .update_goal("u1", "g", retitle("renamed again"))
        .await?;
    let updated = t
        .store
        .update_goal(
            "u1",
            "g",
            GoalUpdate {
                description: Some("described".into()),
                ..GoalUpdate::default()
            },
        )
        .await?;
    assert_eq!(updated.title, "renamed again");
    assert_eq!(updated.description.as_deref(), Some("described"));
    assert_eq!(updated.progress.total_accumulated, Some(40.0));
    assert_eq!(other.get_goal("u1", "g").await?, updated);
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn writes_keep_the_cached_active_list_current() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let fresh = uncached(&t)?;
    for id in ["a", "b", "c"] {
        t.store.create_goal("u1", milestone(id)).await?;
    }
    assert_eq!(t.store.list_active_goals("u1").await?.len(), 3);
    // Each write patches the cached list: every list after it is a hit, and what the table says.
    let list_hits = |store: &GoalStore| {
        store
            .stats()
            .cache
            .and_then(|c| {
                c.lookups
                    .get(&(
                        goalstore::cache::Tier::Local,
                        goalstore::cache::keys::CacheKind::ActiveGoals,
                    ))
                    .map(|(hits, _)| *hits)
            })
            .unwrap_or_default()
    };
    let before = list_hits(&t.store);
    t.store
        .log_activity("u1", "b", NewActivity::new(10.0))
        .await?;
    let listed = t.store.list_active_goals("u1").await?;
    assert_eq!(listed, fresh.list_active_goals("u1").await?, "after a log");
    assert_eq!(listed[1].progress.total_accumulated, Some(10.0));
    t.store.archive_goal("u1", "a").await?;
    let listed = t.store.list_active_goals("u1").await?;
    assert_eq!(
        listed,
        fresh.list_active_goals("u1").await?,
        "after an archive"
    );
    assert_eq!(listed.len(), 2);
    t.store.update_goal("u1", "c", retitle("renamed")).await?;
    let listed = t.store.list_active_goals("u1").await?;
    assert_eq!(
        listed,
        fresh.list_active_goals("u1").await?,
        "after an update"
    );
    t.store.create_goal("u1", milestone("d")).await?;
    let listed = t.store.list_active_goals("u1").await?;
    assert_eq!(
        listed,
        fresh.list_active_goals("u1").await?,
        "after a create"
    );
    assert_eq!(listed.len(), 3);
    assert_eq!(
        list_hits(&t.store) - before,
        5,
        "every list after a write was a hit, and so was the create's read of it (its rules)"
    );
    Ok(())
}

#[tokio::test]
async fn once_only_goalstore_logs_activities_a_log_is_one_read_and_one_write() -> anyhow::Result<()>
{
    let t = DynamoStore::with_config(StoreConfig {
        others_log_activities: false,
        ..StoreConfig::default()
    })
    .await?;
    t.store.create_goal("u1", milestone("template")).await?;
    let first = t
        .store
        .log_activity("u1", "template", NewActivity::new(1.0))
        .await?;
    // A goal with a history and no state yet (written before the state existed): its first
    // touch still reads every activity.
    legacy_goal(&t, "template", "old").await?;
    let mut template = goalstore::item::activity_to_item(&first.activity)?;
    template.insert("goal_id".into(), AttributeValue::S("old".into()));
    let now = chrono::Utc::now();
    t.seed(
        (1..=20)
            .map(|day| {
                their_activity(
                    &template,
                    &format!("00000000-0000-4000-8000-{day:012}"),
                    now - chrono::Duration::days(day),
                    2.0,
                )
            })
            .collect(),
    )
    .await?;
    let logged = t
        .store
        .log_activity("u1", "old", NewActivity::new(1.0))
        .await?;
    assert_eq!(
        logged.progress.total_accumulated,
        Some(41.0),
        "built from all 20, once"
    );
    assert_eq!(state_count(&t, "u1", "old").await?, Some(21));

    t.proxy.reset();
    let logged = t
        .store
        .log_activity("u1", "old", NewActivity::new(1.0))
        .await?;
    assert_eq!(logged.progress.total_accumulated, Some(42.0));
    assert_eq!(
        (t.proxy.count("TransactWriteItems"), t.proxy.total()),
        (1, 1),
        "the goal and the state from the cache, one write: {:?}",
        t.proxy.counts()
    );

    // Without the state cached (another progress replaced it), the state is one point read,
    // with no query of the newest activities.
    forget_cached_state(&t.store, "old").await?;
    t.proxy.reset();
    let logged = t
        .store
        .log_activity("u1", "old", NewActivity::new(1.0))
        .await?;
    assert_eq!(logged.progress.total_accumulated, Some(43.0));
    assert_eq!(
        (
            t.proxy.count("BatchGetItem"),
            t.proxy.count("TransactWriteItems"),
            t.proxy.total()
        ),
        (1, 1, 2),
        "the state, then one write: {:?}",
        t.proxy.counts()
    );

    // A goal goalstore creates has its (empty) state from the start: its first progress read
    // is the goal and the state in one batch, and nothing is written.
    t.store.create_goal("u1", milestone("new")).await?;
    t.proxy.reset();
    let progress = t.store.get_progress("u1", "new").await?;
    assert_eq!(progress.total_accumulated, Some(0.0));
    assert_eq!(
        (t.proxy.count("BatchGetItem"), t.proxy.total()),
        (1, 1),
        "{:?}",
        t.proxy.counts()
    );
    Ok(())
}

#[tokio::test]
async fn a_log_from_the_cached_state_leaves_theirs_to_the_next_catch_up() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.store.create_goal("u1", milestone("g")).await?;
    let first = t
        .store
        .log_activity("u1", "g", NewActivity::new(1.0))
        .await?;
    // Their handler logs one, and its event has not arrived (or there is no stream).
    let template = goalstore::item::activity_to_item(&first.activity)?;
    t.seed(vec![their_activity(
        &template,
        "33333333-3333-4333-8333-333333333333",
        chrono::Utc::now(),
        4.0,
    )])
    .await?;

    // Two logs start from the state cached beside the progress: theirs is not seen yet, as a
    // cached progress read would not see it.
    for (value, total) in [(2.0, 3.0), (8.0, 11.0)] {
        t.proxy.reset();
        let logged = t
            .store
            .log_activity("u1", "g", NewActivity::new(value))
            .await?;
        assert_eq!(logged.progress.total_accumulated, Some(total));
        assert_eq!(t.proxy.total(), 1, "one write: {:?}", t.proxy.counts());
    }
    assert_eq!(state_count(&t, "u1", "g").await?, Some(3));

    // Its event arrives: the next read catches up from where the state last asked the table,
    // past the two logs since, and counts theirs once.
    t.store.apply_events(&[their_log("u1", "g")]).await?;
    let progress = t.store.get_progress("u1", "g").await?;
    assert_eq!(progress.total_accumulated, Some(15.0));
    let (got, expected) = recomputed(&t, "g", &progress).await?;
    assert_eq!(got, expected);
    let logged = t
        .store
        .log_activity("u1", "g", NewActivity::new(1.0))
        .await?;
    assert_eq!(logged.progress.total_accumulated, Some(16.0));
    assert_eq!(state_count(&t, "u1", "g").await?, Some(5));
    t.assert_origin_readable().await?;
    Ok(())
}
