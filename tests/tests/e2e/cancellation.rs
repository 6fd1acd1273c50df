//! Cancellation as a fault: calls dropped at whatever `.await` they are parked on, against two
//! tiered sidecars sharing one Redis, while Redis and the table are slowed and Redis is cut off.
//!
//! What it injects, at random (seeded: `GOALSTORE_CANCELLATION_SEED` replays a run):
//! - callers: 6, each call with a random deadline of 1-50 ms, either sent as `grpc-timeout` (the
//!   sidecar drops the handler) or kept by the client, which hangs up (the stream is reset);
//!   1 call in 40 on a connection of its own that is dropped whole;
//! - one writer retitling goals through both sidecars; 1 write in 4 with a 1-50 ms deadline (so
//!   some are dropped after the table took them), the rest acknowledged;
//! - each sidecar reaches Redis through its own TCP fault proxy: every 100-400 ms a new mode —
//!   pass, every chunk delayed 30-120 ms, or a partition of 0.3-1.5 s ended by cutting the
//!   connections; the table gets a delay of 0-20 ms on every request;
//! - two checking readers (one per sidecar, long deadlines) recording what they read.
//!
//! What it proves, with the faults off again:
//! - no read on the instance that acknowledged a write returned an older version (throughout),
//!   and no read returned a version no write had started;
//! - every instance leaves degraded mode within its breaker cooldown plus a probe interval
//!   (plus slack for a loaded machine);
//! - the fills in progress and the local leases held go back to 0 on both;
//! - after the pub/sub window, both sidecars and every listing agree with the table;
//! - (reported, not required) what the consistency auditor found, every write audited: while a
//!   writer's Redis calls fail, its DEL lands only at its replay, and another instance may refill
//!   from the not-yet-deleted Redis value meanwhile — stale past the window *during* the faults,
//!   which is what the auditor is for;
//! - the slowest acknowledged write stays within a small multiple of the Redis timeout plus the
//!   table's own latency (a probe times a GetItem straight to the table server every 20 ms).
//!
//! Short profile (the test command): 8 s of chaos, ≈2 500 calls. `GOALSTORE_CANCELLATION_SECS=70`
//! is the long profile (≈22 000 calls).

use crate::consistency::{check, goal_id, reader, title, Write, GOALS};
use crate::faults_redis::wait_subscribed;
use crate::sidecar_cache::{create, settled_audits, Client, SHARED_WITHIN, USER};
use anyhow::{ensure, Context};
use goalstore_proto::v1 as pb;
use goalstore_tests::faults::{Fault, Rule, TcpFaultProxy, TcpMode};
use goalstore_tests::servers::RedisServer;
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

const CALLERS: usize = 6;
/// The sidecars' Redis call deadline, breaker cooldown and probe interval (the defaults).
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
const BREAKER_COOLDOWN: Duration = Duration::from_millis(500);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The most the table's injected delay adds to one request.
const TABLE_DELAY_MAX_MS: u64 = 20;

/// splitmix64: a small seeded generator, so a failing run can be replayed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// What the cancelling callers saw.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    answered: u64,
    /// Cut short by a deadline or a hang-up (either side).
    cancelled: u64,
    /// Anything else, by code: must stay empty.
    failed: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.answered += other.answered;
        self.cancelled += other.cancelled;
        for (code, n) in &other.failed {
            *self.failed.entry(code.clone()).or_default() += n;
        }
    }

    fn record(&mut self, outcome: Result<Result<(), tonic::Status>, tokio::time::error::Elapsed>) {
        self.calls += 1;
        match outcome {
            Ok(Ok(())) => self.answered += 1,
            Err(_) => self.cancelled += 1,
            Ok(Err(status)) => match status.code() {
                Code::DeadlineExceeded | Code::Cancelled => self.cancelled += 1,
                code => {
                    *self
                        .failed
                        .entry(format!("{code:?}: {}", status.message()))
                        .or_default() += 1
                }
            },
        }
    }
}

/// `message`, with `deadline` sent as `grpc-timeout` if any.
fn request<T>(deadline: Option<Duration>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    request
}

