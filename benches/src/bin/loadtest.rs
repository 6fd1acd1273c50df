//! `loadtest`: the sidecar's cache-hit path under load, against what it cannot beat
//! (issue "Benchmarks", item 4).
//!
//! One run drives, at each concurrency (1 and 32 by default), for a fixed duration after a
//! warm-up, three targets in a closed loop (each worker sends its next call when its last one
//! answers), and records every call's latency:
//!
//! - `sidecar`: GetGoal cache hits through the real sidecar (`goalstore_sidecar::server::run`,
//!   in process, on 127.0.0.1:0), over a `GoalStore` on an embedded `MemoryTable` with the
//!   `local` strategy, holding one goal of the origin fixture, warmed before the run;
//! - `echo`: bare tonic on the same runtime: the generated GoalStore service with a hand-written
//!   GetGoal that returns a pre-built response holding the same goal (so the same bytes on the
//!   wire), no store, no interceptor, no limits;
//! - `redis`: GET of a value of the same byte size (the encoded GetGoalResponse) from a
//!   `redis-server` started for the run (loopback, no persistence, killed at the end), through
//!   one multiplexed async connection of the `redis` crate.
//!
//! The gRPC clients are one tonic channel each (one HTTP/2 connection shared by all workers, as
//! the Redis client is one multiplexed connection). Servers and load generator share one tokio
//! runtime (so they share the machine's cores; redis-server is a process of its own).
//!
//! It reports each latency distribution (p50/p95/p99/max), throughput, and the ratios the issue
//! sets targets for (reported, not asserted): sidecar p99 / echo p99 <= 1.5 at each concurrency,
//! and sidecar throughput / Redis GET throughput >= 0.5 at concurrency 32.
//!
//! `cargo run --release -p goalstore-bench --bin loadtest -- --help`

use anyhow::Context as _;
use clap::Parser;
use goalstore::cache::CacheConfig;
use goalstore::table::MemoryTable;
use goalstore::{Goal, GoalStore, StoreConfig, Strategy};
use goalstore_proto::v1 as pb;
use goalstore_proto::v1::goal_store_client::GoalStoreClient;
use goalstore_proto::v1::goal_store_server::{GoalStore as GoalStoreRpc, GoalStoreServer};
use goalstore_sidecar::server::{Listener, ServeOptions};
use goalstore_tests::servers::RedisServer;
use prost::Message as _;
use serde_json::json;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The sidecar's allocator (see the `mimalloc` feature), so figures are of what ships.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drives GetGoal cache hits through the sidecar, a bare tonic echo of the same size and Redis
/// GETs of the same size, and compares them.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct Args {
    /// Measured time per target and concurrency (after the warm-up).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured time before each measurement.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Calls in flight at once (closed loop), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Do not install the Prometheus recorder (the sidecar binary always installs it).
    #[arg(long)]
    no_metrics: bool,
}

/// One line on stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|c| *c > 0),
        "--concurrency needs at least one value above 0"
    );
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime
        .build()
        .context("starting tokio")?
        .block_on(run(args))
}

/// The goal served: the origin fixture's first goal (recurring, with schedule, progress
/// history, context and rewards), decoded as the store decodes items.
fn fixture_goal() -> anyhow::Result<(Goal, goalstore::table::Item)> {
    let item = goalstore_tests::dynamo::origin_items()?
        .into_iter()
        .find(|item| {
            item.get("EntityType")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|s| s == "Goal")
        })
        .context("the origin fixture has no goal")?;
    Ok((goalstore::item::goal_from_item(&item)?, item))
}

/// GetGoal answers a pre-built response; every other call is UNIMPLEMENTED.
#[derive(Debug, Clone)]
struct Echo {
    response: Arc<pb::GetGoalResponse>,
}

macro_rules! echo_service {
    ($($method:ident($request:ident) -> $response:ident;)*) => {
        #[tonic::async_trait]
        impl GoalStoreRpc for Echo {
            async fn get_goal(
                &self,
                _request: Request<pb::GetGoalRequest>,
            ) -> Result<Response<pb::GetGoalResponse>, Status> {
                Ok(Response::new((*self.response).clone()))
            }
            $(
                async fn $method(
                    &self,
                    _request: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    Err(Status::unimplemented("the echo serves GetGoal only"))
                }
            )*
        }
    };
}

