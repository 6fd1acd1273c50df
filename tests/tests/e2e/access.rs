//! Access: one user never reads or changes another's goal, progress or activities through the
//! sidecar, whether the value is cached or not (tiered: local tier and Redis), including two users
//! with the same goal id (whose progress shares one cache key and is told apart by its owner);
//! and nothing secret reaches the sidecar's logs.
//!
//! Proven elsewhere: the bearer token on every RPC and health open
//! (`sidecar_ops::every_rpc_needs_the_bearer_token_and_health_does_not`), the Unix socket's mode
//! 0600 (`sidecar_ops::serves_on_a_unix_socket_with_mode_0600`), loopback-only defaults and
//! redaction of the logged configuration (`goalstore-sidecar` unit tests `defaults_are_safe`,
//! `secrets_are_redacted`), ids refused before any request (`store::bad_ids_are_refused_before_any_request`).

use crate::sidecar_cache::{create_for, sidecar, CacheSetup, Client};
use crate::sidecar_ops::new_goal;
use anyhow::{ensure, Context};
use goalstore_proto::v1 as pb;
use goalstore_tests::ops::{start_sidecar, with_authorization};
use goalstore_tests::servers::RedisServer;
use goalstore_tests::stores::DynamoStore;
use tonic::Code;

const ALICE: &str = "alice";
const BOB: &str = "bob";

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map_or_else(|status| status.code(), |_| Code::Ok)
}

async fn log(c: &mut Client, user: &str, goal: &str, value: f64) -> Result<(), tonic::Status> {
    c.log_activity(pb::LogActivityRequest {
        user_id: user.into(),
        goal_id: goal.into(),
        value,
        ..Default::default()
    })
    .await
    .map(|_| ())
}

