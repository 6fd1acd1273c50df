//! Criterion micro-benchmarks of goalstore's hot paths (issue "Benchmarks", item 3).
//!
//! - `local_memory`: bytes per entry of a full local tier (printed: the weigher's count and the
//!   resident set's growth), and a raw tier hit;
//! - `batch_loader`: `BatchLoader::load_many` of 1, 100 and 1000 keys over an embedded
//!   `MemoryTable` without latency, reported per key, from criterion's `block_on` and from a task
//!   on a worker thread (`_in_task`), beside the same reads sent straight to the table (the
//!   difference is the loader's own cost);
//! - `codec`: encode/decode of each cached kind, on the origin fixture's goals;
//! - `item`, `wire`: a goal from its DynamoDB item (the miss path) and to its proto (the sidecar);
//! - `keys`: building cache keys, with and without validating the ids;
//! - `cache_hit`: `GoalStore::get_goal` on a warm key with the `local`, `redis` and `tiered`
//!   strategies (Redis: a `redis-server` of our own on a free loopback port, no persistence,
//!   killed at the end; skipped with a message when it cannot start), then the local hit again
//!   with the Prometheus recorder the sidecar installs; for Redis also the hit from a task and a
//!   bare GET of the same bytes. Each strategy is followed by a printed per-call latency
//!   distribution (criterion reports means of batches; the p50 target is per call).
//!
//! The printed figures are computed in the groups' setup, so they are printed (and redis-server
//! started) whatever the name filter.
//!
//! Run: `cargo bench -p goalstore-bench --bench micro -- --warm-up-time 1 --measurement-time 3`
//! (a name filter after `--` runs a subset, e.g. `-- codec`). Figures are in docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use goalstore::batch::{BatchConfig, BatchLoader};
use goalstore::cache::codec::{self, OwnedProgress};
use goalstore::cache::keys::KeySpace;
use goalstore::cache::local::{LocalTier, ENTRY_OVERHEAD};
use goalstore::cache::redis::RedisConfig;
use goalstore::item::{goal_from_item, goal_to_item};
use goalstore::keys::{goal_key, GoalId, ItemKey, UserId};
use goalstore::table::{Item, MemoryTable, Table, MAX_BATCH_GET_KEYS};
use goalstore::{CacheConfig, Goal, GoalStore, StoreConfig, Strategy};
use goalstore_proto::v1 as pb;
use goalstore_tests::servers::RedisServer;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sidecar's allocator (see the `mimalloc` feature), so figures are of what ships.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One line of figures, on stdout beside criterion's own.
macro_rules! report {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The goal items of tests/fixtures/origin-items.json, as written by the origin service.
fn fixture_items() -> Vec<Item> {
    goalstore_tests::dynamo::origin_items()
        .expect("tests/fixtures/origin-items.json parses")
        .into_iter()
        .filter(|item| {
            item.get("EntityType")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|s| s == "Goal")
        })
        .collect()
}

/// The fixture's goals, decoded as the store decodes items.
fn fixture_goals() -> Vec<Goal> {
    fixture_items()
        .iter()
        .map(|item| goal_from_item(item).expect("fixture goals decode"))
        .collect()
}

/// The realistic goal every single-goal benchmark uses: the fixture's first (a recurring goal
/// with a schedule, progress history, context and rewards).
fn fixture_goal() -> Goal {
    fixture_goals().remove(0)
}

fn with_id(goal: &Goal, goal_id: String) -> Goal {
    Goal {
        goal_id,
        ..goal.clone()
    }
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// p50/p90/p99/max of per-call latencies.
fn distribution(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index]
    };
    format!(
        "n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    )
}

