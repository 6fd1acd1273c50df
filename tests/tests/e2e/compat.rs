//! Drop-in compatibility with the existing goal handlers (ORIGIN.md), both ways, on the real
//! DynamoDB-compatible server:
//! - every item goalstore writes — goals of all five patterns created, logged to, updated and
//!   archived through the sidecar (gRPC), the Lambda handlers (HTTP API 2.0) and the SDK — passes
//!   the origin reader (`goalstore_tests::origin`, their read rules of ORIGIN §1);
//! - a goal an older goalstore wrote with NULLs their models refuse is rewritten readable on its
//!   next write;
//! - items their own code wrote (`tests/fixtures/origin-written.json`) read back through
//!   goalstore with every field, and write back unchanged but for what the write changes.

use super::lambda_contract::{call, Route};
use aws_sdk_dynamodb::types::AttributeValue;
use goalstore::item::{goal_from_item, goal_to_item};
use goalstore::{Document, GoalPattern, GoalUpdate, NewActivity, NewGoal};
use goalstore_proto::v1 as pb;
use goalstore_tests::dynamo::parse_item;
use goalstore_tests::goals::{pb_target_for, target_for, FAR_AHEAD};
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use serde_json::{json, Value};

const PB_PATTERNS: [pb::GoalPattern; 5] = [
    pb::GoalPattern::Recurring,
    pb::GoalPattern::Milestone,
    pb::GoalPattern::Target,
    pb::GoalPattern::Streak,
    pb::GoalPattern::Limit,
];

/// A value an activity of `pattern` may log.
fn value_for(pattern: &str) -> f64 {
    if pattern == "streak" {
        1.0
    } else {
        3.0
    }
}

/// A create body of the HTTP API for a goal of `pattern`.
fn create_body(pattern: &str) -> Value {
    let mut target =
        json!({"metric": "count", "value": 30, "unit": "pages", "direction": "increase"});
    match pattern {
        "recurring" | "limit" => target["period"] = json!("week"),
        "milestone" => target["targetDate"] = json!(FAR_AHEAD),
        "target" => {
            target["targetDate"] = json!(FAR_AHEAD);
            target["startValue"] = json!(0);
        }
        _ => {}
    }
    json!({
        "title": format!("{pattern} over HTTP"),
        "category": "reading",
        "goalPattern": pattern,
        "target": target,
        "context": {"motivation": "compat", "importanceLevel": 5},
    })
}

