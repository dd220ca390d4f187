//! Settings of features this version of Orca does not have yet (LLM mediation through Ollama
//! or an OpenAI-compatible server, the Telegram bot). Such a
//! setting is refused (exit 2) rather than accepted and silently ignored: `orca run` and the
//! commands that use the store will not start with it, and `orca doctor` says why.

use super::{Config, ConfigError, LlmMode};

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
    /// Every setting of a feature that is not built, in a fixed order. `ORCA_LLM=auto` and
    /// `off` are fine: auto means rule-based when no LLM answers, which is what this version
    /// does.
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
        if matches!(self.llm, LlmMode::Ollama | LlmMode::OpenAi) {
            let (value, origin) = shown("ORCA_LLM");
            out.push(Unbuilt {
                name: "ORCA_LLM",
                value,
                origin,
                feature: "LLM mediation",
                fix:
                    "set ORCA_LLM=auto (rules, the default) or ORCA_LLM=off, or remove the setting",
            });
        }
        if self.telegram_bot_token.is_some() {
            let (value, origin) = shown("TELEGRAM_BOT_TOKEN");
            out.push(Unbuilt {
                name: "TELEGRAM_BOT_TOKEN",
                value,
                origin,
                feature: "the Telegram bot",
                fix: "remove TELEGRAM_BOT_TOKEN from the configuration",
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
            (&[("ORCA_LLM", "ollama")], &["ORCA_LLM"]),
            (
                &[("ORCA_LLM", "openai"), ("OPENAI_BASE_URL", "http://h/v1")],
                &["ORCA_LLM"],
            ),
            (
                &[("TELEGRAM_BOT_TOKEN", "1:SECRET")],
                &["TELEGRAM_BOT_TOKEN"],
            ),
            (&[("ORCA_DATABASE_URL", "sqlite:x.db")], &[]),
            (
                &[
                    ("ORCA_DATABASE_URL", "postgres://u:PW@h/d"),
                    ("ORCA_LLM", "ollama"),
                ],
                &["ORCA_LLM"],
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
        let c = load(&[("TELEGRAM_BOT_TOKEN", "123:TGSECRET")]);
        let e = c.check_built().unwrap_err();
        let text = e.to_string();
        assert!(text.contains("TELEGRAM_BOT_TOKEN"), "{text}");
        assert!(text.contains("not built yet in this version"), "{text}");
        assert!(!text.contains("TGSECRET"), "{text}");
        assert_eq!(e.exit_code(), 2);
        let c = load(&[("ORCA_DATABASE_URL", "postgres://u:PW@h/d")]);
        assert!(c.check_built().is_ok(), "the fleet store is built");
    }
}
