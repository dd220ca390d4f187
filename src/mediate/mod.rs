//! Mediation: rule-based routing and criteria verdicts, and extractive summaries (an LLM
//! may come later; every LLM path falls back to these rules).

pub mod rules;

pub use crate::artifacts::summary::extractive_summary;
pub use rules::{judge_criteria, route};