#[tokio::test]
async fn every_item_goalstore_writes_reads_in_the_existing_handlers() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let sidecar = SidecarProcess::start(&[
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
    ])
    .await?;
    let mut grpc = sidecar.client().await?;

    // The sidecar: all five patterns, two activities each, a retitle; one archived.
    for pattern in PB_PATTERNS {
        let user = "compat-grpc";
        let goal = grpc
            .create_goal(pb::CreateGoalRequest {
                user_id: user.into(),
                title: format!("{} over gRPC", pattern.as_str_name()),
                goal_pattern: pattern as i32,
                target: Some(pb_target_for(pattern, 30.0)),
                ..Default::default()
            })
            .await?
            .into_inner()
            .goal
            .ok_or_else(|| anyhow::anyhow!("no goal"))?;
        let value = if pattern == pb::GoalPattern::Streak {
            1.0
        } else {
            2.0
        };
        for _ in 0..2 {
            grpc.log_activity(pb::LogActivityRequest {
                user_id: user.into(),
                goal_id: goal.goal_id.clone(),
                value,
                ..Default::default()
            })
            .await?;
        }
        grpc.update_goal(pb::UpdateGoalRequest {
            user_id: user.into(),
            goal_id: goal.goal_id.clone(),
            title: Some(format!("{} retitled", pattern.as_str_name())),
            ..Default::default()
        })
        .await?;
        if pattern == pb::GoalPattern::Limit {
            grpc.archive_goal(pb::ArchiveGoalRequest {
                user_id: user.into(),
                goal_id: goal.goal_id.clone(),
            })
            .await?;
        }
    }

    // The Lambda handlers: the same, through the HTTP API.
    for pattern in ["recurring", "milestone", "target", "streak", "limit"] {
        let user = "compat-http";
        let created = call(Route::Create)
            .by(user)
            .json(create_body(pattern))
            .send(&t.store, "create")
            .await?;
        assert_eq!(created.status, 201, "{pattern}: {}", created.body);
        let goal_id = created.body["goalId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for n in 0..2 {
            let logged = call(Route::Log)
                .by(user)
                .goal(&goal_id)
                .json(json!({"value": value_for(pattern), "unit": "pages",
                             "context": {"energyLevel": 6, "mood": "ok"},
                             "location": {"type": "home", "city": "Porto"}}))
                .send(&t.store, &format!("log-{n}"))
                .await?;
            assert_eq!(logged.status, 201, "{pattern}: {}", logged.body);
        }
        let updated = call(Route::Update)
            .by(user)
            .goal(&goal_id)
            .json(json!({"title": format!("{pattern} renamed"), "status": "paused"}))
            .send(&t.store, "update")
            .await?;
        assert_eq!(updated.status, 200, "{pattern}: {}", updated.body);
        if pattern == "streak" {
            let archived = call(Route::Archive)
                .by(user)
                .goal(&goal_id)
                .send(&t.store, "archive")
                .await?;
            assert_eq!(archived.status, 200, "{}", archived.body);
        }
    }

    // The SDK, with documents in camelCase as a caller may send them.
    for pattern in GoalPattern::ALL.iter().copied() {
        let user = "compat-sdk";
        let new = NewGoal {
            context: Some(Document::from(
                json!({"importanceLevel": 2, "obstacles": ["time"]}),
            )),
            schedule: Some(Document::from(
                json!({"frequency": "weekly", "daysOfWeek": [1, 3]}),
            )),
            ..NewGoal::new(
                format!("{pattern} in process"),
                pattern,
                target_for(pattern, 30.0),
            )
        };
        let goal = t.store.create_goal(user, new).await?;
        let value = if pattern == GoalPattern::Streak {
            1.0
        } else {
            4.0
        };
        let activity = NewActivity {
            context: Some(Document::from(
                json!({"weather": {"condition": "sun", "temperature": 20, "humidity": 40}}),
            )),
            device_info: Some(Document::from(json!({"os": "linux"}))),
            ..NewActivity::new(value)
        };
        t.store.log_activity(user, &goal.goal_id, activity).await?;
    }

    let read = t.assert_origin_readable().await?;
    // 15 goals and 25 activities (two each over gRPC and HTTP, one each in process).
    assert!(read >= 40, "{read} items");
    Ok(())
}

