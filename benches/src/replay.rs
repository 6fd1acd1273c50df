//! Replays a trace against one store: per-user order, bounded concurrency, latencies, stale-read
//! checks, and (for the local strategy) the trace of cache key accesses.
//!
//! Scheduling: the dispatcher walks the trace in order. Each operation waits for the previous
//! operation of the same user to finish (so a user's operations run in trace order and never
//! overlap), then for one of `concurrency` running slots. At most `lookahead` operations are
//! dispatched and unfinished at once, which bounds memory and keeps the global order close to
//! the trace's. Latency is measured from the moment an operation gets its running slot until it
//! returns: the store's latency, not the queueing in front of it.
//!
//! Warm-up: the first `warmup` operations are replayed first, all of them to completion; then
//! the caller takes its statistics and the measured part starts. Warm-up operations are checked
//! for stale reads like the others, but their latencies are not kept.
//!
//! The other writer: an `External` entry either writes a new title straight to the table (read
//! the item, conditional put over its `updated_at`) and then calls `apply_events` with
//! `GoalUpdated`, or calls `apply_events` with `ProgressCalculated` carrying the goal's current
//! progress. Its table requests are counted apart (class `external`).

use anyhow::Context as _;
use chrono::Utc;
use goalstore::cache::codec::{self, OwnedProgress};
use goalstore::cache::keys::{CacheKey, KeySpace};
use goalstore::events::{stale_keys, written_keys};
use goalstore::keys::{goal_key, GoalId, UserId};
use goalstore::table::{Condition, Table};
use goalstore::{
    Error, Event, EventKind, GoalStatus, GoalStore, GoalUpdate, NewActivity, NewGoal, Timestamp,
};
use indicatif::ProgressBar;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};

use crate::keytrace::{KeyTrace, Touch};
use crate::table::{OpContext, OP_CONTEXT};
use crate::truth::Truth;
use crate::workload::{target_for, ExternalChange, Op, OpKind, Trace, UpdateChange};

/// How to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// Operations running at once.
    pub concurrency: usize,
    /// Operations dispatched and unfinished at once (running or waiting for their user).
    pub lookahead: usize,
    /// Stop dispatching after this long, counted from the end of the warm-up (the rest of the
    /// trace is not replayed).
    pub duration: Option<Duration>,
    /// Operations at the start of the trace replayed before measuring: they warm the cache and
    /// are checked for stale reads, but their latencies are not kept and the statistics are
    /// taken after them.
    pub warmup: u64,
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok,
    Stale(String),
    Failed(String),
}

/// What a replay measured.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Latencies in microseconds, by [`OpKind::index`].
    pub latencies: Vec<Vec<u32>>,
    /// Failed operations, by kind.
    pub errors: Vec<u64>,
    /// Reads that did not reflect an acknowledged write, by kind.
    pub stale: Vec<u64>,
    /// The first few stale reads and failures, described.
    pub stale_examples: Vec<String>,
    pub error_examples: Vec<String>,
    /// From the first measured dispatch to the last completion.
    pub wall: Duration,
    /// Operations replayed and measured (after the warm-up).
    pub ops: u64,
    /// Operations replayed to warm up.
    pub warmup_ops: u64,
    /// Index of the first key-trace event of the measured part.
    pub key_trace_from: usize,
}

const EXAMPLES: usize = 5;

/// Everything the operations share.
struct Shared {
    store: GoalStore,
    /// The table the other writer writes to (the store's table, counted).
    table: Arc<dyn Table>,
    truth: Truth,
    keys: KeySpace,
    key_trace: Option<Mutex<KeyTrace>>,
    trace: Arc<Trace>,
    results: Mutex<Replayed>,
    started: Instant,
}

/// The store a replay runs against, and what it needs beside it.
#[derive(Debug)]
pub struct Subject {
    pub store: GoalStore,
    /// The table the other writer writes to (the store's table, counted).
    pub table: Arc<dyn Table>,
    /// The replayer's record, as seeded.
    pub truth: Truth,
    /// The cache namespace of the store.
    pub namespace: String,
    /// When given, receives the cache key accesses.
    pub key_trace: Option<KeyTrace>,
}

