//! The business rules of the goals API (ORIGIN §2.2–2.5), as the existing handlers apply them.
//! Each refusal is an [`Error::Rule`] carrying the rule's code, a message and the details their
//! error bodies carry; every failing rule of a request is listed, as theirs are.
//!
//! Pure: the caller passes the goal, the user's active goals and the time. This module does not
//! read the table, and does not check field shapes (the parent module does, first).

use crate::error::{Error, Result, RuleCode};
use crate::model::{ActivityType, Goal, GoalPattern, GoalStatus, Target};
use crate::store::NewActivity;
use chrono::{DateTime, Utc};
use serde_json::json;

/// Most active goals a user may have.
pub const MAX_ACTIVE_GOALS: usize = 50;
/// Longest streak a streak goal may aim at, in days.
pub const MAX_STREAK_DAYS: f64 = 365.0;

fn goal_validation(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::rule(
        RuleCode::GoalValidationError,
        "Goal validation failed",
        json!({ "validation_errors": errors }),
    ))
}

/// The pattern's configuration (their create's rule 4): recurring goals have no target date,
/// milestones no period, target goals a start value.
fn pattern_configuration(pattern: GoalPattern, target: &Target, errors: &mut Vec<String>) {
    match pattern {
        GoalPattern::Recurring if target.target_date.is_some() => {
            errors.push("Recurring goals should not have a target date".into())
        }
        GoalPattern::Milestone if target.period.is_some() => {
            errors.push("Milestone goals should not have a period".into())
        }
        GoalPattern::Target if target.start_value.is_none() => {
            errors.push("Target goals must have a start value".into())
        }
        _ => {}
    }
}

/// The rules a new goal of `user` must meet, given the user's goals that are `active` now:
/// the quota first (refused alone, as theirs is), then the pattern's configuration, a target
/// date that is not past, a streak of at most a year, and a title no other active goal has.
pub fn new_goal(
    pattern: GoalPattern,
    title: &str,
    target: &Target,
    active: &[Goal],
    now: DateTime<Utc>,
) -> Result<()> {
    let active_count = active
        .iter()
        .filter(|g| g.status == GoalStatus::Active)
        .count();
    if active_count >= MAX_ACTIVE_GOALS {
        return Err(Error::rule(
            RuleCode::GoalQuotaExceeded,
            format!("Goal quota exceeded. Current: {active_count}, Max: {MAX_ACTIVE_GOALS}"),
            json!({ "current_count": active_count, "max_allowed": MAX_ACTIVE_GOALS }),
        ));
    }
    let mut errors = Vec::new();
    pattern_configuration(pattern, target, &mut errors);
    goal_validation(std::mem::take(&mut errors))?;
    target_date_not_past(target, now, &mut errors);
    if pattern == GoalPattern::Streak && target.value.is_some_and(|v| v > MAX_STREAK_DAYS) {
        errors.push("Streak target cannot exceed 365 days".into());
    }
    let lowered = title.to_lowercase();
    if active
        .iter()
        .any(|g| g.status == GoalStatus::Active && g.title.to_lowercase() == lowered)
    {
        errors.push(format!(
            "An active goal with title '{title}' already exists"
        ));
    }
    goal_validation(errors)
}

fn target_date_not_past(target: &Target, now: DateTime<Utc>, errors: &mut Vec<String>) {
    if let Some(date) = target.target_date.as_ref().and_then(|d| d.instant()) {
        if date < now {
            errors.push("Target date must be in the future".into());
        }
    }
}

/// The rules of an update of `current`: a completed or archived goal is not modified; a new
/// status is `active` or `paused` (archiving has its own call; nothing completes or drafts a
/// goal by update); a milestone's or target goal's new target date is not past.
pub fn update(
    current: &Goal,
    new_status: Option<GoalStatus>,
    new_target: Option<&Target>,
    now: DateTime<Utc>,
) -> Result<()> {
    if matches!(current.status, GoalStatus::Completed | GoalStatus::Archived) {
        return Err(Error::rule(
            RuleCode::GoalAlreadyCompleted,
            format!(
                "Goal {} is already completed and cannot be modified",
                current.goal_id
            ),
            json!({ "goal_id": current.goal_id }),
        ));
    }
    let mut errors = Vec::new();
    if let Some(status) = new_status {
        if !matches!(status, GoalStatus::Active | GoalStatus::Paused) {
            errors.push(format!(
                "Invalid status transition to '{status}': a goal's status can only be set to active or paused"
            ));
        }
    }
    if let Some(target) = new_target {
        let date_changed = target.target_date != current.target.target_date;
        if date_changed
            && matches!(
                current.goal_pattern,
                GoalPattern::Milestone | GoalPattern::Target
            )
        {
            target_date_not_past(target, now, &mut errors);
        }
    }
    goal_validation(errors)
}

fn activity_validation(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::rule(
        RuleCode::ActivityValidationError,
        "Activity validation failed",
        json!({ "validation_errors": errors }),
    ))
}

