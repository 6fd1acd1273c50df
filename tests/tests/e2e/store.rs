//! `GoalStore` over the real DynamoDB-compatible server: batching, validation, writes and their
//! rules, listings and progress. Request counts come from the proxy in front of the server.

use goalstore::item::goal_to_item;
use goalstore::{
    ActivityFilter, Error, Goal, GoalFilter, GoalPattern, GoalStatus, GoalUpdate, NewActivity,
    NewGoal, PageRequest, Period, Target, Timestamp,
};
use goalstore_tests::dynamo::{origin_items, origin_user_id};
use goalstore_tests::stores::DynamoStore;

fn target(value: f64) -> Target {
    Target {
        metric: "count".into(),
        value: Some(value),
        ..Target::default()
    }
}

fn new_goal(id: &str, pattern: GoalPattern) -> NewGoal {
    NewGoal {
        goal_id: Some(id.into()),
        ..NewGoal::new(
            format!("goal {id}"),
            pattern,
            goalstore_tests::goals::target_for(pattern, 100.0),
        )
    }
}

/// `count` goal items of `user`, created directly in the table.
pub(crate) fn goal_items(user: &str, count: usize) -> anyhow::Result<Vec<goalstore::table::Item>> {
    let template = origin_items()?
        .into_iter()
        .find(|item| goalstore::item::goal_from_item(item).is_ok())
        .expect("the fixture has goals");
    let mut goal: Goal = goalstore::item::goal_from_item(&template)?;
    goal.user_id = user.into();
    (0..count)
        .map(|i| {
            goal.goal_id = format!("g{i:04}");
            Ok(goal_to_item(&goal)?)
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_ids_make_ten_batch_requests() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.seed(goal_items("u1", 900)?).await?;
    // 900 that exist and 100 that do not.
    let ids: Vec<String> = (0..1000).map(|i| format!("g{i:04}")).collect();
    let batch = t.store.get_goals("u1", &ids).await?;
    assert_eq!(batch.goals.len(), 900);
    assert_eq!(batch.missing_goal_ids, ids[900..].to_vec());
    assert!(
        batch.goals.iter().zip(&ids).all(|(g, id)| &g.goal_id == id),
        "request order"
    );
    assert_eq!(t.proxy.count("BatchGetItem"), 10, "{:?}", t.proxy.counts());
    assert_eq!(t.proxy.total(), 10);
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_point_reads_share_batches() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.seed(goal_items("u1", 1000)?).await?;
    let reads = (0..1000).map(|i| {
        let store = t.store.clone();
        tokio::spawn(async move { store.get_goal("u1", &format!("g{i:04}")).await })
    });
    let results = futures::future::join_all(reads).await;
    for result in results {
        result??;
    }
    let requests = t.proxy.count("BatchGetItem");
    assert!(
        requests <= 12,
        "1000 concurrent reads took {requests} BatchGetItem requests"
    );
    assert_eq!(t.proxy.total(), requests);
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn bad_ids_are_refused_before_any_request() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let long = "x".repeat(129);
    for (user, goal, field) in [
        ("u1", "a#b", "goal_id"),
        ("u1#GOAL", "g1", "user_id"),
        ("", "g1", "user_id"),
        ("u1", long.as_str(), "goal_id"),
        ("u1", "../g", "goal_id"),
    ] {
        let error = t.store.get_goal(user, goal).await.expect_err("invalid");
        assert!(
            error.invalid_field() == Some(field),
            "{user}/{goal}: {error}"
        );
    }
    let ids = vec!["good".to_owned(), "bad id".to_owned()];
    assert!(matches!(
        t.store.get_goals("u1", &ids).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        t.store
            .create_goal("u1", new_goal("a#b", GoalPattern::Milestone))
            .await,
        Err(e) if e.invalid_field() == Some("goal_id")
    ));
    assert_eq!(t.proxy.total(), 0, "{:?}", t.proxy.counts());
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn users_never_reach_each_others_goals() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.store
        .create_goal("alice", new_goal("shared-id", GoalPattern::Milestone))
        .await?;
    assert!(matches!(
        t.store.get_goal("bob", "shared-id").await,
        Err(Error::NotFound { .. })
    ));
    assert!(t.store.list_active_goals("bob").await?.is_empty());
    let batch = t.store.get_goals("bob", &["shared-id".to_owned()]).await?;
    assert!(batch.goals.is_empty());
    // Bob may have a goal with the same id; it is a different goal.
    t.store
        .create_goal("bob", new_goal("shared-id", GoalPattern::Streak))
        .await?;
    assert_eq!(
        t.store.get_goal("alice", "shared-id").await?.goal_pattern,
        GoalPattern::Milestone
    );
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn creating_twice_is_already_exists_and_changes_nothing() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let first = t
        .store
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    assert_eq!(first.status, GoalStatus::Active, "active by default");
    let mut again = new_goal("g1", GoalPattern::Streak);
    again.title = "another".into();
    assert!(matches!(
        t.store.create_goal("u1", again).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(t.store.get_goal("u1", "g1").await?, first);
    for (new, field) in [
        (
            NewGoal {
                title: " ".into(),
                ..new_goal("g2", GoalPattern::Milestone)
            },
            "title",
        ),
        (
            NewGoal {
                target: Target::default(),
                ..new_goal("g2", GoalPattern::Milestone)
            },
            "target.metric",
        ),
        (
            NewGoal {
                target: target(f64::NAN),
                ..new_goal("g2", GoalPattern::Milestone)
            },
            "target.value",
        ),
        (
            NewGoal {
                status: Some(GoalStatus::Archived),
                ..new_goal("g2", GoalPattern::Milestone)
            },
            "status",
        ),
    ] {
        let error = t.store.create_goal("u1", new).await.expect_err("invalid");
        assert!(error.invalid_field() == Some(field), "{error}");
    }
    assert!(matches!(
        t.store.get_goal("u1", "g2").await,
        Err(Error::NotFound { .. })
    ));
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn updates_follow_the_rules() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let goal = t
        .store
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    let updated = t
        .store
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                title: Some("renamed".into()),
                status: Some(GoalStatus::Paused),
                goal_pattern: Some(GoalPattern::Milestone),
                ..GoalUpdate::default()
            },
        )
        .await?;
    assert_eq!(updated.title, "renamed");
    assert_eq!(updated.status, GoalStatus::Paused);
    assert_eq!(updated.description, goal.description, "unset fields stay");
    assert!(updated.updated_at > goal.updated_at);
    assert_eq!(t.store.get_goal("u1", "g1").await?, updated);

    let refused = t
        .store
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                goal_pattern: Some(GoalPattern::Streak),
                ..GoalUpdate::default()
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidArgument { field, .. }) if field == "goal_pattern"),
        "{refused:?}"
    );

    let archived = t.store.archive_goal("u1", "g1").await?;
    assert_eq!(archived.status, GoalStatus::Archived);
    assert!(archived.archived_at.is_some());
    let again = t.store.archive_goal("u1", "g1").await?;
    assert_eq!(again, archived, "archiving twice changes nothing");
    let refused = t
        .store
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                title: Some("x".into()),
                ..GoalUpdate::default()
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::Rule(rule)) if rule.code == goalstore::RuleCode::GoalAlreadyCompleted),
        "{refused:?}"
    );
    assert_eq!(t.store.get_goal("u1", "g1").await?, archived);
    assert!(matches!(
        t.store.archive_goal("u1", "nope").await,
        Err(Error::NotFound { .. })
    ));
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn activities_update_progress() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.store
        .create_goal("u1", new_goal("words", GoalPattern::Milestone))
        .await?;
    let mut last = None;
    for value in [10.0, 25.5, 4.5] {
        last = Some(
            t.store
                .log_activity("u1", "words", NewActivity::new(value))
                .await?,
        );
    }
    let logged = last.expect("logged");
    assert_eq!(logged.progress.total_accumulated, Some(40.0));
    assert_eq!(logged.progress.remaining_to_goal, Some(60.0));
    assert_eq!(
        t.store.get_progress("u1", "words").await?.total_accumulated,
        Some(40.0)
    );
    assert_eq!(
        t.store
            .get_goal("u1", "words")
            .await?
            .progress
            .total_accumulated,
        Some(40.0),
        "stored on the goal"
    );

    let refused = t
        .store
        .log_activity("u1", "words", NewActivity::new(-1.0))
        .await;
    // A milestone's progress is positive: a business rule (422 over HTTP), not a malformed field.
    assert!(
        matches!(&refused, Err(Error::Rule(rule)) if rule.code == goalstore::RuleCode::ActivityValidationError),
        "{refused:?}"
    );
    let refused = t
        .store
        .log_activity(
            "u1",
            "words",
            NewActivity {
                activity_date: Timestamp::parse("2999-01-01T00:00:00Z"),
                ..NewActivity::new(1.0)
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidArgument { field, .. }) if field == "activity_date"),
        "{refused:?}"
    );
    t.store.archive_goal("u1", "words").await?;
    let refused = t
        .store
        .log_activity("u1", "words", NewActivity::new(1.0))
        .await;
    assert!(
        matches!(&refused, Err(Error::Rule(rule)) if rule.code == goalstore::RuleCode::ActivityValidationError),
        "{refused:?}"
    );
    assert!(matches!(
        t.store
            .log_activity("u1", "missing", NewActivity::new(1.0))
            .await,
        Err(Error::NotFound { .. })
    ));
    let all = t
        .store
        .list_activities(
            "u1",
            "words",
            &ActivityFilter::default(),
            &PageRequest::default(),
        )
        .await?;
    assert_eq!(all.items.len(), 3, "refused activities wrote nothing");
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn target_goals_track_the_latest_value() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let weight = Target {
        metric: "weight".into(),
        value: Some(75.0),
        start_value: Some(85.0),
        unit: Some("kg".into()),
        direction: Some(goalstore::Direction::Decrease),
        target_date: Timestamp::parse(goalstore_tests::goals::FAR_AHEAD),
        ..Target::default()
    };
    t.store
        .create_goal(
            "u1",
            NewGoal {
                goal_id: Some("w".into()),
                ..NewGoal::new("weight", GoalPattern::Target, weight)
            },
        )
        .await?;
    t.store
        .log_activity("u1", "w", NewActivity::new(82.0))
        .await?;
    let logged = t
        .store
        .log_activity("u1", "w", NewActivity::new(80.0))
        .await?;
    assert_eq!(logged.progress.percent_complete, 50.0);
    // Like upstream, logging never writes target.current_value (ORIGIN.md §1.3.1): it stays as
    // created.
    assert_eq!(
        t.store.get_goal("u1", "w").await?.target.current_value,
        None
    );
    let wrong_unit = NewActivity {
        unit: Some("lb".into()),
        ..NewActivity::new(170.0)
    };
    // A unit other than the target's is their business rule (422 over HTTP).
    assert!(matches!(
        t.store.log_activity("u1", "w", wrong_unit).await,
        Err(Error::Rule(rule)) if rule.code == goalstore::RuleCode::ActivityValidationError
    ));
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn listings_filter_and_page() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    for i in 0..7 {
        let pattern = if i % 2 == 0 {
            GoalPattern::Milestone
        } else {
            GoalPattern::Streak
        };
        t.store
            .create_goal("u1", new_goal(&format!("g{i}"), pattern))
            .await?;
    }
    t.store.archive_goal("u1", "g2").await?;
    t.store
        .update_goal(
            "u1",
            "g4",
            GoalUpdate {
                category: Some("health".into()),
                ..GoalUpdate::default()
            },
        )
        .await?;

    let active: Vec<String> = t
        .store
        .list_active_goals("u1")
        .await?
        .into_iter()
        .map(|g| g.goal_id)
        .collect();
    assert_eq!(active, ["g0", "g1", "g3", "g4", "g5", "g6"]);

    let filter = GoalFilter {
        goal_pattern: Some(GoalPattern::Milestone),
        ..GoalFilter::default()
    };
    let mut page = PageRequest {
        page_size: Some(2),
        page_token: None,
    };
    let mut seen = Vec::new();
    loop {
        let result = t.store.list_goals("u1", &filter, &page).await?;
        assert!(result.items.len() <= 2);
        seen.extend(result.items.into_iter().map(|g| g.goal_id));
        match result.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(seen, ["g0", "g2", "g4", "g6"]);

    let health = GoalFilter {
        category: Some("health".into()),
        ..GoalFilter::default()
    };
    let result = t
        .store
        .list_goals("u1", &health, &PageRequest::default())
        .await?;
    assert_eq!(result.items.len(), 1);
    assert_eq!(result.next_page_token, None);
    let archived = GoalFilter {
        status: Some(GoalStatus::Archived),
        ..GoalFilter::default()
    };
    assert_eq!(
        t.store
            .list_goals("u1", &archived, &PageRequest::default())
            .await?
            .items[0]
            .goal_id,
        "g2"
    );

    for token in ["not base64!", "QUNUSVZJVFkjeA"] {
        let bad = PageRequest {
            page_size: None,
            page_token: Some(token.into()),
        };
        assert!(matches!(
            t.store.list_goals("u1", &GoalFilter::default(), &bad).await,
            Err(e) if e.invalid_field() == Some("page_token")
        ));
    }
    let too_big = PageRequest {
        page_size: Some(5000),
        page_token: None,
    };
    assert!(matches!(
        t.store
            .list_goals("u1", &GoalFilter::default(), &too_big)
            .await,
        Err(e) if e.invalid_field() == Some("page_size")
    ));
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn activities_list_by_range_newest_first() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.seed(origin_items()?).await?;
    let user = origin_user_id()?;
    let goal = "c0ffee00-2222-4333-8444-555566667777";
    let only_first_day = ActivityFilter {
        from: Timestamp::parse("2025-01-05T00:00:00Z"),
        to: Timestamp::parse("2025-01-05T23:59:59+00:00"),
    };
    let page = t
        .store
        .list_activities(&user, goal, &only_first_day, &PageRequest::default())
        .await?;
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].logged_at.as_str(),
        "2025-01-05T11:00:00.123456Z"
    );

    let mut request = PageRequest {
        page_size: Some(1),
        page_token: None,
    };
    let first = t
        .store
        .list_activities(&user, goal, &ActivityFilter::default(), &request)
        .await?;
    assert_eq!(
        first.items[0].logged_at.as_str(),
        "2025-01-06T10:00:00.123456Z"
    );
    request.page_token = first.next_page_token;
    let second = t
        .store
        .list_activities(&user, goal, &ActivityFilter::default(), &request)
        .await?;
    assert_eq!(
        second.items[0].logged_at.as_str(),
        "2025-01-05T11:00:00.123456Z"
    );
    // A token from another goal's listing is refused.
    let other = t
        .store
        .list_activities(
            &user,
            "0a1b2c3d-0000-4000-8000-00000000abcd",
            &ActivityFilter::default(),
            &request,
        )
        .await;
    assert!(
        matches!(&other, Err(Error::InvalidArgument { field, .. }) if field == "page_token"),
        "{other:?}"
    );
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn recurring_progress_counts_the_current_period() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let daily = Target {
        period: Some(Period::Day),
        unit: Some("steps".into()),
        ..target(10_000.0)
    };
    t.store
        .create_goal(
            "u1",
            NewGoal {
                goal_id: Some("steps".into()),
                ..NewGoal::new("steps", GoalPattern::Recurring, daily)
            },
        )
        .await?;
    t.store
        .log_activity("u1", "steps", NewActivity::new(4_000.0))
        .await?;
    let logged = t
        .store
        .log_activity("u1", "steps", NewActivity::new(2_000.0))
        .await?;
    assert_eq!(logged.progress.current_period_value, Some(6_000.0));
    // percent_complete is the success rate over the 31 daily buckets (ORIGIN.md §4.3): today's
    // 6 000 < 10 000 and the other 30 days are empty, so 0 of 31 are achieved.
    assert_eq!(logged.progress.percent_complete, 0.0);
    assert_eq!(logged.progress.success_rate, Some(0.0));
    assert_eq!(logged.progress.period_history.len(), 31);
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn repeated_creates_with_an_id_return_the_first_goal() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let first = t
        .store
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    let again = t
        .store
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    assert_eq!(again, first, "a retry returns the first result");
    let mut other = new_goal("g1", GoalPattern::Milestone);
    other.title = "something else".into();
    assert!(matches!(
        t.store.create_goal("u1", other).await,
        Err(Error::AlreadyExists { .. })
    ));
    let listed = t
        .store
        .list_goals("u1", &GoalFilter::default(), &PageRequest::default())
        .await?;
    assert_eq!(
        listed.items.len(),
        1,
        "one goal, and the marker is not listed"
    );
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn repeated_activities_with_an_id_write_once() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    t.store
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    let activity = NewActivity {
        activity_id: Some("a-1".into()),
        ..NewActivity::new(12.0)
    };
    let first = t.store.log_activity("u1", "g1", activity.clone()).await?;
    let goal_after_first = t.store.get_goal("u1", "g1").await?;
    t.proxy.reset();
    let again = t.store.log_activity("u1", "g1", activity.clone()).await?;
    assert_eq!(again, first, "a retry returns the first result");
    assert_eq!(
        t.proxy.count("PutItem") + t.proxy.count("TransactWriteItems"),
        0,
        "{:?}",
        t.proxy.counts()
    );
    assert_eq!(
        t.store.get_goal("u1", "g1").await?.updated_at,
        goal_after_first.updated_at,
        "one progress update"
    );
    let listed = t
        .store
        .list_activities(
            "u1",
            "g1",
            &ActivityFilter::default(),
            &PageRequest::default(),
        )
        .await?;
    assert_eq!(listed.items.len(), 1, "one activity item");
    assert_eq!(
        t.store.get_progress("u1", "g1").await?.total_accumulated,
        Some(12.0)
    );
    let different = NewActivity {
        value: 5.0,
        ..activity
    };
    assert!(matches!(
        t.store.log_activity("u1", "g1", different).await,
        Err(Error::AlreadyExists {
            kind: "activity",
            ..
        })
    ));
    // Whatever the test left in the table, the existing handlers read.
    t.assert_origin_readable().await?;
    Ok(())
}

