//! Conversions between the model and the `goalstore.v1` wire messages (free-form documents in
//! `document.rs`), and (in `status.rs`) between store errors and gRPC statuses — in one place,
//! for the sidecar (server side) and `Client` (client side).
//!
//! Invariants: a caller's mistake (a bad enum number, a malformed timestamp, a bad id) becomes
//! `Error::InvalidArgument` naming the field, never a panic; every `Error` maps to exactly one
//! gRPC code, and back.

mod document;
mod status;

pub use document::{document_of, document_of_struct, struct_of, value_of};
pub use status::{error_of, status_of, ERROR_DOMAIN};

use document::{list_of, opt_list, opt_struct};

use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::model::{
    Activity, ActivitySource, ActivityType, Direction, Goal, GoalPattern, GoalStatus, Period,
    PeriodRecord, Progress, Target, TargetType, Timestamp, Trend, Visibility,
};
use crate::store::{GoalFilter, GoalUpdate, NewActivity, NewGoal};
use goalstore_proto::v1 as pb;

// ----- enums -----

macro_rules! enum_pair {
    ($model:ident, $wire:ident, $field:literal, { $($m:ident = $w:ident),+ $(,)? }) => {
        impl From<$model> for pb::$wire {
            fn from(value: $model) -> Self {
                match value { $($model::$m => pb::$wire::$w),+ }
            }
        }

        impl WireEnum for $model {
            /// `None` for UNSPECIFIED; an error naming the field for a number the contract lacks.
            fn from_wire(number: i32) -> Result<Option<Self>, Error> {
                match pb::$wire::try_from(number) {
                    $(Ok(pb::$wire::$w) => Ok(Some($model::$m)),)+
                    Ok(_) => Ok(None),
                    Err(_) => Err(Error::invalid($field, format!("{number} is not a {}", stringify!($wire)))),
                }
            }
        }
    };
}

/// A model enum carried as a proto enum number.
pub trait WireEnum: Sized {
    /// The model value of a wire number.
    fn from_wire(number: i32) -> Result<Option<Self>, Error>;
}

fn wire<T: Into<W>, W: Into<i32>>(value: T) -> i32 {
    value.into().into()
}

fn wire_opt<T: Into<W>, W: Into<i32>>(value: Option<T>) -> i32 {
    value.map_or(0, |v| v.into().into())
}

enum_pair!(GoalPattern, GoalPattern, "goal_pattern", {
    Recurring = Recurring, Milestone = Milestone, Target = Target, Streak = Streak, Limit = Limit
});
enum_pair!(GoalStatus, GoalStatus, "status", {
    Draft = Draft, Active = Active, Paused = Paused, Completed = Completed, Archived = Archived
});
enum_pair!(Visibility, Visibility, "visibility", { Private = Private, Friends = Friends, Public = Public });
enum_pair!(Period, Period, "target.period", {
    Day = Day, Week = Week, Month = Month, Quarter = Quarter, Year = Year
});
enum_pair!(Direction, Direction, "target.direction", {
    Increase = Increase, Decrease = Decrease, Maintain = Maintain
});
enum_pair!(TargetType, TargetType, "target.target_type", {
    Minimum = Minimum, Maximum = Maximum, Exact = Exact, Range = Range
});
enum_pair!(ActivityType, ActivityType, "activity_type", {
    Progress = Progress, Completed = Completed, Skipped = Skipped, Partial = Partial
});
enum_pair!(ActivitySource, ActivitySource, "source", {
    Manual = Manual, Device = Device, Integration = Integration, Import = Import
});
enum_pair!(Trend, Trend, "trend", { Improving = Improving, Stable = Stable, Declining = Declining });

fn timestamp(field: &'static str, text: &str) -> Result<Option<Timestamp>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    Timestamp::parse(text)
        .map(Some)
        .ok_or_else(|| Error::invalid(field, format!("{text:?} is not an ISO-8601 time")))
}

