//! The Redis tier: shared by every instance, standalone or Redis Cluster.
//!
//! One multiplexed RESP3 connection (redis-rs `ConnectionManager`, or the cluster connection),
//! which reconnects by itself and carries pub/sub pushes. Every call has a short timeout and goes
//! through a circuit breaker, so a sick Redis costs the store one fast refusal, not a wait.
//!
//! No stale fill, across instances: a fill first sets a lease (`{key}:lease`, a random token,
//! short TTL), then reads the table, then sets the value with a Lua script only if the lease
//! still holds. An invalidation deletes value and lease together. Key and lease share a hash
//! tag, so the script runs on one cluster node.
//!
//! Invalidations that cannot reach Redis are kept (bounded, `pending.rs`) and replayed before this
//! tier serves another read: until then reads bypass Redis, so nothing stale is served when it
//! returns. Past the bound, every key under the namespace is deleted instead (SCAN on every
//! master the cluster reports, or on the one server).
//!
//! Every call, connecting included, ends within `timeout`: a cluster connection is made by a
//! task of its own that callers wait for up to their deadline, never in a queue.
//!
//! It does not decode values (the store does) and knows nothing of kinds or TTL policy.

use super::breaker::CircuitBreaker;
use super::keys::CacheKey;
use super::pending::{Pending, Snapshot};
use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Script, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub use super::config::RedisConfig;
pub use super::redis_common::{Push, RedisFailure};
/// A pub/sub message or a disconnection notice, as the connection pushes it.
pub use redis::PushInfo;

/// What `push` says.
pub fn classify(push: &PushInfo) -> Push<'_> {
    use redis::PushKind;
    match push.kind {
        PushKind::Message | PushKind::SMessage => match push.data.get(1) {
            Some(Value::BulkString(payload)) => {
                std::str::from_utf8(payload).map_or(Push::Other, Push::Message)
            }
            _ => Push::Other,
        },
        PushKind::Disconnection => Push::Disconnected,
        PushKind::Subscribe | PushKind::SSubscribe => Push::Subscribed,
        _ => Push::Other,
    }
}

/// A standalone connection or a cluster connection; both multiplexed and cheap to clone.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

enum Clients {
    /// The standalone connection manager is made up front (lazily connecting).
    Standalone,
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A cluster connection being made, shared by the callers waiting for it.
type Connecting = Shared<BoxFuture<'static, Result<Connection, RedisFailure>>>;

/// The connection, or the attempt to make one.
enum Slot {
    Idle,
    Connecting(Connecting),
    Ready(Connection),
}

/// Sets the value only while the fill's lease holds: KEYS = value, lease; ARGV = token, value, ttl ms.
const COMPLETE_FILL: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
";

/// The shared tier.
pub struct RedisTier {
    config: RedisConfig,
    clients: Clients,
    connection: Mutex<Slot>,
    breaker: CircuitBreaker,
    pending: Mutex<Pending>,
    complete_fill: Script,
    errors: AtomicU64,
    prefix: String,
    subscription: Option<String>,
    subscribed: AtomicBool,
    /// The (first) server's host and port, for the spans (`server.address`, `server.port`).
    server: (String, u16),
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("urls", &self.config.urls)
            .field("cluster", &self.config.cluster)
            .field("breaker_open", &self.breaker.is_open())
            .finish()
    }
}

/// A fill lease in Redis: the token the value may only land against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLease(String);

