//! A goal's progress state as the store keeps it: one item beside the goal, so that logging an
//! activity and computing progress read a bounded number of items however long the goal's
//! history is (#16).
//!
//! The item: `pk = USER#{user_id}`, `sk = PROGRESS#{goal_id}` (the existing handlers read
//! neither `GOAL#…` nor `ACTIVITY#…` there, so they never see it), `EntityType =
//! GoalProgressState`, a `version` that every write raises by one (writes are conditioned on
//! the version read), and `state`, a MessagePack [`Tally`]: the [`ProgressState`] of every
//! activity it holds, and the sort keys of the newest of them.
//!
//! Other writers: the existing handlers (and goalstore versions before this one) log activities
//! without touching the state. Every read of the state therefore *catches up*: it queries the
//! goal's activities logged from [`CATCH_UP_MARGIN`] before the newest one it holds, and adds
//! those it does not hold. The sort keys it holds within that margin tell which ones those are,
//! so nothing is counted twice; an activity that lands in the table more than the margin after
//! its own `logged_at` (clock skew, a handler stalled between its clock read and its write) is
//! missed. A goal with no state item (written before this change) is one whose state holds
//! nothing: its first catch-up reads all of its activities, and the state is written once.
//!
//! Expiry: activities carry a 365-day TTL. The state counts every activity it ever held, so
//! progress does not drop when DynamoDB deletes an old activity (docs/compatibility.md §10).
//!
//! Invariant: it never writes an activity or a goal; the caller writes the state it returns,
//! conditioned on [`GoalState::condition`].

use super::*;
use crate::keys::progress_state_key;
use crate::progress::ProgressState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How long after its `logged_at` an activity may land in the table and still be caught up.
pub(crate) const CATCH_UP_MARGIN: Duration = Duration::minutes(5);
/// Activities read, newest first, in parallel with the state item: when the oldest of them is
/// already older than the margin, the catch-up needs no second request.
const FIRST_PAGE: u32 = 4;
/// The `schema` of the items this version writes.
const SCHEMA: u32 = 1;
/// Activities one goal may take within [`CATCH_UP_MARGIN`]: the state keeps each one's sort
/// key for that long, and its item must stay far below DynamoDB's 400 KB.
pub(crate) const MAX_RECENT: usize = 2_000;

/// What the `state` attribute holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub(crate) state: ProgressState,
    /// The sort-key suffixes (`logged_at` in key form) of the activities it holds that a
    /// catch-up still reads: from the newest less [`CATCH_UP_MARGIN`] on.
    recent: BTreeSet<String>,
}

impl Tally {
    /// The lowest sort-key suffix a catch-up reads (`""`: all of them).
    fn bound(&self) -> String {
        let Some(newest) = self.recent.last() else {
            return String::new();
        };
        match Timestamp::parse(newest).and_then(|t| t.instant()) {
            Some(at) => crate::model::key_form(at - CATCH_UP_MARGIN),
            // Not a time: the margin cannot be placed; reread from this key on.
            None => newest.clone(),
        }
    }

    fn holds(&self, suffix: &str) -> bool {
        self.recent.contains(suffix)
    }

    /// Adds the activity logged under `suffix`; `None` for an item that does not decode (the
    /// calculators skip it too, but it is remembered so it is not read again).
    pub(crate) fn include(&mut self, suffix: String, activity: Option<&Activity>) {
        if let Some(activity) = activity {
            self.state.add(activity);
        }
        self.recent.insert(suffix);
    }

    /// Refuses one more activity when the goal already took [`MAX_RECENT`] within the margin
    /// (a runaway client; the state item would outgrow what DynamoDB stores).
    pub(crate) fn room_for_one_more(&self, goal: &GoalId) -> Result<()> {
        if self.recent.len() < MAX_RECENT {
            return Ok(());
        }
        Err(Error::ResourceExhausted(format!(
            "goal `{goal}` took {MAX_RECENT} activities in the last {} minutes; try again later",
            CATCH_UP_MARGIN.num_minutes()
        )))
    }

    /// Forgets the sort keys no catch-up reads any more, and prunes the state as of `today`.
    pub(crate) fn settle(&mut self, today: chrono::NaiveDate) {
        let bound = self.bound();
        self.recent = self.recent.split_off(&bound);
        self.state.prune(today);
    }
}

/// A goal's state as read (and caught up) for one request.
#[derive(Clone, Debug)]
pub(crate) struct GoalState {
    pub(crate) tally: Tally,
    /// The stored item's version; `None` when there is no item (or one this version cannot read).
    version: Option<u64>,
    /// The stored version this state overwrites; kept apart from `version` so that an item that
    /// cannot be read is overwritten rather than refused forever.
    stored: Option<u64>,
    /// Activities the catch-up found that the stored state did not hold.
    pub(crate) caught_up: Vec<Activity>,
}

