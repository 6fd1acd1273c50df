//! Load and soak through the sidecar: a bounded number of mixed requests at a fixed concurrency,
//! tiered cache on real Redis over the DynamoDB-compatible server. Zero errors, and flat memory
//! once the cache is full: the sidecar's RSS (from `/proc/<pid>/status`) may grow at most
//! `GOALSTORE_SOAK_RSS_GROWTH_MB` after the warm-up (the first fifth of the requests). Then a
//! graceful shutdown under load: SIGTERM while 64 callers keep calling; the sidecar exits 0 within
//! its grace, every call either succeeds or is refused (never served), none fails.
//!
//! Short profile (the test command): 60 000 requests at concurrency 64. Long profile:
//! `GOALSTORE_SOAK_REQUESTS=2000000` (and `GOALSTORE_SOAK_CONCURRENCY`) — see docs/reliability.md.

use crate::sidecar_cache::Client;
use crate::store::goal_items;
use anyhow::{ensure, Context};
use goalstore_proto::v1 as pb;
use goalstore_tests::ops::{send_signal, start_sidecar};
use goalstore_tests::servers::RedisServer;
use goalstore_tests::stores::DynamoStore;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

const USERS: usize = 20;
const GOALS_PER_USER: usize = 10;
/// Calls the tail load makes before SIGTERM.
const TAIL_BEFORE_TERM: u64 = 1_000;
/// gRPC connections the callers share.
const CONNECTIONS: usize = 8;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of `pid`, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

fn user(n: usize) -> String {
    format!("soak{}", n % USERS)
}

fn goal(n: usize) -> String {
    format!("g{:04}", (n / USERS) % GOALS_PER_USER)
}

/// Request number `i` of the mix, made by caller `worker`: 70% GetGoal, 10% BatchGetGoals
/// (5 ids), 10% ListActiveGoals, 9.9% GetProgress, 0.1% UpdateGoal (which invalidates, so reads
/// keep refilling; more writes would measure the DynamoDB-compatible server, not the sidecar). Reads spread over every user's goals; a caller writes only its own goal, so writes
/// never contend (a contended update gives up after 5 attempts, by design).
async fn call(c: &mut Client, i: u64, worker: usize) -> Result<(), tonic::Status> {
    // Fibonacci hashing: which goal is read does not follow which operation it is.
    let n = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize;
    let write = i % 1000 == 999;
    let (user, goal) = if write {
        (user(worker), goal(worker))
    } else {
        (user(n), goal(n))
    };
    match if write { 99 } else { i % 100 } {
        0..=69 => {
            c.get_goal(pb::GetGoalRequest {
                user_id: user,
                goal_id: goal,
            })
            .await?;
        }
        70..=79 => {
            c.batch_get_goals(pb::BatchGetGoalsRequest {
                user_id: user,
                goal_ids: (0..5).map(|k| format!("g{k:04}")).collect(),
            })
            .await?;
        }
        80..=89 => {
            c.list_active_goals(pb::ListActiveGoalsRequest { user_id: user })
                .await?;
        }
        70..=99 if !write => {
            c.get_progress(pb::GetProgressRequest {
                user_id: user,
                goal_id: goal,
            })
            .await?;
        }
        _ => {
            c.update_goal(pb::UpdateGoalRequest {
                user_id: user,
                goal_id: goal,
                title: Some(format!("title {i}")),
                ..Default::default()
            })
            .await?;
        }
    }
    Ok(())
}

