//! Configuration of DESIGN §8: every setting with its default, read from defaults <
//! config/orca.toml < .env < environment < flags, validated, with secrets redacted.
//!
//! `Config::load` reads the process environment; `Config::load_from` takes the
//! environment as data (tests use it). Every setting's effective value (secrets shown as
//! `<redacted>`) and source end up in `Config::sources`, which `orca doctor` prints.

mod redact;
mod sources;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub use redact::{
    is_secret_name, redact, redact_url_password, redactor_for, set_redactor, Redactor, REDACTED,
};
use sources::{Layers, Raw};

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

/// Where a setting's effective value came from. The file paths are relative to the
/// workspace root (`config/orca.toml`, `.env`).
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

impl LogLevel {
    /// The name as written in LOG_LEVEL: `DEBUG`, `INFO`, `WARNING`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
    /// Parses a LOG_LEVEL value, case-insensitive; `WARN` is accepted for `WARNING`.
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Some(LogLevel::Debug),
            "INFO" => Some(LogLevel::Info),
            "WARNING" | "WARN" => Some(LogLevel::Warning),
            "ERROR" => Some(LogLevel::Error),
            _ => None,
        }
    }
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

impl LlmMode {
    /// The name as written in ORCA_LLM: `auto`, `off`, `ollama`, `openai`.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmMode::Auto => "auto",
            LlmMode::Off => "off",
            LlmMode::Ollama => "ollama",
            LlmMode::OpenAi => "openai",
        }
    }
    /// Parses an ORCA_LLM value, case-insensitive.
    pub fn parse(text: &str) -> Option<LlmMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(LlmMode::Auto),
            "off" => Some(LlmMode::Off),
            "ollama" => Some(LlmMode::Ollama),
            "openai" => Some(LlmMode::OpenAi),
            _ => None,
        }
    }
}

/// Every setting name Orca reads, in the order `orca doctor` shows them.
pub const SETTINGS: &[&str] = &[
    "MAX_CONCURRENT_TASKS",
    "CLAUDE_TIMEOUT_SEC",
    "CLAUDE_MAX_TURNS",
    "CLAUDE_SKIP_PERMISSIONS",
    "CLAUDE_BASE_CWD",
    "CLAUDE_ALLOWED_ROOT",
    "CLAUDE_BIN",
    "CLAUDE_MODEL",
    "ANTHROPIC_API_KEY",
    "LOG_LEVEL",
    "ORCA_MAX_RETRIES",
    "ORCA_LLM",
    "ORCA_LLM_TIMEOUT_SEC",
    "ORCA_LLM_CONCURRENCY",
    "OLLAMA_HOST",
    "OLLAMA_MODEL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ORCA_LLM_MODEL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_ALLOWED_USERS",
    "TELEGRAM_CHAT_ID",
    "TELEGRAM_API_URL",
    "ORCA_DATABASE_URL",
    "ORCA_NODE_ID",
    "ORCA_NODE_LABELS",
    "ORCA_LEASE_SEC",
    "ORCA_PG_POLL_ONLY",
    "ORCA_SHUTDOWN_GRACE_SEC",
    "ORCA_RETRY_BASE_MS",
    "ORCA_LOG_MAX_BYTES",
    "ORCA_LOG_FILES",
    "ORCA_EVENTS_MAX_BYTES",
    "ORCA_EVENTS_FILES",
    "ORCA_STRICT_CRITERIA",
];

/// True for the settings a running daemon applies on reload (DESIGN §8):
/// `CLAUDE_*`, `MAX_CONCURRENT_TASKS`, `LOG_LEVEL`, and the Telegram bot's
/// `TELEGRAM_ALLOWED_USERS` and `TELEGRAM_CHAT_ID` (its token and API URL need a restart).
pub fn is_reloadable(name: &str) -> bool {
    name.starts_with("CLAUDE_")
        || matches!(
            name,
            "MAX_CONCURRENT_TASKS" | "LOG_LEVEL" | "TELEGRAM_ALLOWED_USERS" | "TELEGRAM_CHAT_ID"
        )
}

