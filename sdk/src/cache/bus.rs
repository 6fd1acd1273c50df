//! The invalidation bus of the tiered strategy: Redis pub/sub between instances.
//!
//! Writes queue the keys they made stale; one task sends what is queued as one message (a burst
//! of writes is one message, not a storm). A message is `{instance}\n{key}\n{key}…`: receivers
//! skip their own. Receiving, disconnection handling and purging live in the cache (`mod.rs`),
//! which owns the local tier; this file only batches and formats.

use super::redis::RedisTier;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Sends invalidations to other instances, batched.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Vec<Arc<str>>>,
    messages: Arc<AtomicU64>,
}

impl Publisher {
    /// Starts the publishing task on the current runtime. The task ends when the last clone of
    /// the publisher is dropped.
    pub fn spawn(redis: Arc<RedisTier>, instance: Arc<str>) -> Self {
        let (queue, mut receiver) = mpsc::unbounded_channel::<Vec<Arc<str>>>();
        let messages = Arc::new(AtomicU64::new(0));
        let sent = messages.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut keys: HashSet<Arc<str>> = first.into_iter().collect();
                // Whatever queued while we woke up joins this message.
                tokio::task::yield_now().await;
                while let Ok(more) = receiver.try_recv() {
                    keys.extend(more);
                }
                let keys: Vec<Arc<str>> = keys.into_iter().collect();
                match redis.publish(encode(&instance, &keys)).await {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(failure) => {
                        // Other instances may keep stale local entries: the tier keeps the keys
                        // and republishes them once Redis answers again.
                        tracing::debug!(%failure, "could not publish invalidations");
                        redis.keep(&keys);
                    }
                }
            }
        });
        Self { queue, messages }
    }

    /// Queues `keys` for the next message.
    pub fn publish(&self, keys: Vec<Arc<str>>) {
        if !keys.is_empty() {
            let _ = self.queue.send(keys);
        }
    }

    /// Messages sent so far.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }
}

/// `{instance}\n{key}\n{key}…`
pub fn encode(instance: &str, keys: &[Arc<str>]) -> String {
    let mut message = String::from(instance);
    for key in keys {
        message.push('\n');
        message.push_str(key);
    }
    message
}

/// The sending instance and the keys of a message.
pub fn decode(message: &str) -> Option<(&str, impl Iterator<Item = &str>)> {
    let mut lines = message.split('\n');
    let instance = lines.next().filter(|i| !i.is_empty())?;
    Some((instance, lines.filter(|key| !key.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let keys: Vec<Arc<str>> = vec![
            "gs:v1:{goal:user:u:g}".into(),
            "gs:v1:{progress:goal:g}".into(),
        ];
        let message = encode("instance-1", &keys);
        let (instance, decoded) = decode(&message).expect("well formed");
        assert_eq!(instance, "instance-1");
        assert_eq!(
            decoded.collect::<Vec<_>>(),
            ["gs:v1:{goal:user:u:g}", "gs:v1:{progress:goal:g}"]
        );
        assert!(decode("").is_none());
    }
}
