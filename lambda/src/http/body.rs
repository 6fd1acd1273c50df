//! Request bodies (ORIGIN §2.1, §2.2, §2.5, §3.4): JSON objects with camelCase or snake_case
//! keys, unknown keys ignored, turned into the SDK's [`NewGoal`], [`GoalUpdate`] and
//! [`NewActivity`] (which deserialize from snake_case JSON).
//!
//! Steps: parse (absent body = `{}`; invalid JSON or `null` → 400, where upstream answers 500
//! (B9); non-object → 400 with one `request` entry, or an empty list for update); keep the
//! request model's keys only (ids, `rewards` and `metadata` are dropped), snake_cased, also inside
//! target/schedule/context/location/attachments/weather; check the request model's constraints
//! that the SDK's types do not carry (required fields, lengths, ranges), collecting every failure
//! as pydantic does; deserialize with `serde_path_to_error`, whose failing path becomes the
//! camelCase `field`.

use super::errors::{camel_case_key, python_isoformat, ApiError, FieldError};
use chrono::{DateTime, NaiveDate, Utc};
use goalstore::{GoalUpdate, NewActivity, NewGoal};
use lambda_http::{Body, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Which request model a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Create,
    Update,
    Log,
}

impl Model {
    /// The request model's fields (snake_case).
    fn fields(self) -> &'static [&'static str] {
        match self {
            Model::Create => &[
                "title",
                "description",
                "category",
                "icon",
                "color",
                "goal_pattern",
                "target",
                "schedule",
                "context",
                "visibility",
                "status",
            ],
            Model::Update => &[
                "title",
                "description",
                "category",
                "icon",
                "color",
                "target",
                "schedule",
                "context",
                "visibility",
                "status",
                "is_journal_linked",
            ],
            Model::Log => &[
                "value",
                "unit",
                "activity_type",
                "activity_date",
                "location",
                "context",
                "note",
                "attachments",
                "source",
            ],
        }
    }
}

/// Objects whose keys are snake_cased too (recursively).
const NESTED: &[&str] = &[
    "target",
    "schedule",
    "context",
    "location",
    "attachments",
    "weather",
];

/// The body as a JSON object.
pub fn object(request: &Request, model: Model) -> Result<Map<String, Value>, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    parse_object(bytes, model)
}

/// [`object`] of raw bytes.
pub fn parse_object(bytes: &[u8], model: Model) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::Body(vec![FieldError::new(
            "body",
            format!("Invalid JSON: {error}"),
        )])
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(ApiError::Body(vec![FieldError::new(
            "body",
            "Request body must be a JSON object, not null",
        )])),
        _ if model == Model::Update => Err(ApiError::Body(Vec::new())),
        other => {
            // Python's TypeError of `Model(**body)` with a non-mapping body.
            let class = if model == Model::Log {
                "LogActivityRequest"
            } else {
                "CreateGoalRequest"
            };
            let kind = match other {
                Value::Array(_) => "list",
                Value::String(_) => "str",
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_f64() => "float",
                _ => "int",
            };
            Err(ApiError::Body(vec![FieldError::new(
                "request",
                format!("{class}() argument after ** must be a mapping, not {kind}"),
            )]))
        }
    }
}

/// `goalPattern` → `goal_pattern`.
pub fn snake_case_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn snake_case_nested(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(snake_case_map(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_case_nested).collect()),
        other => other,
    }
}

/// Keys snake_cased; the known nested objects too. A snake_case key wins over its camelCase
/// twin.
pub fn snake_case_map(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut camel = Vec::new();
    for (key, value) in map {
        let snake = snake_case_key(&key);
        let value = if NESTED.contains(&snake.as_str()) {
            snake_case_nested(value)
        } else {
            value
        };
        if snake == key {
            out.insert(snake, value);
        } else {
            camel.push((snake, value));
        }
    }
    for (key, value) in camel {
        out.entry(key).or_insert(value);
    }
    out
}

/// The request model's keys of `map`, snake_cased.
pub fn request_fields(map: Map<String, Value>, model: Model) -> Map<String, Value> {
    let fields = model.fields();
    snake_case_map(map)
        .into_iter()
        .filter(|(key, _)| fields.contains(&key.as_str()))
        .collect()
}

