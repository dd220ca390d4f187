//! The raw layers of the configuration: `config/orca.toml`, `.env`, the environment and
//! the command line, each read into `NAME -> (text, where it came from)` without validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, Source, SETTINGS};

/// One raw value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub value: String,
    pub source: Source,
    /// Human origin for messages: `.env:3`, `config/orca.toml:2`, `environment`, `command line`.
    pub origin: String,
}

/// Every known setting that some layer set, the highest layer winning.
pub(crate) type Layers = BTreeMap<&'static str, Raw>;

/// The canonical (upper-case) name of a known setting, if `name` is one.
pub(crate) fn known(name: &str) -> Option<&'static str> {
    SETTINGS.iter().copied().find(|known| *known == name)
}

/// The relative paths shown for the two files.
pub(crate) fn toml_rel() -> PathBuf {
    Path::new("config").join("orca.toml")
}
pub(crate) fn dotenv_rel() -> PathBuf {
    PathBuf::from(".env")
}

/// Reads `config/orca.toml` (when present) into `layers`. Keys are the names of
/// DESIGN §8, upper- or lower-case; unknown keys are an error with a suggestion.
pub(crate) fn read_toml(root: &Path, layers: &mut Layers) -> Result<(), ConfigError> {
    let path = root.join(toml_rel());
    let rel = toml_rel();
    let text = match read_optional(&path)? {
        Some(text) => text,
        None => return Ok(()),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        // Only the message: toml's own rendering quotes the line, which may hold a secret.
        let line = e.span().map(|span| line_of_offset(text, span.start));
        ConfigError::Syntax {
            origin: with_line(&rel.display().to_string(), line),
            reason: format!(
                "{} (fix the TOML syntax: one `NAME = value` per line)",
                e.message().trim_end()
            ),
        }
    })?;
    for (key, value) in &table {
        let line = find_key_line(text, key, false);
        let origin = with_line(&rel.display().to_string(), line);
        let upper = key.to_ascii_uppercase();
        let name = match known(&upper) {
            Some(name) if key == name || *key == name.to_ascii_lowercase() => name,
            _ => {
                let lower = key.chars().any(|c| c.is_ascii_lowercase());
                return Err(ConfigError::Unknown {
                    name: key.clone(),
                    origin,
                    suggestion: suggest(key).map(|s| {
                        if lower {
                            s.to_ascii_lowercase()
                        } else {
                            s.to_string()
                        }
                    }),
                });
            }
        };
        let text = toml_value_text(value).ok_or_else(|| ConfigError::Invalid {
            name: name.to_string(),
            value: super::redact(name, &value.to_string()),
            origin: origin.clone(),
            expected: "a plain value (a string, a number, a boolean or a list of them)".into(),
        })?;
        layers.insert(
            name,
            Raw {
                value: text,
                source: Source::ConfigFile(rel.clone()),
                origin,
            },
        );
    }
    Ok(())
}

/// Reads `.env` (when present) into `layers` with dotenvy, without touching the process
/// environment. The last definition of a name wins. Returns the names it does not know.
pub(crate) fn read_dotenv(
    root: &Path,
    layers: &mut Layers,
) -> Result<Vec<(String, String)>, ConfigError> {
    let path = root.join(dotenv_rel());
    let rel = dotenv_rel();
    let text = match read_optional(&path)? {
        Some(text) => text,
        None => return Ok(Vec::new()),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
    let mut unknown = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (key, value) = item.map_err(|e| dotenv_error(&text, &rel, e))?;
        let line = find_key_line(&text, &key, true);
        match known(&key) {
            Some(name) => {
                layers.insert(
                    name,
                    Raw {
                        value,
                        source: Source::DotEnv(rel.clone()),
                        origin: with_line(&rel.display().to_string(), line),
                    },
                );
            }
            None => {
                // Later definitions win, as for known names.
                unknown.retain(|(k, _): &(String, String)| k != &key);
                unknown.push((key, value));
            }
        }
    }
    Ok(unknown)
}

/// Takes the known names from the process environment (given as data).
pub(crate) fn read_env(env: &[(String, String)], layers: &mut Layers) {
    for (key, value) in env {
        if let Some(name) = known(key) {
            layers.insert(
                name,
                Raw {
                    value: value.clone(),
                    source: Source::Environment,
                    origin: "environment".into(),
                },
            );
        }
    }
}

