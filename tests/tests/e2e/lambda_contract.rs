//! The goals HTTP API as deployed (ORIGIN §2–3), route by route: each of the eight
//! `goalstore_lambda::http::routes` handlers is invoked in process with HTTP API 2.0 events
//! (built from the one template `tests/fixtures/lambda/http-api-v2.json`, its JWT claims naming
//! the caller) against the real DynamoDB-compatible server, seeded with the origin fixture.
//! Checked: status, headers (`Content-Type`, `X-Request-ID`, `Location`), body keys and their
//! order, and each error class: 401 without claims, 400 bad body or query, 404
//! `GOAL_NOT_FOUND`, 422 where the store refuses the goal's state, and never a 500 on input.

use super::lambda::{fixture_text, seeded, seeded_tiered, USER};
use goalstore::GoalService;
use goalstore_lambda::http::lambda_http::{Body, Response};
use goalstore_lambda::http::{render, request_from_event, routes};
use serde_json::{json, Value};

const WALK: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const MILESTONE: &str = "0a1b2c3d-0000-4000-8000-00000000abcd";
const ARCHIVED: &str = "d15ea5e0-3333-4444-8555-666677778888";
const MISSING: &str = "00000000-0000-4000-8000-000000000000";

/// The eight routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Create,
    List,
    Get,
    Update,
    Archive,
    Log,
    ListActivities,
    Progress,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::Create,
        Route::List,
        Route::Get,
        Route::Update,
        Route::Archive,
        Route::Log,
        Route::ListActivities,
        Route::Progress,
    ];

    fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Route::Create => ("POST", "/goals"),
            Route::List => ("GET", "/goals"),
            Route::Get => ("GET", "/goals/{goalId}"),
            Route::Update => ("PUT", "/goals/{goalId}"),
            Route::Archive => ("DELETE", "/goals/{goalId}"),
            Route::Log => ("POST", "/goals/{goalId}/activities"),
            Route::ListActivities => ("GET", "/goals/{goalId}/activities"),
            Route::Progress => ("GET", "/goals/{goalId}/progress"),
        }
    }

    fn has_goal_id(self) -> bool {
        !matches!(self, Route::Create | Route::List)
    }

    /// Error timestamps: offset-form, or naive (ORIGIN §3.1).
    fn offset_stamp(self) -> bool {
        matches!(
            self,
            Route::Create | Route::Update | Route::List | Route::Log
        )
    }
}

/// One request to a route.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    route: Route,
    goal_id: Option<String>,
    query: String,
    body: Option<String>,
    headers: Vec<(String, String)>,
    sub: Option<String>,
}

pub(crate) fn call(route: Route) -> Call {
    Call {
        route,
        goal_id: route.has_goal_id().then(|| WALK.to_owned()),
        query: String::new(),
        body: None,
        headers: Vec::new(),
        sub: Some(USER.to_owned()),
    }
}

impl Call {
    pub(crate) fn goal(mut self, id: &str) -> Self {
        self.goal_id = Some(id.to_owned());
        self
    }
    fn no_goal(mut self) -> Self {
        self.goal_id = None;
        self
    }
    fn query(mut self, query: &str) -> Self {
        self.query = query.to_owned();
        self
    }
    fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
    pub(crate) fn json(self, body: Value) -> Self {
        self.body(body.to_string())
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    /// The call as another caller.
    pub(crate) fn by(mut self, sub: &str) -> Self {
        self.sub = Some(sub.to_owned());
        self
    }
    fn anonymous(mut self) -> Self {
        self.sub = None;
        self
    }

    /// The HTTP API 2.0 event: the template with this call's route, path, query, body and claims.
    fn event(&self) -> anyhow::Result<String> {
        let mut event: Value = serde_json::from_str(&fixture_text("http-api-v2.json")?)?;
        let (method, template) = self.route.method_and_path();
        let path = template.replace("{goalId}", self.goal_id.as_deref().unwrap_or(""));
        let route_key = format!("{method} {template}");
        event["routeKey"] = json!(route_key);
        event["requestContext"]["routeKey"] = json!(route_key);
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["method"] = json!(method);
        event["requestContext"]["http"]["path"] = json!(path);
        event["rawQueryString"] = json!(self.query);
        match &self.goal_id {
            Some(id) => event["pathParameters"] = json!({ "goalId": id }),
            None => {
                if let Some(map) = event.as_object_mut() {
                    map.remove("pathParameters");
                }
            }
        }
        match &self.sub {
            Some(sub) => event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub),
            None => {
                if let Some(map) = event["requestContext"].as_object_mut() {
                    map.remove("authorizer");
                }
            }
        }
        if let Some(body) = &self.body {
            event["body"] = json!(body);
        }
        for (name, value) in &self.headers {
            event["headers"][name.as_str()] = json!(value);
        }
        Ok(event.to_string())
    }

