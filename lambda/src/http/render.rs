//! Response bodies of goals, activities and progress (ORIGIN §3.1, §3.2).
//!
//! A model value is serialized with `serde_json::to_value` (snake_case keys), then re-shaped by
//! the EXPLICIT key lists below, taken from ORIGIN §3.2: every key present (absent or NULL ones
//! as the Python model's default, else `null`), in the model's field order, camelCased. So the
//! answer does not depend on the SDK's Rust types: a free-form `Document` map or a typed struct
//! with snake_case fields renders the same. Keys the lists do not name (e.g. `archived_at`) are
//! not answered. `metadata` and `device_info` are passed through verbatim.
//!
//! Two modes, as the existing handlers serialize:
//! * [`Mode::J`] (pydantic JSON: create, get goal, update, log): datetimes in Z-form
//!   (`2025-01-05T10:00:00.123456Z`), except `target.targetDate`, in offset-form keeping its offset;
//! * [`Mode::S`] (`json.dumps(model_dump(), default=str)`: list goals, list activities, progress):
//!   datetimes as `2025-01-05 10:00:00.123456+00:00`.
//!
//! Float fields print as floats (`10000.0`) in both.

use super::errors::camel_case_key;
use super::json::Json;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Timelike, Utc};
use serde::Serialize;
use serde_json::Value;

/// How datetimes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    J,
    S,
}

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Written as it is (strings, ints, bools, enums, lists of those).
    Plain,
    /// A float: integers become `n.0`.
    Float,
    /// A UTC datetime.
    Time,
    /// `target.target_date`: keeps the stored offset.
    TargetDate,
    /// A model: these fields, in this order.
    Object(&'static [Field]),
    /// A list of these.
    List(&'static Kind),
    /// A free map whose keys are the caller's: passed through.
    Verbatim,
}

/// What an absent (or, for a non-nullable field, NULL) field answers.
#[derive(Debug, Clone, Copy)]
pub enum Fallback {
    /// `null` (a nullable field whose default is None).
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    EmptyList,
    /// An object: `{}` re-shaped by the field's kind (every default), or `{}` for `Verbatim`.
    EmptyMap,
    /// Nullable, but the model's default when absent is the object of defaults (goal context
    /// and rewards).
    MapIfAbsent,
}

/// One key of a model.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The snake_case name (the table's attribute and the SDK's field).
    pub name: &'static str,
    pub kind: Kind,
    pub fallback: Fallback,
}

const fn f(name: &'static str, kind: Kind, fallback: Fallback) -> Field {
    Field {
        name,
        kind,
        fallback,
    }
}

use Fallback as D;
use Kind as K;

pub const TARGET: &[Field] = &[
    f("metric", K::Plain, D::Null),
    f("value", K::Float, D::Null),
    f("unit", K::Plain, D::Null),
    f("period", K::Plain, D::Null),
    f("target_date", K::TargetDate, D::Null),
    f("start_value", K::Float, D::Null),
    f("current_value", K::Float, D::Null),
    f("direction", K::Plain, D::Null),
    f("target_type", K::Plain, D::Str("exact")),
    f("min_value", K::Float, D::Null),
    f("max_value", K::Float, D::Null),
];

pub const SCHEDULE: &[Field] = &[
    f("frequency", K::Plain, D::Null),
    f("days_of_week", K::Plain, D::Null),
    f("preferred_times", K::Plain, D::Null),
    f("check_in_frequency", K::Plain, D::Str("daily")),
    f("allow_skip_days", K::Plain, D::Null),
    f("catch_up_allowed", K::Plain, D::Bool(true)),
];

pub const PERIOD_RECORD: &[Field] = &[
    f("period", K::Plain, D::Null),
    f("achieved", K::Plain, D::Bool(false)),
    f("value", K::Float, D::Float(0.0)),
    f("date", K::Time, D::Null),
];

