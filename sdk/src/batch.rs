//! The batch loader: point reads of items that arrive together become one BatchGetItem.
//!
//! Callers queue keys and await their item. One task drains the queue: it takes what is queued
//! *now* (after one yield, so reads issued in the same tick join), deduplicates, splits it into
//! requests of at most 100 keys, and sends them in parallel up to a bound. There is no waiting
//! window by default, so a lone read pays no latency floor; while requests are in flight, new
//! reads queue and form the next batch.
//!
//! Unprocessed keys and throttling are retried with capped exponential backoff and full jitter,
//! within a per-request attempt limit and a loader-wide retry budget (a token bucket, as the AWS
//! SDKs' retry quota), so a throttled table is not hammered by every waiting caller at once.
//!
//! Invariants: every queued waiter gets exactly one answer; a key is never in two requests of one
//! batch; no request holds more than [`MAX_BATCH_GET_KEYS`] keys. The loader does no decoding and
//! no caching.

use crate::keys::ItemKey;
use crate::table::{item_key, Item, Table, TableError, MAX_BATCH_GET_KEYS};
use rand::RngExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How the loader batches and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// Keys per BatchGetItem request (1-100).
    pub max_keys_per_request: usize,
    /// BatchGetItem requests in flight at once.
    pub max_concurrent_requests: usize,
    /// Wait this long after the first queued read before sending, to gather more. Off by default:
    /// a window puts a latency floor under every read.
    pub window: Option<Duration>,
    /// Retries of throttled requests and unprocessed keys.
    pub retry: RetryPolicy,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_keys_per_request: MAX_BATCH_GET_KEYS,
            max_concurrent_requests: 8,
            window: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Capped exponential backoff with full jitter, and a retry budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; it doubles each retry.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
    /// Tokens in the retry budget; a retry takes [`RetryPolicy::retry_cost`], a success returns one.
    pub budget_tokens: u32,
    /// Tokens one retry takes.
    pub retry_cost: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(1),
            budget_tokens: 500,
            retry_cost: 5,
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1 for the first retry): uniform in
    /// `[0, min(max_delay, base_delay * 2^(retry-1))]`.
    pub fn backoff(&self, retry: u32, random: &mut impl RngExt) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max_delay);
        ceiling.mul_f64(random.random::<f64>())
    }
}

/// What the loader has done, for statistics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// BatchGetItem requests sent, retries included.
    pub requests: u64,
    /// Keys sent, retries included.
    pub keys: u64,
    /// Retries because keys came back unprocessed.
    pub retries_unprocessed: u64,
    /// Retries because the request was throttled.
    pub retries_throttled: u64,
    /// Retries because the table was unreachable.
    pub retries_unavailable: u64,
    /// Requests given up because the retry budget or the attempt limit was spent.
    pub exhausted: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    keys: AtomicU64,
    retries_unprocessed: AtomicU64,
    retries_throttled: AtomicU64,
    retries_unavailable: AtomicU64,
    exhausted: AtomicU64,
}

type Reply = oneshot::Sender<Result<Option<Item>, TableError>>;

/// A queued read: its key, where its answer goes, and the span of the caller waiting for it (the
/// request that serves it links to that span; see [`request_span`]).
type Waiter = (ItemKey, Reply, tracing::Span);

/// Reads items through batched BatchGetItem requests. Cheap to clone; the draining task ends
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    queue: mpsc::UnboundedSender<Vec<Waiter>>,
    counters: Arc<Counters>,
}