/// A pydantic-like message of a serde error.
fn message(error: &str) -> (Option<String>, String) {
    if let Some(rest) = error.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        return (Some(field), "Field required".into());
    }
    if let Some(rest) = error.split("expected one of ").nth(1) {
        let options: Vec<String> = rest
            .split(", ")
            .map(|o| o.trim_matches('`').to_owned())
            .collect();
        let text = match options.split_last() {
            Some((last, [])) => format!("'{last}'"),
            Some((last, init)) => format!(
                "{} or '{last}'",
                init.iter()
                    .map(|o| format!("'{o}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        return (None, format!("Input should be {text}"));
    }
    let expected = error.split("expected ").nth(1).unwrap_or_default();
    let text = if expected.contains("string") {
        "Input should be a valid string"
    } else if expected.contains("f64") || expected.contains("float") {
        "Input should be a valid number"
    } else if expected.contains("u32") || expected.contains("i64") || expected.contains("integer") {
        "Input should be a valid integer"
    } else if expected.contains("bool") {
        "Input should be a valid boolean"
    } else if expected.contains("sequence") {
        "Input should be a valid list"
    } else if expected.contains("struct") || expected.contains("map") {
        "Input should be a valid dictionary"
    } else {
        return (None, error.to_owned());
    };
    (None, text.to_owned())
}

/// Deserializes `map` as `T`; a failure is one `{field, message}` with the camelCase path.
fn deserialize<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|error| {
        let mut segments: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => Some(camel_case_key(key)),
                serde_path_to_error::Segment::Enum { variant } => Some(camel_case_key(variant)),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let (missing, text) = message(&error.inner().to_string());
        if let Some(missing) = missing {
            segments.push(camel_case_key(&missing));
        }
        let field = if segments.is_empty() {
            "request".to_owned()
        } else {
            segments.join(".")
        };
        FieldError::new(field, text)
    })
}

/// The constraints pydantic checks and the SDK's types do not: every failure, in field order.
#[derive(Debug, Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// A string field: required or not, with a length range.
    fn text(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        min: usize,
        max: usize,
    ) {
        let field = join(path, key);
        match map.get(key) {
            None if required => self.fail(&field, "Field required"),
            None => {}
            Some(Value::Null) if !required => {}
            Some(Value::String(text)) => {
                let length = text.chars().count();
                if length < min {
                    let s = if min == 1 { "" } else { "s" };
                    self.fail(
                        &field,
                        format!("String should have at least {min} character{s}"),
                    );
                } else if length > max {
                    self.fail(
                        &field,
                        format!("String should have at most {max} characters"),
                    );
                }
            }
            Some(_) => self.fail(&field, "Input should be a valid string"),
        }
    }

    fn required(&mut self, map: &Map<String, Value>, path: &str, key: &str) {
        if map.get(key).is_none_or(Value::is_null) {
            let message = if map.contains_key(key) {
                "Input should not be None"
            } else {
                "Field required"
            };
            self.fail(&join(path, key), message);
        }
    }

    /// Optional nested models: an object or null.
    fn objects(&mut self, map: &Map<String, Value>, keys: &[&str]) {
        for key in keys {
            if map
                .get(*key)
                .is_some_and(|v| !v.is_object() && !v.is_null())
            {
                self.fail(&camel_case_key(key), "Input should be a valid dictionary");
            }
        }
    }

    fn color(&mut self, map: &Map<String, Value>) {
        if let Some(Value::String(color)) = map.get("color") {
            let hex = color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                self.fail("color", "String should match pattern '^#[0-9A-Fa-f]{6}$'");
            }
        }
    }

    /// A complete target (create and update): metric, value > 0, unit 1–50, direction.
    fn target(&mut self, map: &Map<String, Value>, required: bool) {
        match map.get("target") {
            None | Some(Value::Null) if !required => {}
            None => self.fail("target", "Field required"),
            Some(Value::Null) => self.fail("target", "Input should be a valid dictionary"),
            Some(Value::Object(target)) => {
                self.required(target, "target", "metric");
                match target.get("value") {
                    None => self.fail("target.value", "Field required"),
                    Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v <= 0.0) => {
                        self.fail("target.value", "Input should be greater than 0")
                    }
                    Some(_) => {}
                }
                self.text(target, "target", "unit", true, 1, 50);
                self.required(target, "target", "direction");
            }
            Some(_) => self.fail("target", "Input should be a valid dictionary"),
        }
    }

    /// Numbers DynamoDB cannot store (magnitude above 9.99…E+125 or below 1E-130): upstream
    /// fails on write with a 500; refused here.
    fn numbers(&mut self, value: &Value, path: &str) {
        match value {
            Value::Number(n) => {
                let x = n.as_f64().map_or(0.0, f64::abs);
                if x >= 1e126 || (x != 0.0 && x < 1e-130) {
                    self.fail(
                        if path.is_empty() { "request" } else { path },
                        "Number is out of the range that can be stored",
                    );
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.numbers(item, &join_index(path, index));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    self.numbers(item, &join(path, key));
                }
            }
            _ => {}
        }
    }

    fn finish<T>(self, parsed: Result<T, FieldError>) -> Result<T, ApiError> {
        let mut errors = self.0;
        match parsed {
            Ok(value) if errors.is_empty() => Ok(value),
            Ok(_) => Err(ApiError::Body(errors)),
            Err(error) => {
                if !errors.iter().any(|e| e.field == error.field) {
                    errors.push(error);
                }
                Err(ApiError::Body(errors))
            }
        }
    }
}

