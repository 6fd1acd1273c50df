//! `goalstore-bench`: compares goalstore's cache strategies on a replayed workload.
//! `goalstore-bench --help` lists the flags; docs/benchmarks.md explains the method.

use clap::Parser as _;

/// The sidecar's allocator (see the `mimalloc` feature), so figures are of what ships.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = goalstore_bench::cli::Args::parse();
    goalstore_bench::bench::run(args).await
}