impl GoalState {
    /// Whether it holds activities its stored item does not (and so should be written back).
    pub(crate) fn changed(&self) -> bool {
        !self.caught_up.is_empty() || self.version.is_none()
    }

    /// The condition of writing this state back: its item is still the version read.
    pub(crate) fn condition(&self) -> Condition {
        match self.stored {
            None => Condition::ItemAbsent,
            Some(version) => Condition::AttributeEquals {
                attribute: "version".into(),
                value: AttributeValue::N(version.to_string()),
            },
        }
    }

    /// The item holding this state, one version on.
    pub(crate) fn to_item(&self, user: &UserId, goal: &GoalId) -> Result<Item> {
        let key = progress_state_key(user, goal);
        let bytes = rmp_serde::to_vec(&self.tally).map_err(|e| Error::CorruptItem {
            key: key.sk.clone(),
            reason: e.to_string(),
        })?;
        let version = self.stored.unwrap_or(0) + 1;
        Ok(Item::from([
            ("pk".to_owned(), AttributeValue::S(key.pk)),
            ("sk".to_owned(), AttributeValue::S(key.sk)),
            (
                "EntityType".to_owned(),
                AttributeValue::S("GoalProgressState".into()),
            ),
            ("goal_id".to_owned(), AttributeValue::S(goal.to_string())),
            ("user_id".to_owned(), AttributeValue::S(user.to_string())),
            ("schema".to_owned(), AttributeValue::N(SCHEMA.to_string())),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
            (
                "activities".to_owned(),
                AttributeValue::N(self.tally.state.count().to_string()),
            ),
            ("state".to_owned(), AttributeValue::B(bytes.into())),
        ]))
    }
}

/// The tally an item holds and its version; `(empty, None, version)` for an item this version
/// cannot read (its state is rebuilt from the activities and written over it).
fn decode(item: &Item) -> (Tally, Option<u64>, Option<u64>) {
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        _ => None,
    };
    let version = number("version");
    let tally = match (number("schema"), item.get("state")) {
        (Some(schema), Some(AttributeValue::B(bytes))) if schema == u64::from(SCHEMA) => {
            rmp_serde::from_slice::<Tally>(bytes.as_ref()).ok()
        }
        _ => None,
    };
    match tally {
        Some(tally) => (tally, version, version),
        None => {
            tracing::warn!(
                key = ?crate::table::item_key(item),
                "a progress state this version cannot read; rebuilding it from the activities"
            );
            (Tally::default(), None, version)
        }
    }
}

impl GoalStore {
    /// The state of a goal, caught up with every activity in the table: the state item and the
    /// newest activities are read in parallel, and more activities only when the newest ones
    /// do not reach back past the margin (or when there is no state yet).
    pub(crate) async fn read_state(&self, user: &UserId, goal: &GoalId) -> Result<GoalState> {
        let prefix = activity_sk_prefix(goal);
        let table = &self.inner.table;
        let state_key = progress_state_key(user, goal);
        let newest = Query {
            pk: crate::keys::user_partition(user),
            sort_keys: SortKeyRange::BeginsWith(prefix.clone()),
            descending: true,
            limit: Some(FIRST_PAGE),
            start_after: None,
        };
        // Through the batch loader: a progress miss reads the goal beside it, in one request.
        let (item, page) = if self.inner.config.others_log_activities {
            let (item, page) =
                futures::try_join!(self.inner.loader.load(state_key), table.query(&newest))?;
            (item, Some(page))
        } else {
            (self.inner.loader.load(state_key).await?, None)
        };
        let (tally, version, stored) = match &item {
            Some(item) => decode(item),
            None => (Tally::default(), None, None),
        };
        let mut state = GoalState {
            tally,
            version,
            stored,
            caught_up: Vec::new(),
        };
        let mut page = match page {
            Some(page) => page,
            // Only goalstore logs activities, and each is in the state it wrote with it: there
            // is nothing to catch up unless there is no state yet (built from every activity).
            None if state.version.is_some() => {
                state.tally.settle(self.now().date_naive());
                return Ok(state);
            }
            None => table.query(&newest).await?,
        };
        let bound = format!("{prefix}{}", state.tally.bound());
        let mut found: Vec<(String, Option<Activity>)> = Vec::new();
        loop {
            let mut reached = page.last_sort_key.is_none();
            for item in &page.items {
                let Some(key) = crate::table::item_key(item) else {
                    continue;
                };
                if key.sk < bound {
                    reached = true;
                    break;
                }
                let Some(suffix) = key.sk.strip_prefix(&prefix) else {
                    continue;
                };
                if !state.tally.holds(suffix) {
                    found.push((suffix.to_owned(), activity_from_item(item).ok()));
                }
            }
            if reached {
                break;
            }
            page = table
                .query(&Query {
                    pk: crate::keys::user_partition(user),
                    sort_keys: SortKeyRange::Between {
                        low: bound.clone(),
                        high: format!("{prefix}~"),
                    },
                    descending: true,
                    limit: None,
                    start_after: page.last_sort_key.clone(),
                })
                .await?;
        }
        for (suffix, activity) in found {
            state.tally.include(suffix, activity.as_ref());
            state.caught_up.extend(activity);
        }
        state.tally.settle(self.now().date_naive());
        Ok(state)
    }