/// One random read with a random deadline, sent as `grpc-timeout` or kept by the client.
async fn cancelled_call(
    client: &mut Client,
    rng: &mut Rng,
) -> Result<Result<(), tonic::Status>, tokio::time::error::Elapsed> {
    let deadline = Duration::from_millis(rng.between(1, 50));
    let goal = goal_id(rng.between(0, GOALS as u64 - 1) as usize);
    let server_side = rng.one_in(2);
    let sent = server_side.then_some(deadline);
    // The client keeps its own deadline either way (a little later when the server has one),
    // so a hung call is always dropped.
    let limit = if server_side { deadline * 2 } else { deadline };
    let call = async {
        match rng.between(0, 3) {
            0 => client
                .get_goal(request(
                    sent,
                    pb::GetGoalRequest {
                        user_id: USER.into(),
                        goal_id: goal,
                    },
                ))
                .await
                .map(drop),
            1 => client
                .list_active_goals(request(
                    sent,
                    pb::ListActiveGoalsRequest {
                        user_id: USER.into(),
                    },
                ))
                .await
                .map(drop),
            2 => client
                .get_progress(request(
                    sent,
                    pb::GetProgressRequest {
                        user_id: USER.into(),
                        goal_id: goal,
                    },
                ))
                .await
                .map(drop),
            _ => client
                .batch_get_goals(request(
                    sent,
                    pb::BatchGetGoalsRequest {
                        user_id: USER.into(),
                        goal_ids: (0..GOALS).map(goal_id).collect(),
                    },
                ))
                .await
                .map(drop),
        }
    };
    tokio::time::timeout(limit, call).await
}

async fn caller(
    sidecars: Arc<[SidecarProcess; 2]>,
    clients: [Client; 2],
    seed: u64,
    until: Instant,
) -> anyhow::Result<Tally> {
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    while Instant::now() < until {
        let instance = rng.between(0, 1) as usize;
        let outcome = if rng.one_in(40) {
            // A connection of its own, dropped whole with the call.
            let mut own = sidecars[instance].client().await?;
            cancelled_call(&mut own, &mut rng).await
        } else {
            cancelled_call(&mut clients[instance].clone(), &mut rng).await
        };
        tally.record(outcome);
    }
    Ok(tally)
}

/// Retitles the goals in turn through alternating sidecars. Returns every write: acknowledged
/// ones with their ack time, cancelled ones with an ack time that never comes (they may or may
/// not have landed), and the slowest acknowledged write.
async fn writer(
    clients: [Client; 2],
    seed: u64,
    until: Instant,
) -> anyhow::Result<(Vec<Write>, Duration, u64)> {
    let mut rng = Rng(seed);
    let never = Instant::now() + Duration::from_secs(86_400);
    let mut versions = [0u64; GOALS];
    let mut writes = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut cancelled = 0;
    let mut turn = 0usize;
    while Instant::now() < until {
        turn += 1;
        let goal = turn % GOALS;
        versions[goal] += 1;
        let version = versions[goal];
        let instance = (turn / GOALS) % 2;
        let cancel = rng.one_in(4);
        let deadline = if cancel {
            Duration::from_millis(rng.between(1, 50))
        } else {
            Duration::from_secs(10)
        };
        let mut request = tonic::Request::new(pb::UpdateGoalRequest {
            user_id: USER.into(),
            goal_id: goal_id(goal),
            title: Some(title(goal, version)),
            ..Default::default()
        });
        request.set_timeout(deadline);
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            deadline + Duration::from_millis(5),
            clients[instance].clone().update_goal(request),
        )
        .await;
        let acked = match outcome {
            Ok(Ok(_)) => {
                let took = started.elapsed();
                slowest = slowest.max(took);
                Instant::now()
            }
            Ok(Err(status))
                if cancel && matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled) =>
            {
                cancelled += 1;
                never
            }
            Err(_) if cancel => {
                cancelled += 1;
                never
            }
            Ok(Err(status)) => anyhow::bail!("an acknowledged write failed: {status:?}"),
            Err(_) => anyhow::bail!("a write hung past its 10 s deadline"),
        };
        writes.push(Write {
            goal,
            version,
            instance,
            started,
            acked,
        });
        // Pacing: values must live in the caches between writes for reads to be worth checking.
        tokio::time::sleep(Duration::from_millis(rng.between(20, 80))).await;
    }
    Ok((writes, slowest, cancelled))
}

/// Switches each Redis proxy to a new random mode every 100-400 ms, and the table's delay.
async fn chaos(
    proxies: Arc<[TcpFaultProxy; 2]>,
    table: Arc<DynamoStore>,
    seed: u64,
    until: Instant,
) -> [u64; 3] {
    let mut rng = Rng(seed);
    // [delays, partitions, passes]
    let mut counts = [0u64; 3];
    let mut partitioned_until = [None::<Instant>; 2];
    while Instant::now() < until {
        table.proxy.faults().clear();
        table.proxy.faults().inject(Rule::always(
            None,
            Fault::Delay(Duration::from_millis(rng.between(0, TABLE_DELAY_MAX_MS))),
        ));
        for (i, proxy) in proxies.iter().enumerate() {
            if let Some(end) = partitioned_until[i] {
                if Instant::now() < end {
                    continue;
                }
                partitioned_until[i] = None;
                proxy.set_mode(TcpMode::Pass);
                proxy.cut_connections();
            }
            match rng.between(0, 9) {
                0 => {
                    proxy.set_mode(TcpMode::Partitioned);
                    partitioned_until[i] =
                        Some(Instant::now() + Duration::from_millis(rng.between(300, 1500)));
                    counts[1] += 1;
                }
                1..=6 => {
                    proxy.set_mode(TcpMode::Delay(Duration::from_millis(rng.between(30, 120))));
                    counts[0] += 1;
                }
                _ => {
                    proxy.set_mode(TcpMode::Pass);
                    counts[2] += 1;
                }
            }
        }
        // The chaos is paced by the clock: that is what it injects.
        tokio::time::sleep(Duration::from_millis(rng.between(100, 400))).await;
    }
    counts
}

