//! What Claude Code's stream-json said so far: session, model, turns, last tool, result.

use std::collections::HashSet;

use crate::runner::stream::{parse_line, ResultLine, StreamEvent};
use crate::runner::supervise::LineSink;
use crate::runner::Progress;

/// What the stdout stream said so far.
#[derive(Debug, Default)]
pub struct StreamState {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    message_ids: HashSet<String>,
    anonymous_turns: u32,
    last_tool: Option<String>,
    last_tool_target: Option<String>,
    pub last_text: Option<String>,
    cost_usd: Option<f64>,
    pub result: Option<ResultLine>,
    pub garbage_lines: u64,
    pub too_long_lines: u64,
}

impl StreamState {
    pub fn turns(&self) -> u32 {
        u32::try_from(self.message_ids.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.anonymous_turns)
    }

    /// Applies one event; true when progress changed.
    pub fn apply(&mut self, ev: StreamEvent) -> bool {
        match ev {
            StreamEvent::Init {
                session_id,
                model,
                version,
            } => {
                self.session_id = session_id.or(self.session_id.take());
                self.model = model.or(self.model.take());
                self.version = version.or(self.version.take());
                true
            }
            StreamEvent::Assistant {
                message_id,
                model,
                tool_uses,
                text,
                ..
            } => {
                if model.as_deref() == Some("<synthetic>") {
                    return false;
                }
                match message_id {
                    Some(id) => {
                        self.message_ids.insert(id);
                    }
                    None => self.anonymous_turns = self.anonymous_turns.saturating_add(1),
                }
                if self.model.is_none() {
                    self.model = model;
                }
                if let Some(t) = tool_uses.last() {
                    self.last_tool = Some(t.name.clone());
                    self.last_tool_target = t.target.clone();
                }
                if text.is_some() {
                    self.last_text = text;
                }
                true
            }
            StreamEvent::Result(r) => {
                if r.session_id.is_some() {
                    self.session_id = r.session_id.clone();
                }
                self.cost_usd = r.total_cost_usd.or(self.cost_usd);
                self.result = Some(r);
                true
            }
            StreamEvent::Garbage => {
                self.garbage_lines += 1;
                false
            }
            StreamEvent::User(_) | StreamEvent::ApiRetry { .. } | StreamEvent::Other(_) => false,
        }
    }

    fn progress(&self, pid: u32) -> Progress {
        Progress {
            session_id: self.session_id.clone(),
            turns: self.turns(),
            last_tool: self.last_tool.clone(),
            last_tool_target: self.last_tool_target.clone(),
            cost_usd: self.cost_usd,
            model: self.model.clone(),
            pid: Some(pid),
        }
    }
}

impl LineSink for StreamState {
    fn line(&mut self, line: &[u8]) -> bool {
        self.apply(parse_line(line))
    }

    fn skipped_long_line(&mut self) {
        self.too_long_lines += 1;
    }

    fn progress(&self, pid: u32) -> Progress {
        StreamState::progress(self, pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_count_distinct_messages() {
        let mut st = StreamState::default();
        let a = |id: &str, model: &str| StreamEvent::Assistant {
            message_id: Some(id.into()),
            model: Some(model.into()),
            tool_uses: vec![],
            text: Some("t".into()),
            error: None,
        };
        st.apply(a("m1", "x"));
        st.apply(a("m1", "x"));
        st.apply(a("m2", "x"));
        st.apply(a("m3", "<synthetic>"));
        assert_eq!(st.turns(), 2);
    }
}
