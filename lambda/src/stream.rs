//! The DynamoDB Streams handler: changed items of the goals table become invalidation events.
//!
//! Writes by the existing goal handlers do not go through a goalstore, so their cache entries
//! would live until their TTL; this handler, subscribed to the table's stream, turns each
//! change into the event a write through the store would have emitted, and applies the batch
//! with [`GoalService::apply_events`] (which drops the keys `goalstore::events` names, from Redis
//! and, with `tiered`, from every instance over pub/sub).
//!
//! | item (DESIGN.md key layout) | INSERT | MODIFY | REMOVE |
//! | --- | --- | --- | --- |
//! | goal: `USER#{user}` / `GOAL#{goal}` | goal created | goal updated (archived when the new image's status is `archived`) | goal archived |
//! | activity: `USER#{user}` / `ACTIVITY#{goal}#{logged_at}` | activity logged | activity logged | activity logged |
//!
//! Any other item (idempotency markers, probes) and any key whose ids are not valid goalstore ids
//! (no cache entry can exist for them) is skipped. Repeated events within a batch are applied once.
//! If applying fails, every record that produced an event is reported in `batchItemFailures`
//! (enable `ReportBatchItemFailures` on the event source mapping), so Lambda retries them.

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use goalstore::keys::{GoalId, UserId, GOAL_SK_PREFIX};
use goalstore::{Event, EventKind, GoalService};
use lambda_runtime::LambdaEvent;
use serde_dynamo::AttributeValue;

/// A DynamoDB Streams invocation.
pub type StreamInvocation = LambdaEvent<StreamEvent>;

const USER_PK_PREFIX: &str = "USER#";
const ACTIVITY_SK_PREFIX: &str = "ACTIVITY#";

/// Applies the invalidations of a batch of stream records.
pub async fn handle(store: &dyn GoalService, event: StreamInvocation) -> DynamoDbEventResponse {
    let records = &event.payload.records;
    let mut events: Vec<Event> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    for record in records {
        let Some(event) = event_of(record) else {
            continue;
        };
        if let Some(sequence) = &record.change.sequence_number {
            sources.push(sequence.clone());
        }
        if !events.contains(&event) {
            events.push(event);
        }
    }
    let mut response = DynamoDbEventResponse::default();
    if events.is_empty() {
        return response;
    }
    match store.apply_events(&events).await {
        Ok(applied) => {
            tracing::info!(
                records = records.len(),
                applied,
                "applied stream invalidations"
            );
        }
        Err(error) => {
            tracing::warn!(%error, records = records.len(), "could not apply stream invalidations");
            response.batch_item_failures = sources
                .into_iter()
                .map(|sequence| {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(sequence);
                    failure
                })
                .collect();
        }
    }
    response
}

