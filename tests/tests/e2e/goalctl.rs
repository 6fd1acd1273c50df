//! `goalctl`, the command-line client, end to end: the real binary against a real sidecar process
//! over a fresh DynamoDB table, checking its JSON and table output, its exit codes and its errors.

use chrono::{SecondsFormat, Utc};
use goalstore_tests::sidecar::{binary, SidecarProcess};
use goalstore_tests::stores::DynamoStore;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// What one run of goalctl did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stdout of a run that must have succeeded.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "goalctl failed: {self:?}");
        &self.stdout
    }

    /// The stdout of a successful run, parsed as JSON.
    fn json(&self) -> Value {
        let stdout = self.ok();
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }
}

/// Runs goalctl with `args` and only `env` (plus PATH) in its environment, so a token or endpoint
/// of the developer's shell cannot leak in.
async fn goalctl_with(env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Run> {
    let mut command = Command::new(binary("goalctl")?);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        // A generous deadline per call: the machine may be busy with other tests.
        .args(["--timeout", "30s"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await??;
    Ok(Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout)?,
        stderr: String::from_utf8(output.stderr)?,
    })
}

/// Runs goalctl against `sidecar`, named by `GOALSTORE_ENDPOINT`.
async fn goalctl(sidecar: &SidecarProcess, args: &[&str]) -> anyhow::Result<Run> {
    let endpoint = sidecar.endpoint();
    goalctl_with(&[("GOALSTORE_ENDPOINT", endpoint.as_str())], args).await
}

/// A sidecar over a fresh table, reached through the store's counting proxy; `extra` is more of
/// its environment.
async fn sidecar_over(t: &DynamoStore, extra: &[(&str, &str)]) -> anyhow::Result<SidecarProcess> {
    let table = format!("dynamodb:{}", t.table_name);
    let endpoint = t.proxy.endpoint();
    let mut env = vec![
        ("GOALSTORE_TABLE", table.as_str()),
        ("GOALSTORE_DYNAMODB_ENDPOINT", endpoint.as_str()),
    ];
    env.extend_from_slice(extra);
    SidecarProcess::start(&env).await
}

fn f64_at(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer}: {value}"))
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer}: {value}"))
}

fn goal_ids(listing: &Value) -> Vec<&str> {
    listing["goals"]
        .as_array()
        .unwrap_or_else(|| panic!("no goals array: {listing}"))
        .iter()
        .map(|g| str_at(g, "/goal_id"))
        .collect()
}

