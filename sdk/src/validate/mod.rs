//! Validation: what a write must satisfy before it reaches the table, so that every item goalstore
//! writes passes the existing goal handlers' models (ORIGIN §1) and every caller — the SDK, the
//! sidecar, the Lambda handlers — gets the same answer for the same mistake.
//!
//! Two kinds of refusal, as the existing API has them:
//! - a field that breaks its model (a length, a range, an enum, a required value, a pattern's
//!   period or target date): [`Error::InvalidArgument`] naming the field by its dotted path
//!   (`target.unit`, `context.importance_level`) — 400 VALIDATION_ERROR over HTTP;
//! - a business rule (dates in the past, an activity's unit, a goal's status, ...):
//!   [`Error::Rule`] with the rule's code — 422 over HTTP, FAILED_PRECONDITION over gRPC (see
//!   [`rules`]).
//!
//! The functions here also bring a value into the form the existing handlers read: documents
//! with snake_case keys and their defaults filled in, the defaults their create fills (schedule
//! per pattern, context, rewards, metadata), and [`readable`] for goals read back from items an
//! older goalstore wrote with NULLs where their models need values.
//!
//! What this module deliberately does not do: read the table (the quota and duplicate-title rules,
//! which need the user's goals, take them as arguments), or know about transports.

mod documents;
pub mod rules;

use crate::error::{Error, Result};
use crate::model::{
    Activity, Direction, Document, Goal, GoalPattern, Period, Target, TargetType, Timestamp,
};
use crate::store::{NewActivity, NewGoal};
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use documents::length_rule;
use serde_json::{json, Value};

/// The metrics a target may measure.
pub const METRICS: &[&str] = &[
    "count", "duration", "amount", "weight", "distance", "calories", "money", "custom",
];

/// Longest title, in characters.
pub const MAX_TITLE_LEN: usize = 200;
/// Longest goal description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Longest category, unit or icon, in characters.
pub const MAX_NAME_LEN: usize = 50;
/// Longest note a caller may send (their readers take up to 1000).
pub const MAX_NOTE_LEN: usize = 500;

/// The category written for a goal an older goalstore stored without one.
pub const DEFAULT_CATEGORY: &str = "general";

fn text(field: &'static str, value: Option<&str>, min: usize, max: usize) -> Result<()> {
    let length = value.map_or(0, |t| t.chars().count());
    if value.is_some() && (length < min || length > max) {
        return Err(Error::invalid(field, length_rule(length, min, max)));
    }
    Ok(())
}

fn required_text(field: &'static str, value: Option<&str>, max: usize) -> Result<()> {
    match value {
        None => Err(Error::invalid(field, "is required")),
        Some(v) if v.trim().is_empty() => Err(Error::invalid(field, "must not be empty")),
        Some(_) => text(field, value, 1, max),
    }
}

/// A title: 1–200 characters, not blank.
pub fn title(title: &str) -> Result<()> {
    required_text("title", Some(title), MAX_TITLE_LEN)
}

fn color(color: Option<&String>) -> Result<()> {
    let Some(color) = color else { return Ok(()) };
    let hex = color.strip_prefix('#').unwrap_or("");
    if color.len() == 7 && hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "color",
            "must be `#` and six hex digits, e.g. #1E90FF",
        ))
    }
}

/// The goal fields every goal must have right (on create, and after an update is applied).
fn goal_fields(goal: &Goal) -> Result<()> {
    title(&goal.title)?;
    text(
        "description",
        goal.description.as_deref(),
        0,
        MAX_DESCRIPTION_LEN,
    )?;
    required_text("category", goal.category.as_deref(), MAX_NAME_LEN)?;
    text("icon", goal.icon.as_deref(), 0, MAX_NAME_LEN)?;
    color(goal.color.as_ref())?;
    Ok(())
}