    /// Writes back a state that a read caught up, so the next read need not catch up again.
    /// Finishes on a task of its own; losing the race to a concurrent write changes nothing
    /// (that write holds at least as much), and a failure only means the next read catches up.
    pub(crate) fn store_caught_up(&self, user: &UserId, goal: &Goal, state: GoalState) {
        if !state.changed() {
            return;
        }
        let store = self.clone();
        let (user, goal) = (user.clone(), goal.clone());
        tokio::spawn(async move {
            let Ok(goal_id) = GoalId::parse(&goal.goal_id) else {
                return;
            };
            let written = async {
                store
                    .rewrite_legacy_activities(&goal, &state.caught_up)
                    .await?;
                let item = state.to_item(&user, &goal_id)?;
                match store
                    .inner
                    .table
                    .put_item(item, Some(state.condition()))
                    .await
                {
                    Ok(()) | Err(TableError::ConditionFailed) => Ok(()),
                    Err(error) => Err(Error::from(error)),
                }
            };
            if let Err(error) = written.await {
                tracing::warn!(%error, goal_id = %goal_id, "could not store a caught-up progress state");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_trails_the_newest_key_by_the_margin() {
        let mut tally = Tally::default();
        assert_eq!(tally.bound(), "", "nothing held: read everything");
        tally.include("2025-01-05T10:00:00.5+00:00".into(), None);
        tally.include("2025-01-05T10:07:00+00:00".into(), None);
        assert_eq!(tally.bound(), "2025-01-05T10:02:00.000000+00:00");
        tally.settle(chrono::NaiveDate::from_ymd_opt(2025, 1, 5).expect("valid"));
        assert_eq!(
            tally.recent.iter().collect::<Vec<_>>(),
            ["2025-01-05T10:07:00+00:00"],
            "a key below the bound is never read again, so it is forgotten"
        );
    }

    #[test]
    fn a_goal_takes_a_bounded_number_of_activities_within_the_margin() {
        let goal = GoalId::parse("g").expect("valid");
        let mut tally = Tally::default();
        let start = DateTime::parse_from_rfc3339("2025-01-05T10:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        for n in 0..MAX_RECENT {
            assert!(tally.room_for_one_more(&goal).is_ok(), "{n}");
            let at = start + Duration::milliseconds(n as i64);
            tally.include(crate::model::key_form(at), None);
            tally.settle(at.date_naive());
        }
        assert!(matches!(
            tally.room_for_one_more(&goal),
            Err(Error::ResourceExhausted(_))
        ));
        let full = GoalState {
            tally: tally.clone(),
            version: None,
            stored: None,
            caught_up: Vec::new(),
        }
        .to_item(&UserId::parse("u").expect("valid"), &goal)
        .expect("encodes");
        assert!(
            crate::table::item_size(&full) < 100_000,
            "{} bytes at the most",
            crate::table::item_size(&full)
        );
        // Once the margin has passed, the old keys are forgotten and there is room again.
        let later = start + CATCH_UP_MARGIN + Duration::seconds(10);
        tally.include(crate::model::key_form(later), None);
        tally.settle(later.date_naive());
        assert!(tally.room_for_one_more(&goal).is_ok());
        let item = GoalState {
            tally,
            version: None,
            stored: None,
            caught_up: Vec::new(),
        }
        .to_item(&UserId::parse("u").expect("valid"), &goal)
        .expect("encodes");
        assert!(crate::table::item_size(&item) < 10_000);
    }

    #[test]
    fn a_state_item_round_trips_and_an_unreadable_one_is_rebuilt() {
        let user = UserId::parse("u").expect("valid");
        let goal = GoalId::parse("g").expect("valid");
        let mut state = GoalState {
            tally: Tally::default(),
            version: Some(3),
            stored: Some(3),
            caught_up: Vec::new(),
        };
        state
            .tally
            .include("2025-01-05T10:00:00+00:00".into(), None);
        let item = state.to_item(&user, &goal).expect("encodes");
        assert_eq!(item.get("version"), Some(&AttributeValue::N("4".into())));
        let (tally, version, stored) = decode(&item);
        assert_eq!(
            (tally, version, stored),
            (state.tally.clone(), Some(4), Some(4))
        );

        let mut unreadable = item.clone();
        unreadable.insert("state".into(), AttributeValue::B(vec![0xc1].into()));
        let (tally, version, stored) = decode(&unreadable);
        assert_eq!((tally, version, stored), (Tally::default(), None, Some(4)));
    }
}
