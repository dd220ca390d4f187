//! `orca doctor`: the effective configuration with sources (secrets redacted), workspace
//! folders, the agent binary, Ollama and Telegram, each problem with its fix.
//!
//! `run` reads the process environment; `run_with` takes it as data, so tests can drive
//! every check (HOME, PATH, CLAUDE_BIN, OLLAMA_HOST) without touching the real one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::config::{Config, SETTINGS};
use crate::workspace::Workspace;

/// How long `CLAUDE_BIN --version` may take.
const AGENT_VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The fix printed when the agent binary is missing.
pub const AGENT_FIX: &str =
    "install it with `npm install -g @anthropic-ai/claude-code`, or set CLAUDE_BIN to its path";

/// Runs the checks for the workspace at `root` and prints the report to `out`.
/// Returns the exit code: 0 usable, 1 something required missing, 2 invalid configuration.
pub fn run(root: &Path, flags: &[(String, String)], out: &mut dyn Write) -> i32 {
    run_with(root, flags, &process_env(), out)
}

/// Like [`run`], with the process environment given as data. The environment is also
/// the one `CLAUDE_BIN --version` runs with, and gives PATH and HOME.
pub fn run_with(
    root: &Path,
    flags: &[(String, String)],
    env: &[(String, String)],
    out: &mut dyn Write,
) -> i32 {
    let mut report = Report::default();
    let code = check_all(root, flags, env, &mut report);
    // A closed output (e.g. `orca doctor | head`) must not change the verdict.
    let _ = out.write_all(report.text.as_bytes());
    let _ = out.flush();
    code
}

/// The report being written, with its counts of problems and warnings.
#[derive(Default)]
struct Report {
    text: String,
    problems: usize,
    warnings: usize,
}

impl Report {
    fn line(&mut self, text: impl AsRef<str>) {
        self.text.push_str(text.as_ref());
        self.text.push('\n');
    }
    fn heading(&mut self, title: &str) {
        self.line("");
        self.line(title);
    }
    fn row(&mut self, tag: &str, text: impl AsRef<str>) {
        self.line(format!("  {tag:<5} {}", text.as_ref()));
    }
    fn ok(&mut self, text: impl AsRef<str>) {
        self.row("ok", text);
    }
    fn off(&mut self, text: impl AsRef<str>) {
        self.row("off", text);
    }
    fn warn(&mut self, text: impl AsRef<str>, fix: &str) {
        self.warnings += 1;
        self.row("warn", text);
        self.fix(fix);
    }
    fn fail(&mut self, text: impl AsRef<str>, fix: &str) {
        self.problems += 1;
        self.row("FAIL", text);
        self.fix(fix);
    }
    fn fix(&mut self, fix: &str) {
        self.line(format!("        fix: {fix}"));
    }
}

fn env_get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn check_all(
    root: &Path,
    flags: &[(String, String)],
    env: &[(String, String)],
    report: &mut Report,
) -> i32 {
    let shown_root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    report.line(format!("orca doctor (Orca {})", crate::VERSION));
    report.line(format!("workspace: {}", shown_root.display()));

    let config = match Config::load_from(root, env, flags) {
        Ok(config) => config,
        Err(e) => {
            report.heading("Configuration");
            report.fail(
                format!("{e}"),
                "correct the value where it is set (see above) and run `orca doctor` again",
            );
            report.line("");
            report.line("Result: the configuration is invalid; Orca will not start (exit 2).");
            return e.exit_code();
        }
    };

    configuration(&config, report);
    folders(&config, report);
    agent(&config, env, report);
    authentication(&config, env, report);
    database(&config, report);
    llm(&config, report);
    telegram(&config, report);

    report.line("");
    if report.problems == 0 {
        let warnings = match report.warnings {
            0 => String::new(),
            1 => " (1 warning)".to_string(),
            n => format!(" ({n} warnings)"),
        };
        report.line(format!("Result: ready{warnings}."));
        0
    } else {
        let problems = match report.problems {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        };
        report.line(format!(
            "Result: not ready: {problems} to fix (marked FAIL above)."
        ));
        1
    }
}

