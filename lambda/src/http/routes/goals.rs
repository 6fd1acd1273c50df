//! Goal routes: create, list, get, update and archive (ORIGIN §2.2–2.4, §3.2, §3.3).

use super::listing::{paginate, select_goals};
use crate::http::body::{self, Model};
use crate::http::errors::{ApiError, Precondition, Stamp};
use crate::http::json::Json;
use crate::http::query::{GoalListQuery, Params};
use crate::http::render::{self, Mode};
use crate::http::{answer, caller, Body, Request, Response, Route, Success};
use goalstore::{GoalFilter, GoalService, PageRequest};

/// Pages read before list goals gives up on a listing that never ends (a store bug).
const MAX_PAGES: usize = 10_000;

const CREATE: Route = Route {
    stamp: Stamp::Offset,
    precondition: Precondition::Goal,
};
const LIST: Route = Route {
    stamp: Stamp::Offset,
    precondition: Precondition::Goal,
};
const GET: Route = Route {
    stamp: Stamp::Naive,
    precondition: Precondition::Goal,
};
const UPDATE: Route = Route {
    stamp: Stamp::Offset,
    precondition: Precondition::Update,
};
const ARCHIVE: Route = Route {
    stamp: Stamp::Naive,
    precondition: Precondition::Goal,
};

/// `POST /goals`: 201, the goal (J), `Location: /goals/{goalId}`.
pub async fn create_goal(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, CREATE, async {
        let user = caller::caller(&request)?;
        let new = body::new_goal(body::object(&request, Model::Create)?)?;
        let goal = store
            .create_goal(&user, new)
            .await
            .map_err(|e| ApiError::store(e, &user, ""))?;
        Ok(Success {
            location: Some(format!("/goals/{}", goal.goal_id)),
            ..Success::new(201, render::goal(&goal, Mode::J))
        })
    })
    .await
}

/// `GET /goals`: 200, `{goals: [Goal (S)], pagination}`.
pub async fn list_goals(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, LIST, async {
        let user = caller::caller(&request)?;
        let query = GoalListQuery::parse(&Params::of(&request))?;
        let mut goals = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let page = PageRequest {
                page_size: Some(100),
                page_token: token.take(),
            };
            let page = store
                .list_goals(&user, &GoalFilter::default(), &page)
                .await
                .map_err(|e| ApiError::store(e, &user, ""))?;
            goals.extend(page.items);
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let selected = select_goals(goals, &query);
        let (page, pagination) = paginate(selected, query.page, query.limit);
        let goals: Vec<Json> = page.iter().map(|g| render::goal(g, Mode::S)).collect();
        Ok(Success::dumps(
            200,
            Json::object()
                .with("goals", goals)
                .with("pagination", pagination.to_json()),
        ))
    })
    .await
}

/// `GET /goals/{goalId}`: 200, the goal (J), archived ones included.
pub async fn get_goal(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, GET, async {
        let user = caller::caller(&request)?;
        let goal_id = caller::goal_id(&request)?;
        let goal = store
            .get_goal(&user, &goal_id)
            .await
            .map_err(|e| ApiError::store(e, &user, &goal_id))?;
        Ok(Success::new(200, render::goal(&goal, Mode::J)))
    })
    .await
}

/// `PUT /goals/{goalId}`: 200, the updated goal (J).
pub async fn update_goal(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, UPDATE, async {
        let user = caller::caller(&request)?;
        let goal_id = caller::goal_id(&request)?;
        let update = body::goal_update(body::object(&request, Model::Update)?)?;
        let goal = store
            .update_goal(&user, &goal_id, update)
            .await
            .map_err(|e| ApiError::store(e, &user, &goal_id))?;
        Ok(Success::new(200, render::goal(&goal, Mode::J)))
    })
    .await
}

/// `DELETE /goals/{goalId}`: 200 `{"message": "Goal archived successfully"}`, also when it was
/// archived already.
pub async fn archive_goal(store: &dyn GoalService, request: Request) -> Response<Body> {
    answer(&request, ARCHIVE, async {
        let user = caller::caller(&request)?;
        let goal_id = caller::goal_id(&request)?;
        store
            .archive_goal(&user, &goal_id)
            .await
            .map_err(|e| ApiError::store(e, &user, &goal_id))?;
        Ok(Success::dumps(
            200,
            Json::object().with("message", "Goal archived successfully"),
        ))
    })
    .await
}