    pub(crate) async fn send(
        &self,
        store: &dyn GoalService,
        request_id: &str,
    ) -> anyhow::Result<Answer> {
        let request = request_from_event(&self.event()?, request_id)?;
        let response = match self.route {
            Route::Create => routes::create_goal(store, request).await,
            Route::List => routes::list_goals(store, request).await,
            Route::Get => routes::get_goal(store, request).await,
            Route::Update => routes::update_goal(store, request).await,
            Route::Archive => routes::archive_goal(store, request).await,
            Route::Log => routes::log_activity(store, request).await,
            Route::ListActivities => routes::list_activities(store, request).await,
            Route::Progress => routes::get_progress(store, request).await,
        };
        Answer::of(response, request_id, self.route)
    }
}

/// A checked response: JSON with the common headers.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    location: Option<String>,
    text: String,
    pub(crate) body: Value,
}

impl Answer {
    fn of(response: Response<Body>, request_id: &str, route: Route) -> anyhow::Result<Self> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        anyhow::ensure!(
            header("content-type").as_deref() == Some("application/json"),
            "content-type {:?}",
            header("content-type")
        );
        anyhow::ensure!(
            header("x-request-id").as_deref() == Some(request_id),
            "x-request-id {:?}",
            header("x-request-id")
        );
        let text = match response.body() {
            Body::Text(text) => text.clone(),
            other => anyhow::bail!("body {other:?}"),
        };
        let body: Value = serde_json::from_str(&text)?;
        let status = response.status().as_u16();
        if status >= 400 {
            check_error_body(&text, &body, request_id, route)?;
        }
        Ok(Self {
            status,
            location: header("location"),
            text,
            body,
        })
    }
}

/// The top-level keys of the JSON object `text`, in order (serde_json's `Value` sorts them).
fn keys(text: &str) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        serde_json::from_str::<Value>(text)?.is_object(),
        "not an object: {text}"
    );
    let mut keys = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut current = String::new();
    let mut expecting_key = false;
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
                current.push(c);
            } else if c == '\\' {
                escaped = true;
                current.push(c);
            } else if c == '"' {
                in_string = false;
                if depth == 1 && expecting_key {
                    keys.push(serde_json::from_str(&format!("\"{current}\""))?);
                    expecting_key = false;
                }
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.clear();
            }
            '{' | '[' => {
                depth += 1;
                expecting_key = depth == 1 && c == '{';
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expecting_key = true,
            _ => {}
        }
    }
    Ok(keys)
}

