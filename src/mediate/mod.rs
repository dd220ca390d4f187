//! Mediation: rule-based routing and extractive summaries (an LLM may come later).
