//! The `goalstore.v1.GoalStore` gRPC service over a [`GoalStore`].
//!
//! Thin by design: admit the call (in-flight limit), decode the request (`goalstore::wire`),
//! call the store, encode the answer. Every store error becomes a status through
//! `wire::status_of`, the one place codes are chosen; the limits here are RESOURCE_EXHAUSTED
//! (too many calls at once) and INVALID_ARGUMENT (too many ids in one call).

use goalstore::wire::{self, status_of};
use goalstore::{ActivityFilter, GoalStore, PageRequest};
use goalstore_proto::v1 as pb;
use goalstore_proto::v1::goal_store_server::GoalStore as GoalStoreRpc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

/// Serves the store over gRPC.
#[derive(Debug, Clone)]
pub struct GoalStoreService {
    store: GoalStore,
    in_flight: Arc<Semaphore>,
    max_batch_ids: usize,
    started: Instant,
}

impl GoalStoreService {
    /// A service over `store` admitting `max_in_flight` calls at once and `max_batch_ids` ids
    /// per BatchGetGoals.
    pub fn new(store: GoalStore, max_in_flight: usize, max_batch_ids: usize) -> Self {
        Self {
            store,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_batch_ids,
            started: Instant::now(),
        }
    }

    /// A place among the calls in flight, or RESOURCE_EXHAUSTED at once when there is none.
    // Status is large, but this is the one error type every RPC returns anyway.
    #[allow(clippy::result_large_err)]
    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            fail(goalstore::Error::ResourceExhausted(
                "too many calls in flight; retry with backoff".into(),
            ))
        })
    }
}

fn fail(error: goalstore::Error) -> Status {
    status_of(&error)
}

// Each call's span (named after its RPC, the parent of the store's `store.<op>` span) is made
// around the service, by `rpc_span`.
#[tonic::async_trait]
impl GoalStoreRpc for GoalStoreService {
    async fn get_goal(
        &self,
        request: Request<pb::GetGoalRequest>,
    ) -> Result<Response<pb::GetGoalResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let goal = self
            .store
            .get_goal(&r.user_id, &r.goal_id)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::GetGoalResponse {
            goal: Some((&goal).into()),
        }))
    }

    async fn batch_get_goals(
        &self,
        request: Request<pb::BatchGetGoalsRequest>,
    ) -> Result<Response<pb::BatchGetGoalsResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        if r.goal_ids.len() > self.max_batch_ids {
            return Err(fail(goalstore::Error::InvalidArgument {
                field: "goal_ids".into(),
                reason: format!(
                    "{} ids; at most {} per call",
                    r.goal_ids.len(),
                    self.max_batch_ids
                ),
            }));
        }
        let batch = self
            .store
            .get_goals(&r.user_id, &r.goal_ids)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::BatchGetGoalsResponse {
            goals: batch.goals.iter().map(Into::into).collect(),
            missing_goal_ids: batch.missing_goal_ids,
        }))
    }

    async fn list_active_goals(
        &self,
        request: Request<pb::ListActiveGoalsRequest>,
    ) -> Result<Response<pb::ListActiveGoalsResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let goals = self
            .store
            .list_active_goals(&r.user_id)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::ListActiveGoalsResponse {
            goals: goals.iter().map(Into::into).collect(),
        }))
    }

    async fn list_goals(
        &self,
        request: Request<pb::ListGoalsRequest>,
    ) -> Result<Response<pb::ListGoalsResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let filter = wire::goal_filter_of(&r).map_err(fail)?;
        let page = PageRequest {
            page_size: wire::page_size_of(r.page_size).map_err(fail)?,
            page_token: wire::page_token_of(&r.page_token),
        };
        let page = self
            .store
            .list_goals(&r.user_id, &filter, &page)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::ListGoalsResponse {
            goals: page.items.iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn create_goal(
        &self,
        request: Request<pb::CreateGoalRequest>,
    ) -> Result<Response<pb::CreateGoalResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let new = wire::new_goal_of(&r).map_err(fail)?;
        let goal = self
            .store
            .create_goal(&r.user_id, new)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::CreateGoalResponse {
            goal: Some((&goal).into()),
        }))
    }

    async fn update_goal(
        &self,
        request: Request<pb::UpdateGoalRequest>,
    ) -> Result<Response<pb::UpdateGoalResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let update = wire::goal_update_of(&r).map_err(fail)?;
        let goal = self
            .store
            .update_goal(&r.user_id, &r.goal_id, update)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::UpdateGoalResponse {
            goal: Some((&goal).into()),
        }))
    }

    async fn archive_goal(
        &self,
        request: Request<pb::ArchiveGoalRequest>,
    ) -> Result<Response<pb::ArchiveGoalResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let goal = self
            .store
            .archive_goal(&r.user_id, &r.goal_id)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::ArchiveGoalResponse {
            goal: Some((&goal).into()),
        }))
    }

    async fn log_activity(
        &self,
        request: Request<pb::LogActivityRequest>,
    ) -> Result<Response<pb::LogActivityResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let new = wire::new_activity_of(&r).map_err(fail)?;
        let logged = self
            .store
            .log_activity(&r.user_id, &r.goal_id, new)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::LogActivityResponse {
            activity: Some((&logged.activity).into()),
            progress: Some((&logged.progress).into()),
        }))
    }

    async fn list_activities(
        &self,
        request: Request<pb::ListActivitiesRequest>,
    ) -> Result<Response<pb::ListActivitiesResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let filter = ActivityFilter {
            from: wire::time_bound_of("from", &r.from).map_err(fail)?,
            to: wire::time_bound_of("to", &r.to).map_err(fail)?,
        };
        let page = PageRequest {
            page_size: wire::page_size_of(r.page_size).map_err(fail)?,
            page_token: wire::page_token_of(&r.page_token),
        };
        let page = self
            .store
            .list_activities(&r.user_id, &r.goal_id, &filter, &page)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::ListActivitiesResponse {
            activities: page.items.iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_progress(
        &self,
        request: Request<pb::GetProgressRequest>,
    ) -> Result<Response<pb::GetProgressResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let progress = self
            .store
            .get_progress(&r.user_id, &r.goal_id)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::GetProgressResponse {
            progress: Some((&progress).into()),
        }))
    }

    async fn publish_events(
        &self,
        request: Request<pb::PublishEventsRequest>,
    ) -> Result<Response<pb::PublishEventsResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let events = r
            .events
            .iter()
            .map(wire::event_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let applied = self.store.apply_events(&events).await.map_err(fail)?;
        Ok(Response::new(pb::PublishEventsResponse {
            applied: i32::try_from(applied).unwrap_or(i32::MAX),
        }))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let _admitted = self.admit()?;
        Ok(Response::new(wire::stats_response_of(
            self.store.strategy(),
            &self.store.stats(),
            self.started.elapsed(),
        )))
    }

    async fn invalidate_user(
        &self,
        request: Request<pb::InvalidateUserRequest>,
    ) -> Result<Response<pb::InvalidateUserResponse>, Status> {
        let _admitted = self.admit()?;
        let r = request.into_inner();
        let keys = self.store.invalidate_user(&r.user_id).await.map_err(fail)?;
        Ok(Response::new(pb::InvalidateUserResponse {
            keys_invalidated: keys as u64,
        }))
    }
}