/// A target for a goal of `pattern`, with `target_type` filled in.
pub fn target(pattern: GoalPattern, target: &mut Target) -> Result<()> {
    if !METRICS.contains(&target.metric.as_str()) {
        return Err(Error::invalid(
            "target.metric",
            format!("must be one of {}", METRICS.join(", ")),
        ));
    }
    match target.value {
        None => return Err(Error::invalid("target.value", "is required")),
        Some(v) if !v.is_finite() || v <= 0.0 => {
            return Err(Error::invalid(
                "target.value",
                "must be a number greater than 0",
            ))
        }
        Some(_) => {}
    }
    // The existing API requires a unit and a direction in its request; goalstore's own callers
    // may leave them out and get the documented defaults (the HTTP API keeps them required).
    if target.unit.is_none() {
        target.unit = Some(target.metric.clone());
    }
    required_text("target.unit", target.unit.as_deref(), MAX_NAME_LEN)?;
    let numbers = [
        ("target.start_value", target.start_value),
        ("target.current_value", target.current_value),
        ("target.min_value", target.min_value),
        ("target.max_value", target.max_value),
    ];
    for (field, value) in numbers {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(Error::invalid(field, "must be a finite number"));
        }
    }
    target.direction.get_or_insert(default_direction(pattern));
    if matches!(pattern, GoalPattern::Recurring | GoalPattern::Limit) && target.period.is_none() {
        return Err(Error::invalid(
            "target.period",
            format!("a {pattern} goal needs a period"),
        ));
    }
    match &target.target_date {
        None if matches!(pattern, GoalPattern::Milestone | GoalPattern::Target) => {
            return Err(Error::invalid(
                "target.target_date",
                format!("a {pattern} goal needs a target date"),
            ))
        }
        Some(date) if date.instant().is_none() => {
            return Err(Error::invalid(
                "target.target_date",
                "is not an ISO-8601 time",
            ))
        }
        _ => {}
    }
    target.target_type.get_or_insert(TargetType::Exact);
    Ok(())
}

/// The direction a target of `pattern` takes when its creator names none: a limit keeps a value
/// down, every other pattern raises one.
pub fn default_direction(pattern: GoalPattern) -> Direction {
    match pattern {
        GoalPattern::Limit => Direction::Decrease,
        _ => Direction::Increase,
    }
}

/// The schedule the existing handlers write for a new goal of `pattern` that names none.
pub fn default_schedule(pattern: GoalPattern) -> Document {
    let (frequency, skip, catch_up) = match pattern {
        GoalPattern::Recurring => (json!("daily"), json!(2), true),
        GoalPattern::Streak => (json!("daily"), json!(0), false),
        GoalPattern::Milestone | GoalPattern::Target | GoalPattern::Limit => {
            (Value::Null, Value::Null, true)
        }
    };
    let check_in = if frequency.is_null() {
        "weekly"
    } else {
        "daily"
    };
    Document::from(json!({
        "frequency": frequency,
        "days_of_week": null,
        "preferred_times": null,
        "check_in_frequency": check_in,
        "allow_skip_days": skip,
        "catch_up_allowed": catch_up,
    }))
}

fn empty_map() -> Document {
    Document::from(json!({}))
}

/// Checks a new goal and brings its documents into the stored form (see the module comment).
/// Does not check its business rules: [`rules::new_goal`] does, with the user's goals at hand.
pub fn new_goal(new: &mut NewGoal) -> Result<()> {
    if new.category.is_none() {
        new.category = Some(DEFAULT_CATEGORY.to_owned());
    }
    target(new.goal_pattern, &mut new.target)?;
    new.schedule = Some(match &new.schedule {
        Some(schedule) => documents::normalize("schedule", schedule, documents::SCHEDULE)?,
        None => default_schedule(new.goal_pattern),
    });
    let context = new.context.take().unwrap_or_else(empty_map);
    new.context = Some(documents::normalize(
        "context",
        &context,
        documents::GOAL_CONTEXT,
    )?);
    let rewards = new.rewards.take().unwrap_or_else(empty_map);
    new.rewards = Some(documents::normalize(
        "rewards",
        &rewards,
        documents::REWARDS,
    )?);
    let metadata = new.metadata.take().unwrap_or_else(empty_map);
    documents::any_map("metadata", &metadata)?;
    new.metadata = Some(metadata);
    Ok(())
}

