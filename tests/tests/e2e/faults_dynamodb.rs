//! DynamoDB faults: the store reads through a fault-injecting proxy in front of the
//! DynamoDB-compatible server (`goalstore_tests::faults`). Added latency, connection resets,
//! throttling answers (`ProvisionedThroughputExceededException`, `ThrottlingException`) and
//! BatchGetItem answers that hand keys back as `UnprocessedKeys`: reads still come back
//! complete and correct; retries stay within their per-request limit and the loader-wide
//! budget; once those are spent the caller gets UNAVAILABLE at once, never a hang.
//!
//! These run on real time: the table is a real server over HTTP, and a paused clock would fire
//! the HTTP client's own timeouts. The backoffs are configured in milliseconds to keep them short.

use crate::sidecar_cache::USER;
use crate::store::goal_items;
use anyhow::Context;
use goalstore::batch::{BatchConfig, RetryPolicy};
use goalstore::item::goal_from_item;
use goalstore::{CacheConfig, Error, Goal, StoreConfig, Strategy};
use goalstore_proto::v1 as pb;
use goalstore_tests::faults::{Fault, Rule};
use goalstore_tests::ops::start_sidecar;
use goalstore_tests::stores::DynamoStore;
use std::time::{Duration, Instant};
use tonic::Code;

const PTEE: &str = "ProvisionedThroughputExceededException";
const THROTTLING: &str = "ThrottlingException";

/// No cache (every read reaches the table), and short backoffs.
fn config(retry: RetryPolicy) -> StoreConfig {
    StoreConfig {
        batch: BatchConfig {
            retry,
            ..BatchConfig::default()
        },
        cache: CacheConfig {
            strategy: Strategy::None,
            ..CacheConfig::default()
        },
        ..StoreConfig::default()
    }
}

/// More attempts than the first test injects failures (10): however the three concurrent
/// requests share them out, none runs out of attempts.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        ..RetryPolicy::default()
    }
}

/// `count` goals of USER seeded straight into the table, and the goals they decode to.
async fn seeded(t: &DynamoStore, count: usize) -> anyhow::Result<Vec<Goal>> {
    let items = goal_items(USER, count)?;
    let goals = items
        .iter()
        .map(goal_from_item)
        .collect::<Result<Vec<_>, _>>()?;
    t.seed(items).await?;
    Ok(goals)
}

#[tokio::test]
async fn reads_are_complete_and_correct_through_latency_resets_throttles_and_unprocessed_keys(
) -> anyhow::Result<()> {
    let t = DynamoStore::with_config(config(quick_retries())).await?;
    let goals = seeded(&t, 250).await?;
    let mut ids: Vec<String> = goals.iter().map(|g| g.goal_id.clone()).collect();
    ids.extend((0..10).map(|i| format!("missing{i}")));

    // One after the other, across the BatchGetItems the read makes (3 requests of <=100 keys,
    // plus their retries): each rule applies to the next requests until its count runs out.
    let faults = t.proxy.faults();
    faults.inject(Rule::times(
        Some("BatchGetItem"),
        Fault::Delay(Duration::from_millis(50)),
        2,
    ));
    faults.inject(Rule::times(Some("BatchGetItem"), Fault::Reset, 2));
    faults.inject(Rule::times(Some("BatchGetItem"), Fault::Throttle(PTEE), 2));
    faults.inject(Rule::times(
        Some("BatchGetItem"),
        Fault::Throttle(THROTTLING),
        2,
    ));
    faults.inject(Rule::times(Some("BatchGetItem"), Fault::Unprocessed, 4));
    // Listings go through the AWS SDK's own retries (3 attempts): one throttle and one reset.
    faults.inject(Rule::times(Some("Query"), Fault::Throttle(THROTTLING), 1));
    faults.inject(Rule::times(Some("Query"), Fault::Reset, 1));

    let batch = t.store.get_goals(USER, &ids).await?;
    let read: Vec<&str> = batch.goals.iter().map(|g| g.goal_id.as_str()).collect();
    assert_eq!(read, ids[..250], "every goal, in request order");
    assert!(batch.goals == goals, "every goal intact");
    assert_eq!(batch.missing_goal_ids, ids[250..].to_vec());
    let single = t.store.get_goal(USER, &goals[7].goal_id).await?;
    assert_eq!(single, goals[7]);
    let listed = t
        .store
        .list_goals(USER, &Default::default(), &Default::default())
        .await?;
    assert_eq!(
        listed.items[..],
        goals[..50],
        "the first page, despite the faults"
    );

    let injected = faults.injected();
    assert_eq!(
        faults.total_injected(),
        14,
        "every planned fault happened: {injected:?}"
    );
    let stats = t.store.batch_stats();
    assert_eq!(stats.exhausted, 0, "no request gave up: {stats:?}");
    assert!(stats.retries_unprocessed >= 4, "{stats:?}");
    assert!(stats.retries_throttled >= 4, "{stats:?}");
    assert!(stats.retries_unavailable >= 2, "{stats:?}");
    // 3 requests to start with, then one retry per fault at most (a fault can hit a retry).
    assert!(
        stats.requests <= 3 + 12 && t.proxy.count("BatchGetItem") == stats.requests,
        "{stats:?}, proxy {:?}",
        t.proxy.counts()
    );
    Ok(())
}

