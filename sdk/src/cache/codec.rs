//! The encoding of cached values: compact, versioned, and checked on the way back.
//!
//! `[format version][kind tag][MessagePack body]`. MessagePack (rmp-serde, structs as arrays)
//! is compact and self-describing enough for the schemaless parts of a goal. A value whose
//! header does not match, or whose body does not decode, is an error: the cache counts it,
//! deletes it and reads the table instead.

use super::keys::CacheKind;
use crate::model::{Goal, Progress};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Bumped whenever the layout below changes (the key prefix's schema version moves with it).
const FORMAT_VERSION: u8 = 1;

/// Why cached bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("cached value has format {found}, expected {FORMAT_VERSION}")]
    Version { found: u8 },
    #[error("cached value holds {found:?}, expected {expected:?}")]
    Kind { found: u8, expected: CacheKind },
    #[error("cached value is truncated")]
    Truncated,
    #[error("cached value does not decode: {0}")]
    Body(String),
}

/// The progress of a goal, with the owner it was computed for (checked on read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnedProgress {
    pub user_id: String,
    pub progress: Progress,
}

fn encode<T: Serialize + ?Sized>(kind: CacheKind, value: &T) -> Bytes {
    let mut bytes = vec![FORMAT_VERSION, kind as u8];
    // Serializing plain data to a Vec cannot fail; an empty body would decode as an error.
    let _ = rmp_serde::encode::write(&mut bytes, value);
    // The Vec grew by doubling; a cached value lives for minutes, so give back the spare
    // capacity (a 514-byte goal otherwise holds a 1 KiB block for its whole life).
    bytes.shrink_to_fit();
    Bytes::from(bytes)
}

fn decode<T: DeserializeOwned>(kind: CacheKind, bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes {
        [version, ..] if *version != FORMAT_VERSION => {
            Err(DecodeError::Version { found: *version })
        }
        [_, tag, body @ ..] if *tag == kind as u8 => {
            rmp_serde::from_slice(body).map_err(|e| DecodeError::Body(e.to_string()))
        }
        [_, tag, ..] => Err(DecodeError::Kind {
            found: *tag,
            expected: kind,
        }),
        _ => Err(DecodeError::Truncated),
    }
}

/// A goal, or `None`: the marker that it does not exist.
pub fn encode_goal(goal: Option<&Goal>) -> Bytes {
    encode(CacheKind::Goal, &goal)
}

/// See [`encode_goal`].
pub fn decode_goal(bytes: &[u8]) -> Result<Option<Goal>, DecodeError> {
    decode(CacheKind::Goal, bytes)
}

/// The active goals of a user.
pub fn encode_goals(goals: &[Goal]) -> Bytes {
    encode(CacheKind::ActiveGoals, goals)
}

/// See [`encode_goals`].
pub fn decode_goals(bytes: &[u8]) -> Result<Vec<Goal>, DecodeError> {
    decode(CacheKind::ActiveGoals, bytes)
}

/// The progress of a goal and its owner.
pub fn encode_progress(progress: &OwnedProgress) -> Bytes {
    encode(CacheKind::Progress, progress)
}

/// See [`encode_progress`].
pub fn decode_progress(bytes: &[u8]) -> Result<OwnedProgress, DecodeError> {
    decode(CacheKind::Progress, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GoalPattern, GoalStatus, Target, Timestamp, Visibility};

    pub(crate) fn sample_goal() -> Goal {
        Goal {
            goal_id: "g1".into(),
            user_id: "u1".into(),
            title: "Walk".into(),
            description: None,
            category: Some("health".into()),
            icon: None,
            color: Some("#FF5733".into()),
            goal_pattern: GoalPattern::Recurring,
            target: Target {
                metric: "count".into(),
                value: Some(10_000.0),
                ..Target::default()
            },
            schedule: Some(
                serde_json::json!({"frequency": "daily", "times": ["07:30"], "skip": 1}),
            ),
            progress: Progress {
                percent_complete: 42.5,
                ..Progress::default()
            },
            context: None,
            rewards: Some(serde_json::json!({"points": 10, "ratio": 0.5, "none": null})),
            status: GoalStatus::Active,
            visibility: Visibility::Private,
            created_at: Timestamp::parse("2025-01-05T10:00:00.123456Z").expect("valid"),
            updated_at: Timestamp::parse("2025-01-05T10:00:00.123456+00:00").expect("valid"),
            completed_at: None,
            archived_at: None,
            metadata: Some(serde_json::json!({})),
            is_journal_linked: true,
        }
    }

    #[test]
    fn values_round_trip() {
        let goal = sample_goal();
        assert_eq!(
            decode_goal(&encode_goal(Some(&goal))),
            Ok(Some(goal.clone()))
        );
        assert_eq!(decode_goal(&encode_goal(None)), Ok(None));
        let goals = vec![goal.clone(), goal.clone()];
        assert_eq!(decode_goals(&encode_goals(&goals)), Ok(goals));
        let progress = OwnedProgress {
            user_id: "u1".into(),
            progress: goal.progress.clone(),
        };
        assert_eq!(decode_progress(&encode_progress(&progress)), Ok(progress));
    }

    #[test]
    fn foreign_bytes_are_errors_not_panics() {
        let goal = encode_goal(Some(&sample_goal()));
        assert!(matches!(decode_goals(&goal), Err(DecodeError::Kind { .. })));
        assert!(matches!(
            decode_goal(&[9, 2, 0]),
            Err(DecodeError::Version { found: 9 })
        ));
        assert_eq!(decode_goal(&[]), Err(DecodeError::Truncated));
        assert!(matches!(
            decode_goal(&goal[..goal.len() / 2]),
            Err(DecodeError::Body(_))
        ));
    }
}