/// Whether a failed call was refused by a closing sidecar rather than failed by it: UNAVAILABLE
/// (the listener closed), or the client transport's own report of a call never served — queued
/// when the connection closed (CANCELLED "connection closed" or "connection was not ready"), or
/// on a stream above the last one
/// a GOAWAY(NO_ERROR) promised to serve.
fn refused_by_closing(status: &tonic::Status) -> bool {
    let transport = std::error::Error::source(status)
        .map(|source| format!("{source:?}"))
        .unwrap_or_default();
    status.code() == Code::Unavailable
        || (status.code() == Code::Cancelled
            && (transport.contains("connection closed")
                || transport.contains("connection was not ready")))
        || (transport.contains("GoAway") && transport.contains("NO_ERROR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_soak_has_no_errors_flat_memory_and_a_graceful_shutdown() -> anyhow::Result<()> {
    let requests: u64 = env_or("GOALSTORE_SOAK_REQUESTS", 20_000);
    let concurrency: usize = env_or("GOALSTORE_SOAK_CONCURRENCY", 64);
    let growth_bound: u64 = env_or("GOALSTORE_SOAK_RSS_GROWTH_MB", 32) * 1024 * 1024;
    ensure!(
        concurrency <= USERS * GOALS_PER_USER,
        "one goal to write per caller"
    );
    let _alone = crate::timed_load().await;

    let redis = RedisServer::start().await?;
    let t = DynamoStore::start().await?;
    for u in 0..USERS {
        t.seed(goal_items(&user(u), GOALS_PER_USER)?).await?;
    }
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = goalstore_tests::servers::MotoServer::shared().endpoint();
    let redis_url = redis.url();
    let mut sidecar = start_sidecar(
        &[
            ("GOALSTORE_TABLE", table.as_str()),
            ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint),
            ("GOALSTORE_CACHE", "tiered"),
            ("GOALSTORE_REDIS_URL", redis_url.as_str()),
            ("GOALSTORE_REDIS_TIMEOUT", "500ms"),
            ("GOALSTORE_SHUTDOWN_GRACE", "5s"),
            ("GOALSTORE_MAX_IN_FLIGHT", "4096"),
            // Every write audited: the auditor must report the soak 100% consistent.
            ("GOALSTORE_AUDIT_SAMPLE_RATE", "1"),
        ],
        true,
    )
    .await?;
    let pid = sidecar.pid().context("the sidecar runs")?;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(sidecar.client().await?);
    }

    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let warm_at = requests / 5;
    let (warm_tx, warm_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let mut c = clients[w % CONNECTIONS].clone();
            let (next, errors, first_error) = (next.clone(), errors.clone(), first_error.clone());
            let warm_tx = warm_tx.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return;
                    }
                    if i == warm_at {
                        warm_tx.send_replace(true);
                    }
                    if let Err(status) = call(&mut c, i, w).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert_with(|| format!("request {i}: {status:?}"));
                    }
                }
            })
        })
        .collect();
    // RSS: once at the end of the warm-up, then every 250 ms until the load ends.
    let mut warm_rx = warm_rx;
    warm_rx.wait_for(|warm| *warm).await?;
    let rss_warm = rss(pid)?;
    let warm_elapsed = started.elapsed();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut most = 0;
            let mut ticks = tokio::time::interval(Duration::from_millis(250));
            while !done.load(Ordering::Acquire) {
                ticks.tick().await;
                most = most.max(rss(pid).unwrap_or(0));
            }
            most
        })
    };
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    let rss_max = sampler.await?.max(rss(pid)?);
    let rss_end = rss(pid)?;
    let stats = clients[0].stats(pb::StatsRequest {}).await?.into_inner();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "soak: {requests} requests at concurrency {concurrency} in {elapsed:.1?} \
         ({:.0}/s; warm-up {warm_elapsed:.1?}); errors {}; RSS after warm-up {:.1} MiB, \
         max {:.1} MiB, end {:.1} MiB, growth {:.1} MiB (bound {:.0} MiB); local entries {}, \
         local bytes {}, fills {}, refused fills {}, degraded {}",
        requests as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        mib(rss_warm),
        mib(rss_max),
        mib(rss_end),
        mib(rss_max.saturating_sub(rss_warm)),
        mib(growth_bound),
        stats.local_entries,
        stats.local_weight_bytes,
        stats.fills,
        stats.fills_refused,
        stats.degraded,
    );
    ensure!(
        errors.load(Ordering::Relaxed) == 0,
        "{} errors, the first: {:?}",
        errors.load(Ordering::Relaxed),
        first_error.lock().unwrap_or_else(|e| e.into_inner())
    );
    ensure!(
        rss_max.saturating_sub(rss_warm) <= growth_bound,
        "RSS grew {:.1} MiB after the warm-up (bound {:.0} MiB)",
        mib(rss_max.saturating_sub(rss_warm)),
        mib(growth_bound)
    );
    ensure!(!stats.degraded, "Redis stayed healthy");
    let (consistent, stale) = crate::sidecar_cache::settled_audits(&mut clients[0]).await?;
    eprintln!("soak: the auditor checked {consistent} entries consistent, {stale} stale");
    ensure!(
        consistent > 0 && stale == 0,
        "the auditor over the soak: {consistent} consistent, {stale} stale"
    );

    // Graceful shutdown under load.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls_before_term, served) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let running = Arc::new(tokio::sync::Notify::new());
    let tail: Vec<_> = (0..concurrency)
        .map(|w| {
            let mut c = clients[w % CONNECTIONS].clone();
            let (stop, calls, served) = (stop.clone(), calls_before_term.clone(), served.clone());
            let running = running.clone();
            tokio::spawn(async move {
                let mut refused = 0u64;
                let mut i = w as u64;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    calls.fetch_add(1, Ordering::Relaxed);
                    // Reads only: a write would be a second request per call in the drain.
                    match call(&mut c, (i / 90) * 1000 + i % 90, w).await {
                        Ok(()) => {
                            if served.fetch_add(1, Ordering::Relaxed) + 1 == TAIL_BEFORE_TERM {
                                running.notify_one();
                            }
                        }
                        // Refused, never served: the listener closed (UNAVAILABLE), or the client
                        // had the call queued or sent above the GOAWAY's last stream when the
                        // drained connection closed (the client transport's own error).
                        Err(status) if refused_by_closing(&status) => {
                            refused += 1;
                            if refused > 3 {
                                return Ok(());
                            }
                        }
                        Err(status) => anyhow::bail!("during the shutdown: {status:?}"),
                    }
                }
                Ok(())
            })
        })
        .collect();
    // The signal comes once the tail load is running.
    running.notified().await;
    let term = Instant::now();
    send_signal(pid, "TERM")?;
    let status = tokio::time::timeout(Duration::from_secs(10), sidecar.wait())
        .await
        .context("the sidecar exits within its grace (5 s) after SIGTERM")??;
    let exited = term.elapsed();
    stop.store(true, Ordering::Release);
    for task in tail {
        task.await??;
    }
    ensure!(status.success(), "exit status {status}");
    eprintln!(
        "soak shutdown: SIGTERM under {concurrency} callers; exit 0 after {exited:.1?}; \
         {} of {} calls served by the tail load, the rest refused, none failed",
        served.load(Ordering::Relaxed),
        calls_before_term.load(Ordering::Relaxed)
    );
    Ok(())
}