fn configuration(config: &Config, report: &mut Report) {
    report.heading("Configuration (secrets redacted)");
    let rows: Vec<(&str, String, String)> = SETTINGS
        .iter()
        .map(|name| {
            let value = config
                .sources
                .get(*name)
                .map(|(v, _)| v.clone())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "(not set)".to_string());
            let origin = config
                .origins
                .get(*name)
                .cloned()
                .unwrap_or_else(|| "default".to_string());
            (*name, value, origin)
        })
        .collect();
    let name_width = rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    let value_width = rows
        .iter()
        .map(|(_, v, _)| v.chars().count())
        .filter(|w| *w <= 40)
        .max()
        .unwrap_or(0);
    for (name, value, origin) in rows {
        report.line(format!(
            "  {name:<name_width$}  {value:<value_width$}  {origin}"
        ));
    }
    if !config.unknown_dotenv.is_empty() {
        report.line(format!(
            "  .env also sets (not used by Orca): {}",
            config.unknown_dotenv.join(", ")
        ));
    }
}

fn writable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// The state of one folder: `Ok(text)` when usable, `Err((text, fix))` otherwise.
fn folder_state(dir: &Path) -> Result<String, (String, String)> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if writable(dir) {
                Ok("present".into())
            } else {
                Err((
                    "present but not writable".into(),
                    format!("give this user write access to {}", dir.display()),
                ))
            }
        }
        Ok(_) => Err((
            "exists but is not a folder".into(),
            format!("move the file {} away", dir.display()),
        )),
        Err(_) => {
            let mut ancestor = dir.parent();
            while let Some(a) = ancestor {
                if a.exists() {
                    break;
                }
                ancestor = a.parent();
            }
            match ancestor {
                Some(a) if a.is_dir() && writable(a) => Ok("missing (will be created)".into()),
                Some(a) if a.is_dir() => Err((
                    format!(
                        "missing and cannot be created: {} is not writable",
                        a.display()
                    ),
                    format!(
                        "give this user write access to {}, or use another --root",
                        a.display()
                    ),
                )),
                Some(a) => Err((
                    format!(
                        "missing and cannot be created: {} is not a folder",
                        a.display()
                    ),
                    format!("move the file {} away", a.display()),
                )),
                None => Err((
                    "missing and cannot be created".into(),
                    "use another --root".into(),
                )),
            }
        }
    }
}

