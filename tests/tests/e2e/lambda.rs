//! goalstore-lambda's handlers, invoked in process with the event fixtures of
//! `tests/fixtures/lambda/` against the real DynamoDB-compatible server and Redis: the stream
//! handler invalidates exactly the keys its batch makes stale (observed in Redis, for the `redis`
//! and `tiered` strategies), an invocation's EMF output is valid and carries the cache and latency
//! metrics, and a route binary serves HTTP API 2.0 and REST API 1.0 events through a stand-in
//! Runtime API. The HTTP API's contract, route by route, is `lambda_contract`.
//!
//! The EMF recorder is this process's global `metrics` recorder (installed once), so other tests
//! running at the same time may add to what a flush emits: the EMF test checks lower bounds.

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_dynamodb::types::AttributeValue;
use goalstore::cache::keys::{CacheKey, KeySpace};
use goalstore::keys::{GoalId, UserId};
use goalstore::{GoalPattern, NewGoal};
use goalstore_lambda::emf::{self, EmfRecorder};
use goalstore_lambda::http::{request_from_event, routes};
use goalstore_lambda::{stream, Builder, Lambda, LambdaSettings};
use goalstore_sidecar::config::Config;
use goalstore_tests::dynamo;
use goalstore_tests::runtime_api::{Outcome, RuntimeApi};
use goalstore_tests::servers::{MotoServer, RedisServer};
use goalstore_tests::stores::DynamoStore;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

pub(crate) const USER: &str = "3f1c2a9e-5b7d-4e21-9a0c-8d6e4b2f1a77";

fn settings() -> LambdaSettings {
    LambdaSettings {
        emf_namespace: emf::DEFAULT_NAMESPACE.into(),
        environment: "test".into(),
        function_name: "goalstore-e2e".into(),
        xray: false,
        xray_daemon_address: "127.0.0.1:2000".into(),
    }
}

/// The process's EMF recorder, installed (and the metrics described) on first use.
fn recorder() -> anyhow::Result<EmfRecorder> {
    static RECORDER: OnceLock<Option<EmfRecorder>> = OnceLock::new();
    RECORDER
        .get_or_init(|| goalstore_lambda::init::install_recorder(&settings()).ok())
        .clone()
        .ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed in this process"))
}

/// A Lambda over `table` on the shared server, configured as by `GOALSTORE_*` flags `args`.
pub(crate) async fn lambda(table: &str, args: &[&str]) -> anyhow::Result<Lambda> {
    let table = format!("dynamodb:{table}");
    let moto = MotoServer::shared().endpoint();
    let mut argv = vec![
        "goalstore-lambda",
        "--table",
        &table,
        "--dynamodb-endpoint",
        moto,
    ];
    argv.extend_from_slice(args);
    let sdk = aws_config::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test",
            "test",
            None,
            None,
            "goalstore-tests",
        )))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    Ok(Builder::new(Config::load(argv)?, settings())
        .with_sdk_config(sdk)
        .with_recorder(recorder()?)
        .build()
        .await?)
}

