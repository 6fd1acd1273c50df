//! Where the `redis` and `tiered` strategies find Redis: `GOALSTORE_REDIS_URL` (or
//! `--redis-url`), else a private `redis-server` started on a free loopback port for the run
//! (the test harness's: no persistence) and stopped when the run ends, else nowhere (those
//! strategies are skipped).
//!
//! Also removes what a strategy left under its namespace, so a shared Redis is left as found.

use anyhow::Context as _;
use goalstore_tests::servers::RedisServer;
use redis::AsyncCommands as _;

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
    /// `url` if given, else a server of our own if `redis-server` is installed (the harness's,
    /// which says how to install it when it is not).
    pub async fn find(url: Option<String>) -> Self {
        if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
            return RedisSource::External(url);
        }
        match RedisServer::start().await {
            Ok(server) => RedisSource::Owned(server),
            Err(error) => RedisSource::Unavailable(format!(
                "GOALSTORE_REDIS_URL is unset and no redis-server could be started: {error:#}"
            )),
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
        let RedisSource::Owned(server) = RedisSource::find(None).await else {
            anyhow::bail!("redis-server did not start; scripts/install-test-deps.sh installs it");
        };
        let client = redis::Client::open(server.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let _: () = connection.set("bench:a", 1).await?;
        let _: () = connection.set("bench:b", 2).await?;
        let _: () = connection.set("other:c", 3).await?;
        assert_eq!(flush_namespace(&server.url(), "bench:").await?, 2);
        let left: Vec<String> = connection.keys("*").await?;
        assert_eq!(left, vec!["other:c".to_owned()]);
        let port = server.port();
        drop(server);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        Ok(())
    }
}
