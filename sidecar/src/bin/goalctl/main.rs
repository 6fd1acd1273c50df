//! `goalctl`: the goalstore sidecar from the command line.
//!
//! A thin client over [`goalstore::Client`] (so it gets the SDK's deadlines, retries of
//! UNAVAILABLE and error mapping): create, get (one or a batch), list, update and archive goals,
//! log and list activities, read progress, the readiness check `health`, and the admin calls
//! `stats` and `invalidate-user`. Output is a readable table, or
//! JSON with `--json` (the model's own serde form, so scripts can rely on the field names).
//!
//! ```sh
//! goalctl create --user u1 --title "Read 20 books" --pattern milestone --target-value 20
//! goalctl update --user u1 --goal <goal id> --title "Read 25 books" --target-value 25
//! goalctl batch-get --user u1 --goal <id> --goal <id>
//! goalctl activities --user u1 --goal <goal id> --from 2025-01-01T00:00:00Z
//! goalctl --json progress --user u1 --goal <goal id>
//! GOALSTORE_ENDPOINT=unix:/run/goalstore.sock goalctl stats
//! ```
//!
//! Errors print `error: <message>` on stderr and exit 1; usage errors exit 2 (clap's convention).
//!
//! Output goes through `std::io::Write` rather than `println!` (the workspace lints deny
//! `print_stdout`, and `println!` panics when the reader of a pipe goes away, e.g. `| head`):
//! a closed stdout ends the command quietly.

mod render;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use goalstore::{
    ActivityFilter, Client, ClientConfig, GoalFilter, GoalPattern, GoalService, GoalStatus,
    GoalUpdate, NewActivity, NewGoal, Page, PageRequest, Period, Target, Timestamp,
};
use render::{
    emit, emit_json, key_values, progress_table, show_activities, show_goal, show_goals,
    show_stats, with_unit,
};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

/// The heading of the options every subcommand takes.
const GLOBAL: &str = "Global options";

/// Command-line client of the goalstore sidecar: goals, activities, progress, cache admin.
#[derive(Debug, Parser)]
#[command(name = "goalctl", version)]
struct Cli {
    /// The sidecar: `http://host:port` or `unix:/path/to/socket`.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "GOALSTORE_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    endpoint: String,

    /// Bearer token the sidecar requires (its `--auth-token`).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "GOALSTORE_AUTH_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Deadline of each call, retries included (e.g. `500ms`, `5s`, `1m`).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    timeout: Duration,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a goal.
    Create(CreateArgs),
    /// Show one goal.
    Get(GoalRef),
    /// Show several goals of one user in one call (BatchGetGoals); names the ids not found.
    BatchGet(BatchGetArgs),
    /// List a user's goals (a page at a time), or only the active ones.
    List(ListArgs),
    /// Change a goal's fields; those not given stay as they are.
    Update(UpdateArgs),
    /// Archive a goal (archiving an archived goal is not an error).
    Archive(GoalRef),
    /// Log an activity toward a goal and show the goal's new progress.
    Log(LogArgs),
    /// List a goal's activities, newest logged first (a page at a time).
    Activities(ActivitiesArgs),
    /// Show a goal's progress.
    Progress(GoalRef),
    /// Readiness: exits 0 when the sidecar's health check answers SERVING, 1 otherwise.
    Health(HealthArgs),
    /// Admin: the sidecar's cache and table statistics.
    Stats,
    /// Admin: drop every cached entry of a user.
    InvalidateUser(UserRef),
}

#[derive(Debug, Args)]
struct UserRef {
    /// The user whose cached entries to drop.
    #[arg(long)]
    user: String,
}

#[derive(Debug, Args)]
struct GoalRef {
    /// The goal's owner.
    #[arg(long)]
    user: String,
    /// The goal's id.
    #[arg(long)]
    goal: String,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The goal's owner.
    #[arg(long)]
    user: String,
    /// The goal's title.
    #[arg(long)]
    title: String,
    /// How the goal is measured.
    #[arg(long, value_enum)]
    pattern: PatternArg,
    /// The value to reach (or, for a limit, to stay under).
    #[arg(long, allow_negative_numbers = true)]
    target_value: f64,
    /// What is measured, e.g. `count`, `duration`, `weight`.
    #[arg(long, default_value = "count")]
    metric: String,
    /// Unit of the target value, e.g. `steps`, `pages`, `kg`.
    #[arg(long)]
    unit: Option<String>,
    /// Length of one period (recurring and limit goals).
    #[arg(long, value_enum)]
    period: Option<PeriodArg>,
    /// When the goal is due, ISO-8601 (milestone and target goals).
    #[arg(long, value_parser = parse_timestamp)]
    target_date: Option<Timestamp>,
    /// A goal id of your choosing; makes the create safe to retry. Generated when absent.
    #[arg(long)]
    id: Option<String>,
    /// Initial status; active when absent.
    #[arg(long, value_enum)]
    status: Option<NewStatusArg>,
    /// A category, e.g. `health`.
    #[arg(long)]
    category: Option<String>,
}