echo_service! {
    batch_get_goals(BatchGetGoalsRequest) -> BatchGetGoalsResponse;
    list_active_goals(ListActiveGoalsRequest) -> ListActiveGoalsResponse;
    list_goals(ListGoalsRequest) -> ListGoalsResponse;
    create_goal(CreateGoalRequest) -> CreateGoalResponse;
    update_goal(UpdateGoalRequest) -> UpdateGoalResponse;
    archive_goal(ArchiveGoalRequest) -> ArchiveGoalResponse;
    log_activity(LogActivityRequest) -> LogActivityResponse;
    list_activities(ListActivitiesRequest) -> ListActivitiesResponse;
    get_progress(GetProgressRequest) -> GetProgressResponse;
    publish_events(PublishEventsRequest) -> PublishEventsResponse;
    stats(StatsRequest) -> StatsResponse;
    invalidate_user(InvalidateUserRequest) -> InvalidateUserResponse;
}

/// The sidecar as it ships: its listener bound as `Listener::bind` binds it (the server sets
/// TCP_NODELAY on each accepted connection).
const SIDECAR: &str = "sidecar";
const ECHO: &str = "echo";
const REDIS: &str = "redis";

/// What one target did at one concurrency.
#[derive(Debug, Clone)]
struct Run {
    target: &'static str,
    concurrency: usize,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    /// Sorted, nanoseconds.
    latencies: Vec<u64>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.calls as f64 / self.seconds
    }

    /// The latency at quantile `q` (0-1), in microseconds.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = (self.latencies.len() as f64 * q).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1000.0
    }

    fn mean_us(&self) -> f64 {
        let sum: u128 = self.latencies.iter().map(|n| u128::from(*n)).sum();
        sum as f64 / self.latencies.len().max(1) as f64 / 1000.0
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "target": self.target,
            "concurrency": self.concurrency,
            "calls": self.calls,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.seconds,
            "throughput_per_s": self.throughput(),
            "latency_us": {
                "mean": self.mean_us(),
                "p50": self.quantile_us(0.50),
                "p95": self.quantile_us(0.95),
                "p99": self.quantile_us(0.99),
                "max": self.quantile_us(1.0),
            },
        })
    }
}

/// Runs `call` from `concurrency` workers in a closed loop for `warmup` (not recorded) and then
/// `duration` (calls started in it are recorded).
async fn drive<F, Fut>(
    target: &'static str,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    call: F,
) -> Run
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let begin = Instant::now();
    let measured_from = begin + warmup;
    let end = measured_from + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                let (mut errors, mut first_error) = (0u64, None);
                loop {
                    let started = Instant::now();
                    if started >= end {
                        break;
                    }
                    let result = call().await;
                    let elapsed = started.elapsed();
                    if started < measured_from {
                        continue;
                    }
                    match result {
                        Ok(()) => latencies.push(elapsed.as_nanos() as u64),
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut run = Run {
        target,
        concurrency,
        calls: 0,
        errors: 0,
        first_error: None,
        seconds: duration.as_secs_f64(),
        latencies: Vec::new(),
    };
    for worker in workers {
        match worker.await {
            Ok((latencies, errors, first_error)) => {
                run.latencies.extend(latencies);
                run.errors += errors;
                if run.first_error.is_none() {
                    run.first_error = first_error;
                }
            }
            Err(error) => {
                run.errors += 1;
                run.first_error.get_or_insert(error.to_string());
            }
        }
    }
    run.latencies.sort_unstable();
    run.calls = run.latencies.len() as u64;
    run
}

async fn connect(address: std::net::SocketAddr) -> anyhow::Result<GoalStoreClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to {address}"))?;
    Ok(GoalStoreClient::new(channel))
}