fn text(value: &Option<Timestamp>) -> Option<String> {
    value.as_ref().map(|t| t.as_str().to_owned())
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

// ----- model to wire -----

impl From<&Target> for pb::Target {
    fn from(t: &Target) -> Self {
        pb::Target {
            metric: t.metric.clone(),
            value: t.value,
            unit: t.unit.clone(),
            period: wire_opt::<_, pb::Period>(t.period),
            target_date: text(&t.target_date),
            start_value: t.start_value,
            current_value: t.current_value,
            direction: wire_opt::<_, pb::Direction>(t.direction),
            target_type: wire_opt::<_, pb::TargetType>(t.target_type),
            min_value: t.min_value,
            max_value: t.max_value,
        }
    }
}

impl From<&Progress> for pb::Progress {
    fn from(p: &Progress) -> Self {
        pb::Progress {
            percent_complete: p.percent_complete,
            last_activity_date: text(&p.last_activity_date),
            current_period_value: p.current_period_value,
            period_history: p
                .period_history
                .iter()
                .map(|r| pb::PeriodRecord {
                    period: r.period.clone(),
                    achieved: r.achieved,
                    value: r.value,
                    date: r
                        .date
                        .as_ref()
                        .map(|d| d.as_str().to_owned())
                        .unwrap_or_default(),
                })
                .collect(),
            total_accumulated: p.total_accumulated,
            remaining_to_goal: p.remaining_to_goal,
            current_streak: clamp_i32(p.current_streak),
            longest_streak: clamp_i32(p.longest_streak),
            target_streak: p.target_streak.map(clamp_i32),
            average_value: p.average_value,
            days_over_limit: p.days_over_limit.map(clamp_i32),
            trend: wire_opt::<_, pb::Trend>(p.trend),
            projected_completion: text(&p.projected_completion),
            success_rate: p.success_rate,
        }
    }
}

fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<&Goal> for pb::Goal {
    fn from(g: &Goal) -> Self {
        pb::Goal {
            goal_id: g.goal_id.clone(),
            user_id: g.user_id.clone(),
            title: g.title.clone(),
            description: g.description.clone(),
            category: g.category.clone(),
            icon: g.icon.clone(),
            color: g.color.clone(),
            goal_pattern: wire::<_, pb::GoalPattern>(g.goal_pattern),
            target: Some((&g.target).into()),
            schedule: g.schedule.as_ref().and_then(struct_of),
            progress: Some((&g.progress).into()),
            context: g.context.as_ref().and_then(struct_of),
            rewards: g.rewards.as_ref().and_then(struct_of),
            status: wire::<_, pb::GoalStatus>(g.status),
            visibility: wire::<_, pb::Visibility>(g.visibility),
            created_at: g.created_at.as_str().to_owned(),
            updated_at: g.updated_at.as_str().to_owned(),
            completed_at: text(&g.completed_at),
            archived_at: text(&g.archived_at),
            metadata: g.metadata.as_ref().and_then(struct_of),
            is_journal_linked: g.is_journal_linked,
        }
    }
}

impl From<&Activity> for pb::Activity {
    fn from(a: &Activity) -> Self {
        pb::Activity {
            activity_id: a.activity_id.clone(),
            goal_id: a.goal_id.clone(),
            user_id: a.user_id.clone(),
            value: a.value,
            unit: a.unit.clone(),
            activity_type: wire::<_, pb::ActivityType>(a.activity_type),
            activity_date: a.activity_date.as_str().to_owned(),
            logged_at: a.logged_at.as_str().to_owned(),
            timezone: a.timezone.clone(),
            location: a.location.as_ref().and_then(struct_of),
            context: a.context.as_ref().and_then(struct_of),
            note: a.note.clone(),
            attachments: list_of(&a.attachments),
            source: wire::<_, pb::ActivitySource>(a.source),
            device_info: a.device_info.as_ref().and_then(struct_of),
        }
    }
}

// ----- wire to model -----

/// The model target of a wire target.
pub fn target_of(t: &pb::Target) -> Result<Target, Error> {
    Ok(Target {
        metric: t.metric.clone(),
        value: t.value,
        unit: t.unit.clone(),
        period: Period::from_wire(t.period)?,
        target_date: t
            .target_date
            .as_deref()
            .map(|d| timestamp("target.target_date", d))
            .transpose()?
            .flatten(),
        start_value: t.start_value,
        current_value: t.current_value,
        direction: Direction::from_wire(t.direction)?,
        target_type: TargetType::from_wire(t.target_type)?,
        min_value: t.min_value,
        max_value: t.max_value,
    })
}

/// The model progress of a wire progress.
pub fn progress_of(p: &pb::Progress) -> Result<Progress, Error> {
    let count = |field: &'static str, n: i32| {
        u32::try_from(n).map_err(|_| Error::invalid(field, "must not be negative"))
    };
    Ok(Progress {
        percent_complete: p.percent_complete,
        last_activity_date: p
            .last_activity_date
            .as_deref()
            .map(|d| timestamp("progress.last_activity_date", d))
            .transpose()?
            .flatten(),
        current_period_value: p.current_period_value,
        period_history: p
            .period_history
            .iter()
            .map(|r| {
                Ok(PeriodRecord {
                    period: r.period.clone(),
                    achieved: r.achieved,
                    value: r.value,
                    date: timestamp("progress.period_history.date", &r.date)?,
                })
            })
            .collect::<Result<_, Error>>()?,
        total_accumulated: p.total_accumulated,
        remaining_to_goal: p.remaining_to_goal,
        current_streak: count("progress.current_streak", p.current_streak)?,
        longest_streak: count("progress.longest_streak", p.longest_streak)?,
        target_streak: p
            .target_streak
            .map(|n| count("progress.target_streak", n))
            .transpose()?,
        average_value: p.average_value,
        days_over_limit: p
            .days_over_limit
            .map(|n| count("progress.days_over_limit", n))
            .transpose()?,
        trend: Trend::from_wire(p.trend)?,
        projected_completion: p
            .projected_completion
            .as_deref()
            .map(|d| timestamp("progress.projected_completion", d))
            .transpose()?
            .flatten(),
        success_rate: p.success_rate,
    })
}