#[derive(Debug, Args)]
struct BatchGetArgs {
    /// The goals' owner.
    #[arg(long)]
    user: String,
    /// A goal id; repeat for more (`--goal a --goal b`) or separate with commas.
    #[arg(long = "goal", required = true, value_delimiter = ',')]
    goals: Vec<String>,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// The goal's owner.
    #[arg(long)]
    user: String,
    /// The goal's id.
    #[arg(long)]
    goal: String,
    /// A new title.
    #[arg(long)]
    title: Option<String>,
    /// A new description.
    #[arg(long)]
    description: Option<String>,
    /// A new category.
    #[arg(long)]
    category: Option<String>,
    /// A new status (archive with `archive`).
    #[arg(long, value_enum)]
    status: Option<UpdateStatusArg>,
    /// A new target value; the rest of the target stays as it is.
    #[arg(long, allow_negative_numbers = true)]
    target_value: Option<f64>,
    /// A new unit of the target value.
    #[arg(long)]
    unit: Option<String>,
}

#[derive(Debug, Args)]
struct ActivitiesArgs {
    /// The goal's owner.
    #[arg(long)]
    user: String,
    /// The goal's id.
    #[arg(long)]
    goal: String,
    /// Only activities logged at or after this time, ISO-8601.
    #[arg(long, value_parser = parse_timestamp)]
    from: Option<Timestamp>,
    /// Only activities logged at or before this time, ISO-8601.
    #[arg(long, value_parser = parse_timestamp)]
    to: Option<Timestamp>,
    /// At most this many activities (the sidecar's default when absent).
    #[arg(long)]
    page_size: Option<u32>,
    /// The next-page token a previous `activities` printed.
    #[arg(long)]
    page_token: Option<String>,
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// The service to ask about; the whole server when absent.
    #[arg(long, default_value = "")]
    service: String,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The goals' owner.
    #[arg(long)]
    user: String,
    /// Only active goals, from the cached active list (one call, no paging).
    #[arg(long, conflicts_with_all = ["status", "page_size", "page_token"])]
    active: bool,
    /// Only goals with this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Only goals with this pattern.
    #[arg(long, value_enum)]
    pattern: Option<PatternArg>,
    /// Only goals in this category.
    #[arg(long)]
    category: Option<String>,
    /// At most this many goals (the sidecar's default when absent).
    #[arg(long)]
    page_size: Option<u32>,
    /// The next-page token a previous `list` printed.
    #[arg(long)]
    page_token: Option<String>,
}

#[derive(Debug, Args)]
struct LogArgs {
    /// The goal's owner.
    #[arg(long)]
    user: String,
    /// The goal's id.
    #[arg(long)]
    goal: String,
    /// The activity's value (e.g. pages read, minutes, kilograms).
    #[arg(long, allow_negative_numbers = true)]
    value: f64,
    /// Unit of the value; the goal's target unit when absent.
    #[arg(long)]
    unit: Option<String>,
    /// An activity id of your choosing; makes the log safe to retry. Generated when absent.
    #[arg(long)]
    id: Option<String>,
    /// When it happened, ISO-8601 (e.g. `2025-01-05T10:00:00Z`); now when absent.
    #[arg(long, value_parser = parse_timestamp)]
    date: Option<Timestamp>,
    /// A free-text note.
    #[arg(long)]
    note: Option<String>,
}

/// A goal pattern on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PatternArg {
    Recurring,
    Milestone,
    Target,
    Streak,
    Limit,
}

impl From<PatternArg> for GoalPattern {
    fn from(value: PatternArg) -> Self {
        match value {
            PatternArg::Recurring => GoalPattern::Recurring,
            PatternArg::Milestone => GoalPattern::Milestone,
            PatternArg::Target => GoalPattern::Target,
            PatternArg::Streak => GoalPattern::Streak,
            PatternArg::Limit => GoalPattern::Limit,
        }
    }
}

/// A period on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PeriodArg {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl From<PeriodArg> for Period {
    fn from(value: PeriodArg) -> Self {
        match value {
            PeriodArg::Day => Period::Day,
            PeriodArg::Week => Period::Week,
            PeriodArg::Month => Period::Month,
            PeriodArg::Quarter => Period::Quarter,
            PeriodArg::Year => Period::Year,
        }
    }
}

/// The statuses a new goal may start in.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum NewStatusArg {
    Draft,
    Active,
    Paused,
}

