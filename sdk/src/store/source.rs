//! The store's side of the consistency auditor (`cache/audit.rs`): what a cache key should hold
//! now, read at the source, and a cached value in the same form, so the two compare byte for byte.
//!
//! Goals are read with a GetItem and active lists with a Query, both strongly consistent; a
//! progress is computed from the goal and its activities read there. A progress is compared
//! without its projected completion date, which moves with the clock, not with writes.
//!
//! It holds the store weakly: the store owns the cache that owns this.

use super::{not_found_goal, GoalStore, Inner};
use crate::cache::audit::Source;
use crate::cache::codec::{self, OwnedProgress};
use crate::cache::keys::{CacheKey, Subject};
use crate::error::Error;
use crate::keys::{GoalId, UserId};
use crate::model::Progress;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::sync::{Arc, Weak};

/// The store, as the auditor's source.
pub(super) struct StoreSource(pub(super) Weak<Inner>);

impl Source for StoreSource {
    fn compare(
        &self,
        key: CacheKey,
        cached: Bytes,
    ) -> BoxFuture<'static, Result<Option<(Bytes, Bytes)>, Error>> {
        let inner = self.0.upgrade();
        async move {
            let Some(inner) = inner else {
                return Ok(None);
            };
            GoalStore { inner }.compare(key, cached).await
        }
        .boxed()
    }
}

impl GoalStore {
    async fn compare(&self, key: CacheKey, cached: Bytes) -> Result<Option<(Bytes, Bytes)>, Error> {
        let Some(cache) = &self.inner.cache else {
            return Ok(None);
        };
        let Some(subject) = cache.keys().subject(&key) else {
            return Ok(None);
        };
        match subject {
            Subject::Goal { user, goal } => {
                let Ok(cached) = (codec::GOAL.decode)(&cached) else {
                    return Ok(None);
                };
                let (user, goal) = (UserId::parse(&user)?, GoalId::parse(&goal)?);
                let current = match self.goal_for_write(&user, &goal, false).await {
                    Ok(read) => Some(read.goal),
                    Err(Error::NotFound { .. }) => None,
                    Err(error) => return Err(error),
                };
                Ok(Some((
                    codec::encode_goal(cached.as_ref()),
                    codec::encode_goal(current.as_ref()),
                )))
            }
            Subject::ActiveGoals { user } => {
                let Ok(cached) = (codec::GOALS.decode)(&cached) else {
                    return Ok(None);
                };
                let current = self.load_active_goals(&UserId::parse(&user)?).await?;
                Ok(Some((
                    codec::encode_goals(&cached),
                    codec::encode_goals(&current),
                )))
            }
            Subject::Progress { goal } => {
                let Ok(mut cached) = (codec::PROGRESS.decode)(&cached) else {
                    return Ok(None);
                };
                let (owner, goal) = (UserId::parse(&cached.user_id)?, GoalId::parse(&goal)?);
                let mut current = OwnedProgress {
                    user_id: cached.user_id.clone(),
                    // From every activity, not the progress state: the auditor checks that too.
                    progress: match self.recompute_progress(&owner, &goal).await {
                        Ok(progress) => progress,
                        // The goal is gone: whatever is cached for it disagrees.
                        Err(Error::NotFound { .. }) => {
                            return Ok(Some((Bytes::new(), Bytes::from_static(b"gone"))))
                        }
                        Err(error) => return Err(error),
                    },
                    state: None,
                };
                // The state beside it is checked by every log's condition, not here.
                cached.state = None;
                cached.progress.projected_completion = None;
                current.progress.projected_completion = None;
                Ok(Some((
                    codec::encode_progress(&cached),
                    codec::encode_progress(&current),
                )))
            }
        }
    }
}

impl GoalStore {
    /// The progress of a goal computed from all of its activities, as the definition has it.
    async fn recompute_progress(&self, user: &UserId, goal_id: &GoalId) -> Result<Progress, Error> {
        let (goal, activities) = futures::try_join!(
            self.load_goal(user, goal_id),
            self.all_activities(user, goal_id)
        )?;
        let goal = goal.ok_or_else(|| not_found_goal(goal_id))?;
        Ok(crate::progress::compute(&goal, &activities, self.now()))
    }
}

/// The auditor's source for the store behind `inner`.
pub(super) fn of(inner: &Arc<Inner>) -> Arc<dyn Source> {
    Arc::new(StoreSource(Arc::downgrade(inner)))
}