impl BatchLoader {
    /// Starts the loader's task on the current tokio runtime.
    pub fn spawn(table: Arc<dyn Table>, config: BatchConfig) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let drainer = Drainer {
            table,
            requests_in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
            budget: Arc::new(Mutex::new(config.retry.budget_tokens)),
            config: Arc::new(BatchConfig {
                max_keys_per_request: config.max_keys_per_request.clamp(1, MAX_BATCH_GET_KEYS),
                ..config
            }),
            counters: counters.clone(),
        };
        tokio::spawn(drainer.run(receiver));
        Self { queue, counters }
    }

    /// The item at `key`, or `None` when there is none.
    pub async fn load(&self, key: ItemKey) -> Result<Option<Item>, TableError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(vec![(key, reply, tracing::Span::current())])?;
        answer.await.unwrap_or_else(|_| Err(loader_gone()))
    }

    /// The items at `keys`, in the same order. All keys are queued at once, so they form as few
    /// requests as possible.
    pub async fn load_many(&self, keys: Vec<ItemKey>) -> Vec<Result<Option<Item>, TableError>> {
        let caller = tracing::Span::current();
        let (waiters, answers): (Vec<_>, Vec<_>) = keys
            .into_iter()
            .map(|key| {
                let (reply, answer) = oneshot::channel();
                ((key, reply, caller.clone()), answer)
            })
            .unzip();
        if let Err(error) = self.enqueue(waiters) {
            return answers.iter().map(|_| Err(error.clone())).collect();
        }
        futures::future::join_all(
            answers
                .into_iter()
                .map(|answer| async { answer.await.unwrap_or_else(|_| Err(loader_gone())) }),
        )
        .await
    }

    /// What the loader has done so far.
    pub fn stats(&self) -> BatchStats {
        let c = &self.counters;
        BatchStats {
            requests: c.requests.load(Ordering::Relaxed),
            keys: c.keys.load(Ordering::Relaxed),
            retries_unprocessed: c.retries_unprocessed.load(Ordering::Relaxed),
            retries_throttled: c.retries_throttled.load(Ordering::Relaxed),
            retries_unavailable: c.retries_unavailable.load(Ordering::Relaxed),
            exhausted: c.exhausted.load(Ordering::Relaxed),
        }
    }

    fn enqueue(&self, waiters: Vec<Waiter>) -> Result<(), TableError> {
        if waiters.is_empty() {
            return Ok(());
        }
        self.queue.send(waiters).map_err(|_| loader_gone())
    }
}

/// The span of one shared request (its DynamoDB attempts are its children): it links to the
/// span of every caller it serves, since it serves many callers and belongs to none of them.
/// When it serves one caller only, it is also that caller's child in the exported trace, so a
/// lone read's trace is whole. Free when nothing records spans.
///
/// Never the caller's child in `tracing`'s own tree: there a parent stays open until its children
/// close, and this request may outlive the call it answered (retries for other keys), which would
/// hold the caller's span open past its end, and on Lambda past the invocation.
fn request_span(keys: usize, mut callers: Vec<tracing::Span>) -> tracing::Span {
    callers.retain(|caller| caller.id().is_some());
    callers.sort_unstable_by_key(|caller| caller.id().map(|id| id.into_u64()));
    callers.dedup_by_key(|caller| caller.id());
    let span = tracing::info_span!(
        parent: None,
        "batch_get",
        otel.name = "batch_loader.BatchGetItem",
        keys,
        callers = callers.len()
    );
    if let [only] = callers.as_slice() {
        // Fails only when no OpenTelemetry layer records the span: nothing to join then.
        let _ = span.set_parent(only.context());
    }
    for caller in &callers {
        span.follows_from(caller);
    }
    span
}

fn loader_gone() -> TableError {
    TableError::Unavailable("the batch loader has stopped (its runtime shut down)".into())
}

#[derive(Debug)]
struct Drainer {
    table: Arc<dyn Table>,
    requests_in_flight: Arc<Semaphore>,
    budget: Arc<Mutex<u32>>,
    config: Arc<BatchConfig>,
    counters: Arc<Counters>,
}