impl From<NewStatusArg> for GoalStatus {
    fn from(value: NewStatusArg) -> Self {
        match value {
            NewStatusArg::Draft => GoalStatus::Draft,
            NewStatusArg::Active => GoalStatus::Active,
            NewStatusArg::Paused => GoalStatus::Paused,
        }
    }
}

/// The statuses an update may set (archiving has its own call).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum UpdateStatusArg {
    Active,
    Paused,
}

impl From<UpdateStatusArg> for GoalStatus {
    fn from(value: UpdateStatusArg) -> Self {
        match value {
            UpdateStatusArg::Active => GoalStatus::Active,
            UpdateStatusArg::Paused => GoalStatus::Paused,
        }
    }
}

/// Any goal status, for filtering.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Draft,
    Active,
    Paused,
    Completed,
    Archived,
}

impl From<StatusArg> for GoalStatus {
    fn from(value: StatusArg) -> Self {
        match value {
            StatusArg::Draft => GoalStatus::Draft,
            StatusArg::Active => GoalStatus::Active,
            StatusArg::Paused => GoalStatus::Paused,
            StatusArg::Completed => GoalStatus::Completed,
            StatusArg::Archived => GoalStatus::Archived,
        }
    }
}

fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text)
        .ok_or_else(|| format!("`{text}` is not an ISO-8601 time, e.g. 2025-01-05T10:00:00Z"))
}

/// `health` found the sidecar up but not serving: exit 1 with nothing more on stderr.
#[derive(Debug, thiserror::Error)]
#[error("not serving")]
struct NotServing;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let endpoint = cli.endpoint.clone();
    match run(cli).await.map_err(|e| at_endpoint(e, &endpoint)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<NotServing>() => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = connect(&cli)?;
    let json = cli.json;
    match cli.command {
        Command::Create(args) => {
            let mut target = Target {
                metric: args.metric,
                value: Some(args.target_value),
                unit: args.unit,
                period: args.period.map(Period::from),
                target_date: args.target_date,
                ..Target::default()
            };
            if target.metric.is_empty() {
                target.metric = "count".into();
            }
            let mut new = NewGoal::new(args.title, args.pattern.into(), target);
            new.goal_id = args.id;
            new.status = args.status.map(GoalStatus::from);
            new.category = args.category;
            let goal = client.create_goal(&args.user, new).await.map_err(fail)?;
            show_goal(json, &goal)
        }
        Command::Get(args) => {
            let goal = client
                .get_goal(&args.user, &args.goal)
                .await
                .map_err(fail)?;
            show_goal(json, &goal)
        }
        Command::BatchGet(args) => {
            let batch = client
                .get_goals(&args.user, &args.goals)
                .await
                .map_err(fail)?;
            if json {
                return emit_json(&json!({
                    "goals": batch.goals,
                    "missing_goal_ids": batch.missing_goal_ids,
                }));
            }
            show_goals(
                false,
                &Page {
                    items: batch.goals,
                    next_page_token: None,
                },
            )?;
            if batch.missing_goal_ids.is_empty() {
                return Ok(());
            }
            emit(&format!("not found: {}", batch.missing_goal_ids.join(", ")))
        }
        Command::Update(args) => {
            let target = if args.target_value.is_some() || args.unit.is_some() {
                // UpdateGoal replaces the whole target: start from the goal's own.
                let current = client
                    .get_goal(&args.user, &args.goal)
                    .await
                    .map_err(fail)?;
                let mut target = current.target;
                if let Some(value) = args.target_value {
                    target.value = Some(value);
                }
                if let Some(unit) = args.unit {
                    target.unit = Some(unit);
                }
                Some(target)
            } else {
                None
            };
            let update = GoalUpdate {
                title: args.title,
                description: args.description,
                category: args.category,
                status: args.status.map(GoalStatus::from),
                target,
                ..GoalUpdate::default()
            };
            if update == GoalUpdate::default() {
                anyhow::bail!(
                    "nothing to update: give at least one of --title, --description, --category, \
                     --status, --target-value, --unit"
                );
            }
            let goal = client
                .update_goal(&args.user, &args.goal, update)
                .await
                .map_err(fail)?;
            show_goal(json, &goal)
        }
        Command::Activities(args) => {
            let filter = ActivityFilter {
                from: args.from,
                to: args.to,
            };
            let page = PageRequest {
                page_size: args.page_size,
                page_token: args.page_token,
            };
            let page = client
                .list_activities(&args.user, &args.goal, &filter, &page)
                .await
                .map_err(fail)?;
            show_activities(json, &page)
        }
        Command::Health(args) => {
            let serving = client.serving(&args.service).await.map_err(fail)?;
            let status = if serving { "SERVING" } else { "NOT_SERVING" };
            if json {
                emit_json(&json!({ "status": status }))?;
            } else {
                emit(status)?;
            }
            if !serving {
                // Exit 1 like any failure, but the answer was already printed.
                return Err(NotServing.into());
            }
            Ok(())
        }
        Command::List(args) => {
            let page = if args.active {
                let goals = client.list_active_goals(&args.user).await.map_err(fail)?;
                let pattern = args.pattern.map(GoalPattern::from);
                let items = goals
                    .into_iter()
                    .filter(|g| pattern.is_none_or(|p| g.goal_pattern == p))
                    .filter(|g| {
                        args.category
                            .as_deref()
                            .is_none_or(|c| g.category.as_deref() == Some(c))
                    })
                    .collect();
                Page {
                    items,
                    next_page_token: None,
                }
            } else {
                let filter = GoalFilter {
                    status: args.status.map(GoalStatus::from),
                    goal_pattern: args.pattern.map(GoalPattern::from),
                    category: args.category,
                };
                let page = PageRequest {
                    page_size: args.page_size,
                    page_token: args.page_token,
                };
                client
                    .list_goals(&args.user, &filter, &page)
                    .await
                    .map_err(fail)?
            };
            show_goals(json, &page)
        }
        Command::Archive(args) => {
            let goal = client
                .archive_goal(&args.user, &args.goal)
                .await
                .map_err(fail)?;
            show_goal(json, &goal)
        }
        Command::Log(args) => {
            let mut new = NewActivity::new(args.value);
            new.activity_id = args.id;
            new.unit = args.unit;
            new.activity_date = args.date;
            new.note = args.note;
            let logged = client
                .log_activity(&args.user, &args.goal, new)
                .await
                .map_err(fail)?;
            if json {
                return emit_json(&json!({
                    "activity": logged.activity,
                    "progress": logged.progress,
                }));
            }
            let a = &logged.activity;
            let mut table = key_values();
            table.add_row(vec!["activity".to_owned(), a.activity_id.clone()]);
            table.add_row(vec!["goal".to_owned(), a.goal_id.clone()]);
            table.add_row(vec!["value".to_owned(), with_unit(a.value, &a.unit)]);
            table.add_row(vec![
                "activity date".to_owned(),
                a.activity_date.to_string(),
            ]);
            table.add_row(vec!["logged at".to_owned(), a.logged_at.to_string()]);
            if let Some(note) = &a.note {
                table.add_row(vec!["note".to_owned(), note.clone()]);
            }
            emit(&format!("{table}\nprogress after it:"))?;
            emit(&progress_table(&logged.progress).to_string())
        }
        Command::Progress(args) => {
            let progress = client
                .get_progress(&args.user, &args.goal)
                .await
                .map_err(fail)?;
            if json {
                return emit_json(&progress);
            }
            emit(&progress_table(&progress).to_string())
        }
        Command::Stats => {
            let stats = client.stats().await.map_err(fail)?;
            show_stats(json, &stats)
        }
        Command::InvalidateUser(args) => {
            let keys = client.invalidate_user(&args.user).await.map_err(fail)?;
            if json {
                return emit_json(&json!({ "user_id": args.user, "keys_invalidated": keys }));
            }
            emit(&format!(
                "invalidated {keys} cache keys of user {}",
                args.user
            ))
        }
    }
}

