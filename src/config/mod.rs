//! Configuration of DESIGN §8: every setting with its default, read from defaults <
//! config/orca.toml < .env < environment < flags, validated, with secrets redacted.
//!
//! OWNER NOTE (skeleton): the `Config` fields are the contract other modules read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A secret value (token, API key). Display and Debug never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The real value, for handing to the service that needs it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    ConfigFile(PathBuf),
    DotEnv(PathBuf),
    Environment,
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::ConfigFile(p) => write!(f, "{}", p.display()),
            Source::DotEnv(p) => write!(f, "{}", p.display()),
            Source::Environment => f.write_str("environment"),
            Source::Flag => f.write_str("command line"),
        }
    }
}

/// Log verbosity (LOG_LEVEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warning,
    Error,
}

/// ORCA_LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LlmMode {
    #[default]
    Auto,
    Off,
    Ollama,
    OpenAi,
}

/// The effective configuration. Paths are absolute.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub max_concurrent_tasks: usize,
    pub claude_timeout_sec: u64,
    pub claude_max_turns: u32,
    pub claude_skip_permissions: bool,
    pub claude_base_cwd: PathBuf,
    pub claude_allowed_root: PathBuf,
    pub claude_bin: String,
    pub claude_model: Option<String>,
    pub log_level: LogLevel,
    pub max_retries: u32,
    pub llm: LlmMode,
    pub llm_timeout_sec: u64,
    pub ollama_host: String,
    pub ollama_model: String,
    pub openai_base_url: Option<String>,
    pub openai_api_key: Option<Secret>,
    pub llm_model: Option<String>,
    pub anthropic_api_key: Option<Secret>,
    pub telegram_bot_token: Option<Secret>,
    pub telegram_allowed_users: Vec<i64>,
    pub telegram_chat_id: Option<i64>,
    pub telegram_api_url: String,
    pub database_url: String,
    pub node_id: String,
    pub node_labels: Vec<String>,
    pub lease_sec: u64,
    /// Grace period for running agents at shutdown (ORCA_SHUTDOWN_GRACE_SEC, default 30).
    pub shutdown_grace_sec: u64,
    /// orchestrator.log rotation: size in bytes and kept files (ORCA_LOG_MAX_BYTES 1 MiB, ORCA_LOG_FILES 3).
    pub log_max_bytes: u64,
    pub log_files: u32,
    /// events.ndjson rotation (ORCA_EVENTS_MAX_BYTES 10 MiB, ORCA_EVENTS_FILES 5).
    pub events_max_bytes: u64,
    pub events_files: u32,
    /// Every setting by name: its effective value (secrets redacted) and its source.
    pub sources: BTreeMap<String, (String, Source)>,
}

/// An invalid setting, or an unreadable configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {name}='{value}' (from {origin}): expected {expected}")]
    Invalid {
        name: String,
        value: String,
        origin: String,
        expected: String,
    },
    #[error("cannot read {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl Config {
    /// Loads the configuration for the workspace at `root`; `flags` are `(NAME, value)`
    /// pairs from the command line and win over every other source.
    pub fn load(root: &Path, flags: &[(String, String)]) -> Result<Config, ConfigError> {
        let _ = (root, flags);
        Err(ConfigError::File {
            path: root.to_path_buf(),
            reason: "not written yet".into(),
        })
    }
}
