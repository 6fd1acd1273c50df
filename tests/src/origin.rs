//! The origin reader: the existing Python goal handlers' read rules (ORIGIN.md §1), applied to
//! DynamoDB items as they sit in the table, so a test can tell whether those handlers would read
//! every item goalstore left there.
//!
//! It is written from the spec on purpose, apart from goalstore's own `validate` module: an
//! independent reader, so a mistake in one is caught by the other. Like their models it is lax
//! where pydantic is (numbers as numeric strings, `"true"` for a bool, a whole float for an int)
//! and strict where it is (NULL where a value is required, enums, lengths, ranges, a pattern's
//! period or target date).
//!
//! Which items it reads, as their queries do (ORIGIN §1.6): every item whose `sk` starts with
//! `GOAL#` as a goal and with `ACTIVITY#` as an activity; any other item must stay out of the
//! shared `STATUS#active` index partition.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One item of the table.
pub type Item = HashMap<String, AttributeValue>;

/// What one field holds, as their models check it.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// A string of `min..=max` characters.
    Str(usize, usize),
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// A `#` and six hex digits.
    Color,
    /// A number, with optional bounds: `(greater than, at least, at most)`.
    Float(Option<f64>, Option<f64>, Option<f64>),
    /// A whole number in `min..=max`.
    Int(i64, i64),
    Bool,
    /// An ISO-8601 date and time (`Z`, an offset, or none).
    DateTime,
    /// A list of strings.
    Strs,
    /// A list of whole numbers in `min..=max`.
    Ints(i64, i64),
    /// A list of `h:m` times.
    Times,
    /// A list of exactly two numbers.
    Pair,
    /// A map of this shape.
    Map(&'static [F]),
    /// A list of maps of this shape.
    Maps(&'static [F]),
    /// A map of anything.
    AnyMap,
    /// A map of strings to strings.
    StrMap,
}

/// NULL and absence, per field: `(null is accepted, absence is accepted)`.
#[derive(Debug, Clone, Copy)]
struct F {
    name: &'static str,
    ty: Ty,
    null_ok: bool,
    absent_ok: bool,
}

/// Required: neither NULL nor absent.
const fn req(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        null_ok: false,
        absent_ok: false,
    }
}
/// Optional: NULL or absent is fine.
const fn opt(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        null_ok: true,
        absent_ok: true,
    }
}
/// Has a default: absent is fine, NULL is refused.
const fn def(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        null_ok: false,
        absent_ok: true,
    }
}

const ANY_TEXT: Ty = Ty::Str(0, usize::MAX);
const NUMBER: Ty = Ty::Float(None, None, None);
const PATTERNS: &[&str] = &["recurring", "milestone", "target", "streak", "limit"];
const FREQUENCIES: &[&str] = &["daily", "weekly", "monthly", "custom"];

const TARGET: &[F] = &[
    req(
        "metric",
        Ty::Enum(&[
            "count", "duration", "amount", "weight", "distance", "calories", "money", "custom",
        ]),
    ),
    req("value", Ty::Float(Some(0.0), None, None)),
    req("unit", Ty::Str(1, 50)),
    opt(
        "period",
        Ty::Enum(&["day", "week", "month", "quarter", "year"]),
    ),
    opt("target_date", Ty::DateTime),
    opt("start_value", NUMBER),
    opt("current_value", NUMBER),
    opt("min_value", NUMBER),
    opt("max_value", NUMBER),
    req("direction", Ty::Enum(&["increase", "decrease", "maintain"])),
    def(
        "target_type",
        Ty::Enum(&["minimum", "maximum", "exact", "range"]),
    ),
];

const SCHEDULE: &[F] = &[
    opt("frequency", Ty::Enum(FREQUENCIES)),
    opt("days_of_week", Ty::Ints(0, 6)),
    opt("preferred_times", Ty::Times),
    def("check_in_frequency", Ty::Enum(FREQUENCIES)),
    opt("allow_skip_days", Ty::Int(0, i64::MAX)),
    def("catch_up_allowed", Ty::Bool),
];