#[tokio::test]
async fn a_table_that_keeps_throttling_is_unavailable_within_the_attempt_limit_and_the_budget(
) -> anyhow::Result<()> {
    // 4 attempts a request; a budget of 20 tokens at 5 a retry: 4 retries in all.
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        budget_tokens: 20,
        retry_cost: 5,
    };
    let t = DynamoStore::with_config(config(retry)).await?;
    let goals = seeded(&t, 3).await?;
    t.proxy
        .faults()
        .inject(Rule::always(Some("BatchGetItem"), Fault::Throttle(PTEE)));

    // The first read: the attempt limit ends it (3 retries, 15 tokens spent).
    let started = Instant::now();
    let first = t.store.get_goal(USER, &goals[0].goal_id).await;
    assert!(
        matches!(first, Err(Error::Throttled { attempts: 4 })),
        "{first:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "promptly");
    assert_eq!(t.proxy.count("BatchGetItem"), 4);

    // Later reads: the budget (5 tokens left) pays one more retry, then none.
    for goal in goals.iter().cycle().take(10) {
        let started = Instant::now();
        let read = t.store.get_goal(USER, &goal.goal_id).await;
        assert!(matches!(read, Err(Error::Throttled { .. })), "{read:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "answered at once when the budget is spent: {:?}",
            started.elapsed()
        );
    }
    let requests = t.proxy.count("BatchGetItem");
    assert_eq!(
        requests,
        4 + 10 + 1,
        "11 reads and 4 retries in all, the budget's worth: {:?}",
        t.store.batch_stats()
    );
    assert_eq!(t.store.batch_stats().exhausted, 11);

    // The table recovers: reads succeed again and refill the budget.
    t.proxy.faults().clear();
    for goal in &goals {
        assert_eq!(&t.store.get_goal(USER, &goal.goal_id).await?, goal);
    }
    Ok(())
}

#[tokio::test]
async fn through_the_sidecar_a_throttled_table_is_unavailable_promptly() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let goals = seeded(&t, 1).await?;
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let sidecar = start_sidecar(
        &[
            ("GOALSTORE_TABLE", table.as_str()),
            ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
            ("GOALSTORE_CACHE", "none"),
        ],
        true,
    )
    .await?;
    let mut client = sidecar.client().await?;
    let get = || pb::GetGoalRequest {
        user_id: USER.into(),
        goal_id: goals[0].goal_id.clone(),
    };
    // Resets and throttles that retries absorb: the caller sees nothing.
    let faults = t.proxy.faults();
    faults.inject(Rule::times(Some("BatchGetItem"), Fault::Reset, 1));
    faults.inject(Rule::times(
        Some("BatchGetItem"),
        Fault::Throttle(THROTTLING),
        2,
    ));
    let goal = client.get_goal(get()).await?.into_inner().goal;
    assert_eq!(
        goal.context("a goal")?.goal_id,
        goals[0].goal_id,
        "read through 3 faults"
    );
    assert_eq!(faults.total_injected(), 3);

    // A table that keeps throttling: UNAVAILABLE once the default policy (8 attempts, backoff
    // capped at 1 s, full jitter: at most ~2.6 s of waiting) is spent, well within a caller's
    // deadline.
    faults.inject(Rule::always(Some("BatchGetItem"), Fault::Throttle(PTEE)));
    let started = Instant::now();
    let mut request = tonic::Request::new(get());
    request.set_timeout(Duration::from_secs(10));
    let status = client
        .get_goal(request)
        .await
        .err()
        .context("a throttled read fails")?;
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    Ok(())
}
