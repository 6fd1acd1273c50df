//! Cache keys: what is cached under which name.
//!
//! | kind         | key (after the prefix)           |
//! |--------------|----------------------------------|
//! | active goals | `{goals:user:{user_id}:active}`  |
//! | progress     | `{progress:goal:{goal_id}}`      |
//! | one goal     | `{goal:user:{user_id}:{goal_id}}`|
//!
//! Every key starts with `{namespace}:v{SCHEMA_VERSION}:`, so two deployments, or two versions
//! whose keys mean different things, never share entries. (A change of the values' encoding
//! alone moves the format byte in front of each value instead, see `codec.rs`.) The braces are a Redis Cluster hash tag: a key and its fill
//! lease (`…:lease`) live in one slot, so one Lua script can check the lease and set the value.
//! Keys are built from validated ids only, which cannot contain `{`, `}`, `:` or newlines.

use crate::error::Error;
use crate::keys::{GoalId, UserId};
use std::sync::Arc;

/// Bumped whenever what a key names changes (its kind, its ids, what makes it stale).
pub const SCHEMA_VERSION: u32 = 1;

/// What a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheKind {
    /// The active goals of a user.
    ActiveGoals,
    /// The progress of a goal.
    Progress,
    /// One goal, or the marker that it does not exist.
    Goal,
}

impl CacheKind {
    /// Every kind.
    pub const ALL: [CacheKind; 3] = [CacheKind::ActiveGoals, CacheKind::Progress, CacheKind::Goal];

    /// A short, stable name for statistics and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::ActiveGoals => "active_goals",
            CacheKind::Progress => "progress",
            CacheKind::Goal => "goal",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A full cache key, prefix included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub kind: CacheKind,
    pub text: Arc<str>,
}

impl CacheKey {
    /// The key of this key's fill lease in Redis (same hash slot).
    pub fn lease(&self) -> String {
        format!("{}:lease", self.text)
    }
}

/// What a key caches (ids as the key holds them; parse them before use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    ActiveGoals {
        user: String,
    },
    Goal {
        user: String,
        goal: String,
    },
    /// Progress keys name the goal alone; the owner is in the value.
    Progress {
        goal: String,
    },
}

/// Builds keys under one namespace and schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// Keys under `namespace` (1-64 characters of `[A-Za-z0-9_.-]`).
    pub fn new(namespace: &str) -> Result<Self, Error> {
        let valid = (1..=64).contains(&namespace.len())
            && namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(Error::invalid(
                "cache.namespace",
                format!("`{namespace}` must be 1-64 characters of A-Z a-z 0-9 _ . -"),
            ));
        }
        Ok(Self {
            prefix: format!("{namespace}:v{SCHEMA_VERSION}:"),
        })
    }

    /// `{namespace}:v{version}:`
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: CacheKind, body: std::fmt::Arguments<'_>) -> CacheKey {
        CacheKey {
            kind,
            text: format!("{}{{{}}}", self.prefix, body).into(),
        }
    }

    /// The active goals of `user`.
    pub fn active_goals(&self, user: &UserId) -> CacheKey {
        self.key(
            CacheKind::ActiveGoals,
            format_args!("goals:user:{user}:active"),
        )
    }

    /// The progress of `goal`.
    pub fn progress(&self, goal: &GoalId) -> CacheKey {
        self.key(CacheKind::Progress, format_args!("progress:goal:{goal}"))
    }

    /// One goal of `user`.
    pub fn goal(&self, user: &UserId, goal: &GoalId) -> CacheKey {
        self.key(CacheKind::Goal, format_args!("goal:user:{user}:{goal}"))
    }

    /// What `key` caches: whose active goals, which goal, or which goal's progress. `None` for a
    /// key of another space.
    pub fn subject(&self, key: &CacheKey) -> Option<Subject> {
        let body = key
            .text
            .strip_prefix(&self.prefix)?
            .strip_prefix('{')?
            .strip_suffix('}')?;
        let id = |text: &str| text.to_owned();
        match key.kind {
            CacheKind::ActiveGoals => {
                let user = body.strip_prefix("goals:user:")?.strip_suffix(":active")?;
                Some(Subject::ActiveGoals { user: id(user) })
            }
            CacheKind::Progress => Some(Subject::Progress {
                goal: id(body.strip_prefix("progress:goal:")?),
            }),
            CacheKind::Goal => {
                let (user, goal) = body.strip_prefix("goal:user:")?.split_once(':')?;
                Some(Subject::Goal {
                    user: id(user),
                    goal: id(goal),
                })
            }
        }
    }

    /// Whether `text` is a key of this key space (for messages from other instances).
    pub fn parse(&self, text: &str) -> Option<CacheKey> {
        let body = text
            .strip_prefix(&self.prefix)?
            .strip_prefix('{')?
            .strip_suffix('}')?;
        let kind = if body.starts_with("goals:user:") && body.ends_with(":active") {
            CacheKind::ActiveGoals
        } else if body.starts_with("progress:goal:") {
            CacheKind::Progress
        } else if body.starts_with("goal:user:") {
            CacheKind::Goal
        } else {
            return None;
        };
        Some(CacheKey {
            kind,
            text: text.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let space = KeySpace::new("gs").expect("valid namespace");
        let user = UserId::parse("u1").expect("valid");
        let goal = GoalId::parse("g1").expect("valid");
        assert_eq!(
            &*space.active_goals(&user).text,
            "gs:v1:{goals:user:u1:active}"
        );
        assert_eq!(&*space.progress(&goal).text, "gs:v1:{progress:goal:g1}");
        assert_eq!(&*space.goal(&user, &goal).text, "gs:v1:{goal:user:u1:g1}");
        assert_eq!(
            space.goal(&user, &goal).lease(),
            "gs:v1:{goal:user:u1:g1}:lease"
        );
        for key in [
            space.active_goals(&user),
            space.progress(&goal),
            space.goal(&user, &goal),
        ] {
            assert_eq!(space.parse(&key.text), Some(key.clone()));
        }
        assert_eq!(space.parse("other:v1:{goal:user:u1:g1}"), None);
        assert_eq!(
            space.subject(&space.goal(&user, &goal)),
            Some(Subject::Goal {
                user: "u1".into(),
                goal: "g1".into()
            })
        );
        assert_eq!(
            space.subject(&space.active_goals(&user)),
            Some(Subject::ActiveGoals { user: "u1".into() })
        );
        assert_eq!(
            space.subject(&space.progress(&goal)),
            Some(Subject::Progress { goal: "g1".into() })
        );
        assert!(KeySpace::new("a{b}").is_err());
        assert!(KeySpace::new("").is_err());
    }
}
