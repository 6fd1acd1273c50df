//! Goals the tests create: a target that fits each pattern's rules (a period for recurring and
//! limit goals, a target date far ahead for milestone and target goals, a start value for target
//! goals), in the SDK's model and as the proto message, so a test names only what it is about.

use goalstore::{GoalPattern, Period, Target, Timestamp};
use goalstore_proto::v1 as pb;

/// A target date no test run reaches.
pub const FAR_AHEAD: &str = "2099-12-31T00:00:00Z";

/// A `count` target of `value` that a goal of `pattern` accepts.
pub fn target_for(pattern: GoalPattern, value: f64) -> Target {
    let mut target = Target {
        metric: "count".into(),
        value: Some(value),
        ..Target::default()
    };
    match pattern {
        GoalPattern::Recurring | GoalPattern::Limit => target.period = Some(Period::Day),
        GoalPattern::Streak => {}
        GoalPattern::Milestone => target.target_date = Timestamp::parse(FAR_AHEAD),
        GoalPattern::Target => {
            target.target_date = Timestamp::parse(FAR_AHEAD);
            target.start_value = Some(0.0);
        }
    }
    target
}

/// [`target_for`] as the proto message.
pub fn pb_target_for(pattern: pb::GoalPattern, value: f64) -> pb::Target {
    let mut target = pb::Target {
        metric: "count".into(),
        value: Some(value),
        ..pb::Target::default()
    };
    match pattern {
        pb::GoalPattern::Recurring | pb::GoalPattern::Limit => {
            target.period = pb::Period::Day as i32
        }
        pb::GoalPattern::Milestone => target.target_date = Some(FAR_AHEAD.into()),
        pb::GoalPattern::Target => {
            target.target_date = Some(FAR_AHEAD.into());
            target.start_value = Some(0.0);
        }
        _ => {}
    }
    target
}
