//! The command line: the workload, the cache, the backend and the outputs.
//!
//! Every flag has a default, so `goalstore-bench` with no arguments compares the four strategies
//! on the default workload against the embedded table.

use clap::{ArgAction, Parser};
use goalstore::Strategy;
use std::path::PathBuf;
use std::time::Duration;

use crate::workload::{OpMix, WorkloadConfig};

/// Replays a seeded, realistic goals workload against goalstore's cache strategies and prints
/// them side by side: throughput, latency percentiles (overall and per operation), hit ratios,
/// DynamoDB read requests and units, stale reads, and for `local` the hit ratio against the
/// offline optimum (Bélády).
#[derive(Debug, Clone, Parser)]
#[command(name = "goalstore-bench", version)]
pub struct Args {
    /// Cache strategies to run, in order (comma-separated): none, local, redis, tiered.
    #[arg(long, value_delimiter = ',', default_value = "none,local,redis,tiered")]
    pub strategies: Vec<Strategy>,

    /// Users in the population (the users active within one cache lifetime).
    #[arg(long, default_value_t = 2_000)]
    pub users: u32,

    /// Mean goals per user (each user gets between 1 and 2×N−1).
    #[arg(long, default_value_t = 4)]
    pub goals_per_user: u32,

    /// Activities already logged to each seeded goal.
    #[arg(long, default_value_t = 3)]
    pub seed_activities: u32,

    /// Exponent of the Zipf law of user popularity: user of rank r is drawn with probability
    /// ∝ 1/r^s (0 = uniform).
    #[arg(long, default_value_t = 0.7)]
    pub zipf: f64,

    /// Relative weights of the operations: list (active goals), get (goal), batch (get goals),
    /// progress, log (activity), create, update, archive.
    #[arg(long, default_value_t = OpMix::default())]
    pub mix: OpMix,

    /// Share (0-1) of the trace that is another writer's change followed by `apply_events`.
    #[arg(long, default_value_t = 0.01)]
    pub external_rate: f64,

    /// Operations measured (after the warm-up).
    #[arg(long, default_value_t = 80_000)]
    pub ops: u64,

    /// Stop each strategy after this long (e.g. `30s`) once warmed up; the rest of the trace is
    /// not replayed.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Operations replayed before measuring, on top of `--ops`: they warm the cache (and are
    /// checked for stale reads), their latencies and statistics are left out.
    #[arg(long, default_value_t = 40_000)]
    pub warmup_ops: u64,

    /// Operations running at once (a user's operations never overlap).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,

    /// Most goal ids in one batch get.
    #[arg(long, default_value_t = 8)]
    pub batch_max: u32,

    /// Seed of the workload (population and trace).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Bound of the local tier in bytes (keys, values, overhead); set it below the working set
    /// to compare `local` with the offline optimum under pressure.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub local_capacity_bytes: u64,

    /// Whether the store counts activities other writers log (a query of the newest
    /// activities with every log and progress miss); `false` measures a deployment where only
    /// goalstore logs activities.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub others_log_activities: bool,

    /// Whether seeded goals have their progress state, as after a backfill
    /// (`GoalStore::backfill_progress_state`); `false` seeds them as the existing handlers
    /// leave them, and each goal's first touch in the run builds its state from every activity.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub seed_progress_states: bool,

    /// Lifetime of a user's active goals in the cache.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ttl_active_goals: Duration,

    /// Lifetime of a goal's progress in the cache.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl_progress: Duration,

    /// Lifetime of one goal in the cache.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ttl_goal: Duration,

    /// Embedded table: latency of every request.
    #[arg(long, default_value = "4ms", value_parser = humantime::parse_duration)]
    pub table_latency: Duration,

    /// Embedded table: latency added per item read or written.
    #[arg(long, default_value = "20us", value_parser = humantime::parse_duration)]
    pub table_latency_per_item: Duration,

    /// History sizes (activities of one goal) at which the history probe measures a progress miss
    /// and a logged activity, on the embedded table; empty (`--history-sizes ''`) skips it.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,30000")]
    pub history_sizes: Vec<u32>,

    /// Strongly consistent reads (`false` halves read units).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub consistent_reads: bool,

    /// Use this DynamoDB table instead of the embedded one (hash key `pk`, range key `sk`,
    /// strings). Each strategy seeds users of its own in it; nothing is deleted afterwards.
    #[arg(long)]
    pub table: Option<String>,

    /// Endpoint of the DynamoDB table (e.g. a local DynamoDB-compatible server); region and
    /// credentials come from the standard AWS chain.
    #[arg(long, requires = "table")]
    pub dynamodb_endpoint: Option<String>,

    /// Redis for `redis` and `tiered`; unset: a redis-server started for the run, if installed.
    #[arg(long, env = "GOALSTORE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Deadline of one Redis call.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,

    /// Also write every figure, per strategy, as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Also draw a PNG chart comparing the strategies (latency percentiles, hit ratios, reads).
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// The workload these flags describe.
    pub fn workload(&self) -> WorkloadConfig {
        WorkloadConfig {
            users: self.users.max(1),
            goals_per_user: self.goals_per_user.max(1),
            seed_activities: self.seed_activities,
            zipf_exponent: self.zipf,
            mix: self.mix.clone(),
            external_rate: self.external_rate,
            ops: self.warmup_ops + self.ops,
            batch_max: self.batch_max.max(1),
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_compare_all_four_strategies() {
        let args = Args::try_parse_from(["goalstore-bench"]).expect("defaults parse");
        assert_eq!(args.strategies, Strategy::ALL.to_vec());
        assert_eq!(args.workload().mix, OpMix::default());
        assert!(args.consistent_reads);
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from([
            "goalstore-bench",
            "--strategies",
            "local",
            "--duration",
            "10s",
            "--mix",
            "list=1,log=1",
            "--consistent-reads",
            "false",
            "--local-capacity-bytes",
            "1000000",
        ])
        .expect("valid flags");
        assert_eq!(args.strategies, vec![Strategy::Local]);
        assert_eq!(args.duration, Some(Duration::from_secs(10)));
        assert!(!args.consistent_reads);
        assert!(Args::try_parse_from(["goalstore-bench", "--strategies", "disk"]).is_err());
        assert!(Args::try_parse_from(["goalstore-bench", "--dynamodb-endpoint", "x"]).is_err());
    }
}
