//! A `metrics` recorder that writes CloudWatch Embedded Metric Format (EMF) documents.
//!
//! Every metric the store records through the `metrics` facade (names in `goalstore::metrics`)
//! lands here; [`EmfRecorder::flush`] turns what happened since the previous flush into EMF JSON
//! documents, one a line, for CloudWatch Logs to extract. A Lambda flushes once per invocation.
//!
//! What a flush emits:
//! - a counter's increase since the previous flush (an unchanged counter is left out);
//! - a gauge's value, if it was written since the previous flush;
//! - a histogram's samples since the previous flush, as an array of values.
//!
//! Labels become dimensions beside the configured ones (`environment`, `function`), so one
//! document carries the metrics of one label set. Within the specification's limits: at most
//! [`MAX_METRICS_PER_DOCUMENT`] metrics and [`MAX_VALUES_PER_METRIC`] values of a metric in one
//! document, at most [`MAX_DIMENSIONS`] dimensions in a dimension set; past them the metrics are
//! split over more documents, and labels past the 30th are written as plain properties (searchable
//! in Logs Insights, not dimensions). Non-finite values are left out (EMF values are JSON numbers).
//!
//! Why not `metrics_cloudwatch_embedded`: it drops histogram samples past 100 per flush and metrics
//! with more than 30 labels instead of splitting, and writes every gauge on every flush.

use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata};
use metrics::{SharedString, Unit};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The CloudWatch namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "ai-lifestyle-app/Goals";
/// The most metrics one EMF document may declare.
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;
/// The most dimensions one dimension set may hold.
pub const MAX_DIMENSIONS: usize = 30;
/// The most values one metric may carry in one document.
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// Samples a histogram keeps between flushes; past it, samples are dropped (a flush per
/// invocation never gets near it).
pub const MAX_PENDING_SAMPLES: usize = 10_000;

/// The dimension naming the deployment environment.
pub const ENVIRONMENT_DIMENSION: &str = "environment";
/// The dimension naming the Lambda function.
pub const FUNCTION_DIMENSION: &str = "function";

/// An invalid EMF setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmfError {
    #[error("invalid CloudWatch namespace `{0}`: 1-255 characters, not starting with `:`")]
    Namespace(String),
    #[error("invalid dimension `{name}`=`{value}`: name and value must be 1-255 characters, the name not starting with `:`")]
    Dimension { name: String, value: String },
    #[error("more than {MAX_DIMENSIONS} dimensions configured")]
    TooManyDimensions,
}

/// Where documents go and what they carry besides the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmfConfig {
    namespace: String,
    dimensions: Vec<(String, String)>,
}

impl EmfConfig {
    /// Documents under `namespace`, with no dimensions of their own yet.
    pub fn new(namespace: impl Into<String>) -> Result<Self, EmfError> {
        let namespace = namespace.into();
        if !valid_name(&namespace) {
            return Err(EmfError::Namespace(namespace));
        }
        Ok(Self {
            namespace,
            dimensions: Vec::new(),
        })
    }

    /// Adds a dimension every document carries (a label of the same name is then ignored).
    pub fn with_dimension(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, EmfError> {
        let (name, value) = (name.into(), value.into());
        if !valid_name(&name) || value.is_empty() || value.len() > 255 || name == "_aws" {
            return Err(EmfError::Dimension { name, value });
        }
        if self.dimensions.len() >= MAX_DIMENSIONS {
            return Err(EmfError::TooManyDimensions);
        }
        self.dimensions.retain(|(existing, _)| *existing != name);
        self.dimensions.push((name, value));
        Ok(self)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The dimensions every document carries.
    pub fn dimensions(&self) -> &[(String, String)] {
        &self.dimensions
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.starts_with(':')
}

/// The CloudWatch unit of a `metrics` unit; `None` where CloudWatch has no equivalent.
pub fn cloudwatch_unit(unit: Option<Unit>) -> &'static str {
    match unit {
        Some(Unit::Count) => "Count",
        Some(Unit::Percent) => "Percent",
        Some(Unit::Seconds) => "Seconds",
        Some(Unit::Milliseconds) => "Milliseconds",
        Some(Unit::Microseconds) => "Microseconds",
        Some(Unit::Bytes) => "Bytes",
        Some(Unit::Kibibytes) => "Kilobytes",
        Some(Unit::Mebibytes) => "Megabytes",
        Some(Unit::Gibibytes) => "Gigabytes",
        Some(Unit::Tebibytes) => "Terabytes",
        Some(Unit::BitsPerSecond) => "Bits/Second",
        Some(Unit::KilobitsPerSecond) => "Kilobits/Second",
        Some(Unit::MegabitsPerSecond) => "Megabits/Second",
        Some(Unit::GigabitsPerSecond) => "Gigabits/Second",
        Some(Unit::TerabitsPerSecond) => "Terabits/Second",
        Some(Unit::CountPerSecond) => "Count/Second",
        Some(Unit::Nanoseconds) | None => "None",
    }
}

#[derive(Debug, Default)]
struct CounterCell {
    total: AtomicU64,
    flushed: AtomicU64,
}

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.total.fetch_max(value, Ordering::Relaxed);
    }
}

