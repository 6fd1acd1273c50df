//! The store's reads: goals one by one or in batches, the active list, pages of goals and of
//! activities, and progress — each through the cache when there is one, with the loaders that
//! fill it from the table.

use super::*;

impl GoalStore {
    /// One goal of a user.
    pub async fn get_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        self.observe("get_goal", user_id, self.fetch_goal(user_id, goal_id))
            .await
    }

    /// `get_goal` without the metrics and logs of a public call (for calls made within one).
    pub(super) async fn fetch_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        let user = UserId::parse(user_id)?;
        let goal = GoalId::parse(goal_id)?;
        let found = match &self.inner.cache {
            None => self.load_goal(&user, &goal).await?,
            Some(cache) => {
                let store = self.clone();
                let key = cache.keys().goal(&user, &goal);
                cache
                    .read_through(key, codec::GOAL, move || {
                        async move {
                            let found = store.load_goal(&user, &goal).await?;
                            Ok(codec::encode_goal(found.as_ref()))
                        }
                        .boxed()
                    })
                    .await?
            }
        };
        // `goal_id` is valid: it parsed above.
        found.ok_or_else(|| Error::NotFound {
            kind: "goal",
            id: goal_id.to_owned(),
        })
    }

    /// One goal from the table, through the batch loader.
    pub(super) async fn load_goal(&self, user: &UserId, goal: &GoalId) -> Result<Option<Goal>> {
        match self.inner.loader.load(goal_key(user, goal)).await? {
            Some(item) => goal_from_item(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The goals among `goal_ids` that exist, and the ids that do not. Every id is checked
    /// before anything is read; duplicates are read once.
    pub async fn get_goals(&self, user_id: &str, goal_ids: &[String]) -> Result<GoalBatch> {
        self.observe("get_goals", user_id, async {
            let user = UserId::parse(user_id)?;
            let mut ids: Vec<GoalId> = Vec::with_capacity(goal_ids.len());
            let mut seen = std::collections::HashSet::with_capacity(goal_ids.len());
            for id in goal_ids {
                let goal = GoalId::parse(id)?;
                if seen.insert(goal.clone()) {
                    ids.push(goal);
                }
            }
            let found: Vec<Option<Goal>> = match &self.inner.cache {
                None => self.load_goals(&user, &ids).await?,
                Some(cache) => {
                    let keys = ids
                        .iter()
                        .map(|goal| cache.keys().goal(&user, goal))
                        .collect();
                    let store = self.clone();
                    let ids = ids.clone();
                    cache
                        .read_through_many(keys, codec::GOAL, move |misses| {
                            async move {
                                let wanted: Vec<GoalId> =
                                    misses.iter().map(|i| ids[*i].clone()).collect();
                                let found = store.load_goals(&user, &wanted).await?;
                                Ok(found
                                    .iter()
                                    .map(|g| codec::encode_goal(g.as_ref()))
                                    .collect())
                            }
                            .boxed()
                        })
                        .await?
                }
            };
            let mut batch = GoalBatch::default();
            for (goal, found) in ids.into_iter().zip(found) {
                match found {
                    Some(found) => batch.goals.push(found),
                    None => batch.missing_goal_ids.push(goal.as_str().to_owned()),
                }
            }
            Ok(batch)
        })
        .await
    }

    /// Goals from the table, all queued at once so they form as few BatchGetItems as possible.
    pub(super) async fn load_goals(
        &self,
        user: &UserId,
        ids: &[GoalId],
    ) -> Result<Vec<Option<Goal>>> {
        let keys = ids.iter().map(|goal| goal_key(user, goal)).collect();
        let items = self.inner.loader.load_many(keys).await;
        items
            .into_iter()
            .map(|item| match item? {
                Some(item) => goal_from_item(&item).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// Every active goal of a user, oldest first. Queries the user's partition, not the
    /// `STATUS#active` index (one hot partition for all users).
    pub async fn list_active_goals(&self, user_id: &str) -> Result<Vec<Goal>> {
        self.observe("list_active_goals", user_id, async {
            self.fetch_active_goals(&UserId::parse(user_id)?).await
        })
        .await
    }

    /// `list_active_goals` without the metrics and logs of a public call.
    pub(super) async fn fetch_active_goals(&self, user: &UserId) -> Result<Vec<Goal>> {
        match &self.inner.cache {
            None => self.load_active_goals(user).await,
            Some(cache) => {
                let store = self.clone();
                let key = cache.keys().active_goals(user);
                let user = user.clone();
                cache
                    .read_through(key, codec::GOALS, move || {
                        async move {
                            Ok(codec::encode_goals(&store.load_active_goals(&user).await?))
                        }
                        .boxed()
                    })
                    .await
            }
        }
    }

    pub(super) async fn load_active_goals(&self, user: &UserId) -> Result<Vec<Goal>> {
        let filter = GoalFilter {
            status: Some(GoalStatus::Active),
            ..GoalFilter::default()
        };
        let items = self
            .query_all(user, SortKeyRange::BeginsWith(GOAL_SK_PREFIX.into()))
            .await?;
        let mut goals: Vec<Goal> = decode_goals(&items).filter(|g| filter.matches(g)).collect();
        goals.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(goals)
    }

    /// A page of a user's goals that match `filter`, in goal-id order.
    pub async fn list_goals(
        &self,
        user_id: &str,
        filter: &GoalFilter,
        page: &PageRequest,
    ) -> Result<Page<Goal>> {
        self.observe("list_goals", user_id, async {
            let user = UserId::parse(user_id)?;
            let page_size = self.page_size(page)?;
            let mut start_after = decode_page_token(page.page_token.as_deref(), GOAL_SK_PREFIX)?;
            let mut goals = Vec::new();
            loop {
                let result = self
                    .inner
                    .table
                    .query(&Query {
                        pk: crate::keys::user_partition(&user),
                        sort_keys: SortKeyRange::BeginsWith(GOAL_SK_PREFIX.into()),
                        descending: false,
                        limit: Some(page_size.max(100)),
                        start_after: start_after.clone(),
                    })
                    .await?;
                let count = result.items.len();
                for (index, item) in result.items.iter().enumerate() {
                    start_after = crate::table::item_key(item).map(|k| k.sk);
                    if let Some(goal) = decode_goals(std::slice::from_ref(item)).next() {
                        if filter.matches(&goal) {
                            goals.push(goal);
                        }
                    }
                    if goals.len() == page_size as usize {
                        let more = index + 1 < count || result.last_sort_key.is_some();
                        return Ok(Page {
                            items: goals,
                            next_page_token: more.then(|| encode_page_token(start_after)).flatten(),
                        });
                    }
                }
                match result.last_sort_key {
                    Some(last) => start_after = Some(last),
                    None => {
                        return Ok(Page {
                            items: goals,
                            next_page_token: None,
                        })
                    }
                }
            }
        })
        .await
    }

    /// A page of a goal's activities logged within `filter`, newest first.
    pub async fn list_activities(
        &self,
        user_id: &str,
        goal_id: &str,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> Result<Page<Activity>> {
        self.observe("list_activities", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let page_size = self.page_size(page)?;
            let prefix = activity_sk_prefix(&goal);
            let bound = |field: &'static str, at: &Option<Timestamp>, open: &str| match at {
                None => Ok(format!("{prefix}{open}")),
                Some(at) => at
                    .instant()
                    .map(|instant| format!("{prefix}{}", crate::model::key_form(instant)))
                    .ok_or_else(|| Error::invalid(field, "is not an ISO-8601 time")),
            };
            // '0' sorts before every time and '~' after, within the goal's prefix.
            let low = bound("from", &filter.from, "0")?;
            let high = bound("to", &filter.to, "~")?;
            let start_after = decode_page_token(page.page_token.as_deref(), &prefix)?;
            let result = self
                .inner
                .table
                .query(&Query {
                    pk: crate::keys::user_partition(&user),
                    sort_keys: SortKeyRange::Between { low, high },
                    descending: true,
                    limit: Some(page_size),
                    start_after,
                })
                .await?;
            let items = result
                .items
                .iter()
                .filter_map(|item| match activity_from_item(item) {
                    Ok(activity) => Some(activity),
                    Err(error) => {
                        tracing::warn!(%error, "skipping an activity item that does not decode");
                        None
                    }
                })
                .collect();
            Ok(Page {
                items,
                next_page_token: encode_page_token(result.last_sort_key),
            })
        })
        .await
    }

    /// A goal's progress, computed now from the goal and all of its activities.
    pub async fn get_progress(&self, user_id: &str, goal_id: &str) -> Result<Progress> {
        self.observe("get_progress", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal_id = GoalId::parse(goal_id)?;
            let Some(cache) = &self.inner.cache else {
                return self.compute_progress(&user, &goal_id).await;
            };
            let store = self.clone();
            let key = cache.keys().progress(&goal_id);
            let (owner, goal) = (user.clone(), goal_id.clone());
            let cached = cache
                .read_through(key, codec::PROGRESS, move || {
                    async move {
                        let (goal, state) = store.progress_state(&owner, &goal).await?;
                        let progress = state.tally.state.progress(&goal, store.now());
                        let cached = store.store_for_cache(&owner, &goal, &state).await;
                        Ok(codec::encode_progress(&OwnedProgress {
                            user_id: owner.as_str().to_owned(),
                            progress,
                            state: cached,
                        }))
                    }
                    .boxed()
                })
                .await?;
            if cached.user_id == user.as_str() {
                Ok(cached.progress)
            } else {
                // Goal ids are unique per user only: this entry is another user's goal of the same id.
                self.compute_progress(&user, &goal_id).await
            }
        })
        .await
    }

    /// Progress from the table (see [`GoalStore::progress_state`]); a state the read had to
    /// catch up is written back on the side.
    pub(super) async fn compute_progress(
        &self,
        user: &UserId,
        goal_id: &GoalId,
    ) -> Result<Progress> {
        let (goal, state) = self.progress_state(user, goal_id).await?;
        let progress = state.tally.state.progress(&goal, self.now());
        self.store_caught_up(user, &goal, state);
        Ok(progress)
    }

    /// A goal and its progress state, caught up, read in parallel at the source, never through
    /// the goal cache: what they give fills the progress cache for an hour, and a goal read from
    /// a local tier that has not yet heard of another instance's update would store a progress
    /// computed from the old target there (#15 finding 5).
    pub(super) async fn progress_state(
        &self,
        user: &UserId,
        goal_id: &GoalId,
    ) -> Result<(Goal, super::state::GoalState)> {
        let (goal, state) = futures::try_join!(
            self.load_goal(user, goal_id),
            self.read_state(user, goal_id)
        )?;
        Ok((goal.ok_or_else(|| not_found_goal(goal_id))?, state))
    }

    /// Every activity of a goal, oldest first.
    pub(super) async fn all_activities(
        &self,
        user: &UserId,
        goal: &GoalId,
    ) -> Result<Vec<Activity>> {
        let items = self
            .query_all(user, SortKeyRange::BeginsWith(activity_sk_prefix(goal)))
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| activity_from_item(item).ok())
            .collect())
    }

    /// Every item of `user`'s partition in `sort_keys`, all pages, in sort-key order.
    pub(super) async fn query_all(
        &self,
        user: &UserId,
        sort_keys: SortKeyRange,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .inner
                .table
                .query(&Query {
                    pk: crate::keys::user_partition(user),
                    sort_keys: sort_keys.clone(),
                    descending: false,
                    limit: None,
                    start_after,
                })
                .await?;
            items.extend(page.items);
            match page.last_sort_key {
                Some(last) => start_after = Some(last),
                None => return Ok(items),
            }
        }
    }
}

pub(super) fn decode_goals(items: &[Item]) -> impl Iterator<Item = Goal> + '_ {
    items.iter().filter_map(|item| match goal_from_item(item) {
        Ok(goal) => Some(goal),
        Err(error) => {
            tracing::warn!(%error, "skipping a goal item that does not decode");
            None
        }
    })
}

pub(super) fn encode_page_token(sort_key: Option<String>) -> Option<String> {
    sort_key.map(|sk| URL_SAFE_NO_PAD.encode(sk))
}

/// The sort key a page token stands for; it must lie under `prefix`, so a token can neither
/// leave the listing it came from nor the caller's partition.
pub(super) fn decode_page_token(token: Option<&str>, prefix: &str) -> Result<Option<String>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let invalid = || Error::invalid("page_token", "is not a token this listing returned");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let sort_key = String::from_utf8(bytes).map_err(|_| invalid())?;
    if !sort_key.starts_with(prefix) {
        return Err(invalid());
    }
    Ok(Some(sort_key))
}