/// The effective configuration. Paths are absolute.
#[derive(Clone)]
pub struct Config {
    pub root: PathBuf,
    pub max_concurrent_tasks: usize,
    pub claude_timeout_sec: u64,
    pub claude_max_turns: u32,
    pub claude_skip_permissions: bool,
    pub claude_base_cwd: PathBuf,
    pub claude_allowed_root: PathBuf,
    /// A bare program name (searched on PATH) or an absolute path (a relative path
    /// with a `/` is resolved against the workspace root).
    pub claude_bin: String,
    pub claude_model: Option<String>,
    pub log_level: LogLevel,
    pub max_retries: u32,
    pub llm: LlmMode,
    pub llm_timeout_sec: u64,
    /// At most this many LLM calls at once (ORCA_LLM_CONCURRENCY, default 1).
    pub llm_concurrency: usize,
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
    /// May hold a password (`postgres://user:pass@...`): show it through
    /// [`redact_url_password`], never as is.
    pub database_url: String,
    pub node_id: String,
    pub node_labels: Vec<String>,
    pub lease_sec: u64,
    /// PostgreSQL store: no LISTEN, changes are polled (ORCA_PG_POLL_ONLY, default false),
    /// for connection poolers that do not pass LISTEN/NOTIFY.
    pub pg_poll_only: bool,
    /// Grace period for running agents at shutdown (ORCA_SHUTDOWN_GRACE_SEC, default 30).
    pub shutdown_grace_sec: u64,
    /// First retry delay in ms, doubled per retry up to 60 s (ORCA_RETRY_BASE_MS, default 1000).
    pub retry_base_ms: u64,
    /// orchestrator.log rotation: size in bytes and kept files (ORCA_LOG_MAX_BYTES 1 MiB, ORCA_LOG_FILES 3).
    pub log_max_bytes: u64,
    pub log_files: u32,
    /// events.ndjson rotation (ORCA_EVENTS_MAX_BYTES 10 MiB, ORCA_EVENTS_FILES 5).
    pub events_max_bytes: u64,
    pub events_files: u32,
    /// An unmet check fails a task that sets no `strict:` (ORCA_STRICT_CRITERIA, default false).
    pub strict_criteria: bool,
    /// Every setting by name: its effective value (secrets redacted) and its source.
    pub sources: BTreeMap<String, (String, Source)>,
    /// Every setting by name: where its value came from, with the line when known
    /// (`.env:3`, `config/orca.toml:2`, `environment`, `command line`, `default`).
    pub origins: BTreeMap<String, String>,
    /// Names defined in `.env` that Orca does not read (kept for `orca doctor`).
    pub unknown_dotenv: Vec<String>,
    /// Those `.env` variables with their values: handed to the agent's environment (as a
    /// shell that sourced `.env` would), unless the process environment sets them.
    pub dotenv_passthrough: Vec<(String, Secret)>,
}

