//! Redis faults: store A reaches Redis through a TCP fault proxy (`TcpFaultProxy`), store B
//! shares the same Redis directly (both tiered: a local tier in front, pub/sub invalidation).
//! A partition (the proxy stops forwarding both ways, then cuts the connections, as TCP does in
//! the end) and a slow Redis (every chunk delayed past the Redis timeout): no call fails, A
//! reports itself degraded, A's local tier is purged when its subscription comes back, and once
//! A is no longer degraded nothing stale is served.
//!
//! `kill -9` of Redis mid-load and its restart are proven through two sidecars by
//! `sidecar_cache::killing_redis_mid_run_fails_no_call_serves_nothing_stale_and_recovers`.

use anyhow::{ensure, Context};
use goalstore::cache::redis::RedisConfig;
use goalstore::{CacheConfig, GoalStore, NewActivity, NewGoal, StoreConfig, Strategy};
use goalstore_tests::faults::{TcpFaultProxy, TcpMode};
use goalstore_tests::servers::RedisServer;
use goalstore_tests::stores::DynamoStore;
use std::time::{Duration, Instant};

use super::cache::{milestone, retitle};

const USER: &str = "u1";
/// The Redis call deadline of both stores (the default).
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest any one call may take while Redis is sick: a few Redis timeouts plus DynamoDB.
const CALL_BOUND: Duration = Duration::from_millis(1500);
/// How long recovery may take once Redis is healthy again (breaker cooldown, probe, reconnect).
const RECOVERY: Duration = Duration::from_secs(5);
/// How soon another instance must see a write once both reach Redis (the pub/sub window, with
/// slack for a shared 2-core machine).
const CROSS_INSTANCE: Duration = Duration::from_secs(1);

fn tiered(redis_url: String, namespace: &str) -> StoreConfig {
    StoreConfig {
        cache: CacheConfig {
            strategy: Strategy::Tiered,
            namespace: namespace.into(),
            redis: RedisConfig {
                urls: vec![redis_url],
                timeout: REDIS_TIMEOUT,
                ..RedisConfig::default()
            },
            ..CacheConfig::default()
        },
        ..StoreConfig::default()
    }
}

/// Waits until `count` instances subscribe to the namespace's invalidation channel.
pub(crate) async fn wait_subscribed(
    redis: &RedisServer,
    namespace: &str,
    count: i64,
) -> anyhow::Result<()> {
    let client = redis::Client::open(redis.url())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let channel = format!("{namespace}:v1:invalidations");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut connection)
            .await?;
        if subscribers >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{subscribers} of {count} subscribed"
        );
        // Subscribing happens inside the stores' probe tasks: nothing to await.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs one store call, failing the test if it fails or takes longer than CALL_BOUND.
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = goalstore::Result<T>>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = call.await.with_context(|| format!("{what} failed"))?;
    let took = started.elapsed();
    ensure!(took < CALL_BOUND, "{what} took {took:?}");
    Ok(result)
}

/// The title of `goal_id` as `store` reads it.
async fn title(store: &GoalStore, goal_id: &str) -> anyhow::Result<String> {
    Ok(bounded("get_goal", store.get_goal(USER, goal_id))
        .await?
        .title)
}

/// Polls `store` until it reads `expected` as the title of `goal_id`; returns how long it took.
async fn sees(
    store: &GoalStore,
    goal_id: &str,
    expected: &str,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let seen = title(store, goal_id).await?;
        if seen == expected {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < within,
            "{goal_id}: still {seen:?}, not {expected:?}, after {within:?}"
        );
        // Delivery happens in the other store's subscriber task: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Store calls against A while Redis is sick, until A reports itself degraded: every call must
/// succeed within CALL_BOUND. Returns the calls made.
async fn work_until_degraded(a: &GoalStore) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut calls = 0;
    while !a.is_degraded() {
        ensure!(
            started.elapsed() < RECOVERY,
            "not degraded after {calls} calls"
        );
        bounded("list_active_goals", a.list_active_goals(USER)).await?;
        bounded("get_progress", a.get_progress(USER, "g1")).await?;
        // Writes keep A's local copies of those current, so they may never reach Redis: a goal
        // never read before does.
        let absent = [format!("absent-{calls}")];
        bounded("get_goals", a.get_goals(USER, &absent)).await?;
        calls += 3;
    }
    Ok(calls)
}

async fn wait_recovered(a: &GoalStore) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while a.is_degraded() {
        ensure!(
            started.elapsed() < RECOVERY,
            "still degraded {RECOVERY:?} after Redis came back"
        );
        // Recovery happens in A's probe task: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(started.elapsed())
}

