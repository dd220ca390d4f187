//! Secret detection and redaction: which setting names hold secrets, and how their
//! values (and passwords inside URLs) are shown in output, logs and errors; and the
//! [`Redactor`] that takes the values of every known secret out of text Orca writes.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The text shown in place of a secret value.
pub const REDACTED: &str = "<redacted>";

/// True for names whose values are secrets: the known tokens and keys, and any name
/// ending in `_TOKEN`, `_KEY`, `_SECRET` or `_PASSWORD` (case-insensitive).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.trim().to_ascii_uppercase();
    matches!(
        upper.as_str(),
        "TELEGRAM_BOT_TOKEN" | "OPENAI_API_KEY" | "ANTHROPIC_API_KEY"
    ) || ["_TOKEN", "_KEY", "_SECRET", "_PASSWORD"]
        .iter()
        .any(|suffix| upper.ends_with(suffix))
        || matches!(upper.as_str(), "TOKEN" | "KEY" | "SECRET" | "PASSWORD")
}

/// The value of `name` as it may be shown: `<redacted>` for a non-empty secret, the
/// URL with its password replaced for URLs carrying one, the value itself otherwise.
pub fn redact(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        if value.is_empty() {
            String::new()
        } else {
            REDACTED.to_string()
        }
    } else {
        redact_url_password(value)
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL with `<redacted>`;
/// any other text is returned unchanged.
pub fn redact_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let after = &value[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return value.to_string();
    };
    format!(
        "{}{}:{}{}",
        &value[..scheme_end + 3],
        &userinfo[..colon],
        REDACTED,
        &after[at..]
    )
}

/// Shortest value taken for a secret: shorter ones (`1`, `true`, a test's `x`) would
/// redact ordinary words everywhere, and are no secret worth the name.
pub const MIN_SECRET_CHARS: usize = 8;

/// Takes the values of known secrets out of text: the settings marked secret (Orca's own
/// and the agents' API keys, tokens, a database URL's password, `.env` entries with a
/// secret name) and environment variables with a secret name ([`is_secret_name`]).
/// Built once (per daemon, or per command) and applied where Orca writes agent text:
/// results, summaries, the store. Its `Debug` shows how many values it holds, never them.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Distinct values, longest first (a value inside a longer one is replaced after it).
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secret value(s))", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor of these values (trimmed; those shorter than [`MIN_SECRET_CHARS`] dropped).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(|v| v.trim().to_owned())
            .filter(|v| v.chars().count() >= MIN_SECRET_CHARS)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// The values of the variables in `env` whose names are secret names.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Redactor {
        Redactor::new(secret_values(env))
    }

    /// The secrets of `config` (settings marked secret, a URL's password, `.env` entries with
    /// a secret name) and those of the environment `env`.
    pub fn from_config(config: &super::Config, env: &[(String, String)]) -> Redactor {
        let mut values: Vec<String> = [
            &config.anthropic_api_key,
            &config.openai_api_key,
            &config.telegram_bot_token,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_owned())
        .collect();
        values.extend(url_password(&config.database_url));
        values.extend(
            config
                .dotenv_passthrough
                .iter()
                .filter(|(k, _)| is_secret_name(k))
                .map(|(_, v)| v.expose().to_owned()),
        );
        values.extend(secret_values(env.iter().cloned()));
        Redactor::new(values)
    }

    /// [`Redactor::from_config`] with the process environment.
    pub fn for_daemon(config: &super::Config) -> Redactor {
        Redactor::from_config(config, &process_env())
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// Redacts `text` in place.
    pub fn redact_string(&self, text: &mut String) {
        if let Cow::Owned(new) = self.redact(text) {
            *text = new;
        }
    }

    /// Redacts every string (and object key) inside a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => self.redact_string(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => {
                if map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_))) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (self.redact(&k).into_owned(), v))
                        .collect();
                }
                map.values_mut().for_each(|v| self.redact_json(v));
            }
            _ => {}
        }
    }
}

/// The process environment, as far as it is UTF-8.
fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn secret_values(env: impl IntoIterator<Item = (String, String)>) -> impl Iterator<Item = String> {
    env.into_iter()
        .filter(|(k, _)| is_secret_name(k))
        .map(|(_, v)| v)
}

/// The password of a `scheme://user:password@host/...` URL.
fn url_password(value: &str) -> Option<String> {
    let after = &value[value.find("://")? + 3..];
    let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(userinfo[userinfo.find(':')? + 1..].to_owned())
}

/// The redactor of this process, once [`set_redactor`] or [`redactor_for`] made it.
static CURRENT: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