const PERIOD_RECORD: &[F] = &[
    req("period", ANY_TEXT),
    req("achieved", Ty::Bool),
    req("value", NUMBER),
    req("date", Ty::DateTime),
];

const PERCENT: Ty = Ty::Float(None, Some(0.0), Some(100.0));

const PROGRESS: &[F] = &[
    def("percent_complete", PERCENT),
    opt("last_activity_date", Ty::DateTime),
    opt("current_period_value", NUMBER),
    def("period_history", Ty::Maps(PERIOD_RECORD)),
    opt("total_accumulated", NUMBER),
    opt("remaining_to_goal", NUMBER),
    def("current_streak", Ty::Int(i64::MIN, i64::MAX)),
    def("longest_streak", Ty::Int(i64::MIN, i64::MAX)),
    opt("target_streak", Ty::Int(i64::MIN, i64::MAX)),
    opt("average_value", NUMBER),
    opt("days_over_limit", Ty::Int(i64::MIN, i64::MAX)),
    def("trend", Ty::Enum(&["improving", "stable", "declining"])),
    opt("projected_completion", Ty::DateTime),
    def("success_rate", PERCENT),
];

const GOAL_CONTEXT: &[F] = &[
    opt("motivation", Ty::Str(0, 500)),
    def("importance_level", Ty::Int(1, 5)),
    def("supporting_goals", Ty::Strs),
    def("conflicting_goals", Ty::Strs),
    def("obstacles", Ty::Strs),
    def("success_factors", Ty::Strs),
    def("preferred_activities", Ty::Strs),
    def("avoid_activities", Ty::Strs),
];

const MILESTONE_REWARD: &[F] = &[
    req("value", NUMBER),
    req("reward", ANY_TEXT),
    opt("unlocked_at", Ty::DateTime),
];

const REWARDS: &[F] = &[
    def("points_per_activity", Ty::Int(0, i64::MAX)),
    def("badges", Ty::Strs),
    def("milestone_rewards", Ty::Maps(MILESTONE_REWARD)),
];

const GOAL: &[F] = &[
    req("goal_id", ANY_TEXT),
    req("user_id", ANY_TEXT),
    req("title", Ty::Str(1, 200)),
    opt("description", Ty::Str(0, 1000)),
    req("category", Ty::Str(1, 50)),
    opt("icon", Ty::Str(0, 50)),
    opt("color", Ty::Color),
    req("goal_pattern", Ty::Enum(PATTERNS)),
    req("target", Ty::Map(TARGET)),
    opt("schedule", Ty::Map(SCHEDULE)),
    def("progress", Ty::Map(PROGRESS)),
    opt("context", Ty::Map(GOAL_CONTEXT)),
    opt("rewards", Ty::Map(REWARDS)),
    def(
        "status",
        Ty::Enum(&["draft", "active", "paused", "completed", "archived"]),
    ),
    def("visibility", Ty::Enum(&["private", "friends", "public"])),
    def("created_at", Ty::DateTime),
    def("updated_at", Ty::DateTime),
    opt("completed_at", Ty::DateTime),
    def("metadata", Ty::AnyMap),
    def("is_journal_linked", Ty::Bool),
];

const LOCATION: &[F] = &[
    req(
        "type",
        Ty::Enum(&["home", "work", "gym", "outdoors", "travel"]),
    ),
    opt("city", ANY_TEXT),
    opt("coordinates", Ty::Pair),
];

const WEATHER: &[F] = &[
    req("condition", ANY_TEXT),
    req("temperature", NUMBER),
    req("humidity", NUMBER),
];