impl std::fmt::Debug for Config {
    /// Every field, with secrets and URL passwords redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("max_concurrent_tasks", &self.max_concurrent_tasks)
            .field("claude_timeout_sec", &self.claude_timeout_sec)
            .field("claude_max_turns", &self.claude_max_turns)
            .field("claude_skip_permissions", &self.claude_skip_permissions)
            .field("claude_base_cwd", &self.claude_base_cwd)
            .field("claude_allowed_root", &self.claude_allowed_root)
            .field("claude_bin", &self.claude_bin)
            .field("claude_model", &self.claude_model)
            .field("log_level", &self.log_level)
            .field("max_retries", &self.max_retries)
            .field("llm", &self.llm)
            .field("llm_timeout_sec", &self.llm_timeout_sec)
            .field("llm_concurrency", &self.llm_concurrency)
            .field("ollama_host", &redact_url_password(&self.ollama_host))
            .field("ollama_model", &self.ollama_model)
            .field(
                "openai_base_url",
                &self.openai_base_url.as_deref().map(redact_url_password),
            )
            .field("openai_api_key", &self.openai_api_key)
            .field("llm_model", &self.llm_model)
            .field("anthropic_api_key", &self.anthropic_api_key)
            .field("telegram_bot_token", &self.telegram_bot_token)
            .field("telegram_allowed_users", &self.telegram_allowed_users)
            .field("telegram_chat_id", &self.telegram_chat_id)
            .field(
                "telegram_api_url",
                &redact_url_password(&self.telegram_api_url),
            )
            .field("database_url", &redact_url_password(&self.database_url))
            .field("node_id", &self.node_id)
            .field("node_labels", &self.node_labels)
            .field("lease_sec", &self.lease_sec)
            .field("pg_poll_only", &self.pg_poll_only)
            .field("shutdown_grace_sec", &self.shutdown_grace_sec)
            .field("retry_base_ms", &self.retry_base_ms)
            .field("log_max_bytes", &self.log_max_bytes)
            .field("log_files", &self.log_files)
            .field("events_max_bytes", &self.events_max_bytes)
            .field("events_files", &self.events_files)
            .field("strict_criteria", &self.strict_criteria)
            .field("sources", &self.sources)
            .field("origins", &self.origins)
            .field("unknown_dotenv", &self.unknown_dotenv)
            .finish()
    }
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
    /// A name that is not a setting (in config/orca.toml or on the command line).
    #[error("unknown setting '{name}' (in {origin}){}", suggestion_text(.suggestion))]
    Unknown {
        name: String,
        origin: String,
        suggestion: Option<String>,
    },
    /// A configuration file that does not parse.
    #[error("{origin}: {reason}")]
    Syntax { origin: String, reason: String },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => "; known settings are listed by `orca doctor` and in DESIGN §8".to_string(),
    }
}

impl ConfigError {
    /// The process exit code for a configuration error: always 2 (DESIGN §7).
    pub fn exit_code(&self) -> i32 {
        2
    }
}

