//! Mediation: routing, summaries and criteria verdicts, by a local LLM (Ollama or an
//! OpenAI-compatible server) when one is configured, always falling back to the rules.

pub mod client;
pub mod gate;
pub mod llm;
pub mod routing;
pub mod rules;
pub mod service;
pub mod summary;
pub mod verdicts;

pub use rules::{judge_criteria, route};
pub use summary::{extractive_summary, summarize};