pub const PROGRESS: &[Field] = &[
    f("percent_complete", K::Float, D::Float(0.0)),
    f("last_activity_date", K::Time, D::Null),
    f("current_period_value", K::Float, D::Null),
    f(
        "period_history",
        K::List(&K::Object(PERIOD_RECORD)),
        D::EmptyList,
    ),
    f("total_accumulated", K::Float, D::Null),
    f("remaining_to_goal", K::Float, D::Null),
    f("current_streak", K::Plain, D::Int(0)),
    f("longest_streak", K::Plain, D::Int(0)),
    f("target_streak", K::Plain, D::Null),
    f("average_value", K::Float, D::Null),
    f("days_over_limit", K::Plain, D::Null),
    f("trend", K::Plain, D::Str("stable")),
    f("projected_completion", K::Time, D::Null),
    f("success_rate", K::Float, D::Float(0.0)),
];

pub const GOAL_CONTEXT: &[Field] = &[
    f("motivation", K::Plain, D::Null),
    f("importance_level", K::Plain, D::Int(3)),
    f("supporting_goals", K::Plain, D::EmptyList),
    f("conflicting_goals", K::Plain, D::EmptyList),
    f("obstacles", K::Plain, D::EmptyList),
    f("success_factors", K::Plain, D::EmptyList),
    f("preferred_activities", K::Plain, D::EmptyList),
    f("avoid_activities", K::Plain, D::EmptyList),
];

pub const MILESTONE_REWARD: &[Field] = &[
    f("value", K::Float, D::Null),
    f("reward", K::Plain, D::Null),
    f("unlocked_at", K::Time, D::Null),
];

pub const REWARDS: &[Field] = &[
    f("points_per_activity", K::Plain, D::Int(10)),
    f(
        "milestone_rewards",
        K::List(&K::Object(MILESTONE_REWARD)),
        D::EmptyList,
    ),
    f("badges", K::Plain, D::EmptyList),
];

pub const GOAL: &[Field] = &[
    f("goal_id", K::Plain, D::Null),
    f("user_id", K::Plain, D::Null),
    f("title", K::Plain, D::Null),
    f("description", K::Plain, D::Null),
    f("category", K::Plain, D::Null),
    f("icon", K::Plain, D::Null),
    f("color", K::Plain, D::Null),
    f("goal_pattern", K::Plain, D::Null),
    f("target", K::Object(TARGET), D::EmptyMap),
    f("schedule", K::Object(SCHEDULE), D::Null),
    f("progress", K::Object(PROGRESS), D::EmptyMap),
    f("context", K::Object(GOAL_CONTEXT), D::MapIfAbsent),
    f("rewards", K::Object(REWARDS), D::MapIfAbsent),
    f("status", K::Plain, D::Str("draft")),
    f("visibility", K::Plain, D::Str("private")),
    f("created_at", K::Time, D::Null),
    f("updated_at", K::Time, D::Null),
    f("completed_at", K::Time, D::Null),
    f("metadata", K::Verbatim, D::EmptyMap),
    f("is_journal_linked", K::Plain, D::Bool(false)),
];

pub const LOCATION: &[Field] = &[
    f("type", K::Plain, D::Null),
    f("city", K::Plain, D::Null),
    f("coordinates", K::List(&K::Float), D::Null),
];

pub const WEATHER: &[Field] = &[
    f("condition", K::Plain, D::Null),
    f("temperature", K::Float, D::Null),
    f("humidity", K::Float, D::Null),
];

pub const ACTIVITY_CONTEXT: &[Field] = &[
    f("time_of_day", K::Plain, D::Null),
    f("day_of_week", K::Plain, D::Null),
    f("is_weekend", K::Plain, D::Null),
    f("is_holiday", K::Plain, D::Bool(false)),
    f("weather", K::Object(WEATHER), D::Null),
    f("energy_level", K::Plain, D::Null),
    f("sleep_hours", K::Float, D::Null),
    f("stress_level", K::Plain, D::Null),
    f("with_others", K::Plain, D::Bool(false)),
    f("social_context", K::Plain, D::Null),
    f("previous_activity", K::Plain, D::Null),
    f("next_activity", K::Plain, D::Null),
    f("duration", K::Plain, D::Null),
    f("difficulty", K::Plain, D::Null),
    f("enjoyment", K::Plain, D::Null),
    f("mood", K::Plain, D::Null),
];

