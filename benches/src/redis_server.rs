//! Where the `redis` and `tiered` strategies find Redis: `GOALSTORE_REDIS_URL` (or
//! `--redis-url`), else a private `redis-server` started on a free loopback port for the run
//! (no persistence) and stopped when the run ends, else nowhere (those strategies are skipped).
//!
//! Also removes what a strategy left under its namespace, so a shared Redis is left as found.

use anyhow::Context as _;
use redis::AsyncCommands as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROGRAM: &str = "redis-server";
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A `redis-server` of our own. Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    /// Working directory (nothing is persisted, but redis-server wants one).
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// `redis-server` on the PATH, if any.
    pub fn locate() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(PROGRAM))
            .find(|candidate| candidate.is_file())
    }

    /// Starts `program` on a free loopback port and waits until it answers PING.
    pub fn start(program: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("goalstore-bench-redis-")
            .tempdir()
            .context("creating a directory for redis-server")?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("finding a free loopback port")?
            .port();
        let child = Command::new(program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("redis-server on port {port} exited during start-up ({status})");
            }
            if ping(port) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "redis-server on port {port} did not answer within {START_DEADLINE:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(port: u16) -> bool {
    let exchange = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    exchange().unwrap_or(false)
}

/// Where Redis is for this run.
#[derive(Debug)]
pub enum RedisSource {
    /// A server someone else runs (`GOALSTORE_REDIS_URL` or `--redis-url`).
    External(String),
    /// Ours, for the run.
    Owned(RedisServer),
    /// None: the strategies that need Redis are skipped, for this reason.
    Unavailable(String),
}

impl RedisSource {
    /// `url` if given, else a server of our own if `redis-server` is installed.
    pub fn find(url: Option<String>) -> Self {
        if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
            return RedisSource::External(url);
        }
        match RedisServer::locate() {
            None => RedisSource::Unavailable(
                "GOALSTORE_REDIS_URL is unset and redis-server is not installed".into(),
            ),
            Some(program) => match RedisServer::start(&program) {
                Ok(server) => RedisSource::Owned(server),
                Err(error) => RedisSource::Unavailable(format!("{error:#}")),
            },
        }
    }

    /// The URL to use, if any.
    pub fn url(&self) -> Option<String> {
        match self {
            RedisSource::External(url) => Some(url.clone()),
            RedisSource::Owned(server) => Some(server.url()),
            RedisSource::Unavailable(_) => None,
        }
    }

    /// A line saying where Redis is.
    pub fn describe(&self) -> String {
        match self {
            RedisSource::External(url) => format!("redis at {}", redact(url)),
            RedisSource::Owned(server) => {
                format!("redis-server started for this run at {}", server.url())
            }
            RedisSource::Unavailable(why) => format!("no redis ({why})"),
        }
    }
}

/// `url` without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Deletes every key under `prefix` (SCAN + UNLINK); returns how many.
pub async fn flush_namespace(url: &str, prefix: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url).context("opening the redis URL")?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to redis")?;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut removed = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .context("SCAN")?;
        if !keys.is_empty() {
            let count: u64 = connection.unlink(&keys).await.context("UNLINK")?;
            removed += count;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://user:secret@host:6379/"),
            "redis://***@host:6379/"
        );
        assert_eq!(redact("redis://host:6379/"), "redis://host:6379/");
    }

    #[tokio::test]
    async fn a_private_server_starts_answers_and_is_flushed_by_prefix() -> anyhow::Result<()> {
        let Some(program) = RedisServer::locate() else {
            return Ok(()); // Nothing to test without redis-server.
        };
        let server = RedisServer::start(&program)?;
        let client = redis::Client::open(server.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let _: () = connection.set("bench:a", 1).await?;
        let _: () = connection.set("bench:b", 2).await?;
        let _: () = connection.set("other:c", 3).await?;
        assert_eq!(flush_namespace(&server.url(), "bench:").await?, 2);
        let left: Vec<String> = connection.keys("*").await?;
        assert_eq!(left, vec!["other:c".to_owned()]);
        let port = server.port;
        drop(server);
        assert!(!ping(port));
        Ok(())
    }
}