#[tokio::test]
async fn goalctl_json_round_trip_through_every_subcommand() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t, &[]).await?;
    let user = "cli-user-1";
    let goal = "cli-goal-1";

    let created = goalctl(
        &sidecar,
        &[
            "--json",
            "create",
            "--user",
            user,
            "--title",
            "Read 100 pages",
            "--pattern",
            "milestone",
            "--target-value",
            "100",
            "--unit",
            "pages",
            "--category",
            "learning",
            "--target-date",
            "2099-12-31T00:00:00Z",
            "--id",
            goal,
        ],
    )
    .await?
    .json();
    assert_eq!(str_at(&created, "/goal_id"), goal);
    assert_eq!(str_at(&created, "/user_id"), user);
    assert_eq!(str_at(&created, "/title"), "Read 100 pages");
    assert_eq!(str_at(&created, "/goal_pattern"), "milestone");
    assert_eq!(str_at(&created, "/status"), "active");
    assert_eq!(str_at(&created, "/category"), "learning");
    assert_eq!(f64_at(&created, "/target/value"), 100.0);
    assert_eq!(str_at(&created, "/target/unit"), "pages");

    // Twice: the first fills the cache, the second is a hit that `stats` must show.
    for _ in 0..2 {
        let got = goalctl(&sidecar, &["--json", "get", "--user", user, "--goal", goal])
            .await?
            .json();
        assert_eq!(got, created, "get returns the goal as created");
    }

    let listed = goalctl(&sidecar, &["--json", "list", "--user", user])
        .await?
        .json();
    assert_eq!(goal_ids(&listed), [goal]);
    assert_eq!(listed["next_page_token"], Value::Null, "{listed}");

    let first = goalctl(
        &sidecar,
        &[
            "--json",
            "log",
            "--user",
            user,
            "--goal",
            goal,
            "--value",
            "30",
            "--note",
            "chapter 1",
        ],
    )
    .await?
    .json();
    assert_eq!(f64_at(&first, "/activity/value"), 30.0);
    assert_eq!(str_at(&first, "/activity/goal_id"), goal);
    assert_eq!(str_at(&first, "/activity/note"), "chapter 1");
    assert_eq!(f64_at(&first, "/progress/total_accumulated"), 30.0);

    let an_hour_ago =
        (Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let second = goalctl(
        &sidecar,
        &[
            "--json",
            "log",
            "--user",
            user,
            "--goal",
            goal,
            "--value",
            "12.5",
            "--id",
            "cli-activity-2",
            "--date",
            &an_hour_ago,
        ],
    )
    .await?
    .json();
    assert_eq!(str_at(&second, "/activity/activity_id"), "cli-activity-2");
    assert_eq!(str_at(&second, "/activity/activity_date"), an_hour_ago);
    assert_eq!(f64_at(&second, "/activity/value"), 12.5);

    let progress = goalctl(
        &sidecar,
        &["--json", "progress", "--user", user, "--goal", goal],
    )
    .await?
    .json();
    assert_eq!(f64_at(&progress, "/total_accumulated"), 30.0 + 12.5);
    assert_eq!(f64_at(&progress, "/percent_complete"), 42.5);

    let active = goalctl(&sidecar, &["--json", "list", "--user", user, "--active"])
        .await?
        .json();
    assert_eq!(goal_ids(&active), [goal]);

    let archived = goalctl(
        &sidecar,
        &["--json", "archive", "--user", user, "--goal", goal],
    )
    .await?
    .json();
    assert_eq!(str_at(&archived, "/status"), "archived");
    assert!(
        archived["archived_at"].is_string(),
        "archived_at is set: {archived}"
    );

    let active = goalctl(&sidecar, &["--json", "list", "--user", user, "--active"])
        .await?
        .json();
    assert!(goal_ids(&active).is_empty(), "{active}");
    let archived_list = goalctl(
        &sidecar,
        &["--json", "list", "--user", user, "--status", "archived"],
    )
    .await?
    .json();
    assert_eq!(goal_ids(&archived_list), [goal]);

    let stats = goalctl(&sidecar, &["--json", "stats"]).await?.json();
    assert_eq!(str_at(&stats, "/cache_strategy"), "local");
    let lookups = stats["lookups"]
        .as_array()
        .unwrap_or_else(|| panic!("no lookups: {stats}"));
    assert!(!lookups.is_empty(), "{stats}");
    let goal_hits: f64 = lookups
        .iter()
        .filter(|l| l["tier"] == "local" && l["kind"] == "goal")
        .map(|l| f64_at(l, "/hits"))
        .sum();
    assert!(goal_hits >= 1.0, "the second get was a hit: {stats}");
    assert!(
        f64_at(&stats, "/table/transact_write_items") + f64_at(&stats, "/table/put_item") >= 1.0
    );

    // The user's active list, plus the goal and the progress key of their one goal.
    let invalidated = goalctl(&sidecar, &["--json", "invalidate-user", "--user", user])
        .await?
        .json();
    assert_eq!(str_at(&invalidated, "/user_id"), user);
    assert_eq!(invalidated["keys_invalidated"], 3, "{invalidated}");
    Ok(())
}

#[tokio::test]
async fn goalctl_prints_readable_tables() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t, &[]).await?;
    // `host:port` without a scheme is accepted, as the sidecar's --listen takes it.
    let address = sidecar.endpoint().trim_start_matches("http://").to_owned();
    let run = |args: &'static [&'static str]| {
        let address = address.clone();
        async move {
            let mut all = vec!["--endpoint", address.as_str()];
            all.extend_from_slice(args);
            goalctl_with(&[], &all).await
        }
    };

    let created = run(&[
        "create",
        "--user",
        "table-user",
        "--title",
        "Walk 10000 steps",
        "--pattern",
        "recurring",
        "--target-value",
        "10000",
        "--unit",
        "steps",
        "--period",
        "day",
        "--id",
        "walk",
    ])
    .await?;
    let out = created.ok();
    assert!(
        !out.trim_start().starts_with('{'),
        "a table, not JSON: {out}"
    );
    for expected in [
        "Walk 10000 steps",
        "walk",
        "recurring",
        "10000 steps per day",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }

    let got = run(&["get", "--user", "table-user", "--goal", "walk"]).await?;
    assert!(got.ok().contains("Walk 10000 steps"), "{}", got.stdout);

    let listed = run(&["list", "--user", "table-user"]).await?;
    let out = listed.ok();
    for expected in ["title", "Walk 10000 steps", "walk", "active"] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }

    let logged = run(&[
        "log",
        "--user",
        "table-user",
        "--goal",
        "walk",
        "--value",
        "2500",
    ])
    .await?;
    assert!(logged.ok().contains("2500"), "{}", logged.stdout);
    let progress = run(&["progress", "--user", "table-user", "--goal", "walk"]).await?;
    assert!(
        progress.ok().contains("percent complete"),
        "{}",
        progress.stdout
    );

    let stats = run(&["stats"]).await?;
    let out = stats.ok();
    for expected in ["cache strategy", "local", "hit ratio"] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }

    let empty = run(&["list", "--user", "nobody"]).await?;
    assert_eq!(empty.ok().trim(), "no goals");

    let invalidated = run(&["invalidate-user", "--user", "table-user"]).await?;
    assert_eq!(
        invalidated.ok().trim(),
        "invalidated 3 cache keys of user table-user"
    );
    Ok(())
}

