//! Secret detection and redaction: which setting names hold secrets, and how their
//! values (and passwords inside URLs) are shown in output, logs and errors.

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

#[cfg(test)]
mod tests {
    use super::*;

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
