//! A goal's progress state as the store keeps it: one item beside the goal, so that logging an
//! activity and computing progress read a bounded number of items however long the goal's
//! history is (#16).
//!
//! The item: `pk = USER#{user_id}`, `sk = PROGRESS#{goal_id}` (the existing handlers read
//! neither `GOAL#…` nor `ACTIVITY#…` there, so they never see it), `EntityType =
//! GoalProgressState`, a `version` that every write raises by one (writes are conditioned on
//! the version read), and `state`, a MessagePack [`Tally`]: the [`ProgressState`] of every
//! activity it holds, the sort keys of the newest of them, and when it last caught up.
//!
//! Other writers: the existing handlers (and goalstore versions before this one) log activities
//! without touching the state. Every read of the state item therefore *catches up*: it queries
//! the goal's activities logged from [`CATCH_UP_MARGIN`] before the time the last catch-up asked
//! the table, and adds those it does not hold. The sort keys it holds from there on tell which
//! ones those are, so nothing is counted twice; an activity that lands in the table more than
//! the margin after its own `logged_at` (clock skew, a handler stalled between its clock read and
//! its write) is missed. A goal with no state item (written before this change) is one whose
//! state holds nothing: its first catch-up reads all of its activities, and the state is written
//! once (or ahead of time: [`GoalStore::backfill_progress_state`]); a goal goalstore creates gets
//! an empty state with it.
//!
//! The cache: the progress cache entry carries the state it was computed from ([`Snapshot`]),
//! and a log may start from it without catching up ([`GoalStore::state_for_write`]): the version
//! condition refuses a stale one, and since such a log leaves `caught_up` where it was, the next
//! catch-up still reads what the existing handlers logged meanwhile.
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
    /// catch-up still reads: from [`Tally::bound`] on.
    recent: BTreeSet<String>,
    /// When (key form, the reading instance's clock) the last catch-up asked the table: every
    /// activity logged more than [`CATCH_UP_MARGIN`] before it is held. A log that starts from
    /// a cached state does not catch up and leaves it as it is, so the next catch-up still
    /// reads what the existing handlers logged meanwhile. `None` in the items of the version
    /// before it was kept, whose every write caught up: the newest key held stands for it.
    #[serde(default)]
    caught_up: Option<String>,
}

impl Tally {
    /// The lowest sort-key suffix a catch-up reads (`""`: all of them).
    fn bound(&self) -> String {
        let Some(at) = self.caught_up.as_ref().or(self.recent.last()) else {
            return String::new();
        };
        match Timestamp::parse(at).and_then(|t| t.instant()) {
            Some(at) => crate::model::key_form(at - CATCH_UP_MARGIN),
            // Not a time: the margin cannot be placed; reread from this key on.
            None => at.clone(),
        }
    }

    /// Records a catch-up that asked the table at `asked` (or a read that had nothing to catch
    /// up, when only goalstore logs activities).
    pub(crate) fn caught_up(&mut self, asked: DateTime<Utc>) {
        let asked = crate::model::key_form(asked);
        if self.caught_up.as_ref().is_none_or(|at| *at < asked) {
            self.caught_up = Some(asked);
        }
    }

    /// Whether a log may start from this state without catching up at `now`: it caught up
    /// less than `every` ago, and not so many activities have been logged since that the
    /// sort keys it keeps for the next catch-up grow large.
    fn fresh(&self, now: DateTime<Utc>, every: Duration) -> bool {
        let Some(at) = self.caught_up.as_deref().and_then(Timestamp::parse) else {
            return false;
        };
        at.instant().is_some_and(|at| now - at < every) && self.recent.len() < MAX_RECENT / 2
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

/// A state as the progress cache keeps it beside the progress (`OwnedProgress::state`): the
/// tally and the stored version it was read or written as. Only a version the table certainly
/// held goes in, so a log that starts from it and passes its condition built on the item
/// actually stored; a stale one fails the condition, and the log reads the table instead.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    stored: Option<u64>,
    tally: Tally,
}

impl GoalState {
    /// The state a cached [`Snapshot`] holds, when it decodes and a log may start from it at
    /// `now` (see [`Tally::fresh`]); `every` is how long it goes without catching up.
    pub(crate) fn from_cached(bytes: &[u8], now: DateTime<Utc>, every: Duration) -> Option<Self> {
        let snapshot: Snapshot = rmp_serde::from_slice(bytes).ok()?;
        snapshot.tally.fresh(now, every).then(|| GoalState {
            tally: snapshot.tally,
            version: snapshot.stored,
            stored: snapshot.stored,
            caught_up: Vec::new(),
        })
    }