/// The model goal of a wire goal (for clients of the sidecar).
pub fn goal_of(g: &pb::Goal) -> Result<Goal, Error> {
    Ok(Goal {
        goal_id: g.goal_id.clone(),
        user_id: g.user_id.clone(),
        title: g.title.clone(),
        description: g.description.clone(),
        category: g.category.clone(),
        icon: g.icon.clone(),
        color: g.color.clone(),
        goal_pattern: GoalPattern::from_wire(g.goal_pattern)?
            .ok_or_else(|| Error::invalid("goal_pattern", "is unspecified"))?,
        target: g
            .target
            .as_ref()
            .map(target_of)
            .transpose()?
            .unwrap_or_default(),
        schedule: opt_struct(&g.schedule)?,
        progress: g
            .progress
            .as_ref()
            .map(progress_of)
            .transpose()?
            .unwrap_or_default(),
        context: opt_struct(&g.context)?,
        rewards: opt_struct(&g.rewards)?,
        status: GoalStatus::from_wire(g.status)?
            .ok_or_else(|| Error::invalid("status", "is unspecified"))?,
        visibility: Visibility::from_wire(g.visibility)?.unwrap_or(Visibility::Private),
        created_at: timestamp("created_at", &g.created_at)?
            .ok_or_else(|| Error::invalid("created_at", "is empty"))?,
        updated_at: timestamp("updated_at", &g.updated_at)?
            .ok_or_else(|| Error::invalid("updated_at", "is empty"))?,
        completed_at: g
            .completed_at
            .as_deref()
            .map(|d| timestamp("completed_at", d))
            .transpose()?
            .flatten(),
        archived_at: g
            .archived_at
            .as_deref()
            .map(|d| timestamp("archived_at", d))
            .transpose()?
            .flatten(),
        metadata: opt_struct(&g.metadata)?,
        is_journal_linked: g.is_journal_linked,
    })
}