/// Replays `trace` against `subject`; calls `warmed` once the warm-up operations are all done
/// and before any measured one starts (to take the statistics the measurement starts from).
pub async fn replay(
    trace: Arc<Trace>,
    subject: Subject,
    config: &ReplayConfig,
    bar: &ProgressBar,
    warmed: impl FnOnce(),
) -> anyhow::Result<(Replayed, Option<KeyTrace>)> {
    let kinds = OpKind::ALL.len();
    let shared = Arc::new(Shared {
        store: subject.store,
        table: subject.table,
        truth: subject.truth,
        keys: KeySpace::new(&subject.namespace).context("cache namespace")?,
        key_trace: subject.key_trace.map(Mutex::new),
        trace: trace.clone(),
        results: Mutex::new(Replayed {
            latencies: vec![Vec::new(); kinds],
            errors: vec![0; kinds],
            stale: vec![0; kinds],
            ..Replayed::default()
        }),
        started: Instant::now(),
    });
    bar.set_length(trace.ops.len() as u64);
    bar.set_position(0);
    let window = Arc::new(Semaphore::new(config.lookahead.max(1)));
    let running = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut previous: Vec<Option<oneshot::Receiver<()>>> =
        (0..trace.user_goals.len()).map(|_| None).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut dispatched = 0u64;
    let warmup = (config.warmup as usize).min(trace.ops.len());
    let mut warmed = Some(warmed);
    let mut measuring_since = shared.started;
    let mut key_trace_from = 0;
    if warmup == 0 {
        if let Some(warmed) = warmed.take() {
            warmed();
        }
    }
    for index in 0..trace.ops.len() {
        if index == warmup && index > 0 {
            while let Some(done) = tasks.join_next().await {
                done.context("a replayed operation panicked")?;
            }
            if let Some(warmed) = warmed.take() {
                warmed();
            }
            key_trace_from = shared.key_trace.as_ref().map_or(0, |t| {
                t.lock().unwrap_or_else(|e| e.into_inner()).events().len()
            });
            measuring_since = Instant::now();
        }
        if config
            .duration
            .is_some_and(|limit| index >= warmup && measuring_since.elapsed() >= limit)
        {
            bar.set_length(dispatched);
            break;
        }
        let slot = window.clone().acquire_owned().await?;
        while let Some(done) = tasks.try_join_next() {
            done.context("a replayed operation panicked")?;
        }
        let user = trace.ops[index].user() as usize;
        let (done, finished) = oneshot::channel::<()>();
        let before = previous[user].replace(finished);
        let (shared, running, trace, bar) =
            (shared.clone(), running.clone(), trace.clone(), bar.clone());
        tasks.spawn(async move {
            if let Some(before) = before {
                // An error means the sender is gone: the previous operation is over either way.
                let _ = before.await;
            }
            let Ok(permit) = running.acquire_owned().await else {
                return;
            };
            let op = &trace.ops[index];
            let begun = Instant::now();
            let at = begun - shared.started;
            let (outcome, touches) = OP_CONTEXT
                .scope(OpContext::new(op.kind()), shared.run(op))
                .await;
            let elapsed = begun.elapsed();
            drop(permit);
            shared.finish(op.kind(), elapsed, index >= warmup, outcome, at, touches);
            drop(done);
            drop(slot);
            bar.inc(1);
        });
        dispatched += 1;
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a replayed operation panicked")?;
    }
    if let Some(warmed) = warmed.take() {
        // The whole trace was warm-up: nothing is measured.
        warmed();
        measuring_since = Instant::now();
    }
    let wall = measuring_since.elapsed();
    let shared = Arc::into_inner(shared).context("replay tasks still hold the state")?;
    let mut results = shared
        .results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    results.wall = wall;
    results.warmup_ops = dispatched.min(warmup as u64);
    results.ops = dispatched - results.warmup_ops;
    results.key_trace_from = key_trace_from;
    let key_trace = shared
        .key_trace
        .map(|t| t.into_inner().unwrap_or_else(|e| e.into_inner()));
    Ok((results, key_trace))
}

