//! Init time: from `GOALSTORE_*` in the environment to a ready store, as a Lambda container
//! does before its first invocation (issue #8: under 20 ms).
//!
//! For each configuration it prints the first build in the process (cold: lazy statics, the
//! AWS configuration chain, the recorder's installation for the first one) and the median and
//! p99 of the builds after it. DynamoDB and Redis point at a loopback listener that counts
//! connections; the run fails if building a store made any (no network call at init).
//! `AWS_EC2_METADATA_DISABLED` is set so the AWS chain cannot reach for instance metadata, and
//! `AWS_REGION` as Lambda sets it.
//!
//! Run: `cargo bench -p goalstore-lambda --bench init` (release build), or
//! `cargo test -p goalstore-lambda --bench init` for the same run in a debug build.

#![allow(clippy::print_stdout)] // a benchmark's report is its output

use goalstore_lambda::emf::{EmfConfig, EmfRecorder};
use goalstore_lambda::Builder;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARM_BUILDS: usize = 200;

fn main() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    // Before any thread reads the environment.
    std::env::set_var("AWS_REGION", "eu-west-1");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "goalstore-init-bench");
    std::env::set_var(
        "GOALSTORE_DYNAMODB_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    std::env::set_var("GOALSTORE_REDIS_URL", format!("redis://127.0.0.1:{port}/"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let recorder = EmfRecorder::new(EmfConfig::new("bench")?);
    let mut installed = false;
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "configuration", "first", "p50", "p99"
    );
    for (table, cache) in [
        ("memory", "local"),
        ("dynamodb:goals", "local"),
        ("dynamodb:goals", "redis"),
        ("dynamodb:goals", "tiered"),
    ] {
        std::env::set_var("GOALSTORE_TABLE", table);
        std::env::set_var("GOALSTORE_CACHE", cache);
        let build = |first: bool| {
            runtime.block_on(async {
                let started = Instant::now();
                let builder = Builder::from_env()?;
                let builder = if first {
                    builder
                } else {
                    builder.with_recorder(recorder.clone())
                };
                let lambda = builder.build().await?;
                let elapsed = started.elapsed();
                drop(lambda);
                anyhow::Ok(elapsed)
            })
        };
        let first = build(!installed)?;
        installed = true;
        let mut warm: Vec<Duration> = (0..WARM_BUILDS)
            .map(|_| build(false))
            .collect::<anyhow::Result<_>>()?;
        warm.sort();
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{:<26} {:>10} {:>10} {:>10}",
            format!("{table} + {cache}"),
            ms(first),
            ms(warm[warm.len() / 2]),
            ms(warm[warm.len() * 99 / 100]),
        );
        // The tiered cache's background task subscribes soon after start-up, off the init path.
        if cache != "tiered" {
            std::thread::sleep(Duration::from_millis(300));
            let made = connections.load(Ordering::SeqCst);
            anyhow::ensure!(made == 0, "building the store made {made} connections");
        }
    }
    println!("connections during init (non-tiered): 0");
    Ok(())
}
