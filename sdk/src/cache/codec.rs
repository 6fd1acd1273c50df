//! The encoding of cached values: compact, versioned, and checked on the way back.
//!
//! `[format version][kind tag][MessagePack body]`. MessagePack (rmp-serde, structs as arrays)
//! is compact; a goal's schemaless documents go in as their JSON text (see `model::Document`), so
//! decoding a cached goal copies them instead of building maps. A value whose
//! header does not match, or whose body does not decode, is an error: the cache counts it,
//! deletes it and reads the table instead.

use super::keys::CacheKind;
use crate::model::{Goal, Progress};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Bumped whenever the layout below changes (2: documents as their JSON text; 3: a progress
/// value carries the goal's progress state).
///
/// The key prefix keeps its version when only this changes: during a rolling upgrade, instances
/// of both formats then still share keys and invalidations, and each deletes the other's values
/// as undecodable (a miss) instead of serving them. A new key prefix would part their
/// invalidations, and an old instance would serve values a new one had made stale.
const FORMAT_VERSION: u8 = 3;

/// Room for most goals at once (the fixture's encode to 513–731 bytes).
const ENCODE_SCRATCH_BYTES: usize = 2048;

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
    /// The goal's progress state this progress was computed from, as the store encodes it
    /// (opaque here): a log starts from it instead of reading the state item. `None` for a
    /// progress from outside (a progress-calculated event).
    #[serde(default)]
    pub state: Option<Bytes>,
}

fn encode<T: Serialize + ?Sized>(kind: CacheKind, value: &T) -> Bytes {
    // Encoded into a scratch buffer, then copied into a block of exactly its size: a cached
    // value lives for minutes, so it should not hold spare capacity (a 514-byte goal in a grown
    // Vec holds a 1 KiB block), nor leave behind the blocks a Vec grows through.
    let mut scratch = Vec::with_capacity(ENCODE_SCRATCH_BYTES);
    scratch.extend_from_slice(&[FORMAT_VERSION, kind as u8]);
    // Serializing plain data to a Vec cannot fail; an empty body would decode as an error.
    let _ = rmp_serde::encode::write(&mut scratch, value);
    Bytes::copy_from_slice(&scratch)
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

/// How values of one kind are read back from cached bytes.
///
/// `decode` trusts what a decode cannot see: that every [`Document`](crate::Document) holds
/// valid JSON. That holds for bytes this process encoded, which is everything in the local tier
/// (filled from its own encodings, or from Redis values that passed `check`). `check` is for
/// bytes from outside the process (Redis): it decodes them and checks the documents too.
#[derive(Debug)]
pub struct Codec<T> {
    pub decode: fn(&[u8]) -> Result<T, DecodeError>,
    pub check: fn(&[u8]) -> Result<(), DecodeError>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

/// A goal, or the marker that it does not exist.
pub const GOAL: Codec<Option<Goal>> = Codec {
    decode: decode_goal,
    check: |bytes| check_goals(decode_goal(bytes)?.iter()),
};

/// The active goals of a user.
pub const GOALS: Codec<Vec<Goal>> = Codec {
    decode: decode_goals,
    check: |bytes| check_goals(decode_goals(bytes)?.iter()),
};

/// The progress of a goal and its owner (it holds no documents).
pub const PROGRESS: Codec<OwnedProgress> = Codec {
    decode: decode_progress,
    check: |bytes| decode_progress(bytes).map(|_| ()),
};

fn check_goals<'a>(goals: impl Iterator<Item = &'a Goal>) -> Result<(), DecodeError> {
    for goal in goals {
        for document in [&goal.schedule, &goal.context, &goal.rewards, &goal.metadata]
            .into_iter()
            .flatten()
        {
            document
                .check()
                .map_err(|e| DecodeError::Body(format!("a document is not JSON: {e}")))?;
        }
    }
    Ok(())
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
                serde_json::json!({"frequency": "daily", "times": ["07:30"], "skip": 1}).into(),
            ),
            progress: Progress {
                percent_complete: 42.5,
                ..Progress::default()
            },
            context: None,
            rewards: Some(serde_json::json!({"points": 10, "ratio": 0.5, "none": null}).into()),
            status: GoalStatus::Active,
            visibility: Visibility::Private,
            created_at: Timestamp::parse("2025-01-05T10:00:00.123456Z").expect("valid"),
            updated_at: Timestamp::parse("2025-01-05T10:00:00.123456+00:00").expect("valid"),
            completed_at: None,
            archived_at: None,
            metadata: Some(serde_json::json!({}).into()),
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
            state: None,
        };
        assert_eq!(
            decode_progress(&encode_progress(&progress)),
            Ok(progress.clone())
        );
        let with_state = OwnedProgress {
            state: Some(Bytes::from_static(&[1, 2, 3])),
            ..progress
        };
        let bytes = encode_progress(&with_state);
        assert_eq!(decode_progress(&bytes), Ok(with_state));
        assert!(
            bytes.ends_with(&[0xc4, 3, 1, 2, 3]),
            "the state is one MessagePack bin, not an array of numbers"
        );
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

    #[test]
    fn documents_are_cached_as_checked_json_text() {
        // The schedule travels as its canonical JSON text (keys sorted), not as a map.
        let text = br#"{"frequency":"daily","skip":1,"times":["07:30"]}"#;
        let break_schedule = |bytes: &Bytes| {
            let at = bytes
                .windows(text.len())
                .position(|window| window == text)
                .expect("the schedule's JSON text is in the value");
            let mut broken = bytes.to_vec();
            broken[at] = b'(';
            broken
        };
        // Text that is not JSON fails the check of bytes from outside the process, so such a
        // value is dropped, not served as a goal with a broken document.
        let goal = encode_goal(Some(&sample_goal()));
        assert_eq!((GOAL.check)(&goal), Ok(()));
        assert!(matches!(
            (GOAL.check)(&break_schedule(&goal)),
            Err(DecodeError::Body(_))
        ));
        let goals = encode_goals(&[sample_goal()]);
        assert_eq!((GOALS.check)(&goals), Ok(()));
        assert!(matches!(
            (GOALS.check)(&break_schedule(&goals)),
            Err(DecodeError::Body(_))
        ));
    }
}
