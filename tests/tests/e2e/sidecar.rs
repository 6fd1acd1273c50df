//! The sidecar process end to end, over gRPC, against the real DynamoDB-compatible server.

use goalstore::item::goal_from_item;
use goalstore::wire;
use goalstore_proto::v1 as pb;
use goalstore_tests::dynamo::{origin_items, origin_user_id};
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use tonic::Code;

/// The code of a call that must fail.
fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(status) => status.code(),
    }
}

/// A sidecar over the store's table, reached through the store's counting proxy.
async fn sidecar_over(t: &DynamoStore) -> anyhow::Result<SidecarProcess> {
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    SidecarProcess::start(&[
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
    ])
    .await
}

#[tokio::test]
async fn batch_get_through_the_sidecar_batches_and_validates() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let template = goal_from_item(&origin_items()?[0])?;
    let items = (0..950)
        .map(|i| {
            let mut goal = template.clone();
            goal.user_id = "u1".into();
            goal.goal_id = format!("g{i:04}");
            goalstore::item::goal_to_item(&goal)
        })
        .collect::<Result<Vec<_>, _>>()?;
    t.seed(items).await?;
    let sidecar = sidecar_over(&t).await?;
    let mut client = sidecar.client().await?;
    t.proxy.reset();

    let ids: Vec<String> = (0..1000).map(|i| format!("g{i:04}")).collect();
    let response = client
        .batch_get_goals(pb::BatchGetGoalsRequest {
            user_id: "u1".into(),
            goal_ids: ids.clone(),
        })
        .await?
        .into_inner();
    let found: Vec<&str> = response.goals.iter().map(|g| g.goal_id.as_str()).collect();
    assert_eq!(
        found,
        ids[..950].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(response.missing_goal_ids, ids[950..].to_vec());
    assert_eq!(t.proxy.count("BatchGetItem"), 10, "{:?}", t.proxy.counts());

    t.proxy.reset();
    let mut bad = ids.clone();
    bad.push("a#b".into());
    let status = client
        .batch_get_goals(pb::BatchGetGoalsRequest {
            user_id: "u1".into(),
            goal_ids: bad,
        })
        .await
        .expect_err("a#b is not an id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("goal_id"), "{}", status.message());
    let status = client
        .get_goal(pb::GetGoalRequest {
            user_id: "u1".into(),
            goal_id: "a#b".into(),
        })
        .await
        .expect_err("a#b is not an id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        t.proxy.total(),
        0,
        "nothing reached DynamoDB: {:?}",
        t.proxy.counts()
    );
    Ok(())
}

#[tokio::test]
async fn origin_goals_come_back_intact_and_created_goals_have_the_layout() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let items = origin_items()?;
    t.seed(items.clone()).await?;
    let sidecar = sidecar_over(&t).await?;
    let mut client = sidecar.client().await?;
    let user = origin_user_id()?;

    for item in items.iter().filter(|i| goal_from_item(i).is_ok()) {
        let expected = goal_from_item(item)?;
        let response = client
            .get_goal(pb::GetGoalRequest {
                user_id: user.clone(),
                goal_id: expected.goal_id.clone(),
            })
            .await?
            .into_inner();
        let goal = response.goal.expect("a goal");
        assert_eq!(wire::goal_of(&goal)?, expected, "{}", expected.title);
    }
    // Spot checks on the wire values themselves.
    let walk = client
        .get_goal(pb::GetGoalRequest {
            user_id: user.clone(),
            goal_id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        })
        .await?
        .into_inner()
        .goal
        .expect("a goal");
    assert_eq!(walk.title, "Walk 10k steps daily");
    assert_eq!(walk.goal_pattern, pb::GoalPattern::Recurring as i32);
    assert_eq!(walk.created_at, "2025-01-05T10:00:00.123456Z");
    assert_eq!(walk.target.as_ref().and_then(|t| t.value), Some(10_000.0));
    assert_eq!(
        walk.target.as_ref().map(|t| t.period),
        Some(pb::Period::Day as i32)
    );
    let schedule = walk.schedule.expect("schedule kept");
    assert_eq!(
        wire::document_of_struct(&schedule)?.to_value()["preferred_times"],
        serde_json::json!(["07:30", "18:00"])
    );
    assert_eq!(
        walk.progress.expect("progress").period_history[0].period,
        "2025-01-05"
    );

    let created = client
        .create_goal(pb::CreateGoalRequest {
            user_id: "u-new".into(),
            title: "Meditate".into(),
            goal_pattern: pb::GoalPattern::Streak as i32,
            target: Some(pb::Target {
                metric: "count".into(),
                value: Some(30.0),
                ..Default::default()
            }),
            metadata: wire::struct_of(&serde_json::json!({"source": "sidecar-test"}).into()),
            ..Default::default()
        })
        .await?
        .into_inner()
        .goal
        .expect("a goal");
    assert_eq!(created.status, pb::GoalStatus::Active as i32);
    let item = t
        .raw_item("USER#u-new", &format!("GOAL#{}", created.goal_id))
        .await?
        .expect("written");
    use aws_sdk_dynamodb::types::AttributeValue as A;
    assert_eq!(item.get("EntityType"), Some(&A::S("Goal".into())));
    assert_eq!(item.get("gsi1_pk"), Some(&A::S("STATUS#active".into())));
    assert_eq!(
        item.get("gsi1_sk"),
        Some(&A::S(created.created_at.replace('Z', "+00:00")))
    );
    assert_eq!(item.get("goal_pattern"), Some(&A::S("streak".into())));
    assert_eq!(item.get("user_id"), Some(&A::S("u-new".into())));
    assert_eq!(item.get("TTL"), None, "only drafts expire");
    assert!(
        matches!(item.get("metadata"), Some(A::M(m)) if m.get("source") == Some(&A::S("sidecar-test".into())))
    );
    Ok(())
}