impl RedisTier {
    /// A tier over `config.urls`, keys under `prefix`. Makes no network call: the connection is
    /// made on first use. `pushes` receives pub/sub messages and disconnection notices; the tier
    /// subscribes to `subscription` (sharded on a cluster) whenever it (re)connects.
    pub fn new(
        config: RedisConfig,
        prefix: &str,
        pushes: Option<UnboundedSender<PushInfo>>,
        subscription: Option<String>,
    ) -> Result<Self, RedisFailure> {
        let config_error = |e: redis::RedisError| RedisFailure::Config(e.to_string());
        if config.urls.is_empty() {
            return Err(RedisFailure::Config("no Redis URL given".into()));
        }
        let urls: Vec<String> = config.urls.iter().map(|url| resp3(url)).collect();
        let cluster = config.cluster || urls.len() > 1;
        let clients = if cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(urls)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .retries(1);
            if let Some(pushes) = pushes {
                builder = builder.push_sender(pushes);
            }
            Clients::Cluster(Box::new(builder.build().map_err(config_error)?))
        } else {
            let client = redis::Client::open(urls[0].as_str()).map_err(config_error)?;
            let mut manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.timeout))
                .set_response_timeout(Some(config.timeout))
                .set_number_of_retries(1);
            if let Some(pushes) = pushes {
                manager_config = manager_config
                    .set_push_sender(pushes)
                    .set_automatic_resubscription();
            }
            let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
                .map_err(config_error)?;
            return Ok(Self::assemble(
                config,
                Clients::Standalone,
                Some(Connection::Standalone(manager)),
                prefix,
                subscription,
            ));
        };
        Ok(Self::assemble(config, clients, None, prefix, subscription))
    }

    fn assemble(
        config: RedisConfig,
        clients: Clients,
        connection: Option<Connection>,
        prefix: &str,
        subscription: Option<String>,
    ) -> Self {
        let cluster = matches!(clients, Clients::Cluster(_));
        let server = config
            .urls
            .first()
            .and_then(|url| redis::IntoConnectionInfo::into_connection_info(url.as_str()).ok())
            .and_then(|info| match info.addr() {
                redis::ConnectionAddr::Tcp(host, port)
                | redis::ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
                _ => None,
            })
            .unwrap_or_default();
        Self {
            server,
            breaker: CircuitBreaker::new(config.breaker_failures, config.breaker_cooldown),
            config: RedisConfig { cluster, ..config },
            clients,
            connection: Mutex::new(connection.map_or(Slot::Idle, Slot::Ready)),
            pending: Mutex::default(),
            complete_fill: Script::new(COMPLETE_FILL),
            errors: AtomicU64::new(0),
            prefix: prefix.to_owned(),
            subscription,
            subscribed: AtomicBool::new(false),
        }
    }

    /// Redis errors and timeouts so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether the tier is refusing work: breaker open, or invalidations waiting for replay.
    pub fn is_degraded(&self) -> bool {
        self.breaker.is_open() || self.has_pending()
    }

    fn has_pending(&self) -> bool {
        !self.pending().is_empty()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection; on a cluster not connected yet, the attempt in progress (started now if
    /// there is none). The attempt runs on a task of its own for up to 5× the timeout, so callers
    /// that give up at their own deadline do not cancel it: the next caller finds it made.
    async fn connection(&self) -> Result<Connection, RedisFailure> {
        let connecting = {
            let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Slot::Ready(connection) => return Ok(connection.clone()),
                Slot::Connecting(connecting) => connecting.clone(),
                Slot::Idle => {
                    let Clients::Cluster(client) = &self.clients else {
                        return Err(RedisFailure::Config("standalone connection missing".into()));
                    };
                    let client = (**client).clone();
                    let limit = self.config.timeout * 5;
                    let attempt = tokio::spawn(async move {
                        match tokio::time::timeout(limit, client.get_async_connection()).await {
                            Ok(Ok(connection)) => Ok(Connection::Cluster(connection)),
                            Ok(Err(error)) => Err(RedisFailure::Redis(error.to_string())),
                            Err(_) => Err(RedisFailure::Timeout(limit)),
                        }
                    });
                    let connecting = async move {
                        attempt
                            .await
                            .unwrap_or_else(|error| Err(RedisFailure::Redis(error.to_string())))
                    }
                    .boxed()
                    .shared();
                    *slot = Slot::Connecting(connecting.clone());
                    connecting
                }
            }
        };
        let result = connecting.clone().await;
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(&*slot, Slot::Connecting(current) if current.ptr_eq(&connecting)) {
            // A failed attempt is forgotten: the next call starts another.
            *slot = match &result {
                Ok(connection) => Slot::Ready(connection.clone()),
                Err(_) => Slot::Idle,
            };
        }
        result
    }

    /// Runs one call (`name`, the command, names its span `redis.<name>`) under the breaker and
    /// the timeout.
    async fn call<T, F, Fut>(&self, name: &'static str, call: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let Some(permit) = self.breaker.allow() else {
            return Err(RedisFailure::Open);
        };
        // Nothing here is evaluated unless a layer records the span.
        // Attributes by the OpenTelemetry semantic conventions for a Redis call.
        let span = tracing::info_span!(
            "redis",
            otel.name = format!("redis.{name}"),
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = name,
            server.address = %self.server.0,
            server.port = self.server.1,
            otel.status_code = tracing::field::Empty,
        );
        // One deadline for connecting and answering (#15 finding 8: a connect outside it queued
        // callers behind each other's attempts, each past its own deadline).
        let attempt = async {
            let connection = self.connection().await?;
            call(connection)
                .await
                .map_err(|error| RedisFailure::Redis(error.to_string()))
        };
        let result = tracing::Instrument::instrument(
            async {
                tokio::time::timeout(self.config.timeout, attempt)
                    .await
                    .unwrap_or(Err(RedisFailure::Timeout(self.config.timeout)))
            },
            span.clone(),
        )
        .await;
        // Dropped at the await above, the permit reports nothing (see `Permit`).
        match &result {
            Ok(_) => permit.success(),
            Err(failure) => {
                span.record("otel.status_code", "ERROR");
                self.errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::REDIS_ERRORS).increment(1);
                permit.failure();
                tracing::debug!(%failure, "redis call failed");
            }
        }
        result
    }

    /// The value under `key` and its remaining lifetime (one round trip; `None` when the key has
    /// no expiry, which goalstore never sets); `Err` when the tier cannot be trusted or reached.
    pub async fn get(
        &self,
        key: &CacheKey,
    ) -> Result<Option<(Bytes, Option<Duration>)>, RedisFailure> {
        if self.has_pending() {
            return Err(RedisFailure::Replaying);
        }
        let text = key.text.clone();
        let (value, ttl_ms): (Option<Vec<u8>>, i64) = self
            .call("GET", |mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&*text)
                    .cmd("PTTL")
                    .arg(&*text)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        // PTTL: -1 without an expiry, -2 when the key expired between the two commands.
        Ok(match (value, ttl_ms) {
            (Some(_), -2) | (None, _) => None,
            (Some(value), ms) => Some((
                Bytes::from(value),
                u64::try_from(ms).ok().map(Duration::from_millis),
            )),
        })
    }

    /// Sets a fill lease on `key`.
    pub async fn begin_fill(&self, key: &CacheKey) -> Result<RedisLease, RedisFailure> {
        if self.has_pending() {
            return Err(RedisFailure::Replaying);
        }
        let token = format!("{:016x}", rand::random::<u64>());
        let lease_key = key.lease();
        let lease_ms = self.config.lease_ttl.as_millis() as u64;
        let value = token.clone();
        self.call("SET", |mut c| async move {
            redis::cmd("SET")
                .arg(&lease_key)
                .arg(&value)
                .arg("PX")
                .arg(lease_ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await?;
        Ok(RedisLease(token))
    }

    /// Sets `bytes` under `key` for `ttl` if the lease still holds; returns whether it landed.
    pub async fn complete_fill(
        &self,
        key: &CacheKey,
        lease: &RedisLease,
        bytes: &Bytes,
        ttl: Duration,
    ) -> Result<bool, RedisFailure> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut invocation = self.complete_fill.prepare_invoke();
        invocation
            .key(&*key.text)
            .key(key.lease())
            .arg(&lease.0)
            .arg(bytes.as_ref())
            .arg(ttl_ms);
        let landed: i64 = self
            .call("EVALSHA", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(landed == 1)
    }

    /// Deletes `keys` and their leases. When Redis cannot be reached, the keys are kept and
    /// replayed by [`RedisTier::recover`]; reads bypass Redis until then.
    pub async fn invalidate(&self, keys: &[Arc<str>]) -> Result<(), RedisFailure> {
        if keys.is_empty() {
            return Ok(());
        }
        if self.has_pending() {
            self.keep(keys);
            return Err(RedisFailure::Replaying);
        }
        match self.delete(keys).await {
            Ok(()) => Ok(()),
            Err(failure) => {
                self.keep(keys);
                Err(failure)
            }
        }
    }

    async fn delete(&self, keys: &[Arc<str>]) -> Result<(), RedisFailure> {
        // One DEL per key: a key and its lease share a slot, different keys may not.
        let deletes = keys.iter().map(|key| {
            let key = key.clone();
            self.call("DEL", move |mut c| async move {
                redis::cmd("DEL")
                    .arg(&*key)
                    .arg(format!("{key}:lease"))
                    .query_async::<()>(&mut c)
                    .await
            })
        });
        futures::future::join_all(deletes)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    }

    /// Keeps `keys` for replay once Redis answers again; reads bypass Redis until then.
    pub fn keep(&self, keys: &[Arc<str>]) {
        self.pending()
            .keep(keys, self.config.max_pending_invalidations);
    }

    /// Asks the next replay to flush the namespace (and other instances to purge their local
    /// tiers): used when the message that would have told them is lost.
    pub fn keep_all(&self) {
        self.pending().overflow();
    }

    /// Probes Redis and replays kept invalidations. Returns what was replayed (to tell other
    /// instances), or `None` when Redis is still unreachable or nothing was kept. Keys kept while
    /// the replay runs stay kept for the next one (see `pending.rs`).
    pub async fn recover(&self) -> Option<Snapshot> {
        let snapshot = self.pending().snapshot();
        if snapshot.keys.is_empty() && !snapshot.flush && !self.breaker.is_open() {
            return None;
        }
        let ping: Result<String, _> = self
            .call("PING", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await;
        if ping.is_err() {
            return None;
        }
        if snapshot.flush {
            if let Err(failure) = self.flush_namespace().await {
                tracing::warn!(%failure, "could not flush the cache namespace after lost invalidations");
                return None;
            }
        } else if let Err(failure) = self.delete(&snapshot.keys).await {
            tracing::warn!(%failure, "could not replay kept invalidations yet");
            return None;
        }
        self.pending().replayed(&snapshot);
        tracing::info!(
            replayed = snapshot.keys.len(),
            flushed = snapshot.flush,
            "redis reachable again"
        );
        Some(snapshot)
    }

    /// Deletes every key under the namespace (values and leases), node by node: on a cluster,
    /// every master it reports now, not only the configured seeds (#15 finding 7).
    pub async fn flush_namespace(&self) -> Result<(), RedisFailure> {
        let pattern = format!("{}*", self.prefix);
        let limit = self.config.timeout * 100;
        for node in self.nodes().await? {
            let client =
                redis::Client::open(node).map_err(|e| RedisFailure::Config(e.to_string()))?;
            let flush = async {
                let mut connection = client.get_multiplexed_async_connection().await?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut connection)
                        .await?;
                    if !keys.is_empty() {
                        // One DEL per key (keys of several slots in one DEL are refused on a
                        // cluster), pipelined: one round trip per SCAN page.
                        let mut deletes = redis::pipe();
                        for key in &keys {
                            deletes.cmd("DEL").arg(key).ignore();
                        }
                        deletes.query_async::<()>(&mut connection).await?;
                    }
                    if next == 0 {
                        return Ok::<(), redis::RedisError>(());
                    }
                    cursor = next;
                }
            };
            tokio::time::timeout(limit, flush)
                .await
                .map_err(|_| RedisFailure::Timeout(limit))?
                .map_err(|e| RedisFailure::Redis(e.to_string()))?;
        }
        Ok(())
    }

    /// The servers that hold keys: the one server, or every master of the cluster as it reports
    /// itself now (`CLUSTER SHARDS` through the cluster connection), addressed like the first
    /// seed (its credentials and protocol).
    async fn nodes(&self) -> Result<Vec<redis::ConnectionInfo>, RedisFailure> {
        use redis::IntoConnectionInfo;
        let seed = resp3(&self.config.urls[0])
            .into_connection_info()
            .map_err(|e| RedisFailure::Config(e.to_string()))?;
        if !self.config.cluster {
            return Ok(vec![seed]);
        }
        let nodes: Value = self
            .call("CLUSTER", |mut c| async move {
                redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await
            })
            .await?;
        let text = match nodes {
            Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Value::VerbatimString { text, .. } => text,
            Value::SimpleString(text) => text,
            other => {
                return Err(RedisFailure::Redis(format!(
                    "CLUSTER NODES answered {other:?}"
                )))
            }
        };
        let masters = masters(&text);
        if masters.is_empty() {
            return Err(RedisFailure::Redis("CLUSTER NODES listed no master".into()));
        }
        Ok(masters
            .into_iter()
            .map(|(host, port)| {
                seed.clone()
                    .set_addr(redis::ConnectionAddr::Tcp(host, port))
            })
            .collect())
    }

    /// Subscribes to the invalidation channel if not subscribed yet; true once subscribed.
    pub async fn ensure_subscribed(&self) -> bool {
        let Some(channel) = self.subscription.clone() else {
            return true;
        };
        if self.subscribed.load(Ordering::Acquire) {
            return true;
        }
        let result = self
            .call("SUBSCRIBE", |c| async move {
                match c {
                    Connection::Standalone(mut m) => m.subscribe(&channel).await,
                    Connection::Cluster(mut c) => c.ssubscribe(&channel).await,
                }
            })
            .await;
        let subscribed = result.is_ok();
        self.subscribed.store(subscribed, Ordering::Release);
        subscribed
    }

    /// Whether the invalidation channel is subscribed (or there is none).
    pub fn is_subscribed(&self) -> bool {
        self.subscription.is_none() || self.subscribed.load(Ordering::Acquire)
    }

    /// Forgets the subscription (the connection dropped); the next probe subscribes again
    /// unless the connection resubscribes by itself first.
    pub fn mark_unsubscribed(&self) {
        self.subscribed.store(false, Ordering::Release);
    }

    /// The connection resubscribed by itself.
    pub fn mark_subscribed(&self) {
        self.subscribed.store(true, Ordering::Release);
    }

    /// Publishes `payload` on the invalidation channel (sharded on a cluster).
    pub async fn publish(&self, payload: String) -> Result<(), RedisFailure> {
        let Some(channel) = self.subscription.clone() else {
            return Ok(());
        };
        let command = if self.config.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        self.call(command, |mut c| async move {
            redis::cmd(command)
                .arg(&channel)
                .arg(&payload)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }
}

/// The `(host, port)` of every master in a `CLUSTER NODES` answer: lines of
/// `id host:port@cport[,hostname] flags master-id ping pong epoch state slots…`.
fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.contains(&"fail") {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// `url` asking for RESP3 (pub/sub pushes share the connection), unless it names a protocol.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::keys::KeySpace;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,node-b master - 0 1426238316232 2 connected 5461-10922
2928 127.0.0.1:30006@40006 master,fail - 0 1426238316232 3 disconnected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            masters(nodes),
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
        assert!(masters("garbage\n\n").is_empty());
    }

    /// #15 finding 8: with the cluster unreachable (here: a port that accepts and never answers),
    /// concurrent callers each give up at their own deadline. Before the fix, they queued on the
    /// connection mutex and each waited up to 5× the timeout for its own attempt, in turn.
    #[tokio::test(start_paused = true)]
    async fn callers_of_an_unreachable_cluster_each_give_up_at_their_deadline() {
        // Accepted by the kernel's backlog, never read: a connect that hangs.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("redis://{}/", listener.local_addr().expect("addr"));
        let timeout = Duration::from_millis(100);
        let tier = Arc::new(
            RedisTier::new(
                RedisConfig {
                    urls: vec![url],
                    cluster: true,
                    timeout,
                    breaker_failures: 100,
                    ..RedisConfig::default()
                },
                "t:v1:",
                None,
                None,
            )
            .expect("config"),
        );
        let key = KeySpace::new("t")
            .expect("namespace")
            .parse("t:v1:{goal:user:u:g}")
            .expect("key");
        let started = tokio::time::Instant::now();
        let calls = (0..4).map(|_| {
            let (tier, key) = (tier.clone(), key.clone());
            tokio::spawn(async move {
                let result = tier.get(&key).await;
                (result, started.elapsed())
            })
        });
        let answers: Vec<_> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|call| call.expect("task"))
            .collect();
        let slowest = answers.iter().map(|(_, elapsed)| *elapsed).max();
        assert!(
            slowest <= Some(timeout + Duration::from_millis(5)),
            "a caller waited {slowest:?} for a {timeout:?} call: {answers:?}"
        );
        assert!(answers.iter().all(|(result, _)| result.is_err()));
        drop(listener);
    }
}
