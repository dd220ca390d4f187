//! Mediation: rule-based routing and criteria verdicts, and the extractive summary (an LLM
//! may come later; every LLM path falls back to these rules).

pub mod rules;
pub mod summary;

pub use rules::{judge_criteria, route};
pub use summary::{extractive_summary, summarize};
