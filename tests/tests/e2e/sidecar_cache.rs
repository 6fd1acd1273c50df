//! The sidecar's caches end to end: the real `goalstore-sidecar` process, over a DynamoDB table
//! reached through a counting proxy, with every cache strategy on real Redis (standalone and a
//! three-master cluster). What reaches DynamoDB is counted at the proxy; what a client sees is
//! read over gRPC.
//!
//! Each scenario has its own table and its own cache namespace, so scenarios sharing a Redis
//! cannot see each other's keys, and tests can run in parallel.

use anyhow::{bail, ensure, Context, Result};
use goalstore_proto::v1 as pb;
use goalstore_proto::v1::goal_store_client::GoalStoreClient;
use goalstore_tests::proxy::DynamoProxy;
use goalstore_tests::servers::{MotoServer, RedisCluster, RedisServer};
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Code;

pub(crate) type Client = GoalStoreClient<Channel>;

/// The owner of every goal here.
pub(crate) const USER: &str = "u1";
/// Deadline of one Redis call in the sidecars. Generous (debug builds on a shared 2-core
/// machine), so a slow but healthy Redis never sends a read to the table.
pub(crate) const REDIS_TIMEOUT: &str = "500ms";
/// Rounds of reads once warm.
const ROUNDS: usize = 5;
/// How soon a write through one sidecar must be visible through another sharing its Redis.
pub(crate) const SHARED_WITHIN: Duration = Duration::from_millis(100);
/// Interval between reads polling another sidecar for a write.
const POLL: Duration = Duration::from_millis(2);

/// A cache configuration of the sidecar.
#[derive(Debug, Clone)]
pub(crate) struct CacheSetup {
    /// GOALSTORE_CACHE.
    strategy: &'static str,
    /// GOALSTORE_REDIS_URL: one URL, or the cluster's comma-separated node list.
    redis: Option<String>,
    /// GOALSTORE_CACHE_NAMESPACE; unique per scenario, so it also names the scenario.
    namespace: String,
    /// GOALSTORE_AUDIT_SAMPLE_RATE when set (the test sidecar's default is 0: audits read the
    /// table, and most scenarios count what reaches it).
    audit: Option<&'static str>,
}

impl CacheSetup {
    pub(crate) fn new(strategy: &'static str, redis: Option<String>, namespace: &str) -> Self {
        Self {
            strategy,
            redis,
            namespace: namespace.into(),
            audit: None,
        }
    }

    /// Every write's keys checked by the consistency auditor.
    pub(crate) fn audited(mut self) -> Self {
        self.audit = Some("1");
        self
    }

    fn caches(&self) -> bool {
        self.strategy != "none"
    }
}

/// The sidecar over `table`, reaching DynamoDB at `dynamodb` (a counting proxy).
pub(crate) async fn sidecar(
    table: &str,
    dynamodb: &str,
    cache: &CacheSetup,
) -> Result<SidecarProcess> {
    let table = format!("dynamodb:{table}");
    let mut env = vec![
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", dynamodb),
        ("GOALSTORE_CACHE", cache.strategy),
        ("GOALSTORE_CACHE_NAMESPACE", cache.namespace.as_str()),
        ("GOALSTORE_REDIS_TIMEOUT", REDIS_TIMEOUT),
    ];
    if let Some(url) = &cache.redis {
        env.push(("GOALSTORE_REDIS_URL", url.as_str()));
    }
    if let Some(rate) = cache.audit {
        env.push(("GOALSTORE_AUDIT_SAMPLE_RATE", rate));
    }
    SidecarProcess::start(&env)
        .await
        .with_context(|| format!("starting a sidecar ({})", cache.namespace))
}