/// #15 finding 6: a keyed create whose first attempt landed but was cancelled before it
/// invalidated (here: made by an instance without a cache, which invalidates nothing) used to
/// return the first result on retry and leave the cached "missing" marker in place.
#[tokio::test]
async fn a_repeated_create_invalidates_what_its_first_attempt_may_not_have() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    assert!(matches!(
        t.store.get_goal("u1", "g1").await,
        Err(Error::NotFound { .. })
    ));
    let uncached = t.another_store(goalstore::StoreConfig {
        cache: goalstore::CacheConfig {
            strategy: goalstore::Strategy::None,
            ..goalstore::CacheConfig::default()
        },
        ..goalstore::StoreConfig::default()
    })?;
    let first = uncached
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    let again = t
        .store
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    assert_eq!(again, first, "the first result");
    assert_eq!(
        t.store.get_goal("u1", "g1").await?,
        first,
        "the cached missing marker is gone"
    );
    t.assert_origin_readable().await?;
    Ok(())
}

/// #15 finding 5: a progress fill computed from the goal in the local tier. Here the other
/// instance's target change has not reached this instance's local goal entry yet (it is an
/// instance without a cache: nothing is invalidated here), and this instance's progress is not
/// cached: the fill used to compute 40 of the old target 100 (40%) and cache that for an hour.
#[tokio::test]
async fn a_progress_fill_reads_the_goal_at_the_source_not_through_the_goal_cache(
) -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let other = t.another_store(goalstore::StoreConfig {
        cache: goalstore::CacheConfig {
            strategy: goalstore::Strategy::None,
            ..goalstore::CacheConfig::default()
        },
        ..goalstore::StoreConfig::default()
    })?;
    other
        .create_goal("u1", new_goal("g1", GoalPattern::Milestone))
        .await?;
    other
        .log_activity("u1", "g1", NewActivity::new(40.0))
        .await?;
    // This instance caches the goal (target 100)...
    let cached = t.store.get_goal("u1", "g1").await?;
    assert_eq!(cached.target.value, Some(100.0));
    // ...and the other doubles the target.
    other
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                target: Some(goalstore_tests::goals::target_for(
                    GoalPattern::Milestone,
                    200.0,
                )),
                ..GoalUpdate::default()
            },
        )
        .await?;
    let progress = t.store.get_progress("u1", "g1").await?;
    assert_eq!(
        progress.remaining_to_goal,
        Some(160.0),
        "progress computed from the goal as the table has it: {progress:?}"
    );
    assert_eq!(progress.percent_complete, 20.0);
    t.assert_origin_readable().await?;
    Ok(())
}