pub const ATTACHMENT: &[Field] = &[
    f("type", K::Plain, D::Null),
    f("url", K::Plain, D::Null),
    f("entity_id", K::Plain, D::Null),
];

pub const ACTIVITY: &[Field] = &[
    f("activity_id", K::Plain, D::Null),
    f("goal_id", K::Plain, D::Null),
    f("user_id", K::Plain, D::Null),
    f("value", K::Float, D::Float(0.0)),
    f("unit", K::Plain, D::Null),
    f("activity_type", K::Plain, D::Str("progress")),
    f("activity_date", K::Time, D::Null),
    f("logged_at", K::Time, D::Null),
    f("timezone", K::Plain, D::Str("UTC")),
    f("location", K::Object(LOCATION), D::Null),
    f("context", K::Object(ACTIVITY_CONTEXT), D::Null),
    f("note", K::Plain, D::Null),
    f("attachments", K::List(&K::Object(ATTACHMENT)), D::EmptyList),
    f("source", K::Plain, D::Str("manual")),
    f("device_info", K::Verbatim, D::Null),
];

/// A goal.
pub fn goal(goal: &goalstore::Goal, mode: Mode) -> Json {
    model(goal, GOAL, mode)
}

/// An activity.
pub fn activity(activity: &goalstore::Activity, mode: Mode) -> Json {
    model(activity, ACTIVITY, mode)
}

/// A goal's progress.
pub fn progress(progress: &goalstore::Progress, mode: Mode) -> Json {
    model(progress, PROGRESS, mode)
}

/// Any serializable model, re-shaped by `fields`.
pub fn model(value: &impl Serialize, fields: &'static [Field], mode: Mode) -> Json {
    // The SDK's models serialize to JSON infallibly (string keys); Null answers all defaults.
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    let value = if value.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        value
    };
    render(&value, Kind::Object(fields), mode)
}

/// `value` re-shaped as `kind`.
pub fn render(value: &Value, kind: Kind, mode: Mode) -> Json {
    match (kind, value) {
        (_, Value::Null) => Json::Null,
        (Kind::Float, Value::Number(n)) => n.as_f64().map_or(Json::Null, Json::float),
        (Kind::Time, Value::String(text)) => Json::String(time(text, mode)),
        (Kind::TargetDate, Value::String(text)) => Json::String(target_date(text, mode)),
        (Kind::Object(fields), Value::Object(map)) => {
            let mut out = Json::object();
            for field in fields {
                let found = map
                    .get(field.name)
                    .or_else(|| map.get(&camel_case_key(field.name)));
                let rendered = match (found, field.fallback) {
                    (Some(Value::Null), D::Null | D::MapIfAbsent) => Json::Null,
                    (Some(Value::Null), fallback) | (None, fallback) => {
                        fallback_value(fallback, field.kind, mode)
                    }
                    (Some(value), _) => render(value, field.kind, mode),
                };
                out.push(camel_case_key(field.name), rendered);
            }
            out
        }
        (Kind::List(item), Value::Array(items)) => {
            Json::Array(items.iter().map(|v| render(v, *item, mode)).collect())
        }
        (Kind::Verbatim, value) => Json::from(value.clone()),
        // A value that is not of its expected shape (data we only read): passed through, with
        // its keys camelCased.
        (_, value) => camel_case_value(value),
    }
}

fn fallback_value(fallback: Fallback, kind: Kind, mode: Mode) -> Json {
    match fallback {
        D::Null => Json::Null,
        D::Int(n) => Json::Number(n.into()),
        D::Float(x) => Json::float(x),
        D::Bool(b) => Json::Bool(b),
        D::Str(s) => Json::from(s),
        D::EmptyList => Json::Array(Vec::new()),
        D::EmptyMap | D::MapIfAbsent => match kind {
            Kind::Verbatim => Json::object(),
            kind => render(&Value::Object(serde_json::Map::new()), kind, mode),
        },
    }
}