#[tokio::test]
async fn goalctl_needs_the_token_the_sidecar_requires() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t, &[("GOALSTORE_AUTH_TOKEN", "cli-s3cret")]).await?;
    let endpoint = sidecar.endpoint();

    for args in [&["stats"][..], &["--token", "wrong", "stats"][..]] {
        let refused = goalctl(&sidecar, args).await?;
        assert_eq!(refused.code, Some(1), "{args:?}: {refused:?}");
        assert!(refused.stdout.is_empty(), "{refused:?}");
        assert!(
            refused.stderr.starts_with("error: "),
            "{args:?}: {refused:?}"
        );
        assert!(
            refused.stderr.contains("unauthenticated"),
            "the server's refusal is shown: {refused:?}"
        );
        assert!(
            refused.stderr.contains("authentication failed"),
            "{refused:?}"
        );
        assert!(
            !refused.stderr.contains("cli-s3cret"),
            "no token in errors: {refused:?}"
        );
    }

    let created = goalctl(
        &sidecar,
        &[
            "--token",
            "cli-s3cret",
            "--json",
            "create",
            "--user",
            "token-user",
            "--title",
            "Stretch",
            "--pattern",
            "streak",
            "--target-value",
            "7",
        ],
    )
    .await?
    .json();
    assert_eq!(str_at(&created, "/title"), "Stretch");
    let goal = str_at(&created, "/goal_id").to_owned();

    // The token from the environment works as the flag does.
    let got = goalctl_with(
        &[
            ("GOALSTORE_ENDPOINT", endpoint.as_str()),
            ("GOALSTORE_AUTH_TOKEN", "cli-s3cret"),
        ],
        &["--json", "get", "--user", "token-user", "--goal", &goal],
    )
    .await?
    .json();
    assert_eq!(got, created);
    Ok(())
}

#[tokio::test]
async fn goalctl_reports_errors_with_exit_codes() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t, &[]).await?;

    let missing = goalctl(
        &sidecar,
        &["get", "--user", "err-user", "--goal", "no-such-goal"],
    )
    .await?;
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(missing.stdout.is_empty(), "{missing:?}");
    assert!(missing.stderr.starts_with("error: "), "{missing:?}");
    assert!(missing.stderr.contains("not found"), "{missing:?}");
    assert!(missing.stderr.contains("no-such-goal"), "{missing:?}");

    // An id that can never be a key: refused by the sidecar, naming the field.
    let invalid = goalctl(&sidecar, &["get", "--user", "err-user", "--goal", "a#b"]).await?;
    assert_eq!(invalid.code, Some(1), "{invalid:?}");
    assert!(invalid.stderr.contains("goal_id"), "{invalid:?}");

    // Usage errors are clap's: exit 2, before any call.
    let usage = goalctl(
        &sidecar,
        &[
            "create",
            "--user",
            "err-user",
            "--title",
            "x",
            "--pattern",
            "sometimes",
            "--target-value",
            "1",
        ],
    )
    .await?;
    assert_eq!(usage.code, Some(2), "{usage:?}");
    assert!(usage.stderr.contains("sometimes"), "{usage:?}");

    // Nothing listening: exit 1, naming the endpoint.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}", listener.local_addr()?)
    };
    let unreachable = goalctl_with(&[("GOALSTORE_ENDPOINT", closed.as_str())], &["stats"]).await?;
    assert_eq!(unreachable.code, Some(1), "{unreachable:?}");
    assert!(unreachable.stderr.contains(&closed), "{unreachable:?}");
    Ok(())
}

