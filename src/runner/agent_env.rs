//! What of Orca's environment an agent does not get: Orca's own secrets (DESIGN §5). The
//! agent keeps what it needs to work (ANTHROPIC_API_KEY, other keys the user set).

use crate::config::Config;

use crate::config::is_secret_name;

/// Orca's secrets that are always withheld.
const ALWAYS: &[&str] = &["TELEGRAM_BOT_TOKEN", "ORCA_DATABASE_URL"];

/// The names among `present` (the names in Orca's environment) that the agent must not
/// get: TELEGRAM_BOT_TOKEN, ORCA_DATABASE_URL (it may carry a password), every `ORCA_*`
/// name that holds a secret (tokens, keys, passwords of Orca's own features), and
/// OPENAI_API_KEY when it is the mediation LLM's key (`mediation_uses_openai`).
pub fn withheld_names<'a>(
    present: impl IntoIterator<Item = &'a str>,
    mediation_uses_openai: bool,
) -> Vec<String> {
    let mut out: Vec<String> = ALWAYS.iter().map(|s| (*s).to_owned()).collect();
    if mediation_uses_openai {
        out.push("OPENAI_API_KEY".into());
    }
    for name in present {
        let upper = name.to_ascii_uppercase();
        if upper.starts_with("ORCA_") && is_secret_name(name) && !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// Environment for the agent beyond Orca's own: `.env` variables that are not Orca settings,
/// and ANTHROPIC_API_KEY when it was configured in `.env` or config/orca.toml.
/// Orca's own secrets among them are left out (see [`withheld`]).
pub fn for_agent(cfg: &Config) -> Vec<(String, String)> {
    let withheld = withheld(cfg);
    let mut env: Vec<(String, String)> = cfg
        .dotenv_passthrough
        .iter()
        .filter(|(k, _)| !withheld.contains(k))
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect();
    if let Some(key) = &cfg.anthropic_api_key {
        if std::env::var_os("ANTHROPIC_API_KEY").is_none() {
            env.push(("ANTHROPIC_API_KEY".into(), key.expose().to_owned()));
        }
    }
    env
}

/// Orca's own secrets, withheld from the agent (DESIGN §5): see
/// [`withheld_names`].
pub fn withheld(cfg: &Config) -> Vec<String> {
    let mediation_uses_openai = !matches!(
        cfg.llm,
        crate::config::LlmMode::Off | crate::config::LlmMode::Ollama
    );
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .chain(cfg.dotenv_passthrough.iter().map(|(k, _)| k.clone()))
        .collect();
    withheld_names(names.iter().map(String::as_str), mediation_uses_openai)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orcas_secrets_are_withheld_the_agents_keys_are_kept() {
        let present = [
            "PATH",
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "TELEGRAM_BOT_TOKEN",
            "OPENAI_API_KEY",
            "ORCA_DASHBOARD_TOKEN",
            "ORCA_LLM_MODEL",
            "ORCA_WEBHOOK_SECRET",
        ];
        let table: &[(bool, &[&str])] = &[
            (
                true,
                &[
                    "TELEGRAM_BOT_TOKEN",
                    "ORCA_DATABASE_URL",
                    "OPENAI_API_KEY",
                    "ORCA_DASHBOARD_TOKEN",
                    "ORCA_WEBHOOK_SECRET",
                ],
            ),
            (
                false,
                &[
                    "TELEGRAM_BOT_TOKEN",
                    "ORCA_DATABASE_URL",
                    "ORCA_DASHBOARD_TOKEN",
                    "ORCA_WEBHOOK_SECRET",
                ],
            ),
        ];
        for (openai, want) in table {
            let got = withheld_names(present, *openai);
            assert_eq!(got, *want, "mediation uses OpenAI: {openai}");
            for kept in [
                "PATH",
                "ANTHROPIC_API_KEY",
                "GITHUB_TOKEN",
                "ORCA_LLM_MODEL",
            ] {
                assert!(
                    !got.iter().any(|g| g == kept),
                    "{kept} must reach the agent"
                );
            }
        }
    }
}
