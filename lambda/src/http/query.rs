//! Query parameters of the listings and of progress (ORIGIN §3.3).
//!
//! Repeated keys count as one comma-joined value, as HTTP API payload 2.0 joins them.

use super::errors::ApiError;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use goalstore::{ActivityType, GoalPattern, GoalStatus};
use lambda_http::{Request, RequestExt as _};

/// The query parameters of a request, repeated keys joined with commas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn of(request: &Request) -> Self {
        let mut params = Vec::new();
        if let Some(map) = request.query_string_parameters_ref() {
            for (key, _) in map.iter() {
                if params.iter().any(|(k, _): &(String, String)| k == key) {
                    continue;
                }
                let values = map.all(key).unwrap_or_default();
                params.push((key.to_owned(), values.join(",")));
            }
        }
        Self(params)
    }

    /// From `(key, value)` pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How list goals sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    Updated,
    Title,
}

/// `?status=&goalPattern=&category=&page=&limit=&sort=` of list goals.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalListQuery {
    /// Empty: every status but archived.
    pub statuses: Vec<GoalStatus>,
    pub patterns: Vec<GoalPattern>,
    /// Lowercased; empty: any category.
    pub categories: Vec<String>,
    pub page: i64,
    pub limit: i64,
    pub sort: SortKey,
    pub descending: bool,
}

/// `?startDate=&endDate=&activityType=&page=&limit=` of list activities.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityListQuery {
    /// Applied only when both dates are given.
    pub range: Option<(NaiveDate, NaiveDate)>,
    pub types: Vec<ActivityType>,
    pub page: i64,
    pub limit: i64,
}

/// The values of a progress `period`.
pub const PERIODS: &[&str] = &["current", "week", "month", "quarter", "year", "all"];

fn items(text: Option<&str>) -> Vec<&str> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// A comma list of enum values; a bad one is refused as upstream words it, e.g.
/// `Invalid status value: 'x' is not a valid GoalStatus`.
fn values<T>(
    text: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    prefix: &str,
    type_name: &str,
) -> Result<Vec<T>, ApiError> {
    items(text)
        .into_iter()
        .map(|item| {
            parse(item).ok_or_else(|| {
                ApiError::Query(format!("{prefix}: '{item}' is not a valid {type_name}"))
            })
        })
        .collect()
}

/// `page`: non-int → 1, < 1 → 1 (the clamp to `pages` happens once the total is known).
fn page(text: Option<&str>) -> i64 {
    text.and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .max(1)
}

/// `limit`: non-int → 20, clamped to 1..=100.
fn limit(text: Option<&str>) -> i64 {
    text.and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(20)
        .clamp(1, 100)
}

impl GoalListQuery {
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let statuses = values(
            params.get("status"),
            GoalStatus::from_text,
            "Invalid status value",
            "GoalStatus",
        )?;
        let patterns = values(
            params.get("goalPattern"),
            GoalPattern::from_text,
            "Invalid goal pattern value",
            "GoalPattern",
        )?;
        let categories = items(params.get("category"))
            .into_iter()
            .map(str::to_lowercase)
            .collect();
        let (sort, descending) = match params.get("sort").unwrap_or_default() {
            "created_asc" => (SortKey::Created, false),
            "created_desc" => (SortKey::Created, true),
            "updated_asc" => (SortKey::Updated, false),
            "title_asc" => (SortKey::Title, false),
            "title_desc" => (SortKey::Title, true),
            _ => (SortKey::Updated, true),
        };
        Ok(Self {
            statuses,
            patterns,
            categories,
            page: page(params.get("page")),
            limit: limit(params.get("limit")),
            sort,
            descending,
        })
    }
}