/// Every key camelCased, recursively.
pub fn camel_case_value(value: &Value) -> Json {
    match value {
        Value::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (camel_case_key(k), camel_case_value(v)))
                .collect(),
        ),
        Value::Array(items) => Json::Array(items.iter().map(camel_case_value).collect()),
        other => Json::from(other.clone()),
    }
}

/// Parses an ISO-8601 datetime with or without an offset (naive means UTC).
fn parse(text: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at);
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().fixed_offset());
        }
    }
    if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(at);
    }
    None
}

/// `2025-01-05T10:00:00.123456` or `2025-01-05 10:00:00` (no fraction at 0 µs).
fn clock(at: &DateTime<FixedOffset>, separator: char) -> String {
    let micros = at.nanosecond() / 1_000 % 1_000_000;
    let base = format!(
        "{}{separator}{}",
        at.format("%Y-%m-%d"),
        at.format("%H:%M:%S")
    );
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}")
    }
}

/// A UTC datetime: J `…Z`, S `… …+00:00`. Unparseable text is answered as stored.
pub fn time(text: &str, mode: Mode) -> String {
    let Some(at) = parse(text) else {
        return text.to_owned();
    };
    let utc = at.with_timezone(&Utc).fixed_offset();
    match mode {
        Mode::J => format!("{}Z", clock(&utc, 'T')),
        Mode::S => format!("{}+00:00", clock(&utc, ' ')),
    }
}

