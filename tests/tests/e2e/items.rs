//! Items in the existing handlers' format read back losslessly, and items goalstore writes have
//! the documented layout.

use aws_sdk_dynamodb::types::AttributeValue;
use goalstore::item::{activity_from_item, goal_from_item, goal_to_item};
use goalstore::table::Item;
use goalstore::{
    ActivityFilter, GoalPattern, GoalStatus, GoalUpdate, NewActivity, NewGoal, PageRequest, Target,
};
use goalstore_tests::dynamo::{origin_items, origin_user_id};
use goalstore_tests::stores::DynamoStore;

/// Numbers compare by value ("75.0" is 75), NULL equals absent; everything else exactly.
fn same_value(a: Option<&AttributeValue>, b: Option<&AttributeValue>) -> bool {
    match (a, b) {
        (None | Some(AttributeValue::Null(_)), None | Some(AttributeValue::Null(_))) => true,
        (Some(AttributeValue::N(x)), Some(AttributeValue::N(y))) => {
            x.parse::<f64>().ok() == y.parse::<f64>().ok()
        }
        (Some(AttributeValue::M(x)), Some(AttributeValue::M(y))) => x
            .keys()
            .chain(y.keys())
            .all(|k| same_value(x.get(k), y.get(k))),
        (Some(AttributeValue::L(x)), Some(AttributeValue::L(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(Some(a), Some(b)))
        }
        (a, b) => a == b,
    }
}

fn differences(original: &Item, written: &Item) -> Vec<String> {
    original
        .keys()
        .chain(written.keys())
        .filter(|k| !same_value(original.get(*k), written.get(*k)))
        .map(|k| format!("{k}: {:?} != {:?}", original.get(k), written.get(k)))
        .collect()
}

fn is_goal(item: &Item) -> bool {
    item.get("EntityType") == Some(&AttributeValue::S("Goal".into()))
}

#[test]
fn origin_goals_decode_and_encode_back_to_the_same_item() -> anyhow::Result<()> {
    let goals: Vec<Item> = origin_items()?.into_iter().filter(is_goal).collect();
    assert_eq!(goals.len(), 6, "the fixture has a goal of every pattern");
    for original in goals {
        let goal = goal_from_item(&original)?;
        let written = goal_to_item(&goal)?;
        assert_eq!(
            differences(&original, &written),
            Vec::<String>::new(),
            "{}",
            goal.title
        );
    }
    Ok(())
}

#[test]
fn origin_activities_decode() -> anyhow::Result<()> {
    let activities: Vec<_> = origin_items()?
        .into_iter()
        .filter(|item| !is_goal(item))
        .map(|item| activity_from_item(&item))
        .collect::<Result<_, _>>()?;
    assert_eq!(activities.len(), 5);
    let first = &activities[0];
    assert_eq!(first.activity_id, "a-0001");
    assert_eq!(first.value, 2500.0);
    assert_eq!(first.logged_at.as_str(), "2025-01-06T12:00:00.123456Z");
    let context = first.context.as_ref().expect("context kept");
    assert_eq!(context.to_value()["weather"]["humidity"], 0.81);
    Ok(())
}

#[tokio::test]
async fn origin_items_read_back_through_the_store() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let items = origin_items()?;
    t.seed(items.clone()).await?;
    let user = origin_user_id()?;
    for original in items.iter().filter(|item| is_goal(item)) {
        let expected = goal_from_item(original)?;
        let goal = t.store.get_goal(&user, &expected.goal_id).await?;
        assert_eq!(goal, expected);
        assert_eq!(
            differences(original, &goal_to_item(&goal)?),
            Vec::<String>::new()
        );
    }
    let activities = t
        .store
        .list_activities(
            &user,
            "c0ffee00-2222-4333-8444-555566667777",
            &ActivityFilter::default(),
            &PageRequest::default(),
        )
        .await?;
    let dates: Vec<&str> = activities
        .items
        .iter()
        .map(|a| a.logged_at.as_str())
        .collect();
    assert_eq!(
        dates,
        ["2025-01-06T10:00:00.123456Z", "2025-01-05T11:00:00.123456Z"],
        "newest first"
    );
    Ok(())
}