fn join_index(path: &str, index: usize) -> String {
    if path.is_empty() {
        index.to_string()
    } else {
        format!("{path}.{index}")
    }
}

fn join(path: &str, key: &str) -> String {
    let key = camel_case_key(key);
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// The body of `POST /goals`. The defaults their create writes (the pattern's schedule, the
/// context's and rewards' defaults, empty metadata) are the store's (`goalstore::validate`), as
/// for every other caller; `rewards` and `metadata` in the body are ignored, as theirs are.
pub fn new_goal(map: Map<String, Value>) -> Result<NewGoal, ApiError> {
    let mut map = request_fields(map, Model::Create);
    let mut checks = Checks::default();
    checks.text(&map, "", "title", true, 1, 200);
    checks.text(&map, "", "description", false, 0, 1000);
    checks.text(&map, "", "category", true, 1, 50);
    checks.text(&map, "", "icon", false, 0, 50);
    checks.color(&map);
    checks.required(&map, "", "goal_pattern");
    checks.target(&map, true);
    checks.objects(&map, &["schedule", "context"]);
    if map.get("visibility") == Some(&Value::Null) {
        checks.fail(
            "visibility",
            "Input should be 'private', 'friends' or 'public'",
        );
    }
    map.remove("rewards");
    map.remove("metadata");
    checks.numbers(&Value::Object(map.clone()), "");
    checks.finish(deserialize(map))
}

/// The body of `PUT /goals/{goalId}`.
pub fn goal_update(map: Map<String, Value>) -> Result<GoalUpdate, ApiError> {
    let map = request_fields(map, Model::Update);
    let mut checks = Checks::default();
    checks.text(&map, "", "title", false, 1, 200);
    checks.text(&map, "", "description", false, 0, 1000);
    checks.text(&map, "", "category", false, 1, 50);
    checks.text(&map, "", "icon", false, 0, 50);
    checks.color(&map);
    checks.target(&map, false);
    checks.objects(&map, &["schedule", "context"]);
    checks.numbers(&Value::Object(map.clone()), "");
    checks.finish(deserialize(map))
}

/// The body of `POST /goals/{goalId}/activities`, as the log handler builds the activity
/// (la/s:91-178): the date at 00:00 UTC (or now), the `X-Timezone` header (or `UTC`), the
/// context completed with time of day, weekday and weekend, an empty unit meaning the goal's.
pub fn new_activity(
    map: Map<String, Value>,
    timezone: Option<&str>,
    now: DateTime<Utc>,
) -> Result<NewActivity, ApiError> {
    let mut map = request_fields(map, Model::Log);
    let mut checks = Checks::default();
    checks.required(&map, "", "value");
    checks.text(&map, "", "note", false, 0, 500);
    checks.objects(&map, &["location", "context"]);
    if map
        .get("attachments")
        .is_some_and(|v| !v.is_array() && !v.is_null())
    {
        checks.fail("attachments", "Input should be a valid list");
    }
    if let Some(Value::Object(location)) = map.get("location") {
        checks.required(location, "location", "type");
    }
    let at = match map.remove("activity_date") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => activity_date(&text).unwrap_or(now),
        Some(_) => {
            checks.fail("activityDate", "Input should be a valid string");
            now
        }
    };
    map.insert(
        "activity_date".into(),
        Value::String(format!("{}Z", python_isoformat(at))),
    );
    if map.get("unit").and_then(Value::as_str) == Some("") {
        map.remove("unit");
    }
    map.insert(
        "timezone".into(),
        Value::String(timezone.unwrap_or("UTC").to_owned()),
    );
    // The context's derived fields (time of day, weekday, weekend) and defaults are the
    // store's, filled from the activity's date as for every other caller.
    checks.numbers(&Value::Object(map.clone()), "");
    checks.finish(deserialize(map))
}

