//! The store's writes: create, update, archive and log, as conditional writes over the version
//! read (retried on conflict), with their idempotency markers, progress recomputes and cache
//! leases (written through or invalidated once the write landed).

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
            let active = self.load_active_goals(&user).await?;
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
            let leases = self
                .begin_write(&user, &goal_id, &EventKind::GoalCreated)
                .await;
            let written = self.put_new(item, marker).await;
            match written {
                Ok(()) => {
                    if let Some(leases) = leases {
                        leases.landed(vec![codec::encode_goal(Some(&goal))]).await;
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

    /// Writes a new item where none is, with its idempotency marker (in one transaction) when the
    /// request carries an id.
    pub(super) async fn put_new(&self, item: Item, marker: Option<Item>) -> Result<(), TableError> {
        match marker {
            None => {
                self.inner
                    .table
                    .put_item(item, Some(Condition::ItemAbsent))
                    .await
            }
            Some(marker) => {
                self.inner
                    .table
                    .transact_put(vec![
                        (item, Some(Condition::ItemAbsent)),
                        (marker, Some(Condition::ItemAbsent)),
                    ])
                    .await
            }
        }
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
            let previous = std::sync::Mutex::new(None);
            let leases = self
                .begin_write(&user, &goal, &EventKind::GoalUpdated)
                .await;
            let updated = self
                .modify_goal(&user, &goal, |current, now| {
                    *previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(current.status);
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
                .await;
            let updated = settle(leases, updated).await?;
            let before = *previous.lock().unwrap_or_else(|e| e.into_inner());
            active_goals_status_changed(updated.goal_pattern, before, updated.status);
            Ok(updated)
        })
        .await
    }

    /// Archives a goal (a soft delete). Archiving an archived goal returns it unchanged.
    pub async fn archive_goal(&self, user_id: &str, goal_id: &str) -> Result<Goal> {
        self.observe("archive_goal", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal = GoalId::parse(goal_id)?;
            let previous = std::sync::Mutex::new(None);
            // Written through even when it was archived already: a cache may hold an older copy.
            let leases = self
                .begin_write(&user, &goal, &EventKind::GoalArchived)
                .await;
            let archived = self
                .modify_goal(&user, &goal, |current, now| {
                    *previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(current.status);
                    if current.status == GoalStatus::Archived {
                        return Ok(None);
                    }
                    let mut goal = current.clone();
                    goal.status = GoalStatus::Archived;
                    goal.archived_at = Some(Timestamp::from_instant(now));
                    Ok(Some(goal))
                })
                .await;
            let archived = settle(leases, archived).await?;
            let before = *previous.lock().unwrap_or_else(|e| e.into_inner());
            if before != Some(GoalStatus::Archived) {
                active_goals_status_changed(archived.goal_pattern, before, archived.status);
            }
            Ok(archived)
        })
        .await
    }

    /// Records an activity toward an active goal, recomputes the goal's progress and stores it
    /// on the goal.
    pub async fn log_activity(
        &self,
        user_id: &str,
        goal_id: &str,
        new: NewActivity,
    ) -> Result<LoggedActivity> {
        self.observe("log_activity", user_id, async {
            let user = UserId::parse(user_id)?;
            let goal_id = GoalId::parse(goal_id)?;
            let activity_id = match &new.activity_id {
                Some(id) => {
                    validate_id("activity_id", id)?;
                    id.clone()
                }
                None => uuid::Uuid::new_v4().to_string(),
            };
            let mut new = new;
            crate::validate::new_activity(&mut new)?;
            let now = self.now();
            if let Some(date) = &new.activity_date {
                match date.instant() {
                    None => return Err(Error::invalid("activity_date", "is not an ISO-8601 time")),
                    Some(at) if at > now + MAX_ACTIVITY_CLOCK_SKEW => {
                        return Err(Error::invalid("activity_date", "is in the future"))
                    }
                    Some(_) => {}
                }
            }
            let request_fingerprint = new
                .activity_id
                .is_some()
                .then(|| idempotency::fingerprint(&new));
            let marker_sk = idempotency::activity_marker_sk(&goal_id, &activity_id);
            // A retry of a logged activity returns the first result before anything is checked again.
            match self
                .repeat(&user, &marker_sk, request_fingerprint.as_ref())
                .await?
            {
                Some(idempotency::Repeat::Same(first)) => {
                    return self
                        .replay_activity(&user, &goal_id, &marker_sk, first)
                        .await
                }
                Some(idempotency::Repeat::Different) => {
                    return Err(Error::AlreadyExists {
                        kind: "activity",
                        id: activity_id,
                    })
                }
                None => {}
            }
            let read = self.get_goal_for_write(&user, &goal_id).await?;
            let goal = &read.0;
            // An empty unit means the goal's, as the existing handlers take it.
            let unit = match new.unit.as_deref() {
                Some(unit) if !unit.is_empty() => unit.to_owned(),
                _ => goal.target.unit.clone().unwrap_or_default(),
            };
            let date = new
                .activity_date
                .as_ref()
                .and_then(Timestamp::instant)
                .unwrap_or(now);
            crate::validate::rules::activity(goal, &new, &unit, date)?;

            let mut logged_at = now;
            let mut activity = Activity {
                activity_id,
                goal_id: goal_id.as_str().to_owned(),
                user_id: user.as_str().to_owned(),
                value: new.value,
                unit: Some(unit),
                activity_type: new.activity_type,
                activity_date: new
                    .activity_date
                    .unwrap_or_else(|| Timestamp::from_instant(now)),
                logged_at: Timestamp::from_instant(now),
                timezone: new.timezone,
                location: new.location,
                context: new.context,
                note: new.note,
                attachments: new.attachments,
                source: new.source,
                device_info: new.device_info,
            };
            crate::validate::complete_activity(&mut activity, date);
            // The sort key holds logged_at: two activities of one goal in the same microsecond
            // would collide, so the later one moves on by a microsecond.
            let mut written = false;
            for _ in 0..WRITE_CONFLICT_RETRIES {
                activity.logged_at = Timestamp::from_instant(logged_at);
                let item = fits("activity", activity_to_item(&activity)?)?;
                let marker = request_fingerprint
                    .as_ref()
                    .map(|fingerprint| {
                        idempotency::marker(
                            &user,
                            marker_sk.clone(),
                            fingerprint,
                            now,
                            &[("activity", &activity)],
                        )
                    })
                    .transpose()?;
                let result = self.put_new(item, marker).await;
                match result {
                    Ok(()) => {
                        written = true;
                        break;
                    }
                    Err(TableError::ConditionFailed) => {
                        // A concurrent repeat may have won the race for the marker.
                        match self
                            .repeat(&user, &marker_sk, request_fingerprint.as_ref())
                            .await?
                        {
                            Some(idempotency::Repeat::Same(first)) => {
                                return self
                                    .replay_activity(&user, &goal_id, &marker_sk, first)
                                    .await
                            }
                            Some(idempotency::Repeat::Different) => {
                                return Err(Error::AlreadyExists {
                                    kind: "activity",
                                    id: activity.activity_id,
                                })
                            }
                            None => logged_at += Duration::microseconds(1),
                        }
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            if !written {
                return Err(conflict(&goal_id));
            }

            // The activity is in the table: from here, every failure may leave the goal's cached
            // values stale, and dropping the leases invalidates them.
            let leases = self
                .begin_write(&user, &goal_id, &EventKind::ActivityLogged)
                .await;
            let goal = self.update_progress(&user, &goal_id, Some(read)).await?;
            if let Some(leases) = leases {
                let owned = OwnedProgress {
                    user_id: user.as_str().to_owned(),
                    progress: goal.progress.clone(),
                };
                leases
                    .landed(vec![
                        codec::encode_goal(Some(&goal)),
                        codec::encode_progress(&owned),
                    ])
                    .await;
            }
            metrics::counter!(crate::metrics::ACTIVITIES_LOGGED, "pattern" => goal.goal_pattern.as_str())
                .increment(1);
            tracing::info!(
                goalPattern = goal.goal_pattern.as_str(),
                op = "log_activity",
                user_id = user.as_str(),
                "Activity logged"
            );
            if let Some(fingerprint) = &request_fingerprint {
                self.record_result(
                    &user,
                    &marker_sk,
                    fingerprint,
                    now,
                    &activity,
                    &goal.progress,
                )
                .await?;
            }
            Ok(LoggedActivity {
                activity,
                progress: goal.progress,
            })
        })
        .await
    }

    /// The first result of a repeated LogActivity. When the first call stopped before recording
    /// its progress, the progress is brought up to date now (once).
    pub(super) async fn replay_activity(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        marker_sk: &str,
        first: Item,
    ) -> Result<LoggedActivity> {
        let activity: Activity =
            idempotency::field(&first, "activity")?.ok_or_else(|| Error::CorruptItem {
                key: marker_sk.to_owned(),
                reason: "the marker holds no activity".into(),
            })?;
        if let Some(progress) = idempotency::field(&first, "progress")? {
            // The first attempt may have been cancelled before it invalidated: a repeat
            // invalidates again (idempotent, and cheap next to a retry).
            self.invalidate(user, goal_id, &EventKind::ActivityLogged)
                .await;
            return Ok(LoggedActivity { activity, progress });
        }
        let goal = self.update_progress(user, goal_id, None).await?;
        self.invalidate(user, goal_id, &EventKind::ActivityLogged)
            .await;
        if let Some(AttributeValue::S(fingerprint)) = first.get("fingerprint") {
            self.record_result(
                user,
                marker_sk,
                fingerprint,
                self.now(),
                &activity,
                &goal.progress,
            )
            .await?;
        }
        Ok(LoggedActivity {
            activity,
            progress: goal.progress,
        })
    }

    /// Completes an activity's marker with the progress the first call computed.
    pub(super) async fn record_result(
        &self,
        user: &UserId,
        marker_sk: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        activity: &Activity,
        progress: &Progress,
    ) -> Result<()> {
        let mut marker = idempotency::marker(
            user,
            marker_sk.to_owned(),
            fingerprint,
            now,
            &[("activity", activity)],
        )?;
        let progress =
            serde_dynamo::to_attribute_value(progress).map_err(|e| Error::CorruptItem {
                key: marker_sk.to_owned(),
                reason: e.to_string(),
            })?;
        marker.insert("progress".into(), progress);
        self.inner.table.put_item(marker, None).await?;
        Ok(())
    }

    /// Recomputes a goal's progress from all of its activities and stores it on the goal. The
    /// activities are read after the goal version each attempt writes over, so the stored progress
    /// always includes every activity written before the last successful write.
    ///
    /// `read`: a version of the goal read before the caller wrote its activity; the first attempt
    /// writes over it (saving a GetItem), and when the goal changed since, the conditional write
    /// fails and the next attempt reads it again.
    pub(super) async fn update_progress(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        mut read: Option<(Goal, Item)>,
    ) -> Result<Goal> {
        for _ in 0..WRITE_CONFLICT_RETRIES {
            let (current, item) = match read.take() {
                Some(read) => read,
                None => self.get_goal_for_write(user, goal_id).await?,
            };
            let activities = self.all_activities(user, goal_id).await?;
            self.rewrite_legacy_activities(&current, &activities)
                .await?;
            let now = self.now();
            let mut goal = current.clone();
            goal.progress = crate::progress::compute(&goal, &activities, now);
            match self.write_over(&current, goal, item, now).await? {
                Some(goal) => return Ok(goal),
                None => continue,
            }
        }
        Err(conflict(goal_id))
    }

    /// Rewrites, in the existing handlers' form, the activities of `goal` an older goalstore
    /// wrote with NULLs their model refuses (see `validate::readable_activity`). Activities are
    /// never written again otherwise, so the first progress recompute after the upgrade is their
    /// next write. Each put is conditioned on the item still being the one read.
    pub(super) async fn rewrite_legacy_activities(
        &self,
        goal: &Goal,
        activities: &[Activity],
    ) -> Result<()> {
        for activity in activities {
            let mut readable = activity.clone();
            if !crate::validate::readable_activity(&mut readable, goal.target.unit.as_deref()) {
                continue;
            }
            let condition = Condition::AttributeEquals {
                attribute: "activity_id".into(),
                value: AttributeValue::S(activity.activity_id.clone()),
            };
            match self
                .inner
                .table
                .put_item(activity_to_item(&readable)?, Some(condition))
                .await
            {
                // Gone since (its TTL ran out): nothing to rewrite.
                Ok(()) | Err(TableError::ConditionFailed) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// The goal and its raw item, read directly (not batched): a write needs the item as it is.
    pub(super) async fn get_goal_for_write(
        &self,
        user: &UserId,
        goal: &GoalId,
    ) -> Result<(Goal, Item)> {
        match self.inner.table.get_item(&goal_key(user, goal)).await? {
            Some(item) => Ok((goal_from_item(&item)?, item)),
            None => Err(not_found_goal(goal)),
        }
    }

    /// Reads the goal, lets `change` make a new version (or `None` for no change), and writes it
    /// over the version read. Retries when another writer got there first.
    pub(super) async fn modify_goal<F>(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        change: F,
    ) -> Result<Goal>
    where
        F: Fn(&Goal, DateTime<Utc>) -> Result<Option<Goal>>,
    {
        for _ in 0..WRITE_CONFLICT_RETRIES {
            let (current, item) = self.get_goal_for_write(user, goal_id).await?;
            let now = self.now();
            let Some(goal) = change(&current, now)? else {
                return Ok(current);
            };
            if let Some(goal) = self.write_over(&current, goal, item, now).await? {
                return Ok(goal);
            }
        }
        Err(conflict(goal_id))
    }

    /// Writes `goal` over `item`, the version `current` was read from. `None` when another writer
    /// changed the goal since (nothing was written).
    pub(super) async fn write_over(
        &self,
        current: &Goal,
        mut goal: Goal,
        item: Item,
        now: DateTime<Utc>,
    ) -> Result<Option<Goal>> {
        // updated_at strictly increases, so the condition below tells every version apart.
        // Whatever wrote the stored version, what goes back is what the existing handlers read.
        crate::validate::readable(&mut goal);
        let previous = current.updated_at.instant().unwrap_or(now);
        goal.updated_at = Timestamp::from_instant(now.max(previous + Duration::microseconds(1)));
        let condition = Condition::AttributeEquals {
            attribute: "updated_at".into(),
            value: AttributeValue::S(current.updated_at.as_str().to_owned()),
        };
        match self
            .inner
            .table
            .put_item(fits("goal", goal_over_item(&goal, item)?)?, Some(condition))
            .await
        {
            Ok(()) => Ok(Some(goal)),
            Err(TableError::ConditionFailed) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

/// Settles a goal write's cache leases by its outcome: the goal written goes through the cache;
/// a write refused before the table, or whose condition kept failing, gives them back; any other
/// failure may have landed, so its keys are invalidated (dropping the leases does that).
async fn settle(
    leases: Option<crate::cache::write::WriteLeases>,
    written: Result<Goal>,
) -> Result<Goal> {
    let Some(leases) = leases else {
        return written;
    };
    match &written {
        Ok(goal) => leases.landed(vec![codec::encode_goal(Some(goal))]).await,
        Err(
            Error::InvalidArgument { .. }
            | Error::Rule(_)
            | Error::NotFound { .. }
            | Error::FailedPrecondition(_),
        ) => leases.unchanged(),
        Err(_) => drop(leases),
    }
    written
}

fn conflict(goal_id: &GoalId) -> Error {
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
fn fits(field: &'static str, item: Item) -> Result<Item> {
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
