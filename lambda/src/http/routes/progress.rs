//! `GET /goals/{goalId}/progress` (ORIGIN §3.2, §3.3, §4.4).

use crate::http::errors::{ApiError, Precondition, Stamp};
use crate::http::json::Json;
use crate::http::query::{self, Params};
use crate::http::render::{self, Mode};
use crate::http::{answer, caller, Body, Request, Response, Route, Success};
use goalstore::GoalService;

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
        let (statistics, insights) = report();
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

/// `statistics` and `insights`.
///
/// TODO(progress-report): swap for `goalstore::progress::report(...)` once it lands (another
/// branch); until then, the §4.4 shapes of a goal with no activities, computed from nothing.
fn report() -> (Json, Json) {
    let statistics = Json::object()
        .with("totalActivities", 0u64)
        .with("completedActivities", 0u64)
        .with("skippedActivities", 0u64)
        .with("averageValue", Json::float(0.0))
        .with("bestValue", Json::float(0.0))
        .with("worstValue", Json::float(0.0))
        .with("consistency", Json::float(0.0));
    let insights = Json::object()
        .with("bestTimeOfDay", Json::Null)
        .with("bestDayOfWeek", Json::Null)
        .with("successPatterns", Vec::<Json>::new())
        .with(
            "recommendations",
            vec![Json::from("Start logging activities to build insights")],
        );
    (statistics, insights)
}
