//! Operational helpers for sidecar tests: a TCP forwarder that can hold traffic, a server that
//! accepts and never answers, a dead endpoint, the sidecar on a Unix socket, and signals.
//!
//! Everything listens on 127.0.0.1 and lives until dropped.

use crate::sidecar::{sidecar_binary, SidecarProcess};
use anyhow::{bail, Context};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// `http://127.0.0.1:PORT` where nothing listens (a port that was free a moment ago).
pub fn dead_endpoint() -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    Ok(format!("http://127.0.0.1:{port}"))
}

/// How often a sidecar is started when a port it was given is taken.
const START_ATTEMPTS: u32 = 3;

/// Whether a start-up failure is a port that was free when picked and taken before the sidecar
/// bound it (by any socket on the machine, client sockets included).
fn port_was_taken(error: &anyhow::Error) -> bool {
    format!("{error:#}").contains("Address already in use")
}

/// `SidecarProcess::start` (or `start_unready` when `serving` is false), tried again (up to three
/// times in all) when the process exits during start-up because a port it was given is taken.
pub async fn start_sidecar(env: &[(&str, &str)], serving: bool) -> anyhow::Result<SidecarProcess> {
    let mut attempt = 1;
    loop {
        let started = if serving {
            SidecarProcess::start(env).await
        } else {
            SidecarProcess::start_unready(env).await
        };
        match started {
            Err(error) if attempt < START_ATTEMPTS && port_was_taken(&error) => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A TCP forwarder to an upstream that can be told to hold what clients send.
///
/// While closed, bytes from clients are read but not forwarded until it opens again, so a request
/// to the upstream hangs as if the upstream were slow; answers flow back freely. `held()` counts
/// the connections currently holding bytes, so a test can await "a request is stuck here".
#[derive(Debug)]
pub struct GatedProxy {
    address: SocketAddr,
    open: watch::Sender<bool>,
    holding: watch::Sender<usize>,
    task: JoinHandle<()>,
}

impl GatedProxy {
    /// Forwards to `upstream` (`http://host:port` or `host:port`); open at first.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (open, _) = watch::channel(true);
        let (holding, _) = watch::channel(0usize);
        let task = tokio::spawn(forward_all(
            listener,
            upstream,
            open.clone(),
            holding.clone(),
        ));
        Ok(Self {
            address,
            open,
            holding,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Holds what clients send from now on.
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    /// Forwards again, held bytes first.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Connections holding bytes now.
    pub fn held(&self) -> usize {
        *self.holding.borrow()
    }

    /// Waits until at least `n` connections hold bytes.
    pub async fn wait_held(&self, n: usize) -> anyhow::Result<()> {
        let mut holding = self.holding.subscribe();
        holding.wait_for(|held| *held >= n).await?;
        Ok(())
    }
}

impl Drop for GatedProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward_all(
    listener: TcpListener,
    upstream: String,
    open: watch::Sender<bool>,
    holding: watch::Sender<usize>,
) {
    // The connections live in the set, so aborting this task closes them all.
    let mut connections = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let upstream = upstream.clone();
        let open = open.subscribe();
        let holding = holding.clone();
        connections.spawn(async move {
            if let Ok(server) = TcpStream::connect(&upstream).await {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                forward(client, server, open, holding).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn forward(
    client: TcpStream,
    server: TcpStream,
    mut open: watch::Receiver<bool>,
    holding: watch::Sender<usize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !*open.borrow_and_update() {
                holding.send_modify(|held| *held += 1);
                let reopened = open.wait_for(|open| *open).await.is_ok();
                holding.send_modify(|held| *held -= 1);
                if !reopened {
                    break;
                }
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downward = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upward, downward);
}

/// A TCP server that accepts connections, reads what is sent and never answers: an upstream
/// that is infinitely slow.
#[derive(Debug)]
pub struct SilentServer {
    address: SocketAddr,
    accepted: watch::Sender<usize>,
    task: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (accepted, _) = watch::channel(0usize);
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                counter.send_modify(|n| *n += 1);
                connections.spawn(async move {
                    let mut sink = vec![0u8; 16 * 1024];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            address,
            accepted,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        *self.accepted.borrow()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sidecar binary serving on a Unix socket; killed when dropped.
#[derive(Debug)]
pub struct UnixSidecar {
    child: Child,
    socket: PathBuf,
    log: tempfile::NamedTempFile,
}

impl UnixSidecar {
    /// Starts the sidecar with `GOALSTORE_LISTEN=unix:<socket>`, metrics on a free loopback port
    /// and `env` (plus dummy AWS credentials), and waits until the socket accepts connections.
    pub async fn start(socket: &Path, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::launch(socket, env).await {
                Err(error) if attempt < START_ATTEMPTS && port_was_taken(&error) => attempt += 1,
                other => return other,
            }
        }
    }

    async fn launch(socket: &Path, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let listen = format!("unix:{}", socket.display());
        let metrics_port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let log = tempfile::NamedTempFile::new()?;
        let mut command = Command::new(sidecar_binary()?);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GOALSTORE_LISTEN", &listen)
            .env(
                "GOALSTORE_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .kill_on_drop(true);
        let child = command.spawn().context("starting goalstore-sidecar")?;
        let mut sidecar = Self {
            child,
            socket: socket.to_owned(),
            log,
        };
        sidecar.wait_listening().await?;
        Ok(sidecar)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.log.path())?)
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:<path>`, the endpoint `goalstore::Client` takes.
    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit and returns its exit status.
    pub async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.child.wait().await?)
    }

    async fn wait_listening(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let logs = self.logs().unwrap_or_default();
                bail!("goalstore-sidecar exited during start-up: {status}\n{logs}");
            }
            if tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("goalstore-sidecar did not listen on its socket within 30 s");
            }
            // Readiness poll: the process gives no event to await.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `signal` (e.g. "TERM") to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed: {status}");
    }
    Ok(())
}

/// A request carrying `authorization: <value>` (e.g. `Bearer secret`), or no header at all.
pub fn with_authorization<T>(message: T, value: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = value {
        if let Ok(value) = value.parse() {
            request.metadata_mut().insert("authorization", value);
        }
    }
    request
}