/// Memory of a full local tier: what its weigher counts and what the process really holds.
fn local_memory(c: &mut Criterion) {
    let goals = fixture_goals();
    let capacity = CacheConfig::default().local_capacity_bytes;
    let space = KeySpace::new("gs").expect("valid namespace");
    let user = UserId::parse(&goals[0].user_id).expect("valid user id");
    let ttl = Duration::from_secs(3600);

    // The fixture's goals in turn, each under its own id, encoded as a fill encodes them.
    let entry = |i: usize| {
        let goal = with_id(&goals[i % goals.len()], format!("bench-goal-{i:08}"));
        let key = space.goal(&user, &GoalId::parse(&goal.goal_id).expect("valid goal id"));
        let bytes = codec::encode_goal(Some(&goal));
        (key, bytes)
    };
    // Fills `tier` with entries `range`. Returns the encoded bytes and key bytes filled.
    let fill = |tier: &LocalTier, range: std::ops::Range<usize>| {
        let (mut encoded, mut key_bytes) = (0u64, 0u64);
        for i in range {
            let (key, bytes) = entry(i);
            encoded += bytes.len() as u64;
            key_bytes += key.text.len() as u64;
            let lease = tier.begin_fill(&key);
            tier.complete_fill(&key, lease, bytes, ttl);
        }
        (encoded, key_bytes)
    };
    let n = goals.len();
    let estimate = (0..n)
        .map(|i| {
            let (key, bytes) = entry(i);
            (key.text.len() + bytes.len()) as u64 + u64::from(ENTRY_OVERHEAD)
        })
        .sum::<u64>()
        / n as u64;
    // Just below the bound, nothing evicted: what an entry really costs the process.
    let below = (capacity / estimate * 95 / 100) as usize;
    let tier = LocalTier::new(capacity, 0.0);
    let before = rss_bytes();
    let (encoded, key_bytes) = fill(&tier, 0..below);
    let (entries, weight) = tier.size();
    let after = rss_bytes();
    let mean_encoded = encoded as f64 / below as f64;
    let mean_key = key_bytes as f64 / below as f64;
    report!(
        "local_memory: capacity {capacity} B; {entries} entries of mean encoded value {mean_encoded:.0} B, key {mean_key:.0} B; \
         weigher {weight} B = {:.0} B/entry ({:.2}x encoded)",
        weight as f64 / entries as f64,
        weight as f64 / entries as f64 / mean_encoded
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per_entry = after.saturating_sub(before) as f64 / entries as f64;
        report!(
            "local_memory: resident set grew {} B = {per_entry:.0} B/entry ({:.2}x encoded, {:.2}x the weigher's count; target <= 2x encoded + 200 = {:.0} B: {})",
            after.saturating_sub(before),
            per_entry / mean_encoded,
            per_entry / (weight as f64 / entries as f64),
            2.0 * mean_encoded + 200.0,
            if per_entry <= 2.0 * mean_encoded + 200.0 { "met" } else { "MISSED" }
        );
    }
    // Past the bound: the weight stays within it.
    fill(&tier, below..below * 13 / 10);
    let (entries, weight) = tier.size();
    report!(
        "local_memory: after {} fills (1.3x what fits): {entries} entries, weight {weight} B of {capacity} B",
        below * 13 / 10
    );

    let present: Vec<_> = (0..below * 13 / 10)
        .rev()
        .map(|i| entry(i).0)
        .filter(|key| tier.get(key).is_some())
        .take(1000)
        .collect();
    let mut group = c.benchmark_group("local_tier");
    let mut i = 0;
    group.bench_function("get_hit_full_tier", |b| {
        b.iter(|| {
            i = (i + 1) % present.len();
            black_box(tier.get(&present[i]))
        })
    });
    group.finish();
}