#[tokio::test]
async fn goalctl_updates_lists_activities_batch_gets_and_checks_health() -> anyhow::Result<()> {
    let t = DynamoStore::start().await?;
    let sidecar = sidecar_over(&t, &[]).await?;
    let user = "verbs-user";

    let health = goalctl(&sidecar, &["--json", "health"]).await?.json();
    assert_eq!(str_at(&health, "/status"), "SERVING");
    let plain = goalctl(&sidecar, &["health"]).await?;
    assert_eq!(plain.ok().trim(), "SERVING");

    let create = |id: &'static str, title: &'static str| {
        let sidecar = &sidecar;
        async move {
            goalctl(
                sidecar,
                &[
                    "--json",
                    "create",
                    "--user",
                    user,
                    "--title",
                    title,
                    "--pattern",
                    "recurring",
                    "--target-value",
                    "30",
                    "--unit",
                    "minutes",
                    "--period",
                    "day",
                    "--id",
                    id,
                ],
            )
            .await
            .map(|run| run.json())
        }
    };
    create("verbs-a", "Read").await?;
    create("verbs-b", "Run").await?;

    // update: only the named fields change; the target keeps its unit and period.
    let updated = goalctl(
        &sidecar,
        &[
            "--json",
            "update",
            "--user",
            user,
            "--goal",
            "verbs-a",
            "--title",
            "Read more",
            "--target-value",
            "45",
            "--status",
            "paused",
        ],
    )
    .await?
    .json();
    assert_eq!(str_at(&updated, "/title"), "Read more");
    assert_eq!(str_at(&updated, "/status"), "paused");
    assert_eq!(f64_at(&updated, "/target/value"), 45.0);
    assert_eq!(str_at(&updated, "/target/unit"), "minutes");
    assert_eq!(str_at(&updated, "/target/period"), "day");
    let got = goalctl(
        &sidecar,
        &["--json", "get", "--user", user, "--goal", "verbs-a"],
    )
    .await?
    .json();
    assert_eq!(got, updated, "the update is what the sidecar serves");
    let nothing = goalctl(&sidecar, &["update", "--user", user, "--goal", "verbs-a"]).await?;
    assert_eq!(nothing.code, Some(1), "{nothing:?}");
    assert!(nothing.stderr.contains("nothing to update"), "{nothing:?}");

    // batch-get: found goals in order of mention, and the ids not found.
    let batch = goalctl(
        &sidecar,
        &[
            "--json",
            "batch-get",
            "--user",
            user,
            "--goal",
            "verbs-b",
            "--goal",
            "verbs-none,verbs-a",
        ],
    )
    .await?
    .json();
    assert_eq!(goal_ids(&batch), ["verbs-b", "verbs-a"]);
    assert_eq!(batch["missing_goal_ids"], serde_json::json!(["verbs-none"]));
    let table = goalctl(
        &sidecar,
        &["batch-get", "--user", user, "--goal", "verbs-a,verbs-none"],
    )
    .await?;
    let out = table.ok();
    assert!(out.contains("Read more"), "{out}");
    assert!(out.contains("not found: verbs-none"), "{out}");

    // activities: newest logged first, paged.
    for (id, value) in [("act-1", "10"), ("act-2", "20"), ("act-3", "30")] {
        goalctl(
            &sidecar,
            &[
                "--json", "log", "--user", user, "--goal", "verbs-b", "--value", value, "--id", id,
            ],
        )
        .await?
        .json();
    }
    let first = goalctl(
        &sidecar,
        &[
            "--json",
            "activities",
            "--user",
            user,
            "--goal",
            "verbs-b",
            "--page-size",
            "2",
        ],
    )
    .await?
    .json();
    let ids = |page: &Value| -> Vec<String> {
        page["activities"]
            .as_array()
            .unwrap_or_else(|| panic!("no activities array: {page}"))
            .iter()
            .map(|a| str_at(a, "/activity_id").to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["act-3", "act-2"]);
    let token = str_at(&first, "/next_page_token").to_owned();
    let second = goalctl(
        &sidecar,
        &[
            "--json",
            "activities",
            "--user",
            user,
            "--goal",
            "verbs-b",
            "--page-size",
            "2",
            "--page-token",
            &token,
        ],
    )
    .await?
    .json();
    assert_eq!(ids(&second), ["act-1"]);
    assert_eq!(second["next_page_token"], Value::Null, "{second}");
    // A window that ends before anything was logged holds nothing.
    let none = goalctl(
        &sidecar,
        &[
            "activities",
            "--user",
            user,
            "--goal",
            "verbs-b",
            "--to",
            "2001-01-01T00:00:00Z",
        ],
    )
    .await?;
    assert_eq!(none.ok().trim(), "no activities");
    let table = goalctl(
        &sidecar,
        &["activities", "--user", user, "--goal", "verbs-b"],
    )
    .await?;
    let out = table.ok();
    for expected in ["act-1", "act-2", "act-3", "30 minutes"] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }

    // `--help` lists every verb a person reaches for.
    let help = goalctl(&sidecar, &["--help"]).await?;
    let out = help.ok();
    for verb in ["update", "activities", "batch-get", "health"] {
        assert!(out.contains(verb), "{verb:?} in:\n{out}");
    }
    Ok(())
}

#[tokio::test]
async fn goalctl_health_fails_when_nothing_serves() -> anyhow::Result<()> {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}", listener.local_addr()?)
    };
    let run = goalctl_with(&[("GOALSTORE_ENDPOINT", closed.as_str())], &["health"]).await?;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains(&closed), "names the endpoint: {run:?}");
    Ok(())
}