impl ActivityListQuery {
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let date = |name: &str| -> Result<Option<NaiveDate>, ApiError> {
            match params.get(name) {
                None => Ok(None),
                Some(text) => python_datetime_date(text)
                    .map(Some)
                    .ok_or_else(|| ApiError::Query(format!("Invalid {name} format: {text}"))),
            }
        };
        let start = date("startDate")?;
        let end = date("endDate")?;
        if let (Some(start), Some(end)) = (start, end) {
            if start > end {
                return Err(ApiError::Query("startDate must be before endDate".into()));
            }
        }
        let types = values(
            params.get("activityType"),
            ActivityType::from_text,
            "Invalid activity type",
            "ActivityType",
        )?;
        Ok(Self {
            range: start.zip(end),
            types,
            page: page(params.get("page")),
            limit: limit(params.get("limit")),
        })
    }
}

/// `period` of get progress: default `current`; anything else is refused naming the values.
pub fn period(params: &Params) -> Result<String, ApiError> {
    match params.get("period") {
        None => Ok("current".into()),
        Some(p) if PERIODS.contains(&p) => Ok(p.to_owned()),
        Some(p) => Err(ApiError::Invalid(format!(
            "Invalid period: {p}. Must be one of: {}",
            PERIODS.join(", ")
        ))),
    }
}

/// The date of a Python `datetime.fromisoformat` text (3.11: a date, or a date and a time with
/// `T` or a space, optional fraction and offset or `Z`).
pub fn python_datetime_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim_end();
    if let Some(date) = python_date(text) {
        return Some(date);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        return Some(at.naive_local().date());
    }
    let formats = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ];
    formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|at| at.date())
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"]
                .iter()
                .find_map(|f| DateTime::parse_from_str(text, f).ok())
                .map(|at| at.naive_local().date())
        })
}

/// Python 3.11 `date.fromisoformat`: `YYYY-MM-DD`, `YYYYMMDD`, `YYYY-Www[-D]`, `YYYYWww[D]`.
pub fn python_date(text: &str) -> Option<NaiveDate> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let number = |s: &str| {
        if digits(s) {
            s.parse::<u32>().ok()
        } else {
            None
        }
    };
    let bytes = text.as_bytes();
    match bytes.len() {
        10 if bytes[4] == b'-' && bytes[7] == b'-' => NaiveDate::from_ymd_opt(
            i32::try_from(number(&text[..4])?).ok()?,
            number(&text[5..7])?,
            number(&text[8..])?,
        ),
        8 if digits(text) => NaiveDate::from_ymd_opt(
            i32::try_from(number(&text[..4])?).ok()?,
            number(&text[4..6])?,
            number(&text[6..])?,
        ),
        _ => week_date(text),
    }
}