/// Makes `r` the redactor that [`redactor_for`] hands out from now on (the daemon calls it
/// at start with [`Redactor::for_daemon`], and again when the configuration is reloaded).
pub fn set_redactor(r: Redactor) -> Arc<Redactor> {
    let r = Arc::new(r);
    if let Ok(mut slot) = CURRENT.write() {
        *slot = Some(Arc::clone(&r));
    }
    r
}

/// The redactor of this process: the one set with [`set_redactor`], else one built now (and
/// kept) from the configuration of the workspace at `root` and the process environment;
/// from the environment alone when the configuration does not load.
pub fn redactor_for(root: &Path) -> Arc<Redactor> {
    if let Some(r) = CURRENT.read().ok().and_then(|slot| slot.clone()) {
        return r;
    }
    let env = process_env();
    let r = match super::Config::load_from(root, &env, &[]) {
        Ok(config) => Redactor::from_config(&config, &env),
        Err(_) => Redactor::from_env(env),
    };
    set_redactor(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_replaces_every_known_secret_value() {
        let env = [
            ("ANTHROPIC_API_KEY", "sk-ant-0123456789"),
            ("GITHUB_TOKEN", "ghp_abcdefgh"),
            ("DB_PASSWORD", "short"),
            ("HOME", "/home/someone-long"),
            ("EMPTY_SECRET", ""),
            ("SPACED_KEY", "  padded-value  "),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let r = Redactor::from_env(env);
        assert_eq!(format!("{r:?}"), "Redactor(3 secret value(s))");
        for (input, want) in [
            ("key sk-ant-0123456789 here", "key <redacted> here"),
            (
                "twice ghp_abcdefghghp_abcdefgh",
                "twice <redacted><redacted>",
            ),
            (
                "short and /home/someone-long stay",
                "short and /home/someone-long stay",
            ),
            ("padded-value", "<redacted>"),
            ("", ""),
        ] {
            assert_eq!(r.redact(input), want, "{input}");
        }
        assert!(matches!(r.redact("nothing"), Cow::Borrowed(_)));
        // A value inside a longer one: the longer goes whole.
        let r = Redactor::new(["abcdefgh".to_owned(), "xxabcdefghxx".to_owned()]);
        assert_eq!(
            r.redact("1 xxabcdefghxx 2 abcdefgh"),
            "1 <redacted> 2 <redacted>"
        );
        let mut v = serde_json::json!({"a": ["abcdefgh", 1, {"abcdefgh": "ok abcdefgh"}]});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["<redacted>", 1, {"<redacted>": "ok <redacted>"}]})
        );
    }

    #[test]
    fn redactor_takes_the_configs_secrets() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(".env"),
            "TELEGRAM_BOT_TOKEN=123456:telegram-token\nMY_SERVICE_TOKEN=dotenv-only-token\n",
        )
        .unwrap();
        let env =
            [("OPENAI_API_KEY", "sk-openai-secret")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = super::super::Config::load_from(d.path(), &env, &[]).unwrap();
        let r = Redactor::from_config(&config, &env);
        let text = "123456:telegram-token dotenv-only-token sk-openai-secret";
        assert_eq!(r.redact(text), "<redacted> <redacted> <redacted>");
        assert_eq!(url_password("http://127.0.0.1:11434"), None);
        assert_eq!(url_password("postgres://u:p@h/d").as_deref(), Some("p"));
    }

    #[test]
    fn secret_names() {
        for name in [
            "TELEGRAM_BOT_TOKEN",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "aws_secret",
            "MY_API_KEY",
            "DB_PASSWORD",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        for name in [
            "CLAUDE_BIN",
            "TELEGRAM_CHAT_ID",
            "ORCA_LLM_MODEL",
            "KEYBOARD",
            "TOKENS_USED",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn redacts_values() {
        assert_eq!(redact("OPENAI_API_KEY", "sk-123"), "<redacted>");
        assert_eq!(redact("OPENAI_API_KEY", ""), "");
        assert_eq!(redact("CLAUDE_BIN", "claude"), "claude");
        assert_eq!(
            redact("ORCA_DATABASE_URL", "postgres://orca:hunter2@db:5432/orca"),
            "postgres://orca:<redacted>@db:5432/orca"
        );
    }

    #[test]
    fn url_passwords() {
        assert_eq!(
            redact_url_password("postgresql://u:p@h/d?x=1"),
            "postgresql://u:<redacted>@h/d?x=1"
        );
        assert_eq!(redact_url_password("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            redact_url_password("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434"
        );
        assert_eq!(
            redact_url_password("sqlite:.orca/orca.db"),
            "sqlite:.orca/orca.db"
        );
        assert_eq!(
            redact_url_password("https://h/p@x:y"),
            "https://h/p@x:y",
            "an @ after the path is not userinfo"
        );
    }
}