/// The table's own latency under this load: a GetItem straight to the server every 20 ms.
/// Returns the slowest.
async fn table_latency(table: Arc<DynamoStore>, until: Instant) -> anyhow::Result<Duration> {
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        table
            .raw_item(&format!("USER#{USER}"), &format!("GOAL#{}", goal_id(0)))
            .await?;
        slowest = slowest.max(started.elapsed());
        // A sample rate, not synchronisation.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(slowest)
}

async fn stats(client: &mut Client) -> anyhow::Result<pb::StatsResponse> {
    Ok(client.stats(pb::StatsRequest {}).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_leave_nothing_stale_stuck_or_leaked() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("GOALSTORE_CANCELLATION_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("GOALSTORE_CANCELLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("cancellation: seed {seed} (GOALSTORE_CANCELLATION_SEED={seed} replays it)");
    let _alone = crate::timed_load().await;

    let redis = RedisServer::start().await?;
    let proxies = Arc::new([
        TcpFaultProxy::start(&redis.url()).await?,
        TcpFaultProxy::start(&redis.url()).await?,
    ]);
    let t = Arc::new(DynamoStore::start().await?);
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let timeout = format!("{}ms", REDIS_TIMEOUT.as_millis());
    let mut sidecars = Vec::new();
    for proxy in proxies.iter() {
        let url = proxy.redis_url();
        sidecars.push(
            SidecarProcess::start(&[
                ("GOALSTORE_TABLE", table.as_str()),
                ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
                ("GOALSTORE_CACHE", "tiered"),
                ("GOALSTORE_CACHE_NAMESPACE", "cancel"),
                ("GOALSTORE_REDIS_URL", url.as_str()),
                ("GOALSTORE_REDIS_TIMEOUT", timeout.as_str()),
                ("GOALSTORE_AUDIT_SAMPLE_RATE", "1"),
            ])
            .await?,
        );
    }
    let sidecars: Arc<[SidecarProcess; 2]> = Arc::new(
        <[SidecarProcess; 2]>::try_from(sidecars).map_err(|_| anyhow::anyhow!("two sidecars"))?,
    );
    let clients = [sidecars[0].client().await?, sidecars[1].client().await?];
    wait_subscribed(&redis, "cancel", 2).await?;
    for goal in 0..GOALS {
        create(&mut clients[0].clone(), &goal_id(goal), &title(goal, 0)).await?;
    }

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let chaos_task = tokio::spawn(chaos(proxies.clone(), t.clone(), seed, until));
    let writer_task = tokio::spawn(writer(clients.clone(), seed ^ 1, until));
    let table_task = tokio::spawn(table_latency(t.clone(), until));
    let readers: Vec<_> = (0..2)
        .map(|i| tokio::spawn(reader(clients[i].clone(), i, i, until)))
        .collect();
    let callers: Vec<_> = (0..CALLERS as u64)
        .map(|i| {
            tokio::spawn(caller(
                sidecars.clone(),
                clients.clone(),
                seed.wrapping_add(100 + i),
                until,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for caller in callers {
        tally.add(&caller.await??);
    }
    let (writes, slowest_write, cancelled_writes) = writer_task.await??;
    let mut reads = Vec::new();
    for reader in readers {
        reads.extend(reader.await??);
    }
    let [delays, partitions, passes] = chaos_task.await?;
    let slowest_table = table_task.await??;

    // Faults off.
    t.proxy.faults().clear();
    for proxy in proxies.iter() {
        proxy.set_mode(TcpMode::Pass);
        proxy.cut_connections();
    }
    let faults_ended = Instant::now();
    let mut recovered = [None; 2];
    let mut drained = [None; 2];
    loop {
        for (i, client) in clients.iter().enumerate() {
            let s = stats(&mut client.clone()).await?;
            if recovered[i].is_none() && !s.degraded {
                recovered[i] = Some(faults_ended.elapsed());
            }
            if drained[i].is_none() && s.flights_in_progress == 0 && s.local_leases_held == 0 {
                drained[i] = Some(faults_ended.elapsed());
            }
        }
        if recovered.iter().chain(&drained).all(Option::is_some) {
            break;
        }
        ensure!(
            faults_ended.elapsed() < Duration::from_secs(10),
            "10 s after the faults: recovered {recovered:?}, drained {drained:?}"
        );
        // Recovery happens on the sidecars' probe tasks: nothing to await from here.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Every sidecar and listing agrees with the table once the pub/sub window has passed.
    tokio::time::sleep(SHARED_WITHIN).await;
    let mut stale_after = Vec::new();
    for goal in 0..GOALS {
        let item = t
            .raw_item(&format!("USER#{USER}"), &format!("GOAL#{}", goal_id(goal)))
            .await?
            .context("the goal item")?;
        let stored = item
            .get("title")
            .and_then(|v| v.as_s().ok())
            .context("a title")?
            .clone();
        for (i, client) in clients.iter().enumerate() {
            let got = client
                .clone()
                .get_goal(pb::GetGoalRequest {
                    user_id: USER.into(),
                    goal_id: goal_id(goal),
                })
                .await?
                .into_inner()
                .goal
                .context("no goal")?
                .title;
            let listed = client
                .clone()
                .list_active_goals(pb::ListActiveGoalsRequest {
                    user_id: USER.into(),
                })
                .await?
                .into_inner()
                .goals
                .into_iter()
                .find(|g| g.goal_id == goal_id(goal))
                .map(|g| g.title);
            if got != stored || listed.as_deref() != Some(stored.as_str()) {
                stale_after.push(format!(
                    "{}: table {stored:?}, sidecar {i} get {got:?} list {listed:?}",
                    goal_id(goal)
                ));
            }
        }
    }

    let verdict = check(&writes, &reads, SHARED_WITHIN);
    for (i, sidecar) in sidecars.iter().enumerate() {
        for line in sidecar
            .logs()?
            .lines()
            .filter(|l| l.contains("stale cache entry"))
        {
            eprintln!("sidecar {i}: {line}");
        }
    }
    let mut audits = Vec::new();
    for client in &clients {
        audits.push(settled_audits(&mut client.clone()).await?);
    }
    let recovery = recovered
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_default();
    let drain = drained.iter().flatten().max().copied().unwrap_or_default();
    let acked = writes.len() as u64 - cancelled_writes;
    eprintln!(
        "cancellation ({seconds} s, seed {seed}): {} calls ({} answered, {} cancelled, failed {:?}); \
         {acked} acknowledged writes ({cancelled_writes} cancelled), slowest {slowest_write:?}; \
         slowest table request {slowest_table:?}; \
         {} checked reads: stale on the writing instance {}, phantom {}; \
         redis modes: {delays} delays, {partitions} partitions, {passes} passes; \
         after the faults: out of degraded mode in {recovery:?}, flights and leases at 0 in {drain:?}, \
         stale past the window {}; auditor (consistent, stale) per sidecar {audits:?}",
        tally.calls,
        tally.answered,
        tally.cancelled,
        tally.failed,
        verdict.reads,
        verdict.stale_same_instance,
        verdict.phantom,
        stale_after.len()
    );
    ensure!(tally.failed.is_empty(), "calls failed: {:?}", tally.failed);
    ensure!(
        tally.cancelled > tally.calls / 4 && partitions > 0,
        "too little cancelled or cut off to judge: {tally:?}, {partitions} partitions"
    );
    ensure!(
        verdict.stale_same_instance == 0 && verdict.phantom == 0,
        "{verdict:?}"
    );
    ensure!(
        stale_after.is_empty(),
        "stale after the faults: {stale_after:?}"
    );
    // Cooldown plus a probe interval, plus a second for a shared 2-core machine.
    let recovery_bound = BREAKER_COOLDOWN + PROBE_INTERVAL + Duration::from_secs(1);
    ensure!(
        recovery <= recovery_bound,
        "out of degraded mode only after {recovery:?} (bound {recovery_bound:?})"
    );
    // A write's own Redis work is one round of DELs under the timeout; its table work is two
    // requests (read, conditional write), each as slow as the slowest the probe saw plus the
    // injected delay. The cancelled callers keep the table server busy (their requests are
    // still served after the callers are gone), so most of a slow write is the table's.
    let table_share = (slowest_table + Duration::from_millis(TABLE_DELAY_MAX_MS)) * 2;
    let write_bound = REDIS_TIMEOUT * 4 + table_share + Duration::from_millis(200);
    ensure!(
        slowest_write <= write_bound,
        "the slowest acknowledged write took {slowest_write:?} (bound {write_bound:?})"
    );
    Ok(())
}