const ACTIVITY_CONTEXT: &[F] = &[
    opt(
        "time_of_day",
        Ty::Enum(&["early-morning", "morning", "afternoon", "evening", "night"]),
    ),
    opt("day_of_week", ANY_TEXT),
    opt("is_weekend", Ty::Bool),
    def("is_holiday", Ty::Bool),
    opt("weather", Ty::Map(WEATHER)),
    opt("energy_level", Ty::Int(1, 10)),
    opt("sleep_hours", Ty::Float(None, Some(0.0), Some(24.0))),
    opt("stress_level", Ty::Int(1, 10)),
    def("with_others", Ty::Bool),
    opt(
        "social_context",
        Ty::Enum(&["alone", "partner", "friends", "group", "online"]),
    ),
    opt("previous_activity", ANY_TEXT),
    opt("next_activity", ANY_TEXT),
    opt("duration", Ty::Int(1, i64::MAX)),
    opt("difficulty", Ty::Int(1, 5)),
    opt("enjoyment", Ty::Int(1, 5)),
    opt("mood", Ty::Str(0, 50)),
];

const ATTACHMENT: &[F] = &[
    req("type", Ty::Enum(&["image", "link", "reference"])),
    req("url", ANY_TEXT),
    opt("entity_id", ANY_TEXT),
];

const ACTIVITY: &[F] = &[
    req("activity_id", ANY_TEXT),
    req("goal_id", ANY_TEXT),
    req("user_id", ANY_TEXT),
    req("value", NUMBER),
    req("unit", ANY_TEXT),
    req(
        "activity_type",
        Ty::Enum(&["progress", "completed", "skipped", "partial"]),
    ),
    req("activity_date", Ty::DateTime),
    def("logged_at", Ty::DateTime),
    def("timezone", ANY_TEXT),
    opt("location", Ty::Map(LOCATION)),
    opt("context", Ty::Map(ACTIVITY_CONTEXT)),
    opt("note", Ty::Str(0, 1000)),
    def("attachments", Ty::Maps(ATTACHMENT)),
    def(
        "source",
        Ty::Enum(&["manual", "device", "integration", "import"]),
    ),
    opt("device_info", Ty::StrMap),
];

/// Why the existing handlers would fail to read `item` as a goal; empty when they read it.
pub fn goal_problems(item: &Item) -> Vec<String> {
    let mut problems = Vec::new();
    fields(&mut problems, "", item, GOAL);
    // The per-pattern rule of their Goal model (models.py:322-336).
    let pattern = text(item.get("goal_pattern"));
    let target = match item.get("target") {
        Some(AttributeValue::M(target)) => Some(target),
        _ => None,
    };
    let present = |name: &str| {
        target
            .and_then(|t| t.get(name))
            .is_some_and(|v| !matches!(v, AttributeValue::Null(_)))
    };
    match pattern.as_deref() {
        Some("recurring" | "limit") if !present("period") => {
            problems.push("target.period: a recurring or limit goal needs one".into())
        }
        Some("milestone" | "target") if !present("target_date") => {
            problems.push("target.target_date: a milestone or target goal needs one".into())
        }
        _ => {}
    }
    problems
}

/// Why the existing handlers would fail to read `item` as an activity; empty when they read it.
pub fn activity_problems(item: &Item) -> Vec<String> {
    let mut problems = Vec::new();
    fields(&mut problems, "", item, ACTIVITY);
    problems
}

/// Every item of a table the existing handlers would stumble on, with why: goals and activities
/// they cannot read, and items of other kinds where their goal queries would find them.
pub fn table_problems(items: &[Item]) -> Vec<String> {
    let mut problems = Vec::new();
    for item in items {
        let sk = text(item.get("sk")).unwrap_or_default();
        let pk = text(item.get("pk")).unwrap_or_default();
        let found = if sk.starts_with("GOAL#") {
            goal_problems(item)
        } else if sk.starts_with("ACTIVITY#") {
            let mut found = activity_problems(item);
            let goal = text(item.get("goal_id")).unwrap_or_default();
            if !sk.starts_with(&format!("ACTIVITY#{goal}#")) {
                found.push(format!("sk: not under its goal `{goal}`"));
            }
            found
        } else if text(item.get("gsi1_pk")).as_deref() == Some("STATUS#active") {
            vec!["gsi1_pk: a non-goal item in the shared STATUS#active partition".into()]
        } else {
            Vec::new()
        };
        problems.extend(found.into_iter().map(|p| format!("{pk} {sk}: {p}")));
    }
    problems
}

