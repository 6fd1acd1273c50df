//! Fault injection for the reliability tests.
//!
//! - [`Faults`]: the fault plan of a [`DynamoProxy`](crate::proxy::DynamoProxy). Every request
//!   passes through it between being counted and being forwarded, so a test can add latency,
//!   drop the connection (a reset, no response), answer a throttling error instead of forwarding
//!   (`ProvisionedThroughputExceededException`, `ThrottlingException`), or forward a BatchGetItem
//!   and hand part of its keys back as `UnprocessedKeys`.
//! - [`TcpFaultProxy`]: a TCP forwarder (for Redis) that can delay every chunk, stop forwarding
//!   in both directions (a partition: nothing is lost, nothing gets through), and cut every
//!   connection it holds (what a long partition ends in once TCP gives up).
//!
//! Both listen on 127.0.0.1 only and count what they injected, so a test can assert that the
//! faults it planned really happened.

use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What to do to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without answering (the client sees a reset / closed connection).
    Reset,
    /// Answer HTTP 400 with this DynamoDB error code instead of forwarding, e.g.
    /// `ProvisionedThroughputExceededException` or `ThrottlingException`.
    Throttle(&'static str),
    /// Forward a BatchGetItem, then move the second half of its keys (all of them when it asks
    /// for one) from the response to `UnprocessedKeys`.
    Unprocessed,
}

impl Fault {
    fn name(&self) -> String {
        match self {
            Fault::Delay(_) => "delay".into(),
            Fault::Reset => "reset".into(),
            Fault::Throttle(code) => format!("throttle:{code}"),
            Fault::Unprocessed => "unprocessed".into(),
        }
    }
}

/// A fault for requests of one operation (or all), a number of times (or forever).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `Some("BatchGetItem")`: only that operation; `None`: every request.
    pub operation: Option<String>,
    pub fault: Fault,
    /// How many requests it applies to; `None`: every matching request until cleared.
    pub times: Option<u32>,
}

impl Rule {
    /// `fault` on every request of `operation` until cleared.
    pub fn always(operation: Option<&str>, fault: Fault) -> Self {
        Self {
            operation: operation.map(str::to_owned),
            fault,
            times: None,
        }
    }

    /// `fault` on the next `times` requests of `operation`.
    pub fn times(operation: Option<&str>, fault: Fault, times: u32) -> Self {
        Self {
            operation: operation.map(str::to_owned),
            fault,
            times: Some(times),
        }
    }
}

/// The fault plan of one proxy: the first rule that matches a request (and has uses left)
/// decides what happens to it; a request no rule matches is forwarded as it is.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    injected: Mutex<BTreeMap<String, u64>>,
}

impl Faults {
    /// Adds a rule after the existing ones.
    pub fn inject(&self, rule: Rule) {
        lock(&self.rules).push(rule);
    }

    /// Removes every rule: requests are forwarded as they are from now on.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// Faults injected so far, by name (`delay`, `reset`, `throttle:<code>`, `unprocessed`).
    pub fn injected(&self) -> BTreeMap<String, u64> {
        lock(&self.injected).clone()
    }

    /// Faults injected so far, all kinds.
    pub fn total_injected(&self) -> u64 {
        lock(&self.injected).values().sum()
    }

