//! The workload: a seeded population of users and goals, and the trace of operations every
//! strategy replays.
//!
//! Everything here is a pure function of [`WorkloadConfig`] (its `seed` included): the same
//! configuration always gives the same goals and the same trace, so every cache strategy replays
//! exactly the same operations in the same per-user order.
//!
//! The generator simulates the goals' states while it draws, so every operation in the trace is
//! valid when replayed in per-user order: activities are only logged to active goals, only
//! active or paused goals are updated or archived, and a user always keeps at least one goal that
//! is not archived.

use goalstore::{GoalPattern, Period, Target, Timestamp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The kinds of operations in a trace, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `list_active_goals`
    ListActive,
    /// `get_goal`
    GetGoal,
    /// `get_goals`
    BatchGet,
    /// `get_progress`
    GetProgress,
    /// `log_activity`
    LogActivity,
    /// `create_goal`
    Create,
    /// `update_goal`
    Update,
    /// `archive_goal`
    Archive,
    /// Another writer changed the table; then `apply_events`.
    External,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 9] = [
        OpKind::ListActive,
        OpKind::GetGoal,
        OpKind::BatchGet,
        OpKind::GetProgress,
        OpKind::LogActivity,
        OpKind::Create,
        OpKind::Update,
        OpKind::Archive,
        OpKind::External,
    ];

    /// The short name used in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::ListActive => "list",
            OpKind::GetGoal => "get",
            OpKind::BatchGet => "batch",
            OpKind::GetProgress => "progress",
            OpKind::LogActivity => "log",
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Archive => "archive",
            OpKind::External => "external",
        }
    }

    /// Whether the operation only reads through the store.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            OpKind::ListActive | OpKind::GetGoal | OpKind::BatchGet | OpKind::GetProgress
        )
    }

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Relative weights of the store operations (external events are drawn separately, see
/// [`WorkloadConfig::external_rate`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpMix {
    /// `(kind, weight)`; weights need not sum to 100.
    pub weights: Vec<(OpKind, f64)>,
}

impl Default for OpMix {
    /// Read-heavy, as the goals screens are: 95% reads, 5% writes.
    fn default() -> Self {
        Self {
            weights: vec![
                (OpKind::ListActive, 40.0),
                (OpKind::GetGoal, 20.0),
                (OpKind::BatchGet, 10.0),
                (OpKind::GetProgress, 25.0),
                (OpKind::LogActivity, 3.0),
                (OpKind::Create, 0.5),
                (OpKind::Update, 1.0),
                (OpKind::Archive, 0.5),
            ],
        }
    }
}

impl FromStr for OpMix {
    type Err = String;

