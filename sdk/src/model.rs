//! The typed model of the goals table: goals, activities, progress and their enums.
//!
//! Field names are the table's attribute names (snake_case), so serde maps a model value to a
//! DynamoDB item and back (see `item`). Free-form maps that upstream keeps schemaless (schedule,
//! context, rewards, metadata, location, device info, attachments) are [`Document`]s, so whatever
//! the existing handlers put there reads back unchanged.
//!
//! Timestamps are kept as the text the table holds ([`Timestamp`]): upstream writes both `Z` and
//! `+00:00` forms, and re-formatting them would change items we only read.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc, Weekday};
use serde::{Deserialize, Deserializer, Serialize};

/// A schemaless value — a DynamoDB map, list, string, number, bool or NULL — kept as its JSON
/// text.
///
/// goalstore never looks inside these (schedule, context, rewards, metadata, ...): it carries
/// them between the table, the cache and the caller. Keeping the text instead of a
/// `serde_json::Value` tree makes a cache hit copy one string per document instead of building
/// a map per document (most of what decoding a cached goal used to cost); [`Document::to_value`]
/// builds the tree for a caller that wants to look inside.
///
/// The text is canonical (compact, map keys sorted, as `serde_json` writes a `Value`), so two
/// documents are equal exactly when their values are. In human-readable formats (DynamoDB items
/// through serde_dynamo, JSON) a document serializes as its value, so the table and JSON
/// bodies see the same maps as before; in binary formats (the cache's MessagePack) it
/// serializes as its JSON text, which decodes without building anything.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Document(Box<str>);

impl Document {
    /// The document holding `value`.
    pub fn new(value: &serde_json::Value) -> Self {
        // Writing a Value to a String cannot fail: its map keys are strings.
        Self(value.to_string().into_boxed_str())
    }

    /// Parses JSON text into a document (in canonical form).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde_json::Value>(text).map(|value| Self::new(&value))
    }

    /// The canonical JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The value, as a tree.
    pub fn to_value(&self) -> serde_json::Value {
        // Null only for text that is not JSON, which only an unchecked binary format can give
        // (see `Deserialize` and `check`).
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    /// Checks that the text is JSON, without building it. A document read from a binary format
    /// is taken as written (see `Deserialize`); the cache checks the documents of every value it
    /// did not encode itself with this.
    pub fn check(&self) -> Result<(), serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&self.0).map(|_| ())
    }

    /// Whether the document is a map.
    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// Whether the document is a list.
    pub fn is_array(&self) -> bool {
        self.0.starts_with('[')
    }
}

impl From<serde_json::Value> for Document {
    fn from(value: serde_json::Value) -> Self {
        Self::new(&value)
    }
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Document({})", self.0)
    }
}

impl std::fmt::Display for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.to_value().serialize(serializer)
        } else {
            serializer.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return serde_json::Value::deserialize(deserializer).map(|value| Self::new(&value));
        }
        // Taken as written: checking costs as much as the rest of a cached goal's decode, and
        // the cache's own bytes need none (see `cache::codec`). Bytes from elsewhere go through
        // `Document::check`.
        String::deserialize(deserializer).map(|text| Self(text.into_boxed_str()))
    }
}