impl Shared {
    fn finish(
        &self,
        kind: OpKind,
        elapsed: Duration,
        measured: bool,
        outcome: Outcome,
        at: Duration,
        touches: Vec<Touch>,
    ) {
        {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
            if measured {
                results.latencies[kind.index()].push(micros);
            }
            match outcome {
                Outcome::Ok => {}
                Outcome::Stale(why) => {
                    results.stale[kind.index()] += 1;
                    if results.stale_examples.len() < EXAMPLES {
                        results.stale_examples.push(format!("{kind}: {why}"));
                    }
                }
                Outcome::Failed(why) => {
                    results.errors[kind.index()] += 1;
                    if results.error_examples.len() < EXAMPLES {
                        results.error_examples.push(format!("{kind}: {why}"));
                    }
                }
            }
        }
        if let Some(trace) = &self.key_trace {
            trace
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(at, touches);
        }
    }

    fn user(&self, user: u32) -> UserId {
        UserId::parse(&self.truth.ids().user(user)).unwrap_or_else(|_| unreachable_id())
    }

    fn goal(&self, goal: u32) -> GoalId {
        GoalId::parse(&self.truth.ids().goal(goal)).unwrap_or_else(|_| unreachable_id())
    }

    fn stale(&self, user: u32, goal: u32, event: &EventKind) -> Vec<Touch> {
        stale_keys(&self.keys, &self.user(user), &self.goal(goal), event)
            .into_iter()
            .map(|key| Touch::Invalidate { key })
            .collect()
    }

    /// What a write of `event` did to the cache: the keys it wrote through (`values`: the
    /// encoded sizes, in order; `None` for a size the replayer does not see) and the ones it
    /// dropped (see `goalstore::events::written_keys`). A patched key (the active list) stays
    /// as it was to the optimum: cached, it holds the new version until the old one's expiry;
    /// absent, it stays absent.
    fn written(
        &self,
        user: u32,
        goal: u32,
        event: &EventKind,
        values: &[Option<usize>],
    ) -> Vec<Touch> {
        let written = written_keys(&self.keys, &self.user(user), &self.goal(goal), event);
        // An update or archive that leaves pattern and target alone (the trace's never change
        // them) keeps the progress key (`progress::depends_on_change`).
        let keeps_progress = matches!(event, EventKind::GoalUpdated | EventKind::GoalArchived);
        let progress = self.progress_key(goal);
        let mut touches: Vec<Touch> = written
            .stale
            .into_iter()
            .filter(|key| !(keeps_progress && key.text == progress.text))
            .map(|key| Touch::Invalidate { key })
            .collect();
        for (key, size) in written.through.into_iter().zip(values) {
            touches.push(match size {
                Some(value_bytes) => Touch::Put {
                    key,
                    value_bytes: *value_bytes,
                },
                None => Touch::PutAgain { key },
            });
        }
        touches
    }

    /// An update, archive or log starts from the goal as cached (one lookup; retries read the
    /// table).
    fn write_starts(&self, user: u32, goal: u32) -> Touch {
        Touch::AccessAgain {
            key: self.keys.goal(&self.user(user), &self.goal(goal)),
        }
    }

    fn progress_key(&self, goal: u32) -> CacheKey {
        self.keys.progress(&self.goal(goal))
    }

    /// The size of a goal's progress entry as the local tier holds it (the progress state
    /// included), or of `owned` (without it) when no local tier does.
    fn progress_bytes(&self, goal: u32, owned: &OwnedProgress) -> usize {
        self.store
            .cache()
            .and_then(|cache| cache.peek_local(&self.progress_key(goal)))
            .map_or_else(
                || codec::encode_progress(owned).len(),
                |(bytes, _)| bytes.len(),
            )
    }

    /// Runs one entry; returns how it ended and what it did to the cache.
    async fn run(&self, op: &Op) -> (Outcome, Vec<Touch>) {
        match self.execute(op).await {
            Ok(result) => result,
            Err(error) => (Outcome::Failed(format!("{error:#}")), Vec::new()),
        }
    }