impl CounterCell {
    /// The increase since the previous call.
    fn take_delta(&self) -> u64 {
        let total = self.total.load(Ordering::Relaxed);
        let flushed = self.flushed.swap(total, Ordering::Relaxed);
        total.saturating_sub(flushed)
    }
}

#[derive(Debug, Default)]
struct GaugeCell {
    bits: AtomicU64,
    written: AtomicBool,
}

impl GaugeCell {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let mut current = self.bits.load(Ordering::Relaxed);
        loop {
            let next = change(f64::from_bits(current)).to_bits();
            match self.bits.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.written.store(true, Ordering::Relaxed);
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|current| current + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|current| current - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

#[derive(Debug, Default)]
struct HistogramCell {
    samples: Mutex<Vec<f64>>,
}

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        let mut samples = lock(&self.samples);
        if samples.len() < MAX_PENDING_SAMPLES {
            samples.push(value);
        }
    }
}

#[derive(Debug, Clone)]
enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

#[derive(Debug)]
struct Shared {
    config: EmfConfig,
    /// By `metrics::Key` (name and labels): a lookup allocates nothing.
    series: Mutex<HashMap<Key, Cell>>,
    units: Mutex<HashMap<String, Unit>>,
}

/// The recorder. Cheap to clone; clones share their series. Install one clone with
/// [`metrics::set_global_recorder`] and keep another to flush.
#[derive(Debug, Clone)]
pub struct EmfRecorder {
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One metric's value in one document.
#[derive(Debug)]
struct Entry {
    name: String,
    unit: &'static str,
    value: Value,
}

impl EmfRecorder {
    /// A recorder writing documents under `config`.
    pub fn new(config: EmfConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                series: Mutex::default(),
                units: Mutex::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EmfConfig {
        &self.shared.config
    }

    /// Forgets what happened so far without emitting it: after `goalstore::metrics::describe()`
    /// zeroes every series at start-up, so the first invocation does not emit them all.
    pub fn reset(&self) {
        let _ = self.collect();
    }

    /// What happened since the previous flush, as EMF documents (empty if nothing did).
    pub fn flush(&self) -> Vec<Value> {
        self.flush_at(chrono::Utc::now().timestamp_millis())
    }

    /// [`flush`](Self::flush) with the documents' timestamp (milliseconds since the epoch) given.
    pub fn flush_at(&self, timestamp_ms: i64) -> Vec<Value> {
        let groups = self.collect();
        let mut documents = Vec::new();
        for (labels, entries) in groups {
            self.documents(timestamp_ms, &labels, entries, &mut documents);
        }
        documents
    }

    /// Flushes to `out`, one document a line; returns how many documents were written.
    pub fn flush_to(&self, out: &mut dyn Write) -> std::io::Result<usize> {
        let documents = self.flush();
        let mut text = Vec::new();
        for document in &documents {
            serde_json::to_writer(&mut text, document)?;
            text.push(b'\n');
        }
        out.write_all(&text)?;
        out.flush()?;
        Ok(documents.len())
    }

    /// Flushes to stdout (where Lambda sends a function's log lines); a write error is logged,
    /// never raised: losing metrics must not fail an invocation.
    pub fn flush_stdout(&self) {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if let Err(error) = self.flush_to(&mut out) {
            tracing::warn!(%error, "could not write EMF metrics to stdout");
        }
    }

    /// Takes every series' news since the previous call, grouped by label set.
    fn collect(&self) -> BTreeMap<Vec<(String, String)>, Vec<Entry>> {
        let mut cells: Vec<(Key, Cell)> = lock(&self.shared.series)
            .iter()
            .map(|(key, cell)| (key.clone(), cell.clone()))
            .collect();
        // Documents in a stable order: by label set (the groups), then by name.
        cells.sort_by(|(a, _), (b, _)| a.name().cmp(b.name()));
        let units = lock(&self.shared.units).clone();
        let mut groups: BTreeMap<Vec<(String, String)>, Vec<Entry>> = BTreeMap::new();
        for (key, cell) in cells {
            let name = key.name();
            let unit = cloudwatch_unit(units.get(name).copied());
            let mut values: Vec<Value> = Vec::new();
            match cell {
                Cell::Counter(counter) => {
                    let delta = counter.take_delta();
                    if delta > 0 {
                        values.push(json!(delta));
                    }
                }
                Cell::Gauge(gauge) => {
                    if gauge.written.swap(false, Ordering::Relaxed) {
                        let value = f64::from_bits(gauge.bits.load(Ordering::Relaxed));
                        if value.is_finite() {
                            values.push(json!(value));
                        }
                    }
                }
                Cell::Histogram(histogram) => {
                    let samples = std::mem::take(&mut *lock(&histogram.samples));
                    let finite: Vec<f64> = samples.into_iter().filter(|v| v.is_finite()).collect();
                    for chunk in finite.chunks(MAX_VALUES_PER_METRIC) {
                        values.push(json!(chunk));
                    }
                }
            }
            if values.is_empty() {
                continue;
            }
            let labels = key
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            let group = groups.entry(labels).or_default();
            group.extend(values.into_iter().map(|value| Entry {
                name: name.to_owned(),
                unit,
                value,
            }));
        }
        groups
    }

    /// The documents of one label set: first fit of its entries into documents that hold each
    /// name once and at most [`MAX_METRICS_PER_DOCUMENT`] metrics.
    fn documents(
        &self,
        timestamp_ms: i64,
        labels: &[(String, String)],
        entries: Vec<Entry>,
        out: &mut Vec<Value>,
    ) {
        let config = &self.shared.config;
        let mut dimensions: Vec<(&str, &str)> = config
            .dimensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut properties: Vec<(&str, &str)> = Vec::new();
        for (key, value) in labels {
            let taken = key == "_aws" || dimensions.iter().any(|(k, _)| k == key);
            if taken || properties.iter().any(|(k, _)| k == key) {
                continue;
            }
            if dimensions.len() < MAX_DIMENSIONS {
                dimensions.push((key, value));
            } else {
                properties.push((key, value));
            }
        }
        let mut packed: Vec<Vec<Entry>> = Vec::new();
        for entry in entries {
            let slot = packed.iter().position(|document| {
                document.len() < MAX_METRICS_PER_DOCUMENT
                    && !document.iter().any(|other| other.name == entry.name)
            });
            match slot {
                Some(index) => packed[index].push(entry),
                None => packed.push(vec![entry]),
            }
        }
        for document in packed {
            let mut root = Map::new();
            let declared: Vec<Value> = document
                .iter()
                .map(|entry| json!({"Name": entry.name, "Unit": entry.unit}))
                .collect();
            let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": config.namespace,
                        "Dimensions": [names],
                        "Metrics": declared,
                    }],
                }),
            );
            for (key, value) in dimensions.iter().chain(properties.iter()) {
                root.insert((*key).to_owned(), Value::String((*value).to_owned()));
            }
            for entry in document {
                root.insert(entry.name, entry.value);
            }
            out.push(Value::Object(root));
        }
    }

    fn register(&self, key: &Key, make: impl FnOnce() -> Cell) -> Cell {
        let mut series = lock(&self.shared.series);
        if let Some(cell) = series.get(key) {
            return cell.clone();
        }
        let cell = make();
        series.insert(key.clone(), cell.clone());
        cell
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            lock(&self.shared.units).insert(key.as_str().to_owned(), unit);
        }
    }
}