/// An ISO-8601 instant, kept as written (`2025-01-05T10:00:00.123456Z` or `...+00:00`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    /// The attribute form goalstore writes: microseconds and `Z`, as upstream's attributes.
    pub fn from_instant(instant: DateTime<Utc>) -> Self {
        Self(instant.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    /// Parses and checks `text`; keeps it as written.
    pub fn parse(text: &str) -> Option<Self> {
        parse_instant(text).map(|_| Self(text.to_owned()))
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instant, when the text is a valid ISO-8601 time (offset-less times count as UTC).
    pub fn instant(&self) -> Option<DateTime<Utc>> {
        parse_instant(&self.0)
    }

    /// The form upstream uses inside keys (`sk`, `gsi1_sk`): microseconds and `+00:00`.
    /// Keys sort by time only when every key uses this one form.
    pub fn key_form(&self) -> String {
        match self.instant() {
            Some(instant) => key_form(instant),
            None => self.0.clone(),
        }
    }
}

/// `instant` in the form upstream uses inside keys.
pub fn key_form(instant: DateTime<Utc>) -> String {
    instant
        .to_rfc3339_opts(SecondsFormat::Micros, false)
        .replace("Z", "+00:00")
}

fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    // Python's isoformat() of a naive datetime has no offset; upstream means UTC.
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// A weekday as the existing handlers write it (`monday`, ...): activity contexts' `day_of_week`
/// and progress insights' `bestDayOfWeek`.
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the table.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value whose stored text is `text`.
            pub fn from_text(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// How a goal is measured.
    GoalPattern { Recurring = "recurring", Milestone = "milestone", Target = "target", Streak = "streak", Limit = "limit" }
);
text_enum!(
    /// Where a goal is in its life.
    GoalStatus { Draft = "draft", Active = "active", Paused = "paused", Completed = "completed", Archived = "archived" }
);
text_enum!(
    /// Who may see a goal.
    Visibility { Private = "private", Friends = "friends", Public = "public" }
);
impl Default for Visibility {
    /// Private, as the existing handlers default it.
    fn default() -> Self {
        Visibility::Private
    }
}

text_enum!(
    /// The length of one period of a recurring or limit goal.
    Period { Day = "day", Week = "week", Month = "month", Quarter = "quarter", Year = "year" }
);
text_enum!(
    /// Which way a value should move.
    Direction { Increase = "increase", Decrease = "decrease", Maintain = "maintain" }
);
text_enum!(
    /// How the target value is compared.
    TargetType { Minimum = "minimum", Maximum = "maximum", Exact = "exact", Range = "range" }
);
text_enum!(
    /// What an activity records.
    ActivityType { Progress = "progress", Completed = "completed", Skipped = "skipped", Partial = "partial" }
);
text_enum!(
    /// Where an activity came from.
    ActivitySource { Manual = "manual", Device = "device", Integration = "integration", Import = "import" }
);
text_enum!(
    /// The direction of recent progress.
    Trend { Improving = "improving", Stable = "stable", Declining = "declining" }
);

/// What a goal aims at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is measured, e.g. "count", "duration", "weight".
    #[serde(default, deserialize_with = "null_as_default")]
    pub metric: String,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub period: Option<Period>,
    #[serde(default)]
    pub target_date: Option<Timestamp>,
    #[serde(default)]
    pub start_value: Option<f64>,
    #[serde(default)]
    pub current_value: Option<f64>,
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub target_type: Option<TargetType>,
    #[serde(default)]
    pub min_value: Option<f64>,
    #[serde(default)]
    pub max_value: Option<f64>,
}

/// One past period of a recurring or limit goal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodRecord {
    /// The period's label: `2025-01-05` (day), `2025-W02` (week), `2025-01` (month),
    /// `2025-Q1` (quarter), `2025` (year).
    pub period: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub achieved: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: f64,
    #[serde(default)]
    pub date: Option<Timestamp>,
}

/// How far a goal has come.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default, deserialize_with = "null_as_default")]
    pub percent_complete: f64,
    #[serde(default)]
    pub last_activity_date: Option<Timestamp>,
    #[serde(default)]
    pub current_period_value: Option<f64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub period_history: Vec<PeriodRecord>,
    #[serde(default)]
    pub total_accumulated: Option<f64>,
    #[serde(default)]
    pub remaining_to_goal: Option<f64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub current_streak: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub longest_streak: u32,
    #[serde(default)]
    pub target_streak: Option<u32>,
    #[serde(default)]
    pub average_value: Option<f64>,
    #[serde(default)]
    pub days_over_limit: Option<u32>,
    #[serde(default)]
    pub trend: Option<Trend>,
    #[serde(default)]
    pub projected_completion: Option<Timestamp>,
    #[serde(default)]
    pub success_rate: Option<f64>,
}