pub(crate) fn fixture_text(name: &str) -> anyhow::Result<String> {
    let path = format!("{}/fixtures/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))
}

/// A fresh table holding the origin fixture's items, and a Lambda over it with the `local` cache.
pub(crate) async fn seeded() -> anyhow::Result<(DynamoStore, Lambda)> {
    let seed = DynamoStore::start().await?;
    seed.seed(dynamo::origin_items()?).await?;
    let lambda = lambda(&seed.table_name, &["--cache", "local"]).await?;
    Ok((seed, lambda))
}

/// [`seeded`] with the `tiered` cache over a Redis server of its own.
pub(crate) async fn seeded_tiered() -> anyhow::Result<(DynamoStore, Lambda, RedisServer)> {
    let redis = RedisServer::start().await?;
    let seed = DynamoStore::start().await?;
    seed.seed(dynamo::origin_items()?).await?;
    let url = redis.url();
    let args = [
        "--cache",
        "tiered",
        "--redis-url",
        &url,
        "--redis-timeout",
        "500ms",
    ];
    let lambda = lambda(&seed.table_name, &args).await?;
    Ok((seed, lambda, redis))
}

fn milestone(id: &str) -> NewGoal {
    NewGoal {
        goal_id: Some(id.into()),
        ..NewGoal::new(
            id,
            GoalPattern::Milestone,
            goalstore_tests::goals::target_for(GoalPattern::Milestone, 100.0),
        )
    }
}

async fn exists(
    redis: &mut redis::aio::MultiplexedConnection,
    key: &CacheKey,
) -> anyhow::Result<bool> {
    let found: i64 = redis::cmd("EXISTS")
        .arg(&*key.text)
        .query_async(redis)
        .await?;
    Ok(found == 1)
}

/// Goals written through one Lambda and read back (so their keys are cached), then changed in
/// the table behind goalstore's back as the existing handlers do; the stream handler of another
/// Lambda gets the fixture batch of those changes and must delete exactly the keys they make
/// stale, after which the first Lambda reads the change.
async fn stream_batch_invalidates_exactly_the_affected_keys(strategy: &str) -> anyhow::Result<()> {
    let redis_server = RedisServer::start().await?;
    let seed = DynamoStore::start().await?;
    let url = redis_server.url();
    let args = [
        "--cache",
        strategy,
        "--redis-url",
        &url,
        "--redis-timeout",
        "500ms",
    ];
    let reader = lambda(&seed.table_name, &args).await?;
    let streamer = lambda(&seed.table_name, &args).await?;
    let store = &reader.store;
    let goals = [
        ("stream-user-1", "sg-1"),
        ("stream-user-1", "sg-2"),
        ("stream-user-1", "sg-3"),
        ("stream-user-2", "sg-4"),
        ("stream-user-3", "sg-6"),
    ];
    for (user, goal) in goals {
        store.create_goal(user, milestone(goal)).await?;
    }
    for (user, goal) in goals {
        store.get_goal(user, goal).await?;
        store.get_progress(user, goal).await?;
    }
    for user in ["stream-user-1", "stream-user-2", "stream-user-3"] {
        store.list_active_goals(user).await?;
    }
    // sg-5 does not exist yet: its missing-marker is cached.
    assert!(store.get_goal("stream-user-1", "sg-5").await.is_err());

    let space = KeySpace::new("gs")?;
    let user = |u: &str| UserId::parse(u);
    let goal = |g: &str| GoalId::parse(g);
    let stale = [
        space.active_goals(&user("stream-user-1")?),
        space.goal(&user("stream-user-1")?, &goal("sg-5")?),
        space.goal(&user("stream-user-1")?, &goal("sg-1")?),
        space.progress(&goal("sg-1")?),
        space.goal(&user("stream-user-1")?, &goal("sg-2")?),
        space.progress(&goal("sg-2")?),
        space.active_goals(&user("stream-user-2")?),
        space.goal(&user("stream-user-2")?, &goal("sg-4")?),
        space.progress(&goal("sg-4")?),
    ];
    let kept = [
        space.goal(&user("stream-user-1")?, &goal("sg-3")?),
        space.progress(&goal("sg-3")?),
        space.active_goals(&user("stream-user-3")?),
        space.goal(&user("stream-user-3")?, &goal("sg-6")?),
        space.progress(&goal("sg-6")?),
    ];
    let mut connection = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    for key in stale.iter().chain(&kept) {
        assert!(
            exists(&mut connection, key).await?,
            "{strategy}: {} is cached",
            key.text
        );
    }

    // The old handler renames sg-1 in the table; the cache still answers the old title.
    seed.client
        .update_item()
        .table_name(&seed.table_name)
        .key("pk", AttributeValue::S("USER#stream-user-1".into()))
        .key("sk", AttributeValue::S("GOAL#sg-1".into()))
        .update_expression("SET title = :t")
        .expression_attribute_values(":t", AttributeValue::S("Renamed again".into()))
        .send()
        .await?;
    assert_eq!(store.get_goal("stream-user-1", "sg-1").await?.title, "sg-1");

    let batch: StreamEvent = serde_json::from_str(&fixture_text("stream-batch.json")?)?;
    let response =
        stream::handle(&streamer.store, LambdaEvent::new(batch, Context::default())).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{strategy}: {:?}",
        response.batch_item_failures
    );
    for key in &stale {
        assert!(
            !exists(&mut connection, key).await?,
            "{strategy}: {} was invalidated",
            key.text
        );
    }
    for key in &kept {
        assert!(
            exists(&mut connection, key).await?,
            "{strategy}: {} survives",
            key.text
        );
    }
    // The reader sees the change (tiered: once the pub/sub message dropped its local copy).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let title = store.get_goal("stream-user-1", "sg-1").await?.title;
        if title == "Renamed again" {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{strategy}: the reader still sees `{title}`"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn stream_batch_invalidates_exactly_the_affected_keys_with_redis() -> anyhow::Result<()> {
    stream_batch_invalidates_exactly_the_affected_keys("redis").await
}

#[tokio::test]
async fn stream_batch_invalidates_exactly_the_affected_keys_with_tiered() -> anyhow::Result<()> {
    stream_batch_invalidates_exactly_the_affected_keys("tiered").await
}

/// The documents of one invocation's flush.
fn documents(out: &[u8]) -> anyhow::Result<Vec<Value>> {
    std::str::from_utf8(out)?
        .lines()
        .map(|line| Ok(serde_json::from_str(line)?))
        .collect()
}

/// The values of `name` in the documents whose dimensions include `labels`, and its unit.
fn series(documents: &[Value], name: &str, labels: &[(&str, &str)]) -> (Vec<f64>, Vec<String>) {
    let mut values = Vec::new();
    let mut units = Vec::new();
    for document in documents {
        if !labels.iter().all(|(k, v)| document[*k] == *v) {
            continue;
        }
        match &document[name] {
            Value::Number(n) => values.extend(n.as_f64()),
            Value::Array(items) => values.extend(items.iter().filter_map(Value::as_f64)),
            _ => continue,
        }
        let declared = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        units.extend(
            declared
                .iter()
                .filter(|m| m["Name"] == name)
                .filter_map(|m| m["Unit"].as_str().map(str::to_owned)),
        );
    }
    (values, units)
}

#[tokio::test]
async fn emf_of_an_invocation_is_valid_and_carries_cache_and_latency_metrics() -> anyhow::Result<()>
{
    let (_seed, lambda) = seeded().await?;
    let mut invocations = Vec::new();
    for _ in 0..2 {
        let mut out = Vec::new();
        let response = lambda
            .invoke_to(
                routes::get_goal(
                    &lambda.store,
                    request_from_event(&fixture_text("http-api-v2.json")?, "emf")?,
                ),
                &mut out,
            )
            .await;
        assert_eq!(response.status(), 200);
        invocations.push(documents(&out)?);
    }
    for documents in &invocations {
        assert!(!documents.is_empty(), "an invocation emits metrics");
        for document in documents {
            let problems = emf::validate(document);
            assert!(problems.is_empty(), "{problems:?} in {document}");
            let directive = &document["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], emf::DEFAULT_NAMESPACE);
            let dimensions = directive["Dimensions"][0]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(dimensions[..2], ["environment", "function"]);
            assert_eq!(document["environment"], "test");
            assert_eq!(document["function"], "goalstore-e2e");
        }
    }
    let cache = goalstore::metrics::CACHE_REQUESTS;
    let goal_lookup = |result| [("tier", "local"), ("kind", "goal"), ("result", result)];
    // First invocation: a miss of the local tier, read from DynamoDB.
    let (misses, units) = series(&invocations[0], cache, &goal_lookup("miss"));
    assert!(misses.iter().sum::<f64>() >= 1.0, "{:?}", invocations[0]);
    assert!(units.iter().all(|u| u == "Count") && !units.is_empty());
    let (requests, _) = series(
        &invocations[0],
        goalstore::metrics::DYNAMODB_REQUESTS,
        &[("operation", "BatchGetItem"), ("outcome", "ok")],
    );
    assert!(requests.iter().sum::<f64>() >= 1.0, "{:?}", invocations[0]);
    // Second: a hit.
    let (hits, units) = series(&invocations[1], cache, &goal_lookup("hit"));
    assert!(hits.iter().sum::<f64>() >= 1.0, "{:?}", invocations[1]);
    assert!(units.iter().all(|u| u == "Count") && !units.is_empty());
    // Both: the call's latency, in seconds.
    for documents in &invocations {
        let (latencies, units) = series(
            documents,
            goalstore::metrics::OPERATION_DURATION,
            &[("op", "get_goal")],
        );
        assert!(!latencies.is_empty(), "{documents:?}");
        assert!(
            latencies.iter().all(|s| *s > 0.0 && *s < 10.0),
            "{latencies:?}"
        );
        assert!(units.iter().all(|u| u == "Seconds") && !units.is_empty());
        let (calls, _) = series(
            documents,
            goalstore::metrics::OPERATIONS,
            &[("op", "get_goal"), ("outcome", "ok")],
        );
        assert!(calls.iter().sum::<f64>() >= 1.0);
    }
    Ok(())
}

/// The `get-goal` binary, started as Lambda starts `bootstrap`: configured by the environment
/// alone (`api`'s, the store's `table`, then `more`), polling the stand-in Runtime API `api`.
fn start_get_goal(
    api: &RuntimeApi,
    table: &DynamoStore,
    more: &[(&str, &str)],
) -> anyhow::Result<tokio::process::Child> {
    let binary = goalstore_tests::sidecar::binary("get-goal").map_err(|error| {
        anyhow::anyhow!("{error} (the Lambda binaries: `cargo build -p goalstore-lambda --bins`)")
    })?;
    let table = format!("dynamodb:{}", table.table_name);
    Ok(tokio::process::Command::new(binary)
        .env_clear()
        .envs(api.function_environment("get-goal"))
        .envs([
            ("GOALSTORE_TABLE", table.as_str()),
            (
                "GOALSTORE_DYNAMODB_ENDPOINT",
                MotoServer::shared().endpoint(),
            ),
        ])
        .envs(more.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?)
}

/// The next `count` answers `function` posts, as (request id, response); anything else, or
/// nothing within 60 s, fails with the function's stderr.
async fn answers_of(
    outcomes: &mut tokio::sync::mpsc::UnboundedReceiver<Outcome>,
    function: &mut tokio::process::Child,
    count: usize,
) -> anyhow::Result<Vec<(String, Value)>> {
    let mut answers = Vec::new();
    while answers.len() < count {
        let outcome = tokio::time::timeout(Duration::from_secs(60), outcomes.recv()).await;
        match outcome {
            Ok(Some(Outcome::Response { request_id, body })) => {
                answers.push((request_id, serde_json::from_str::<Value>(&body)?));
            }
            Ok(other) => anyhow::bail!("the function posted {other:?}"),
            Err(_) => {
                let _ = function.start_kill();
                let stderr = read_all(function.stderr.take()).await?;
                anyhow::bail!("no answer within 60 s; the function's stderr:\n{stderr}");
            }
        }
    }
    Ok(answers)
}

/// What is left in a pipe of a function that has been killed.
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_string(&mut text).await?;
    }
    Ok(text)
}

/// The `get-goal` binary, run as Lambda runs `bootstrap`: configured by the environment alone,
/// polling a stand-in Runtime API. It answers each queued invocation, and writes each one's
/// metrics to stdout as EMF (its logs go to stderr).
#[tokio::test]
async fn the_get_goal_binary_serves_invocations_and_writes_emf_to_stdout() -> anyhow::Result<()> {
    let seed = DynamoStore::start().await?;
    seed.seed(dynamo::origin_items()?).await?;
    let (api, mut outcomes) = RuntimeApi::start().await?;
    // HTTP API 2.0 (as deployed), then the same goal as a REST API 1.0 event, then a miss.
    api.invoke("request-1", fixture_text("http-api-v2.json")?);
    api.invoke("request-2", fixture_text("get-goal.json")?);
    api.invoke("request-3", fixture_text("get-goal-missing.json")?);
    let mut child = start_get_goal(&api, &seed, &[("GOALSTORE_ENVIRONMENT", "test")])?;
    let answers = answers_of(&mut outcomes, &mut child, 3).await?;
    child.start_kill()?;
    let stdout = read_all(child.stdout.take()).await?;
    let stderr = read_all(child.stderr.take()).await?;
    let _ = child.wait().await;

    // Logs: JSON lines on stderr; the failed call's line carries its invocation's request id.
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let failed = lines
        .iter()
        .find(|line| line["error_type"] == "not_found")
        .ok_or_else(|| anyhow::anyhow!("no log line of the miss in:\n{stderr}"))?;
    assert_eq!(failed["spans"][0]["requestId"], "request-3", "{failed}");
    // Every line logged during an invocation carries its request id.
    for line in lines.iter().filter(|line| line["spans"].is_array()) {
        assert!(
            line["spans"][0]["requestId"].is_string(),
            "a line without the request id: {line}"
        );
    }
    assert_eq!(failed["op"], "get_goal", "{failed}");

    let ids: Vec<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["request-1", "request-2", "request-3"]);
    for (request_id, answer) in &answers {
        // HTTP API 2.0 answers carry `headers`; REST API 1.0 ones `multiValueHeaders`.
        let header = |name: &str| {
            let single = &answer["headers"][name];
            if single.is_null() {
                answer["multiValueHeaders"][name][0].clone()
            } else {
                single.clone()
            }
        };
        assert_eq!(header("content-type"), "application/json", "{answer}");
        assert_eq!(header("x-request-id"), request_id.as_str(), "{answer}");
    }
    assert_eq!(answers[0].1["statusCode"], 200, "{}", answers[0].1);
    let body: Value = serde_json::from_str(answers[0].1["body"].as_str().unwrap_or_default())?;
    assert_eq!(body["title"], "Walk 10k steps daily");
    assert_eq!(body["goalId"], "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert_eq!(answers[1].1["statusCode"], 200, "{}", answers[1].1);
    let rest: Value = serde_json::from_str(answers[1].1["body"].as_str().unwrap_or_default())?;
    assert_eq!(
        rest, body,
        "REST API 1.0 and HTTP API 2.0 events answer alike"
    );
    assert_eq!(answers[2].1["statusCode"], 404);
    let missing: Value = serde_json::from_str(answers[2].1["body"].as_str().unwrap_or_default())?;
    assert_eq!(missing["error"], "GOAL_NOT_FOUND");
    assert_eq!(missing["request_id"], "request-3");

    // Stdout holds EMF documents only, each valid, carrying the function's dimensions.
    let documents = documents(stdout.as_bytes())?;
    assert!(!documents.is_empty(), "no EMF on stdout");
    for document in &documents {
        let problems = emf::validate(document);
        assert!(problems.is_empty(), "{problems:?} in {document}");
        assert_eq!(document["function"], "get-goal");
        assert_eq!(document["environment"], "test");
    }
    // Flushed per invocation: the miss of the first and the hit of the second are separate
    // documents, each counting one lookup (this process records nothing else).
    let lookup = |result| [("tier", "local"), ("kind", "goal"), ("result", result)];
    let cache = goalstore::metrics::CACHE_REQUESTS;
    assert_eq!(series(&documents, cache, &lookup("miss")).0, [1.0, 1.0]);
    assert_eq!(series(&documents, cache, &lookup("hit")).0, [1.0]);
    let (latencies, units) = series(
        &documents,
        goalstore::metrics::OPERATION_DURATION,
        &[("op", "get_goal")],
    );
    assert_eq!(latencies.len(), 3, "one sample per call: {latencies:?}");
    assert!(units.iter().all(|u| u == "Seconds"));
    let (not_found, _) = series(
        &documents,
        goalstore::metrics::OPERATIONS,
        &[("op", "get_goal"), ("outcome", "not_found")],
    );
    assert_eq!(not_found, [1.0]);
    Ok(())
}

/// With GOALSTORE_XRAY on, the `get-goal` binary continues each sampled invocation's X-Ray trace
/// (the Runtime API's trace header) and sends its spans to the X-Ray daemon, here a UDP socket on
/// loopback: the invocation's segment hangs from Lambda's, and the store call and the DynamoDB
/// read are in the same trace. An unsampled invocation sends nothing.
#[tokio::test]
async fn the_get_goal_binary_continues_the_invocations_xray_trace() -> anyhow::Result<()> {
    // X-Ray takes trace ids of the last 30 days only: the id starts with its epoch second.
    let root = format!(
        "1-{:08x}-bd862e3fe1be46a994272793",
        chrono::Utc::now().timestamp()
    );
    const LAMBDA_SEGMENT: &str = "53995c3f42cd8ad8";
    let seed = DynamoStore::start().await?;
    seed.seed(dynamo::origin_items()?).await?;
    let daemon = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let daemon_address = daemon.local_addr()?.to_string();
    let (api, mut outcomes) = RuntimeApi::start().await?;
    api.invoke("unsampled", fixture_text("http-api-v2.json")?);
    api.invoke_traced(
        "sampled",
        fixture_text("http-api-v2.json")?,
        &format!("Root={root};Parent={LAMBDA_SEGMENT};Sampled=1"),
    );
    let mut child = start_get_goal(
        &api,
        &seed,
        &[
            // No cache: both invocations read the table.
            ("GOALSTORE_CACHE", "none"),
            ("GOALSTORE_XRAY", "true"),
            ("AWS_XRAY_DAEMON_ADDRESS", daemon_address.as_str()),
        ],
    )?;
    let answers = answers_of(&mut outcomes, &mut child, 2).await?;
    child.start_kill()?;
    let ids: Vec<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["unsampled", "sampled"]);
    for (_, answer) in &answers {
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }

    // Each span was sent as it ended, before its invocation answered: every datagram is here.
    let mut documents = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    while let Ok(length) = daemon.try_recv(&mut buffer) {
        let datagram = std::str::from_utf8(&buffer[..length])?;
        let (header, document) = datagram
            .split_once('\n')
            .ok_or_else(|| anyhow::anyhow!("no daemon header in {datagram:?}"))?;
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        documents.push(serde_json::from_str::<Value>(document)?);
    }
    let names: Vec<&str> = documents
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    for document in &documents {
        assert_eq!(
            document["trace_id"],
            root.as_str(),
            "only the sampled trace: {document}"
        );
    }
    let invocation = documents
        .iter()
        .find(|d| d["parent_id"] == LAMBDA_SEGMENT)
        .ok_or_else(|| anyhow::anyhow!("no segment under Lambda's in {names:?}"))?;
    assert_eq!(invocation["name"], "get-goal", "{invocation}");
    let id_of = |d: &Value| d["id"].as_str().unwrap_or_default().to_owned();
    let child_of = |parent: &Value, name: &str| {
        documents
            .iter()
            .find(|d| d["parent_id"] == id_of(parent).as_str() && d["name"] == name)
            .ok_or_else(|| anyhow::anyhow!("no {name} under {}: {documents:#?}", parent["name"]))
    };
    let store = child_of(invocation, "store.get_goal")?;
    let shared = child_of(store, "batch_loader.BatchGetItem")?;
    child_of(shared, "dynamodb.BatchGetItem")?;
    // A person's id is in none of them.
    for document in &documents {
        assert!(
            !document
                .to_string()
                .contains("3f1c2a9e-5b7d-4e21-9a0c-8d6e4b2f1a77"),
            "the user id leaked into {document}"
        );
    }
    Ok(())
}