    /// The fault for the next request of `operation`, using up one of its rule's times.
    pub(crate) fn next(&self, operation: &str) -> Option<Fault> {
        let mut rules = lock(&self.rules);
        let rule = rules.iter_mut().find(|rule| {
            rule.operation.as_deref().is_none_or(|op| op == operation) && rule.times != Some(0)
        })?;
        if let Some(times) = &mut rule.times {
            *times -= 1;
        }
        let fault = rule.fault.clone();
        drop(rules);
        *lock(&self.injected).entry(fault.name()).or_default() += 1;
        Some(fault)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The body DynamoDB answers a throttled request with (HTTP 400, awsJson1.0).
pub(crate) fn throttle_body(code: &str) -> Bytes {
    let namespace = if code == "ThrottlingException" {
        "com.amazon.coral.availability"
    } else {
        "com.amazonaws.dynamodb.v20120810"
    };
    Bytes::from(
        serde_json::json!({
            "__type": format!("{namespace}#{code}"),
            "message": "injected by the goalstore-tests fault proxy",
        })
        .to_string(),
    )
}

/// Rewrites a BatchGetItem response so that the second half of the keys `request` asked for
/// (per table; the only key when it asked for one) are unprocessed: their items are removed
/// from `Responses` and the keys listed under `UnprocessedKeys`. Returns `None` when either
/// body is not the JSON a BatchGetItem exchanges.
pub(crate) fn withhold_half(request: &[u8], response: &[u8]) -> Option<Bytes> {
    let request: Value = serde_json::from_slice(request).ok()?;
    let mut response: Value = serde_json::from_slice(response).ok()?;
    let mut unprocessed = serde_json::Map::new();
    for (table, asked) in request.get("RequestItems")?.as_object()? {
        let keys = asked.get("Keys")?.as_array()?;
        let withheld: Vec<Value> = if keys.len() <= 1 {
            keys.clone()
        } else {
            keys[keys.len() / 2..].to_vec()
        };
        let is_withheld = |item: &Value| {
            withheld
                .iter()
                .any(|key| key.get("pk") == item.get("pk") && key.get("sk") == item.get("sk"))
        };
        if let Some(items) = response
            .get_mut("Responses")
            .and_then(|responses| responses.get_mut(table))
            .and_then(Value::as_array_mut)
        {
            items.retain(|item| !is_withheld(item));
        }
        let mut entry = asked.as_object()?.clone();
        entry.insert("Keys".into(), Value::Array(withheld));
        unprocessed.insert(table.clone(), Value::Object(entry));
    }
    response
        .as_object_mut()?
        .insert("UnprocessedKeys".into(), Value::Object(unprocessed));
    Some(Bytes::from(response.to_string()))
}

/// What a [`TcpFaultProxy`] does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpMode {
    /// Forward at once.
    Pass,
    /// Wait this long before forwarding each chunk, both ways.
    Delay(Duration),
    /// Forward nothing either way (bytes wait, connections stay open): a network partition.
    Partitioned,
}

/// A TCP forwarder (e.g. in front of Redis) that can be slowed, partitioned, and made to cut its
/// connections.
#[derive(Debug)]
pub struct TcpFaultProxy {
    address: SocketAddr,
    /// The mode, and the epoch: connections from an earlier epoch are closed.
    state: watch::Sender<(TcpMode, u64)>,
    task: JoinHandle<()>,
}

impl TcpFaultProxy {
    /// Forwards to `upstream` (`host:port`, or a `redis://host:port/` URL), passing at first.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream = upstream
            .split("://")
            .last()
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (state, _) = watch::channel((TcpMode::Pass, 0));
        let task = tokio::spawn(accept_all(listener, upstream, state.clone()));
        Ok(Self {
            address,
            state,
            task,
        })
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.address)
    }

    /// Sets what happens to bytes from now on (held bytes included).
    pub fn set_mode(&self, mode: TcpMode) {
        self.state.send_modify(|(current, _)| *current = mode);
    }

    /// Closes every connection open now; later connections are served in the current mode.
    pub fn cut_connections(&self) {
        self.state.send_modify(|(_, epoch)| *epoch += 1);
    }
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_all(listener: TcpListener, upstream: String, state: watch::Sender<(TcpMode, u64)>) {
    // The connections live in the set, so aborting this task closes them all.
    let mut connections = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let upstream = upstream.clone();
        let mut state = state.subscribe();
        connections.spawn(async move {
            let epoch = state.borrow_and_update().1;
            // A partition also holds new connections before they reach the upstream.
            if !wait_passable(&mut state, epoch).await {
                return;
            }
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let cut = {
                let mut state = state.clone();
                async move {
                    let _ = state.wait_for(|(_, now)| *now != epoch).await;
                }
            };
            tokio::select! {
                _ = pump(client_read, server_write, state.clone(), epoch) => {}
                _ = pump(server_read, client_write, state, epoch) => {}
                _ = cut => {}
            }
        });
    }
}