fn get_goal_call(
    client: GoalStoreClient<Channel>,
    request: pb::GetGoalRequest,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Clone + Send
{
    move || {
        let mut client = client.clone();
        let request = request.clone();
        Box::pin(async move {
            client
                .get_goal(request)
                .await
                .map(drop)
                .map_err(|status| status.to_string())
        })
    }
}

/// A loopback listener on a free port.
fn bind_loopback() -> anyhow::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(socket.listen(1024)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };

    // As the sidecar binary does: the recorder before the store, and its upkeep running.
    let metrics_server = if args.no_metrics {
        None
    } else {
        let handle = goalstore_sidecar::metrics_endpoint::install_recorder()?;
        Some(tokio::spawn(goalstore_sidecar::metrics_endpoint::serve(
            bind_loopback()?,
            handle,
            shutdown(),
        )))
    };

    // The sidecar over a warm local cache, on a listener bound as the sidecar binds it
    // (`Listener::bind`: a plain TcpListener).
    let (goal, item) = fixture_goal()?;
    let table = Arc::new(MemoryTable::default());
    table.insert(item)?;
    let store = GoalStore::new(
        table,
        StoreConfig {
            cache: CacheConfig {
                strategy: Strategy::Local,
                ..CacheConfig::default()
            },
            ..StoreConfig::default()
        },
    )?;
    store.get_goal(&goal.user_id, &goal.goal_id).await?;
    let mut servers = Vec::new();
    let mut addresses = Vec::new();
    let listener = bind_loopback()?;
    addresses.push(listener.local_addr()?);
    let (sidecar_store, stopped) = (store.clone(), shutdown());
    servers.push(tokio::spawn(async move {
        Ok::<_, anyhow::Error>(
            goalstore_sidecar::server::run(
                Listener::Tcp(listener),
                sidecar_store,
                ServeOptions::default(),
                stopped,
            )
            .await?,
        )
    }));

    // The bare echo: tonic as `Server::builder().serve(addr)` sets it up (TCP_NODELAY on).
    let response = pb::GetGoalResponse {
        goal: Some((&goal).into()),
    };
    let echo_listener = bind_loopback()?;
    addresses.push(echo_listener.local_addr()?);
    let incoming =
        tonic::transport::server::TcpIncoming::from(echo_listener).with_nodelay(Some(true));
    let echo = Echo {
        response: Arc::new(response.clone()),
    };
    let echo_shutdown = shutdown();
    servers.push(tokio::spawn(async move {
        Ok::<_, anyhow::Error>(
            tonic::transport::Server::builder()
                .add_service(GoalStoreServer::new(echo))
                .serve_with_incoming_shutdown(incoming, echo_shutdown)
                .await?,
        )
    }));

    let request = pb::GetGoalRequest {
        user_id: goal.user_id.clone(),
        goal_id: goal.goal_id.clone(),
    };
    let mut clients = Vec::new();
    for address in &addresses {
        let client = connect(*address).await?;
        let answer = client
            .clone()
            .get_goal(request.clone())
            .await
            .with_context(|| format!("GetGoal from {address}"))?
            .into_inner();
        anyhow::ensure!(
            answer == response,
            "the sidecar and the echo must answer the same message"
        );
        clients.push(client);
    }
    let message_bytes = response.encoded_len();
    let cached_bytes = goalstore::cache::codec::encode_goal(Some(&goal)).len();

    // Redis, holding the same bytes.
    let redis_server = RedisServer::start().await?;
    let redis = redis::Client::open(redis_server.url())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to redis-server")?;
    const REDIS_KEY: &str = "loadtest:{goal}";
    redis::cmd("SET")
        .arg(REDIS_KEY)
        .arg(response.encode_to_vec())
        .query_async::<()>(&mut redis.clone())
        .await?;
    let value: Vec<u8> = redis::cmd("GET")
        .arg(REDIS_KEY)
        .query_async(&mut redis.clone())
        .await?;
    anyhow::ensure!(value.len() == message_bytes, "redis holds the value");

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    say!(
        "loadtest: goal {} ({:?}); GetGoalResponse {message_bytes} B on the wire, {cached_bytes} B cached; \
         {threads} cores, {} worker threads; {:?} warm-up + {:?} per target and concurrency; \
         Prometheus recorder {}",
        goal.goal_id,
        goal.goal_pattern,
        args.worker_threads.unwrap_or(threads),
        args.warmup,
        args.duration,
        if args.no_metrics { "off" } else { "on" }
    );

    let grpc_targets = [SIDECAR, ECHO];
    let mut runs = Vec::new();
    for &concurrency in &args.concurrency {
        for (target, client) in grpc_targets.into_iter().zip(&clients) {
            let call = get_goal_call(client.clone(), request.clone());
            let run = drive(target, concurrency, args.warmup, args.duration, call).await;
            print_run(&run);
            runs.push(run);
        }
        let redis = redis.clone();
        let redis_call = move || {
            let mut redis = redis.clone();
            async move {
                redis::cmd("GET")
                    .arg(REDIS_KEY)
                    .query_async::<Vec<u8>>(&mut redis)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        };
        let run = drive(REDIS, concurrency, args.warmup, args.duration, redis_call).await;
        print_run(&run);
        runs.push(run);
    }

    let cache = store.stats().cache.unwrap_or_default();
    let (hits, misses) = cache
        .lookups
        .get(&(
            goalstore::cache::Tier::Local,
            goalstore::cache::keys::CacheKind::Goal,
        ))
        .copied()
        .unwrap_or_default();
    say!("sidecar local tier, goal kind: {hits} hits, {misses} misses (the one miss is the warm-up's first read)");

    let find = |target: &str, concurrency: usize| {
        runs.iter()
            .find(|r| r.target == target && r.concurrency == concurrency)
    };
    let mut ratios = Vec::new();
    for &concurrency in &args.concurrency {
        let (Some(sidecar), Some(echo), Some(redis)) = (
            find(SIDECAR, concurrency),
            find(ECHO, concurrency),
            find(REDIS, concurrency),
        ) else {
            continue;
        };
        let p99_ratio = sidecar.quantile_us(0.99) / echo.quantile_us(0.99);
        let p50_ratio = sidecar.quantile_us(0.50) / echo.quantile_us(0.50);
        let throughput_ratio = sidecar.throughput() / redis.throughput();
        say!(
            "c={concurrency} {SIDECAR}: /echo p99 {p99_ratio:.2}x (target <= 1.5: {}), p50 {p50_ratio:.2}x; \
             /redis throughput {throughput_ratio:.2}{}",
            verdict(p99_ratio <= 1.5),
            if concurrency == 32 {
                format!(" (target >= 0.5: {})", verdict(throughput_ratio >= 0.5))
            } else {
                String::new()
            }
        );
        ratios.push(json!({
            "concurrency": concurrency,
            "sidecar": SIDECAR,
            "sidecar_over_echo_p99": p99_ratio,
            "sidecar_over_echo_p50": p50_ratio,
            "sidecar_over_redis_throughput": throughput_ratio,
            "p99_target_met": p99_ratio <= 1.5,
            "throughput_target_met": (concurrency == 32).then_some(throughput_ratio >= 0.5),
        }));
    }

    if let Some(path) = &args.json {
        let document = json!({
            "goal_id": goal.goal_id,
            "message_bytes": message_bytes,
            "cached_bytes": cached_bytes,
            "cores": threads,
            "worker_threads": args.worker_threads.unwrap_or(threads),
            "warmup_s": args.warmup.as_secs_f64(),
            "duration_s": args.duration.as_secs_f64(),
            "prometheus_recorder": !args.no_metrics,
            "sidecar_local_goal_hits": hits,
            "sidecar_local_goal_misses": misses,
            "runs": runs.iter().map(Run::to_json).collect::<Vec<_>>(),
            "ratios": ratios,
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        say!("wrote {}", path.display());
    }

    let _ = stop.send(true);
    for server in servers {
        server.await??;
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server.await?;
    }
    drop(redis_server);
    let failed: u64 = runs.iter().map(|r| r.errors).sum();
    anyhow::ensure!(failed == 0, "{failed} calls failed");
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn print_run(run: &Run) {
    say!(
        "{:>8} c={:<3} {:>9.0} calls/s  p50 {:>8.1} µs  p95 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs  ({} calls, {} errors{})",
        run.target,
        run.concurrency,
        run.throughput(),
        run.quantile_us(0.50),
        run.quantile_us(0.95),
        run.quantile_us(0.99),
        run.quantile_us(1.0),
        run.calls,
        run.errors,
        run.first_error
            .as_deref()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default()
    );
}
