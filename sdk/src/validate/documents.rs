//! The shapes of the free-form maps the existing goal handlers validate on every read: a goal's
//! `schedule`, `context` and `rewards`, an activity's `location`, `context`, `attachments` and
//! `device_info` (ORIGIN §1.3.2, §1.3.4, §1.4).
//!
//! goalstore carries these as [`Document`]s (JSON text it does not look inside on reads). Before
//! one is written, [`normalize`] checks it against its shape and returns the form the existing
//! handlers read: snake_case keys (a caller may send camelCase, as their API takes it), every
//! field that has a default filled in, integers as integers. Keys the shape does not know are
//! kept: their readers ignore unknown keys.
//!
//! What this module deliberately does not do: coerce types (a `"3"` for an int is refused, though
//! their readers would coerce it), or look at `metadata` beyond requiring a map.

use crate::error::{Error, Result};
use crate::model::Document;
use serde_json::{Map, Value};

/// What one field of a document holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A string of `min..=max` characters.
    Text {
        min: usize,
        max: usize,
    },
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A finite number in `min..=max`.
    Number {
        min: f64,
        max: f64,
    },
    /// Any finite number.
    AnyNumber,
    Bool,
    /// One of these strings, exactly.
    Enum(&'static [&'static str]),
    /// A list of strings.
    Texts,
    /// A list of integers in `min..=max`.
    Ints {
        min: i64,
        max: i64,
    },
    /// A list of `hh:mm` times (two integers split on `:`, hour 0–23, minute 0–59).
    Times,
    /// A list of exactly `len` numbers.
    Numbers {
        len: usize,
    },
    /// A map of this shape.
    Map(&'static [Field]),
    /// A list of maps of this shape.
    Maps(&'static [Field]),
    /// A map of strings to strings.
    StringMap,
}

/// What a field may be when absent or NULL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Absent {
    /// Must be present and not NULL.
    Required,
    /// May be NULL or absent (written as NULL).
    Null,
    /// Filled with this value when absent; NULL is refused (their readers refuse it).
    Default(fn() -> Value),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub absent: Absent,
}

const fn field(name: &'static str, kind: Kind, absent: Absent) -> Field {
    Field { name, kind, absent }
}

const FREQUENCIES: &[&str] = &["daily", "weekly", "monthly", "custom"];

fn daily() -> Value {
    Value::from("daily")
}
fn yes() -> Value {
    Value::Bool(true)
}
fn no() -> Value {
    Value::Bool(false)
}
fn three() -> Value {
    Value::from(3)
}
fn ten() -> Value {
    Value::from(10)
}
fn empty_list() -> Value {
    Value::Array(Vec::new())
}

/// A goal's schedule (ORIGIN §1.3.2).
pub(crate) const SCHEDULE: &[Field] = &[
    field("frequency", Kind::Enum(FREQUENCIES), Absent::Null),
    field("days_of_week", Kind::Ints { min: 0, max: 6 }, Absent::Null),
    field("preferred_times", Kind::Times, Absent::Null),
    field(
        "check_in_frequency",
        Kind::Enum(FREQUENCIES),
        Absent::Default(daily),
    ),
    field(
        "allow_skip_days",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        Absent::Null,
    ),
    field("catch_up_allowed", Kind::Bool, Absent::Default(yes)),
];

/// A goal's context (ORIGIN §1.3.4).
pub(crate) const GOAL_CONTEXT: &[Field] = &[
    field("motivation", Kind::Text { min: 0, max: 500 }, Absent::Null),
    field(
        "importance_level",
        Kind::Int { min: 1, max: 5 },
        Absent::Default(three),
    ),
    field("supporting_goals", Kind::Texts, Absent::Default(empty_list)),
    field(
        "conflicting_goals",
        Kind::Texts,
        Absent::Default(empty_list),
    ),
    field("obstacles", Kind::Texts, Absent::Default(empty_list)),
    field("success_factors", Kind::Texts, Absent::Default(empty_list)),
    field(
        "preferred_activities",
        Kind::Texts,
        Absent::Default(empty_list),
    ),
    field("avoid_activities", Kind::Texts, Absent::Default(empty_list)),
];

