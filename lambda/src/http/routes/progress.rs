//! `GET /goals/{goalId}/progress` (ORIGIN §3.2, §3.3, §4.4).

use crate::http::errors::{ApiError, Precondition, Stamp};
use crate::http::json::Json;
use crate::http::query::{self, Params};
use crate::http::render::{self, Mode};
use crate::http::{answer, caller, Body, Request, Response, Route, Success};
use goalstore::progress::{self as computed, ReportPeriod};
use goalstore::{Activity, ActivityFilter, GoalService, PageRequest};

const PROGRESS: Route = Route {
    stamp: Stamp::Naive,
    precondition: Precondition::Goal,
};

/// 200, `{goalId (the path's), period, progress (S), statistics, insights}`.
pub async fn get_progress(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, PROGRESS, async {
        let user = caller::caller(&request)?;
        let goal_id = caller::goal_id(&request)?;
        let period = query::period(&Params::of(&request))?;
        let progress = store
            .get_progress(&user, &goal_id)
            .await
            .map_err(|e| ApiError::store(e, &user, &goal_id))?;
        let report_period = ReportPeriod::parse(&period).unwrap_or_default();
        let (statistics, insights) = report(store, &user, &goal_id, &progress, report_period)
            .await
            .map_err(|e| ApiError::store(e, &user, &goal_id))?;
        Ok(Success::dumps(
            200,
            Json::object()
                .with("goalId", goal_id.as_str())
                .with("period", period)
                .with("progress", render::progress(&progress, Mode::S))
                .with("statistics", statistics)
                .with("insights", insights),
        ))
    })
    .await
}

/// `statistics` and `insights` over every activity of the goal (ORIGIN §4.4; upstream reads at
/// most the newest 1000).
async fn report(
    store: &dyn GoalService,
    user: &str,
    goal_id: &str,
    progress: &goalstore::Progress,
    period: ReportPeriod,
) -> goalstore::Result<(Json, Json)> {
    let goal = store.get_goal(user, goal_id).await?;
    let activities = all_activities(store, user, goal_id).await?;
    let report = computed::report(&goal, progress, &activities, period, chrono::Utc::now());
    let to_json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map(Json::from).unwrap_or(Json::Null)
    };
    Ok((
        to_json(serde_json::to_value(&report.statistics)),
        to_json(serde_json::to_value(&report.insights)),
    ))
}

/// Every activity of the goal, page by page.
async fn all_activities(
    store: &dyn GoalService,
    user: &str,
    goal_id: &str,
) -> goalstore::Result<Vec<Activity>> {
    let mut activities = Vec::new();
    // The store's own page size: within whatever maximum it is configured with.
    let mut page = PageRequest::default();
    loop {
        let read = store
            .list_activities(user, goal_id, &ActivityFilter::default(), &page)
            .await?;
        activities.extend(read.items);
        match read.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => return Ok(activities),
        }
    }
}
