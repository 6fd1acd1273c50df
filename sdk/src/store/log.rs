//! Logging an activity: one transaction of the activity, the goal's new progress, the progress
//! state and a keyed request's idempotency marker, over the goal and state versions it computed
//! from (the cached ones first; retried from the table on conflict), with its cache leases.
//! Also the replay of a repeated request and the rewrite of activities an older goalstore wrote.

use super::state::GoalState;
use super::writes::{active_list_patch, conflict, fits};
use super::*;

impl GoalStore {
    /// Records an activity toward an active goal, and stores the goal's new progress and
    /// progress state with it in one transaction.
    ///
    /// The goal may come from the cache, and the state from beside the goal's cached progress
    /// (else it is read with the newest activities, in parallel), so with a warm cache a log is
    /// one write. The transaction holds only
    /// while the goal and the state are still the versions it computed from; when another
    /// writer got there first, nothing is written and it starts again from the table.
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
            let request = LogRequest {
                fingerprint: new
                    .activity_id
                    .is_some()
                    .then(|| idempotency::fingerprint(&new)),
                marker_sk: idempotency::activity_marker_sk(&goal_id, &activity_id),
                activity_id,
            };
            let mut leases = None;
            let mut from_cache = true;
            let mut logged_at = now;
            for attempt in 0..WRITE_CONFLICT_RETRIES {
                // A keyed request's marker is read beside the rest the first time: a retry of a
                // logged activity returns the first result and writes nothing.
                let (read, state, repeat) = futures::try_join!(
                    self.goal_for_write(&user, &goal_id, from_cache),
                    self.state_for_write(&user, &goal_id, from_cache),
                    async {
                        match attempt {
                            0 => self.repeat_of(&user, &request).await,
                            _ => Ok(None),
                        }
                    }
                )?;
                if let Some(first) = repeat {
                    return self.replay_activity(&user, &goal_id, &request, first).await;
                }
                let goal = read.goal;
                let checked = self.check_activity(&goal, &new, now);
                let (unit, date) = match checked {
                    Ok(checked) => checked,
                    Err(error) if read.cached => {
                        // The cached version may be older than the rule: ask the table.
                        tracing::debug!(%error, "activity refused by a cached goal; reading it again");
                        from_cache = false;
                        continue;
                    }
                    Err(error) => {
                        if let Some(first) = self.repeat_of(&user, &request).await? {
                            return self.replay_activity(&user, &goal_id, &request, first).await;
                        }
                        return Err(error);
                    }
                };
                self.rewrite_legacy_activities(&goal, &state.caught_up)
                    .await?;
                let now = self.now();
                logged_at = now.max(logged_at);
                let activity = self.new_activity(&user, &goal, &new, &request, unit, date, logged_at);
                let (written, state, writes) =
                    self.log_writes(&user, &goal, state, &activity, &request, now)?;
                if leases.is_none() {
                    // After the reads: a miss that filled the cache took a lease of its own,
                    // and a write-through must hold the newest one.
                    leases = Some(
                        self.begin_write(&user, &goal_id, &EventKind::ActivityLogged, false)
                            .await,
                    );
                }
                match self.inner.table.transact_write(writes).await {
                    Ok(()) => {
                        if let Some(Some(leases)) = leases.take() {
                            let owned = OwnedProgress {
                                user_id: user.as_str().to_owned(),
                                progress: written.progress.clone(),
                                state: Some(state),
                            };
                            leases
                                .landed(
                                    vec![
                                        codec::encode_goal(Some(&written)),
                                        codec::encode_progress(&owned),
                                    ],
                                    vec![active_list_patch(&written)],
                                )
                                .await;
                        }
                        metrics::counter!(crate::metrics::ACTIVITIES_LOGGED, "pattern" => written.goal_pattern.as_str())
                            .increment(1);
                        tracing::info!(
                            goalPattern = written.goal_pattern.as_str(),
                            op = "log_activity",
                            user_id = user.as_str(),
                            "Activity logged"
                        );
                        return Ok(LoggedActivity {
                            activity,
                            progress: written.progress,
                        });
                    }
                    Err(TableError::ConditionFailed) => {
                        // The marker (a repeat), the goal or the state changed, or another
                        // activity of the goal took this microsecond.
                        if let Some(first) = self.repeat_of(&user, &request).await? {
                            if let Some(Some(leases)) = leases.take() {
                                leases.unchanged();
                            }
                            return self.replay_activity(&user, &goal_id, &request, first).await;
                        }
                        from_cache = false;
                        logged_at += Duration::microseconds(1);
                    }
                    // It may have landed: dropping the leases invalidates.
                    Err(error) => return Err(error.into()),
                }
            }
            if let Some(Some(leases)) = leases.take() {
                leases.unchanged();
            }
            Err(conflict(&goal_id))
        })
        .await
    }

    /// The activity's unit and date, when `goal` accepts it.
    fn check_activity(
        &self,
        goal: &Goal,
        new: &NewActivity,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
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
        crate::validate::rules::activity(goal, new, &unit, date)?;
        Ok((unit, date))
    }

    /// The activity a log writes.
    #[allow(clippy::too_many_arguments)]
    fn new_activity(
        &self,
        user: &UserId,
        goal: &Goal,
        new: &NewActivity,
        request: &LogRequest,
        unit: String,
        date: DateTime<Utc>,
        logged_at: DateTime<Utc>,
    ) -> Activity {
        let new = new.clone();
        let mut activity = Activity {
            activity_id: request.activity_id.clone(),
            goal_id: goal.goal_id.clone(),
            user_id: user.as_str().to_owned(),
            value: new.value,
            unit: Some(unit),
            activity_type: new.activity_type,
            activity_date: new
                .activity_date
                .unwrap_or_else(|| Timestamp::from_instant(logged_at)),
            logged_at: Timestamp::from_instant(logged_at),
            timezone: new.timezone,
            location: new.location,
            context: new.context,
            note: new.note,
            attachments: new.attachments,
            source: new.source,
            device_info: new.device_info,
        };
        crate::validate::complete_activity(&mut activity, date);
        activity
    }

    /// The writes of one log: the activity (where no item is: the sort key holds `logged_at`,
    /// so two activities of one goal in one microsecond collide and the later one retries), the
    /// goal with its new progress over the version read, the state over its version, and the
    /// idempotency marker with the result. Returns the goal as written and what the progress cache
    /// keeps of the state once it is.
    fn log_writes(
        &self,
        user: &UserId,
        goal: &Goal,
        mut state: GoalState,
        activity: &Activity,
        request: &LogRequest,
        now: DateTime<Utc>,
    ) -> Result<(Goal, Bytes, Vec<Write>)> {
        let goal_id = GoalId::parse(&goal.goal_id)?;
        let item = fits("activity", activity_to_item(activity)?)?;
        state.tally.room_for_one_more(&goal_id)?;
        let suffix = crate::model::key_form(activity.logged_at.instant().unwrap_or(now));
        state.tally.include(suffix, Some(activity));
        if !self.inner.config.others_log_activities {
            // Nothing to catch up, ever: no need to keep the sort keys for it either.
            state.tally.caught_up(now);
        }
        state.tally.settle(now.date_naive());
        let mut written = goal.clone();
        written.progress = state.tally.state.progress(goal, now);
        let goal_write = self.goal_write(goal, written, now)?;
        let mut writes = vec![
            Write::Put {
                item,
                condition: Some(Condition::ItemAbsent),
            },
            Write::Update(goal_write.1),
            Write::Put {
                item: state.to_item(user, &goal_id)?,
                condition: Some(state.condition()),
            },
        ];
        if let Some(fingerprint) = &request.fingerprint {
            let mut marker = idempotency::marker(
                user,
                request.marker_sk.clone(),
                fingerprint,
                now,
                &[("activity", activity)],
            )?;
            let progress =
                serde_dynamo::to_attribute_value(&goal_write.0.progress).map_err(|e| {
                    Error::CorruptItem {
                        key: request.marker_sk.clone(),
                        reason: e.to_string(),
                    }
                })?;
            marker.insert("progress".into(), progress);
            writes.push(Write::Put {
                item: marker,
                condition: Some(Condition::ItemAbsent),
            });
        }
        Ok((goal_write.0, state.cached_as_written(), writes))
    }

    /// The first result of the request, when its marker says it was made before.
    async fn repeat_of(&self, user: &UserId, request: &LogRequest) -> Result<Option<Item>> {
        match self
            .repeat(user, &request.marker_sk, request.fingerprint.as_ref())
            .await?
        {
            Some(idempotency::Repeat::Same(first)) => Ok(Some(first)),
            Some(idempotency::Repeat::Different) => Err(Error::AlreadyExists {
                kind: "activity",
                id: request.activity_id.clone(),
            }),
            None => Ok(None),
        }
    }

    /// The first result of a repeated LogActivity. A marker without progress (written by a
    /// goalstore before the one-transaction log) gets the goal's progress as of now.
    pub(super) async fn replay_activity(
        &self,
        user: &UserId,
        goal_id: &GoalId,
        request: &LogRequest,
        first: Item,
    ) -> Result<LoggedActivity> {
        let activity: Activity =
            idempotency::field(&first, "activity")?.ok_or_else(|| Error::CorruptItem {
                key: request.marker_sk.clone(),
                reason: "the marker holds no activity".into(),
            })?;
        let progress = match idempotency::field(&first, "progress")? {
            Some(progress) => progress,
            None => self.compute_progress(user, goal_id).await?,
        };
        // The first attempt may have been cancelled before it invalidated: a repeat
        // invalidates again (idempotent, and cheap next to a retry).
        self.invalidate(user, goal_id, &EventKind::ActivityLogged)
            .await;
        Ok(LoggedActivity { activity, progress })
    }

    /// Rewrites, in the existing handlers' form, the activities of `goal` an older goalstore
    /// wrote with NULLs their model refuses (see `validate::readable_activity`). Activities are
    /// never written again otherwise, so the catch-up that first counts them into the goal's
    /// state is their next write. Each put is conditioned on the item still being the one read.
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
}

/// What identifies one LogActivity request.
pub(super) struct LogRequest {
    activity_id: String,
    /// Of a request that carries its own activity id (and so may be repeated).
    fingerprint: Option<String>,
    marker_sk: String,
}