/// Checks a goal as it will be written (a new goal, or a stored one with an update applied):
/// every field the existing handlers' model checks.
pub fn goal(goal: &mut Goal) -> Result<()> {
    goal_fields(goal)?;
    target(goal.goal_pattern, &mut goal.target)?;
    normalize_goal_documents(goal)
}

fn normalize_goal_documents(goal: &mut Goal) -> Result<()> {
    if let Some(schedule) = &goal.schedule {
        goal.schedule = Some(documents::normalize(
            "schedule",
            schedule,
            documents::SCHEDULE,
        )?);
    }
    if let Some(context) = &goal.context {
        goal.context = Some(documents::normalize(
            "context",
            context,
            documents::GOAL_CONTEXT,
        )?);
    }
    if let Some(rewards) = &goal.rewards {
        goal.rewards = Some(documents::normalize(
            "rewards",
            rewards,
            documents::REWARDS,
        )?);
    }
    match &goal.metadata {
        Some(metadata) => documents::any_map("metadata", metadata)?,
        None => goal.metadata = Some(empty_map()),
    }
    Ok(())
}

/// A goal read back from the table, brought into the form the existing handlers read before it
/// is written again: items an older goalstore wrote hold NULL where their models need a value.
/// Values it cannot know get documented stand-ins (docs/compatibility.md): category
/// [`DEFAULT_CATEGORY`], a unit named after the metric, a direction that fits the pattern, a
/// weekly period, a target date a year after creation. Documents that do not fit their shape are
/// replaced by the defaults (and logged).
pub fn readable(goal: &mut Goal) {
    if goal.category.as_deref().is_none_or(|c| c.trim().is_empty()) {
        goal.category = Some(DEFAULT_CATEGORY.to_owned());
    }
    let target = &mut goal.target;
    if !METRICS.contains(&target.metric.as_str()) {
        target.metric = "custom".to_owned();
    }
    if target.unit.as_deref().is_none_or(|u| u.trim().is_empty()) {
        target.unit = Some(target.metric.clone());
    }
    target
        .direction
        .get_or_insert(default_direction(goal.goal_pattern));
    target.target_type.get_or_insert(TargetType::Exact);
    if matches!(
        goal.goal_pattern,
        GoalPattern::Recurring | GoalPattern::Limit
    ) {
        target.period.get_or_insert(Period::Week);
    }
    if matches!(
        goal.goal_pattern,
        GoalPattern::Milestone | GoalPattern::Target
    ) && target.target_date.is_none()
    {
        let created = goal.created_at.instant().unwrap_or_else(Utc::now);
        target.target_date = Some(Timestamp::from_instant(
            created + chrono::Duration::days(365),
        ));
    }
    if target.value.is_none_or(|v| !v.is_finite() || v <= 0.0) {
        target.value = Some(1.0);
    }
    let progress = &mut goal.progress;
    progress.success_rate.get_or_insert(0.0);
    progress.trend.get_or_insert(crate::model::Trend::Stable);
    for record in &mut progress.period_history {
        if record.date.is_none() {
            record.date = Some(goal.updated_at.clone());
        }
    }
    let documents = [
        ("schedule", &mut goal.schedule, documents::SCHEDULE),
        ("context", &mut goal.context, documents::GOAL_CONTEXT),
        ("rewards", &mut goal.rewards, documents::REWARDS),
    ];
    for (name, slot, shape) in documents {
        if let Some(doc) = slot.as_ref() {
            match documents::normalize(name, doc, shape) {
                Ok(normal) => *slot = Some(normal),
                Err(error) => {
                    tracing::warn!(%error, goal_id = %goal.goal_id, "replacing a stored document that does not fit its shape");
                    *slot = Some(
                        documents::normalize(name, &empty_map(), shape)
                            .unwrap_or_else(|_| empty_map()),
                    );
                }
            }
        }
    }
    if goal.metadata.as_ref().is_none_or(|m| !m.is_object()) {
        goal.metadata = Some(empty_map());
    }
}

