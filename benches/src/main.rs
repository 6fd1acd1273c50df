//! `goalstore-bench`: compares goalstore's cache strategies on a replayed workload.
//! `goalstore-bench --help` lists the flags; docs/benchmarks.md explains the method.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = goalstore_bench::cli::Args::parse();
    goalstore_bench::bench::run(args).await
}