#[tokio::test]
async fn a_partition_fails_no_call_and_nothing_stale_is_served_once_it_heals() -> anyhow::Result<()>
{
    let redis = RedisServer::start().await?;
    let proxy = TcpFaultProxy::start(&redis.url()).await?;
    let t = DynamoStore::with_config(tiered(proxy.redis_url(), "partition")).await?;
    let (a, b) = (
        t.store.clone(),
        t.another_store(tiered(redis.url(), "partition"))?,
    );
    // Two active goals of one user need two titles (duplicates are refused).
    for (id, first) in [("g1", "v1"), ("g2", "v1 of g2")] {
        let goal = NewGoal {
            title: first.into(),
            ..milestone(id)
        };
        a.create_goal(USER, goal).await?;
        assert_eq!(title(&a, id).await?, first);
        assert_eq!(title(&b, id).await?, first);
    }
    wait_subscribed(&redis, "partition", 2).await?;
    b.update_goal(USER, "g1", retitle("b1")).await?;
    sees(&a, "g1", "b1", CROSS_INSTANCE).await?;

    proxy.set_mode(TcpMode::Partitioned);
    let calls = work_until_degraded(&a).await?;
    // A writes while cut off: the call succeeds, A reads its own write, and the invalidation
    // waits for Redis. B writes what A cannot hear about.
    bounded("update_goal", a.update_goal(USER, "g2", retitle("a1"))).await?;
    bounded(
        "log_activity",
        a.log_activity(USER, "g2", NewActivity::new(2.0)),
    )
    .await?;
    assert_eq!(title(&a, "g2").await?, "a1", "read-your-writes on A");
    b.update_goal(USER, "g1", retitle("b2")).await?;
    assert!(a.is_degraded(), "degraded while partitioned");
    let stats = a.stats().cache.context("a cache")?;
    assert!(stats.degraded && stats.redis_errors > 0, "{stats:?}");
    let purges_before = stats.local_purges;

    // A long partition ends with the connections cut; then the network works again.
    proxy.cut_connections();
    proxy.set_mode(TcpMode::Pass);
    let recovered = wait_recovered(&a).await?;
    // The moment A says it is healthy, it serves nothing it cached before the partition.
    assert_eq!(title(&a, "g1").await?, "b2", "A after the partition");
    let stats = a.stats().cache.context("a cache")?;
    assert!(
        stats.local_purges > purges_before,
        "the local tier was purged on reconnect: {stats:?}"
    );
    // A's write made during the partition is replayed and published: B sees it.
    let seen = sees(&b, "g2", "a1", CROSS_INSTANCE).await?;
    assert_eq!(
        b.get_progress(USER, "g2").await?.total_accumulated,
        Some(2.0)
    );
    eprintln!(
        "partition: {calls} calls while partitioned, none failed; recovered {recovered:?} \
         after the heal; B saw A's partition-time write {seen:?} later"
    );
    Ok(())
}

#[tokio::test]
async fn a_slow_redis_costs_a_timeout_never_a_failed_call() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let proxy = TcpFaultProxy::start(&redis.url()).await?;
    let t = DynamoStore::with_config(tiered(proxy.redis_url(), "slow")).await?;
    let (a, b) = (
        t.store.clone(),
        t.another_store(tiered(redis.url(), "slow"))?,
    );
    a.create_goal(USER, milestone("g1")).await?;
    assert_eq!(title(&a, "g1").await?, "v1");
    assert_eq!(title(&b, "g1").await?, "v1");
    wait_subscribed(&redis, "slow", 2).await?;

    // Every chunk waits 2.5 Redis timeouts, each way.
    proxy.set_mode(TcpMode::Delay(REDIS_TIMEOUT * 5 / 2));
    let calls = work_until_degraded(&a).await?;
    bounded("update_goal", a.update_goal(USER, "g1", retitle("slow"))).await?;
    assert_eq!(title(&a, "g1").await?, "slow", "read-your-writes on A");
    b.update_goal(USER, "g1", retitle("b-during"))
        .await
        .context("B")?;

    proxy.set_mode(TcpMode::Pass);
    let recovered = wait_recovered(&a).await?;
    // B's write happened while A's Redis answers came too late to trust: once healthy, A
    // serves it, and B keeps seeing it (A's replayed invalidation must not bring back "slow").
    let seen = sees(&a, "g1", "b-during", CROSS_INSTANCE).await?;
    assert_eq!(title(&b, "g1").await?, "b-during");
    let stats = a.stats().cache.context("a cache")?;
    assert!(stats.redis_errors > 0, "{stats:?}");
    eprintln!(
        "slow redis: {calls} calls while slow, none failed; recovered {recovered:?}; \
         A saw B's write {seen:?} after that"
    );
    Ok(())
}

