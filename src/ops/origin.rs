//! Where a task came from and what it continues, as written into its task file's `x-orca-*`
//! keys by the front end that made it (`orca submit`, the Telegram bot) and read back into
//! the store record and the result's `source`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::artifacts::result::{SourceKind, TaskSource};
use crate::store::TaskRecord;
use crate::task::Task;

/// `cli` or `telegram` (a task file without it came from a file).
pub const SOURCE: &str = "x-orca-source";
/// The sender's name as shown to people (Telegram: the name and @username).
pub const USER: &str = "x-orca-user";
/// The sender's Telegram user id.
pub const USER_ID: &str = "x-orca-user-id";
/// The Telegram chat the task came from (its notifications go there).
pub const CHAT_ID: &str = "x-orca-chat-id";
/// The task this one continues.
pub const FOLLOWS: &str = "x-orca-follows";
/// The agent session a follow-up resumes on its first attempt.
pub const RESUME_SESSION: &str = "x-orca-resume-session";

/// Who sent a task and from where; [`Origin::extra`] gives its task file keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub user: Option<String>,
    pub user_id: Option<i64>,
    pub chat_id: Option<i64>,
    /// (task id, agent session) of the task continued.
    pub follows: Option<(String, Option<String>)>,
}

impl Origin {
    /// The `x-orca-*` keys of a task from Telegram.
    pub fn telegram_extra(&self) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        m.insert(SOURCE.to_owned(), json!("telegram"));
        if let Some(u) = &self.user {
            m.insert(USER.to_owned(), json!(u));
        }
        if let Some(id) = self.user_id {
            m.insert(USER_ID.to_owned(), json!(id));
        }
        if let Some(id) = self.chat_id {
            m.insert(CHAT_ID.to_owned(), json!(id));
        }
        if let Some((task, session)) = &self.follows {
            m.insert(FOLLOWS.to_owned(), json!(task));
            if let Some(s) = session {
                m.insert(RESUME_SESSION.to_owned(), json!(s));
            }
        }
        m
    }
}

fn str_of<'a>(t: &'a Task, key: &str) -> Option<&'a str> {
    t.extra.get(key).and_then(Value::as_str)
}

fn int_of(t: &Task, key: &str) -> Option<i64> {
    t.extra.get(key).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

/// Where a parsed task came from: `cli` and `telegram` are marked in its file.
pub fn source_kind(t: &Task) -> SourceKind {
    match str_of(t, SOURCE) {
        Some("cli") => SourceKind::Cli,
        Some("telegram") => SourceKind::Telegram,
        _ => SourceKind::File,
    }
}

/// The sender's name recorded in the task file.
pub fn source_user(t: &Task) -> Option<String> {
    str_of(t, USER).map(str::to_owned)
}

/// The Telegram chat a task came from.
pub fn chat_id(t: &Task) -> Option<i64> {
    int_of(t, CHAT_ID)
}

/// The task a task continues.
pub fn follows(t: &Task) -> Option<String> {
    str_of(t, FOLLOWS).map(str::to_owned)
}

/// The session a follow-up resumes.
pub fn resume_session(t: &Task) -> Option<String> {
    str_of(t, RESUME_SESSION)
        .filter(|s| crate::scheduler::resume::safe_session_id(s))
        .map(str::to_owned)
}

/// The result's `source` for a record: kind and user from the store, the Telegram details
/// and the link to the task continued from the task file. (`followed_by` is added to a
/// result when a follow-up is asked for, see [`crate::artifacts::link`].)
pub fn task_source(rec: &TaskRecord) -> TaskSource {
    let mut s = TaskSource::new(rec.source, rec.source_user.clone());
    if let Some(t) = &rec.task {
        s.user_id = int_of(t, USER_ID);
        s.chat_id = chat_id(t);
        s.follows = follows(t);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_a_task() {
        let o = Origin {
            user: Some("Ada (@ada)".into()),
            user_id: Some(408258968),
            chat_id: Some(-100123),
            follows: Some(("tg_1".into(), Some("abc-123".into()))),
        };
        let mut t = Task::new("x", "p");
        t.extra = o.telegram_extra();
        assert_eq!(source_kind(&t), SourceKind::Telegram);
        assert_eq!(source_user(&t).as_deref(), Some("Ada (@ada)"));
        assert_eq!(chat_id(&t), Some(-100123));
        assert_eq!(follows(&t).as_deref(), Some("tg_1"));
        assert_eq!(resume_session(&t).as_deref(), Some("abc-123"));
        t.extra.insert(RESUME_SESSION.into(), json!("../x"));
        assert_eq!(resume_session(&t), None);
        t.extra.insert(SOURCE.into(), json!("cli"));
        assert_eq!(source_kind(&t), SourceKind::Cli);
        t.extra.clear();
        assert_eq!(source_kind(&t), SourceKind::File);
    }
}
