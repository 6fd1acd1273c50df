//! One suite, two ways in: every check here runs against the in-process `GoalStore` and against
//! `goalstore::Client` talking to the sidecar process, and must give the same results.

use goalstore::{
    ActivityFilter, Client, ClientConfig, Error, Event, EventKind, GoalFilter, GoalPattern,
    GoalService, GoalStatus, GoalUpdate, NewActivity, NewGoal, PageRequest, Target,
};
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;

fn milestone(id: &str) -> NewGoal {
    NewGoal {
        goal_id: Some(id.into()),
        category: Some("writing".into()),
        ..NewGoal::new(
            format!("goal {id}"),
            GoalPattern::Milestone,
            Target {
                metric: "count".into(),
                value: Some(100.0),
                unit: Some("pages".into()),
                target_date: goalstore::Timestamp::parse(goalstore_tests::goals::FAR_AHEAD),
                ..Target::default()
            },
        )
    }
}

/// The service under test, and what keeps it alive.
struct Under {
    service: Box<dyn GoalService>,
    _table: DynamoStore,
    _sidecar: Option<SidecarProcess>,
}

async fn in_process() -> anyhow::Result<Under> {
    let t = DynamoStore::start().await?;
    Ok(Under {
        service: Box::new(t.store.clone()),
        _table: t,
        _sidecar: None,
    })
}

async fn through_client() -> anyhow::Result<Under> {
    let t = DynamoStore::start().await?;
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let sidecar = SidecarProcess::start(&[
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
    ])
    .await?;
    let client = Client::new(ClientConfig {
        endpoint: sidecar.endpoint(),
        ..ClientConfig::default()
    })?;
    Ok(Under {
        service: Box::new(client),
        _table: t,
        _sidecar: Some(sidecar),
    })
}

/// Runs a check against both ways in.
macro_rules! both_ways {
    ($($check:ident),+ $(,)?) => {
        $(
            mod $check {
                #[tokio::test]
                async fn in_process() -> anyhow::Result<()> {
                    let under = super::in_process().await?;
                    super::$check(&*under.service).await
                }

                #[tokio::test]
                async fn through_client() -> anyhow::Result<()> {
                    let under = super::through_client().await?;
                    super::$check(&*under.service).await
                }
            }
        )+
    };
}

both_ways!(
    goals_live_and_are_archived,
    mistakes_are_typed_errors,
    batches_name_the_missing,
    activities_add_up_once,
    listings_filter_and_page,
    events_are_counted,
);

async fn goals_live_and_are_archived(s: &dyn GoalService) -> anyhow::Result<()> {
    let created = s.create_goal("u1", milestone("g1")).await?;
    assert_eq!(created.status, GoalStatus::Active);
    assert_eq!(s.get_goal("u1", "g1").await?, created);
    assert_eq!(
        s.create_goal("u1", milestone("g1")).await?,
        created,
        "a retry"
    );
    let updated = s
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                title: Some("renamed".into()),
                ..GoalUpdate::default()
            },
        )
        .await?;
    assert_eq!(updated.title, "renamed");
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(s.list_active_goals("u1").await?, vec![updated.clone()]);
    let archived = s.archive_goal("u1", "g1").await?;
    assert_eq!(archived.status, GoalStatus::Archived);
    assert_eq!(
        s.archive_goal("u1", "g1").await?,
        archived,
        "archiving twice"
    );
    assert!(s.list_active_goals("u1").await?.is_empty());
    let refused = s
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                title: Some("again".into()),
                ..GoalUpdate::default()
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::Rule(rule)) if rule.code == goalstore::RuleCode::GoalAlreadyCompleted),
        "{refused:?}"
    );
    Ok(())
}

async fn mistakes_are_typed_errors(s: &dyn GoalService) -> anyhow::Result<()> {
    let error = s.get_goal("u1", "a#b").await.expect_err("bad id");
    assert!(
        matches!(&error, Error::InvalidArgument { field, .. } if field == "goal_id"),
        "{error:?}"
    );
    let error = s.get_goal("u 1", "g").await.expect_err("bad id");
    assert!(
        matches!(&error, Error::InvalidArgument { field, .. } if field == "user_id"),
        "{error:?}"
    );
    let error = s.get_goal("u1", "nope").await.expect_err("missing");
    assert_eq!(
        error,
        Error::NotFound {
            kind: "goal",
            id: "nope".into()
        }
    );
    s.create_goal("u1", milestone("g1")).await?;
    let mut other = milestone("g1");
    other.title = "different".into();
    let error = s.create_goal("u1", other).await.expect_err("taken");
    assert_eq!(
        error,
        Error::AlreadyExists {
            kind: "goal",
            id: "g1".into()
        }
    );
    let error = s
        .update_goal(
            "u1",
            "g1",
            GoalUpdate {
                goal_pattern: Some(GoalPattern::Streak),
                ..GoalUpdate::default()
            },
        )
        .await
        .expect_err("patterns never change");
    assert!(
        matches!(&error, Error::InvalidArgument { field, .. } if field == "goal_pattern"),
        "{error:?}"
    );
    let error = s
        .log_activity(
            "u1",
            "g1",
            NewActivity {
                unit: Some("words".into()),
                ..NewActivity::new(1.0)
            },
        )
        .await
        .expect_err("wrong unit");
    assert!(
        matches!(&error, Error::Rule(rule) if rule.code == goalstore::RuleCode::ActivityValidationError),
        "{error:?}"
    );
    Ok(())
}