/// #15 finding 2: a write whose caller is dropped after its table write landed, while its Redis
/// DEL is still on the wire, used to skip the second local drop and the publish — so another
/// tiered instance kept serving the pre-write value from its local tier for the goal's full TTL.
#[tokio::test]
async fn a_write_cancelled_after_it_landed_still_invalidates_every_instance() -> anyhow::Result<()>
{
    let redis = RedisServer::start().await?;
    let proxy = TcpFaultProxy::start(&redis.url()).await?;
    let t = DynamoStore::with_config(tiered(proxy.redis_url(), "cancelled")).await?;
    let (a, b) = (
        t.store.clone(),
        t.another_store(tiered(redis.url(), "cancelled"))?,
    );
    a.create_goal(USER, milestone("g1")).await?;
    wait_subscribed(&redis, "cancelled", 2).await?;
    // B holds the goal in its local tier.
    assert_eq!(title(&b, "g1").await?, "v1");
    assert_eq!(title(&b, "g1").await?, "v1");

    // A's Redis answers slowly (within its timeout): the DEL is on the wire for ~60 ms.
    proxy.set_mode(TcpMode::Delay(Duration::from_millis(30)));
    let update = a.update_goal(USER, "g1", retitle("v2"));
    // The caller goes away as soon as the table holds the write, as a deadline would drop it.
    let landed = async {
        loop {
            let item = t.raw_item(&format!("USER#{USER}"), "GOAL#g1").await?;
            let stored = item
                .as_ref()
                .and_then(|i| i.get("title"))
                .and_then(|v| v.as_s().ok());
            if stored.is_some_and(|s| s == "v2") {
                return anyhow::Ok(());
            }
            // The table write gives nothing to await from here.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        done = update => { done?; }
        seen = landed => { seen?; }
    }
    proxy.set_mode(TcpMode::Pass);
    let took = sees(&b, "g1", "v2", CROSS_INSTANCE).await?;
    eprintln!("B saw the cancelled write after {took:?}");

    // Reads cancelled mid-fill leave no flight or lease behind (#15 finding 4).
    proxy.set_mode(TcpMode::Delay(Duration::from_millis(30)));
    let mut cancelled = 0;
    for _ in 0..5 {
        a.invalidate_user(USER).await?;
        let read = tokio::time::timeout(Duration::from_millis(20), a.get_goal(USER, "g1")).await;
        cancelled += usize::from(read.is_err());
    }
    ensure!(cancelled > 0, "no read was cancelled mid-fill");
    proxy.set_mode(TcpMode::Pass);
    let deadline = Instant::now() + CROSS_INSTANCE;
    loop {
        let stats = a.stats().cache.context("a cache")?;
        if stats.flights_in_progress == 0 && stats.local_leases_held == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "left behind: {} flights, {} leases",
            stats.flights_in_progress,
            stats.local_leases_held
        );
        // The fills finish on their own tasks: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// #15 finding 7, first half: when A keeps more lost invalidations than its bound, its replay
/// flushes the whole namespace instead — and used to tell no one, so B (which never heard of A's
/// write: the publish failed with Redis) kept serving its local copy for the goal's full TTL.
#[tokio::test]
async fn a_flush_after_lost_invalidations_purges_every_instance() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let proxy = TcpFaultProxy::start(&redis.url()).await?;
    let mut bounded_a = tiered(proxy.redis_url(), "flushed");
    // One key kept at most: any write while cut off overflows.
    bounded_a.cache.redis.max_pending_invalidations = 1;
    let t = DynamoStore::with_config(bounded_a).await?;
    let (a, b) = (
        t.store.clone(),
        t.another_store(tiered(redis.url(), "flushed"))?,
    );
    a.create_goal(USER, milestone("g1")).await?;
    wait_subscribed(&redis, "flushed", 2).await?;
    assert_eq!(title(&b, "g1").await?, "v1");

    proxy.set_mode(TcpMode::Partitioned);
    work_until_degraded(&a).await?;
    bounded("update_goal", a.update_goal(USER, "g1", retitle("v2"))).await?;
    assert_eq!(title(&a, "g1").await?, "v2", "A reads its own write");
    let purges_before = b.stats().cache.context("b cache")?.local_purges;

    proxy.set_mode(TcpMode::Pass);
    proxy.cut_connections();
    wait_recovered(&a).await?;
    let took = sees(&b, "g1", "v2", CROSS_INSTANCE).await?;
    let stats = b.stats().cache.context("b cache")?;
    assert!(stats.local_purges > purges_before, "{stats:?}");
    eprintln!("B dropped its local tier and saw A's write {took:?} after A recovered");
    Ok(())
}

/// #15 finding 9: a write's added latency from a sick Redis stays within a small multiple of the
/// Redis timeout. A write waits for its invalidation (read-your-writes), which is one round of
/// DELs under the timeout; a logged activity also writes its progress through (a lease and a
/// fill, one timeout each). Measured against the same writes with Redis healthy.
#[tokio::test]
async fn a_sick_redis_adds_at_most_a_few_timeouts_to_a_write() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let proxy = TcpFaultProxy::start(&redis.url()).await?;
    let t = DynamoStore::with_config(tiered(proxy.redis_url(), "sickwrite")).await?;
    let a = t.store.clone();
    a.create_goal(USER, milestone("g1")).await?;
    let writes = |round: &'static str| {
        let a = a.clone();
        async move {
            let mut slowest = Duration::ZERO;
            for i in 0..4 {
                let started = Instant::now();
                a.update_goal(USER, "g1", retitle(&format!("{round}{i}")))
                    .await?;
                a.log_activity(USER, "g1", NewActivity::new(1.0)).await?;
                slowest = slowest.max(started.elapsed());
            }
            anyhow::Ok(slowest)
        }
    };
    let healthy = writes("healthy").await?;
    let mut sick = Vec::new();
    for mode in [
        TcpMode::Delay(Duration::from_millis(250)),
        TcpMode::Partitioned,
    ] {
        proxy.set_mode(mode);
        sick.push((mode, writes("sick").await?));
        proxy.set_mode(TcpMode::Pass);
        proxy.cut_connections();
        wait_recovered(&a).await?;
    }
    // An update and a log: 1 + 3 timeouts of Redis work at most, plus slack for a loaded machine.
    let bound = healthy + REDIS_TIMEOUT * 4 + Duration::from_millis(300);
    eprintln!("an update and a log: healthy {healthy:?}, sick {sick:?} (bound {bound:?})");
    for (mode, slowest) in sick {
        ensure!(
            slowest <= bound,
            "{mode:?}: an update and a log took {slowest:?} (healthy {healthy:?})"
        );
    }
    Ok(())
}