impl Drainer {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Vec<Waiter>>) {
        while let Some(first) = queue.recv().await {
            let mut pending: HashMap<ItemKey, Vec<(Reply, tracing::Span)>> = HashMap::new();
            let mut order: Vec<ItemKey> = Vec::new();
            let mut add = |waiters: Vec<Waiter>| {
                for (key, reply, caller) in waiters {
                    let replies = pending.entry(key.clone()).or_default();
                    if replies.is_empty() {
                        order.push(key);
                    }
                    replies.push((reply, caller));
                }
            };
            add(first);
            // Let reads issued in the same tick join this batch; a window, when set, gathers more.
            match self.config.window {
                Some(window) => tokio::time::sleep(window).await,
                None => tokio::task::yield_now().await,
            }
            while let Ok(more) = queue.try_recv() {
                add(more);
            }
            for chunk in order.chunks(self.config.max_keys_per_request) {
                let Ok(permit) = self.requests_in_flight.clone().acquire_owned().await else {
                    return;
                };
                let mut callers = Vec::new();
                let waiters: HashMap<ItemKey, Vec<Reply>> = chunk
                    .iter()
                    .filter_map(|key| pending.remove_entry(key))
                    .map(|(key, waiting)| {
                        let (replies, spans): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
                        callers.extend(spans);
                        (key, replies)
                    })
                    .collect();
                // Made now, while the callers' spans are held: a closed span's id can be reused.
                let span = request_span(waiters.len(), callers);
                let request = Request {
                    table: self.table.clone(),
                    budget: self.budget.clone(),
                    config: self.config.clone(),
                    counters: self.counters.clone(),
                };
                tokio::spawn(async move {
                    // The last answers go out after the span has ended, so a caller's span
                    // never ends before the request it waited for (on Lambda, the invocation's
                    // spans have all been sent when it answers).
                    let answers = request.fetch(waiters).instrument(span).await;
                    deliver(answers);
                    drop(permit);
                });
            }
        }
    }
}

struct Request {
    table: Arc<dyn Table>,
    budget: Arc<Mutex<u32>>,
    config: Arc<BatchConfig>,
    counters: Arc<Counters>,
}

impl Request {
    /// Fetches the waiters' keys, retrying what comes back unprocessed or throttled. Answers
    /// known before a retry go out at once; the last ones are returned, for the caller to send.
    async fn fetch(self, mut waiters: HashMap<ItemKey, Vec<Reply>>) -> Answers {
        let policy = &self.config.retry;
        let mut attempt = 0u32;
        let mut answers = Answers::new();
        loop {
            attempt += 1;
            let keys: Vec<ItemKey> = waiters.keys().cloned().collect();
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            self.counters
                .keys
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            metrics::histogram!(crate::metrics::DYNAMODB_BATCH_KEYS).record(keys.len() as f64);
            let failure = match self.table.batch_get_items(&keys).await {
                Ok(output) => {
                    self.refund();
                    for item in output.items {
                        if let Some(replies) = item_key(&item).and_then(|k| waiters.remove(&k)) {
                            answers.push((replies, Ok(Some(item))));
                        }
                    }
                    // What is neither returned nor unprocessed does not exist.
                    let unprocessed: HashMap<ItemKey, Vec<Reply>> = output
                        .unprocessed
                        .into_iter()
                        .filter_map(|key| waiters.remove_entry(&key))
                        .collect();
                    for (_, replies) in waiters.drain() {
                        answers.push((replies, Ok(None)));
                    }
                    waiters = unprocessed;
                    if waiters.is_empty() {
                        return answers;
                    }
                    self.counters
                        .retries_unprocessed
                        .fetch_add(1, Ordering::Relaxed);
                    retried("unprocessed");
                    TableError::Throttled {
                        code: "UnprocessedKeys".into(),
                        attempts: attempt,
                    }
                }
                Err(TableError::Throttled { code, .. }) => {
                    self.counters
                        .retries_throttled
                        .fetch_add(1, Ordering::Relaxed);
                    retried("throttled");
                    TableError::Throttled {
                        code,
                        attempts: attempt,
                    }
                }
                Err(TableError::Unavailable(message)) => {
                    self.counters
                        .retries_unavailable
                        .fetch_add(1, Ordering::Relaxed);
                    retried("unavailable");
                    TableError::Unavailable(message)
                }
                Err(error) => {
                    for (_, replies) in waiters.drain() {
                        answers.push((replies, Err(error.clone())));
                    }
                    return answers;
                }
            };
            if attempt >= policy.max_attempts || !self.spend() {
                self.counters.exhausted.fetch_add(1, Ordering::Relaxed);
                for (_, replies) in waiters.drain() {
                    answers.push((replies, Err(failure.clone())));
                }
                return answers;
            }
            // Those answered so far need not wait for the retry.
            deliver(std::mem::take(&mut answers));
            let delay = policy.backoff(attempt, &mut rand::rng());
            tokio::time::sleep(delay).await;
        }
    }