    /// `list=40,get=20,batch=10,progress=25,log=3,create=0.5,update=1,archive=0.5`; kinds left
    /// out get weight 0.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not NAME=WEIGHT"))?;
            let kind = OpKind::ALL
                .into_iter()
                .filter(|k| *k != OpKind::External)
                .find(|k| k.as_str() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "`{name}` is not one of list, get, batch, progress, log, create, update, archive"
                    )
                })?;
            let weight: f64 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{weight}` is not a number"))?;
            if !weight.is_finite() || weight < 0.0 {
                return Err(format!("weight of `{name}` must be a non-negative number"));
            }
            weights.push((kind, weight));
        }
        if weights.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
            return Err("the op mix needs at least one positive weight".into());
        }
        Ok(Self { weights })
    }
}

impl fmt::Display for OpMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(kind, weight)| format!("{kind}={weight}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadConfig {
    /// Users in the population.
    pub users: u32,
    /// Mean goals per user (each user gets 1 to 2×mean−1).
    pub goals_per_user: u32,
    /// Activities already logged to each seeded goal.
    pub seed_activities: u32,
    /// Exponent of the Zipf law of user popularity (0 = uniform).
    pub zipf_exponent: f64,
    /// Weights of the store operations.
    pub mix: OpMix,
    /// Share (0-1) of trace entries that are external events (another writer).
    pub external_rate: f64,
    /// Entries in the trace.
    pub ops: u64,
    /// Most ids in one batch get.
    pub batch_max: u32,
    /// Seed of every random draw.
    pub seed: u64,
}

/// One seeded activity, relative to the seeding time.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedActivity {
    /// How long before seeding it happened, in seconds.
    pub seconds_ago: i64,
    pub value: f64,
}

/// A goal that exists before the trace starts, or one the trace creates.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalSpec {
    /// Global index: goal ids are unique across users.
    pub index: u32,
    pub user: u32,
    pub pattern: GoalPattern,
    pub title: String,
    /// Paused (not active) at seeding time.
    pub paused: bool,
    /// Whether it exists before the trace starts (false: a `Create` in the trace makes it).
    pub seeded: bool,
    /// For seeded goals: how long before seeding it was created, in seconds.
    pub created_seconds_ago: i64,
    pub activities: Vec<SeedActivity>,
}

/// What the other writer does before it publishes its event.
#[derive(Debug, Clone, PartialEq)]
pub enum ExternalChange {
    /// Writes a new title straight to the table, then publishes `GoalUpdated`.
    Title(String),
    /// Publishes `ProgressCalculated` with the goal's current progress (recomputed elsewhere).
    ProgressRecalculated,
}

/// What an update changes.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateChange {
    Title(String),
    Pause,
    Resume,
}

/// One entry of the trace. Goals are global indices into [`Trace::goals`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    ListActive {
        user: u32,
    },
    GetGoal {
        user: u32,
        goal: u32,
    },
    BatchGet {
        user: u32,
        goals: Vec<u32>,
    },
    GetProgress {
        user: u32,
        goal: u32,
    },
    LogActivity {
        user: u32,
        goal: u32,
        value: f64,
    },
    Create {
        user: u32,
        goal: u32,
    },
    Update {
        user: u32,
        goal: u32,
        change: UpdateChange,
    },
    Archive {
        user: u32,
        goal: u32,
    },
    External {
        user: u32,
        goal: u32,
        change: ExternalChange,
    },
}

impl Op {
    /// The user whose partition the entry touches.
    pub fn user(&self) -> u32 {
        match self {
            Op::ListActive { user }
            | Op::GetGoal { user, .. }
            | Op::BatchGet { user, .. }
            | Op::GetProgress { user, .. }
            | Op::LogActivity { user, .. }
            | Op::Create { user, .. }
            | Op::Update { user, .. }
            | Op::Archive { user, .. }
            | Op::External { user, .. } => *user,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::ListActive { .. } => OpKind::ListActive,
            Op::GetGoal { .. } => OpKind::GetGoal,
            Op::BatchGet { .. } => OpKind::BatchGet,
            Op::GetProgress { .. } => OpKind::GetProgress,
            Op::LogActivity { .. } => OpKind::LogActivity,
            Op::Create { .. } => OpKind::Create,
            Op::Update { .. } => OpKind::Update,
            Op::Archive { .. } => OpKind::Archive,
            Op::External { .. } => OpKind::External,
        }
    }
}

/// The population and the trace.
#[derive(Debug, Clone)]
pub struct Trace {
    pub config: WorkloadConfig,
    /// Every goal, seeded or created by the trace, by index.
    pub goals: Vec<GoalSpec>,
    /// Goal indices of each user, seeded first, then in creation order.
    pub user_goals: Vec<Vec<u32>>,
    pub ops: Vec<Op>,
}

impl Trace {
    /// Entries of each kind.
    pub fn counts(&self) -> [u64; OpKind::ALL.len()] {
        let mut counts = [0; OpKind::ALL.len()];
        for op in &self.ops {
            counts[op.kind().index()] += 1;
        }
        counts
    }

    /// Users the trace touches at least once.
    pub fn active_users(&self) -> usize {
        let mut seen = vec![false; self.user_goals.len()];
        for op in &self.ops {
            seen[op.user() as usize] = true;
        }
        seen.into_iter().filter(|s| *s).count()
    }
}

/// Samples ranks 0..n with P(rank r) ∝ 1/(r+1)^s, by inverse transform over the exact CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The law over `n` ranks with exponent `s` (`s` = 0 is uniform).
    pub fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / f64::from(rank).powf(s);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        Self { cdf }
    }

    /// Probability of `rank`.
    pub fn probability(&self, rank: usize) -> f64 {
        let below = if rank == 0 { 0.0 } else { self.cdf[rank - 1] };
        self.cdf[rank] - below
    }

    /// One rank.
    pub fn sample(&self, random: &mut impl RngExt) -> u32 {
        let u: f64 = random.random();
        let rank = self.cdf.partition_point(|c| *c < u);
        rank.min(self.cdf.len() - 1) as u32
    }
}

/// The due date of the workload's milestone and target goals: after any run.
const FAR_AHEAD: &str = "2099-12-31T00:00:00Z";

/// The target of a goal of `pattern`, valid for the store.
pub fn target_for(pattern: GoalPattern) -> Target {
    match pattern {
        GoalPattern::Recurring => Target {
            metric: "duration".into(),
            value: Some(30.0),
            unit: Some("minutes".into()),
            period: Some(Period::Day),
            ..Target::default()
        },
        GoalPattern::Milestone => Target {
            metric: "count".into(),
            value: Some(10_000.0),
            unit: Some("words".into()),
            target_date: Timestamp::parse(FAR_AHEAD),
            ..Target::default()
        },
        GoalPattern::Target => Target {
            metric: "weight".into(),
            value: Some(70.0),
            unit: Some("kg".into()),
            start_value: Some(80.0),
            direction: Some(goalstore::Direction::Decrease),
            target_date: Timestamp::parse(FAR_AHEAD),
            ..Target::default()
        },
        GoalPattern::Streak => Target {
            metric: "count".into(),
            value: Some(30.0),
            unit: Some("days".into()),
            ..Target::default()
        },
        GoalPattern::Limit => Target {
            metric: "count".into(),
            value: Some(10.0),
            max_value: Some(10.0),
            unit: Some("cups".into()),
            period: Some(Period::Day),
            ..Target::default()
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Paused,
    Archived,
}

fn pattern_of(random: &mut StdRng) -> GoalPattern {
    GoalPattern::ALL[random.random_range(0..GoalPattern::ALL.len())]
}

fn pick<T: Copy>(items: &[T], random: &mut StdRng) -> Option<T> {
    (!items.is_empty()).then(|| items[random.random_range(0..items.len())])
}

/// Generates the population and the trace.
pub fn generate(config: &WorkloadConfig) -> Trace {
    let mut random = StdRng::seed_from_u64(config.seed);
    let mut goals = Vec::new();
    let mut user_goals = vec![Vec::new(); config.users as usize];
    let mut states = Vec::new();
    let mean = config.goals_per_user.max(1);
    for user in 0..config.users {
        let count = random.random_range(1..=2 * mean - 1);
        for _ in 0..count {
            let index = goals.len() as u32;
            let pattern = pattern_of(&mut random);
            let created_seconds_ago = random.random_range(3_600..30 * 86_400);
            let mut activities: Vec<SeedActivity> = (0..config.seed_activities)
                .map(|_| SeedActivity {
                    seconds_ago: random.random_range(60..created_seconds_ago),
                    value: f64::from(random.random_range(1..=60)),
                })
                .collect();
            activities.sort_by_key(|a| std::cmp::Reverse(a.seconds_ago));
            activities.dedup_by_key(|a| a.seconds_ago);
            let paused = random.random_bool(0.1);
            goals.push(GoalSpec {
                index,
                user,
                pattern,
                title: format!("{pattern} goal {index}"),
                paused,
                seeded: true,
                created_seconds_ago,
                activities,
            });
            states.push(if paused { State::Paused } else { State::Active });
            user_goals[user as usize].push(index);
        }
    }

    let zipf = Zipf::new(config.users, config.zipf_exponent);
    let total_weight: f64 = config.mix.weights.iter().map(|(_, w)| w).sum();
    let mut versions = vec![0u32; goals.len()];
    let mut ops = Vec::with_capacity(config.ops as usize);
    while (ops.len() as u64) < config.ops {
        let user = zipf.sample(&mut random);
        let mine = user_goals[user as usize].clone();
        let with = |wanted: &[State]| -> Vec<u32> {
            mine.iter()
                .copied()
                .filter(|g| wanted.contains(&states[*g as usize]))
                .collect()
        };
        let open = with(&[State::Active, State::Paused]);
        let active = with(&[State::Active]);
        let kind = if random.random_bool(config.external_rate.clamp(0.0, 1.0)) {
            OpKind::External
        } else {
            let mut draw = random.random_range(0.0..total_weight);
            let mut chosen = OpKind::ListActive;
            for (kind, weight) in &config.mix.weights {
                if draw < *weight {
                    chosen = *kind;
                    break;
                }
                draw -= weight;
            }
            chosen
        };
        let any = pick(&mine, &mut random);
        let op = match kind {
            OpKind::ListActive => Some(Op::ListActive { user }),
            OpKind::GetGoal => any.map(|goal| Op::GetGoal { user, goal }),
            OpKind::BatchGet => {
                let most = (config.batch_max as usize).clamp(2, mine.len().max(2));
                let size = random.random_range(2..=most).min(mine.len());
                let mut chosen: Vec<u32> = mine.clone();
                // A partial Fisher-Yates shuffle: the first `size` are a uniform sample.
                for i in 0..size {
                    let j = random.random_range(i..chosen.len());
                    chosen.swap(i, j);
                }
                chosen.truncate(size);
                (size >= 1).then_some(Op::BatchGet {
                    user,
                    goals: chosen,
                })
            }
            OpKind::GetProgress => any.map(|goal| Op::GetProgress { user, goal }),
            OpKind::LogActivity => pick(&active, &mut random).map(|goal| {
                let drawn = f64::from(random.random_range(1..=60));
                // A streak counts days: each of its activities is worth exactly 1.
                let value = if goals[goal as usize].pattern == GoalPattern::Streak {
                    1.0
                } else {
                    drawn
                };
                Op::LogActivity { user, goal, value }
            }),
            OpKind::Create => {
                let index = goals.len() as u32;
                let pattern = pattern_of(&mut random);
                goals.push(GoalSpec {
                    index,
                    user,
                    pattern,
                    title: format!("{pattern} goal {index}"),
                    paused: false,
                    seeded: false,
                    created_seconds_ago: 0,
                    activities: Vec::new(),
                });
                states.push(State::Active);
                versions.push(0);
                user_goals[user as usize].push(index);
                Some(Op::Create { user, goal: index })
            }
            OpKind::Update => pick(&open, &mut random).map(|goal| {
                let state = &mut states[goal as usize];
                let change = if random.random_bool(0.2) {
                    if *state == State::Active {
                        *state = State::Paused;
                        UpdateChange::Pause
                    } else {
                        *state = State::Active;
                        UpdateChange::Resume
                    }
                } else {
                    versions[goal as usize] += 1;
                    UpdateChange::Title(format!(
                        "{} v{}",
                        goals[goal as usize].title, versions[goal as usize]
                    ))
                };
                Op::Update { user, goal, change }
            }),
            OpKind::Archive if open.len() >= 2 => pick(&open, &mut random).map(|goal| {
                states[goal as usize] = State::Archived;
                Op::Archive { user, goal }
            }),
            OpKind::Archive => None,
            OpKind::External => pick(&open, &mut random).map(|goal| {
                let change = if random.random_bool(0.5) {
                    versions[goal as usize] += 1;
                    ExternalChange::Title(format!(
                        "{} ext{}",
                        goals[goal as usize].title, versions[goal as usize]
                    ))
                } else {
                    ExternalChange::ProgressRecalculated
                };
                Op::External { user, goal, change }
            }),
        };
        // An operation the user's goals cannot take now (nothing active to log to) reads instead.
        ops.push(op.unwrap_or(Op::ListActive { user }));
    }
    Trace {
        config: config.clone(),
        goals,
        user_goals,
        ops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkloadConfig {
        WorkloadConfig {
            users: 50,
            goals_per_user: 3,
            seed_activities: 2,
            zipf_exponent: 1.0,
            mix: OpMix::default(),
            external_rate: 0.05,
            ops: 5_000,
            batch_max: 5,
            seed: 7,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let (a, b) = (generate(&config()), generate(&config()));
        assert_eq!(a.ops, b.ops);
        assert_eq!(a.goals, b.goals);
        let other = generate(&WorkloadConfig {
            seed: 8,
            ..config()
        });
        assert_ne!(a.ops, other.ops);
    }

    #[test]
    fn zipf_favours_low_ranks_in_proportion() {
        let zipf = Zipf::new(100, 1.0);
        let total: f64 = (0..100).map(|r| zipf.probability(r)).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!((zipf.probability(0) / zipf.probability(1) - 2.0).abs() < 1e-9);
        let mut random = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut random) as usize] += 1;
        }
        let share = f64::from(counts[0]) / 100_000.0;
        assert!((share - zipf.probability(0)).abs() < 0.01, "{share}");
        assert!(counts[0] > counts[9] && counts[9] > counts[99]);
        let uniform = Zipf::new(4, 0.0);
        assert!((uniform.probability(3) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn every_operation_is_valid_in_per_user_order() {
        let trace = generate(&config());
        let mut state: Vec<State> = trace
            .goals
            .iter()
            .map(|g| {
                if g.paused {
                    State::Paused
                } else {
                    State::Active
                }
            })
            .collect();
        let mut exists: Vec<bool> = trace.goals.iter().map(|g| g.seeded).collect();
        for op in &trace.ops {
            let owned = |goal: &u32| trace.goals[*goal as usize].user == op.user();
            match op {
                Op::ListActive { .. } => {}
                Op::GetGoal { goal, .. } | Op::GetProgress { goal, .. } => {
                    assert!(owned(goal) && exists[*goal as usize]);
                }
                Op::BatchGet { goals, .. } => {
                    assert!(!goals.is_empty() && goals.len() <= 5);
                    assert!(goals.iter().all(|g| owned(g) && exists[*g as usize]));
                }
                Op::LogActivity { goal, .. } => {
                    assert_eq!(state[*goal as usize], State::Active);
                }
                Op::Create { goal, .. } => {
                    assert!(owned(goal) && !exists[*goal as usize]);
                    exists[*goal as usize] = true;
                }
                Op::Update { goal, change, .. } => {
                    assert_ne!(state[*goal as usize], State::Archived);
                    match change {
                        UpdateChange::Pause => state[*goal as usize] = State::Paused,
                        UpdateChange::Resume => state[*goal as usize] = State::Active,
                        UpdateChange::Title(_) => {}
                    }
                }
                Op::Archive { goal, .. } => {
                    assert_ne!(state[*goal as usize], State::Archived);
                    state[*goal as usize] = State::Archived;
                }
                Op::External { goal, .. } => {
                    assert!(owned(goal) && state[*goal as usize] != State::Archived);
                }
            }
        }
        let counts = trace.counts();
        assert!(counts[OpKind::External.index()] > 100);
        assert!(counts[OpKind::ListActive.index()] > counts[OpKind::LogActivity.index()]);
    }

    #[test]
    fn mixes_parse_and_print() {
        let mix: OpMix = "list=1, get=2.5".parse().expect("valid mix");
        assert_eq!(mix.to_string(), "list=1,get=2.5");
        assert!("list=x".parse::<OpMix>().is_err());
        assert!("external=1".parse::<OpMix>().is_err());
        assert!("list=0".parse::<OpMix>().is_err());
        assert_eq!(
            OpMix::default().to_string().parse::<OpMix>(),
            Ok(OpMix::default())
        );
    }
}
