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
//! Invalidations that cannot reach Redis are kept (bounded) and replayed before this tier serves
//! another read: until then reads bypass Redis, so nothing stale is served when it returns. Past
//! the bound, every key under the namespace is deleted instead (SCAN on each configured node).
//!
//! It does not decode values (the store does) and knows nothing of kinds or TTL policy.

use super::breaker::CircuitBreaker;
use super::keys::CacheKey;
use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, PushInfo, RedisFuture, RedisResult, Script, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How the Redis tier connects and protects itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// One URL for a standalone server; several (the seed nodes) for a Redis Cluster.
    pub urls: Vec<String>,
    /// Whether `urls` name a Redis Cluster (always, when there is more than one).
    pub cluster: bool,
    /// Deadline of one Redis call.
    pub timeout: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_cooldown: Duration,
    /// How long a fill lease lives; a fill slower than this does not land.
    pub lease_ttl: Duration,
    /// Invalidations kept for replay while Redis is unreachable; past this, the namespace is flushed.
    pub max_pending_invalidations: usize,
    /// How often a degraded tier probes Redis.
    pub probe_interval: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            urls: vec!["redis://127.0.0.1:6379/".into()],
            cluster: false,
            timeout: Duration::from_millis(100),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(10),
            max_pending_invalidations: 100_000,
            probe_interval: Duration::from_millis(200),
        }
    }
}

/// Why a Redis call did not happen or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RedisFailure {
    #[error("the circuit breaker is open")]
    Open,
    #[error("invalidations are waiting to be replayed")]
    Replaying,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(String),
    #[error("bad redis configuration: {0}")]
    Config(String),
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

#[derive(Debug, Default)]
struct Pending {
    keys: HashSet<Arc<str>>,
    overflowed: bool,
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
    connection: tokio::sync::Mutex<Option<Connection>>,
    breaker: CircuitBreaker,
    pending: Mutex<Pending>,
    complete_fill: Script,
    errors: AtomicU64,
    prefix: String,
    subscription: Option<String>,
    subscribed: AtomicBool,
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
        Self {
            breaker: CircuitBreaker::new(config.breaker_failures, config.breaker_cooldown),
            config: RedisConfig { cluster, ..config },
            clients,
            connection: tokio::sync::Mutex::new(connection),
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
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        !pending.keys.is_empty() || pending.overflowed
    }

    /// The connection, made now if there is none yet (a cluster connects eagerly).
    async fn connection(&self) -> Result<Connection, RedisFailure> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let Clients::Cluster(client) = &self.clients else {
            return Err(RedisFailure::Config("standalone connection missing".into()));
        };
        let connection =
            tokio::time::timeout(self.config.timeout * 5, client.get_async_connection())
                .await
                .map_err(|_| RedisFailure::Timeout(self.config.timeout * 5))?
                .map_err(|e| RedisFailure::Redis(e.to_string()))?;
        let connection = Connection::Cluster(connection);
        *slot = Some(connection.clone());
        Ok(connection)
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
        let span = tracing::info_span!(
            "redis",
            otel.name = format!("redis.{name}"),
            otel.kind = "client",
            db.system = "redis",
            db.operation = name,
            otel.status_code = tracing::field::Empty,
        );
        let result = tracing::Instrument::instrument(
            async {
                match self.connection().await {
                    Ok(connection) => {
                        match tokio::time::timeout(self.config.timeout, call(connection)).await {
                            Ok(Ok(value)) => Ok(value),
                            Ok(Err(error)) => Err(RedisFailure::Redis(error.to_string())),
                            Err(_) => Err(RedisFailure::Timeout(self.config.timeout)),
                        }
                    }
                    Err(failure) => Err(failure),
                }
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

    /// The value under `key`; `Err` when the tier cannot be trusted or reached now.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, RedisFailure> {
        if self.has_pending() {
            return Err(RedisFailure::Replaying);
        }
        let text = key.text.clone();
        let value: Option<Vec<u8>> = self
            .call("GET", |mut c| async move {
                redis::cmd("GET").arg(&*text).query_async(&mut c).await
            })
            .await?;
        Ok(value.map(Bytes::from))
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
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.overflowed {
            return;
        }
        pending.keys.extend(keys.iter().cloned());
        if pending.keys.len() > self.config.max_pending_invalidations {
            pending.keys.clear();
            pending.overflowed = true;
        }
    }

    /// Probes Redis and replays kept invalidations. Returns the replayed keys (to publish to other
    /// instances), or `None` when Redis is still unreachable or nothing was kept.
    pub async fn recover(&self) -> Option<Vec<Arc<str>>> {
        let (keys, overflowed) = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            (
                pending.keys.iter().cloned().collect::<Vec<_>>(),
                pending.overflowed,
            )
        };
        if keys.is_empty() && !overflowed && !self.breaker.is_open() {
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
        if overflowed {
            if let Err(failure) = self.flush_namespace().await {
                tracing::warn!(%failure, "could not flush the cache namespace after lost invalidations");
                return None;
            }
        } else if let Err(failure) = self.delete(&keys).await {
            tracing::warn!(%failure, "could not replay kept invalidations yet");
            return None;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for key in &keys {
            pending.keys.remove(key);
        }
        if overflowed {
            pending.overflowed = false;
        }
        tracing::info!(
            replayed = keys.len(),
            flushed = overflowed,
            "redis reachable again"
        );
        Some(keys)
    }

    /// Deletes every key under the namespace, node by node.
    async fn flush_namespace(&self) -> Result<(), RedisFailure> {
        let pattern = format!("{}*", self.prefix);
        for url in &self.config.urls {
            let client = redis::Client::open(resp3(url).as_str())
                .map_err(|e| RedisFailure::Config(e.to_string()))?;
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
                    for key in keys {
                        // On a cluster, a node only deletes keys it owns; others answer MOVED.
                        let _: RedisResult<()> = redis::cmd("DEL")
                            .arg(key)
                            .query_async(&mut connection)
                            .await;
                    }
                    if next == 0 {
                        return Ok::<(), redis::RedisError>(());
                    }
                    cursor = next;
                }
            };
            tokio::time::timeout(self.config.timeout * 100, flush)
                .await
                .map_err(|_| RedisFailure::Timeout(self.config.timeout * 100))?
                .map_err(|e| RedisFailure::Redis(e.to_string()))?;
        }
        Ok(())
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
