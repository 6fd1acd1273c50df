//! goalstore-bench: replays a realistic, seeded goals workload against goalstore's cache
//! strategies (`none`, `local`, `redis`, `tiered`) and compares them side by side.
//!
//! The flow (`bench`): generate the population and the trace from the seed (`workload`); for
//! each strategy, a fresh table (`table`), seeded (`seed`), a store with a namespace of its own,
//! the replay (`replay`) with per-user order, latencies and stale-read checks (`truth`) and, for
//! `local`, the key-access trace (`keytrace`) that the offline optimum (`belady`) runs on; then
//! the report (`report`, `plot`). `redis_server` provides Redis when none is configured;
//! `history` measures what one logged activity and one progress miss cost as a goal's history
//! grows.
//! docs/benchmarks.md has the method and the latest figures.

pub mod belady;
pub mod bench;
pub mod cli;
pub mod history;
pub mod keytrace;
pub mod latency;
pub mod plot;
pub mod redis_server;
pub mod replay;
pub mod report;
pub mod seed;
pub mod table;
pub mod truth;
pub mod workload;
