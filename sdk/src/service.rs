//! `GoalService`: the one API of goalstore, whether the store is in-process ([`GoalStore`]) or
//! behind the sidecar ([`crate::Client`]). A handler takes a `&dyn GoalService` and switches
//! between the two by configuration alone.

use crate::error::Result;
use crate::events::Event;
use crate::model::{Activity, Goal, Progress};
use crate::store::{
    ActivityFilter, GoalBatch, GoalFilter, GoalStore, GoalUpdate, LoggedActivity, NewActivity,
    NewGoal, Page, PageRequest,
};
use async_trait::async_trait;

/// Reads and writes goals, activities and progress. See [`GoalStore`] for what each call does.
#[async_trait]
pub trait GoalService: Send + Sync + std::fmt::Debug {
    async fn get_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal>;
    async fn get_goals(&self, user_id: &str, goal_ids: &[String]) -> Result<GoalBatch>;
    async fn list_active_goals(&self, user_id: &str) -> Result<Vec<Goal>>;
    async fn list_goals(
        &self,
        user_id: &str,
        filter: &GoalFilter,
        page: &PageRequest,
    ) -> Result<Page<Goal>>;
    async fn create_goal(&self, user_id: &str, new: NewGoal) -> Result<Goal>;
    async fn update_goal(&self, user_id: &str, goal_id: &str, update: GoalUpdate) -> Result<Goal>;
    async fn archive_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal>;
    async fn log_activity(
        &self,
        user_id: &str,
        goal_id: &str,
        new: NewActivity,
    ) -> Result<LoggedActivity>;
    async fn list_activities(
        &self,
        user_id: &str,
        goal_id: &str,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> Result<Page<Activity>>;
    async fn get_progress(&self, user_id: &str, goal_id: &str) -> Result<Progress>;
    async fn apply_events(&self, events: &[Event]) -> Result<usize>;
}

#[async_trait]
impl GoalService for GoalStore {
    async fn get_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        GoalStore::get_goal(self, user_id, goal_id).await
    }

    async fn get_goals(&self, user_id: &str, goal_ids: &[String]) -> Result<GoalBatch> {
        GoalStore::get_goals(self, user_id, goal_ids).await
    }

    async fn list_active_goals(&self, user_id: &str) -> Result<Vec<Goal>> {
        GoalStore::list_active_goals(self, user_id).await
    }

    async fn list_goals(
        &self,
        user_id: &str,
        filter: &GoalFilter,
        page: &PageRequest,
    ) -> Result<Page<Goal>> {
        GoalStore::list_goals(self, user_id, filter, page).await
    }

    async fn create_goal(&self, user_id: &str, new: NewGoal) -> Result<Goal> {
        GoalStore::create_goal(self, user_id, new).await
    }

    async fn update_goal(&self, user_id: &str, goal_id: &str, update: GoalUpdate) -> Result<Goal> {
        GoalStore::update_goal(self, user_id, goal_id, update).await
    }

    async fn archive_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        GoalStore::archive_goal(self, user_id, goal_id).await
    }

    async fn log_activity(
        &self,
        user_id: &str,
        goal_id: &str,
        new: NewActivity,
    ) -> Result<LoggedActivity> {
        GoalStore::log_activity(self, user_id, goal_id, new).await
    }

    async fn list_activities(
        &self,
        user_id: &str,
        goal_id: &str,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> Result<Page<Activity>> {
        GoalStore::list_activities(self, user_id, goal_id, filter, page).await
    }

    async fn get_progress(&self, user_id: &str, goal_id: &str) -> Result<Progress> {
        GoalStore::get_progress(self, user_id, goal_id).await
    }

    async fn apply_events(&self, events: &[Event]) -> Result<usize> {
        GoalStore::apply_events(self, events).await
    }
}