impl Config {
    /// The lease of a claimed task (ORCA_LEASE_SEC) in milliseconds, as the store takes it.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease_sec.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Loads the configuration for the workspace at `root`; `flags` are `(NAME, value)`
    /// pairs from the command line and win over every other source.
    pub fn load(root: &Path, flags: &[(String, String)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Config::load_from(root, &env, flags)
    }

    /// Like [`Config::load`], with the process environment given as data.
    pub fn load_from(
        root: &Path,
        env: &[(String, String)],
        flags: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let root = absolute(root)?;
        let mut layers = Layers::new();
        sources::read_toml(&root, &mut layers)?;
        let dotenv_pairs = sources::read_dotenv(&root, &mut layers)?;
        let unknown_dotenv: Vec<String> = dotenv_pairs.iter().map(|(k, _)| k.clone()).collect();
        sources::read_env(env, &mut layers);
        sources::read_flags(flags, &mut layers)?;
        let home = env
            .iter()
            .find(|(k, _)| k == "HOME")
            .map(|(_, v)| PathBuf::from(v));
        let mut config = build(&root, &layers, home.as_deref())?;
        config.unknown_dotenv = unknown_dotenv;
        config.dotenv_passthrough = dotenv_pairs
            .into_iter()
            .filter(|(k, _)| !env.iter().any(|(ek, _)| ek == k))
            .map(|(k, v)| (k, Secret::new(v)))
            .collect();
        Ok(config)
    }

    /// The defaults alone for the workspace at `root`: no file, environment or flag read.
    pub fn defaults(root: &Path) -> Result<Config, ConfigError> {
        let root = absolute(root)?;
        build(&root, &Layers::new(), None)
    }

    /// The reloadable settings (see [`is_reloadable`]) whose
    /// value differs in `new`, by name, in [`SETTINGS`] order.
    pub fn reloadable_changes(&self, new: &Config) -> Vec<String> {
        self.changed(new)
            .into_iter()
            .filter(|name| is_reloadable(name))
            .collect()
    }

    /// The settings that differ in `new` but only take effect after a restart.
    pub fn restart_required_changes(&self, new: &Config) -> Vec<String> {
        self.changed(new)
            .into_iter()
            .filter(|name| !is_reloadable(name))
            .collect()
    }

    /// Takes the reloadable settings (and their sources) from `new`; the others stay.
    pub fn apply_reloadable(&mut self, new: &Config) {
        self.max_concurrent_tasks = new.max_concurrent_tasks;
        self.claude_timeout_sec = new.claude_timeout_sec;
        self.claude_max_turns = new.claude_max_turns;
        self.claude_skip_permissions = new.claude_skip_permissions;
        self.claude_base_cwd = new.claude_base_cwd.clone();
        self.claude_allowed_root = new.claude_allowed_root.clone();
        self.claude_bin = new.claude_bin.clone();
        self.claude_model = new.claude_model.clone();
        self.log_level = new.log_level;
        self.telegram_allowed_users = new.telegram_allowed_users.clone();
        self.telegram_chat_id = new.telegram_chat_id;
        for name in SETTINGS.iter().filter(|n| is_reloadable(n)) {
            if let Some(entry) = new.sources.get(*name) {
                self.sources.insert(name.to_string(), entry.clone());
            }
            if let Some(origin) = new.origins.get(*name) {
                self.origins.insert(name.to_string(), origin.clone());
            }
        }
    }

    /// The value of a secret setting (its `sources` entry is redacted, so it cannot tell a
    /// change).
    fn secret_named(&self, name: &str) -> Option<Option<&str>> {
        let s = match name {
            "OPENAI_API_KEY" => &self.openai_api_key,
            "ANTHROPIC_API_KEY" => &self.anthropic_api_key,
            "TELEGRAM_BOT_TOKEN" => &self.telegram_bot_token,
            _ => return None,
        };
        Some(s.as_ref().map(Secret::expose))
    }

    fn changed(&self, new: &Config) -> Vec<String> {
        SETTINGS
            .iter()
            .filter(|name| {
                if let (Some(a), Some(b)) = (self.secret_named(name), new.secret_named(name)) {
                    return a != b;
                }
                self.sources.get(**name).map(|(v, _)| v) != new.sources.get(**name).map(|(v, _)| v)
            })
            .map(|name| name.to_string())
            .collect()
    }
}

fn absolute(root: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(root)
        .map(|p| normalize(&p))
        .map_err(|e| ConfigError::File {
            path: root.to_path_buf(),
            reason: format!("cannot make the workspace root absolute: {e}"),
        })
}

/// Removes `.` and resolves `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Expands a leading `~` with `home` and resolves a relative path against `root`.
fn resolve_path(root: &Path, text: &str, home: Option<&Path>) -> PathBuf {
    let expanded = match (text.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(text),
    };
    normalize(&root.join(expanded))
}

/// The machine's host name, for the default ORCA_NODE_ID.
pub fn hostname() -> String {
    if let Ok(name) = nix::unistd::gethostname() {
        let name = name.to_string_lossy().trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    "localhost".to_string()
}

/// Reads each setting from the winning layer, validates it and records its source.
struct Builder<'a> {
    layers: &'a Layers,
    sources: BTreeMap<String, (String, Source)>,
    origins: BTreeMap<String, String>,
}

impl<'a> Builder<'a> {
    /// The winning raw value when it is set and not blank.
    fn get(&self, name: &str) -> Option<(&'a str, &'a Raw)> {
        let raw = self.layers.get(name)?;
        let text = raw.value.trim();
        (!text.is_empty()).then_some((text, raw))
    }

    fn record(&mut self, name: &str, shown: String) {
        let (source, origin) = match self.layers.get(name) {
            Some(raw) => (raw.source.clone(), raw.origin.clone()),
            None => (Source::Default, "default".to_string()),
        };
        self.sources
            .insert(name.to_string(), (redact(name, &shown), source));
        self.origins.insert(name.to_string(), origin);
    }

    fn invalid(&self, name: &str, raw: &Raw, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            name: name.to_string(),
            value: redact(name, &raw.value),
            origin: raw.origin.clone(),
            expected: expected.into(),
        }
    }