/// An activity read back from the table, brought into the form the existing handlers read:
/// an older goalstore wrote NULL `unit` (when the goal had none), `timezone` and `attachments`.
/// The unit becomes the goal's (`goal_unit`), the timezone `UTC`, the attachments `[]`. Returns
/// whether anything changed, so the caller writes only what needs it.
pub fn readable_activity(activity: &mut Activity, goal_unit: Option<&str>) -> bool {
    let mut changed = false;
    if activity.unit.is_none() {
        activity.unit = Some(goal_unit.unwrap_or("count").to_owned());
        changed = true;
    }
    if activity.timezone.is_none() {
        activity.timezone = Some("UTC".to_owned());
        changed = true;
    }
    if activity.attachments.is_none() {
        activity.attachments = Some(Document::from(json!([])));
        changed = true;
    }
    changed
}

/// Checks a new activity's own fields and brings its documents into the stored form.
/// Does not check it against its goal: [`rules::activity`] does.
pub fn new_activity(new: &mut NewActivity) -> Result<()> {
    if !new.value.is_finite() {
        return Err(Error::invalid("value", "must be a finite number"));
    }
    text("note", new.note.as_deref(), 0, MAX_NOTE_LEN)?;
    if let Some(date) = &new.activity_date {
        if date.instant().is_none() {
            return Err(Error::invalid("activity_date", "is not an ISO-8601 time"));
        }
    }
    if let Some(location) = &new.location {
        new.location = Some(documents::normalize(
            "location",
            location,
            documents::LOCATION,
        )?);
    }
    if let Some(context) = &new.context {
        new.context = Some(documents::normalize(
            "context",
            context,
            documents::ACTIVITY_CONTEXT,
        )?);
    }
    let attachments = new
        .attachments
        .take()
        .unwrap_or_else(|| Document::from(json!([])));
    new.attachments = Some(documents::normalize_list(
        "attachments",
        &attachments,
        documents::ATTACHMENT,
    )?);
    if let Some(device) = &new.device_info {
        new.device_info = Some(documents::string_map("device_info", device)?);
    }
    Ok(())
}