/// The client for the global options. Connects lazily: a wrong address shows on the first call.
fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let endpoint = if cli.endpoint.starts_with("unix:") || cli.endpoint.contains("://") {
        cli.endpoint.clone()
    } else {
        // `host:port` alone means plain HTTP/2, as the sidecar's `--listen` takes it.
        format!("http://{}", cli.endpoint)
    };
    let config = ClientConfig {
        endpoint,
        auth_token: cli.token.clone().filter(|t| !t.is_empty()),
        timeout: cli.timeout,
        ..ClientConfig::default()
    };
    Client::new(config)
        .map_err(fail)
        .with_context(|| format!("cannot use endpoint `{}`", cli.endpoint))
}

/// A store error as the message the user sees, with a hint where one helps.
fn fail(error: goalstore::Error) -> anyhow::Error {
    match &error {
        goalstore::Error::Unauthenticated(_) => anyhow::anyhow!(
            "{error} (authentication failed: pass --token or set GOALSTORE_AUTH_TOKEN)"
        ),
        _ => anyhow::Error::new(error),
    }
}

/// Names the endpoint in an error that may come from not reaching it.
fn at_endpoint(error: anyhow::Error, endpoint: &str) -> anyhow::Error {
    match error.downcast_ref::<goalstore::Error>() {
        Some(goalstore::Error::Unavailable(_)) => error.context(format!("sidecar at {endpoint}")),
        _ => error,
    }
}