/// The rules an activity must meet against its goal (their log's steps 3, 5 and 6): the goal is
/// active or paused; the unit is the target's (exactly); a streak takes value 1 and only
/// progress; the date is not after the target date; a limit takes no negative value; a
/// milestone's progress is positive. `date` is the activity's date as it will be written.
pub fn activity(goal: &Goal, new: &NewActivity, unit: &str, date: DateTime<Utc>) -> Result<()> {
    if !matches!(goal.status, GoalStatus::Active | GoalStatus::Paused) {
        return activity_validation(vec![format!(
            "Cannot log activities for goal with status: {}",
            goal.status
        )]);
    }
    let mut errors = Vec::new();
    if let Some(expected) = goal.target.unit.as_deref() {
        if unit != expected {
            errors.push(format!(
                "Activity unit '{unit}' does not match goal unit '{expected}'"
            ));
        }
    }
    if goal.goal_pattern == GoalPattern::Streak && new.value != 1.0 {
        errors.push("Streak activities must have value of 1".into());
    }
    if let Some(target_date) = goal.target.target_date.as_ref().and_then(|d| d.instant()) {
        if date > target_date {
            errors.push("Activity date cannot be after goal target date".into());
        }
    }
    activity_validation(errors)?;
    match goal.goal_pattern {
        GoalPattern::Streak if new.activity_type != ActivityType::Progress => Err(Error::rule(
            RuleCode::InvalidGoalPatternOperation,
            format!(
                "Operation '{}' is not valid for streak goals",
                new.activity_type
            ),
            json!({ "pattern": "streak", "operation": new.activity_type.as_str() }),
        )),
        GoalPattern::Limit if new.value < 0.0 => {
            activity_validation(vec!["Limit goal activities cannot be negative".into()])
        }
        GoalPattern::Milestone
            if new.activity_type == ActivityType::Progress && new.value <= 0.0 =>
        {
            activity_validation(vec![
                "Milestone progress activities must have positive values".into(),
            ])
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Period, Timestamp};

    fn goal(title: &str, status: GoalStatus) -> Goal {
        let item = serde_json::json!({
            "goal_id": title, "user_id": "u", "title": title, "goal_pattern": "recurring",
            "status": status.as_str(), "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
        });
        serde_json::from_value(item).expect("a goal")
    }

    fn weekly() -> Target {
        Target {
            metric: "count".into(),
            value: Some(3.0),
            period: Some(Period::Week),
            ..Target::default()
        }
    }

    fn code(result: Result<()>) -> (RuleCode, serde_json::Value) {
        match result {
            Err(Error::Rule(rule)) => (rule.code, rule.details),
            other => panic!("not a rule: {other:?}"),
        }
    }

    #[test]
    fn the_quota_counts_only_active_goals_and_comes_first() {
        let now = Utc::now();
        let mut goals: Vec<Goal> = (0..49)
            .map(|i| goal(&format!("g{i}"), GoalStatus::Active))
            .collect();
        goals.push(goal("paused", GoalStatus::Paused));
        goals.push(goal("draft", GoalStatus::Draft));
        assert!(new_goal(GoalPattern::Recurring, "new", &weekly(), &goals, now).is_ok());
        goals.push(goal("g49", GoalStatus::Active));
        // Even a goal that breaks other rules is refused for the quota alone.
        let (refused, details) = code(new_goal(
            GoalPattern::Recurring,
            "g0",
            &weekly(),
            &goals,
            now,
        ));
        assert_eq!(refused, RuleCode::GoalQuotaExceeded);
        assert_eq!(
            details,
            serde_json::json!({"current_count": 50, "max_allowed": 50})
        );
    }

    #[test]
    fn duplicate_titles_past_dates_and_long_streaks_are_listed_together() {
        let now = Utc::now();
        let active = [
            goal("Run", GoalStatus::Active),
            goal("Swim", GoalStatus::Paused),
        ];
        let streak = Target {
            value: Some(400.0),
            target_date: Timestamp::parse("2020-01-01T00:00:00Z"),
            ..weekly()
        };
        let (refused, details) = code(new_goal(GoalPattern::Streak, "RUN", &streak, &active, now));
        assert_eq!(refused, RuleCode::GoalValidationError);
        assert_eq!(
            details["validation_errors"].as_array().map(Vec::len),
            Some(3),
            "{details}"
        );
        // A paused goal's title is free to take.
        assert!(new_goal(GoalPattern::Recurring, "swim", &weekly(), &active, now).is_ok());
    }

    #[test]
    fn updates_keep_completed_goals_and_set_only_active_or_paused() {
        let now = Utc::now();
        let done = goal("done", GoalStatus::Completed);
        assert_eq!(
            code(update(&done, None, None, now)).0,
            RuleCode::GoalAlreadyCompleted
        );
        let live = goal("live", GoalStatus::Active);
        assert!(update(&live, Some(GoalStatus::Paused), None, now).is_ok());
        assert_eq!(
            code(update(&live, Some(GoalStatus::Draft), None, now)).0,
            RuleCode::GoalValidationError
        );
    }
}