const MILESTONE_REWARD: &[Field] = &[
    field("value", Kind::AnyNumber, Absent::Required),
    field(
        "reward",
        Kind::Text {
            min: 0,
            max: usize::MAX,
        },
        Absent::Required,
    ),
    field(
        "unlocked_at",
        Kind::Text {
            min: 0,
            max: usize::MAX,
        },
        Absent::Null,
    ),
];

/// A goal's rewards (ORIGIN §1.3.4).
pub(crate) const REWARDS: &[Field] = &[
    field(
        "points_per_activity",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        Absent::Default(ten),
    ),
    field(
        "milestone_rewards",
        Kind::Maps(MILESTONE_REWARD),
        Absent::Default(empty_list),
    ),
    field("badges", Kind::Texts, Absent::Default(empty_list)),
];

/// An activity's location (ORIGIN §1.4).
pub(crate) const LOCATION: &[Field] = &[
    field(
        "type",
        Kind::Enum(&["home", "work", "gym", "outdoors", "travel"]),
        Absent::Required,
    ),
    field(
        "city",
        Kind::Text {
            min: 0,
            max: usize::MAX,
        },
        Absent::Null,
    ),
    field("coordinates", Kind::Numbers { len: 2 }, Absent::Null),
];

const WEATHER: &[Field] = &[
    field(
        "condition",
        Kind::Text {
            min: 0,
            max: usize::MAX,
        },
        Absent::Required,
    ),
    field("temperature", Kind::AnyNumber, Absent::Required),
    field("humidity", Kind::AnyNumber, Absent::Required),
];

const FREE_TEXT: Kind = Kind::Text {
    min: 0,
    max: usize::MAX,
};

/// An activity's context (ORIGIN §1.4).
pub(crate) const ACTIVITY_CONTEXT: &[Field] = &[
    field(
        "time_of_day",
        Kind::Enum(&["early-morning", "morning", "afternoon", "evening", "night"]),
        Absent::Null,
    ),
    field("day_of_week", FREE_TEXT, Absent::Null),
    field("is_weekend", Kind::Bool, Absent::Null),
    field("is_holiday", Kind::Bool, Absent::Default(no)),
    field("weather", Kind::Map(WEATHER), Absent::Null),
    field("energy_level", Kind::Int { min: 1, max: 10 }, Absent::Null),
    field(
        "sleep_hours",
        Kind::Number {
            min: 0.0,
            max: 24.0,
        },
        Absent::Null,
    ),
    field("stress_level", Kind::Int { min: 1, max: 10 }, Absent::Null),
    field("with_others", Kind::Bool, Absent::Default(no)),
    field(
        "social_context",
        Kind::Enum(&["alone", "partner", "friends", "group", "online"]),
        Absent::Null,
    ),
    field("previous_activity", FREE_TEXT, Absent::Null),
    field("next_activity", FREE_TEXT, Absent::Null),
    field(
        "duration",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        Absent::Null,
    ),
    field("difficulty", Kind::Int { min: 1, max: 5 }, Absent::Null),
    field("enjoyment", Kind::Int { min: 1, max: 5 }, Absent::Null),
    field("mood", Kind::Text { min: 0, max: 50 }, Absent::Null),
];

/// One attachment of an activity (ORIGIN §1.4).
pub(crate) const ATTACHMENT: &[Field] = &[
    field(
        "type",
        Kind::Enum(&["image", "link", "reference"]),
        Absent::Required,
    ),
    field("url", FREE_TEXT, Absent::Required),
    field("entity_id", FREE_TEXT, Absent::Null),
];

/// `doc` checked against the map shape `fields` and in the form the existing handlers read.
/// `path` names the document in errors (`context`, `schedule`, ...).
pub(crate) fn normalize(path: &'static str, doc: &Document, fields: &[Field]) -> Result<Document> {
    let value = doc.to_value();
    let mut at = Path::new(path);
    let map = normalize_map(&mut at, value, fields)?;
    Ok(Document::from(Value::Object(map)))
}