async fn batches_name_the_missing(s: &dyn GoalService) -> anyhow::Result<()> {
    for i in 0..5 {
        s.create_goal("u1", milestone(&format!("g{i}"))).await?;
    }
    let ids: Vec<String> = ["g0", "x1", "g3", "g0", "x2", "g4"]
        .map(String::from)
        .to_vec();
    let batch = s.get_goals("u1", &ids).await?;
    let found: Vec<&str> = batch.goals.iter().map(|g| g.goal_id.as_str()).collect();
    assert_eq!(
        found,
        ["g0", "g3", "g4"],
        "in order of first mention, once each"
    );
    assert_eq!(batch.missing_goal_ids, ["x1", "x2"]);
    let error = s
        .get_goals("u1", &["ok".into(), "not ok".into()])
        .await
        .expect_err("bad id");
    assert!(
        matches!(&error, Error::InvalidArgument { field, .. } if field == "goal_id"),
        "{error:?}"
    );
    Ok(())
}

async fn activities_add_up_once(s: &dyn GoalService) -> anyhow::Result<()> {
    s.create_goal("u1", milestone("g1")).await?;
    let keyed = NewActivity {
        activity_id: Some("a1".into()),
        note: Some("first".into()),
        ..NewActivity::new(30.0)
    };
    let first = s.log_activity("u1", "g1", keyed.clone()).await?;
    assert_eq!(
        s.log_activity("u1", "g1", keyed.clone()).await?,
        first,
        "a retry"
    );
    let second = s.log_activity("u1", "g1", NewActivity::new(12.5)).await?;
    assert_eq!(second.progress.total_accumulated, Some(42.5));
    assert_eq!(second.progress.remaining_to_goal, Some(57.5));
    assert_eq!(
        s.get_progress("u1", "g1").await?.total_accumulated,
        Some(42.5)
    );
    let error = s
        .log_activity(
            "u1",
            "g1",
            NewActivity {
                value: 1.0,
                ..keyed
            },
        )
        .await
        .expect_err("same id, other request");
    assert_eq!(
        error,
        Error::AlreadyExists {
            kind: "activity",
            id: "a1".into()
        }
    );
    Ok(())
}

async fn listings_filter_and_page(s: &dyn GoalService) -> anyhow::Result<()> {
    for i in 0..5 {
        let mut goal = milestone(&format!("g{i}"));
        if i % 2 == 1 {
            goal.goal_pattern = GoalPattern::Streak;
        }
        s.create_goal("u1", goal).await?;
    }
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
        let result = s.list_goals("u1", &filter, &page).await?;
        seen.extend(result.items.into_iter().map(|g| g.goal_id));
        match result.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(seen, ["g0", "g2", "g4"]);
    for value in [1.0, 2.0, 3.0] {
        s.log_activity("u1", "g0", NewActivity::new(value)).await?;
    }
    let first = s
        .list_activities(
            "u1",
            "g0",
            &ActivityFilter::default(),
            &PageRequest {
                page_size: Some(2),
                page_token: None,
            },
        )
        .await?;
    assert_eq!(
        first.items.iter().map(|a| a.value).collect::<Vec<_>>(),
        [3.0, 2.0],
        "newest first"
    );
    let rest = s
        .list_activities(
            "u1",
            "g0",
            &ActivityFilter::default(),
            &PageRequest {
                page_size: Some(2),
                page_token: first.next_page_token,
            },
        )
        .await?;
    assert_eq!(
        rest.items.iter().map(|a| a.value).collect::<Vec<_>>(),
        [1.0]
    );
    let error = s
        .list_goals(
            "u1",
            &GoalFilter::default(),
            &PageRequest {
                page_size: None,
                page_token: Some("bogus".into()),
            },
        )
        .await
        .expect_err("a token we never gave");
    assert!(
        matches!(&error, Error::InvalidArgument { field, .. } if field == "page_token"),
        "{error:?}"
    );
    Ok(())
}

async fn events_are_counted(s: &dyn GoalService) -> anyhow::Result<()> {
    let event = |kind| Event {
        user_id: "u1".into(),
        goal_id: "g1".into(),
        kind,
    };
    let applied = s
        .apply_events(&[
            event(EventKind::GoalUpdated),
            event(EventKind::ActivityLogged),
        ])
        .await?;
    assert_eq!(applied, 2);
    let error = s
        .apply_events(&[Event {
            user_id: "u1".into(),
            goal_id: "g#1".into(),
            kind: EventKind::GoalCreated,
        }])
        .await
        .expect_err("bad id");
    assert!(
        matches!(&error, Error::InvalidArgument { field, .. } if field == "goal_id"),
        "{error:?}"
    );
    Ok(())
}