/// The model activity of a wire activity (for clients of the sidecar).
pub fn activity_of(a: &pb::Activity) -> Result<Activity, Error> {
    Ok(Activity {
        activity_id: a.activity_id.clone(),
        goal_id: a.goal_id.clone(),
        user_id: a.user_id.clone(),
        value: a.value,
        unit: a.unit.clone(),
        activity_type: ActivityType::from_wire(a.activity_type)?.unwrap_or(ActivityType::Progress),
        activity_date: timestamp("activity_date", &a.activity_date)?
            .ok_or_else(|| Error::invalid("activity_date", "is empty"))?,
        logged_at: timestamp("logged_at", &a.logged_at)?
            .ok_or_else(|| Error::invalid("logged_at", "is empty"))?,
        timezone: a.timezone.clone(),
        location: opt_struct(&a.location)?,
        context: opt_struct(&a.context)?,
        note: a.note.clone(),
        attachments: opt_list(&a.attachments)?,
        source: ActivitySource::from_wire(a.source)?.unwrap_or(ActivitySource::Manual),
        device_info: opt_struct(&a.device_info)?,
    })
}

/// The new goal a CreateGoal request describes.
pub fn new_goal_of(r: &pb::CreateGoalRequest) -> Result<NewGoal, Error> {
    Ok(NewGoal {
        goal_id: non_empty(&r.goal_id),
        title: r.title.clone(),
        description: r.description.clone(),
        category: r.category.clone(),
        icon: r.icon.clone(),
        color: r.color.clone(),
        goal_pattern: GoalPattern::from_wire(r.goal_pattern)?
            .ok_or_else(|| Error::invalid("goal_pattern", "must be set"))?,
        target: target_of(
            r.target
                .as_ref()
                .ok_or_else(|| Error::invalid("target", "must be set"))?,
        )?,
        schedule: opt_struct(&r.schedule)?,
        context: opt_struct(&r.context)?,
        rewards: opt_struct(&r.rewards)?,
        status: GoalStatus::from_wire(r.status)?,
        visibility: Visibility::from_wire(r.visibility)?.unwrap_or(Visibility::Private),
        metadata: opt_struct(&r.metadata)?,
        is_journal_linked: r.is_journal_linked,
    })
}

/// The CreateGoal request of a new goal (for clients of the sidecar).
pub fn create_request_of(user_id: &str, new: &NewGoal) -> pb::CreateGoalRequest {
    pb::CreateGoalRequest {
        user_id: user_id.to_owned(),
        goal_id: new.goal_id.clone().unwrap_or_default(),
        title: new.title.clone(),
        description: new.description.clone(),
        category: new.category.clone(),
        icon: new.icon.clone(),
        color: new.color.clone(),
        goal_pattern: wire::<_, pb::GoalPattern>(new.goal_pattern),
        target: Some((&new.target).into()),
        schedule: new.schedule.as_ref().and_then(struct_of),
        context: new.context.as_ref().and_then(struct_of),
        rewards: new.rewards.as_ref().and_then(struct_of),
        status: wire_opt::<_, pb::GoalStatus>(new.status),
        visibility: wire::<_, pb::Visibility>(new.visibility),
        metadata: new.metadata.as_ref().and_then(struct_of),
        is_journal_linked: new.is_journal_linked,
    }
}

/// The partial update an UpdateGoal request describes.
pub fn goal_update_of(r: &pb::UpdateGoalRequest) -> Result<GoalUpdate, Error> {
    Ok(GoalUpdate {
        title: r.title.clone(),
        description: r.description.clone(),
        category: r.category.clone(),
        icon: r.icon.clone(),
        color: r.color.clone(),
        goal_pattern: GoalPattern::from_wire(r.goal_pattern)?,
        target: r.target.as_ref().map(target_of).transpose()?,
        schedule: opt_struct(&r.schedule)?,
        context: opt_struct(&r.context)?,
        rewards: opt_struct(&r.rewards)?,
        status: GoalStatus::from_wire(r.status)?,
        visibility: Visibility::from_wire(r.visibility)?,
        metadata: opt_struct(&r.metadata)?,
        is_journal_linked: r.is_journal_linked,
    })
}