impl metrics::Recorder for EmfRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.register(key, || Cell::Counter(Arc::default())) {
            Cell::Counter(cell) => Counter::from_arc(cell),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.register(key, || Cell::Gauge(Arc::default())) {
            Cell::Gauge(cell) => Gauge::from_arc(cell),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.register(key, || Cell::Histogram(Arc::default())) {
            Cell::Histogram(cell) => Histogram::from_arc(cell),
            _ => Histogram::noop(),
        }
    }
}

/// Checks `document` against the EMF specification (the structure CloudWatch requires to
/// extract metrics): `_aws` with an integer `Timestamp` and one or more `CloudWatchMetrics`
/// directives, each with a `Namespace`, `Dimensions` (sets of at most 30 names, each present as
/// a string at the root) and `Metrics` (at most 100, each named once, with a valid `Unit`, each
/// present at the root as a number or an array of at most 100 numbers). Returns every problem.
pub fn validate(document: &Value) -> Vec<String> {
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let mut problems = Vec::new();
    let Some(root) = document.as_object() else {
        return vec!["the document is not a JSON object".into()];
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return vec!["no `_aws` object".into()];
    };
    if !aws
        .get("Timestamp")
        .is_some_and(|t| t.is_i64() || t.is_u64())
    {
        problems.push("`_aws.Timestamp` is not an integer (milliseconds)".into());
    }
    let directives = match aws.get("CloudWatchMetrics").and_then(Value::as_array) {
        Some(directives) if !directives.is_empty() => directives,
        _ => {
            problems.push("`_aws.CloudWatchMetrics` is not a non-empty array".into());
            return problems;
        }
    };
    for directive in directives {
        match directive.get("Namespace").and_then(Value::as_str) {
            Some(namespace) if valid_name(namespace) => {}
            other => problems.push(format!("bad Namespace {other:?}")),
        }
        match directive.get("Dimensions").and_then(Value::as_array) {
            None => problems.push("no Dimensions array".into()),
            Some(sets) => {
                for set in sets {
                    let Some(names) = set.as_array() else {
                        problems.push("a dimension set is not an array".into());
                        continue;
                    };
                    if names.len() > MAX_DIMENSIONS {
                        problems.push(format!("a dimension set has {} names", names.len()));
                    }
                    for name in names {
                        let value = name.as_str().and_then(|n| root.get(n));
                        if !value.is_some_and(Value::is_string) {
                            problems.push(format!("dimension {name} has no string value"));
                        }
                    }
                }
            }
        }
        let Some(metrics) = directive.get("Metrics").and_then(Value::as_array) else {
            problems.push("no Metrics array".into());
            continue;
        };
        if metrics.len() > MAX_METRICS_PER_DOCUMENT {
            problems.push(format!("{} metrics in one directive", metrics.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for metric in metrics {
            let Some(name) = metric.get("Name").and_then(Value::as_str) else {
                problems.push(format!("metric without a Name: {metric}"));
                continue;
            };
            if !seen.insert(name) {
                problems.push(format!("metric {name} declared twice"));
            }
            if let Some(unit) = metric.get("Unit") {
                if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
                    problems.push(format!("metric {name} has unit {unit}"));
                }
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= MAX_VALUES_PER_METRIC
                        && values.iter().all(Value::is_number) => {}
                other => problems.push(format!("metric {name} has value {other:?}")),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> EmfRecorder {
        let config = EmfConfig::new(DEFAULT_NAMESPACE)
            .and_then(|c| c.with_dimension(ENVIRONMENT_DIMENSION, "test"))
            .and_then(|c| c.with_dimension(FUNCTION_DIMENSION, "get-goal"))
            .expect("valid");
        EmfRecorder::new(config)
    }

    fn metric<'a>(documents: &'a [Value], name: &str) -> Vec<&'a Value> {
        documents.iter().filter(|d| d.get(name).is_some()).collect()
    }

    fn assert_valid(documents: &[Value]) {
        for document in documents {
            let problems = validate(document);
            assert!(problems.is_empty(), "{problems:?} in {document}");
        }
    }

    #[test]
    fn counters_gauges_and_histograms_become_documents_per_label_set() {
        let emf = recorder();
        metrics::with_local_recorder(&emf, || {
            metrics::describe_counter!("hits", Unit::Count, "hits");
            metrics::describe_histogram!("latency", Unit::Seconds, "latency");
            metrics::counter!("hits", "tier" => "local").increment(2);
            metrics::counter!("hits", "tier" => "redis").increment(1);
            metrics::histogram!("latency", "op" => "get").record(0.25);
            metrics::histogram!("latency", "op" => "get").record(0.5);
            metrics::gauge!("ratio").set(0.75);
        });
        let documents = emf.flush_at(1_700_000_000_000);
        assert_valid(&documents);
        assert_eq!(documents.len(), 4, "{documents:?}");
        let hits = metric(&documents, "hits");
        assert_eq!(hits.len(), 2);
        let local = hits
            .iter()
            .find(|d| d["tier"] == "local")
            .expect("local hits");
        assert_eq!(local["hits"], json!(2));
        assert_eq!(local["environment"], "test");
        assert_eq!(local["function"], "get-goal");
        let directive = &local["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([["environment", "function", "tier"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "hits", "Unit": "Count"}])
        );
        assert_eq!(local["_aws"]["Timestamp"], json!(1_700_000_000_000_i64));
        let latency = metric(&documents, "latency");
        assert_eq!(latency[0]["latency"], json!([0.25, 0.5]));
        assert_eq!(
            latency[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
        let ratio = metric(&documents, "ratio");
        assert_eq!(ratio[0]["ratio"], json!(0.75));
        assert_eq!(
            ratio[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "None"
        );
    }

    #[test]
    fn a_flush_emits_only_what_changed_since_the_previous_one() {
        let emf = recorder();
        let counter = metrics::with_local_recorder(&emf, || {
            let counter = metrics::counter!("calls");
            counter.absolute(0);
            metrics::gauge!("size").set(0.0);
            counter
        });
        emf.reset();
        assert!(emf.flush().is_empty(), "zeroed series are not emitted");
        counter.increment(3);
        let first = emf.flush();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["calls"], json!(3));
        counter.increment(1);
        let second = emf.flush();
        assert_eq!(second[0]["calls"], json!(1), "a delta, not the total");
        assert!(emf.flush().is_empty());
    }

    #[test]
    fn past_100_metrics_the_documents_split() {
        let emf = recorder();
        metrics::with_local_recorder(&emf, || {
            for index in 0..250 {
                metrics::counter!(format!("metric_{index:03}")).increment(index + 1);
            }
        });
        let documents = emf.flush();
        assert_valid(&documents);
        assert_eq!(documents.len(), 3);
        let declared: Vec<usize> = documents
            .iter()
            .map(|d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .collect();
        assert_eq!(declared, [100, 100, 50]);
        for index in 0..250_u64 {
            let name = format!("metric_{index:03}");
            let found = metric(&documents, &name);
            assert_eq!(found.len(), 1, "{name} exactly once");
            assert_eq!(found[0][&name], json!(index + 1));
        }
    }

    #[test]
    fn past_100_samples_a_histogram_splits_over_documents() {
        let emf = recorder();
        metrics::with_local_recorder(&emf, || {
            let histogram = metrics::histogram!("latency");
            for sample in 0..230 {
                histogram.record(f64::from(sample));
            }
            histogram.record(f64::NAN);
        });
        let documents = emf.flush();
        assert_valid(&documents);
        assert_eq!(documents.len(), 3);
        let values: Vec<f64> = documents
            .iter()
            .flat_map(|d| d["latency"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_f64())
            .collect();
        assert_eq!(values.len(), 230, "every finite sample, once");
    }

    #[test]
    fn past_30_dimensions_labels_become_properties() {
        let emf = recorder();
        let labels: Vec<metrics::Label> = (0..40)
            .map(|i| metrics::Label::new(format!("label_{i:02}"), format!("v{i}")))
            .collect();
        metrics::with_local_recorder(&emf, || {
            metrics::counter!("wide", labels).increment(1);
        });
        let documents = emf.flush();
        assert_valid(&documents);
        assert_eq!(documents.len(), 1);
        let set = &documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
        assert_eq!(set.as_array().map(Vec::len), Some(MAX_DIMENSIONS));
        assert_eq!(documents[0]["label_39"], "v39", "kept as a property");
    }

    #[test]
    fn the_validator_catches_what_cloudwatch_rejects() {
        let bad = json!({
            "_aws": {"Timestamp": "now", "CloudWatchMetrics": [{
                "Namespace": "ns", "Dimensions": [["missing"]],
                "Metrics": [{"Name": "m", "Unit": "Furlongs"}, {"Name": "m"}]
            }]},
            "m": "three"
        });
        let problems = validate(&bad);
        assert!(problems.len() >= 4, "{problems:?}");
        assert!(!validate(&json!({"no": "aws"})).is_empty());
    }

    #[test]
    fn settings_are_checked() {
        assert!(EmfConfig::new("").is_err());
        assert!(EmfConfig::new(":x").is_err());
        let config = EmfConfig::new("ns").expect("valid");
        assert!(config.clone().with_dimension("function", "").is_err());
        assert!(config.with_dimension("_aws", "x").is_err());
    }
}