    /// Takes a retry's cost from the budget; false when the budget cannot pay it.
    fn spend(&self) -> bool {
        let mut tokens = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let cost = self.config.retry.retry_cost;
        if *tokens >= cost {
            *tokens -= cost;
            true
        } else {
            false
        }
    }

    /// A successful request returns one token, up to the budget's size.
    fn refund(&self) {
        let mut tokens = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        *tokens = (*tokens + 1).min(self.config.retry.budget_tokens);
    }
}

/// Counts a retry by its reason. (A request that gives up afterwards still counted its reason.)
fn retried(reason: &'static str) {
    metrics::counter!(crate::metrics::DYNAMODB_RETRIES, "reason" => reason).increment(1);
}

/// Answers to send: the waiters of a key, and what they get.
type Answers = Vec<(Vec<Reply>, Result<Option<Item>, TableError>)>;

fn deliver(answers: Answers) {
    for (replies, result) in answers {
        answer(replies, result);
    }
}

fn answer(mut replies: Vec<Reply>, result: Result<Option<Item>, TableError>) {
    // Usually one caller waits per key: it gets the item itself; only extra callers of the same
    // key get (deep) copies. A caller that gave up (timed out, was cancelled) no longer listens;
    // nothing to do.
    let last = replies.pop();
    for reply in replies {
        let _ = reply.send(result.clone());
    }
    if let Some(reply) = last {
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{MemoryTable, MemoryTableOptions};
    use aws_sdk_dynamodb::types::AttributeValue;

    fn key(i: usize) -> ItemKey {
        ItemKey {
            pk: "USER#u".into(),
            sk: format!("GOAL#{i}"),
        }
    }

    fn table_with(count: usize, options: MemoryTableOptions) -> Arc<MemoryTable> {
        let table = MemoryTable::new(options);
        for i in 0..count {
            let k = key(i);
            table
                .insert(HashMap::from([
                    ("pk".into(), AttributeValue::S(k.pk)),
                    ("sk".into(), AttributeValue::S(k.sk)),
                ]))
                .expect("valid item");
        }
        Arc::new(table)
    }

    /// The exported spans, into a channel.
    #[derive(Debug)]
    struct Spans(std::sync::mpsc::Sender<opentelemetry_sdk::trace::SpanData>);

    impl opentelemetry_sdk::trace::SpanExporter for Spans {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            for span in batch {
                let _ = self.0.send(span);
            }
            Ok(())
        }
    }

    /// One request serves two callers: its span links to both and is the child of neither; with
    /// one caller it is that caller's child. Each has ended (and been exported) by the time its
    /// callers have their answers.
    #[tokio::test]
    async fn a_shared_request_links_to_every_caller_it_serves() {
        use opentelemetry::trace::{SpanId, TracerProvider as _};
        use tracing::Instrument as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let (sent, exported) = std::sync::mpsc::channel();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(Spans(sent))
            .build();
        let _traced = tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
        );
        let table = table_with(3, MemoryTableOptions::default());
        let loader = BatchLoader::spawn(table, BatchConfig::default());
        let (a, b) = tokio::join!(
            loader
                .load(key(0))
                .instrument(tracing::info_span!("caller.a")),
            loader
                .load(key(1))
                .instrument(tracing::info_span!("caller.b")),
        );
        assert!(matches!((a, b), (Ok(Some(_)), Ok(Some(_)))));
        loader
            .load(key(2))
            .instrument(tracing::info_span!("caller.c"))
            .await
            .expect("read");
        let spans: Vec<_> = exported.try_iter().collect();
        let named = |name: &str| {
            spans
                .iter()
                .find(|span| span.name == name)
                .unwrap_or_else(|| panic!("no {name} in {spans:?}"))
        };
        let id = |name: &str| named(name).span_context.span_id();
        let shared: Vec<_> = spans
            .iter()
            .filter(|span| span.name == "batch_loader.BatchGetItem")
            .collect();
        assert_eq!(shared.len(), 2, "{spans:?}");
        let linked = |span: &opentelemetry_sdk::trace::SpanData| {
            let mut ids: Vec<SpanId> = span
                .links
                .iter()
                .map(|link| link.span_context.span_id())
                .collect();
            ids.sort_unstable_by_key(|id| id.to_bytes());
            ids
        };
        let mut both = vec![id("caller.a"), id("caller.b")];
        both.sort_unstable_by_key(|id| id.to_bytes());
        assert_eq!(linked(shared[0]), both);
        assert_eq!(
            shared[0].parent_span_id,
            SpanId::INVALID,
            "a child of neither"
        );
        assert_eq!(linked(shared[1]), [id("caller.c")]);
        assert_eq!(
            shared[1].parent_span_id,
            id("caller.c"),
            "a lone caller's child"
        );
    }

    #[tokio::test]
    async fn a_thousand_keys_make_ten_requests() {
        let table = table_with(1000, MemoryTableOptions::default());
        let loader = BatchLoader::spawn(table.clone(), BatchConfig::default());
        let results = loader.load_many((0..1000).map(key).collect()).await;
        assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));
        assert_eq!(table.usage().batch_get_item, 10);
    }

    #[tokio::test]
    async fn concurrent_point_reads_coalesce_and_deduplicate() {
        let table = table_with(500, MemoryTableOptions::default());
        let loader = BatchLoader::spawn(table.clone(), BatchConfig::default());
        // 1000 reads of 500 distinct keys plus 10 missing ones.
        let reads = (0..1010).map(|i| loader.load(key(if i < 1000 { i % 500 } else { i })));
        let results = futures::future::join_all(reads).await;
        assert_eq!(
            results.iter().filter(|r| matches!(r, Ok(Some(_)))).count(),
            1000
        );
        assert_eq!(results.iter().filter(|r| matches!(r, Ok(None))).count(), 10);
        assert_eq!(table.usage().batch_get_item, 6, "510 distinct keys");
        assert_eq!(loader.stats().keys, 510);
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_keys_are_retried_until_answered() {
        let table = table_with(
            300,
            MemoryTableOptions {
                unprocessed_probability: 0.3,
                ..MemoryTableOptions::default()
            },
        );
        let loader = BatchLoader::spawn(table.clone(), BatchConfig::default());
        let results = loader.load_many((0..300).map(key).collect()).await;
        assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));
        let stats = loader.stats();
        assert!(stats.retries_unprocessed > 0, "{stats:?}");
        assert_eq!(stats.exhausted, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_with_backoff() {
        let table = table_with(10, MemoryTableOptions::default());
        table.throttle_next(3);
        let loader = BatchLoader::spawn(table.clone(), BatchConfig::default());
        let started = tokio::time::Instant::now();
        let item = loader.load(key(3)).await.expect("retried until served");
        assert!(item.is_some());
        assert_eq!(loader.stats().retries_throttled, 3);
        assert_eq!(table.usage().batch_get_item, 4);
        // Full jitter under ceilings of 25, 50 and 100 ms.
        assert!(started.elapsed() <= Duration::from_millis(175));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_attempt_limit_and_the_budget() {
        let table = table_with(10, MemoryTableOptions::default());
        table.throttle_next(1000);
        let config = BatchConfig {
            retry: RetryPolicy {
                max_attempts: 4,
                budget_tokens: 12,
                ..RetryPolicy::default()
            },
            ..BatchConfig::default()
        };
        let loader = BatchLoader::spawn(table.clone(), config);
        let error = loader.load(key(1)).await.expect_err("always throttled");
        assert!(
            matches!(error, TableError::Throttled { attempts: 3, .. }),
            "{error}"
        );
        // 12 tokens paid two retries of 5; the third found the budget short.
        assert_eq!(table.usage().batch_get_item, 3);
        let error = loader.load(key(2)).await.expect_err("budget spent");
        assert!(
            matches!(error, TableError::Throttled { attempts: 1, .. }),
            "{error}"
        );
        assert_eq!(loader.stats().exhausted, 2);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = RetryPolicy::default();
        let mut random = rand::rng();
        for retry in 1..30 {
            let delay = policy.backoff(retry, &mut random);
            assert!(delay <= policy.max_delay);
            assert!(delay <= policy.base_delay * (1 << (retry - 1).min(20)));
        }
    }
}