/// The UpdateGoal request of a partial update (for clients of the sidecar).
pub fn update_request_of(user_id: &str, goal_id: &str, u: &GoalUpdate) -> pb::UpdateGoalRequest {
    pb::UpdateGoalRequest {
        user_id: user_id.to_owned(),
        goal_id: goal_id.to_owned(),
        title: u.title.clone(),
        description: u.description.clone(),
        category: u.category.clone(),
        icon: u.icon.clone(),
        color: u.color.clone(),
        goal_pattern: wire_opt::<_, pb::GoalPattern>(u.goal_pattern),
        target: u.target.as_ref().map(Into::into),
        schedule: u.schedule.as_ref().and_then(struct_of),
        context: u.context.as_ref().and_then(struct_of),
        rewards: u.rewards.as_ref().and_then(struct_of),
        status: wire_opt::<_, pb::GoalStatus>(u.status),
        visibility: wire_opt::<_, pb::Visibility>(u.visibility),
        metadata: u.metadata.as_ref().and_then(struct_of),
        is_journal_linked: u.is_journal_linked,
    }
}

/// The new activity a LogActivity request describes.
pub fn new_activity_of(r: &pb::LogActivityRequest) -> Result<NewActivity, Error> {
    Ok(NewActivity {
        activity_id: non_empty(&r.activity_id),
        value: r.value,
        unit: r.unit.clone(),
        activity_type: ActivityType::from_wire(r.activity_type)?.unwrap_or(ActivityType::Progress),
        activity_date: timestamp("activity_date", &r.activity_date)?,
        timezone: r.timezone.clone(),
        location: opt_struct(&r.location)?,
        context: opt_struct(&r.context)?,
        note: r.note.clone(),
        attachments: opt_list(&r.attachments)?,
        source: ActivitySource::from_wire(r.source)?.unwrap_or(ActivitySource::Manual),
        device_info: opt_struct(&r.device_info)?,
    })
}

/// The LogActivity request of a new activity (for clients of the sidecar).
pub fn log_request_of(user_id: &str, goal_id: &str, new: &NewActivity) -> pb::LogActivityRequest {
    pb::LogActivityRequest {
        user_id: user_id.to_owned(),
        goal_id: goal_id.to_owned(),
        activity_id: new.activity_id.clone().unwrap_or_default(),
        value: new.value,
        unit: new.unit.clone(),
        activity_type: wire::<_, pb::ActivityType>(new.activity_type),
        activity_date: text(&new.activity_date).unwrap_or_default(),
        timezone: new.timezone.clone(),
        location: new.location.as_ref().and_then(struct_of),
        context: new.context.as_ref().and_then(struct_of),
        note: new.note.clone(),
        attachments: list_of(&new.attachments),
        source: wire::<_, pb::ActivitySource>(new.source),
        device_info: new.device_info.as_ref().and_then(struct_of),
    }
}

/// The filter a ListGoals request describes.
pub fn goal_filter_of(r: &pb::ListGoalsRequest) -> Result<GoalFilter, Error> {
    Ok(GoalFilter {
        status: GoalStatus::from_wire(r.status)?,
        goal_pattern: GoalPattern::from_wire(r.goal_pattern)?,
        category: r.category.clone(),
    })
}

/// A page size from the wire: 0 means the default, negative is an error.
pub fn page_size_of(page_size: i32) -> Result<Option<u32>, Error> {
    match page_size {
        0 => Ok(None),
        n => u32::try_from(n)
            .map(Some)
            .map_err(|_| Error::invalid("page_size", "must not be negative")),
    }
}

/// A page token from the wire: empty means the first page.
pub fn page_token_of(token: &str) -> Option<String> {
    non_empty(token)
}

/// A model time filter bound from the wire.
pub fn time_bound_of(field: &'static str, value: &str) -> Result<Option<Timestamp>, Error> {
    timestamp(field, value)
}

