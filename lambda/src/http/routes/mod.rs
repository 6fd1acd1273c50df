//! The eight route handlers: plain async functions of a `&dyn GoalService` and a
//! [`Request`](super::Request),
//! so tests call them in process; `src/bin/` wires each to `lambda_http`.

mod activities;
mod goals;
pub mod listing;
mod progress;

pub use activities::{list_activities, log_activity};
pub use goals::{archive_goal, create_goal, get_goal, list_goals, update_goal};
pub use progress::get_progress;