/// Everything `user` reads of `goal`: (title, progress total, activity values), or the code.
async fn view(c: &mut Client, user: &str, goal: &str) -> anyhow::Result<String> {
    let got = c
        .get_goal(pb::GetGoalRequest {
            user_id: user.into(),
            goal_id: goal.into(),
        })
        .await;
    let title = match got {
        Ok(r) => r.into_inner().goal.context("a goal")?.title,
        Err(s) => format!("{:?}", s.code()),
    };
    let batch = c
        .batch_get_goals(pb::BatchGetGoalsRequest {
            user_id: user.into(),
            goal_ids: vec![goal.into()],
        })
        .await?
        .into_inner();
    let batch: Vec<String> = batch.goals.iter().map(|g| g.title.clone()).collect();
    let ids_and_titles = |goals: Vec<pb::Goal>| -> Vec<String> {
        goals
            .iter()
            .map(|g| format!("{}:{}", g.goal_id, g.title))
            .collect()
    };
    let active = ids_and_titles(
        c.list_active_goals(pb::ListActiveGoalsRequest {
            user_id: user.into(),
        })
        .await?
        .into_inner()
        .goals,
    );
    let all = ids_and_titles(
        c.list_goals(pb::ListGoalsRequest {
            user_id: user.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .goals,
    );
    let progress = match c
        .get_progress(pb::GetProgressRequest {
            user_id: user.into(),
            goal_id: goal.into(),
        })
        .await
    {
        Ok(r) => format!(
            "{:?}",
            r.into_inner()
                .progress
                .context("progress")?
                .total_accumulated
        ),
        Err(s) => format!("{:?}", s.code()),
    };
    let activities = match c
        .list_activities(pb::ListActivitiesRequest {
            user_id: user.into(),
            goal_id: goal.into(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => format!(
            "{:?}",
            r.into_inner()
                .activities
                .iter()
                .map(|a| (a.user_id.clone(), a.value))
                .collect::<Vec<_>>()
        ),
        Err(s) => format!("{:?}", s.code()),
    };
    Ok(format!(
        "get={title} batch={batch:?} active={active:?} all={all:?} progress={progress} activities={activities}"
    ))
}

#[tokio::test]
async fn no_user_reads_or_changes_another_users_goal_progress_or_activities_cached_or_not(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let cache = CacheSetup::new("tiered", Some(redis.url()), "access");
    let t = DynamoStore::start().await?;
    let one = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    let two = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    let (mut a, mut b) = (one.client().await?, two.client().await?);

    create_for(&mut a, ALICE, "private", "alice's secret goal").await?;
    log(&mut a, ALICE, "private", 5.0).await?;
    // The same goal id for both: progress is cached under the goal id alone.
    create_for(&mut a, ALICE, "shared-id", "alice's").await?;
    log(&mut a, ALICE, "shared-id", 3.0).await?;
    create_for(&mut b, BOB, "shared-id", "bob's").await?;
    log(&mut b, BOB, "shared-id", 40.0).await?;

    let bob_sees_nothing = "get=NotFound batch=[] active=[\"shared-id:bob's\"] \
                            all=[\"shared-id:bob's\"] progress=NotFound activities=[]";
    let alice_private = "get=alice's secret goal batch=[\"alice's secret goal\"] \
                         active=[\"private:alice's secret goal\", \"shared-id:alice's\"] \
                         all=[\"private:alice's secret goal\", \"shared-id:alice's\"] \
                         progress=Some(5.0) activities=[(\"alice\", 5.0)]";
    let alice_shared = "get=alice's batch=[\"alice's\"] \
                        active=[\"private:alice's secret goal\", \"shared-id:alice's\"] \
                        all=[\"private:alice's secret goal\", \"shared-id:alice's\"] \
                        progress=Some(3.0) activities=[(\"alice\", 3.0)]";
    let bob_shared = "get=bob's batch=[\"bob's\"] active=[\"shared-id:bob's\"] \
                      all=[\"shared-id:bob's\"] progress=Some(40.0) activities=[(\"bob\", 40.0)]";
    // Cold for Bob, then warm (Alice has filled every tier on both instances), twice.
    for round in ["cold", "after alice's reads", "warm"] {
        for (name, c) in [("one", &mut a), ("two", &mut b)] {
            let seen = view(c, BOB, "private").await?;
            ensure!(seen == bob_sees_nothing, "{round}, {name}: bob sees {seen}");
            let seen = view(c, BOB, "shared-id").await?;
            ensure!(seen == bob_shared, "{round}, {name}: bob's own {seen}");
            let seen = view(c, ALICE, "shared-id").await?;
            ensure!(seen == alice_shared, "{round}, {name}: alice's {seen}");
            let seen = view(c, ALICE, "private").await?;
            ensure!(seen == alice_private, "{round}, {name}: alice's {seen}");
        }
    }

    // Bob cannot change what is Alice's, and his attempts change nothing.
    let update = b
        .update_goal(pb::UpdateGoalRequest {
            user_id: BOB.into(),
            goal_id: "private".into(),
            title: Some("pwned".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(code(update), Code::NotFound);
    let archive = b
        .archive_goal(pb::ArchiveGoalRequest {
            user_id: BOB.into(),
            goal_id: "private".into(),
        })
        .await;
    assert_eq!(code(archive), Code::NotFound);
    let logged = log(&mut b, BOB, "private", 1_000.0).await;
    assert_eq!(logged.err().map(|s| s.code()), Some(Code::NotFound));
    // Ids that try to escape the partition are refused before anything is read.
    for hostile in [
        "alice#GOAL#private",
        "USER#alice",
        "alice:private",
        "../alice",
    ] {
        let got = b
            .get_goal(pb::GetGoalRequest {
                user_id: hostile.into(),
                goal_id: "private".into(),
            })
            .await;
        assert_eq!(code(got), Code::InvalidArgument, "{hostile}");
    }
    for (name, c) in [("one", &mut a), ("two", &mut b)] {
        let seen = view(c, ALICE, "private").await?;
        ensure!(seen == alice_private, "{name} after bob's attempts: {seen}");
    }
    Ok(())
}

#[tokio::test]
async fn no_secret_reaches_the_logs() -> anyhow::Result<()> {
    const TOKEN: &str = "tok-S3cr3t-4f9a";
    let redis = RedisServer::start().await?;
    // A password Redis does not expect: every Redis call fails, and is logged, with the URL near.
    let redis_url = format!("redis://:pw-S3cr3t-77@127.0.0.1:{}/", redis.port());
    let sidecar = start_sidecar(
        &[
            ("GOALSTORE_AUTH_TOKEN", TOKEN),
            ("GOALSTORE_CACHE", "tiered"),
            ("GOALSTORE_REDIS_URL", redis_url.as_str()),
            ("GOALSTORE_LOG_FORMAT", "json"),
            ("AWS_SECRET_ACCESS_KEY", "aws-S3cr3t-9"),
            ("RUST_LOG", "debug"),
        ],
        true,
    )
    .await?;
    let mut c = sidecar.client().await?;
    let bearer = format!("Bearer {TOKEN}");
    let wrong = "Bearer wrong-S3cr3t-token";
    c.create_goal(with_authorization(new_goal(ALICE, "g1"), Some(&bearer)))
        .await?;
    for _ in 0..3 {
        let get = pb::GetGoalRequest {
            user_id: ALICE.into(),
            goal_id: "g1".into(),
        };
        c.get_goal(with_authorization(get.clone(), Some(&bearer)))
            .await?;
        let refused = c.get_goal(with_authorization(get, Some(wrong))).await;
        assert_eq!(code(refused), Code::Unauthenticated);
    }
    let mistake = c
        .get_goal(with_authorization(
            pb::GetGoalRequest {
                user_id: "bad id".into(),
                goal_id: "g1".into(),
            },
            Some(&bearer),
        ))
        .await;
    assert_eq!(code(mistake), Code::InvalidArgument);
    let logs = sidecar.logs()?;
    ensure!(
        logs.contains("redacted"),
        "the configuration is logged, redacted:\n{logs}"
    );
    ensure!(
        logs.contains("bad id") || logs.contains("invalid_argument"),
        "failed calls are logged:\n{logs}"
    );
    if let Some(line) = logs.lines().find(|line| line.contains("S3cr3t")) {
        anyhow::bail!("a secret in the logs: {line}");
    }
    Ok(())
}
