//! Settings of features this version of Orca does not have yet (the PostgreSQL fleet
//! store). Such a
//! setting is refused (exit 2) rather than accepted and silently ignored: `orca run` and the
//! commands that use the store will not start with it, and `orca doctor` says why.

use super::{Config, ConfigError};

/// One setting that asks for a feature that is not built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbuilt {
    pub name: &'static str,
    /// The value as `orca doctor` shows it (secrets redacted).
    pub value: String,
    /// Where it was set (`.env:3`, `environment`, ...).
    pub origin: String,
    /// The feature, e.g. "the Telegram bot".
    pub feature: &'static str,
    /// What to do instead.
    pub fix: &'static str,
}

impl Unbuilt {
    pub fn error(&self) -> ConfigError {
        ConfigError::NotBuilt {
            name: self.name.to_string(),
            value: self.value.clone(),
            origin: self.origin.clone(),
            feature: self.feature.to_string(),
            fix: self.fix.to_string(),
        }
    }
}

impl Config {
    /// Every setting of a feature that is not built, in a fixed order.
    pub fn unbuilt(&self) -> Vec<Unbuilt> {
        let shown = |name: &'static str| {
            (
                self.sources
                    .get(name)
                    .map(|(v, _)| v.clone())
                    .unwrap_or_default(),
                self.origins.get(name).cloned().unwrap_or_default(),
            )
        };
        let mut out = Vec::new();
        let db = self.database_url.to_ascii_lowercase();
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            let (value, origin) = shown("ORCA_DATABASE_URL");
            out.push(Unbuilt {
                name: "ORCA_DATABASE_URL",
                value,
                origin,
                feature: "the PostgreSQL store (many machines)",
                fix: "remove ORCA_DATABASE_URL (the default is sqlite:.orca/orca.db)",
            });
        }
        out
    }

    /// The first setting of a feature that is not built, as the error that refuses it.
    pub fn check_built(&self) -> Result<(), ConfigError> {
        match self.unbuilt().first() {
            Some(u) => Err(u.error()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(dir.path(), &env, &[]).unwrap()
    }

    /// Settings, and the names of the refused ones.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    #[test]
    fn table() {
        let cases: [Case; 8] = [
            (&[], &[]),
            (&[("ORCA_LLM", "auto")], &[]),
            (&[("ORCA_LLM", "off")], &[]),
            (&[("ORCA_LLM", "ollama")], &[]),
            (
                &[("ORCA_LLM", "openai"), ("OPENAI_BASE_URL", "http://h/v1")],
                &[],
            ),
            (&[("TELEGRAM_BOT_TOKEN", "1:SECRET")], &[]),
            (&[("ORCA_DATABASE_URL", "sqlite:x.db")], &[]),
            (
                &[
                    ("ORCA_DATABASE_URL", "postgres://u:PW@h/d"),
                    ("ORCA_LLM", "ollama"),
                ],
                &["ORCA_DATABASE_URL"],
            ),
        ];
        for (env, want) in cases {
            let c = load(env);
            let got: Vec<&str> = c.unbuilt().iter().map(|u| u.name).collect();
            assert_eq!(got, want, "{env:?}");
            assert_eq!(c.check_built().is_err(), !want.is_empty(), "{env:?}");
        }
    }

    #[test]
    fn the_error_names_the_setting_and_never_the_secret() {
        let c = load(&[("ORCA_DATABASE_URL", "postgres://u:PW@h/d")]);
        let e = c.check_built().unwrap_err();
        let text = e.to_string();
        assert!(text.contains("ORCA_DATABASE_URL"), "{text}");
        assert!(text.contains("not built yet in this version"), "{text}");
        assert_eq!(e.exit_code(), 2);
        assert!(!text.contains("PW"), "{text}");
        assert!(text.contains("postgres://u:<redacted>@h/d"), "{text}");
    }
}