fn folders(config: &Config, report: &mut Report) {
    report.heading("Workspace folders");
    if !crate::ops::is_workspace(&config.root) {
        report.row(
            "note",
            format!(
                "{} is not an Orca workspace yet (no tasks/ or .orca/); doctor created nothing, `orca run` creates the folders",
                config.root.display()
            ),
        );
    }
    let workspace = Workspace::new(config.root.clone());
    let rows: Vec<(String, PathBuf)> = workspace
        .folders()
        .into_iter()
        .map(|dir| {
            let rel = dir
                .strip_prefix(&config.root)
                .map(|r| format!("{}/", r.display()))
                .unwrap_or_else(|_| dir.display().to_string());
            (rel, dir)
        })
        .collect();
    let width = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    for (rel, dir) in rows {
        match folder_state(&dir) {
            Ok(state) => report.ok(format!("{rel:<width$}  {state}")),
            Err((state, fix)) => report.fail(format!("{rel:<width$}  {state}"), &fix),
        }
    }
    if config.claude_base_cwd != config.root {
        let dir = &config.claude_base_cwd;
        if dir.is_dir() {
            report.ok(format!("CLAUDE_BASE_CWD {} present", dir.display()));
        } else {
            report.fail(
                format!("CLAUDE_BASE_CWD {} is not a folder", dir.display()),
                "create it, or set CLAUDE_BASE_CWD to the folder agents should start in",
            );
        }
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Where `bin` is: itself when it is a path, else the first match on `path_var`.
fn find_binary(bin: &str, path_var: Option<&str>) -> Option<PathBuf> {
    if bin.contains('/') {
        let path = PathBuf::from(bin);
        return is_executable_file(&path).then_some(path);
    }
    path_var?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(bin))
        .find(|candidate| is_executable_file(candidate))
}

/// Runs `bin --version` with `env`, killed (with its process group) after `timeout`.
fn agent_version(
    bin: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<String, String> {
    let child = Command::new(bin)
        .arg("--version")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("cannot read its output: {e}")),
        Err(_) => {
            crate::runner::process::kill_group(pid);
            return Err(format!(
                "`--version` did not answer within {} s",
                timeout.as_secs()
            ));
        }
    };
    let first_line = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(120).collect::<String>())
    };
    if output.status.success() {
        Ok(first_line(&output.stdout)
            .or_else(|| first_line(&output.stderr))
            .unwrap_or_else(|| "(no version printed)".into()))
    } else {
        let why = first_line(&output.stderr)
            .or_else(|| first_line(&output.stdout))
            .unwrap_or_default();
        Err(format!("`--version` failed ({}) {why}", output.status)
            .trim_end()
            .to_string())
    }
}

fn agent(config: &Config, env: &[(String, String)], report: &mut Report) {
    report.heading("Agent (Claude Code)");
    let bin = &config.claude_bin;
    match find_binary(bin, env_get(env, "PATH")) {
        None => {
            let place = if bin.contains('/') {
                format!("{bin} does not exist or is not executable")
            } else {
                format!("`{bin}` not found on PATH")
            };
            report.fail(format!("CLAUDE_BIN: {place}"), AGENT_FIX);
        }
        Some(path) => match agent_version(&path, env, AGENT_VERSION_TIMEOUT) {
            Ok(version) => report.ok(format!("CLAUDE_BIN: {} ({version})", path.display())),
            Err(why) => report.fail(
                format!("CLAUDE_BIN: {}: {why}", path.display()),
                &format!("check that {} is Claude Code; {AGENT_FIX}", path.display()),
            ),
        },
    }
}

