//! `redis-server` processes, one per test that needs one, which tests can kill and restart.
//!
//! Each test gets its own server (they are cheap to start) so tests that kill Redis to
//! exercise cache outages cannot disturb each other.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::binary;
use super::port::free_port;
use super::process::GuardedProcess;

const PROGRAM: &str = "redis-server";
const INSTALL: &str = "apt-get install -y redis-server";
const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// One PING must not hang the readiness loop on a server that accepts but never answers.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// New ports to try when the server exits during start-up (typically: port taken).
const ATTEMPTS: usize = 3;

/// A `redis-server` on a loopback port, without persistence. Dropping it kills the server.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    program: PathBuf,
    /// `None` while killed. Declared before `dir` so the server dies before its
    /// directory is removed.
    process: Option<GuardedProcess>,
    /// Working directory and log; removed on drop.
    dir: TempDir,
}

/// Why a start attempt did not produce a server.
enum StartFailure {
    /// The server exited during start-up; another port may work.
    Exited(String),
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for StartFailure {
    fn from(error: anyhow::Error) -> StartFailure {
        StartFailure::Fatal(error)
    }
}

impl RedisServer {
    /// Starts redis-server on a free loopback port (no persistence: `--save ""
    /// --appendonly no`), in its own temp dir, and waits until it answers PING.
    pub async fn start() -> anyhow::Result<RedisServer> {
        let program = binary::locate(PROGRAM, INSTALL)?;
        let dir = tempfile::Builder::new()
            .prefix("goalstore-redis-")
            .tempdir()
            .context("creating a scratch directory for redis-server")?;
        let mut server = RedisServer {
            port: 0,
            program,
            process: None,
            dir,
        };
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            server.port = free_port()?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(StartFailure::Exited(failure)) => failures.push(failure),
                Err(StartFailure::Fatal(error)) => return Err(error),
            }
        }
        anyhow::bail!(
            "redis-server failed to start {ATTEMPTS} times:\n{}",
            failures.join("\n")
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "redis://127.0.0.1:PORT/"
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends PING and expects `+PONG`; fails if the server is down or not answering.
    pub async fn ping(&self) -> anyhow::Result<()> {
        ping(self.port).await
    }

    /// kill -9 the server and wait until the port is closed. Does nothing if it is not
    /// running.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        while port_is_open(self.port).await {
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "port {} still accepts connections {STOP_DEADLINE:?} after killing redis-server",
                    self.port
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Start it again on the same port; wait until it answers PING.
    ///
    /// The data is gone (nothing is persisted), as after a real crash of a cache. If the
    /// server is still running it is killed first.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        match self.launch().await {
            Ok(()) => Ok(()),
            Err(StartFailure::Exited(failure)) => {
                Err(anyhow::anyhow!("restarting redis-server failed: {failure}"))
            }
            Err(StartFailure::Fatal(error)) => Err(error.context("restarting redis-server")),
        }
    }

    /// Starts the server on `self.port` and waits until it answers PING.
    async fn launch(&mut self) -> Result<(), StartFailure> {
        let port = self.port;
        let args = [
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            self.dir.path().display().to_string(),
            "--daemonize".to_owned(),
            "no".to_owned(),
        ];
        // Appended across restarts, so a failure can be read in the context of its past.
        let log = self.dir.path().join("redis-server.log");
        let mut process = GuardedProcess::spawn(&self.program, &args, &log, None)?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = process.try_wait()? {
                return Err(StartFailure::Exited(format!(
                    "redis-server on port {port} exited during start-up ({status})\n{}",
                    process.log_tail()
                )));
            }
            // Answering and still alive: the PONG came from our server, not from some
            // other process that owns the port our server then failed to bind.
            if ping(port).await.is_ok() && process.try_wait()?.is_none() {
                self.process = Some(process);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::Fatal(anyhow::anyhow!(
                    "redis-server on port {port} did not answer PING within {START_DEADLINE:?}\n{}",
                    process.log_tail()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// PING in RESP, by hand: a redis client crate would be a dependency for one command.
async fn ping(port: u16) -> anyhow::Result<()> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let expected = b"+PONG\r\n";
        let mut reply = Vec::with_capacity(expected.len());
        let mut buffer = [0_u8; 64];
        // Read until the reply line is complete (it may arrive in pieces) or ends.
        while !reply.ends_with(b"\r\n") {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            reply.extend_from_slice(&buffer[..read]);
        }
        anyhow::ensure!(
            reply == expected,
            "PING answered {:?}",
            String::from_utf8_lossy(&reply)
        );
        Ok(())
    };
    tokio::time::timeout(PING_TIMEOUT, exchange)
        .await
        .with_context(|| format!("PING to 127.0.0.1:{port} timed out"))?
        .with_context(|| format!("PING to 127.0.0.1:{port}"))
}

async fn port_is_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kill_closes_the_port_and_restart_reopens_it() -> anyhow::Result<()> {
        let mut redis = RedisServer::start().await?;
        let port = redis.port();
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
        redis.ping().await?;

        redis.kill().await?;
        assert!(redis.ping().await.is_err(), "PING fails while killed");
        redis.kill().await?;

        redis.restart().await?;
        assert_eq!(redis.port(), port, "restarted on the same port");
        redis.ping().await?;

        drop(redis);
        assert!(!port_is_open(port).await, "drop killed the server");
        Ok(())
    }

    #[tokio::test]
    async fn servers_get_distinct_ports() -> anyhow::Result<()> {
        let (a, b) = tokio::try_join!(RedisServer::start(), RedisServer::start())?;
        assert_ne!(a.port(), b.port());
        a.ping().await?;
        b.ping().await?;
        Ok(())
    }
}