/// One goal of a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub goal_id: String,
    pub user_id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    pub goal_pattern: GoalPattern,
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: Target,
    #[serde(default)]
    pub schedule: Option<Document>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub progress: Progress,
    #[serde(default)]
    pub context: Option<Document>,
    #[serde(default)]
    pub rewards: Option<Document>,
    pub status: GoalStatus,
    #[serde(default = "private", deserialize_with = "null_as_private")]
    pub visibility: Visibility,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    #[serde(default)]
    pub archived_at: Option<Timestamp>,
    #[serde(default)]
    pub metadata: Option<Document>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_journal_linked: bool,
}

/// One logged activity toward a goal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub activity_id: String,
    pub goal_id: String,
    pub user_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: f64,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default = "progress_type", deserialize_with = "null_as_progress_type")]
    pub activity_type: ActivityType,
    pub activity_date: Timestamp,
    pub logged_at: Timestamp,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub location: Option<Document>,
    #[serde(default)]
    pub context: Option<Document>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub attachments: Option<Document>,
    #[serde(default = "manual", deserialize_with = "null_as_manual")]
    pub source: ActivitySource,
    #[serde(default)]
    pub device_info: Option<Document>,
}

impl Activity {
    /// Whether the activity counts toward progress (a skipped day does not).
    pub fn counts(&self) -> bool {
        self.activity_type != ActivityType::Skipped
    }
}

/// Reads NULL (or absent, with `#[serde(default)]`) as the type's default, so upstream items that
/// store NULL for "not set" still decode.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn private() -> Visibility {
    Visibility::Private
}

fn null_as_private<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Visibility, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or(Visibility::Private))
}

fn progress_type() -> ActivityType {
    ActivityType::Progress
}

fn null_as_progress_type<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ActivityType, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or(ActivityType::Progress))
}

fn manual() -> ActivitySource {
    ActivitySource::Manual
}

fn null_as_manual<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ActivitySource, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or(ActivitySource::Manual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_their_text_and_parse_both_offsets() {
        let z = Timestamp::parse("2025-01-05T10:00:00.123456Z").expect("Z form parses");
        let plus = Timestamp::parse("2025-01-05T10:00:00.123456+00:00").expect("+00:00 parses");
        assert_eq!(z.as_str(), "2025-01-05T10:00:00.123456Z");
        assert_eq!(z.instant(), plus.instant());
        assert_eq!(z.key_form(), "2025-01-05T10:00:00.123456+00:00");
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("2025-01-05T10:00:00").is_some());
    }

    #[test]
    fn documents_are_canonical_json_and_values_in_readable_formats() {
        let a = Document::from_json(r#"{ "b": [1, 2.5, null], "a": {"y": true, "x": "s"} }"#)
            .expect("valid JSON");
        let b =
            Document::from(serde_json::json!({"a": {"x": "s", "y": true}, "b": [1, 2.5, null]}));
        assert_eq!(a, b);
        assert_eq!(a.as_json(), r#"{"a":{"x":"s","y":true},"b":[1,2.5,null]}"#);
        assert!(a.is_object() && !a.is_array());
        assert_eq!(a.to_value()["a"]["x"], "s");
        // JSON (and serde_dynamo, also human-readable) sees the value, not a string.
        assert_eq!(serde_json::to_value(&a).expect("serializes"), a.to_value());
        let back: Document = serde_json::from_str(r#"{"b":[1,2.5,null],"a":{"y":true,"x":"s"}}"#)
            .expect("deserializes");
        assert_eq!(back, a);
        assert!(Document::from_json("{not json").is_err());
    }

    #[test]
    fn enums_round_trip_through_their_text() {
        for pattern in GoalPattern::ALL {
            assert_eq!(GoalPattern::from_text(pattern.as_str()), Some(*pattern));
        }
        assert_eq!(GoalStatus::from_text("deleted"), None);
    }
}