#[tokio::test]
async fn a_goal_an_older_goalstore_wrote_is_rewritten_readable_on_its_next_write(
) -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    // What goalstore wrote before: NULL category, unit, direction, target type, metadata,
    // success rate and trend; a context with camelCase keys and no defaults.
    let legacy = parse_item(&json!({
        "pk": {"S": "USER#legacy"}, "sk": {"S": "GOAL#old-1"},
        "EntityType": {"S": "Goal"}, "gsi1_pk": {"S": "STATUS#active"},
        "gsi1_sk": {"S": "2025-01-01T00:00:00.000000+00:00"},
        "goal_id": {"S": "old-1"}, "user_id": {"S": "legacy"}, "title": {"S": "Old"},
        "description": {"NULL": true}, "category": {"NULL": true}, "icon": {"NULL": true},
        "color": {"NULL": true}, "goal_pattern": {"S": "recurring"},
        "target": {"M": {"metric": {"S": "count"}, "value": {"N": "5"}, "unit": {"NULL": true},
                         "period": {"S": "day"}, "target_date": {"NULL": true},
                         "direction": {"NULL": true}, "target_type": {"NULL": true}}},
        "schedule": {"NULL": true},
        "progress": {"M": {"percent_complete": {"N": "0"}, "period_history": {"L": []},
                           "current_streak": {"N": "0"}, "longest_streak": {"N": "0"},
                           "success_rate": {"NULL": true}, "trend": {"NULL": true}}},
        "context": {"M": {"importanceLevel": {"N": "4"}}},
        "rewards": {"NULL": true}, "status": {"S": "active"}, "visibility": {"S": "private"},
        "created_at": {"S": "2025-01-01T00:00:00.000000Z"},
        "updated_at": {"S": "2025-01-01T00:00:00.000000Z"},
        "completed_at": {"NULL": true}, "metadata": {"NULL": true},
        "is_journal_linked": {"BOOL": false}
    }))?;
    // And one of its activities as goalstore wrote them: NULL unit, timezone and attachments.
    let legacy_activity = parse_item(&json!({
        "pk": {"S": "USER#legacy"},
        "sk": {"S": "ACTIVITY#old-1#2025-01-02T00:00:00.000000+00:00"},
        "EntityType": {"S": "GoalActivity"}, "gsi1_pk": {"S": "GOAL#old-1"},
        "gsi1_sk": {"S": "2025-01-02T00:00:00.000000+00:00"},
        "activity_id": {"S": "old-a1"}, "goal_id": {"S": "old-1"}, "user_id": {"S": "legacy"},
        "value": {"N": "2"}, "unit": {"NULL": true}, "activity_type": {"S": "progress"},
        "activity_date": {"S": "2025-01-02T00:00:00.000000Z"},
        "logged_at": {"S": "2025-01-02T00:00:00.000000Z"},
        "timezone": {"NULL": true}, "location": {"NULL": true}, "context": {"NULL": true},
        "note": {"NULL": true}, "attachments": {"NULL": true}, "source": {"S": "manual"},
        "device_info": {"NULL": true}
    }))?;
    t.seed(vec![legacy, legacy_activity]).await?;
    let unreadable = goalstore_tests::origin::table_problems(&t.all_items().await?);
    assert!(
        unreadable
            .iter()
            .any(|p| p.contains("ACTIVITY#old-1") && p.contains("unit")),
        "{unreadable:?}"
    );
    let before = goalstore_tests::origin::goal_problems(
        &t.raw_item("USER#legacy", "GOAL#old-1")
            .await?
            .unwrap_or_default(),
    );
    assert!(
        before.len() >= 5,
        "the legacy item is unreadable to them: {before:?}"
    );

    t.store
        .update_goal(
            "legacy",
            "old-1",
            GoalUpdate {
                description: Some("touched".into()),
                ..GoalUpdate::default()
            },
        )
        .await?;
    // The first log after the upgrade recomputes progress over every activity, and rewrites
    // the old ones it reads in their form.
    t.store
        .log_activity("legacy", "old-1", NewActivity::new(1.0))
        .await?;
    t.assert_origin_readable().await?;
    let goal = t.store.get_goal("legacy", "old-1").await?;
    assert_eq!(
        goal.progress.current_period_value,
        Some(1.0),
        "today's activity counted"
    );
    assert_eq!(goal.category.as_deref(), Some("general"));
    assert_eq!(goal.target.unit.as_deref(), Some("count"));
    assert_eq!(goal.progress.success_rate, Some(0.0));
    let context = goal
        .context
        .as_ref()
        .map(Document::to_value)
        .unwrap_or_default();
    assert_eq!(
        context["importance_level"], 4,
        "the caller's value, now snake_case"
    );
    assert_eq!(context["obstacles"], json!([]), "their default filled in");
    Ok(())
}

/// Equal as their readers see it: numbers by value (`8` is `8.0`), the rest exactly.
fn same(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => {
            x.parse::<f64>().ok() == y.parse::<f64>().ok()
        }
        (AttributeValue::M(x), AttributeValue::M(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (AttributeValue::L(x), AttributeValue::L(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

#[tokio::test]
async fn goals_their_code_wrote_read_back_with_every_field() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let (user, items) = goalstore_tests::dynamo::origin_written()?;
    let user = user.as_str();
    t.seed(items.clone()).await?;

    let mut goals = 0;
    for item in items
        .iter()
        .filter(|i| matches!(i.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with("GOAL#")))
    {
        let expected = goal_from_item(item)?;
        let read = t.store.get_goal(user, &expected.goal_id).await?;
        assert_eq!(read, expected, "read through the store as stored");
        // Every attribute their code wrote comes back in the item goalstore would write.
        let written = goal_to_item(&read)?;
        for (name, value) in item {
            if ["pk", "sk", "EntityType", "gsi1_pk", "gsi1_sk", "TTL"].contains(&name.as_str()) {
                continue;
            }
            let back = written.get(name);
            assert!(
                back.is_some_and(|back| same(back, value)),
                "{}: {name}: {back:?} != {value:?}",
                expected.goal_id
            );
        }
        let progress = t.store.get_progress(user, &expected.goal_id).await?;
        assert!(progress.success_rate.is_some(), "{progress:?}");
        goals += 1;
    }
    assert_eq!(goals, 5, "a goal of each pattern");
    // Logging to each active one keeps every item readable to them.
    for goal in t.store.list_active_goals(user).await? {
        let unit = goal.target.unit.clone();
        let value = if goal.goal_pattern == GoalPattern::Streak {
            1.0
        } else {
            1.5
        };
        t.store
            .log_activity(
                user,
                &goal.goal_id,
                NewActivity {
                    unit,
                    ..NewActivity::new(value)
                },
            )
            .await?;
    }
    t.assert_origin_readable().await?;
    Ok(())
}