/// The auditor's (consistent, stale) counts of a sidecar once its running checks have ended.
pub(crate) async fn settled_audits(c: &mut Client) -> Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = c.stats(pb::StatsRequest {}).await?.into_inner();
        if stats.consistency_checks_running == 0 {
            return Ok((
                stats.consistency_checks_consistent,
                stats.consistency_checks_stale,
            ));
        }
        ensure!(
            Instant::now() < deadline,
            "{} audit checks still running after 10 s",
            stats.consistency_checks_running
        );
        // The checks run on the sidecar's own tasks: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- Calls -------------------------------------------------------------------------------------

/// Creates an active milestone goal (100 of something) with a client-chosen id.
pub(crate) async fn create(c: &mut Client, goal_id: &str, title: &str) -> Result<pb::Goal> {
    create_for(c, USER, goal_id, title).await
}

/// [`create`], for another user.
pub(crate) async fn create_for(
    c: &mut Client,
    user_id: &str,
    goal_id: &str,
    title: &str,
) -> Result<pb::Goal> {
    c.create_goal(pb::CreateGoalRequest {
        user_id: user_id.into(),
        goal_id: goal_id.into(),
        title: title.into(),
        goal_pattern: pb::GoalPattern::Milestone as i32,
        target: Some(pb::Target {
            metric: "count".into(),
            value: Some(100.0),
            target_date: Some(goalstore_tests::goals::FAR_AHEAD.into()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await?
    .into_inner()
    .goal
    .context("CreateGoal answered no goal")
}

pub(crate) async fn retitle(c: &mut Client, goal_id: &str, title: &str) -> Result<pb::Goal> {
    c.update_goal(pb::UpdateGoalRequest {
        user_id: USER.into(),
        goal_id: goal_id.into(),
        title: Some(title.into()),
        ..Default::default()
    })
    .await?
    .into_inner()
    .goal
    .context("UpdateGoal answered no goal")
}

async fn archive(c: &mut Client, goal_id: &str) -> Result<pb::Goal> {
    c.archive_goal(pb::ArchiveGoalRequest {
        user_id: USER.into(),
        goal_id: goal_id.into(),
    })
    .await?
    .into_inner()
    .goal
    .context("ArchiveGoal answered no goal")
}

/// Logs `value`; returns the progress the call answered.
pub(crate) async fn log(c: &mut Client, goal_id: &str, value: f64) -> Result<pb::Progress> {
    c.log_activity(pb::LogActivityRequest {
        user_id: USER.into(),
        goal_id: goal_id.into(),
        value,
        ..Default::default()
    })
    .await?
    .into_inner()
    .progress
    .context("LogActivity answered no progress")
}

pub(crate) async fn get_goal(c: &mut Client, goal_id: &str) -> Result<pb::Goal> {
    c.get_goal(pb::GetGoalRequest {
        user_id: USER.into(),
        goal_id: goal_id.into(),
    })
    .await?
    .into_inner()
    .goal
    .context("GetGoal answered no goal")
}

/// The titles of the user's active goals, oldest first.
async fn active_titles(c: &mut Client) -> Result<Vec<String>> {
    Ok(c.list_active_goals(pb::ListActiveGoalsRequest {
        user_id: USER.into(),
    })
    .await?
    .into_inner()
    .goals
    .into_iter()
    .map(|g| g.title)
    .collect())
}

/// The total accumulated of a goal, as GetProgress computes it.
async fn total(c: &mut Client, goal_id: &str) -> Result<Option<f64>> {
    Ok(c.get_progress(pb::GetProgressRequest {
        user_id: USER.into(),
        goal_id: goal_id.into(),
    })
    .await?
    .into_inner()
    .progress
    .context("GetProgress answered no progress")?
    .total_accumulated)
}

// --- What the reads must show ------------------------------------------------------------------

/// What GetGoal, ListActiveGoals and GetProgress must show of one goal.
#[derive(Debug, Clone)]
struct Expected {
    goal_id: String,
    title: String,
    /// Of GetProgress, and of the progress stored on the goal.
    total: f64,
    /// The titles of the active goals, oldest first.
    active: Vec<String>,
}

impl Expected {
    fn new(goal_id: &str, title: &str, total: f64, active: &[&str]) -> Self {
        Self {
            goal_id: goal_id.into(),
            title: title.into(),
            total,
            active: active.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

/// One call of each read; what differs from `expected`, if anything.
async fn mismatch(c: &mut Client, expected: &Expected) -> Result<Option<String>> {
    let goal = get_goal(c, &expected.goal_id).await?;
    let stored = goal.progress.as_ref().and_then(|p| p.total_accumulated);
    let active = active_titles(c).await?;
    let total = total(c, &expected.goal_id).await?;
    let mut wrong = Vec::new();
    if goal.title != expected.title {
        wrong.push(format!("GetGoal title {:?}", goal.title));
    }
    if stored != Some(expected.total) {
        wrong.push(format!("GetGoal progress total {stored:?}"));
    }
    if active != expected.active {
        wrong.push(format!("ListActiveGoals titles {active:?}"));
    }
    if total != Some(expected.total) {
        wrong.push(format!("GetProgress total {total:?}"));
    }
    Ok((!wrong.is_empty()).then(|| format!("{} (expected {expected:?})", wrong.join(", "))))
}

/// One call of each read, which must show `expected`.
async fn reads_show(c: &mut Client, expected: &Expected, what: &str) -> Result<()> {
    match mismatch(c, expected).await? {
        None => Ok(()),
        Some(wrong) => bail!("{what}: {wrong}"),
    }
}

/// Reads `expected` again and asserts that no read reached DynamoDB: the caches are warm, so a
/// read after the next write would show a stale value if the write did not invalidate it.
async fn assert_warm(
    t: &DynamoStore,
    c: &mut Client,
    expected: &Expected,
    what: &str,
) -> Result<()> {
    t.proxy.reset();
    reads_show(c, expected, what).await?;
    ensure!(
        t.proxy.total() == 0,
        "{what}: the caches are not warm, reads reached DynamoDB: {:?}",
        t.proxy.counts()
    );
    Ok(())
}

/// Polls `seen` every few milliseconds until it holds; fails if a read that *began*
/// [`SHARED_WITHIN`] or more after `written` still did not see it — the guarantee itself: a read
/// that starts after the window sees the write. (Timing the end of the read that saw it instead
/// would charge the window with that read's own RPC, tens of ms on a busy 2-core machine.)
async fn seen_within<F, Fut>(written: Instant, what: &str, mut seen: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    loop {
        let began = written.elapsed();
        if seen().await? {
            return Ok(());
        }
        ensure!(
            began < SHARED_WITHIN,
            "{what}: a read that began {began:?} after the write still did not see it (window {SHARED_WITHIN:?})"
        );
        // The invalidation travels over Redis pub/sub: no event of it reaches this process.
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `count` connections subscribe to the tiered invalidation channel of `cache`'s
/// namespace (sharded on a cluster, where only the node owning the channel's slot counts them).
pub(crate) async fn wait_for_subscribers(cache: &CacheSetup, count: i64) -> Result<()> {
    let urls: Vec<&str> = cache
        .redis
        .as_deref()
        .context("no Redis")?
        .split(',')
        .collect();
    let channel = format!("{}:v1:invalidations", cache.namespace);
    let subcommand = if urls.len() > 1 {
        "SHARDNUMSUB"
    } else {
        "NUMSUB"
    };
    let mut connections = Vec::new();
    for url in &urls {
        let client = redis::Client::open(*url)?;
        connections.push(client.get_multiplexed_async_connection().await?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut most = 0;
        for connection in &mut connections {
            let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
                .arg(subcommand)
                .arg(&channel)
                .query_async(connection)
                .await?;
            most = most.max(subscribers);
        }
        if most >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{}: {most} of {count} sidecars subscribed to {channel} after 10 s",
            cache.namespace
        );
        // Subscribing happens inside the sidecars: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// --- Scenarios ---------------------------------------------------------------------------------

/// Acceptance 1: once warm, rounds of GetGoal, ListActiveGoals and GetProgress make no DynamoDB
/// request at all.
async fn warm_reads_stay_off_dynamodb(cache: &CacheSetup) -> Result<()> {
    let what = cache.namespace.as_str();
    let t = DynamoStore::start().await?;
    let sidecar = sidecar(&t.table_name, &t.proxy.endpoint(), cache).await?;
    let mut c = sidecar.client().await?;
    create(&mut c, "g1", "Write a novel").await?;
    log(&mut c, "g1", 5.0).await?;
    let expected = Expected::new("g1", "Write a novel", 5.0, &["Write a novel"]);
    // Warm: one call of each.
    reads_show(&mut c, &expected, what).await?;
    t.proxy.reset();
    for round in 0..ROUNDS {
        reads_show(&mut c, &expected, &format!("{what}, round {round}")).await?;
    }
    ensure!(
        t.proxy.total() == 0,
        "{what}: {ROUNDS} warm rounds reached DynamoDB: {:?}",
        t.proxy.counts()
    );
    Ok(())
}

/// Acceptance 2: through one sidecar, every read after a write shows the write, with the caches
/// warm before each write.
async fn reads_see_writes_through_one_sidecar(cache: &CacheSetup) -> Result<()> {
    let what = cache.namespace.as_str();
    let t = DynamoStore::start().await?;
    let sidecar = sidecar(&t.table_name, &t.proxy.endpoint(), cache).await?;
    let mut c = sidecar.client().await?;
    create(&mut c, "g1", "v1").await?;
    log(&mut c, "g1", 5.0).await?;
    create(&mut c, "g2", "other").await?;
    let warm =
        |expected: &Expected, step: &str| format!("{what}, warm before {step}: {expected:?}");

    let before = Expected::new("g1", "v1", 5.0, &["v1", "other"]);
    reads_show(&mut c, &before, what).await?;
    if cache.caches() {
        assert_warm(&t, &mut c, &before, &warm(&before, "UpdateGoal")).await?;
    }
    let updated = retitle(&mut c, "g1", "v2").await?;
    ensure!(
        updated.title == "v2",
        "{what}: UpdateGoal answered {updated:?}"
    );
    let after = Expected::new("g1", "v2", 5.0, &["v2", "other"]);
    reads_show(&mut c, &after, &format!("{what}, after UpdateGoal")).await?;

    if cache.caches() {
        assert_warm(&t, &mut c, &after, &warm(&after, "LogActivity")).await?;
    }
    let logged = log(&mut c, "g1", 7.0).await?;
    ensure!(
        logged.total_accumulated == Some(12.0),
        "{what}: LogActivity answered {logged:?}"
    );
    let after = Expected::new("g1", "v2", 12.0, &["v2", "other"]);
    reads_show(&mut c, &after, &format!("{what}, after LogActivity")).await?;

    if cache.caches() {
        assert_warm(&t, &mut c, &after, &warm(&after, "ArchiveGoal")).await?;
    }
    archive(&mut c, "g1").await?;
    let after = Expected::new("g1", "v2", 12.0, &["other"]);
    reads_show(&mut c, &after, &format!("{what}, after ArchiveGoal")).await?;
    let goal = get_goal(&mut c, "g1").await?;
    ensure!(
        goal.status == pb::GoalStatus::Archived as i32,
        "{what}: GetGoal after ArchiveGoal shows status {}",
        goal.status
    );
    Ok(())
}

/// Acceptance 3: two sidecars sharing Redis; a write through A is seen through B, warm before
/// the write, within [`SHARED_WITHIN`] after the write returned. Each write is polled with one
/// kind of read, so a poll costs at most one DynamoDB request.
async fn writes_reach_another_sidecar(cache: &CacheSetup) -> Result<()> {
    let what = cache.namespace.as_str();
    let t = DynamoStore::start().await?;
    let a = sidecar(&t.table_name, &t.proxy.endpoint(), cache).await?;
    let b = sidecar(&t.table_name, &t.proxy.endpoint(), cache).await?;
    if cache.strategy == "tiered" {
        // Both listen for invalidations before anything is cached (subscribing purges the local
        // tier, which would make B's warm-up moot).
        wait_for_subscribers(cache, 2).await?;
    }
    let (mut ca, cb) = (a.client().await?, b.client().await?);
    create(&mut ca, "g1", "v1").await?;
    log(&mut ca, "g1", 5.0).await?;
    let expected = Expected::new("g1", "v1", 5.0, &["v1"]);
    reads_show(&mut ca, &expected, &format!("{what}, A")).await?;
    // Before each write, B's caches hold every read (A makes no call meanwhile).
    let warm_b = |expected: Expected, write: &'static str| {
        let (t, mut cb) = (&t, cb.clone());
        async move {
            reads_show(&mut cb, &expected, &format!("{what}, B")).await?;
            assert_warm(t, &mut cb, &expected, &format!("{what}, B before {write}")).await
        }
    };

    warm_b(expected, "UpdateGoal").await?;
    retitle(&mut ca, "g1", "v2").await?;
    let written = Instant::now();
    seen_within(
        written,
        &format!("{what}: UpdateGoal via A, GetGoal via B"),
        || {
            let mut cb = cb.clone();
            async move { Ok(get_goal(&mut cb, "g1").await?.title == "v2") }
        },
    )
    .await?;

    warm_b(Expected::new("g1", "v2", 5.0, &["v2"]), "UpdateGoal").await?;
    retitle(&mut ca, "g1", "v3").await?;
    let written = Instant::now();
    seen_within(
        written,
        &format!("{what}: UpdateGoal via A, ListActiveGoals via B"),
        || {
            let mut cb = cb.clone();
            async move { Ok(active_titles(&mut cb).await? == ["v3"]) }
        },
    )
    .await?;

    warm_b(Expected::new("g1", "v3", 5.0, &["v3"]), "LogActivity").await?;
    log(&mut ca, "g1", 7.0).await?;
    let written = Instant::now();
    seen_within(
        written,
        &format!("{what}: LogActivity via A, GetProgress via B"),
        || {
            let mut cb = cb.clone();
            async move { Ok(total(&mut cb, "g1").await? == Some(12.0)) }
        },
    )
    .await?;

    warm_b(Expected::new("g1", "v3", 12.0, &["v3"]), "ArchiveGoal").await?;
    archive(&mut ca, "g1").await?;
    let written = Instant::now();
    seen_within(
        written,
        &format!("{what}: ArchiveGoal via A, ListActiveGoals via B"),
        || {
            let mut cb = cb.clone();
            async move { Ok(active_titles(&mut cb).await?.is_empty()) }
        },
    )
    .await?;
    Ok(())
}

// --- Tests -------------------------------------------------------------------------------------

#[tokio::test]
async fn warm_reads_through_the_sidecar_make_no_dynamodb_request() -> Result<()> {
    let redis = RedisServer::start().await?;
    warm_reads_stay_off_dynamodb(&CacheSetup::new("local", None, "warm-local")).await?;
    warm_reads_stay_off_dynamodb(&CacheSetup::new("redis", Some(redis.url()), "warm-redis"))
        .await?;
    warm_reads_stay_off_dynamodb(&CacheSetup::new("tiered", Some(redis.url()), "warm-tiered"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn without_a_cache_every_read_through_the_sidecar_reaches_dynamodb() -> Result<()> {
    let cache = CacheSetup::new("none", None, "warm-none");
    let t = DynamoStore::start().await?;
    let sidecar = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    let mut c = sidecar.client().await?;
    create(&mut c, "g1", "Write a novel").await?;
    log(&mut c, "g1", 5.0).await?;
    let expected = Expected::new("g1", "Write a novel", 5.0, &["Write a novel"]);
    reads_show(&mut c, &expected, "none").await?;
    // Each call, and what it must at least have asked DynamoDB.
    let grew = |before: &std::collections::BTreeMap<String, u64>, operation: &str| {
        t.proxy.count(operation) > before.get(operation).copied().unwrap_or(0)
    };
    for round in 0..ROUNDS {
        let before = t.proxy.counts();
        ensure!(get_goal(&mut c, "g1").await?.title == "Write a novel");
        ensure!(
            grew(&before, "BatchGetItem"),
            "round {round}: GetGoal did not reach DynamoDB: {:?}",
            t.proxy.counts()
        );
        let before = t.proxy.counts();
        ensure!(active_titles(&mut c).await? == ["Write a novel"]);
        ensure!(
            grew(&before, "Query"),
            "round {round}: ListActiveGoals did not reach DynamoDB: {:?}",
            t.proxy.counts()
        );
        let before = t.proxy.counts();
        ensure!(total(&mut c, "g1").await? == Some(5.0));
        ensure!(
            grew(&before, "BatchGetItem") && grew(&before, "Query"),
            "round {round}: GetProgress did not read the goal and its activities: {before:?} -> {:?}",
            t.proxy.counts()
        );
    }
    Ok(())
}

#[tokio::test]
async fn reads_through_a_sidecar_see_its_own_writes_for_every_strategy() -> Result<()> {
    let redis = RedisServer::start().await?;
    reads_see_writes_through_one_sidecar(&CacheSetup::new("none", None, "rw-none")).await?;
    reads_see_writes_through_one_sidecar(&CacheSetup::new("local", None, "rw-local")).await?;
    reads_see_writes_through_one_sidecar(&CacheSetup::new("redis", Some(redis.url()), "rw-redis"))
        .await?;
    reads_see_writes_through_one_sidecar(&CacheSetup::new(
        "tiered",
        Some(redis.url()),
        "rw-tiered",
    ))
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_write_through_one_sidecar_is_seen_through_another_within_100ms() -> Result<()> {
    let redis = RedisServer::start().await?;
    writes_reach_another_sidecar(&CacheSetup::new("redis", Some(redis.url()), "shared-redis"))
        .await?;
    writes_reach_another_sidecar(&CacheSetup::new(
        "tiered",
        Some(redis.url()),
        "shared-tiered",
    ))
    .await?;
    Ok(())
}

/// Acceptance 1, 2 and 3 on a three-master Redis Cluster (one cluster for all of them).
#[tokio::test]
async fn on_a_redis_cluster_warm_reads_stay_cached_and_writes_are_seen_everywhere() -> Result<()> {
    let cluster = RedisCluster::start().await?;
    let nodes = Some(cluster.url_list());
    for strategy in ["redis", "tiered"] {
        let setup = |step: &str| {
            CacheSetup::new(
                strategy,
                nodes.clone(),
                &format!("{step}-{strategy}-cluster"),
            )
        };
        warm_reads_stay_off_dynamodb(&setup("warm")).await?;
        reads_see_writes_through_one_sidecar(&setup("rw")).await?;
        writes_reach_another_sidecar(&setup("shared")).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_goal_is_read_once_and_found_once_created() -> Result<()> {
    let cache = CacheSetup::new("local", None, "missing");
    let t = DynamoStore::start().await?;
    let sidecar = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    let mut c = sidecar.client().await?;
    t.proxy.reset();
    for attempt in 0..5 {
        match c
            .get_goal(pb::GetGoalRequest {
                user_id: USER.into(),
                goal_id: "ghost".into(),
            })
            .await
        {
            Ok(found) => bail!("attempt {attempt}: a goal that does not exist: {found:?}"),
            Err(status) => ensure!(
                status.code() == Code::NotFound,
                "attempt {attempt}: {status:?}"
            ),
        }
    }
    ensure!(
        t.proxy.count("BatchGetItem") == 1 && t.proxy.total() == 1,
        "5 reads of a missing goal made {:?}, not one BatchGetItem",
        t.proxy.counts()
    );
    create(&mut c, "ghost", "Now I exist").await?;
    let goal = get_goal(&mut c, "ghost").await?;
    ensure!(
        goal.goal_id == "ghost" && goal.title == "Now I exist",
        "GetGoal after CreateGoal: {goal:?}"
    );
    Ok(())
}

/// Loop iterations while Redis is down: 7 calls each, so 70 calls.
const OUTAGE_ITERATIONS: u64 = 10;
/// From the restart of Redis until the caches serve again.
const RECOVERY: Duration = Duration::from_secs(5);
/// Longest wait for the loop to get somewhere.
const LOOP_DEADLINE: Duration = Duration::from_secs(120);

/// What the loop leaves after `iterations`: goal g0 retitled `t{n}` with `n` activities of 1,
/// and goals c1..cn created after it.
fn after_iterations(iterations: u64) -> Expected {
    let mut active = vec![format!("t{iterations}")];
    active.extend((1..=iterations).map(|i| format!("c{i}")));
    Expected {
        goal_id: "g0".into(),
        title: format!("t{iterations}"),
        total: iterations as f64,
        active,
    }
}

/// Writes and reads until `stop`: each iteration creates a goal, retitles g0 and logs an activity
/// to it, each followed by reads that must show it. Publishes the iterations done; returns them.
async fn read_write_loop(
    mut c: Client,
    done: watch::Sender<u64>,
    stop: Arc<AtomicBool>,
) -> Result<u64> {
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        i += 1;
        let extra = format!("c{i}");
        create(&mut c, &extra, &extra)
            .await
            .with_context(|| format!("iteration {i}: CreateGoal"))?;
        let goal = get_goal(&mut c, &extra)
            .await
            .with_context(|| format!("iteration {i}: GetGoal of the created goal"))?;
        ensure!(
            goal.title == extra,
            "iteration {i}: GetGoal after CreateGoal: {goal:?}"
        );

        let title = format!("t{i}");
        let updated = retitle(&mut c, "g0", &title)
            .await
            .with_context(|| format!("iteration {i}: UpdateGoal"))?;
        ensure!(
            updated.title == title,
            "iteration {i}: UpdateGoal answered {updated:?}"
        );
        let expected = after_iterations(i);
        let goal = get_goal(&mut c, "g0")
            .await
            .with_context(|| format!("iteration {i}: GetGoal"))?;
        ensure!(
            goal.title == title,
            "iteration {i}: GetGoal after UpdateGoal shows the stale title {:?}",
            goal.title
        );
        let active = active_titles(&mut c)
            .await
            .with_context(|| format!("iteration {i}: ListActiveGoals"))?;
        ensure!(
            active == expected.active,
            "iteration {i}: ListActiveGoals after CreateGoal and UpdateGoal shows {active:?}, not {:?}",
            expected.active
        );

        log(&mut c, "g0", 1.0)
            .await
            .with_context(|| format!("iteration {i}: LogActivity"))?;
        let progress = total(&mut c, "g0")
            .await
            .with_context(|| format!("iteration {i}: GetProgress"))?;
        ensure!(
            progress == Some(expected.total),
            "iteration {i}: GetProgress after LogActivity shows {progress:?}, not {}",
            expected.total
        );
        done.send_replace(i);
    }
    Ok(i)
}

/// Waits until the loop has done `target` iterations; if it ended first, its error.
async fn reach(
    iterations: &mut watch::Receiver<u64>,
    target: u64,
    runner: &mut JoinHandle<Result<u64>>,
) -> Result<()> {
    let reached = tokio::time::timeout(LOOP_DEADLINE, iterations.wait_for(|done| *done >= target))
        .await
        .with_context(|| {
            format!("the loop did not reach {target} iterations in {LOOP_DEADLINE:?}")
        })?
        .is_ok();
    if reached {
        return Ok(());
    }
    match runner.await? {
        Ok(done) => bail!("the loop stopped after {done} iterations"),
        Err(error) => Err(error.context("a call failed")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_mid_run_fails_no_call_serves_nothing_stale_and_recovers() -> Result<()> {
    let mut redis = RedisServer::start().await?;
    let cache = CacheSetup::new("tiered", Some(redis.url()), "outage");
    let t = DynamoStore::start().await?;
    let a = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    // A second instance counted apart: whether it reads what A fills shows that the shared tier
    // serves again, which A alone would hide behind its local tier.
    let b_proxy = DynamoProxy::start(MotoServer::shared().endpoint()).await?;
    let b = sidecar(&t.table_name, &b_proxy.endpoint(), &cache).await?;
    let (mut ca, mut cb) = (a.client().await?, b.client().await?);
    create(&mut ca, "g0", "t0").await?;

    let (done, mut iterations) = watch::channel(0);
    let stop = Arc::new(AtomicBool::new(false));
    let mut runner = tokio::spawn(read_write_loop(ca.clone(), done, stop.clone()));
    reach(&mut iterations, 3, &mut runner).await?;

    redis.kill().await?;
    let killed_at = *iterations.borrow();
    // B caches g0 and the active goals while Redis is down; A's next writes cannot tell it.
    get_goal(&mut cb, "g0")
        .await
        .context("B during the outage")?;
    active_titles(&mut cb)
        .await
        .context("B during the outage")?;
    reach(
        &mut iterations,
        killed_at + 1 + OUTAGE_ITERATIONS,
        &mut runner,
    )
    .await?;

    redis.restart().await?;
    let restarted = Instant::now();
    let restarted_at = *iterations.borrow();
    // At least one whole iteration after the restart, while the sidecars reconnect.
    reach(&mut iterations, restarted_at + 2, &mut runner).await?;
    stop.store(true, Ordering::Release);
    let iterations = runner.await??;

    // Recovery: A's warm reads stay off DynamoDB, what A fills reaches Redis and B reads it
    // without DynamoDB, and B no longer serves what it cached during the outage.
    let mut expected = after_iterations(iterations);
    let mut attempt = 0;
    loop {
        attempt += 1;
        reads_show(&mut ca, &expected, "A after the restart").await?;
        t.proxy.reset();
        reads_show(&mut ca, &expected, "A after the restart, warm").await?;
        let a_requests = t.proxy.counts();

        let fresh = format!("r{attempt}");
        create(&mut ca, &fresh, &fresh).await?;
        log(&mut ca, &fresh, 1.0).await?;
        expected.active.push(fresh.clone());
        // A's reads fill the shared tier...
        ensure!(get_goal(&mut ca, &fresh).await?.title == fresh);
        ensure!(total(&mut ca, &fresh).await? == Some(1.0));
        // ...which B, never having read these keys, reads from Redis.
        b_proxy.reset();
        let goal = get_goal(&mut cb, &fresh).await?;
        ensure!(goal.title == fresh, "B: GetGoal of {fresh}: {goal:?}");
        let progress = total(&mut cb, &fresh).await?;
        ensure!(
            progress == Some(1.0),
            "B: GetProgress of {fresh}: {progress:?}"
        );
        let b_requests = b_proxy.counts();
        let b_stale = mismatch(&mut cb, &expected).await?;

        if a_requests.is_empty() && b_requests.is_empty() && b_stale.is_none() {
            return Ok(());
        }
        ensure!(
            restarted.elapsed() < RECOVERY,
            "not recovered {RECOVERY:?} after Redis restarted: A's warm reads made {a_requests:?}; \
             B's reads of what A filled made {b_requests:?}; B serves {b_stale:?}"
        );
        // Recovery happens inside the sidecars (probe, breaker): nothing to await from here.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