/// Waits until the mode lets bytes through; false when the connection is to be cut.
async fn wait_passable(state: &mut watch::Receiver<(TcpMode, u64)>, epoch: u64) -> bool {
    state
        .wait_for(|(mode, now)| *now != epoch || *mode != TcpMode::Partitioned)
        .await
        .map(|current| current.1 == epoch)
        .unwrap_or(false)
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<(TcpMode, u64)>,
    epoch: u64,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !wait_passable(&mut state, epoch).await {
            return;
        }
        let mode = state.borrow().0;
        if let TcpMode::Delay(delay) = mode {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order_and_run_out() {
        let faults = Faults::default();
        faults.inject(Rule::times(Some("BatchGetItem"), Fault::Reset, 2));
        faults.inject(Rule::always(None, Fault::Throttle("ThrottlingException")));
        assert_eq!(faults.next("BatchGetItem"), Some(Fault::Reset));
        assert_eq!(
            faults.next("GetItem"),
            Some(Fault::Throttle("ThrottlingException"))
        );
        assert_eq!(faults.next("BatchGetItem"), Some(Fault::Reset));
        assert_eq!(
            faults.next("BatchGetItem"),
            Some(Fault::Throttle("ThrottlingException"))
        );
        assert_eq!(faults.total_injected(), 4);
        faults.clear();
        assert_eq!(faults.next("BatchGetItem"), None);
    }

    #[test]
    fn half_the_keys_are_withheld() -> anyhow::Result<()> {
        let key = |sk: &str| serde_json::json!({"pk": {"S": "USER#u"}, "sk": {"S": sk}});
        let item =
            |sk: &str| serde_json::json!({"pk": {"S": "USER#u"}, "sk": {"S": sk}, "x": {"N": "1"}});
        let request = serde_json::json!({"RequestItems": {"t": {"Keys": [key("a"), key("b"), key("c"), key("d")], "ConsistentRead": true}}});
        let response = serde_json::json!({"Responses": {"t": [item("a"), item("c"), item("d")]}, "UnprocessedKeys": {}});
        let rewritten = withhold_half(
            request.to_string().as_bytes(),
            response.to_string().as_bytes(),
        )
        .ok_or_else(|| anyhow::anyhow!("not rewritten"))?;
        let rewritten: Value = serde_json::from_slice(&rewritten)?;
        assert_eq!(rewritten["Responses"]["t"], serde_json::json!([item("a")]));
        assert_eq!(
            rewritten["UnprocessedKeys"]["t"],
            serde_json::json!({"Keys": [key("c"), key("d")], "ConsistentRead": true})
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_partition_holds_bytes_and_a_cut_closes_connections() -> anyhow::Result<()> {
        let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let upstream = echo.local_addr()?.to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let proxy = TcpFaultProxy::start(&upstream).await?;
        let mut client = TcpStream::connect(proxy.address).await?;
        let mut buffer = [0u8; 4];
        client.write_all(b"ping").await?;
        client.read_exact(&mut buffer).await?;
        assert_eq!(&buffer, b"ping");

        proxy.set_mode(TcpMode::Partitioned);
        client.write_all(b"held").await?;
        let held =
            tokio::time::timeout(Duration::from_millis(200), client.read_exact(&mut buffer)).await;
        assert!(held.is_err(), "nothing crosses a partition");
        proxy.cut_connections();
        let read = client.read(&mut buffer).await;
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the cut closed it: {read:?}"
        );
        Ok(())
    }
}