    fn int(&mut self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value = match self.get(name) {
            Some((text, raw)) => match text.parse::<u64>() {
                Ok(v) if (min..=max).contains(&v) => v,
                _ => {
                    return Err(self.invalid(
                        name,
                        raw,
                        format!("a whole number from {min} to {max}"),
                    ))
                }
            },
            None => default,
        };
        self.record(name, value.to_string());
        Ok(value)
    }

    fn int32(&mut self, name: &str, default: u32, min: u32, max: u32) -> Result<u32, ConfigError> {
        let v = self.int(name, default.into(), min.into(), max.into())?;
        // In range by construction; the fallback is never taken.
        Ok(u32::try_from(v).unwrap_or(max))
    }

    fn boolean(&mut self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let value = match self.get(name) {
            Some((text, raw)) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(self.invalid(name, raw, "true or false (or 1/0, yes/no)")),
            },
            None => default,
        };
        self.record(name, value.to_string());
        Ok(value)
    }

    fn string(&mut self, name: &str, default: &str) -> String {
        let value = self
            .get(name)
            .map(|(text, _)| text.to_string())
            .unwrap_or_else(|| default.to_string());
        self.record(name, value.clone());
        value
    }

    fn optional(&mut self, name: &str) -> Option<String> {
        let value = self.get(name).map(|(text, _)| text.to_string());
        self.record(name, value.clone().unwrap_or_default());
        value
    }

    fn secret(&mut self, name: &str) -> Option<Secret> {
        self.optional(name).map(Secret::new)
    }

    fn url(&mut self, name: &str, default: Option<&str>) -> Result<Option<String>, ConfigError> {
        let value = match self.get(name) {
            Some((text, raw)) => {
                let lower = text.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("http://")
                    .or_else(|| lower.strip_prefix("https://"));
                match rest {
                    Some(rest) if !rest.is_empty() && !text.contains(char::is_whitespace) => {
                        Some(text.trim_end_matches('/').to_string())
                    }
                    _ => {
                        return Err(self.invalid(
                            name,
                            raw,
                            "a URL starting with http:// or https://",
                        ))
                    }
                }
            }
            None => default.map(str::to_string),
        };
        self.record(name, value.clone().unwrap_or_default());
        Ok(value)
    }

    fn choice<T>(
        &mut self,
        name: &str,
        default: T,
        parse: fn(&str) -> Option<T>,
        show: fn(&T) -> &'static str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let value = match self.get(name) {
            Some((text, raw)) => match parse(text) {
                Some(v) => v,
                None => return Err(self.invalid(name, raw, expected)),
            },
            None => default,
        };
        self.record(name, show(&value).to_string());
        Ok(value)
    }
}