/// Takes the command-line `(NAME, value)` pairs; names are case-insensitive and must be known.
pub(crate) fn read_flags(
    flags: &[(String, String)],
    layers: &mut Layers,
) -> Result<(), ConfigError> {
    for (key, value) in flags {
        let upper = key
            .trim()
            .trim_start_matches("--")
            .replace('-', "_")
            .to_ascii_uppercase();
        let Some(name) = known(&upper) else {
            return Err(ConfigError::Unknown {
                name: key.clone(),
                origin: "command line".into(),
                suggestion: suggest(&upper).map(str::to_string),
            });
        };
        layers.insert(
            name,
            Raw {
                value: value.clone(),
                source: Source::Flag,
                origin: "command line".into(),
            },
        );
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                reason: format!(
                    "not valid UTF-8 at byte {}; save the file as UTF-8",
                    e.utf8_error().valid_up_to()
                ),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::File {
            path: path.to_path_buf(),
            reason: format!("{e}; check its permissions"),
        }),
    }
}

fn dotenv_error(text: &str, rel: &Path, e: dotenvy::Error) -> ConfigError {
    let origin = rel.display().to_string();
    match e {
        dotenvy::Error::LineParse(bad, _) => {
            // Never quote the line: it may hold a secret.
            let first = bad.lines().next().unwrap_or("");
            let line = if first.trim().is_empty() {
                None
            } else {
                text.lines()
                    .position(|l| l.trim_end() == first.trim_end())
                    .map(|i| i + 1)
            };
            ConfigError::Syntax {
                origin: with_line(&origin, line),
                reason: "cannot parse this line; expected NAME=value (quote values with spaces, close every quote)".into(),
            }
        }
        other => ConfigError::Syntax {
            origin,
            reason: format!("{other}"),
        },
    }
}

/// `origin:line` when the line is known.
fn with_line(origin: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_string(),
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The 1-based line of the last definition of `key` (`key = ...`, `"key" = ...`, or in
/// a .env file `export key=...`).
fn find_key_line(text: &str, key: &str, dotenv: bool) -> Option<usize> {
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let mut rest = line.trim_start();
        if dotenv {
            if let Some(after) = rest.strip_prefix("export ") {
                rest = after.trim_start();
            }
        }
        let after_key = rest
            .strip_prefix(key)
            .or_else(|| {
                rest.strip_prefix('"')
                    .and_then(|r| r.strip_prefix(key))
                    .and_then(|r| r.strip_prefix('"'))
            })
            .or_else(|| {
                rest.strip_prefix('\'')
                    .and_then(|r| r.strip_prefix(key))
                    .and_then(|r| r.strip_prefix('\''))
            });
        if let Some(after) = after_key {
            if after.trim_start().starts_with('=') {
                found = Some(i + 1);
            }
        }
    }
    found
}

fn toml_value_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Some(s.clone()),
                    toml::Value::Integer(i) => Some(i.to_string()),
                    _ => None,
                })
                .collect();
            parts.map(|p| p.join(","))
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

/// The known name closest to `name`, when it is close enough to be a typo.
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    let wanted = name.to_ascii_uppercase();
    let (best, distance) = SETTINGS
        .iter()
        .map(|known| (*known, levenshtein(&wanted, known)))
        .min_by_key(|(_, d)| *d)?;
    let limit = (wanted.chars().count() / 3).max(2);
    (distance <= limit).then_some(best)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current[j + 1] = (previous[j] + cost)
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("max_concurent_tasks"), Some("MAX_CONCURRENT_TASKS"));
        assert_eq!(suggest("CLAUDE_TIMEOUT"), Some("CLAUDE_TIMEOUT_SEC"));
        assert_eq!(suggest("completely_different"), None);
        assert_eq!(levenshtein("abc", "abc"), 0);
        assert_eq!(levenshtein("abc", "abd"), 1);
        assert_eq!(levenshtein("", "ab"), 2);
    }

    #[test]
    fn key_lines() {
        let text = "# c\nA=1\nexport B = 2\nA=3\n";
        assert_eq!(find_key_line(text, "A", true), Some(4));
        assert_eq!(find_key_line(text, "B", true), Some(3));
        assert_eq!(find_key_line(text, "C", true), None);
        assert_eq!(find_key_line("\"x\" = 1\n", "x", false), Some(1));
        assert_eq!(find_key_line("AB=1\n", "A", true), None);
    }

    #[test]
    fn offsets_to_lines() {
        assert_eq!(line_of_offset("a\nb\nc", 0), 1);
        assert_eq!(line_of_offset("a\nb\nc", 2), 2);
        assert_eq!(line_of_offset("a\nb\nc", 99), 3);
    }
}
