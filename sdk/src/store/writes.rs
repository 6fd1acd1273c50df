//! The store's goal writes: create, update and archive, as conditional writes over the version
//! read (the cached one first; retried from the table on conflict), with their idempotency
//! markers and cache leases (written through, patched or invalidated once the write landed).
//! Logging an activity is `log.rs`.

use super::state::GoalState;
use super::*;

impl GoalStore {
    /// Creates a goal. Refused with `AlreadyExists` when the id is taken.
    pub async fn create_goal(&self, user_id: &str, new: NewGoal) -> Result<Goal> {
        self.observe("create_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal_id = match &new.goal_id {
                Some(id) => GoalId::parse(id)?,
                None => GoalId::parse(&uuid::Uuid::new_v4().to_string())?,
            };
            let request_fingerprint = new
                .goal_id
                .is_some()
                .then(|| idempotency::fingerprint(&new));
            let mut new = new;
            crate::validate::new_goal(&mut new)?;
            let status = new.status.unwrap_or(GoalStatus::Active);
            if !matches!(
                status,
                GoalStatus::Draft | GoalStatus::Active | GoalStatus::Paused
            ) {
                return Err(Error::invalid(
                    "status",
                    format!("a new goal cannot be {status}; use draft, active or paused"),
                ));
            }
            let now = Timestamp::from_instant(self.now());
            let mut goal = Goal {
                goal_id: goal_id.as_str().to_owned(),
                user_id: user.as_str().to_owned(),
                title: new.title,
                description: new.description,
                category: new.category,
                icon: new.icon,
                color: new.color,
                goal_pattern: new.goal_pattern,
                target: new.target,
                schedule: new.schedule,
                progress: Progress::default(),
                context: new.context,
                rewards: new.rewards,
                status,
                visibility: new.visibility,
                created_at: now.clone(),
                updated_at: now,
                completed_at: None,
                archived_at: None,
                metadata: new.metadata,
                is_journal_linked: new.is_journal_linked,
            };
            crate::validate::goal(&mut goal)?;
            // The rules count the user's active goals: the cached list will do. It is current but
            // for the pub/sub window, and no rule is a condition of the write anyway: two creates
            // racing each other could both pass with a table read too.
            let active = self.fetch_active_goals(&user).await?;
            if let Err(refused) = crate::validate::rules::new_goal(
                goal.goal_pattern,
                &goal.title,
                &goal.target,
                &active,
                self.now(),
            ) {
                // A retry of a create that landed sees its own goal as a duplicate title: the
                // first result wins over the rules, as it would had nothing changed since.
                if request_fingerprint.is_some() {
                    let sk = idempotency::goal_marker_sk(&goal_id);
                    match self
                        .repeat(&user, &sk, request_fingerprint.as_ref())
                        .await?
                    {
                        Some(idempotency::Repeat::Same(first)) => {
                            if let Some(goal) = idempotency::field(&first, "goal")? {
                                // The first attempt may have been cancelled before it invalidated.
                                self.invalidate(&user, &goal_id, &EventKind::GoalCreated)
                                    .await;
                                return Ok(goal);
                            }
                        }
                        Some(idempotency::Repeat::Different) => {
                            return Err(Error::AlreadyExists {
                                kind: "goal",
                                id: goal.goal_id,
                            })
                        }
                        None => {}
                    }
                }
                return Err(refused);
            }
            // What the existing handlers' create writes: every default, none computed.
            goal.progress = Progress {
                success_rate: Some(0.0),
                trend: Some(crate::model::Trend::Stable),
                ..Progress::default()
            };
            let item = fits("goal", goal_to_item(&goal)?)?;
            let marker = request_fingerprint
                .as_ref()
                .map(|fingerprint| {
                    idempotency::marker(
                        &user,
                        idempotency::goal_marker_sk(&goal_id),
                        fingerprint,
                        self.now(),
                        &[("goal", &goal)],
                    )
                })
                .transpose()?;
            let state = GoalState::of_new_goal(self.now()).to_item(&user, &goal_id)?;
            let leases = self
                .begin_write(&user, &goal_id, &EventKind::GoalCreated, false)
                .await;
            let written = self.put_new_goal(item, state, marker).await;
            match written {
                Ok(()) => {
                    if let Some(leases) = leases {
                        leases
                            .landed(
                                vec![codec::encode_goal(Some(&goal))],
                                vec![active_list_patch(&goal)],
                            )
                            .await;
                    }
                    let pattern = goal.goal_pattern.as_str();
                    metrics::counter!(crate::metrics::GOALS_CREATED, "pattern" => pattern)
                        .increment(1);
                    active_goals_status_changed(goal.goal_pattern, None, goal.status);
                    tracing::info!(goalPattern = pattern, op = "create_goal", "Created goal");
                    Ok(goal)
                }
                Err(TableError::ConditionFailed) => {
                    if let Some(leases) = leases {
                        leases.unchanged();
                    }
                    let sk = idempotency::goal_marker_sk(&goal_id);
                    let repeat = self
                        .repeat(&user, &sk, request_fingerprint.as_ref())
                        .await?;
                    if let Some(idempotency::Repeat::Same(first)) = repeat {
                        if let Some(goal) = idempotency::field(&first, "goal")? {
                            // The first attempt may have been cancelled before it invalidated:
                            // a repeat invalidates again (idempotent, and cheap next to a retry).
                            self.invalidate(&user, &goal_id, &EventKind::GoalCreated)
                                .await;
                            return Ok(goal);
                        }
                    }
                    Err(Error::AlreadyExists {
                        kind: "goal",
                        id: goal.goal_id,
                    })
                }
                Err(error) => Err(error.into()),
            }
        })
        .await
    }

    /// Writes a new goal where none is, in one transaction with its empty progress state (so its
    /// first progress read need not look for activities written before the state existed) and
    /// its idempotency marker when the request carries an id.
    async fn put_new_goal(
        &self,
        item: Item,
        state: Item,
        marker: Option<Item>,
    ) -> Result<(), TableError> {
        let mut writes = vec![
            Write::Put {
                item,
                condition: Some(Condition::ItemAbsent),
            },
            // No condition: only the goal's decides whether the create lands.
            Write::Put {
                item: state,
                condition: None,
            },
        ];
        writes.extend(marker.map(|marker| Write::Put {
            item: marker,
            condition: Some(Condition::ItemAbsent),
        }));
        self.inner.table.transact_write(writes).await
    }

    /// What the marker at `sk` says of a request with `fingerprint`: `None` when there is none.
    pub(super) async fn repeat(
        &self,
        user: &UserId,
        sk: &str,
        fingerprint: Option<&String>,
    ) -> Result<Option<idempotency::Repeat>> {
        let Some(fingerprint) = fingerprint else {
            return Ok(None);
        };
        let key = crate::keys::ItemKey {
            pk: crate::keys::user_partition(user),
            sk: sk.to_owned(),
        };
        Ok(self
            .inner
            .table
            .get_item(&key)
            .await?
            .map(|marker| idempotency::check(marker, fingerprint, self.now())))
    }

    /// Changes the fields set in `update`. Refuses pattern changes and edits of archived or
    /// completed goals; keeps `gsi1_pk` in step with the status; bumps `updated_at`.
    pub async fn update_goal(
        &self,
        user_id: &str,
        goal_id: &str,
        update: GoalUpdate,
    ) -> Result<Goal> {
        self.observe("update_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let (before, updated) = self
                .modify_goal(&user, &goal, &EventKind::GoalUpdated, |current, now| {
                    crate::validate::rules::update(
                        current,
                        update.status,
                        update.target.as_ref(),
                        now,
                    )?;
                    if let Some(pattern) = update.goal_pattern {
                        if pattern != current.goal_pattern {
                            return Err(Error::invalid(
                                "goal_pattern",
                                format!(
                                    "a goal's pattern cannot change (it is {})",
                                    current.goal_pattern
                                ),
                            ));
                        }
                    }
                    let mut goal = current.clone();
                    crate::validate::readable(&mut goal);
                    let update = update.clone();
                    set(&mut goal.title, update.title);
                    set_some(&mut goal.description, update.description);
                    set_some(&mut goal.category, update.category);
                    set_some(&mut goal.icon, update.icon);
                    set_some(&mut goal.color, update.color);
                    set(&mut goal.target, update.target);
                    set_some(&mut goal.schedule, update.schedule);
                    set_some(&mut goal.context, update.context);
                    set_some(&mut goal.rewards, update.rewards);
                    set(&mut goal.visibility, update.visibility);
                    set_some(&mut goal.metadata, update.metadata);
                    set(&mut goal.is_journal_linked, update.is_journal_linked);
                    if let Some(status) = update.status {
                        if status == GoalStatus::Completed && goal.status != GoalStatus::Completed {
                            goal.completed_at = Some(Timestamp::from_instant(now));
                        }
                        goal.status = status;
                    }
                    crate::validate::goal(&mut goal)?;
                    Ok(Some(goal))
                })
                .await?;
            active_goals_status_changed(updated.goal_pattern, Some(before), updated.status);
            Ok(updated)
        })
        .await
    }

    /// Archives a goal (a soft delete). Archiving an archived goal returns it unchanged.
    pub async fn archive_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        self.observe("archive_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let (before, archived) = self
                .modify_goal(&user, &goal, &EventKind::GoalArchived, |current, now| {
                    if current.status == GoalStatus::Archived {
                        return Ok(None);
                    }
                    let mut goal = current.clone();
                    goal.status = GoalStatus::Archived;
                    goal.archived_at = Some(Timestamp::from_instant(now));
                    Ok(Some(goal))
                })
                .await?;
            if before != GoalStatus::Archived {
                active_goals_status_changed(archived.goal_pattern, Some(before), archived.status);
            }
            Ok(archived)
        })
        .await
    }

    /// The goal a write starts from: the cached version when `cached` allows and a tier holds
    /// it (the write's condition refuses it if it is not the stored one), else read directly
    /// (not batched; strongly consistent unless the table says otherwise). Never fills the
    /// cache (see `Cache::lookup`).
    pub(super) async fn goal_for_write(
        &self,
        user: &UserId,
        goal: &GoalId,
        cached: bool,
    ) -> Result<ReadGoal> {
        if let (true, Some(cache)) = (cached, &self.inner.cache) {
            let key = cache.keys().goal(user, goal);
            // A goal remembered missing: the table has the last word.
            if let Some(Some(goal)) = cache.lookup(&key, codec::GOAL).await {
                return Ok(ReadGoal { goal, cached: true });
            }
        }
        match self.inner.table.get_item(&goal_key(user, goal)).await? {
            Some(item) => Ok(ReadGoal {
                goal: goal_from_item(&item)?,
                cached: false,
            }),
            None => Err(not_found_goal(goal)),
        }
    }

    /// Reads the goal (from the cache first), lets `change` make a new version (or `None` for
    /// no change), and writes it over the version read, through the cache. Retries from the
    /// table when the version read was not the stored one, or when the cached version was
    /// refused by `change`. Returns the status before the change and the goal as it is.
    pub(super) async fn modify_goal<F>(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        event: &EventKind,
        change: F,
    ) -> Result<(GoalStatus, Goal)>
    where
        F: Fn(&Goal, DateTime<Utc>) -> Result<Option<Goal>>,
    {
        let mut leases = None;
        let mut from_cache = true;
        let result = async {
            for _ in 0..WRITE_CONFLICT_RETRIES {
                let read = self.goal_for_write(user, goal_id, from_cache).await?;
                let current = read.goal;
                let now = self.now();
                let changed = match change(&current, now) {
                    Ok(changed) => changed,
                    Err(error) if read.cached => {
                        tracing::debug!(%error, "change refused by a cached goal; reading it again");
                        from_cache = false;
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                if leases.is_none() {
                    // After the read, as in log_activity. The progress key is kept unless a
                    // version this writes changes what progress reads (made stale below, before
                    // the table write, so a dropped call drops it too).
                    leases = Some(self.begin_write(user, goal_id, event, true).await);
                }
                let Some(goal) = changed else {
                    // Unchanged. A version read from the table is written through anyway: a
                    // cache may hold an older one.
                    return Ok((current.status, current, !read.cached));
                };
                let (goal, update) = self.goal_write(&current, goal, now)?;
                if crate::progress::depends_on_change(&current, &goal) {
                    if let (Some(Some(leases)), Some(key)) =
                        (leases.as_mut(), self.progress_key(goal_id))
                    {
                        leases.also_stale(key);
                    }
                }
                match self.inner.table.update_item(update).await {
                    Ok(()) => return Ok((current.status, goal, true)),
                    Err(TableError::ConditionFailed) => from_cache = false,
                    Err(error) => return Err(error.into()),
                }
            }
            Err(conflict(goal_id))
        }
        .await;
        settle(leases.flatten(), &result).await;
        result.map(|(before, goal, _)| (before, goal))
    }

    /// `goal`, a new version of `current`, as written over it: in the form the existing
    /// handlers read, with `updated_at` moved on (it strictly increases, so the condition tells
    /// every version apart), and the update that writes it where `current` is still stored.
    pub(super) fn goal_write(
        &self,
        current: &Goal,
        mut goal: Goal,
        now: DateTime<Utc>,
    ) -> Result<(Goal, Update)> {
        crate::validate::readable(&mut goal);
        let previous = current.updated_at.instant().unwrap_or(now);
        goal.updated_at = Timestamp::from_instant(now.max(previous + Duration::microseconds(1)));
        fits("goal", goal_to_item(&goal)?)?;
        let update = crate::item::goal_update(&goal, &current.updated_at)?;
        Ok((goal, update))
    }
}

/// A goal a write starts from, and whether it came from the cache.
pub(super) struct ReadGoal {
    pub(super) goal: Goal,
    pub(super) cached: bool,
}

/// Settles a goal write's cache leases by its outcome `(status before, goal, write through)`:
/// the goal as the table now holds it goes through the cache; a cached goal left unchanged, a
/// write refused before the table, or one whose condition kept failing, gives them back; any
/// other failure may have landed, so its keys are invalidated (dropping the leases does that).
async fn settle(
    leases: Option<crate::cache::write::WriteLeases>,
    outcome: &Result<(GoalStatus, Goal, bool)>,
) {
    let Some(leases) = leases else {
        return;
    };
    match outcome {
        Ok((_, goal, true)) => {
            leases
                .landed(
                    vec![codec::encode_goal(Some(goal))],
                    vec![active_list_patch(goal)],
                )
                .await
        }
        Ok((_, _, false))
        | Err(
            Error::InvalidArgument { .. }
            | Error::Rule(_)
            | Error::NotFound { .. }
            | Error::FailedPrecondition(_),
        ) => leases.unchanged(),
        Err(_) => drop(leases),
    }
}

/// by created_at, then goal id), replaced, or taken out when it is no longer active.
pub(super) fn active_list_patch(goal: &Goal) -> crate::cache::write::Patch {
    let goal = goal.clone();
    Box::new(move |cached| {
        let mut goals = (codec::GOALS.decode)(cached).ok()?;
        goals.retain(|g| g.goal_id != goal.goal_id);
        if goal.status == GoalStatus::Active {
            goals.push(goal);
            goals.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.goal_id.cmp(&b.goal_id))
            });
        }
        Some(codec::encode_goals(&goals))
    })
}

pub(super) fn conflict(goal_id: &GoalId) -> Error {
    Error::Unavailable(format!(
        "goal `{goal_id}` kept changing concurrently; gave up after {WRITE_CONFLICT_RETRIES} attempts"
    ))
}

/// Moves the active-goals gauge when a write changes a goal's status.
fn active_goals_status_changed(
    pattern: GoalPattern,
    before: Option<GoalStatus>,
    after: GoalStatus,
) {
    let was = before == Some(GoalStatus::Active);
    let is = after == GoalStatus::Active;
    if was != is {
        let gauge = metrics::gauge!(crate::metrics::ACTIVE_GOALS, "pattern" => pattern.as_str());
        if is {
            gauge.increment(1.0);
        } else {
            gauge.decrement(1.0);
        }
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn set_some<T>(field: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *field = value;
    }
}

/// `item`, if DynamoDB will store it: a caller's oversized value is their mistake, not an outage.
pub(super) fn fits(field: &'static str, item: Item) -> Result<Item> {
    let size = crate::table::item_size(&item);
    if size > crate::table::MAX_ITEM_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "would be a {size}-byte item; DynamoDB stores at most {} bytes",
                crate::table::MAX_ITEM_BYTES
            ),
        ));
    }
    Ok(item)
}