/// The camelCase keys of a model's key list.
fn camel(fields: &[render::Field]) -> Vec<String> {
    fields
        .iter()
        .map(|f| goalstore_lambda::http::errors::camel_case_key(f.name))
        .collect()
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

fn sorted_keys(value: &Value) -> Vec<String> {
    sorted(
        value
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

/// `{error, message, details | validation_errors, request_id, timestamp}`, in that order.
fn check_error_body(
    text: &str,
    body: &Value,
    request_id: &str,
    route: Route,
) -> anyhow::Result<()> {
    let keys = keys(text)?;
    let extra: Vec<&str> = keys[2..keys.len().saturating_sub(2)]
        .iter()
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        keys.len() >= 4
            && keys[..2] == ["error", "message"]
            && keys[keys.len() - 2..] == ["request_id", "timestamp"]
            && extra
                .iter()
                .all(|k| ["details", "validation_errors"].contains(k)),
        "error keys {keys:?}"
    );
    anyhow::ensure!(body["request_id"] == request_id, "{body}");
    let stamp = body["timestamp"].as_str().unwrap_or_default();
    anyhow::ensure!(
        stamp.ends_with("+00:00") == route.offset_stamp() && stamp.contains('T'),
        "{route:?} timestamp {stamp}"
    );
    Ok(())
}

fn field_names(body: &Value) -> Vec<String> {
    body["validation_errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn new_goal_body(title: &str) -> Value {
    json!({
        "title": title,
        "description": "Twelve in a year",
        "category": "learning",
        "icon": "book",
        "color": "#00AA55",
        "goalPattern": "milestone",
        "target": {"metric": "count", "value": 12, "unit": "books", "direction": "increase",
                   "targetType": "minimum", "targetDate": "2035-12-31T00:00:00+02:00"},
        "context": {"motivation": "Learn", "importanceLevel": 4},
        "visibility": "friends",
        "goalId": "client-chosen-id",
        "rewards": {"pointsPerActivity": 500},
        "metadata": {"client_key": 1}
    })
}

#[tokio::test]
async fn every_route_refuses_a_request_without_claims_first() -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    for route in Route::ALL {
        // Even with a bad body and no goal id: the caller is checked first.
        let answer = call(route)
            .no_goal()
            .body("{not json")
            .anonymous()
            .send(&lambda.store, "anon")
            .await?;
        assert_eq!(answer.status, 401, "{route:?}: {}", answer.body);
        assert_eq!(answer.body["error"], "UNAUTHORIZED");
        assert_eq!(answer.body["message"], "User authentication required");
        // An empty sub is no caller either.
        let mut empty = call(route);
        empty.sub = Some(String::new());
        let answer = empty.send(&lambda.store, "empty").await?;
        assert_eq!(answer.status, 401, "{route:?}");
    }
    // Whatever the handlers left in the table, the existing handlers read.
    seed.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn routes_with_a_goal_id_refuse_a_missing_one_and_answer_404_for_an_unknown_one(
) -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    for route in Route::ALL.into_iter().filter(|r| r.has_goal_id()) {
        let body = (route == Route::Log).then(|| json!({"value": 1, "unit": "words"}));
        let mut request = call(route).no_goal();
        if let Some(body) = &body {
            request = request.json(body.clone());
        }
        let answer = request.send(&lambda.store, "no-id").await?;
        assert_eq!(answer.status, 400, "{route:?}: {}", answer.body);
        assert_eq!(answer.body["error"], "VALIDATION_ERROR");
        assert_eq!(answer.body["message"], "Goal ID is required");
        assert!(answer.body.get("validation_errors").is_none(), "{route:?}");

        // An id that cannot exist is as missing as one that does not (upstream's GetItem misses).
        for missing in [MISSING, "no#such/goal"] {
            let mut request = call(route).goal(missing);
            if let Some(body) = &body {
                request = request.json(body.clone());
            }
            let answer = request.send(&lambda.store, "missing").await?;
            assert_eq!(answer.status, 404, "{route:?}: {}", answer.body);
            assert_eq!(answer.body["error"], "GOAL_NOT_FOUND");
            assert_eq!(
                answer.body["message"],
                format!("Goal {missing} not found for user {USER}")
            );
            assert!(answer.body.get("details").is_none());
        }
    }
    // Whatever the handlers left in the table, the existing handlers read.
    seed.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn create_get_update_and_archive_answer_goals_in_mode_j() -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    let store = &lambda.store;

    let created = call(Route::Create)
        .json(new_goal_body("Read 12 books"))
        .send(store, "create-1")
        .await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let goal_id = created.body["goalId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(goal_id, "client-chosen-id", "clients do not choose ids");
    assert_eq!(created.location, Some(format!("/goals/{goal_id}")));
    assert_eq!(keys(&created.text)?, camel(render::GOAL));
    let body = &created.body;
    assert_eq!(body["userId"], USER);
    assert_eq!(body["status"], "active");
    assert_eq!(body["visibility"], "friends");
    assert_eq!(
        body["target"]["targetDate"], "2035-12-31T00:00:00+02:00",
        "offset kept"
    );
    assert!(created.text.contains(r#""value":12.0"#), "{}", created.text);
    assert!(body["createdAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    assert_eq!(
        body["schedule"]["checkInFrequency"], "weekly",
        "the pattern's default schedule"
    );
    assert_eq!(body["context"]["importanceLevel"], 4);
    assert_eq!(body["context"]["obstacles"], json!([]));
    assert_eq!(
        body["rewards"]["pointsPerActivity"], 10,
        "request rewards ignored"
    );
    assert_eq!(body["metadata"], json!({}), "request metadata ignored");
    assert_eq!(body["isJournalLinked"], false);
    assert_eq!(body["progress"]["trend"], "stable");

    let got = call(Route::Get).goal(&goal_id).send(store, "get-1").await?;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(keys(&got.text)?, camel(render::GOAL));
    assert_eq!(got.body, created.body, "the stored goal answers as created");

    let updated = call(Route::Update)
        .goal(&goal_id)
        .json(json!({"title": "Read 15 books", "description": "More", "goal_pattern": "streak"}))
        .send(store, "update-1")
        .await?;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["title"], "Read 15 books");
    assert_eq!(updated.body["goalPattern"], "milestone");
    assert_eq!(keys(&updated.text)?, camel(render::GOAL));

    let archived = call(Route::Archive)
        .goal(&goal_id)
        .send(store, "archive-1")
        .await?;
    assert_eq!(archived.status, 200, "{}", archived.body);
    assert_eq!(
        archived.text, r#"{"message": "Goal archived successfully"}"#,
        "json.dumps"
    );
    let again = call(Route::Archive)
        .goal(&goal_id)
        .send(store, "archive-2")
        .await?;
    assert_eq!(
        again.status, 200,
        "archiving an archived goal: {}",
        again.body
    );
    let got = call(Route::Get).goal(&goal_id).send(store, "get-2").await?;
    assert_eq!(
        (got.status, got.body["status"].as_str()),
        (200, Some("archived"))
    );

    // An archived goal cannot be modified: 422.
    let refused = call(Route::Update)
        .goal(&goal_id)
        .json(json!({"title": "x"}))
        .send(store, "update-2")
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["error"], "GOAL_ALREADY_COMPLETED");
    assert_eq!(refused.body["details"], json!({ "goal_id": goal_id }));
    // Whatever the handlers left in the table, the existing handlers read.
    seed.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn bad_bodies_answer_400_with_camel_case_fields() -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    let store = &lambda.store;
    let cases: Vec<(Call, Vec<&str>)> = vec![
        (
            call(Route::Create),
            vec!["title", "category", "goalPattern", "target"],
        ),
        (call(Route::Create).body("{not json"), vec!["body"]),
        (call(Route::Create).body("null"), vec!["body"]),
        (call(Route::Create).body("[1, 2]"), vec!["request"]),
        (
            call(Route::Create).json(json!({"title": "", "category": "x", "goalPattern": "daily",
                "target": {"metric": "count", "value": -1, "unit": "u", "direction": "up"}})),
            vec!["title", "target.value", "goalPattern"],
        ),
        (
            call(Route::Update).json(json!({"target": {"value": 2}})),
            vec!["target.metric", "target.unit", "target.direction"],
        ),
        (call(Route::Update).body("7"), vec![]),
        (
            call(Route::Log)
                .goal(MILESTONE)
                .json(json!({"unit": "words"})),
            vec!["value"],
        ),
        (
            call(Route::Log)
                .goal(MILESTONE)
                .json(json!({"value": "lots"})),
            vec!["value"],
        ),
        (
            call(Route::Log)
                .goal(MILESTONE)
                .json(json!({"value": 1, "activityType": "run"})),
            vec!["activityType"],
        ),
        (
            call(Route::Log).goal(MILESTONE).body("\"text\""),
            vec!["request"],
        ),
    ];
    for (request, fields) in cases {
        let answer = request.send(store, "bad-body").await?;
        assert_eq!(answer.status, 400, "{request:?}: {}", answer.body);
        assert_eq!(answer.body["error"], "VALIDATION_ERROR");
        assert_eq!(answer.body["message"], "Validation failed");
        assert_eq!(
            field_names(&answer.body),
            fields,
            "{request:?}: {}",
            answer.body
        );
    }
    let missing = call(Route::Create).send(store, "r").await?;
    assert_eq!(
        missing.body["validation_errors"][0]["message"],
        "Field required"
    );
    // Whatever the handlers left in the table, the existing handlers read.
    seed.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn list_goals_filters_sorts_and_pages_in_mode_s() -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    let store = &lambda.store;
    let ids = |answer: &Answer| -> Vec<String> {
        answer.body["goals"]
            .as_array()
            .map(|goals| {
                goals
                    .iter()
                    .filter_map(|g| g["goalId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    let all = call(Route::List).send(store, "list-1").await?;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(keys(&all.text)?, ["goals", "pagination"]);
    assert!(
        all.text.starts_with(r#"{"goals": [{"goalId": ""#),
        "json.dumps: {}",
        all.text
    );
    assert_eq!(
        ids(&all).len(),
        5,
        "every goal but the archived one: {}",
        all.body
    );
    assert!(!ids(&all).contains(&ARCHIVED.to_owned()));
    assert_eq!(
        all.body["pagination"],
        json!({"page": 1, "limit": 20, "total": 5, "pages": 1})
    );
    let first = &all.body["goals"][0];
    assert!(
        first["createdAt"]
            .as_str()
            .is_some_and(|t| t.contains(' ') && t.ends_with("+00:00")),
        "S mode: {first}"
    );
    assert_eq!(sorted_keys(first), sorted(camel(render::GOAL)));

    let archived = call(Route::List)
        .query("status=archived")
        .send(store, "l")
        .await?;
    assert_eq!(ids(&archived), [ARCHIVED]);
    let repeated = call(Route::List)
        .query("status=active&status=paused&goalPattern=milestone,target&sort=title_asc")
        .send(store, "l")
        .await?;
    // "Weigh 75 kg" < "Write 50,000 words".
    assert_eq!(
        ids(&repeated),
        ["b4f5e6a7-1111-4222-8333-444455556666", MILESTONE]
    );
    let category = call(Route::List)
        .query("category=HEALTH&limit=2&page=9")
        .send(store, "l")
        .await?;
    assert_eq!(ids(&category).len(), 1, "page 9 of 3 is page 3");
    assert_eq!(
        category.body["pagination"],
        json!({"page": 3, "limit": 2, "total": 5, "pages": 3})
    );
    let none = call(Route::List)
        .query("category=none&page=4")
        .send(store, "l")
        .await?;
    assert_eq!(
        none.body["pagination"],
        json!({"page": 4, "limit": 20, "total": 0, "pages": 0})
    );

    for query in [
        "status=deleted",
        "goalPattern=daily",
        "status=active,Active",
    ] {
        let bad = call(Route::List)
            .query(query)
            .send(store, "bad-query")
            .await?;
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert_eq!(bad.body["message"], "Invalid query parameters");
        assert_eq!(field_names(&bad.body), ["query"]);
    }
    // Whatever the handlers left in the table, the existing handlers read.
    seed.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn log_activity_answers_the_activity_and_list_activities_finds_it() -> anyhow::Result<()> {
    let (_seed, lambda) = seeded().await?;
    log_and_list(&lambda.store).await
}

#[tokio::test]
async fn log_activity_and_list_activities_with_tiered() -> anyhow::Result<()> {
    let (_seed, lambda, _redis) = seeded_tiered().await?;
    log_and_list(&lambda.store).await
}

async fn log_and_list(store: &dyn GoalService) -> anyhow::Result<()> {
    let logged = call(Route::Log)
        .goal(MILESTONE)
        .header("X-TimeZone", "Europe/Paris")
        .json(
            json!({"value": 1200, "unit": "words", "activityDate": "2025-01-04",
                     "note": "Chapter 3", "activityId": "client-id",
                     "context": {"mood": "focused", "energyLevel": 4}}),
        )
        .send(store, "log-1")
        .await?;
    assert_eq!(logged.status, 201, "{}", logged.body);
    assert_eq!(keys(&logged.text)?, camel(render::ACTIVITY));
    let activity = &logged.body;
    assert_ne!(activity["activityId"], "client-id");
    assert_eq!(activity["goalId"], MILESTONE);
    assert_eq!(activity["userId"], USER);
    assert!(
        logged.text.contains(r#""value":1200.0"#),
        "compact: {}",
        logged.text
    );
    assert_eq!(activity["activityDate"], "2025-01-04T00:00:00Z");
    assert_eq!(activity["timezone"], "Europe/Paris");
    assert_eq!(activity["activityType"], "progress");
    assert_eq!(activity["source"], "manual");
    assert_eq!(activity["attachments"], json!([]));
    assert_eq!(activity["context"]["dayOfWeek"], "saturday");
    assert_eq!(activity["context"]["timeOfDay"], "night");
    assert_eq!(activity["context"]["isWeekend"], true);
    assert_eq!(activity["context"]["energyLevel"], 4);
    assert_eq!(activity["context"]["mood"], "focused");

    // No date is now, which is after this goal's target date (2025-11-30): their rule refuses it.
    let late = call(Route::Log)
        .goal(MILESTONE)
        .json(json!({"value": 5, "unit": ""}))
        .send(store, "log-late")
        .await?;
    assert_eq!(late.status, 422, "{}", late.body);
    assert_eq!(late.body["error"], "ACTIVITY_VALIDATION_ERROR");
    assert_eq!(
        late.body["details"]["validation_errors"],
        json!(["Activity date cannot be after goal target date"])
    );

    // An empty unit is the goal's; no header is UTC.
    let plain = call(Route::Log)
        .goal(MILESTONE)
        .json(json!({"value": 5, "unit": "", "activityDate": "2025-01-05"}))
        .send(store, "log-2")
        .await?;
    assert_eq!(plain.status, 201, "{}", plain.body);
    assert_eq!(plain.body["unit"], "words");
    assert_eq!(plain.body["timezone"], "UTC");

    // The archived goal refuses activities: 422.
    let refused = call(Route::Log)
        .goal(ARCHIVED)
        .json(json!({"value": 1, "unit": "minutes"}))
        .send(store, "log-3")
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["error"], "ACTIVITY_VALIDATION_ERROR");
    assert!(refused.body["details"]["validation_errors"].is_array());

    let listed = call(Route::ListActivities)
        .goal(MILESTONE)
        .send(store, "list-a")
        .await?;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(keys(&listed.text)?, ["activities", "pagination"]);
    let activities = listed.body["activities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        activities.len(),
        4,
        "two seeded, two logged: {}",
        listed.body
    );
    assert_eq!(
        activities[0]["activityId"], plain.body["activityId"],
        "newest logged first"
    );
    assert_eq!(activities[1]["activityId"], logged.body["activityId"]);
    assert_eq!(
        activities[1]["activityDate"], "2025-01-04 00:00:00+00:00",
        "S mode"
    );
    assert_eq!(
        listed.body["pagination"],
        json!({"page": 1, "limit": 20, "total": 4, "pages": 1})
    );

    let paged = call(Route::ListActivities)
        .goal(MILESTONE)
        .query("limit=3&page=2&activityType=progress,completed")
        .send(store, "list-b")
        .await?;
    assert_eq!(paged.body["activities"].as_array().map(Vec::len), Some(1));
    // The date range is on logged_at and needs both ends: the seeded ones were logged in 2025-01.
    let ranged = call(Route::ListActivities)
        .goal(MILESTONE)
        .query("startDate=2025-01-06&endDate=2025-01-06T23:00:00")
        .send(store, "list-c")
        .await?;
    assert_eq!(ranged.body["pagination"]["total"], 1, "{}", ranged.body);
    let lone = call(Route::ListActivities)
        .goal(MILESTONE)
        .query("startDate=2030-01-01")
        .send(store, "list-d")
        .await?;
    assert_eq!(
        lone.body["pagination"]["total"], 4,
        "a lone startDate is ignored"
    );

    for query in [
        "startDate=yesterday&endDate=2025-01-01",
        "startDate=2025-02-01&endDate=2025-01-01",
        "activityType=run",
    ] {
        let bad = call(Route::ListActivities)
            .goal(MILESTONE)
            .query(query)
            .send(store, "bad-query")
            .await?;
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert_eq!(bad.body["message"], "Invalid query parameters");
        assert_eq!(field_names(&bad.body), ["query"]);
    }
    Ok(())
}

#[tokio::test]
async fn get_progress_answers_progress_statistics_and_insights() -> anyhow::Result<()> {
    let (_seed, lambda) = seeded().await?;
    let store = &lambda.store;
    let answer = call(Route::Progress)
        .goal(MILESTONE)
        .query("period=month")
        .send(store, "progress-1")
        .await?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        keys(&answer.text)?,
        ["goalId", "period", "progress", "statistics", "insights"]
    );
    assert_eq!(answer.body["goalId"], MILESTONE);
    assert_eq!(answer.body["period"], "month");
    // Nested key order is checked by the unit tests of `render`; here, the key sets.
    assert_eq!(
        sorted_keys(&answer.body["progress"]),
        sorted(camel(render::PROGRESS))
    );
    assert_eq!(
        sorted_keys(&answer.body["statistics"]),
        sorted(
            [
                "totalActivities",
                "completedActivities",
                "skippedActivities",
                "averageValue",
                "bestValue",
                "worstValue",
                "consistency"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(
        sorted_keys(&answer.body["insights"]),
        sorted(
            [
                "bestTimeOfDay",
                "bestDayOfWeek",
                "successPatterns",
                "recommendations"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert!(answer.body["progress"]["percentComplete"].is_f64());
    let default = call(Route::Progress).send(store, "progress-2").await?;
    assert_eq!(default.body["period"], "current");

    let bad = call(Route::Progress)
        .query("period=decade")
        .send(store, "progress-3")
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.body["error"], "VALIDATION_ERROR");
    assert!(bad.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("quarter")));
    assert!(bad.body.get("validation_errors").is_none());
    Ok(())
}

/// Hostile input on every route: an answer below 500 each time.
#[tokio::test]
async fn no_input_makes_a_route_answer_500() -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    let bodies = [
        "",
        "null",
        "{not json",
        "[]",
        "\"\u{0}\"",
        "1e999",
        r#"{"value": 1e308, "unit": "words"}"#,
        r#"{"title": "x", "target": [], "schedule": 3, "context": "c"}"#,
        r#"{"activityDate": {"a": 1}, "value": true}"#,
        r#"{"value": 1, "unit": "words", "activityDate": "9999-12-31", "location": []}"#,
        r#"{"title": "t", "category": "c", "goalPattern": "streak", "target": {"metric": "count", "value": 1e300, "unit": "u", "direction": "increase"}}"#,
    ];
    let queries = [
        "",
        "page=-1&limit=99999999999999999999",
        "status=,,,&sort=%00",
        "period=%FF",
        "startDate=2025-01-01&endDate=9999-99-99",
    ];
    let goal_ids = [WALK, "x#y", "../..", &"g".repeat(2000)];
    let mut count = 0;
    for route in Route::ALL {
        // One dimension at a time: each body, each query, each goal id.
        let mut requests: Vec<Call> = bodies.iter().map(|b| call(route).body(*b)).collect();
        requests.extend(queries.iter().map(|q| call(route).query(q)));
        if route.has_goal_id() {
            requests.extend(goal_ids.iter().map(|id| call(route).goal(id)));
        }
        for request in requests {
            let answer = request.send(&lambda.store, "hostile").await?;
            assert!(answer.status < 500, "{request:?}: {}", answer.body);
            count += 1;
        }
    }
    assert_eq!(
        count,
        8 * (bodies.len() + queries.len()) + 6 * goal_ids.len()
    );
    // Whatever the handlers left in the table, the existing handlers read.
    seed.assert_origin_readable().await?;
    Ok(())
}

#[tokio::test]
async fn business_rules_answer_422_with_their_codes_and_details() -> anyhow::Result<()> {
    let (seed, lambda) = seeded().await?;
    let store = &lambda.store;
    let user = "rules-user";
    let created = call(Route::Create)
        .by(user)
        .json(new_goal_body("Twelve books"))
        .send(store, "rules-1")
        .await?;
    assert_eq!(created.status, 201, "{}", created.body);

    // The same title again, in another case: their duplicate rule.
    let duplicate = call(Route::Create)
        .by(user)
        .json(new_goal_body("TWELVE BOOKS"))
        .send(store, "rules-2")
        .await?;
    assert_eq!(duplicate.status, 422, "{}", duplicate.body);
    assert_eq!(duplicate.body["error"], "GOAL_VALIDATION_ERROR");
    assert_eq!(duplicate.body["message"], "Goal validation failed");
    let reasons = duplicate.body["details"]["validation_errors"].clone();
    assert!(
        reasons.as_array().is_some_and(|r| r.len() == 1),
        "{reasons}"
    );

    // A target date in the past, and a recurring goal with one: every failing rule is listed.
    let mut past = new_goal_body("Past");
    past["goalPattern"] = json!("recurring");
    past["target"]["period"] = json!("week");
    past["target"]["targetDate"] = json!("2020-01-01T00:00:00Z");
    let refused = call(Route::Create)
        .by(user)
        .json(past)
        .send(store, "rules-3")
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        refused.body["details"]["validation_errors"],
        json!(["Recurring goals should not have a target date"]),
        "the pattern's configuration is checked first, alone, as theirs"
    );

    // A streak takes only progress activities: 400 INVALID_GOAL_PATTERN_OPERATION.
    let mut streak = new_goal_body("Stretch daily");
    streak["goalPattern"] = json!("streak");
    streak["target"] =
        json!({"metric": "count", "value": 30, "unit": "days", "direction": "increase"});
    let streak = call(Route::Create)
        .by(user)
        .json(streak)
        .send(store, "rules-4")
        .await?;
    assert_eq!(streak.status, 201, "{}", streak.body);
    let goal_id = streak.body["goalId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let skipped = call(Route::Log)
        .by(user)
        .goal(&goal_id)
        .json(json!({"value": 1, "unit": "days", "activityType": "skipped"}))
        .send(store, "rules-5")
        .await?;
    assert_eq!(skipped.status, 400, "{}", skipped.body);
    assert_eq!(skipped.body["error"], "INVALID_GOAL_PATTERN_OPERATION");
    assert_eq!(
        skipped.body["details"],
        json!({"pattern": "streak", "operation": "skipped"})
    );
    // Paused goals accept activities; a unit other than the target's does not.
    let paused = call(Route::Update)
        .by(user)
        .goal(&goal_id)
        .json(json!({"status": "paused"}))
        .send(store, "rules-6")
        .await?;
    assert_eq!(paused.status, 200, "{}", paused.body);
    let logged = call(Route::Log)
        .by(user)
        .goal(&goal_id)
        .json(json!({"value": 1, "unit": "days"}))
        .send(store, "rules-7")
        .await?;
    assert_eq!(
        logged.status, 201,
        "a paused goal accepts activities: {}",
        logged.body
    );
    let wrong_unit = call(Route::Log)
        .by(user)
        .goal(&goal_id)
        .json(json!({"value": 1, "unit": "Days"}))
        .send(store, "rules-8")
        .await?;
    assert_eq!(wrong_unit.status, 422, "{}", wrong_unit.body);
    assert_eq!(wrong_unit.body["error"], "ACTIVITY_VALIDATION_ERROR");
    // Only active or paused by update.
    let completed = call(Route::Update)
        .by(user)
        .goal(&goal_id)
        .json(json!({"status": "completed"}))
        .send(store, "rules-9")
        .await?;
    assert_eq!(completed.status, 422, "{}", completed.body);
    assert_eq!(completed.body["error"], "GOAL_VALIDATION_ERROR");
    seed.assert_origin_readable().await?;
    Ok(())
}
