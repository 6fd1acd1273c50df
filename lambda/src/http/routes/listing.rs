//! What list goals and list activities do after reading (ORIGIN §3.3): filter, stable sort,
//! `pages = ceil(total / limit)`, page clamping, and the `pagination` object.

use crate::http::json::Json;
use crate::http::query::{GoalListQuery, SortKey};
use goalstore::{Goal, GoalStatus, Timestamp};
use std::cmp::Ordering;

/// The `pagination` of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: i64,
    pub limit: i64,
    pub total: i64,
    pub pages: i64,
}

impl Pagination {
    pub fn to_json(self) -> Json {
        Json::object()
            .with("page", Json::Number(self.page.into()))
            .with("limit", Json::Number(self.limit.into()))
            .with("total", Json::Number(self.total.into()))
            .with("pages", Json::Number(self.pages.into()))
    }
}

/// The page `page` (≥ 1) of `items`, `limit` (≥ 1) a page; a page past the last is the last.
pub fn paginate<T>(items: Vec<T>, page: i64, limit: i64) -> (Vec<T>, Pagination) {
    let limit = limit.max(1);
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let pages = (total + limit - 1) / limit;
    let page = if pages > 0 && page > pages {
        pages
    } else {
        page.max(1)
    };
    let start = usize::try_from((page - 1).saturating_mul(limit)).unwrap_or(usize::MAX);
    let taken = usize::try_from(limit).unwrap_or(usize::MAX);
    let slice = items.into_iter().skip(start).take(taken).collect();
    (
        slice,
        Pagination {
            page,
            limit,
            total,
            pages,
        },
    )
}

fn by_time(a: &Timestamp, b: &Timestamp) -> Ordering {
    match (a.instant(), b.instant()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.as_str().cmp(b.as_str()),
    }
}

/// The goals `query` selects, in its order (stable: ties keep the read order, also descending).
pub fn select_goals(goals: Vec<Goal>, query: &GoalListQuery) -> Vec<Goal> {
    let mut goals: Vec<Goal> = goals
        .into_iter()
        .filter(|goal| {
            if query.statuses.is_empty() {
                goal.status != GoalStatus::Archived
            } else {
                query.statuses.contains(&goal.status)
            }
        })
        .filter(|goal| query.patterns.is_empty() || query.patterns.contains(&goal.goal_pattern))
        .filter(|goal| {
            query.categories.is_empty()
                || goal
                    .category
                    .as_deref()
                    .is_some_and(|c| query.categories.contains(&c.to_lowercase()))
        })
        .collect();
    let compare = |a: &Goal, b: &Goal| match query.sort {
        SortKey::Created => by_time(&a.created_at, &b.created_at),
        SortKey::Updated => by_time(&a.updated_at, &b.updated_at),
        SortKey::Title => a.title.to_lowercase().cmp(&b.title.to_lowercase()),
    };
    if query.descending {
        goals.sort_by(|a, b| compare(b, a));
    } else {
        goals.sort_by(compare);
    }
    goals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::Params;

    #[test]
    fn pages_are_ceil_of_total_over_limit_and_clamped() {
        let items: Vec<i32> = (1..=45).collect();
        let (page, p) = paginate(items.clone(), 3, 20);
        assert_eq!(page, (41..=45).collect::<Vec<_>>());
        assert_eq!((p.page, p.limit, p.total, p.pages), (3, 20, 45, 3));
        let (page, p) = paginate(items, 9, 20);
        assert_eq!((page.len(), p.page), (5, 3), "past the last page: the last");
        let (page, p) = paginate(Vec::<i32>::new(), 4, 20);
        assert!(page.is_empty());
        assert_eq!(
            (p.page, p.total, p.pages),
            (4, 0, 0),
            "no results: the page echoes"
        );
        assert_eq!(
            p.to_json().to_text(),
            r#"{"page":4,"limit":20,"total":0,"pages":0}"#
        );
    }

    fn goal(id: &str, title: &str, status: GoalStatus, category: &str, updated: &str) -> Goal {
        let mut goal: Goal = serde_json::from_value(serde_json::json!({
            "goal_id": id, "user_id": "u", "title": title, "goal_pattern": "streak",
            "status": status.as_str(), "category": category,
            "created_at": "2025-01-01T00:00:00Z", "updated_at": updated,
        }))
        .expect("a goal");
        goal.target.value = Some(1.0);
        goal
    }

    #[test]
    fn goals_are_filtered_and_sorted_stably() {
        let goals = vec![
            goal(
                "a",
                "beta",
                GoalStatus::Active,
                "Fitness",
                "2025-01-02T00:00:00Z",
            ),
            goal(
                "b",
                "Alpha",
                GoalStatus::Archived,
                "fitness",
                "2025-01-05T00:00:00Z",
            ),
            goal(
                "c",
                "gamma",
                GoalStatus::Paused,
                "Health",
                "2025-01-02T00:00:00+00:00",
            ),
            goal(
                "d",
                "alpha",
                GoalStatus::Draft,
                "FITNESS",
                "2025-01-03T00:00:00Z",
            ),
        ];
        let ids = |goals: Vec<Goal>| goals.into_iter().map(|g| g.goal_id).collect::<Vec<_>>();
        let query = |pairs: &[(&str, &str)]| {
            GoalListQuery::parse(&Params::from_pairs(pairs)).expect("a valid query")
        };
        assert_eq!(
            ids(select_goals(goals.clone(), &query(&[]))),
            ["d", "a", "c"],
            "updated desc, ties in read order, archived excluded"
        );
        assert_eq!(
            ids(select_goals(
                goals.clone(),
                &query(&[("sort", "title_asc")])
            )),
            ["d", "a", "c"]
        );
        assert_eq!(
            ids(select_goals(
                goals.clone(),
                &query(&[("status", "archived,draft"), ("sort", "title_desc")])
            )),
            ["b", "d"],
            "ties keep read order in descending sorts too"
        );
        assert_eq!(
            ids(select_goals(goals, &query(&[("category", "fitness")]))),
            ["d", "a"]
        );
    }
}