    async fn execute(&self, op: &Op) -> anyhow::Result<(Outcome, Vec<Touch>)> {
        let ids = self.truth.ids();
        let mut touches = Vec::new();
        let outcome = match op {
            Op::ListActive { user } => {
                let goals = self.store.list_active_goals(&ids.user(*user)).await?;
                touches.push(Touch::Access {
                    key: self.keys.active_goals(&self.user(*user)),
                    value_bytes: codec::encode_goals(&goals).len(),
                });
                self.truth.check_active(*user, &goals)
            }
            Op::GetGoal { user, goal } => {
                let key = self.keys.goal(&self.user(*user), &self.goal(*goal));
                match self
                    .store
                    .get_goal(&ids.user(*user), &ids.goal(*goal))
                    .await
                {
                    Ok(found) => {
                        touches.push(Touch::Access {
                            key,
                            value_bytes: codec::encode_goal(Some(&found)).len(),
                        });
                        self.truth.check_goal(*goal, &found)
                    }
                    Err(Error::NotFound { .. }) => {
                        touches.push(Touch::Access {
                            key,
                            value_bytes: codec::encode_goal(None).len(),
                        });
                        self.truth.check_missing(*goal)
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Op::BatchGet { user, goals } => {
                let wanted: Vec<String> = goals.iter().map(|g| ids.goal(*g)).collect();
                let batch = self.store.get_goals(&ids.user(*user), &wanted).await?;
                let mut why = None;
                for goal in goals {
                    let id = ids.goal(*goal);
                    let key = self.keys.goal(&self.user(*user), &self.goal(*goal));
                    let (value_bytes, problem) = match batch.goals.iter().find(|g| g.goal_id == id)
                    {
                        Some(found) => (
                            codec::encode_goal(Some(found)).len(),
                            self.truth.check_goal(*goal, found),
                        ),
                        None => (
                            codec::encode_goal(None).len(),
                            self.truth.check_missing(*goal),
                        ),
                    };
                    touches.push(Touch::Access { key, value_bytes });
                    why = why.or(problem);
                }
                why
            }
            Op::GetProgress { user, goal } => {
                let progress = self
                    .store
                    .get_progress(&ids.user(*user), &ids.goal(*goal))
                    .await?;
                let owned = OwnedProgress {
                    user_id: ids.user(*user),
                    progress,
                    state: None,
                };
                touches.push(Touch::Access {
                    key: self.progress_key(*goal),
                    value_bytes: self.progress_bytes(*goal, &owned),
                });
                self.truth.check_progress(*goal, &owned.progress)
            }
            Op::LogActivity { user, goal, value } => {
                // It starts from the cached goal and the progress state cached beside the
                // progress (one lookup each; retries read the table).
                touches.push(self.write_starts(*user, *goal));
                touches.push(Touch::AccessAgain {
                    key: self.progress_key(*goal),
                });
                let logged = self
                    .store
                    .log_activity(&ids.user(*user), &ids.goal(*goal), NewActivity::new(*value))
                    .await?;
                let progress_bytes = self.progress_bytes(
                    *goal,
                    &OwnedProgress {
                        user_id: ids.user(*user),
                        progress: logged.progress.clone(),
                        state: None,
                    },
                );
                touches.extend(self.written(
                    *user,
                    *goal,
                    &EventKind::ActivityLogged,
                    &[None, Some(progress_bytes)],
                ));
                self.truth.goal(*goal).progress = logged.progress;
                None
            }
            Op::Create { user, goal } => {
                // The rules read the user's active list (through the cache).
                touches.push(Touch::AccessAgain {
                    key: self.keys.active_goals(&self.user(*user)),
                });
                let spec = &self.trace.goals[*goal as usize];
                let mut new =
                    NewGoal::new(spec.title.clone(), spec.pattern, target_for(spec.pattern));
                new.goal_id = Some(ids.goal(*goal));
                let created = self.store.create_goal(&ids.user(*user), new).await?;
                let size = codec::encode_goal(Some(&created)).len();
                touches.extend(self.written(*user, *goal, &EventKind::GoalCreated, &[Some(size)]));
                let mut truth = self.truth.goal(*goal);
                truth.exists = true;
                truth.status = created.status;
                // A new goal stores the defaults (as the existing handlers' create does); what a
                // progress read answers is the progress of no activity, e.g. a limit goal's
                // average of 0 over its empty window.
                truth.progress = goalstore::progress::compute(&created, &[], chrono::Utc::now());
                None
            }
            Op::Update { user, goal, change } => {
                let update = match change {
                    UpdateChange::Title(title) => GoalUpdate {
                        title: Some(title.clone()),
                        ..GoalUpdate::default()
                    },
                    UpdateChange::Pause => GoalUpdate {
                        status: Some(GoalStatus::Paused),
                        ..GoalUpdate::default()
                    },
                    UpdateChange::Resume => GoalUpdate {
                        status: Some(GoalStatus::Active),
                        ..GoalUpdate::default()
                    },
                };
                touches.push(self.write_starts(*user, *goal));
                let updated = self
                    .store
                    .update_goal(&ids.user(*user), &ids.goal(*goal), update)
                    .await?;
                let size = codec::encode_goal(Some(&updated)).len();
                touches.extend(self.written(*user, *goal, &EventKind::GoalUpdated, &[Some(size)]));
                let mut truth = self.truth.goal(*goal);
                truth.title = updated.title;
                truth.status = updated.status;
                None
            }
            Op::Archive { user, goal } => {
                touches.push(self.write_starts(*user, *goal));
                let archived = self
                    .store
                    .archive_goal(&ids.user(*user), &ids.goal(*goal))
                    .await?;
                let size = codec::encode_goal(Some(&archived)).len();
                touches.extend(self.written(*user, *goal, &EventKind::GoalArchived, &[Some(size)]));
                self.truth.goal(*goal).status = archived.status;
                None
            }
            Op::External { user, goal, change } => {
                self.external(*user, *goal, change, &mut touches).await?;
                None
            }
        };
        Ok((outcome.map_or(Outcome::Ok, Outcome::Stale), touches))
    }

    /// The other writer: changes the table, then tells the store.
    async fn external(
        &self,
        user: u32,
        goal: u32,
        change: &ExternalChange,
        touches: &mut Vec<Touch>,
    ) -> anyhow::Result<()> {
        let ids = self.truth.ids();
        let (user_id, goal_id) = (self.user(user), self.goal(goal));
        match change {
            ExternalChange::Title(title) => {
                let key = goal_key(&user_id, &goal_id);
                let item = self
                    .table
                    .get_item(&key)
                    .await?
                    .context("the other writer found no goal item")?;
                let mut changed = goalstore::item::goal_from_item(&item)?;
                let previous = changed.updated_at.clone();
                let now = Utc::now();
                let floor = previous.instant().unwrap_or(now) + chrono::Duration::microseconds(1);
                changed.title = title.clone();
                changed.updated_at = Timestamp::from_instant(now.max(floor));
                let written = goalstore::item::goal_over_item(&changed, item)?;
                self.table
                    .put_item(
                        written,
                        Some(Condition::AttributeEquals {
                            attribute: "updated_at".into(),
                            value: aws_sdk_dynamodb::types::AttributeValue::S(
                                previous.as_str().to_owned(),
                            ),
                        }),
                    )
                    .await?;
                self.store
                    .apply_events(&[Event {
                        user_id: ids.user(user),
                        goal_id: ids.goal(goal),
                        kind: EventKind::GoalUpdated,
                    }])
                    .await?;
                touches.extend(self.stale(user, goal, &EventKind::GoalUpdated));
                self.truth.goal(goal).title = title.clone();
            }
            ExternalChange::ProgressRecalculated => {
                let progress = self.truth.goal(goal).progress.clone();
                let kind = EventKind::ProgressCalculated(progress.clone());
                self.store
                    .apply_events(&[Event {
                        user_id: ids.user(user),
                        goal_id: ids.goal(goal),
                        kind: kind.clone(),
                    }])
                    .await?;
                touches.extend(self.stale(user, goal, &kind));
                touches.push(Touch::Put {
                    key: self.progress_key(goal),
                    value_bytes: codec::encode_progress(&OwnedProgress {
                        user_id: ids.user(user),
                        progress,
                        state: None,
                    })
                    .len(),
                });
            }
        }
        Ok(())
    }
}

/// Ids built by [`crate::truth::Ids`] are always valid; a failure here is a bug of the bench.
fn unreachable_id<T>() -> T {
    panic!("the benchmark built an invalid id")
}