/// The invalidation event of one stream record, if it concerns a goal or an activity.
pub fn event_of(record: &EventRecord) -> Option<Event> {
    let change = &record.change;
    let key = |name: &str| {
        [&change.keys, &change.new_image, &change.old_image]
            .into_iter()
            .find_map(|item| match item.get(name) {
                Some(AttributeValue::S(text)) => Some(text.as_str()),
                _ => None,
            })
    };
    let user = key("pk")?.strip_prefix(USER_PK_PREFIX)?;
    let sk = key("sk")?;
    let (goal, is_goal) = if let Some(goal) = sk.strip_prefix(GOAL_SK_PREFIX) {
        (goal, true)
    } else {
        let rest = sk.strip_prefix(ACTIVITY_SK_PREFIX)?;
        (rest.split_once('#').map_or(rest, |(goal, _)| goal), false)
    };
    if UserId::parse(user).is_err() || GoalId::parse(goal).is_err() {
        tracing::debug!(
            pk = user,
            sk,
            "skipping a record whose ids are not goalstore ids"
        );
        return None;
    }
    let archived = || matches!(change.new_image.get("status"), Some(AttributeValue::S(status)) if status == "archived");
    let kind = match (is_goal, record.event_name.as_str()) {
        (false, "INSERT" | "MODIFY" | "REMOVE") => EventKind::ActivityLogged,
        (true, "INSERT") => EventKind::GoalCreated,
        (true, "MODIFY") if archived() => EventKind::GoalArchived,
        (true, "MODIFY") => EventKind::GoalUpdated,
        (true, "REMOVE") => EventKind::GoalArchived,
        _ => return None,
    };
    Some(Event {
        user_id: user.to_owned(),
        goal_id: goal.to_owned(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(name: &str, sk: &str, new_status: Option<&str>) -> EventRecord {
        let mut change =
            json!({"Keys": {"pk": {"S": "USER#u1"}, "sk": {"S": sk}}, "SizeBytes": 40});
        if let Some(status) = new_status {
            change["NewImage"] = json!({"status": {"S": status}});
        }
        let value = json!({"eventID": "1", "eventName": name, "awsRegion": "eu-west-1", "dynamodb": change});
        serde_json::from_value(value).expect("a valid record")
    }

    fn kind(name: &str, sk: &str, status: Option<&str>) -> Option<EventKind> {
        event_of(&record(name, sk, status)).map(|event| {
            assert_eq!(event.user_id, "u1");
            assert_eq!(event.goal_id, "g1");
            event.kind
        })
    }

    #[test]
    fn goal_and_activity_records_become_their_events() {
        assert_eq!(
            kind("INSERT", "GOAL#g1", None),
            Some(EventKind::GoalCreated)
        );
        assert_eq!(
            kind("MODIFY", "GOAL#g1", Some("active")),
            Some(EventKind::GoalUpdated)
        );
        assert_eq!(
            kind("MODIFY", "GOAL#g1", Some("archived")),
            Some(EventKind::GoalArchived)
        );
        assert_eq!(
            kind("REMOVE", "GOAL#g1", None),
            Some(EventKind::GoalArchived)
        );
        for name in ["INSERT", "MODIFY", "REMOVE"] {
            assert_eq!(
                kind(name, "ACTIVITY#g1#2025-01-06T12:00:00.000000+00:00", None),
                Some(EventKind::ActivityLogged)
            );
        }
    }

    /// A service whose every call fails as an unreachable table would.
    #[derive(Debug)]
    struct Unavailable;

    macro_rules! unavailable {
        ($($name:ident($($arg:ty),*) -> $out:ty;)*) => {
            #[async_trait::async_trait]
            impl GoalService for Unavailable {
                $(async fn $name(&self, $(_: $arg),*) -> goalstore::Result<$out> {
                    Err(goalstore::Error::Unavailable("down".into()))
                })*
            }
        };
    }

    unavailable! {
        get_goal(&str, &str) -> goalstore::Goal;
        get_goals(&str, &[String]) -> goalstore::GoalBatch;
        list_active_goals(&str) -> Vec<goalstore::Goal>;
        list_goals(&str, &goalstore::GoalFilter, &goalstore::PageRequest) -> goalstore::Page<goalstore::Goal>;
        create_goal(&str, goalstore::NewGoal) -> goalstore::Goal;
        update_goal(&str, &str, goalstore::GoalUpdate) -> goalstore::Goal;
        archive_goal(&str, &str) -> goalstore::Goal;
        log_activity(&str, &str, goalstore::NewActivity) -> goalstore::LoggedActivity;
        list_activities(&str, &str, &goalstore::ActivityFilter, &goalstore::PageRequest) -> goalstore::Page<goalstore::Activity>;
        get_progress(&str, &str) -> goalstore::Progress;
        apply_events(&[Event]) -> usize;
    }

    #[tokio::test]
    async fn a_batch_that_cannot_be_applied_is_reported_for_retry() {
        let mut goal = record("INSERT", "GOAL#g1", None);
        goal.change.sequence_number = Some("100".into());
        let mut marker = record("INSERT", "IDEMPOTENCY#x", None);
        marker.change.sequence_number = Some("101".into());
        let mut activity = record("INSERT", "ACTIVITY#g1#2025-01-06T12:00:00Z", None);
        activity.change.sequence_number = Some("102".into());
        let mut event = StreamEvent::default();
        event.records = vec![goal, marker, activity];
        let response = handle(
            &Unavailable,
            LambdaEvent::new(event, lambda_runtime::Context::default()),
        )
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .collect();
        assert_eq!(failed, ["100", "102"], "the records that carried events");

        let empty = handle(
            &Unavailable,
            LambdaEvent::new(StreamEvent::default(), lambda_runtime::Context::default()),
        )
        .await;
        assert!(empty.batch_item_failures.is_empty(), "nothing to apply");
    }

    #[test]
    fn other_items_and_bad_ids_are_skipped() {
        assert_eq!(kind("INSERT", "IDEMPOTENCY#goal#g1", None), None);
        assert_eq!(kind("INSERT", "HEALTH#probe", None), None);
        assert_eq!(kind("UNKNOWN", "GOAL#g1", None), None);
        assert_eq!(kind("INSERT", "GOAL#bad id!", None), None);
        let mut other_partition = record("INSERT", "GOAL#g1", None);
        other_partition
            .change
            .keys
            .insert("pk".into(), AttributeValue::S("STATUS#active".into()));
        assert_eq!(event_of(&other_partition), None);
        let mut no_keys = record("INSERT", "GOAL#g1", None);
        no_keys.change.keys.clear();
        assert_eq!(event_of(&no_keys), None);
    }
}