fn text(value: Option<&AttributeValue>) -> Option<String> {
    match value {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn fields(
    problems: &mut Vec<String>,
    path: &str,
    map: &HashMap<String, AttributeValue>,
    shape: &[F],
) {
    for field in shape {
        let at = if path.is_empty() {
            field.name.to_owned()
        } else {
            format!("{path}.{}", field.name)
        };
        match map.get(field.name) {
            None if field.absent_ok => {}
            None => problems.push(format!("{at}: required, absent")),
            Some(AttributeValue::Null(_)) if field.null_ok => {}
            Some(AttributeValue::Null(_)) => {
                problems.push(format!("{at}: NULL where a value is required"))
            }
            Some(value) => check(problems, &at, value, field.ty),
        }
    }
}

fn check(problems: &mut Vec<String>, at: &str, value: &AttributeValue, ty: Ty) {
    let mut bad = |why: String| problems.push(format!("{at}: {why}"));
    match ty {
        Ty::Str(min, max) => match value {
            AttributeValue::S(s) => {
                let n = s.chars().count();
                if n < min || n > max {
                    bad(format!("{n} characters, not {min}..={max}"));
                }
            }
            other => bad(format!("not a string: {other:?}")),
        },
        Ty::Enum(allowed) => match value {
            AttributeValue::S(s) if allowed.contains(&s.as_str()) => {}
            other => bad(format!("not one of {allowed:?}: {other:?}")),
        },
        Ty::Color => match value {
            AttributeValue::S(s)
                if s.len() == 7
                    && s.starts_with('#')
                    && s[1..].chars().all(|c| c.is_ascii_hexdigit()) => {}
            other => bad(format!("not a #rrggbb color: {other:?}")),
        },
        Ty::Float(greater, least, most) => match number(value) {
            None => bad(format!("not a number: {value:?}")),
            Some(n) => {
                if greater.is_some_and(|g| n <= g)
                    || least.is_some_and(|l| n < l)
                    || most.is_some_and(|m| n > m)
                {
                    bad(format!("{n} out of range"));
                }
            }
        },
        Ty::Int(min, max) => match number(value) {
            Some(n) if n.fract() == 0.0 => {
                if (n as i64) < min || (n as i64) > max {
                    bad(format!("{n} not in {min}..={max}"));
                }
            }
            _ => bad(format!("not a whole number: {value:?}")),
        },
        Ty::Bool => match value {
            AttributeValue::Bool(_) => {}
            AttributeValue::S(s) if matches!(s.to_lowercase().as_str(), "true" | "false") => {}
            other => bad(format!("not a bool: {other:?}")),
        },
        Ty::DateTime => match value {
            AttributeValue::S(s) if is_datetime(s) => {}
            other => bad(format!("not an ISO-8601 date and time: {other:?}")),
        },
        Ty::Strs | Ty::Ints(..) | Ty::Times | Ty::Pair | Ty::Maps(_) => {
            let AttributeValue::L(items) = value else {
                return bad(format!("not a list: {value:?}"));
            };
            if matches!(ty, Ty::Pair) && items.len() != 2 {
                return bad(format!("{} items, not 2", items.len()));
            }
            for (index, item) in items.iter().enumerate() {
                let at = format!("{at}.{index}");
                let item_ty = match ty {
                    Ty::Strs => ANY_TEXT,
                    Ty::Ints(min, max) => Ty::Int(min, max),
                    Ty::Pair => NUMBER,
                    Ty::Maps(shape) => Ty::Map(shape),
                    _ => {
                        let ok = matches!(item, AttributeValue::S(s) if is_time(s));
                        if !ok {
                            problems.push(format!("{at}: not an h:m time: {item:?}"));
                        }
                        continue;
                    }
                };
                check(problems, &at, item, item_ty);
            }
        }
        Ty::Map(shape) => match value {
            AttributeValue::M(map) => fields(problems, at, map, shape),
            other => bad(format!("not a map: {other:?}")),
        },
        Ty::AnyMap => {
            if !matches!(value, AttributeValue::M(_)) {
                bad(format!("not a map: {value:?}"));
            }
        }
        Ty::StrMap => match value {
            AttributeValue::M(map) if map.values().all(|v| matches!(v, AttributeValue::S(_))) => {}
            other => bad(format!("not a map of strings: {other:?}")),
        },
    }
}

/// A number as their readers take one: an N, or a numeric string.
fn number(value: &AttributeValue) -> Option<f64> {
    match value {
        AttributeValue::N(n) | AttributeValue::S(n) => {
            n.trim().parse::<f64>().ok().filter(|n| n.is_finite())
        }
        _ => None,
    }
}

/// A date and time pydantic 2.5 accepts: a date, `T` or a space, a time with an optional
/// fraction, and `Z`, an offset, or nothing. A date alone is refused.
fn is_datetime(text: &str) -> bool {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return true;
    }
    let normal = text.replacen(' ', "T", 1);
    chrono::DateTime::parse_from_rfc3339(&normal).is_ok()
        || chrono::NaiveDateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || chrono::NaiveDateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M").is_ok()
}

fn is_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 2
        && matches!(parts[0].trim().parse::<i64>(), Ok(h) if (0..=23).contains(&h))
        && matches!(parts[1].trim().parse::<i64>(), Ok(m) if (0..=59).contains(&m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::parse_item;

    fn fixture(name: &str) -> Vec<Item> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        value["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| parse_item(item).expect("an item"))
            .collect()
    }

    #[test]
    fn what_their_own_code_wrote_reads() {
        let items = fixture("origin-written.json");
        assert_eq!(items.len(), 11);
        assert_eq!(table_problems(&items), Vec::<String>::new());
    }

    #[test]
    fn nulls_ranges_enums_and_pattern_rules_are_refused() {
        let goal = fixture("origin-written.json")
            .into_iter()
            .find(|i| text(i.get("sk")).is_some_and(|sk| sk.starts_with("GOAL#")))
            .expect("a goal");
        type Change = Box<dyn Fn(&mut Item)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "category",
                Box::new(|i| {
                    i.insert("category".into(), AttributeValue::Null(true));
                }),
            ),
            (
                "metadata",
                Box::new(|i| {
                    i.insert("metadata".into(), AttributeValue::Null(true));
                }),
            ),
            (
                "target.direction",
                Box::new(|i| {
                    if let Some(AttributeValue::M(t)) = i.get_mut("target") {
                        t.insert("direction".into(), AttributeValue::Null(true));
                    }
                }),
            ),
            (
                "progress.success_rate",
                Box::new(|i| {
                    if let Some(AttributeValue::M(p)) = i.get_mut("progress") {
                        p.insert("success_rate".into(), AttributeValue::Null(true));
                    }
                }),
            ),
            (
                "context.importance_level",
                Box::new(|i| {
                    let mut c = HashMap::new();
                    c.insert("importance_level".into(), AttributeValue::N("7".into()));
                    i.insert("context".into(), AttributeValue::M(c));
                }),
            ),
            (
                "status",
                Box::new(|i| {
                    i.insert("status".into(), AttributeValue::S("Active".into()));
                }),
            ),
            (
                "color",
                Box::new(|i| {
                    i.insert("color".into(), AttributeValue::S("red".into()));
                }),
            ),
            (
                "target.target_date",
                Box::new(|i| {
                    i.insert("goal_pattern".into(), AttributeValue::S("milestone".into()));
                    if let Some(AttributeValue::M(t)) = i.get_mut("target") {
                        t.insert("target_date".into(), AttributeValue::Null(true));
                    }
                }),
            ),
        ];
        for (field, change) in cases {
            let mut item = goal.clone();
            change(&mut item);
            let problems = goal_problems(&item);
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{field}: {problems:?}"
            );
        }
        assert!(is_datetime("2025-01-05T10:00:00.123456Z"));
        assert!(is_datetime("2025-01-05T10:00:00+02:00"));
        assert!(is_datetime("2025-01-05T10:00:00"));
        assert!(!is_datetime("2025-01-05"));
        assert_eq!(number(&AttributeValue::S("2.5".into())), Some(2.5));
    }
}
