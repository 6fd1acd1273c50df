//! Consistency checker: writers and readers over two sidecars sharing Redis (tiered: a local tier
//! in each, pub/sub invalidation between them), for a bounded time. Every read is checked against
//! the history of acknowledged writes:
//!
//! - through the instance that acknowledged a write, every read that starts after the ack sees it
//!   or something newer (zero stale reads on the same instance);
//! - through the other instance, a read may miss a write for at most the pub/sub window
//!   (`SHARED_WITHIN`, 100 ms, as documented), never longer;
//! - no read returns a version that no write had started before the read ended.
//!
//! Short profile: 4 s. `GOALSTORE_CONSISTENCY_SECS` runs it longer.

use crate::sidecar_cache::{
    create, get_goal, retitle, settled_audits, sidecar, wait_for_subscribers, CacheSetup, Client,
    SHARED_WITHIN, USER,
};
use anyhow::{ensure, Context};
use goalstore_proto::v1 as pb;
use goalstore_tests::servers::RedisServer;
use goalstore_tests::stores::DynamoStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Goals written concurrently; one writer each, alternating the instance it writes through.
pub(crate) const GOALS: usize = 4;
/// Readers per instance.
const READERS: usize = 2;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Write {
    pub(crate) goal: usize,
    pub(crate) version: u64,
    pub(crate) instance: usize,
    pub(crate) started: Instant,
    pub(crate) acked: Instant,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Read {
    /// Whether the read was a listing of the active goals (else GetGoal).
    pub(crate) listing: bool,
    pub(crate) goal: usize,
    pub(crate) instance: usize,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
    pub(crate) version: u64,
}

/// The title of `goal` at `version`: per goal, since a user's active goals never share a title.
pub(crate) fn title(goal: usize, version: u64) -> String {
    format!("v{version} of goal {goal}")
}

pub(crate) fn version_of(title: &str) -> anyhow::Result<u64> {
    title
        .strip_prefix('v')
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("a title no writer wrote: {title:?}"))
}

pub(crate) fn goal_id(goal: usize) -> String {
    format!("c{goal}")
}

/// What the checker found.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) reads: usize,
    /// Of which goals seen in a listing of the active goals (the rest: GetGoal).
    pub(crate) listed: usize,
    pub(crate) writes: usize,
    /// Older than a write the same instance had acknowledged before the read started.
    pub(crate) stale_same_instance: usize,
    /// Older than a write acknowledged through the other instance, within the window (allowed).
    pub(crate) stale_within_window: usize,
    /// Older than a write acknowledged more than the window before the read started.
    pub(crate) stale_past_window: usize,
    /// A version no write had started before the read ended.
    pub(crate) phantom: usize,
    /// The longest a read missed a write acknowledged elsewhere.
    pub(crate) worst_staleness: Duration,
    pub(crate) examples: Vec<String>,
}

pub(crate) fn check(writes: &[Write], reads: &[Read], window: Duration) -> Verdict {
    let mut verdict = Verdict {
        reads: reads.len(),
        writes: writes.len(),
        ..Verdict::default()
    };
    let note = |verdict: &mut Verdict, what: String| {
        if verdict.examples.len() < 5 {
            verdict.examples.push(what);
        }
    };
    for read in reads {
        verdict.listed += usize::from(read.listing);
        let of_goal = || writes.iter().filter(|w| w.goal == read.goal);
        // Version 0 is the create, acknowledged before any reader started.
        let newest_started = of_goal()
            .filter(|w| w.started <= read.ended)
            .map(|w| w.version)
            .max()
            .unwrap_or(0);
        let newest_same = of_goal()
            .filter(|w| w.instance == read.instance && w.acked <= read.started)
            .map(|w| w.version)
            .max()
            .unwrap_or(0);
        let newest_past_window = of_goal()
            .filter(|w| w.acked + window <= read.started)
            .map(|w| w.version)
            .max()
            .unwrap_or(0);
        let newest_acked = of_goal()
            .filter(|w| w.acked <= read.started)
            .map(|w| w.version)
            .max()
            .unwrap_or(0);
        if read.version > newest_started {
            verdict.phantom += 1;
            note(&mut verdict, format!("phantom {read:?}"));
        }
        if read.version < newest_same {
            verdict.stale_same_instance += 1;
            let acked = of_goal()
                .find(|w| w.version == newest_same)
                .map(|w| read.started.saturating_duration_since(w.acked));
            note(
                &mut verdict,
                format!("same instance: {read:?}, v{newest_same} acked {acked:?} before"),
            );
        } else if read.version < newest_past_window {
            verdict.stale_past_window += 1;
            note(
                &mut verdict,
                format!("past the window: {read:?}, v{newest_past_window} acked before"),
            );
        } else if read.version < newest_acked {
            verdict.stale_within_window += 1;
        }
        if read.version < newest_acked {
            // The first write the read missed: how long before the read it was acknowledged.
            if let Some(missed) = of_goal().find(|w| w.version == read.version + 1) {
                verdict.worst_staleness = verdict
                    .worst_staleness
                    .max(read.started.saturating_duration_since(missed.acked));
            }
        }
    }
    verdict
}