/// The parts of an activity the existing handlers derive when they write it: its context with
/// `time_of_day`, `day_of_week` and `is_weekend` filled in from the activity's date (UTC) where
/// the caller left them NULL, and `timezone` `UTC` when none was given.
pub fn complete_activity(activity: &mut Activity, date: DateTime<Utc>) {
    let mut context = activity
        .context
        .as_ref()
        .map(Document::to_value)
        .unwrap_or_else(|| {
            documents::normalize("context", &empty_map(), documents::ACTIVITY_CONTEXT)
                .map(|d| d.to_value())
                .unwrap_or_else(|_| json!({}))
        });
    if let Value::Object(map) = &mut context {
        let hour = date.hour();
        let time_of_day = match hour {
            4..=6 => "early-morning",
            7..=11 => "morning",
            12..=16 => "afternoon",
            17..=20 => "evening",
            _ => "night",
        };
        let weekday = date.weekday();
        let day = crate::model::weekday_name(weekday);
        let weekend = matches!(weekday, Weekday::Sat | Weekday::Sun);
        let fill = |map: &mut serde_json::Map<String, Value>, key: &str, value: Value| {
            if map.get(key).is_none_or(Value::is_null) {
                map.insert(key.to_owned(), value);
            }
        };
        fill(map, "time_of_day", json!(time_of_day));
        fill(map, "day_of_week", json!(day));
        fill(map, "is_weekend", json!(weekend));
    }
    activity.context = Some(Document::from(context));
    if activity.timezone.as_deref().is_none_or(str::is_empty) {
        activity.timezone = Some("UTC".to_owned());
    }
    if activity.attachments.is_none() {
        activity.attachments = Some(Document::from(json!([])));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GoalPattern;

    fn a_target() -> Target {
        Target {
            metric: "count".into(),
            value: Some(10.0),
            unit: Some("pages".into()),
            direction: Some(Direction::Increase),
            period: Some(Period::Week),
            ..Target::default()
        }
    }

    fn field_of(result: Result<()>) -> String {
        match result {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    #[test]
    fn a_target_needs_what_their_model_needs() {
        let mut ok = a_target();
        target(GoalPattern::Recurring, &mut ok).expect("valid");
        assert_eq!(ok.target_type, Some(TargetType::Exact), "filled in");
        let mut bare = Target {
            unit: None,
            direction: None,
            ..a_target()
        };
        target(GoalPattern::Limit, &mut bare).expect("defaults");
        assert_eq!(
            bare.unit.as_deref(),
            Some("count"),
            "the metric names the unit"
        );
        assert_eq!(
            bare.direction,
            Some(Direction::Decrease),
            "a limit keeps a value down"
        );
        type Case = (fn(&mut Target), GoalPattern, &'static str);
        let cases: [Case; 7] = [
            (
                |t| t.metric = "steps".into(),
                GoalPattern::Recurring,
                "target.metric",
            ),
            (|t| t.value = None, GoalPattern::Recurring, "target.value"),
            (
                |t| t.value = Some(0.0),
                GoalPattern::Recurring,
                "target.value",
            ),
            (
                |t| t.unit = Some(" ".into()),
                GoalPattern::Recurring,
                "target.unit",
            ),
            (
                |t| t.unit = Some("u".repeat(51)),
                GoalPattern::Recurring,
                "target.unit",
            ),
            (|t| t.period = None, GoalPattern::Limit, "target.period"),
            (|_| {}, GoalPattern::Milestone, "target.target_date"),
        ];
        for (change, pattern, field) in cases {
            let mut t = a_target();
            change(&mut t);
            assert_eq!(field_of(target(pattern, &mut t)), field);
        }
    }

    #[test]
    fn new_goals_get_the_defaults_their_create_writes() {
        let mut new = NewGoal::new("Run", GoalPattern::Streak, a_target());
        new_goal(&mut new).expect("valid");
        let schedule = new.schedule.as_ref().expect("a schedule").to_value();
        assert_eq!(schedule["frequency"], "daily");
        assert_eq!(schedule["allow_skip_days"], 0);
        assert_eq!(schedule["catch_up_allowed"], false);
        assert_eq!(
            new.context.as_ref().expect("a context").to_value()["importance_level"],
            3
        );
        assert_eq!(
            new.rewards.as_ref().expect("rewards").to_value()["points_per_activity"],
            10
        );
        assert_eq!(new.metadata, Some(empty_map()));
        let milestone = default_schedule(GoalPattern::Milestone).to_value();
        assert_eq!(milestone["frequency"], Value::Null);
        assert_eq!(milestone["check_in_frequency"], "weekly");
    }

    #[test]
    fn colors_and_lengths() {
        assert!(color(Some(&"#1e90FF".to_owned())).is_ok());
        for bad in ["1e90ff", "#1e90f", "#1e90ffa", "#gggggg"] {
            assert_eq!(field_of(color(Some(&bad.to_owned()))), "color", "{bad}");
        }
        assert_eq!(field_of(title("   ")), "title");
        assert_eq!(field_of(title(&"t".repeat(201))), "title");
        assert!(title(&"t".repeat(200)).is_ok());
    }

    #[test]
    fn an_activity_context_is_derived_from_its_date() {
        let date = DateTime::parse_from_rfc3339("2025-01-04T05:30:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let mut activity = Activity {
            activity_id: "a".into(),
            goal_id: "g".into(),
            user_id: "u".into(),
            value: 1.0,
            unit: Some("pages".into()),
            activity_type: crate::model::ActivityType::Progress,
            activity_date: Timestamp::from_instant(date),
            logged_at: Timestamp::from_instant(date),
            timezone: None,
            location: None,
            context: Some(Document::from(
                json!({"day_of_week": "caller's", "is_holiday": false, "with_others": false}),
            )),
            note: None,
            attachments: None,
            source: crate::model::ActivitySource::Manual,
            device_info: None,
        };
        complete_activity(&mut activity, date);
        let context = activity.context.as_ref().expect("context").to_value();
        assert_eq!(context["time_of_day"], "early-morning");
        assert_eq!(context["day_of_week"], "caller's", "a given value stays");
        assert_eq!(context["is_weekend"], true, "2025-01-04 is a Saturday");
        assert_eq!(activity.timezone.as_deref(), Some("UTC"));
        assert_eq!(activity.attachments, Some(Document::from(json!([]))));
    }
}