/// Where an existing Claude Code login is stored, if there is one.
fn find_login(env: &[(String, String)]) -> Option<String> {
    let mut dirs: Vec<(PathBuf, String)> = Vec::new();
    if let Some(dir) = env_get(env, "CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        dirs.push((PathBuf::from(dir), "$CLAUDE_CONFIG_DIR".into()));
    }
    let home = env_get(env, "HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    if let Some(home) = &home {
        dirs.push((home.join(".claude"), "~/.claude".into()));
    }
    for (dir, shown) in dirs {
        if dir.join(".credentials.json").is_file() {
            return Some(format!("{shown}/.credentials.json"));
        }
    }
    let home = home?;
    let text = std::fs::read_to_string(home.join(".claude.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("oauthAccount")
        .filter(|v| !v.is_null())
        .map(|_| "~/.claude.json (oauthAccount)".to_string())
}

fn authentication(config: &Config, env: &[(String, String)], report: &mut Report) {
    report.heading("Authentication");
    if config.anthropic_api_key.is_some() {
        let origin = config
            .origins
            .get("ANTHROPIC_API_KEY")
            .cloned()
            .unwrap_or_default();
        report.ok(format!(
            "ANTHROPIC_API_KEY is set (<redacted>, from {origin})"
        ));
    } else if let Some(place) = find_login(env) {
        report.ok(format!("Claude Code login found in {place}"));
    } else {
        report.warn(
            "no ANTHROPIC_API_KEY and no Claude Code login found; the agent may refuse to run",
            "run `claude` once and log in, or set ANTHROPIC_API_KEY (in .env or the environment)",
        );
    }
}

/// A fleet's shared queue: the PostgreSQL server reached (version, schema), or why not.
/// The embedded SQLite store needs no check of its own (its folder is checked above).
fn database(config: &Config, report: &mut Report) {
    let lower = config.database_url.trim().to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return;
    }
    report.heading("Shared queue (ORCA_DATABASE_URL)");
    match crate::store::postgres::probe(&config.database_url) {
        Ok(text) => report.ok(text),
        Err(e) => report.fail(
            e.to_string(),
            "start the server or correct ORCA_DATABASE_URL; every node of the fleet uses this URL",
        ),
    }
}

fn llm(config: &Config, report: &mut Report) {
    report.heading("LLM mediation (optional)");
    for line in super::llm::doctor_lines(config) {
        match line {
            super::llm::Line::Ok(t) => report.ok(t),
            super::llm::Line::Off(t) => report.off(t),
            super::llm::Line::Warn(t, fix) => report.warn(t, &fix),
        }
    }
}

fn telegram(config: &Config, report: &mut Report) {
    report.heading("Telegram (optional)");
    if config.telegram_bot_token.is_none() {
        report.off(
            "not configured (set TELEGRAM_BOT_TOKEN and TELEGRAM_ALLOWED_USERS to enable the bot)",
        );
        return;
    }
    let chat = config
        .telegram_chat_id
        .map(|id| format!("chat id {id}"))
        .unwrap_or_else(|| "no TELEGRAM_CHAT_ID".into());
    if config.telegram_allowed_users.is_empty() {
        report.warn(
            format!("bot token set (<redacted>), {chat}, but TELEGRAM_ALLOWED_USERS is empty: the bot obeys nobody"),
            "set TELEGRAM_ALLOWED_USERS to the comma-separated user ids allowed to use the bot",
        );
    } else {
        let users: Vec<String> = config
            .telegram_allowed_users
            .iter()
            .map(i64::to_string)
            .collect();
        report.ok(format!(
            "bot token set (<redacted>), {chat}, allowed users: {}",
            users.join(", ")
        ));
    }
}

/// What `orca run` prints at start (on stderr, one block) of what doctor would flag: the
/// agent binary missing, no API key or login found. Empty when nothing is wrong. Quick: it
/// looks the binary up, it does not run it.
pub fn startup_block(config: &Config, env: &[(String, String)]) -> String {
    let mut lines = Vec::new();
    let bin = &config.claude_bin;
    if find_binary(bin, env_get(env, "PATH")).is_none() {
        let place = if bin.contains('/') {
            format!("{bin} does not exist or is not executable")
        } else {
            format!("`{bin}` not found on PATH")
        };
        lines.push(format!(
            "  agent: CLAUDE_BIN: {place}: every task fails as agent_missing until it is there\n    fix: {AGENT_FIX}"
        ));
    }
    if config.anthropic_api_key.is_none() && find_login(env).is_none() {
        lines.push(
            "  auth:  no ANTHROPIC_API_KEY and no Claude Code login found; the agent may refuse to run\n    fix: run `claude` once and log in, or set ANTHROPIC_API_KEY (in .env or the environment)"
                .to_string(),
        );
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "orca: {} problem(s) found at start (`orca doctor` for details); running anyway:\n{}\n",
        lines.len(),
        lines.join("\n")
    )
}

/// The process environment as (name, value) pairs (names or values that are not UTF-8 left out).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        assert_eq!(
            find_binary("tool", dir.path().to_str()),
            None,
            "not executable"
        );
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(find_binary("tool", Some(&path)), Some(bin.clone()));
        assert_eq!(find_binary(bin.to_str().unwrap(), None), Some(bin));
        assert_eq!(find_binary("tool", None), None);
    }

    #[test]
    fn version_timeout_kills_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("slow");
        std::fs::write(&bin, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
        let err = agent_version(&bin, &env, Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
    }
}