async fn writer(
    mut clients: [Client; 2],
    goal: usize,
    until: Instant,
    history: Arc<Mutex<Vec<Write>>>,
) -> anyhow::Result<()> {
    let mut version = 0;
    while Instant::now() < until {
        version += 1;
        let instance = (goal + version as usize) % 2;
        let started = Instant::now();
        retitle(
            &mut clients[instance],
            &goal_id(goal),
            &title(goal, version),
        )
        .await?;
        let acked = Instant::now();
        history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Write {
                goal,
                version,
                instance,
                started,
                acked,
            });
        // Pacing, not synchronisation: a value must live in the caches a while between writes,
        // or every read would miss and the check would prove little.
        tokio::time::sleep(Duration::from_millis(100 + (version * 37) % 150)).await;
    }
    Ok(())
}

/// Reads through `client` until `until`: GetGoal, and every fourth call the active list (each
/// goal in it is a read), recording what each read returned.
pub(crate) async fn reader(
    mut client: Client,
    instance: usize,
    offset: usize,
    until: Instant,
) -> anyhow::Result<Vec<Read>> {
    let mut reads = Vec::new();
    let mut turn = offset;
    while Instant::now() < until {
        turn += 1;
        let started = Instant::now();
        if turn.is_multiple_of(4) {
            // The active goals: one cached list holding every goal's title.
            let goals = client
                .list_active_goals(pb::ListActiveGoalsRequest {
                    user_id: USER.into(),
                })
                .await?
                .into_inner()
                .goals;
            let ended = Instant::now();
            for goal in 0..GOALS {
                let found = goals
                    .iter()
                    .find(|g| g.goal_id == goal_id(goal))
                    .with_context(|| format!("{} missing from the active goals", goal_id(goal)))?;
                reads.push(Read {
                    listing: true,
                    goal,
                    instance,
                    started,
                    ended,
                    version: version_of(&found.title)?,
                });
            }
        } else {
            let goal = turn % GOALS;
            let found = get_goal(&mut client, &goal_id(goal)).await?;
            reads.push(Read {
                listing: false,
                goal,
                instance,
                started,
                ended: Instant::now(),
                version: version_of(&found.title)?,
            });
        }
    }
    Ok(reads)
}

#[tokio::test]
async fn reads_across_two_sidecars_are_never_stale_past_the_pubsub_window() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("GOALSTORE_CONSISTENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let redis = RedisServer::start().await?;
    let _alone = crate::timed_load().await;

    // Every write audited too: the auditor must agree with the checker.
    let cache = CacheSetup::new("tiered", Some(redis.url()), "consistency").audited();
    let t = DynamoStore::start().await?;
    let a = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    let b = sidecar(&t.table_name, &t.proxy.endpoint(), &cache).await?;
    let clients = [a.client().await?, b.client().await?];
    wait_for_subscribers(&cache, 2).await?;
    for goal in 0..GOALS {
        create(&mut clients[0].clone(), &goal_id(goal), &title(goal, 0)).await?;
    }

    let until = Instant::now() + Duration::from_secs(seconds);
    let history = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..GOALS)
        .map(|goal| tokio::spawn(writer(clients.clone(), goal, until, history.clone())))
        .collect();
    let readers: Vec<_> = (0..2 * READERS)
        .map(|r| tokio::spawn(reader(clients[r % 2].clone(), r % 2, r, until)))
        .collect();
    for writer in writers {
        writer.await??;
    }
    let mut reads = Vec::new();
    for reader in readers {
        reads.extend(reader.await??);
    }
    let writes = history.lock().unwrap_or_else(|e| e.into_inner()).clone();

    let verdict = check(&writes, &reads, SHARED_WITHIN);
    let mut audits = Vec::new();
    for client in &clients {
        audits.push(settled_audits(&mut client.clone()).await?);
    }
    eprintln!(
        "consistency ({seconds} s): {} writes, {} reads ({} in listings); stale on the same instance {}, \
         within the {SHARED_WITHIN:?} window {}, past it {}, phantom {}; worst staleness {:?}; \
         auditor (consistent, stale) per sidecar {audits:?}",
        verdict.writes,
        verdict.reads,
        verdict.listed,
        verdict.stale_same_instance,
        verdict.stale_within_window,
        verdict.stale_past_window,
        verdict.phantom,
        verdict.worst_staleness
    );
    ensure!(
        verdict.writes >= GOALS * 5 && verdict.reads >= 100,
        "too little traffic to judge: {verdict:?}"
    );
    ensure!(
        verdict.stale_same_instance == 0 && verdict.stale_past_window == 0 && verdict.phantom == 0,
        "{verdict:?}"
    );
    ensure!(
        audits
            .iter()
            .all(|(consistent, stale)| *consistent > 0 && *stale == 0),
        "the auditor: {audits:?}"
    );
    Ok(())
}

#[test]
fn the_checker_flags_what_it_must() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let writes = [Write {
        goal: 0,
        version: 1,
        instance: 0,
        started: ms(0),
        acked: ms(10),
    }];
    let read = |instance, at: u64, version| Read {
        listing: false,
        goal: 0,
        instance,
        started: ms(at),
        ended: ms(at + 1),
        version,
    };
    let window = Duration::from_millis(100);
    let verdict = check(
        &writes,
        &[
            read(0, 20, 0),  // same instance, after the ack: stale
            read(1, 20, 0),  // other instance, within the window: allowed
            read(1, 200, 0), // other instance, past the window: stale
            read(1, 5, 2),   // a version nobody wrote: phantom
            read(0, 20, 1),  // fine
        ],
        window,
    );
    assert_eq!(verdict.stale_same_instance, 1);
    assert_eq!(verdict.stale_within_window, 1);
    assert_eq!(verdict.stale_past_window, 1);
    assert_eq!(verdict.phantom, 1);
    assert_eq!(verdict.worst_staleness, Duration::from_millis(190));
}