/// The model event of a wire event.
pub fn event_of(e: &pb::Event) -> Result<Event, Error> {
    use pb::event::Kind as K;
    let kind = match &e.kind {
        None => return Err(Error::invalid("events.kind", "must be set")),
        Some(K::GoalCreated(_)) => EventKind::GoalCreated,
        Some(K::GoalUpdated(_)) => EventKind::GoalUpdated,
        Some(K::GoalArchived(_)) => EventKind::GoalArchived,
        Some(K::ActivityLogged(_)) => EventKind::ActivityLogged,
        Some(K::ProgressCalculated(p)) => EventKind::ProgressCalculated(
            p.progress
                .as_ref()
                .map(progress_of)
                .transpose()?
                .ok_or_else(|| Error::invalid("events.progress", "must be set"))?,
        ),
    };
    Ok(Event {
        user_id: e.user_id.clone(),
        goal_id: e.goal_id.clone(),
        kind,
    })
}

/// The wire event of a model event (for clients of the sidecar).
pub fn wire_event_of(e: &Event) -> pb::Event {
    use pb::event::Kind as K;
    pb::Event {
        user_id: e.user_id.clone(),
        goal_id: e.goal_id.clone(),
        kind: Some(match &e.kind {
            EventKind::GoalCreated => K::GoalCreated(pb::GoalCreated {}),
            EventKind::GoalUpdated => K::GoalUpdated(pb::GoalUpdated {}),
            EventKind::GoalArchived => K::GoalArchived(pb::GoalArchived {}),
            EventKind::ActivityLogged => K::ActivityLogged(pb::ActivityLogged {}),
            EventKind::ProgressCalculated(p) => K::ProgressCalculated(pb::ProgressCalculated {
                progress: Some(p.into()),
            }),
        }),
    }
}

/// The Stats answer for a store's statistics.
pub fn stats_response_of(
    strategy: crate::cache::Strategy,
    stats: &crate::store::StoreStats,
    uptime: std::time::Duration,
) -> pb::StatsResponse {
    let cache = stats.cache.clone().unwrap_or_default();
    let t = &stats.table;
    pb::StatsResponse {
        cache_strategy: strategy.as_str().to_owned(),
        degraded: cache.degraded,
        uptime_seconds: uptime.as_secs(),
        lookups: cache
            .lookups
            .iter()
            .map(|((tier, kind), (hits, misses))| pb::CacheLookups {
                tier: tier.as_str().to_owned(),
                kind: kind.as_str().to_owned(),
                hits: *hits,
                misses: *misses,
                hit_ratio: cache.hit_ratio(*tier, *kind).unwrap_or(0.0),
            })
            .collect(),
        fills: cache.fills,
        fills_refused: cache.fills_refused,
        invalidations: cache
            .invalidations
            .iter()
            .map(|(event, count)| ((*event).to_owned(), *count))
            .collect(),
        decode_failures: cache.decode_failures,
        redis_errors: cache.redis_errors,
        local_entries: cache.local_entries,
        local_weight_bytes: cache.local_weight_bytes,
        local_purges: cache.local_purges,
        messages_published: cache.messages_published,
        messages_received: cache.messages_received,
        flights_in_progress: cache.flights_in_progress,
        local_leases_held: cache.local_leases_held,
        consistency_checks_consistent: cache.consistency_checks_consistent,
        consistency_checks_stale: cache.consistency_checks_stale,
        consistency_checks_running: cache.consistency_checks_running,
        table: Some(pb::TableUsage {
            get_item: t.get_item,
            batch_get_item: t.batch_get_item,
            put_item: t.put_item,
            update_item: t.update_item,
            transact_write_items: t.transact_write_items,
            query: t.query,
            throttled: t.throttled,
            read_units: t.read_units,
            write_units: t.write_units,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_numbers_are_invalid_arguments_naming_the_field() {
        let error = GoalPattern::from_wire(99).expect_err("not a pattern");
        assert!(matches!(&error, Error::InvalidArgument { field, .. } if field == "goal_pattern"));
        assert_eq!(GoalPattern::from_wire(0).expect("unspecified"), None);
        assert_eq!(
            GoalPattern::from_wire(2).expect("milestone"),
            Some(GoalPattern::Milestone)
        );
    }
}