/// Waits until `store`'s auditor counts (consistent, stale) satisfy `done`, and returns them.
async fn audits(
    store: &GoalStore,
    done: impl Fn((u64, u64)) -> bool,
) -> anyhow::Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = store.stats().cache.context("a cache")?;
        let now = (
            stats.consistency_checks_consistent,
            stats.consistency_checks_stale,
        );
        if done(now) {
            return Ok(now);
        }
        ensure!(
            Instant::now() < deadline,
            "auditor counts (consistent, stale) still {now:?} after 5 s"
        );
        // The checks run on the auditor's own tasks: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// #15 deliverable 3: the consistency auditor. With every write audited, A's writes are checked
/// in A's tiers and, over the bus, in B's local tier. While invalidation messages flow, every
/// check is consistent; once A's invalidation messages are dropped (the fault), B keeps the
/// pre-write goal in its local tier and its check reports it stale.
#[tokio::test]
async fn the_auditor_reports_stale_entries_when_invalidation_messages_are_lost(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let audited = |url: String| {
        let mut config = tiered(url, "audited");
        config.cache.audit_sample_rate = 1.0;
        config
    };
    let t = DynamoStore::with_config(audited(redis.url())).await?;
    let (a, b) = (t.store.clone(), t.another_store(audited(redis.url()))?);
    a.create_goal(USER, milestone("g1")).await?;
    wait_subscribed(&redis, "audited", 2).await?;
    assert_eq!(title(&b, "g1").await?, "v1");

    a.update_goal(USER, "g1", retitle("v2")).await?;
    sees(&b, "g1", "v2", CROSS_INSTANCE).await?;
    // The goal, the active list and the progress, in B's local tier.
    let b_after = audits(&b, |(consistent, stale)| consistent + stale >= 3).await?;
    assert_eq!(
        b_after.1, 0,
        "nothing stale while messages flow: {b_after:?}"
    );

    a.cache()
        .context("a cache")?
        .drop_invalidation_messages(true);
    assert_eq!(title(&b, "g1").await?, "v2");
    a.update_goal(USER, "g1", retitle("v3")).await?;
    let b_lost = audits(&b, |(_, stale)| stale >= 1).await?;
    assert_eq!(title(&b, "g1").await?, "v2", "B never heard of v3");
    let a_own = a.stats().cache.context("a cache")?;
    assert_eq!(
        a_own.consistency_checks_stale, 0,
        "A's own tiers were invalidated: {a_own:?}"
    );
    eprintln!("auditor: B while messages flowed {b_after:?}, after they were lost {b_lost:?}");
    Ok(())
}
