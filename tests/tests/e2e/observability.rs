//! What operators see: after a scripted workload through the sidecar, the Prometheus endpoint
//! shows every documented metric with its labels (valid per `promtool check metrics`), the build
//! and process metrics, consumed capacity as integer counters, no id as a label, and a failing
//! call is one JSON log line with `op`, `error_type`, `duration` and `user_id`.

use goalstore_proto::v1 as pb;
use goalstore_tests::servers::RedisServer;
use goalstore_tests::sidecar::SidecarProcess;
use goalstore_tests::stores::DynamoStore;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every metric the README documents, with the label keys each of its series carries.
const DOCUMENTED: &[(&str, &[&str])] = &[
    (goalstore::metrics::OPERATION_DURATION, &["op"]),
    (goalstore::metrics::OPERATIONS, &["op", "outcome"]),
    (
        goalstore::metrics::CACHE_REQUESTS,
        &["tier", "kind", "result"],
    ),
    (goalstore::metrics::CACHE_FILLS, &["result"]),
    (goalstore::metrics::CACHE_INVALIDATIONS, &["event", "tier"]),
    (goalstore::metrics::CACHE_DECODE_FAILURES, &[]),
    (goalstore::metrics::CACHE_LOCAL_ENTRIES, &[]),
    (goalstore::metrics::CACHE_LOCAL_WEIGHT, &[]),
    (
        goalstore::metrics::DYNAMODB_REQUESTS,
        &["operation", "outcome"],
    ),
    (goalstore::metrics::DYNAMODB_READ_CAPACITY, &["operation"]),
    (goalstore::metrics::DYNAMODB_WRITE_CAPACITY, &["operation"]),
    (goalstore::metrics::DYNAMODB_THROTTLES, &["operation"]),
    (goalstore::metrics::DYNAMODB_RETRIES, &["reason"]),
    (goalstore::metrics::DYNAMODB_BATCH_KEYS, &[]),
    (goalstore::metrics::REDIS_ERRORS, &[]),
    (goalstore::metrics::REDIS_DEGRADED, &[]),
    (goalstore::metrics::CONSISTENCY_CHECKS, &["kind", "result"]),
    (goalstore::metrics::CONSISTENCY_STALE_AGE, &["kind"]),
    (goalstore::metrics::GOALS_CREATED, &["pattern"]),
    (goalstore::metrics::ACTIVITIES_LOGGED, &["pattern"]),
    (goalstore::metrics::ACTIVE_GOALS, &["pattern"]),
    (goalstore::metrics::BUILD_INFO, &["version", "git_sha"]),
];

/// The label keys of one sample line's series (`name{a="x",b="y"}` -> `[a, b]`), without `le`
/// and `quantile`, which belong to histograms rather than to the metric.
fn label_keys(series: &str) -> Vec<&str> {
    let Some((_, rest)) = series.split_once('{') else {
        return Vec::new();
    };
    rest.trim_end_matches('}')
        .split("\",")
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(key, _)| key.trim_start_matches(','))
        })
        .filter(|key| *key != "le" && *key != "quantile")
        .collect()
}

async fn scrape(url: &str) -> anyhow::Result<String> {
    let address = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| anyhow::anyhow!("not an http url: {url}"))?;
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP body"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Ok(body.to_owned())
}