/// `target.target_date`, keeping its offset: J `…T…+02:00`, S `… …+02:00`.
pub fn target_date(text: &str, mode: Mode) -> String {
    let Some(at) = parse(text) else {
        return text.to_owned();
    };
    let offset = at.format("%:z");
    match mode {
        Mode::J => format!("{}{offset}", clock(&at, 'T')),
        Mode::S => format!("{}{offset}", clock(&at, ' ')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored_goal() -> Value {
        json!({
            "goal_id": "g-1", "user_id": "u-1", "title": "Run", "description": null,
            "category": "fitness", "icon": null, "color": null, "goal_pattern": "milestone",
            "target": {"metric": "distance", "value": 100, "unit": "km",
                       "target_date": "2030-03-01T00:00:00+02:00", "direction": "increase"},
            "schedule": {"frequency": null, "check_in_frequency": "weekly"},
            "progress": {"percent_complete": 0.0, "period_history": [], "current_streak": 0,
                         "longest_streak": 0, "trend": null, "success_rate": null},
            "context": null,
            "status": "active", "visibility": "private",
            "created_at": "2025-01-05T10:00:00.123456Z",
            "updated_at": "2025-01-05T10:00:00+00:00",
            "completed_at": null, "archived_at": "2025-02-01T00:00:00Z",
            "metadata": {"my_key": 1}, "is_journal_linked": false
        })
    }

    fn keys(json: &Json) -> Vec<String> {
        match json {
            Json::Object(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn goals_render_every_key_in_model_order_in_j_mode() {
        let json = render(&stored_goal(), Kind::Object(GOAL), Mode::J);
        assert_eq!(
            keys(&json),
            [
                "goalId",
                "userId",
                "title",
                "description",
                "category",
                "icon",
                "color",
                "goalPattern",
                "target",
                "schedule",
                "progress",
                "context",
                "rewards",
                "status",
                "visibility",
                "createdAt",
                "updatedAt",
                "completedAt",
                "metadata",
                "isJournalLinked"
            ]
        );
        let value = json.to_value();
        assert_eq!(value["createdAt"], "2025-01-05T10:00:00.123456Z");
        assert_eq!(value["updatedAt"], "2025-01-05T10:00:00Z");
        assert_eq!(value["target"]["targetDate"], "2030-03-01T00:00:00+02:00");
        assert_eq!(value["target"]["targetType"], "exact");
        assert_eq!(value["target"]["minValue"], Value::Null);
        assert_eq!(value["schedule"]["checkInFrequency"], "weekly");
        assert_eq!(value["schedule"]["catchUpAllowed"], true);
        assert_eq!(value["schedule"]["daysOfWeek"], Value::Null);
        assert_eq!(value["progress"]["trend"], "stable");
        assert_eq!(value["progress"]["successRate"], 0.0);
        assert_eq!(
            value["context"],
            Value::Null,
            "a stored NULL context stays null"
        );
        assert_eq!(
            value["rewards"]["pointsPerActivity"], 10,
            "absent: the defaults"
        );
        assert_eq!(value["metadata"], json!({"my_key": 1}), "metadata verbatim");
        assert!(value.get("archivedAt").is_none());
        let text = json.to_text();
        assert!(text.contains(r#""value":100.0"#), "{text}");
        assert!(text.contains(r#""percentComplete":0.0"#), "{text}");
    }

    #[test]
    fn s_mode_writes_space_separated_datetimes_with_offsets() {
        let value = render(&stored_goal(), Kind::Object(GOAL), Mode::S).to_value();
        assert_eq!(value["createdAt"], "2025-01-05 10:00:00.123456+00:00");
        assert_eq!(value["updatedAt"], "2025-01-05 10:00:00+00:00");
        assert_eq!(value["target"]["targetDate"], "2030-03-01 00:00:00+02:00");
        assert_eq!(
            time("2025-01-05T12:00:00+02:00", Mode::S),
            "2025-01-05 10:00:00+00:00"
        );
        assert_eq!(time("2025-01-05T10:00:00", Mode::J), "2025-01-05T10:00:00Z");
        assert_eq!(
            target_date("2030-03-01T00:00:00Z", Mode::J),
            "2030-03-01T00:00:00+00:00"
        );
        assert_eq!(time("not a time", Mode::J), "not a time");
    }

    #[test]
    fn activities_render_nested_models_and_defaults() {
        let stored = json!({
            "activity_id": "a-1", "goal_id": "g-1", "user_id": "u-1", "value": 3,
            "unit": "km", "activity_type": "progress",
            "activity_date": "2025-01-05T00:00:00Z", "logged_at": "2025-01-05T10:00:00.5Z",
            "timezone": null,
            "location": {"type": "gym"},
            "context": {"time_of_day": "night", "weather": {"condition": "sun", "temperature": 20, "humidity": 40}},
            "note": null, "attachments": null, "source": "manual", "device_info": null
        });
        let json = render(&stored, Kind::Object(ACTIVITY), Mode::J);
        let value = json.to_value();
        assert_eq!(value["value"], 3.0);
        assert_eq!(value["timezone"], "UTC");
        assert_eq!(value["loggedAt"], "2025-01-05T10:00:00.500000Z");
        assert_eq!(
            value["location"],
            json!({"type": "gym", "city": null, "coordinates": null})
        );
        assert_eq!(value["context"]["timeOfDay"], "night");
        assert_eq!(value["context"]["isHoliday"], false);
        assert_eq!(value["context"]["weather"]["temperature"], 20.0);
        assert_eq!(value["attachments"], json!([]));
        assert_eq!(value["deviceInfo"], Value::Null);
        assert!(json.to_text().contains(r#""temperature":20.0"#));
        let s = render(&stored, Kind::Object(ACTIVITY), Mode::S).to_value();
        assert_eq!(s["activityDate"], "2025-01-05 00:00:00+00:00");
    }

    #[test]
    fn the_sdk_models_render_through_their_serde_form() {
        let progress = progress(&goalstore::Progress::default(), Mode::S).to_value();
        assert_eq!(progress["percentComplete"], 0.0);
        assert_eq!(progress["periodHistory"], json!([]));
        assert_eq!(progress["trend"], "stable");
        assert_eq!(progress.as_object().map(|m| m.len()), Some(PROGRESS.len()));
    }
}