fn build(root: &Path, layers: &Layers, home: Option<&Path>) -> Result<Config, ConfigError> {
    let mut b = Builder {
        layers,
        sources: BTreeMap::new(),
        origins: BTreeMap::new(),
    };

    let max_concurrent_tasks = b.int("MAX_CONCURRENT_TASKS", 3, 1, 256)?;
    let claude_timeout_sec = b.int("CLAUDE_TIMEOUT_SEC", 300, 1, 7 * 24 * 3600)?;
    let claude_max_turns = b.int32("CLAUDE_MAX_TURNS", 0, 0, 10_000)?;
    let claude_skip_permissions = b.boolean("CLAUDE_SKIP_PERMISSIONS", false)?;

    let claude_base_cwd = match b.get("CLAUDE_BASE_CWD") {
        Some((text, _)) => resolve_path(root, text, home),
        None => root.to_path_buf(),
    };
    let claude_allowed_root = match b.get("CLAUDE_ALLOWED_ROOT") {
        Some((text, _)) => resolve_path(root, text, home),
        None => claude_base_cwd.clone(),
    };
    if !claude_base_cwd.starts_with(&claude_allowed_root) {
        let (value, origin) = match b.get("CLAUDE_BASE_CWD") {
            Some((_, raw)) => (raw.value.clone(), raw.origin.clone()),
            None => (
                claude_base_cwd.display().to_string(),
                "default: the workspace root".to_string(),
            ),
        };
        return Err(ConfigError::Invalid {
            name: "CLAUDE_BASE_CWD".into(),
            value,
            origin,
            expected: format!(
                "a folder inside CLAUDE_ALLOWED_ROOT ({}); move one of them or set both",
                claude_allowed_root.display()
            ),
        });
    }
    b.record("CLAUDE_BASE_CWD", claude_base_cwd.display().to_string());
    b.record(
        "CLAUDE_ALLOWED_ROOT",
        claude_allowed_root.display().to_string(),
    );

    let claude_bin = match b.get("CLAUDE_BIN") {
        Some((text, _)) if text.contains('/') || text.starts_with('~') => {
            resolve_path(root, text, home).display().to_string()
        }
        Some((text, _)) => text.to_string(),
        None => "claude".to_string(),
    };
    b.record("CLAUDE_BIN", claude_bin.clone());
    let claude_model = b.optional("CLAUDE_MODEL");
    let anthropic_api_key = b.secret("ANTHROPIC_API_KEY");

    let log_level = b.choice(
        "LOG_LEVEL",
        LogLevel::Info,
        LogLevel::parse,
        |l| l.as_str(),
        "one of DEBUG, INFO, WARNING, ERROR",
    )?;
    let max_retries = b.int32("ORCA_MAX_RETRIES", 2, 0, 100)?;
    let llm = b.choice(
        "ORCA_LLM",
        LlmMode::Auto,
        LlmMode::parse,
        |m| m.as_str(),
        "one of auto, off, ollama, openai",
    )?;
    let llm_timeout_sec = b.int("ORCA_LLM_TIMEOUT_SEC", 20, 1, 3600)?;
    let llm_concurrency = b.int("ORCA_LLM_CONCURRENCY", 1, 1, 64)?;
    let ollama_host = b
        .url("OLLAMA_HOST", Some("http://127.0.0.1:11434"))?
        .unwrap_or_default();
    let ollama_model = b.string("OLLAMA_MODEL", "llama3.1:8b");
    let openai_base_url = b.url("OPENAI_BASE_URL", None)?;
    let openai_api_key = b.secret("OPENAI_API_KEY");
    let llm_model = b.optional("ORCA_LLM_MODEL");
    if llm == LlmMode::OpenAi && openai_base_url.is_none() {
        let raw = layers.get("ORCA_LLM").cloned().unwrap_or(Raw {
            value: "openai".into(),
            source: Source::Default,
            origin: "default".into(),
        });
        return Err(ConfigError::Invalid {
            name: "ORCA_LLM".into(),
            value: raw.value,
            origin: raw.origin,
            expected: "OPENAI_BASE_URL to be set too (the OpenAI-compatible server), or ORCA_LLM=auto|off|ollama".into(),
        });
    }

    let telegram_bot_token = b.secret("TELEGRAM_BOT_TOKEN");
    let telegram_allowed_users = match b.get("TELEGRAM_ALLOWED_USERS") {
        Some((text, raw)) => {
            let parsed: Result<Vec<i64>, _> = text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::parse::<i64>)
                .collect();
            match parsed {
                Ok(users) => users,
                Err(_) => {
                    return Err(b.invalid(
                        "TELEGRAM_ALLOWED_USERS",
                        raw,
                        "comma-separated Telegram user ids (whole numbers), e.g. 12345,67890",
                    ))
                }
            }
        }
        None => Vec::new(),
    };
    b.record(
        "TELEGRAM_ALLOWED_USERS",
        telegram_allowed_users
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    let telegram_chat_id = match b.get("TELEGRAM_CHAT_ID") {
        Some((text, raw)) => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return Err(b.invalid(
                    "TELEGRAM_CHAT_ID",
                    raw,
                    "a Telegram chat id (a whole number, negative for groups)",
                ))
            }
        },
        None => None,
    };
    b.record(
        "TELEGRAM_CHAT_ID",
        telegram_chat_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    );
    let telegram_api_url = b
        .url("TELEGRAM_API_URL", Some("https://api.telegram.org"))?
        .unwrap_or_default();

    let database_url = match b.get("ORCA_DATABASE_URL") {
        Some((text, raw)) => {
            let lower = text.to_ascii_lowercase();
            let ok = (lower.starts_with("sqlite:") && text.len() > "sqlite:".len())
                || (lower.starts_with("postgres://") && text.len() > "postgres://".len())
                || (lower.starts_with("postgresql://") && text.len() > "postgresql://".len());
            if !ok {
                return Err(ConfigError::Invalid {
                    name: "ORCA_DATABASE_URL".into(),
                    value: redact_url_password(&raw.value),
                    origin: raw.origin.clone(),
                    expected: "a URL starting with sqlite: (e.g. sqlite:.orca/orca.db), postgres:// or postgresql://".into(),
                });
            }
            text.to_string()
        }
        None => "sqlite:.orca/orca.db".to_string(),
    };
    b.record("ORCA_DATABASE_URL", redact_url_password(&database_url));

    let node_id = match b.get("ORCA_NODE_ID") {
        Some((text, raw)) => {
            if text.len() > 128 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(b.invalid(
                    "ORCA_NODE_ID",
                    raw,
                    "a name of at most 128 characters without spaces",
                ));
            }
            text.to_string()
        }
        None => format!("{}-{}", hostname(), std::process::id()),
    };
    b.record("ORCA_NODE_ID", node_id.clone());
    let node_labels = match b.get("ORCA_NODE_LABELS") {
        Some((text, raw)) => {
            let labels: Vec<String> = text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let valid = labels.iter().all(|l| {
                l.len() <= 64
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            });
            if !valid {
                return Err(b.invalid(
                    "ORCA_NODE_LABELS",
                    raw,
                    "comma-separated labels of letters, digits, '_', '.', '-' (e.g. repo-a,gpu)",
                ));
            }
            labels
        }
        None => Vec::new(),
    };
    b.record("ORCA_NODE_LABELS", node_labels.join(","));
    let lease_sec = b.int("ORCA_LEASE_SEC", 30, 1, 3600)?;
    let pg_poll_only = b.boolean("ORCA_PG_POLL_ONLY", false)?;
    let shutdown_grace_sec = b.int("ORCA_SHUTDOWN_GRACE_SEC", 30, 0, 3600)?;
    let retry_base_ms = b.int("ORCA_RETRY_BASE_MS", 1000, 1, 600_000)?;
    let log_max_bytes = b.int("ORCA_LOG_MAX_BYTES", 1_048_576, 1024, 1 << 40)?;
    let log_files = b.int32("ORCA_LOG_FILES", 3, 1, 1000)?;
    let events_max_bytes = b.int("ORCA_EVENTS_MAX_BYTES", 10_485_760, 1024, 1 << 40)?;
    let events_files = b.int32("ORCA_EVENTS_FILES", 5, 1, 1000)?;
    let strict_criteria = b.boolean("ORCA_STRICT_CRITERIA", false)?;

    Ok(Config {
        root: root.to_path_buf(),
        // At most 256 by validation.
        max_concurrent_tasks: usize::try_from(max_concurrent_tasks).unwrap_or(256),
        claude_timeout_sec,
        claude_max_turns,
        claude_skip_permissions,
        claude_base_cwd,
        claude_allowed_root,
        claude_bin,
        claude_model,
        log_level,
        max_retries,
        llm,
        llm_timeout_sec,
        // At most 64 by validation.
        llm_concurrency: usize::try_from(llm_concurrency).unwrap_or(64),
        ollama_host,
        ollama_model,
        openai_base_url,
        openai_api_key,
        llm_model,
        anthropic_api_key,
        telegram_bot_token,
        telegram_allowed_users,
        telegram_chat_id,
        telegram_api_url,
        database_url,
        node_id,
        node_labels,
        lease_sec,
        pg_poll_only,
        shutdown_grace_sec,
        retry_base_ms,
        log_max_bytes,
        log_files,
        events_max_bytes,
        events_files,
        strict_criteria,
        sources: b.sources,
        origins: b.origins,
        unknown_dotenv: Vec::new(),
        dotenv_passthrough: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