/// `doc` as a list of maps of shape `fields`, normalized.
pub(crate) fn normalize_list(
    path: &'static str,
    doc: &Document,
    fields: &[Field],
) -> Result<Document> {
    let mut at = Path::new(path);
    let Value::Array(items) = doc.to_value() else {
        return Err(at.invalid("must be a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        at.push(index.to_string());
        out.push(Value::Object(normalize_map(&mut at, item, fields)?));
        at.pop();
    }
    Ok(Document::from(Value::Array(out)))
}

/// `doc` as a map of strings to strings (an activity's `device_info`).
pub(crate) fn string_map(path: &'static str, doc: &Document) -> Result<Document> {
    let mut at = Path::new(path);
    check(&mut at, Kind::StringMap, doc.to_value()).map(Document::from)
}

/// `doc` as a map (a goal's `metadata`: any values).
pub(crate) fn any_map(path: &'static str, doc: &Document) -> Result<()> {
    if doc.is_object() {
        Ok(())
    } else {
        Err(Path::new(path).invalid("must be a map"))
    }
}

/// The dotted path of the value being checked, for errors.
struct Path {
    parts: Vec<String>,
}

impl Path {
    fn new(root: &str) -> Self {
        Self {
            parts: vec![root.to_owned()],
        }
    }

    fn push(&mut self, part: String) {
        self.parts.push(part);
    }

    fn pop(&mut self) {
        self.parts.pop();
    }

    fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::invalid_at(self.parts.join("."), reason)
    }
}

/// snake_case of a camelCase key (`importanceLevel` → `importance_level`).
pub(crate) fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn normalize_map(at: &mut Path, value: Value, fields: &[Field]) -> Result<Map<String, Value>> {
    let Value::Object(input) = value else {
        return Err(at.invalid("must be a map"));
    };
    // snake_case every key; a key given both ways is ambiguous.
    let mut given = Map::new();
    for (key, value) in input {
        let snake = snake_case(&key);
        if given.contains_key(&snake) {
            at.push(snake);
            return Err(at.invalid("is given twice (camelCase and snake_case)"));
        }
        given.insert(snake, value);
    }
    let mut out = Map::new();
    for field in fields {
        at.push(field.name.to_owned());
        let value = match (given.remove(field.name), field.absent) {
            (None | Some(Value::Null), Absent::Required) => {
                return Err(at.invalid("is required"));
            }
            (None | Some(Value::Null), Absent::Null) => Value::Null,
            (None, Absent::Default(default)) => default(),
            (Some(Value::Null), Absent::Default(_)) => {
                return Err(at.invalid("must not be null"));
            }
            (Some(value), _) => check(at, field.kind, value)?,
        };
        at.pop();
        out.insert(field.name.to_owned(), value);
    }
    // Keys the shape does not know: kept, their readers ignore them.
    out.extend(given);
    Ok(out)
}

/// `value` checked against `kind`, in its canonical form.
fn check(at: &mut Path, kind: Kind, value: Value) -> Result<Value> {
    match kind {
        Kind::Text { min, max } => {
            let Value::String(text) = value else {
                return Err(at.invalid("must be a string"));
            };
            let length = text.chars().count();
            if length < min || length > max {
                return Err(at.invalid(length_rule(length, min, max)));
            }
            Ok(Value::String(text))
        }
        Kind::Int { min, max } => integer(at, &value, min, max).map(Value::from),
        Kind::Number { min, max } => {
            let n = number(at, &value)?;
            if n < min || n > max {
                return Err(at.invalid(format!("must be between {min} and {max}")));
            }
            Ok(value)
        }
        Kind::AnyNumber => number(at, &value).map(|_| value),
        Kind::Bool => match value {
            Value::Bool(_) => Ok(value),
            _ => Err(at.invalid("must be true or false")),
        },
        Kind::Enum(allowed) => match &value {
            Value::String(text) if allowed.contains(&text.as_str()) => Ok(value),
            _ => Err(at.invalid(format!("must be one of {}", allowed.join(", ")))),
        },
        Kind::Texts => each(at, value, |at, item| check(at, FREE_TEXT, item)),
        Kind::Ints { min, max } => each(at, value, |at, item| {
            integer(at, &item, min, max).map(Value::from)
        }),
        Kind::Times => each(at, value, |at, item| {
            let Value::String(text) = &item else {
                return Err(at.invalid("must be a time `hh:mm`"));
            };
            if !is_time(text) {
                return Err(at.invalid(format!(
                    "`{text}` is not a time `hh:mm` (hour 0-23, minute 0-59)"
                )));
            }
            Ok(item)
        }),
        Kind::Numbers { len } => {
            let list = each(at, value, |at, item| number(at, &item).map(|_| item))?;
            match &list {
                Value::Array(items) if items.len() == len => Ok(list),
                _ => Err(at.invalid(format!("must hold exactly {len} numbers"))),
            }
        }
        Kind::Map(fields) => normalize_map(at, value, fields).map(Value::Object),
        Kind::Maps(fields) => each(at, value, |at, item| {
            normalize_map(at, item, fields).map(Value::Object)
        }),
        Kind::StringMap => {
            let Value::Object(map) = value else {
                return Err(at.invalid("must be a map of strings"));
            };
            for (key, item) in &map {
                if !item.is_string() {
                    at.push(key.clone());
                    return Err(at.invalid("must be a string"));
                }
            }
            Ok(Value::Object(map))
        }
    }
}

fn each(
    at: &mut Path,
    value: Value,
    mut item: impl FnMut(&mut Path, Value) -> Result<Value>,
) -> Result<Value> {
    let Value::Array(items) = value else {
        return Err(at.invalid("must be a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, value) in items.into_iter().enumerate() {
        at.push(index.to_string());
        out.push(item(at, value)?);
        at.pop();
    }
    Ok(Value::Array(out))
}

fn number(at: &Path, value: &Value) -> Result<f64> {
    value
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| at.invalid("must be a number"))
}

/// An integer: a JSON integer, or a number with no fraction (`3.0`, as their readers take it).
fn integer(at: &Path, value: &Value, min: i64, max: i64) -> Result<i64> {
    let n = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
    .ok_or_else(|| at.invalid("must be a whole number"))?;
    if n < min || n > max {
        return Err(at.invalid(match (min, max) {
            (min, i64::MAX) => format!("must be at least {min}"),
            (min, max) => format!("must be between {min} and {max}"),
        }));
    }
    Ok(n)
}

fn is_time(text: &str) -> bool {
    let mut parts = text.split(':');
    let (Some(hour), Some(minute), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let in_range = |part: &str, max: u32| {
        part.trim()
            .parse::<i64>()
            .is_ok_and(|n| (0..=i64::from(max)).contains(&n))
    };
    in_range(hour, 23) && in_range(minute, 59)
}

/// The rule a length broke, e.g. "is 201 characters long; at most 200".
pub(crate) fn length_rule(length: usize, min: usize, max: usize) -> String {
    if length < min {
        if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("is {length} characters long; at least {min}")
        }
    } else {
        format!("is {length} characters long; at most {max}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Document {
        Document::from(value)
    }

    fn reason(error: Error) -> (String, String) {
        match error {
            Error::InvalidArgument { field, reason } => (field.to_string(), reason),
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    #[test]
    fn a_goal_context_gets_snake_case_keys_and_every_default() {
        let given = doc(json!({"importanceLevel": 5, "motivation": "health", "mine": 1}));
        let out = normalize("context", &given, GOAL_CONTEXT)
            .expect("valid")
            .to_value();
        assert_eq!(out["importance_level"], 5);
        assert_eq!(out["motivation"], "health");
        assert_eq!(out["obstacles"], json!([]));
        assert_eq!(out["avoid_activities"], json!([]));
        assert_eq!(out["mine"], 1, "unknown keys are kept");
        assert!(out.get("importanceLevel").is_none());
        let empty = normalize("context", &doc(json!({})), GOAL_CONTEXT)
            .expect("valid")
            .to_value();
        assert_eq!(empty["importance_level"], 3);
    }

    #[test]
    fn out_of_range_and_wrong_types_name_the_field() {
        let cases = [
            (
                json!({"importanceLevel": 7}),
                GOAL_CONTEXT,
                "context.importance_level",
            ),
            (
                json!({"importance_level": 2.5}),
                GOAL_CONTEXT,
                "context.importance_level",
            ),
            (
                json!({"importance_level": null}),
                GOAL_CONTEXT,
                "context.importance_level",
            ),
            (
                json!({"obstacles": ["a", 1]}),
                GOAL_CONTEXT,
                "context.obstacles.1",
            ),
            (
                json!({"motivation": "m".repeat(501)}),
                GOAL_CONTEXT,
                "context.motivation",
            ),
        ];
        for (value, fields, expected) in cases {
            let error = normalize("context", &doc(value.clone()), fields)
                .expect_err(&format!("{value} is refused"));
            assert_eq!(reason(error).0, expected, "{value}");
        }
        let error = normalize(
            "context",
            &doc(json!({"energyLevel": 11})),
            ACTIVITY_CONTEXT,
        )
        .expect_err("energy 11");
        assert_eq!(reason(error).0, "context.energy_level");
        let error = normalize(
            "context",
            &doc(json!({"weather": {"condition": "sun", "temperature": 20}})),
            ACTIVITY_CONTEXT,
        )
        .expect_err("weather without humidity");
        assert_eq!(reason(error).0, "context.weather.humidity");
        let error = normalize("location", &doc(json!({"type": "moon"})), LOCATION)
            .expect_err("unknown location type");
        assert_eq!(reason(error).0, "location.type");
        let error = normalize(
            "location",
            &doc(json!({"type": "gym", "coordinates": [1.0]})),
            LOCATION,
        )
        .expect_err("one coordinate");
        assert_eq!(reason(error).0, "location.coordinates");
        let error = string_map("device_info", &doc(json!({"os": 17}))).expect_err("a number");
        assert_eq!(reason(error).0, "device_info.os");
        assert!(normalize("context", &doc(json!([1])), GOAL_CONTEXT).is_err());
    }

    #[test]
    fn schedules_check_days_and_times_and_fill_defaults() {
        let out = normalize(
            "schedule",
            &doc(json!({"frequency": "weekly", "daysOfWeek": [0, 6], "preferredTimes": ["7:5", "23:59"]})),
            SCHEDULE,
        )
        .expect("valid")
        .to_value();
        assert_eq!(out["check_in_frequency"], "daily");
        assert_eq!(out["catch_up_allowed"], true);
        assert_eq!(out["allow_skip_days"], Value::Null);
        assert_eq!(out["days_of_week"], json!([0, 6]));
        for bad in [
            json!({"daysOfWeek": [7]}),
            json!({"preferredTimes": ["24:00"]}),
            json!({"preferredTimes": ["7"]}),
            json!({"preferredTimes": ["1:2:3"]}),
            json!({"frequency": "hourly"}),
            json!({"checkInFrequency": null}),
        ] {
            assert!(
                normalize("schedule", &doc(bad.clone()), SCHEDULE).is_err(),
                "{bad} is refused"
            );
        }
    }

    #[test]
    fn rewards_and_attachments_have_their_shapes() {
        let out = normalize("rewards", &doc(json!({})), REWARDS)
            .expect("valid")
            .to_value();
        assert_eq!(
            out,
            json!({"points_per_activity": 10, "milestone_rewards": [], "badges": []})
        );
        let list = normalize_list(
            "attachments",
            &doc(json!([{"type": "link", "url": "https://example.com", "entityId": "e1"}])),
            ATTACHMENT,
        )
        .expect("valid")
        .to_value();
        assert_eq!(list[0]["entity_id"], "e1");
        let error = normalize_list("attachments", &doc(json!([{"type": "link"}])), ATTACHMENT)
            .expect_err("no url");
        assert_eq!(reason(error).0, "attachments.0.url");
    }

    #[test]
    fn snake_case_of_camel_case() {
        assert_eq!(snake_case("importanceLevel"), "importance_level");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("x"), "x");
    }
}