#[tokio::test]
async fn milestone_progress_through_the_sidecar_sums_activities() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t).await?;
    let mut client = sidecar.client().await?;
    client
        .create_goal(pb::CreateGoalRequest {
            user_id: "writer".into(),
            goal_id: "novel".into(),
            title: "Write a novel".into(),
            goal_pattern: pb::GoalPattern::Milestone as i32,
            target: Some(pb::Target {
                metric: "count".into(),
                value: Some(50_000.0),
                unit: Some("words".into()),
                target_date: Some(goalstore_tests::goals::FAR_AHEAD.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let values = [1200.0, 800.5, 2500.0, 499.5];
    for value in values {
        let logged = client
            .log_activity(pb::LogActivityRequest {
                user_id: "writer".into(),
                goal_id: "novel".into(),
                value,
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(logged.activity.expect("activity").value, value);
    }
    let progress = client
        .get_progress(pb::GetProgressRequest {
            user_id: "writer".into(),
            goal_id: "novel".into(),
        })
        .await?
        .into_inner()
        .progress
        .expect("progress");
    assert_eq!(progress.total_accumulated, Some(values.iter().sum()));
    assert_eq!(progress.remaining_to_goal, Some(50_000.0 - 5_000.0));
    assert!((progress.percent_complete - 10.0).abs() < 1e-9);
    Ok(())
}

#[tokio::test]
async fn store_errors_become_grpc_codes() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t).await?;
    let mut client = sidecar.client().await?;
    let create = pb::CreateGoalRequest {
        user_id: "u1".into(),
        goal_id: "g1".into(),
        title: "t".into(),
        goal_pattern: pb::GoalPattern::Milestone as i32,
        target: Some(pb::Target {
            metric: "count".into(),
            value: Some(10.0),
            target_date: Some(goalstore_tests::goals::FAR_AHEAD.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    client.create_goal(create.clone()).await?;

    // The same request again is a retry and returns the first goal; another request with the
    // same id is a conflict.
    client.create_goal(create.clone()).await?;
    assert_eq!(
        code(
            client
                .create_goal(pb::CreateGoalRequest {
                    title: "another".into(),
                    ..create.clone()
                })
                .await
        ),
        Code::AlreadyExists
    );
    assert_eq!(
        code(
            client
                .get_goal(pb::GetGoalRequest {
                    user_id: "u1".into(),
                    goal_id: "nope".into()
                })
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            client
                .create_goal(pb::CreateGoalRequest {
                    goal_pattern: 42,
                    ..create.clone()
                })
                .await
        ),
        Code::InvalidArgument
    );
    client
        .archive_goal(pb::ArchiveGoalRequest {
            user_id: "u1".into(),
            goal_id: "g1".into(),
        })
        .await?;
    assert_eq!(
        code(
            client
                .log_activity(pb::LogActivityRequest {
                    user_id: "u1".into(),
                    goal_id: "g1".into(),
                    value: 1.0,
                    ..Default::default()
                })
                .await
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(
            client
                .publish_events(pb::PublishEventsRequest {
                    events: vec![pb::Event {
                        user_id: "u1".into(),
                        goal_id: "g#1".into(),
                        kind: Some(pb::event::Kind::GoalUpdated(pb::GoalUpdated {}))
                    }],
                })
                .await
        ),
        Code::InvalidArgument
    );
    let applied = client
        .publish_events(pb::PublishEventsRequest {
            events: vec![pb::Event {
                user_id: "u1".into(),
                goal_id: "g1".into(),
                kind: Some(pb::event::Kind::GoalUpdated(pb::GoalUpdated {})),
            }],
        })
        .await?
        .into_inner()
        .applied;
    assert_eq!(applied, 1);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_table_is_unavailable() -> anyhow::Result<()> {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let sidecar = SidecarProcess::start_unready(&[
        ("GOALSTORE_TABLE", "dynamodb:goals"),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
    ])
    .await?;
    let mut client = sidecar.client().await?;
    let status = client
        .get_goal(pb::GetGoalRequest {
            user_id: "u1".into(),
            goal_id: "g1".into(),
        })
        .await
        .expect_err("no table there");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    Ok(())
}