fn batch_loader(c: &mut Criterion) {
    let rt = runtime();
    let goal = fixture_goal();
    let user = UserId::parse(&goal.user_id).expect("valid user id");
    let table = Arc::new(MemoryTable::default());
    let keys: Vec<ItemKey> = (0..1000)
        .map(|i| {
            let goal = with_id(&goal, format!("bench-goal-{i:04}"));
            table
                .insert(goal_to_item(&goal).expect("goal encodes"))
                .expect("insert");
            goal_key(&user, &GoalId::parse(&goal.goal_id).expect("valid goal id"))
        })
        .collect();
    let loader = {
        let _entered = rt.enter();
        BatchLoader::spawn(table.clone(), BatchConfig::default())
    };
    let mut group = c.benchmark_group("batch_loader");
    for n in [1usize, 100, 1000] {
        let keys = keys[..n].to_vec();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("load_many", n), &keys, |b, keys| {
            b.to_async(&rt).iter_batched(
                || keys.clone(),
                |keys| {
                    let loader = loader.clone();
                    async move {
                        let items = loader.load_many(keys).await;
                        debug_assert!(items.iter().all(|i| matches!(i, Ok(Some(_)))));
                        items
                    }
                },
                BatchSize::SmallInput,
            )
        });
        // The same, called from a task on a worker thread (as a handler calls it) rather than
        // from criterion's `block_on` on the main thread: no hop between threads to wake the
        // caller.
        group.bench_with_input(
            BenchmarkId::new("load_many_in_task", n),
            &keys,
            |b, keys| {
                b.iter_custom(|iters| {
                    let (loader, keys) = (loader.clone(), keys.clone());
                    rt.block_on(rt.spawn(async move {
                        let started = Instant::now();
                        for _ in 0..iters {
                            black_box(loader.load_many(keys.clone()).await);
                        }
                        started.elapsed()
                    }))
                    .expect("the benchmark task")
                })
            },
        );
        // The same reads straight to the table, one request per 100 keys: the table's own cost.
        group.bench_with_input(BenchmarkId::new("table_direct", n), &keys, |b, keys| {
            b.to_async(&rt).iter_batched(
                || keys.clone(),
                |keys| {
                    let table = table.clone();
                    async move {
                        let mut items = Vec::with_capacity(keys.len());
                        for chunk in keys.chunks(MAX_BATCH_GET_KEYS) {
                            let output = table.batch_get_items(chunk).await.expect("read");
                            items.extend(output.items);
                        }
                        items
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    let goals = fixture_goals();
    let goal = goals[0].clone();
    let progress = OwnedProgress {
        user_id: goal.user_id.clone(),
        progress: goal.progress.clone(),
        state: None,
    };
    let one = codec::encode_goal(Some(&goal));
    let many = codec::encode_goals(&goals);
    let owned = codec::encode_progress(&progress);
    for (i, g) in goals.iter().enumerate() {
        report!(
            "codec: fixture goal {i} ({:?}): {} B encoded, {} B as proto",
            g.goal_pattern,
            codec::encode_goal(Some(g)).len(),
            prost::Message::encoded_len(&pb::Goal::from(g))
        );
    }
    report!(
        "codec: goal {} B, active goals ({} goals) {} B, progress {} B",
        one.len(),
        goals.len(),
        many.len(),
        owned.len()
    );

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(one.len() as u64));
    group.bench_function("encode_goal", |b| {
        b.iter(|| codec::encode_goal(Some(black_box(&goal))))
    });
    group.bench_function("decode_goal", |b| {
        b.iter(|| codec::decode_goal(black_box(&one)).expect("decodes"))
    });
    group.throughput(Throughput::Bytes(many.len() as u64));
    group.bench_function("encode_goals", |b| {
        b.iter(|| codec::encode_goals(black_box(&goals)))
    });
    group.bench_function("decode_goals", |b| {
        b.iter(|| codec::decode_goals(black_box(&many)).expect("decodes"))
    });
    group.throughput(Throughput::Bytes(owned.len() as u64));
    group.bench_function("encode_progress", |b| {
        b.iter(|| codec::encode_progress(black_box(&progress)))
    });
    group.bench_function("decode_progress", |b| {
        b.iter(|| codec::decode_progress(black_box(&owned)).expect("decodes"))
    });
    group.finish();

    let item = fixture_items().remove(0);
    let mut group = c.benchmark_group("item");
    group.bench_function("goal_from_item", |b| {
        b.iter(|| goal_from_item(black_box(&item)).expect("decodes"))
    });
    // What the table and the batch loader pay per copy of an item they hand on.
    group.bench_function("clone_and_drop", |b| b.iter(|| black_box(&item).clone()));
    group.finish();
    let mut group = c.benchmark_group("wire");
    group.bench_function("goal_to_proto", |b| {
        b.iter(|| pb::Goal::from(black_box(&goal)))
    });
    group.finish();
}

fn keys(c: &mut Criterion) {
    let space = KeySpace::new("gs").expect("valid namespace");
    let (user_text, goal_text) = (
        "3f1c2a9e-5b7d-4e21-9a0c-8d6e4b2f1a77",
        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    );
    let user = UserId::parse(user_text).expect("valid user id");
    let goal = GoalId::parse(goal_text).expect("valid goal id");
    let mut group = c.benchmark_group("keys");
    group.bench_function("goal", |b| {
        b.iter(|| space.goal(black_box(&user), black_box(&goal)))
    });
    group.bench_function("progress", |b| b.iter(|| space.progress(black_box(&goal))));
    group.bench_function("active_goals", |b| {
        b.iter(|| space.active_goals(black_box(&user)))
    });
    // What `get_goal` does before its lookup: validate both ids, then build the key.
    group.bench_function("goal_from_unvalidated_ids", |b| {
        b.iter(|| {
            let user = UserId::parse(black_box(user_text)).expect("valid");
            let goal = GoalId::parse(black_box(goal_text)).expect("valid");
            space.goal(&user, &goal)
        })
    });
    group.finish();
}

/// A store over a `MemoryTable` holding `goal`, with `strategy`, its goal read once (warm).
fn warm_store(
    rt: &tokio::runtime::Runtime,
    strategy: Strategy,
    redis_url: Option<&str>,
    goal: &Goal,
) -> GoalStore {
    let table = Arc::new(MemoryTable::default());
    table
        .insert(goal_to_item(goal).expect("goal encodes"))
        .expect("insert");
    let config = StoreConfig {
        cache: CacheConfig {
            strategy,
            namespace: format!("bench-{strategy}"),
            redis: RedisConfig {
                urls: vec![redis_url.unwrap_or("redis://127.0.0.1:1/").into()],
                ..RedisConfig::default()
            },
            ..CacheConfig::default()
        },
        ..StoreConfig::default()
    };
    rt.block_on(async {
        let store = GoalStore::new(table, config).expect("valid configuration");
        for _ in 0..3 {
            store
                .get_goal(&goal.user_id, &goal.goal_id)
                .await
                .expect("the seeded goal");
        }
        store
    })
}

/// Per-call latencies of warm `get_goal`s, one after another, in 5 rounds of `calls / 5`: the
/// distribution of the round with the median p50, and every round's p50 (this machine's
/// figures vary from one moment to the next).
fn per_call(rt: &tokio::runtime::Runtime, store: &GoalStore, goal: &Goal, calls: usize) -> String {
    let mut rounds: Vec<(Duration, String)> = (0..5)
        .map(|_| {
            rt.block_on(async {
                let mut samples = Vec::with_capacity(calls / 5);
                for _ in 0..calls / 5 {
                    let started = Instant::now();
                    black_box(store.get_goal(&goal.user_id, &goal.goal_id).await).expect("hit");
                    samples.push(started.elapsed());
                }
                samples.sort_unstable();
                let p50 = samples[samples.len() / 2];
                (p50, distribution(samples))
            })
        })
        .collect();
    let p50s: Vec<String> = rounds.iter().map(|(p50, _)| format!("{p50:?}")).collect();
    rounds.sort_by_key(|(p50, _)| *p50);
    format!("{} (p50 of each round: {})", rounds[2].1, p50s.join(", "))
}

fn hits(store: &GoalStore) -> String {
    let Some(stats) = store.stats().cache else {
        return "no cache".into();
    };
    stats
        .lookups
        .iter()
        .filter(|((_, kind), _)| kind.as_str() == "goal")
        .map(|((tier, _), (hits, misses))| {
            format!("{}: {hits} hits, {misses} misses", tier.as_str())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Times `call` in a loop on a task of `rt` (a worker thread), as a handler would call it.
fn in_task<F, Fut>(b: &mut criterion::Bencher<'_>, rt: &tokio::runtime::Runtime, call: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future + Send,
    Fut::Output: Send,
{
    b.iter_custom(|iters| {
        let call = call.clone();
        rt.block_on(rt.spawn(async move {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(call().await);
            }
            started.elapsed()
        }))
        .expect("the benchmark task")
    });
}

/// A bare GET of the goal's cached bytes through a multiplexed connection of the `redis` crate,
/// from a task: what a Redis hit cannot beat.
fn bench_raw_get(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    url: &str,
    goal: &Goal,
) {
    let connection = rt.block_on(async {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("SET")
            .arg("bench:raw")
            .arg(codec::encode_goal(Some(goal)).to_vec())
            .query_async::<()>(&mut connection)
            .await?;
        Ok::<_, redis::RedisError>(connection)
    });
    match connection {
        Ok(connection) => {
            group.bench_function("redis_raw_get_in_task", |b| {
                let connection = connection.clone();
                in_task(b, rt, move || {
                    let mut connection = connection.clone();
                    async move {
                        redis::cmd("GET")
                            .arg("bench:raw")
                            .query_async::<Vec<u8>>(&mut connection)
                            .await
                            .expect("GET")
                    }
                })
            });
        }
        Err(error) => report!("cache_hit: no raw GET baseline: {error}"),
    }
}

fn cache_hit(c: &mut Criterion) {
    let rt = runtime();
    let goal = fixture_goal();
    let redis = match rt.block_on(RedisServer::start()) {
        Ok(server) => Some(server),
        Err(error) => {
            report!("cache_hit: redis and tiered skipped: redis-server did not start: {error:#}");
            None
        }
    };
    let redis_url = redis.as_ref().map(RedisServer::url);
    let mut group = c.benchmark_group("cache_hit");
    let mut distributions = Vec::new();
    for strategy in [Strategy::Local, Strategy::Redis, Strategy::Tiered] {
        if strategy != Strategy::Local && redis_url.is_none() {
            continue;
        }
        let store = warm_store(&rt, strategy, redis_url.as_deref(), &goal);
        group.bench_function(strategy.as_str(), |b| {
            b.to_async(&rt)
                .iter(|| store.get_goal(&goal.user_id, &goal.goal_id))
        });
        let calls = if strategy == Strategy::Redis {
            20_000
        } else {
            200_000
        };
        distributions.push(format!(
            "cache_hit/{strategy} per call: {}; {}",
            per_call(&rt, &store, &goal, calls),
            hits(&store)
        ));
        if strategy == Strategy::Redis {
            // A Redis hit waits on the connection's task: called from a worker thread (as a
            // handler calls it), then a bare GET of the same bytes on a connection of its own.
            let (user_id, goal_id) = (goal.user_id.clone(), goal.goal_id.clone());
            group.bench_function("redis_in_task", |b| {
                let (store, user_id, goal_id) = (store.clone(), user_id.clone(), goal_id.clone());
                in_task(b, &rt, move || {
                    let (store, user_id, goal_id) =
                        (store.clone(), user_id.clone(), goal_id.clone());
                    async move { store.get_goal(&user_id, &goal_id).await }
                })
            });
            if let Some(url) = &redis_url {
                bench_raw_get(&mut group, &rt, url, &goal);
            }
        }
    }
    // The goal above is the fixture's richest; each of its goals, one store each, shows how a
    // hit's cost follows the goal's size and documents.
    let per_goal: Vec<String> = fixture_goals()
        .iter()
        .enumerate()
        .map(|(i, goal)| {
            let store = warm_store(&rt, Strategy::Local, None, goal);
            let bytes = codec::encode_goal(Some(goal)).len();
            format!(
                "goal {i} ({:?}, {bytes} B): {}",
                goal.goal_pattern,
                per_call(&rt, &store, goal, 50_000)
            )
        })
        .collect();
    distributions.push(format!(
        "cache_hit/local per fixture goal:\n  {}",
        per_goal.join("\n  ")
    ));
    // The sidecar installs the Prometheus recorder before building its store; with it, every
    // call records its latency histogram and the hit counters are live.
    match goalstore_sidecar::metrics_endpoint::install_recorder() {
        Ok(handle) => {
            let upkeep = rt.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    handle.run_upkeep();
                }
            });
            let store = warm_store(&rt, Strategy::Local, None, &goal);
            group.bench_function("local_with_prometheus_recorder", |b| {
                b.to_async(&rt)
                    .iter(|| store.get_goal(&goal.user_id, &goal.goal_id))
            });
            distributions.push(format!(
                "cache_hit/local_with_prometheus_recorder per call: {}; {}",
                per_call(&rt, &store, &goal, 200_000),
                hits(&store)
            ));
            upkeep.abort();
        }
        Err(error) => report!("cache_hit: no Prometheus recorder: {error}"),
    }
    group.finish();
    for line in distributions {
        report!("{line}");
    }
    drop(redis);
}

criterion_group!(benches, local_memory, batch_loader, codec, keys, cache_hit);
criterion_main!(benches);
