//! A client in another language: `tests/python/client_test.py` generates grpcio stubs from
//! `proto/` and drives a real sidecar process, so the contract is checked from outside Rust —
//! over TCP, and over the Unix socket with a default channel (grpcio sends the socket path as
//! `:authority`; vendor/h2/PATCHES.md).

use goalstore_tests::ops::UnixSidecar;
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// The repository's root: the parent of this crate's folder (`tests/`).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails the test loudly when grpcio or grpcio-tools is missing, saying how to install them.
async fn require_grpcio() -> anyhow::Result<()> {
    let output = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_status"])
        .stdin(Stdio::null())
        .output()
        .await;
    let problem = match output {
        Ok(output) if output.status.success() => return Ok(()),
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        Err(error) => format!("cannot run python3: {error}"),
    };
    panic!(
        "the Python client test needs grpcio, grpcio-tools and grpcio-status: \
         run `python3 -m pip install 'grpcio>=1.60' 'grpcio-tools>=1.60' 'grpcio-status>=1.60'` \
         (pip install grpcio grpcio-tools grpcio-status), or scripts/test.sh, which installs them \
         (scripts/install-test-deps.sh). python3 said: {problem}"
    );
}

#[tokio::test]
async fn python_grpcio_client_generated_from_the_proto_works() -> anyhow::Result<()> {
    require_grpcio().await?;
    let t = DynamoStore::start().await?;
    let table = format!("dynamodb:{}", t.table_name);
    let dynamo = t.proxy.endpoint();
    let sidecar = SidecarProcess::start(&[
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", dynamo.as_str()),
    ])
    .await?;
    let address = sidecar.endpoint().trim_start_matches("http://").to_owned();
    run_python_client(&address).await?;

    // What Python wrote is in the table for every client: 30 + 12.5 logged on one goal.
    let stats = sidecar
        .client()
        .await?
        .stats(goalstore_proto::v1::StatsRequest {})
        .await?;
    let table_usage = stats.into_inner().table.unwrap_or_default();
    assert!(
        table_usage.transact_write_items + table_usage.put_item >= 3,
        "the goal and two activities were written: {table_usage:?}"
    );
    Ok(())
}

/// Runs `tests/python/client_test.py` against `address` (`host:port` or `unix:///path`) and
/// checks that it says ok.
async fn run_python_client(address: &str) -> anyhow::Result<()> {
    let root = repo_root();
    let script = root.join("tests/python/client_test.py");
    let proto = root.join("proto");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(address)
        .arg(&proto)
        .current_dir(&root)
        // Generated modules live in a temporary folder; leave no bytecode in the work tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // A proxy from the developer's environment must not sit between Python and loopback.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("grpc_proxy")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} exited {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display(),
        output.status
    );
    assert!(
        stdout.lines().any(|line| line == "python client: ok"),
        "no ok line\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    Ok(())
}

#[tokio::test]
async fn python_grpcio_client_calls_through_the_unix_socket_with_a_default_channel(
) -> anyhow::Result<()> {
    require_grpcio().await?;
    let t = DynamoStore::start().await?;
    let table = format!("dynamodb:{}", t.table_name);
    let dynamo = t.proxy.endpoint();
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("goalstore.sock");
    let _sidecar = UnixSidecar::start(
        &socket,
        &[
            ("GOALSTORE_TABLE", table.as_str()),
            ("GOALSTORE_DYNAMODB_ENDPOINT", dynamo.as_str()),
        ],
    )
    .await?;
    // grpcio's own form of a Unix socket target, no channel options.
    run_python_client(&format!("unix://{}", socket.display())).await?;
    assert!(
        t.proxy.count("TransactWriteItems") >= 2,
        "the calls reached the table: {:?}",
        t.proxy.counts()
    );
    Ok(())
}