#[tokio::test]
async fn written_items_have_the_documented_layout() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let draft = t
        .store
        .create_goal(
            "user-1",
            NewGoal {
                goal_id: Some("draft-1".into()),
                status: Some(GoalStatus::Draft),
                ..NewGoal::new(
                    "Read 12 books",
                    GoalPattern::Milestone,
                    Target {
                        metric: "count".into(),
                        value: Some(12.0),
                        unit: Some("books".into()),
                        target_date: goalstore::Timestamp::parse(goalstore_tests::goals::FAR_AHEAD),
                        ..Target::default()
                    },
                )
            },
        )
        .await?;
    let item = t
        .raw_item("USER#user-1", "GOAL#draft-1")
        .await?
        .expect("written");
    let s = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("{name} is {other:?}"),
    };
    assert_eq!(s("EntityType"), "Goal");
    assert_eq!(s("gsi1_pk"), "STATUS#draft");
    assert_eq!(s("goal_pattern"), "milestone");
    assert!(s("created_at").ends_with('Z'), "{}", s("created_at"));
    assert_eq!(s("gsi1_sk"), s("created_at").replace('Z', "+00:00"));
    let created = draft.created_at.instant().expect("valid time");
    assert_eq!(
        item.get("TTL"),
        Some(&AttributeValue::N(
            (created + chrono::Duration::days(30))
                .timestamp()
                .to_string()
        ))
    );
    match item.get("target") {
        Some(AttributeValue::M(target)) => {
            assert_eq!(target.get("value"), Some(&AttributeValue::N("12".into())));
        }
        other => panic!("target is {other:?}"),
    }

    // Activating the draft drops its TTL and moves it in the status index.
    t.store
        .update_goal(
            "user-1",
            "draft-1",
            GoalUpdate {
                status: Some(GoalStatus::Active),
                ..GoalUpdate::default()
            },
        )
        .await?;
    let item = t
        .raw_item("USER#user-1", "GOAL#draft-1")
        .await?
        .expect("written");
    assert_eq!(
        item.get("gsi1_pk"),
        Some(&AttributeValue::S("STATUS#active".into()))
    );
    assert_eq!(item.get("TTL"), None);

    let logged = t
        .store
        .log_activity("user-1", "draft-1", NewActivity::new(2.0))
        .await?;
    let logged_at = logged.activity.logged_at.instant().expect("valid time");
    let sk = format!("ACTIVITY#draft-1#{}", goalstore::model::key_form(logged_at));
    let item = t
        .raw_item("USER#user-1", &sk)
        .await?
        .expect("activity written");
    assert_eq!(
        item.get("EntityType"),
        Some(&AttributeValue::S("GoalActivity".into()))
    );
    assert_eq!(
        item.get("gsi1_pk"),
        Some(&AttributeValue::S("GOAL#draft-1".into()))
    );
    assert_eq!(
        item.get("TTL"),
        Some(&AttributeValue::N(
            (logged_at + chrono::Duration::days(365))
                .timestamp()
                .to_string()
        ))
    );
    Ok(())
}

#[tokio::test]
async fn updates_keep_attributes_this_version_does_not_know() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let mut items: Vec<Item> = origin_items()?.into_iter().filter(is_goal).collect();
    items[0].insert("legacy_flag".into(), AttributeValue::S("keep me".into()));
    let goal = goal_from_item(&items[0])?;
    t.seed(items).await?;
    let updated = t
        .store
        .update_goal(
            &goal.user_id,
            &goal.goal_id,
            GoalUpdate {
                title: Some("Walk 12k steps daily".into()),
                ..GoalUpdate::default()
            },
        )
        .await?;
    assert!(updated.updated_at > goal.updated_at);
    let item = t
        .raw_item(
            &format!("USER#{}", goal.user_id),
            &format!("GOAL#{}", goal.goal_id),
        )
        .await?
        .expect("still there");
    assert_eq!(
        item.get("legacy_flag"),
        Some(&AttributeValue::S("keep me".into()))
    );
    assert_eq!(
        item.get("title"),
        Some(&AttributeValue::S("Walk 12k steps daily".into()))
    );
    Ok(())
}