/// 00:00 UTC of a Python 3.11 `date.fromisoformat` text; `None` when it does not parse.
pub fn activity_date(text: &str) -> Option<DateTime<Utc>> {
    super::query::python_date(text)
        .map(|date: NaiveDate| date.and_time(chrono::NaiveTime::MIN).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use goalstore::{GoalPattern, Timestamp};
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn errors<T: std::fmt::Debug>(result: Result<T, ApiError>) -> Vec<(String, String)> {
        match result {
            Err(ApiError::Body(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a body error, got {other:?}"),
        }
    }

    fn goal_body() -> Value {
        json!({
            "title": "Read", "category": "learning", "goalPattern": "milestone",
            "target": {"metric": "count", "value": 12, "unit": "books", "direction": "increase",
                       "targetDate": "2030-01-01T00:00:00Z"},
            "goalId": "chosen", "rewards": {"points_per_activity": 99}, "metadata": {"a": 1},
            "isJournalLinked": true, "unknown": 1
        })
    }

    #[test]
    fn bodies_parse_as_objects_or_refuse() {
        assert_eq!(parse_object(b"", Model::Create), Ok(Map::new()));
        assert_eq!(
            parse_object(b" {\"a\":1} ", Model::Create).map(|m| m.len()),
            Ok(1)
        );
        let invalid = errors(parse_object(b"{not json", Model::Create));
        assert_eq!(invalid[0].0, "body");
        assert!(invalid[0].1.starts_with("Invalid JSON"));
        assert_eq!(errors(parse_object(b"null", Model::Log))[0].0, "body");
        assert_eq!(errors(parse_object(b"[1]", Model::Create))[0].0, "request");
        assert_eq!(errors(parse_object(b"\"x\"", Model::Log))[0].0, "request");
        assert!(errors(parse_object(b"3", Model::Update)).is_empty());
    }

    #[test]
    fn keys_are_snake_cased_and_limited_to_the_request_model() {
        let fields = request_fields(
            map(
                json!({"goalPattern": "streak", "goal_id": "x", "target": {"targetDate": 1, "minValue": 2},
                       "context": {"weather": {"condition": "sun"}, "timeOfDay": "night"}, "metadata": {"aB": 1}}),
            ),
            Model::Create,
        );
        assert_eq!(
            Value::Object(fields),
            json!({"goal_pattern": "streak", "target": {"target_date": 1, "min_value": 2},
                   "context": {"weather": {"condition": "sun"}, "time_of_day": "night"}})
        );
        assert_eq!(snake_case_key("isJournalLinked"), "is_journal_linked");
        assert_eq!(snake_case_key("already_snake"), "already_snake");
    }

    #[test]
    fn create_bodies_become_new_goals_and_leave_the_defaults_to_the_store() {
        let mut body = goal_body();
        body["rewards"] = json!({"pointsPerActivity": 500});
        body["metadata"] = json!({"client_key": 1});
        let new = new_goal(map(body)).expect("a valid body");
        assert_eq!(new.goal_id, None, "clients do not choose ids");
        assert_eq!(new.title, "Read");
        assert_eq!(new.goal_pattern, GoalPattern::Milestone);
        assert_eq!(new.target.value, Some(12.0));
        assert!(!new.is_journal_linked, "isJournalLinked is dropped");
        assert_eq!(new.rewards, None, "request rewards are ignored");
        assert_eq!(new.metadata, None, "request metadata is ignored");
    }

    #[test]
    fn create_body_errors_name_camel_case_fields_with_pydantic_messages() {
        let found = errors(new_goal(map(json!({"target": {"value": 0, "unit": ""}}))));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "category",
                "goalPattern",
                "target.metric",
                "target.value",
                "target.unit",
                "target.direction"
            ]
        );
        assert_eq!(found[0].1, "Field required");
        assert_eq!(found[4].1, "Input should be greater than 0");
        let mut body = goal_body();
        body["goalPattern"] = json!("daily");
        let found = errors(new_goal(map(body)));
        assert_eq!(found[0].0, "goalPattern");
        assert_eq!(
            found[0].1,
            "Input should be 'recurring', 'milestone', 'target', 'streak' or 'limit'"
        );
        let mut body = goal_body();
        body["target"]["period"] = json!(7);
        body["color"] = json!("red");
        let found = errors(new_goal(map(body)));
        assert_eq!(
            found[0],
            (
                "color".to_owned(),
                "String should match pattern '^#[0-9A-Fa-f]{6}$'".to_owned()
            )
        );
        assert_eq!(found[1].0, "target.period");
    }

    #[test]
    fn update_bodies_are_partial_but_a_target_is_complete() {
        let update =
            goal_update(map(json!({"title": "New", "goalPattern": "streak"}))).expect("valid");
        assert_eq!(update.title.as_deref(), Some("New"));
        assert_eq!(update.goal_pattern, None, "not part of the update model");
        let found = errors(goal_update(map(json!({"target": {"value": 3}}))));
        assert!(
            found
                .iter()
                .any(|(f, m)| f == "target.unit" && m == "Field required"),
            "{found:?}"
        );
        let found = errors(goal_update(map(json!({"isJournalLinked": "maybe"}))));
        assert_eq!(
            found[0],
            (
                "isJournalLinked".to_owned(),
                "Input should be a valid boolean".to_owned()
            )
        );
    }

    #[test]
    fn log_bodies_get_date_timezone_and_context() {
        let now = Utc
            .with_ymd_and_hms(2025, 1, 8, 18, 30, 0)
            .single()
            .expect("a time");
        let new = new_activity(
            map(
                json!({"value": 2, "unit": "", "activityDate": "2025-01-04", "activityId": "x",
                       "context": {"mood": "good", "timeOfDay": "morning"}}),
            ),
            Some("Europe/Paris"),
            now,
        )
        .expect("valid");
        assert_eq!(new.activity_id, None);
        assert_eq!(new.unit, None, "an empty unit means the goal's");
        assert_eq!(new.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(
            new.activity_date.as_ref().map(Timestamp::as_str),
            Some("2025-01-04T00:00:00Z")
        );
        let context = serde_json::to_value(&new.context).expect("serializes");
        assert_eq!(
            context["mood"], "good",
            "the context goes to the store as given"
        );

        let new = new_activity(map(json!({"value": 1, "activityDate": "soon"})), None, now)
            .expect("valid");
        assert_eq!(new.timezone.as_deref(), Some("UTC"));
        assert_eq!(
            new.activity_date.as_ref().and_then(Timestamp::instant),
            Some(now)
        );

        let found = errors(new_activity(
            map(json!({"unit": "km", "activityType": "run"})),
            None,
            now,
        ));
        assert_eq!(found[0], ("value".to_owned(), "Field required".to_owned()));
        let found = errors(new_activity(map(json!({"value": "x"})), None, now));
        assert_eq!(
            found[0],
            (
                "value".to_owned(),
                "Input should be a valid number".to_owned()
            )
        );
        let found = errors(new_activity(
            map(json!({"value": 1, "location": {"city": "Paris"}})),
            None,
            now,
        ));
        assert_eq!(
            found[0],
            ("location.type".to_owned(), "Field required".to_owned())
        );
    }

    #[test]
    fn nested_models_must_be_objects() {
        let mut body = goal_body();
        body["schedule"] = json!("daily");
        assert_eq!(errors(new_goal(map(body)))[0].0, "schedule");
        let found = errors(goal_update(map(json!({"context": [1]}))));
        assert_eq!(found[0].0, "context");
        let found = errors(new_activity(
            map(json!({"value": 1, "location": "gym", "attachments": {}})),
            None,
            Utc::now(),
        ));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["location", "attachments"]);
    }

    #[test]
    fn numbers_dynamodb_cannot_store_are_refused() {
        let mut body = goal_body();
        body["target"]["value"] = json!(1e300);
        let found = errors(new_goal(map(body)));
        assert_eq!(found[0].0, "target.value");
        let now = Utc::now();
        let found = errors(new_activity(
            map(json!({"value": 1, "location": {"type": "gym", "coordinates": [1e-200, 2]}})),
            None,
            now,
        ));
        assert_eq!(found[0].0, "location.coordinates.0");
    }
}
