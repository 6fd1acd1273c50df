//! Activity routes: log and list (ORIGIN §2.5, §3.2, §3.3).

use super::listing::paginate;
use crate::http::body::{self, Model};
use crate::http::errors::{ApiError, Precondition, Stamp};
use crate::http::json::Json;
use crate::http::query::{ActivityListQuery, Params};
use crate::http::render::{self, Mode};
use crate::http::{answer, caller, Body, Request, Response, Route, Success};
use chrono::NaiveTime;
use goalstore::{ActivityFilter, GoalService, PageRequest, Timestamp};

/// At most this many activities are read (lac/s:71-120).
const MAX_ACTIVITIES: u32 = 1000;

const LOG: Route = Route {
    stamp: Stamp::Offset,
    precondition: Precondition::Activity,
};
const LIST: Route = Route {
    stamp: Stamp::Naive,
    precondition: Precondition::Goal,
};

/// `POST /goals/{goalId}/activities`: 201, the activity (J).
pub async fn log_activity(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, LOG, async {
        let user = caller::caller(&request)?;
        let goal_id = caller::goal_id(&request)?;
        let timezone = request
            .headers()
            .get("x-timezone")
            .and_then(|v| v.to_str().ok());
        let new = body::new_activity(
            body::object(&request, Model::Log)?,
            timezone,
            chrono::Utc::now(),
        )?;
        let logged = store
            .log_activity(&user, &goal_id, new)
            .await
            .map_err(|e| ApiError::store(e, &user, &goal_id))?;
        Ok(Success::new(
            201,
            render::activity(&logged.activity, Mode::J),
        ))
    })
    .await
}

/// `GET /goals/{goalId}/activities`: 200, `{activities: [Activity (S)], pagination}`, newest
/// logged first.
pub async fn list_activities(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, LIST, async {
        let user = caller::caller(&request)?;
        let goal_id = caller::goal_id(&request)?;
        let query = ActivityListQuery::parse(&Params::of(&request))?;
        let store_error = |e| ApiError::store(e, &user, &goal_id);
        // The goal first: a missing goal is a 404, not an empty list.
        store.get_goal(&user, &goal_id).await.map_err(store_error)?;
        let filter = match query.range {
            Some((start, end)) => ActivityFilter {
                from: Some(Timestamp::from_instant(
                    start.and_time(NaiveTime::MIN).and_utc(),
                )),
                to: end
                    .and_hms_micro_opt(23, 59, 59, 999_999)
                    .map(|at| Timestamp::from_instant(at.and_utc())),
            },
            None => ActivityFilter::default(),
        };
        let mut page = PageRequest {
            page_size: Some(MAX_ACTIVITIES),
            page_token: None,
        };
        let read = match store.list_activities(&user, &goal_id, &filter, &page).await {
            // A store configured with a smaller page: its largest.
            Err(e) if e.invalid_field() == Some("page_size") => {
                page.page_size = None;
                store.list_activities(&user, &goal_id, &filter, &page).await
            }
            other => other,
        }
        .map_err(store_error)?;
        let activities: Vec<_> = read
            .items
            .into_iter()
            .filter(|a| query.types.is_empty() || query.types.contains(&a.activity_type))
            .collect();
        let (page, pagination) = paginate(activities, query.page, query.limit);
        let activities: Vec<Json> = page.iter().map(|a| render::activity(a, Mode::S)).collect();
        Ok(Success::dumps(
            200,
            Json::object()
                .with("activities", activities)
                .with("pagination", pagination.to_json()),
        ))
    })
    .await
}