    /// What the progress cache keeps of this state as read, when its item is the one read: a
    /// state the read changed is stored back on the side, and its version is unknown until then.
    pub(crate) fn cached_as_read(&self) -> Option<Bytes> {
        (!self.changed()).then(|| self.snapshot(self.stored))
    }

    /// What the progress cache keeps of this state once its item is written (by the request
    /// that wrote it).
    pub(crate) fn cached_as_written(&self) -> Bytes {
        self.snapshot(Some(self.written_version()))
    }

    fn snapshot(&self, stored: Option<u64>) -> Bytes {
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            stored: Option<u64>,
            tally: &'a Tally,
        }
        // Plain data to a Vec: cannot fail.
        rmp_serde::to_vec(&SnapshotRef {
            stored,
            tally: &self.tally,
        })
        .unwrap_or_default()
        .into()
    }

    /// The version [`GoalState::to_item`] writes.
    fn written_version(&self) -> u64 {
        self.stored.unwrap_or(0) + 1
    }

    /// The state of a goal created at `now`: no activity, and none before.
    pub(crate) fn of_new_goal(now: DateTime<Utc>) -> Self {
        let mut tally = Tally::default();
        tally.caught_up(now);
        GoalState {
            tally,
            version: None,
            stored: None,
            caught_up: Vec::new(),
        }
    }

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
        let version = self.written_version();
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
        // Before the first request: whatever landed before this is in what the queries read.
        let asked = self.now();
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
                state.tally.caught_up(asked);
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
        state.tally.caught_up(asked);
        state.tally.settle(self.now().date_naive());
        Ok(state)
    }

    /// The state a log starts from: the one cached beside the goal's progress when `cached`
    /// allows, a tier holds it for this user and it caught up recently enough (its version is
    /// the transaction's condition, so a stale one only costs a retry); else read and caught up.
    ///
    /// A cached state has not seen what the existing handlers logged since it caught up. Their
    /// `ActivityLogged` events drop it with the progress; without events, it catches up again
    /// once it is older than the progress cache's lifetime, which bounds how long a cached
    /// progress can go without their activities. Nothing is lost meanwhile: the next catch-up
    /// reads from where the last one asked (see [`Tally::caught_up`]).
    pub(crate) async fn state_for_write(
        &self,
        user: &UserId,
        goal: &GoalId,
        cached: bool,
    ) -> Result<GoalState> {
        if let (true, Some(cache)) = (cached, &self.inner.cache) {
            let key = cache.keys().progress(goal);
            let every = Duration::from_std(cache.config().ttl_progress).unwrap_or(Duration::MAX);
            if let Some(owned) = cache.lookup(&key, codec::PROGRESS).await {
                let state = (owned.user_id == user.as_str())
                    .then_some(owned.state)
                    .flatten()
                    .and_then(|bytes| GoalState::from_cached(&bytes, self.now(), every));
                if let Some(state) = state {
                    return Ok(state);
                }
            }
        }
        self.read_state(user, goal).await
    }

    /// Builds and stores the progress state of a goal that has none yet (written before the
    /// state existed, or by the existing handlers alone), so its first log or progress miss
    /// need not read its whole history: a migration job runs it over the goals ahead of traffic.
    /// On a goal that has a state it catches up (a query; a write when it found activities the
    /// state did not hold). Returns whether it wrote the state; `NotFound` for no such goal.
    pub async fn backfill_progress_state(&self, user_id: &str, goal_id: &str) -> Result<bool> {
        let user = UserId::parse(user_id)?;
        let goal_id = GoalId::parse(goal_id)?;
        let (goal, state) = self.progress_state(&user, &goal_id).await?;
        self.write_back(&user, &goal, &state).await
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
            if let Err(error) = store.write_back(&user, &goal, &state).await {
                not_stored(&error, &goal);
            }
        });
    }

    /// Writes back a state a progress fill read (before the fill, so the cached state names the
    /// version stored and a log can start from it), and returns what the progress cache keeps
    /// of it: nothing when the write failed or the state changed and lost the race.
    pub(crate) async fn store_for_cache(
        &self,
        user: &UserId,
        goal: &Goal,
        state: &GoalState,
    ) -> Option<Bytes> {
        match self.write_back(user, goal, state).await {
            Ok(true) => Some(state.cached_as_written()),
            Ok(false) => state.cached_as_read(),
            Err(error) => {
                not_stored(&error, goal);
                None
            }
        }
    }

    /// Writes back a state that a read caught up (see [`GoalStore::store_caught_up`]), and
    /// says whether it landed: `false` when it lost the race or had nothing to write.
    pub(crate) async fn write_back(
        &self,
        user: &UserId,
        goal: &Goal,
        state: &GoalState,
    ) -> Result<bool> {
        if !state.changed() {
            return Ok(false);
        }
        let goal_id = GoalId::parse(&goal.goal_id)?;
        self.rewrite_legacy_activities(goal, &state.caught_up)
            .await?;
        let item = state.to_item(user, &goal_id)?;
        match self
            .inner
            .table
            .put_item(item, Some(state.condition()))
            .await
        {
            Ok(()) => Ok(true),
            Err(TableError::ConditionFailed) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// A caught-up state that could not be written back: the next read catches up again.
fn not_stored(error: &Error, goal: &Goal) {
    tracing::warn!(%error, goal_id = goal.goal_id, "could not store a caught-up progress state");
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn logs_from_a_cached_state_leave_the_catch_up_where_it_was() {
        let asked = at("2025-01-05T10:00:00Z");
        let mut tally = Tally::default();
        tally.include(crate::model::key_form(asked - Duration::hours(2)), None);
        tally.caught_up(asked);
        tally.settle(asked.date_naive());
        assert!(tally.recent.is_empty(), "older than the catch-up's margin");
        // Three logs that start from the cached state: none asks the table.
        for minutes in [1, 10, 30] {
            let logged = asked + Duration::minutes(minutes);
            tally.include(crate::model::key_form(logged), None);
            tally.settle(logged.date_naive());
        }
        assert_eq!(
            tally.bound(),
            crate::model::key_form(asked - CATCH_UP_MARGIN),
            "the next catch-up still reads what the existing handlers logged since it asked"
        );
        assert_eq!(
            tally.recent.len(),
            3,
            "so it keeps the keys it would read again"
        );
        let hour = Duration::hours(1);
        assert!(tally.fresh(asked + Duration::minutes(59), hour));
        assert!(
            !tally.fresh(asked + hour, hour),
            "too long without a catch-up"
        );
        tally.caught_up(asked - hour);
        assert_eq!(
            tally.bound(),
            crate::model::key_form(asked - CATCH_UP_MARGIN),
            "a catch-up never moves back"
        );
        tally.caught_up(asked + Duration::minutes(31));
        tally.settle(asked.date_naive());
        assert_eq!(
            tally.recent.len(),
            1,
            "the 30-minute log is within the new margin"
        );
    }

    #[test]
    fn a_cached_state_names_a_version_the_table_held() {
        let user = UserId::parse("u").expect("valid");
        let goal = GoalId::parse("g").expect("valid");
        let now = at("2025-01-05T10:00:00Z");
        let hour = Duration::hours(1);
        let mut read = GoalState {
            tally: Tally::default(),
            version: Some(3),
            stored: Some(3),
            caught_up: Vec::new(),
        };
        read.tally.caught_up(now);
        let cached = read
            .cached_as_read()
            .expect("an unchanged state is cached as read");
        let back = GoalState::from_cached(&cached, now, hour).expect("fresh");
        assert_eq!(back.condition(), read.condition(), "version 3, as read");
        assert_eq!(back.tally, read.tally);
        assert!(GoalState::from_cached(&cached, now + hour, hour).is_none());
        assert!(GoalState::from_cached(b"\xc1", now, hour).is_none());

        // Written: the version its item now has.
        let written = GoalState::from_cached(&read.cached_as_written(), now, hour).expect("fresh");
        assert_eq!(
            written
                .to_item(&user, &goal)
                .expect("encodes")
                .get("version"),
            Some(&AttributeValue::N("5".into())),
            "over version 4"
        );

        // A read that changed the state (here: rebuilt an item it could not read) stores it on
        // the side; until that lands, the version the table will hold is not known, so the
        // cache gets none.
        read.version = None;
        assert!(read.changed());
        assert!(read.cached_as_read().is_none());
        let first = GoalState {
            tally: Tally::default(),
            version: None,
            stored: None,
            caught_up: Vec::new(),
        };
        assert!(first.cached_as_read().is_none(), "no item yet");
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