fn week_date(text: &str) -> Option<NaiveDate> {
    let compact = text.replace('-', "");
    let (year, rest) = compact.split_at_checked(4)?;
    let rest = rest.strip_prefix('W')?;
    // With dashes the form must be YYYY-Www or YYYY-Www-D exactly.
    if text.contains('-') && !(text.len() == 8 || text.len() == 10) {
        return None;
    }
    if !year.bytes().all(|b| b.is_ascii_digit()) || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (week, day) = match rest.len() {
        2 => (rest, "1"),
        3 => rest.split_at(2),
        _ => return None,
    };
    let weekday = match day.parse::<u32>().ok()? {
        1 => chrono::Weekday::Mon,
        2 => chrono::Weekday::Tue,
        3 => chrono::Weekday::Wed,
        4 => chrono::Weekday::Thu,
        5 => chrono::Weekday::Fri,
        6 => chrono::Weekday::Sat,
        7 => chrono::Weekday::Sun,
        _ => return None,
    };
    NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, weekday)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_goals_parameters_parse_with_upstream_defaults_and_clamps() {
        let q = GoalListQuery::parse(&Params::default()).expect("defaults");
        assert_eq!(
            (q.page, q.limit, q.sort, q.descending),
            (1, 20, SortKey::Updated, true)
        );
        assert!(q.statuses.is_empty() && q.patterns.is_empty() && q.categories.is_empty());
        let q = GoalListQuery::parse(&Params::from_pairs(&[
            ("status", " active, ,paused "),
            ("goalPattern", "streak"),
            ("category", "Fitness,HEALTH"),
            ("page", "x"),
            ("limit", "500"),
            ("sort", "title_asc"),
        ]))
        .expect("valid");
        assert_eq!(q.statuses, [GoalStatus::Active, GoalStatus::Paused]);
        assert_eq!(q.patterns, [GoalPattern::Streak]);
        assert_eq!(q.categories, ["fitness", "health"]);
        assert_eq!(
            (q.page, q.limit, q.sort, q.descending),
            (1, 100, SortKey::Title, false)
        );
        let q = GoalListQuery::parse(&Params::from_pairs(&[
            ("page", "-3"),
            ("limit", "0"),
            ("sort", "nonsense"),
        ]))
        .expect("valid");
        assert_eq!(
            (q.page, q.limit, q.sort, q.descending),
            (1, 1, SortKey::Updated, true)
        );
        let bad = GoalListQuery::parse(&Params::from_pairs(&[("status", "active,deleted")]));
        assert_eq!(
            bad,
            Err(ApiError::Query(
                "Invalid status value: 'deleted' is not a valid GoalStatus".into()
            ))
        );
        let bad = GoalListQuery::parse(&Params::from_pairs(&[("goalPattern", "Streak")]));
        assert!(matches!(bad, Err(ApiError::Query(_))));
    }

    #[test]
    fn list_activities_parameters_parse_dates_and_types() {
        let q = ActivityListQuery::parse(&Params::from_pairs(&[
            ("startDate", "2025-01-01T10:00:00Z"),
            ("endDate", "2025-01-31"),
            ("activityType", "progress,skipped"),
            ("limit", "5"),
        ]))
        .expect("valid");
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).expect("a date");
        assert_eq!(q.range, Some((day(1), day(31))));
        assert_eq!(q.types, [ActivityType::Progress, ActivityType::Skipped]);
        assert_eq!((q.page, q.limit), (1, 5));
        let lone = ActivityListQuery::parse(&Params::from_pairs(&[("startDate", "2025-01-01")]))
            .expect("valid");
        assert_eq!(lone.range, None, "a lone date is ignored");
        let bad = ActivityListQuery::parse(&Params::from_pairs(&[("startDate", "yesterday")]));
        assert!(
            matches!(bad, Err(ApiError::Query(m)) if m.starts_with("Invalid startDate format"))
        );
        let reversed = ActivityListQuery::parse(&Params::from_pairs(&[
            ("startDate", "2025-02-01"),
            ("endDate", "2025-01-01"),
        ]));
        assert!(matches!(reversed, Err(ApiError::Query(_))));
        let bad = ActivityListQuery::parse(&Params::from_pairs(&[("activityType", "run")]));
        assert_eq!(
            bad,
            Err(ApiError::Query(
                "Invalid activity type: 'run' is not a valid ActivityType".into()
            ))
        );
    }

    #[test]
    fn periods_and_python_dates() {
        assert_eq!(period(&Params::default()), Ok("current".to_owned()));
        assert_eq!(
            period(&Params::from_pairs(&[("period", "all")])),
            Ok("all".to_owned())
        );
        let bad = period(&Params::from_pairs(&[("period", "decade")]));
        assert_eq!(
            bad,
            Err(ApiError::Invalid(
                "Invalid period: decade. Must be one of: current, week, month, quarter, year, all"
                    .into()
            ))
        );
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(python_date("2025-01-05"), day(2025, 1, 5));
        assert_eq!(python_date("20250105"), day(2025, 1, 5));
        assert_eq!(python_date("2025-W01-1"), day(2024, 12, 30));
        assert_eq!(python_date("2025W011"), day(2024, 12, 30));
        assert_eq!(python_date("2025-W02"), day(2025, 1, 6));
        assert_eq!(python_date("2025-1-5"), None);
        assert_eq!(python_date("2025-02-30"), None);
        assert_eq!(python_date(""), None);
        assert_eq!(python_date("2025-01-05T10:00:00"), None);
        assert_eq!(python_datetime_date("2025-01-05 10:00"), day(2025, 1, 5));
    }
}
