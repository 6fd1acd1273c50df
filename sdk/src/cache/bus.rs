//! The invalidation bus of the tiered strategy: Redis pub/sub between instances.
//!
//! Writes queue the keys they made stale; one task sends what is queued as one message (a burst
//! of writes is one message, not a storm). Three kinds of message, each starting with the sending
//! instance's id on its own line (receivers skip their own):
//!
//! - `{instance}\n{key}\n{key}…` — these keys are stale: drop them;
//! - `{instance}\n*` — keys were lost that cannot be named (the namespace was flushed): drop
//!   everything;
//! - `{instance}\n?{written_at_ms}\n{key}…` — the consistency auditor asks every instance to check
//!   these keys once the pub/sub window has passed (`audit.rs`).
//!
//! Delivery is at most once. A message that cannot be sent is not lost silently: its keys are
//! kept in the Redis tier and sent again after the replay (a purge asks for another flush).
//! Receiving, disconnection handling and purging live in the cache (`mod.rs`), which owns the
//! local tier; this file only batches and formats.

use super::redis::RedisTier;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// These keys are stale.
    Invalidate(Vec<Arc<str>>),
    /// Everything may be stale.
    Purge,
    /// Check these keys against the table; the write was acknowledged at `written_at_ms`.
    Audit {
        written_at_ms: u64,
        keys: Vec<Arc<str>>,
    },
}

/// Sends messages to other instances, invalidations batched.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Message>,
    messages: Arc<AtomicU64>,
    drop_invalidations: Arc<AtomicBool>,
}

impl Publisher {
    /// Starts the publishing task on the current runtime. The task ends when the last clone of
    /// the publisher is dropped.
    pub fn spawn(redis: Arc<RedisTier>, instance: Arc<str>) -> Self {
        let (queue, mut receiver) = mpsc::unbounded_channel::<Message>();
        let messages = Arc::new(AtomicU64::new(0));
        let drop_invalidations = Arc::new(AtomicBool::new(false));
        let (sent, dropping) = (messages.clone(), drop_invalidations.clone());
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                // Whatever queued while we woke up joins this batch.
                tokio::task::yield_now().await;
                while let Ok(more) = receiver.try_recv() {
                    batch.push(more);
                }
                for message in merge(batch) {
                    if dropping.load(Ordering::Relaxed) && !matches!(message, Message::Audit { .. })
                    {
                        continue;
                    }
                    match redis.publish(encode(&instance, &message)).await {
                        Ok(()) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(failure) => {
                            // Other instances may keep stale local entries: the tier keeps the
                            // keys and they are sent again once Redis answers.
                            tracing::debug!(%failure, "could not publish to other instances");
                            match message {
                                Message::Invalidate(keys) => redis.keep(&keys),
                                Message::Purge => redis.keep_all(),
                                Message::Audit { .. } => {}
                            }
                        }
                    }
                }
            }
        });
        Self {
            queue,
            messages,
            drop_invalidations,
        }
    }

    /// Queues `message`.
    pub fn send(&self, message: Message) {
        if !matches!(&message, Message::Invalidate(keys) if keys.is_empty()) {
            let _ = self.queue.send(message);
        }
    }

    /// Queues `keys` for the next invalidation message.
    pub fn publish(&self, keys: Vec<Arc<str>>) {
        self.send(Message::Invalidate(keys));
    }

    /// Messages sent so far.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// A fault for tests and game days: while set, invalidation and purge messages are dropped
    /// unsent (as if pub/sub lost them); audits still go. The consistency auditor must notice.
    pub fn set_dropping_invalidations(&self, dropping: bool) {
        self.drop_invalidations.store(dropping, Ordering::Relaxed);
    }
}

/// The batch as few messages as it can be: one invalidation of every key, a purge if any was
/// asked (after the invalidation, which it covers anyway), then the audits in order (after what
/// they check).
fn merge(batch: Vec<Message>) -> Vec<Message> {
    let mut keys: Vec<Arc<str>> = Vec::new();
    let mut seen = HashSet::new();
    let mut purge = false;
    let mut audits = Vec::new();
    for message in batch {
        match message {
            Message::Invalidate(more) => {
                keys.extend(more.into_iter().filter(|k| seen.insert(k.clone())));
            }
            Message::Purge => purge = true,
            audit @ Message::Audit { .. } => audits.push(audit),
        }
    }
    let mut merged = Vec::with_capacity(2 + audits.len());
    if !keys.is_empty() {
        merged.push(Message::Invalidate(keys));
    }
    if purge {
        merged.push(Message::Purge);
    }
    merged.extend(audits);
    merged
}

/// The wire form of `message` from `instance` (see the module comment).
pub fn encode(instance: &str, message: &Message) -> String {
    let mut text = String::from(instance);
    let keys = match message {
        Message::Invalidate(keys) => keys.as_slice(),
        Message::Purge => {
            text.push_str("\n*");
            return text;
        }
        Message::Audit {
            written_at_ms,
            keys,
        } => {
            text.push_str(&format!("\n?{written_at_ms}"));
            keys.as_slice()
        }
    };
    for key in keys {
        text.push('\n');
        text.push_str(key);
    }
    text
}

/// The sending instance and the message, or `None` if it is not one of ours.
pub fn decode(text: &str) -> Option<(&str, Message)> {
    let mut lines = text.split('\n');
    let instance = lines.next().filter(|i| !i.is_empty())?;
    let mut lines = lines.filter(|line| !line.is_empty()).peekable();
    let message = match lines.peek().copied() {
        Some("*") => Message::Purge,
        Some(first) if first.starts_with('?') => {
            let written_at_ms = first[1..].parse().ok()?;
            lines.next();
            Message::Audit {
                written_at_ms,
                keys: lines.map(Arc::from).collect(),
            }
        }
        _ => Message::Invalidate(lines.map(Arc::from).collect()),
    };
    Some((instance, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Arc<str>> {
        vec![
            "gs:v1:{goal:user:u:g}".into(),
            "gs:v1:{progress:goal:g}".into(),
        ]
    }

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::Invalidate(keys()),
            Message::Purge,
            Message::Audit {
                written_at_ms: 1_700_000_000_123,
                keys: keys(),
            },
        ] {
            let text = encode("instance-1", &message);
            assert_eq!(decode(&text), Some(("instance-1", message)));
        }
        // What earlier versions send is still understood.
        assert_eq!(
            decode("i\ngs:v1:{goal:user:u:g}\ngs:v1:{progress:goal:g}"),
            Some(("i", Message::Invalidate(keys())))
        );
        assert!(decode("").is_none());
        assert!(decode("i\n?not-a-time\nk").is_none());
    }

    #[test]
    fn a_batch_is_one_invalidation_then_a_purge_then_the_audits() {
        let audit = Message::Audit {
            written_at_ms: 5,
            keys: keys(),
        };
        let merged = merge(vec![
            Message::Invalidate(vec!["a".into()]),
            audit.clone(),
            Message::Purge,
            Message::Invalidate(vec!["b".into(), "a".into()]),
        ]);
        assert_eq!(
            merged,
            vec![
                Message::Invalidate(vec!["a".into(), "b".into()]),
                Message::Purge,
                audit
            ]
        );
    }
}
