//! The sidecar as a separate process: the real binary, started with environment variables as an
//! operator would, and stopped with SIGTERM.

use anyhow::{bail, Context};
use goalstore_proto::v1::goal_store_client::GoalStoreClient;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// A running `goalstore-sidecar` process; killed when dropped.
#[derive(Debug)]
pub struct SidecarProcess {
    child: Child,
    address: String,
    metrics_address: String,
    /// Where the process's stdout and stderr go (its logs).
    log: tempfile::NamedTempFile,
}

/// Where cargo put the sidecar binary: beside this test binary's `deps/` folder.
pub fn sidecar_binary() -> anyhow::Result<PathBuf> {
    binary("goalstore-sidecar")
}

/// Where cargo put the binary `name` of the sidecar package (e.g. `goalctl`): beside this test
/// binary's `deps/` folder, as the sidecar itself.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target/<profile>/deps parent")?;
    let binary = profile_dir.join(name);
    if !binary.exists() {
        bail!(
            "{} is missing: build it with `cargo build -p goalstore-sidecar --bins` (scripts/test.sh does)",
            binary.display()
        );
    }
    Ok(binary)
}

impl SidecarProcess {
    /// Starts the sidecar on a free loopback port with `env` (plus dummy AWS credentials), and
    /// waits until its health check answers SERVING.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::launch(env, true).await
    }

    /// Starts the sidecar and waits until its health check answers at all (SERVING or not).
    pub async fn start_unready(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::launch(env, false).await
    }

    async fn launch(env: &[(&str, &str)], serving: bool) -> anyhow::Result<Self> {
        let free_port = || -> anyhow::Result<u16> {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            Ok(listener.local_addr()?.port())
        };
        let address = format!("127.0.0.1:{}", free_port()?);
        let metrics_address = format!("127.0.0.1:{}", free_port()?);
        let log = tempfile::NamedTempFile::new()?;
        let mut command = Command::new(sidecar_binary()?);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GOALSTORE_LISTEN", &address)
            .env("GOALSTORE_METRICS_LISTEN", &metrics_address)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            // Audits read the table on their own schedule; tests that want them ask.
            .env("GOALSTORE_AUDIT_SAMPLE_RATE", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .kill_on_drop(true);
        let child = command.spawn().context("starting goalstore-sidecar")?;
        let mut sidecar = Self {
            child,
            address,
            metrics_address,
            log,
        };
        sidecar.wait_healthy(serving).await?;
        Ok(sidecar)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.log.path())?)
    }

    /// `http://127.0.0.1:PORT/metrics`, the Prometheus endpoint.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_address)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A GoalStore client connected to the sidecar.
    pub async fn client(&self) -> anyhow::Result<GoalStoreClient<Channel>> {
        Ok(GoalStoreClient::connect(self.endpoint()).await?)
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit and returns its exit status.
    pub async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.child.wait().await?)
    }

    async fn wait_healthy(&mut self, serving: bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let logs = self.logs().unwrap_or_default();
                bail!("goalstore-sidecar exited during start-up: {status}\n{logs}");
            }
            if let Ok(channel) = Channel::from_shared(self.endpoint())?.connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let request = tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(response) = health.check(request).await {
                    let is_serving = response.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
                    if is_serving || !serving {
                        return Ok(());
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("goalstore-sidecar did not serve within 30 s");
            }
            // Readiness poll: the process gives no event to await.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