/// `name{labels}` -> value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test]
async fn a_workload_shows_in_metrics_and_logs() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let redis = RedisServer::start().await?;
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let redis_url = redis.url();
    let sidecar = SidecarProcess::start(&[
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("GOALSTORE_CACHE", "tiered"),
        ("GOALSTORE_REDIS_URL", redis_url.as_str()),
        ("GOALSTORE_CACHE_NAMESPACE", "observability"),
        ("GOALSTORE_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ])
    .await?;

    // Every series is there from start-up, at zero, with its labels.
    let fresh = scrape(&sidecar.metrics_url()).await?;
    let fresh_samples = samples(&fresh);
    for (name, keys) in DOCUMENTED {
        assert!(
            fresh.contains(&format!("# TYPE {name} ")),
            "{name} missing at start-up"
        );
        let series: Vec<&String> = fresh_samples
            .keys()
            .filter(|series| {
                let base = series.split('{').next().unwrap_or_default();
                base == *name
                    || base
                        .strip_prefix(*name)
                        .is_some_and(|suffix| ["_bucket", "_sum", "_count"].contains(&suffix))
            })
            .collect();
        assert!(!series.is_empty(), "{name} has no sample at start-up");
        for one in series {
            assert_eq!(label_keys(one), *keys, "labels of {one}");
        }
    }
    for tier in ["local", "redis"] {
        for result in ["hit", "miss"] {
            assert_eq!(
                value(
                    &fresh_samples,
                    goalstore::metrics::CACHE_REQUESTS,
                    &[("tier", tier), ("kind", "goal"), ("result", result)]
                ),
                0.0,
                "the {tier} {result} series the hit-ratio rule reads exists at start-up"
            );
        }
    }
    let build = fresh_samples
        .iter()
        .find(|(series, _)| series.starts_with(goalstore::metrics::BUILD_INFO))
        .ok_or_else(|| anyhow::anyhow!("no {}", goalstore::metrics::BUILD_INFO))?;
    assert_eq!(*build.1, 1.0);
    assert!(
        build.0.contains("version=\"0.") && !build.0.contains("git_sha=\"\""),
        "{}",
        build.0
    );
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            value(&fresh_samples, process, &[]) >= 0.0 && fresh.contains(process),
            "{process} is exported"
        );
    }
    assert!(value(&fresh_samples, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&fresh_samples, "process_open_fds", &[]) > 0.0);

    let mut client = sidecar.client().await?;
    let user = "observed-user-7";
    for (id, pattern) in [
        ("g1", pb::GoalPattern::Milestone),
        ("g2", pb::GoalPattern::Streak),
    ] {
        client
            .create_goal(pb::CreateGoalRequest {
                user_id: user.into(),
                goal_id: id.into(),
                title: format!("t {id}"),
                goal_pattern: pattern as i32,
                target: Some(goalstore_tests::goals::pb_target_for(pattern, 10.0)),
                ..Default::default()
            })
            .await?;
    }
    for _ in 0..3 {
        client
            .get_goal(pb::GetGoalRequest {
                user_id: user.into(),
                goal_id: "g1".into(),
            })
            .await?;
        client
            .list_active_goals(pb::ListActiveGoalsRequest {
                user_id: user.into(),
            })
            .await?;
        client
            .get_progress(pb::GetProgressRequest {
                user_id: user.into(),
                goal_id: "g1".into(),
            })
            .await?;
    }
    client
        .log_activity(pb::LogActivityRequest {
            user_id: user.into(),
            goal_id: "g1".into(),
            value: 2.0,
            ..Default::default()
        })
        .await?;
    client
        .archive_goal(pb::ArchiveGoalRequest {
            user_id: user.into(),
            goal_id: "g2".into(),
        })
        .await?;
    let failed = client
        .get_goal(pb::GetGoalRequest {
            user_id: user.into(),
            goal_id: "missing-goal".into(),
        })
        .await;
    assert_eq!(
        failed.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound)
    );

    let text = scrape(&sidecar.metrics_url()).await?;
    let s = samples(&text);
    assert!(
        !text.contains(user) && !text.contains("missing-goal"),
        "ids never become labels"
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::OPERATIONS,
            &[("op", "get_goal"), ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::OPERATIONS,
            &[("op", "get_goal"), ("outcome", "not_found")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::OPERATIONS,
            &[("op", "create_goal"), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "goalstore_operation_duration_seconds_count",
            &[("op", "list_active_goals")]
        ),
        3.0
    );
    assert!(
        text.contains(
            "goalstore_operation_duration_seconds_bucket{op=\"get_goal\",le=\"0.00005\"}"
        ),
        "50 µs bucket"
    );
    assert!(text.contains("le=\"5\""), "5 s bucket");
    assert_eq!(
        value(
            &s,
            goalstore::metrics::GOALS_CREATED,
            &[("pattern", "milestone")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::GOALS_CREATED,
            &[("pattern", "streak")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::ACTIVITIES_LOGGED,
            &[("pattern", "milestone")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::ACTIVE_GOALS,
            &[("pattern", "milestone")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            goalstore::metrics::ACTIVE_GOALS,
            &[("pattern", "streak")]
        ),
        0.0,
        "created, then archived"
    );
    assert!(
        value(
            &s,
            goalstore::metrics::DYNAMODB_REQUESTS,
            &[("operation", "BatchGetItem"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        value(
            &s,
            goalstore::metrics::DYNAMODB_REQUESTS,
            &[("operation", "TransactWriteItems"), ("outcome", "ok")]
        ) >= 2.0
    );
    assert!(value(&s, "goalstore_dynamodb_batch_keys_count", &[]) >= 1.0);
    // An archive drops the progress (the goal is written through, a cached active list patched).
    assert!(
        value(
            &s,
            goalstore::metrics::CACHE_INVALIDATIONS,
            &[("event", "goal_archived"), ("tier", "local")]
        ) >= 1.0
    );

    // Both tiers were looked up for every kind (what the hit-ratio rule divides).
    for tier in ["local", "redis"] {
        for kind in ["goal", "active_goals", "progress"] {
            let looked_up: f64 = ["hit", "miss"]
                .iter()
                .map(|result| {
                    value(
                        &s,
                        goalstore::metrics::CACHE_REQUESTS,
                        &[("tier", tier), ("kind", kind), ("result", result)],
                    )
                })
                .sum();
            assert!(looked_up > 0.0, "{tier} {kind} was looked up");
        }
    }
    // Consumed capacity: integer counters of thousandths of a unit.
    let read = value(
        &s,
        goalstore::metrics::DYNAMODB_READ_CAPACITY,
        &[("operation", "BatchGetItem")],
    );
    // (Over every operation: the DynamoDB stand-in reports no capacity for transactions.)
    let written = value(&s, goalstore::metrics::DYNAMODB_WRITE_CAPACITY, &[]);
    assert!(read >= 500.0 && read.fract() == 0.0, "{read}");
    assert!(written > 0.0 && written.fract() == 0.0, "{written}");
    assert!(
        text.contains(&format!(
            "# TYPE {} counter",
            goalstore::metrics::DYNAMODB_READ_CAPACITY
        )),
        "a counter, so rate() applies"
    );
    assert!(
        value(
            &s,
            goalstore::metrics::CACHE_INVALIDATIONS,
            &[("event", "goal_archived"), ("tier", "redis")]
        ) >= 1.0
    );
    assert_eq!(value(&s, goalstore::metrics::REDIS_DEGRADED, &[]), 0.0);

    // The exposition is valid Prometheus text.
    let mut check = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("promtool: {e}; install it with `apt-get install -y prometheus` (scripts/test.sh does)"))?;
    if let Some(mut stdin) = check.stdin.take() {
        stdin.write_all(text.as_bytes()).await?;
    }
    let output = check.wait_with_output().await?;
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The failing call is one JSON line with the fields the guide's log queries use.
    let logs = sidecar.logs()?;
    let failures: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line.get("error_type").is_some())
        .collect();
    assert_eq!(failures.len(), 1, "one line for one failing call: {logs}");
    let line = &failures[0];
    assert_eq!(line["op"], "get_goal");
    assert_eq!(line["error_type"], "not_found");
    assert_eq!(line["user_id"], user);
    assert!(
        line["duration"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    Ok(())
}
