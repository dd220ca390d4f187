//! Unit tests of configuration loading: defaults, layers, validation, redaction, reload.

use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn load(root: &Path, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load_from(root, &pairs(env), &pairs(flags))
}

#[test]
fn defaults_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(dir.path(), &[], &[]).unwrap();
    let root = std::path::absolute(dir.path()).unwrap();
    assert_eq!(c.root, root);
    assert_eq!(c.max_concurrent_tasks, 3);
    assert_eq!(c.claude_timeout_sec, 300);
    assert_eq!(c.claude_max_turns, 0);
    assert!(!c.claude_skip_permissions);
    assert_eq!(c.claude_base_cwd, root);
    assert_eq!(c.claude_allowed_root, root);
    assert_eq!(c.claude_bin, "claude");
    assert_eq!(c.claude_model, None);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.max_retries, 2);
    assert_eq!(c.llm, LlmMode::Auto);
    assert_eq!(c.llm_timeout_sec, 20);
    assert_eq!(c.ollama_host, "http://127.0.0.1:11434");
    assert_eq!(c.ollama_model, "llama3.1:8b");
    assert_eq!(c.openai_base_url, None);
    assert!(c.openai_api_key.is_none());
    assert!(c.anthropic_api_key.is_none());
    assert!(c.telegram_bot_token.is_none());
    assert!(c.telegram_allowed_users.is_empty());
    assert_eq!(c.telegram_chat_id, None);
    assert_eq!(c.telegram_api_url, "https://api.telegram.org");
    assert_eq!(c.database_url, "sqlite:.orca/orca.db");
    assert_eq!(c.node_id, format!("{}-{}", hostname(), std::process::id()));
    assert!(c.node_labels.is_empty());
    assert_eq!(c.lease_sec, 30);
    assert_eq!(c.shutdown_grace_sec, 30);
    assert_eq!(c.log_max_bytes, 1_048_576);
    assert_eq!(c.log_files, 3);
    assert_eq!(c.events_max_bytes, 10_485_760);
    assert_eq!(c.events_files, 5);
    for name in SETTINGS {
        let (_, source) = c
            .sources
            .get(*name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(*source, Source::Default, "{name}");
        assert_eq!(c.origins[*name], "default");
    }
    assert_eq!(c.sources.len(), SETTINGS.len());
}

#[test]
fn each_layer_beats_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "config/orca.toml",
        "MAX_CONCURRENT_TASKS = 4\nclaude_timeout_sec = 100\nORCA_MAX_RETRIES = 5\nLOG_LEVEL = \"debug\"\n",
    );
    write(
        root,
        ".env",
        "# seed\nCLAUDE_TIMEOUT_SEC=200\nORCA_MAX_RETRIES=6\nLOG_LEVEL=error\n",
    );
    let c = load(
        root,
        &[
            ("ORCA_MAX_RETRIES", "7"),
            ("LOG_LEVEL", "warn"),
            ("PATH", "/bin"),
        ],
        &[("LOG_LEVEL", "INFO")],
    )
    .unwrap();
    assert_eq!(c.max_concurrent_tasks, 4);
    assert_eq!(c.claude_timeout_sec, 200);
    assert_eq!(c.max_retries, 7);
    assert_eq!(c.log_level, LogLevel::Info);
    let toml = Source::ConfigFile(PathBuf::from("config/orca.toml"));
    let env = Source::DotEnv(PathBuf::from(".env"));
    assert_eq!(c.sources["MAX_CONCURRENT_TASKS"], ("4".into(), toml));
    assert_eq!(c.sources["CLAUDE_TIMEOUT_SEC"], ("200".into(), env));
    assert_eq!(
        c.sources["ORCA_MAX_RETRIES"],
        ("7".into(), Source::Environment)
    );
    assert_eq!(c.sources["LOG_LEVEL"], ("INFO".into(), Source::Flag));
    assert_eq!(c.sources["CLAUDE_BIN"].1, Source::Default);
    assert_eq!(c.origins["MAX_CONCURRENT_TASKS"], "config/orca.toml:1");
    assert_eq!(c.origins["CLAUDE_TIMEOUT_SEC"], ".env:2");
    assert_eq!(c.origins["ORCA_MAX_RETRIES"], "environment");
    assert_eq!(c.origins["LOG_LEVEL"], "command line");
}

#[test]
fn dotenv_last_definition_wins_and_process_env_untouched() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".env",
        "\u{feff}export CLAUDE_MODEL=haiku\nORCA_TEST_ONLY_UNKNOWN_XYZ=1\nCLAUDE_MODEL='sonnet'\n",
    );
    let c = load(dir.path(), &[], &[]).unwrap();
    assert_eq!(c.claude_model.as_deref(), Some("sonnet"));
    assert_eq!(c.origins["CLAUDE_MODEL"], ".env:3");
    assert_eq!(
        c.unknown_dotenv,
        vec!["ORCA_TEST_ONLY_UNKNOWN_XYZ".to_string()]
    );
    assert!(std::env::var("ORCA_TEST_ONLY_UNKNOWN_XYZ").is_err());
}

#[test]
fn blank_value_means_default() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".env",
        "MAX_CONCURRENT_TASKS=\nTELEGRAM_BOT_TOKEN=\n",
    );
    let c = load(dir.path(), &[], &[]).unwrap();
    assert_eq!(c.max_concurrent_tasks, 3);
    assert!(c.telegram_bot_token.is_none());
    assert_eq!(c.sources["TELEGRAM_BOT_TOKEN"].0, "");
}

#[test]
fn values_of_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/orca.toml",
        "telegram_allowed_users = [1, 22]\norca_node_labels = [\"repo-a\", \"gpu\"]\nclaude_skip_permissions = true\n",
    );
    let c = load(
        dir.path(),
        &[
            ("CLAUDE_BASE_CWD", "work/../proj"),
            ("CLAUDE_ALLOWED_ROOT", "."),
            ("CLAUDE_BIN", "bin/claude"),
            ("ORCA_LLM", "OpenAI"),
            ("OPENAI_BASE_URL", "http://localhost:8000/v1/"),
            ("TELEGRAM_CHAT_ID", "-100123"),
            ("ORCA_DATABASE_URL", "postgres://orca:pw@db/orca"),
            ("HOME", "/home/u"),
        ],
        &[("claude-skip-permissions", "no")],
    )
    .unwrap();
    let root = std::path::absolute(dir.path()).unwrap();
    assert_eq!(c.claude_base_cwd, root.join("proj"));
    assert_eq!(c.claude_allowed_root, root);
    assert_eq!(c.claude_bin, root.join("bin/claude").display().to_string());
    assert_eq!(c.llm, LlmMode::OpenAi);
    assert_eq!(
        c.openai_base_url.as_deref(),
        Some("http://localhost:8000/v1")
    );
    assert_eq!(c.telegram_allowed_users, vec![1, 22]);
    assert_eq!(c.telegram_chat_id, Some(-100123));
    assert_eq!(c.node_labels, vec!["repo-a", "gpu"]);
    assert!(!c.claude_skip_permissions);
    assert_eq!(c.sources["CLAUDE_SKIP_PERMISSIONS"].1, Source::Flag);
    assert_eq!(c.database_url, "postgres://orca:pw@db/orca");
    assert_eq!(
        c.sources["ORCA_DATABASE_URL"].0,
        "postgres://orca:<redacted>@db/orca"
    );
    assert!(!format!("{c:?}").contains(":pw@"));
}

#[test]
fn home_expansion_and_absolute_paths() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(
        dir.path(),
        &[
            ("HOME", "/home/u"),
            ("CLAUDE_ALLOWED_ROOT", "~"),
            ("CLAUDE_BASE_CWD", "/home/u/src/./a"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.claude_allowed_root, PathBuf::from("/home/u"));
    assert_eq!(c.claude_base_cwd, PathBuf::from("/home/u/src/a"));
}

#[test]
fn allowed_root_defaults_to_base_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(dir.path(), &[("CLAUDE_BASE_CWD", "/srv/x")], &[]).unwrap();
    assert_eq!(c.claude_allowed_root, PathBuf::from("/srv/x"));
    assert_eq!(
        c.sources["CLAUDE_ALLOWED_ROOT"],
        ("/srv/x".into(), Source::Default)
    );
}

fn invalid(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), env, &[]).unwrap_err().to_string()
}

#[test]
fn validation_messages() {
    let cases: &[(&str, &str)] = &[
        ("MAX_CONCURRENT_TASKS", "0"),
        ("MAX_CONCURRENT_TASKS", "257"),
        ("CLAUDE_TIMEOUT_SEC", "-5"),
        ("CLAUDE_TIMEOUT_SEC", "0"),
        ("CLAUDE_SKIP_PERMISSIONS", "maybe"),
        ("LOG_LEVEL", "verbose"),
        ("ORCA_LLM", "gpt"),
        ("OLLAMA_HOST", "127.0.0.1:11434"),
        ("TELEGRAM_API_URL", "ftp://x"),
        ("ORCA_DATABASE_URL", "mysql://u:secretpw@h/d"),
        ("TELEGRAM_ALLOWED_USERS", "12,abc"),
        ("TELEGRAM_CHAT_ID", "@chan"),
        ("ORCA_NODE_LABELS", "a b"),
        ("ORCA_LOG_FILES", "0"),
    ];
    let mut out = String::new();
    for (name, value) in cases {
        out.push_str(&invalid(&[(name, value)]));
        out.push('\n');
    }
    insta::assert_snapshot!(out);
}

#[test]
fn accepted_spellings() {
    for (value, level) in [
        ("debug", LogLevel::Debug),
        ("Info", LogLevel::Info),
        ("WARN", LogLevel::Warning),
        ("warning", LogLevel::Warning),
        ("ERROR", LogLevel::Error),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(dir.path(), &[("LOG_LEVEL", value)], &[])
                .unwrap()
                .log_level,
            level
        );
    }
    for (value, expected) in [
        ("1", true),
        ("YES", true),
        ("true", true),
        ("0", false),
        ("no", false),
        ("False", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = load(dir.path(), &[("CLAUDE_SKIP_PERMISSIONS", value)], &[]).unwrap();
        assert_eq!(c.claude_skip_permissions, expected, "{value}");
    }
    let dir = tempfile::tempdir().unwrap();
    let c = load(
        dir.path(),
        &[("ORCA_DATABASE_URL", "postgresql://h/d")],
        &[],
    )
    .unwrap();
    assert_eq!(c.database_url, "postgresql://h/d");
}

#[test]
fn secrets_are_redacted_in_errors_sources_and_debug() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".env", "ANTHROPIC_API_KEY=sk-ant-SECRET123\n");
    write(
        dir.path(),
        "config/orca.toml",
        "telegram_bot_token = \"123:TGSECRET\"\n",
    );
    let c = load(dir.path(), &[("OPENAI_API_KEY", "sk-openai-SECRET")], &[]).unwrap();
    assert_eq!(
        c.anthropic_api_key.as_ref().unwrap().expose(),
        "sk-ant-SECRET123"
    );
    assert_eq!(
        c.telegram_bot_token.as_ref().unwrap().expose(),
        "123:TGSECRET"
    );
    let debug = format!("{c:?}");
    for secret in ["sk-ant-SECRET123", "123:TGSECRET", "sk-openai-SECRET"] {
        assert!(!debug.contains(secret), "{secret} in Debug");
    }
    assert!(debug.contains("<redacted>"));
    assert_eq!(c.sources["ANTHROPIC_API_KEY"].0, "<redacted>");
    assert_eq!(c.sources["TELEGRAM_BOT_TOKEN"].0, "<redacted>");
    assert_eq!(c.sources["OPENAI_API_KEY"].0, "<redacted>");
}

#[test]
fn toml_unknown_keys_get_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/orca.toml",
        "# hi\nmax_concurent_tasks = 2\n",
    );
    let err = load(dir.path(), &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown setting 'max_concurent_tasks' (in config/orca.toml:2) (did you mean 'max_concurrent_tasks'?)"
    );
    assert_eq!(err.exit_code(), 2);
    write(dir.path(), "config/orca.toml", "Max_Concurrent_Tasks = 2\n");
    let err = load(dir.path(), &[], &[]).unwrap_err().to_string();
    assert!(err.contains("did you mean 'max_concurrent_tasks'"), "{err}");
    write(dir.path(), "config/orca.toml", "[server]\nport = 1\n");
    let err = load(dir.path(), &[], &[]).unwrap_err().to_string();
    assert!(err.starts_with("unknown setting 'server'"), "{err}");
}

#[test]
fn toml_syntax_error_never_quotes_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/orca.toml",
        "LOG_LEVEL = \"INFO\"\nTELEGRAM_BOT_TOKEN = 123:TGSECRET\n",
    );
    let err = load(dir.path(), &[], &[]).unwrap_err().to_string();
    assert!(err.starts_with("config/orca.toml:2: "), "{err}");
    assert!(!err.contains("TGSECRET"), "{err}");
}

#[test]
fn dotenv_syntax_error_names_the_line_and_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".env",
        "A=1\nANTHROPIC_API_KEY sk-ant-SECRET123\n",
    );
    let err = load(dir.path(), &[], &[]).unwrap_err().to_string();
    assert!(err.starts_with(".env:2: cannot parse"), "{err}");
    assert!(!err.contains("SECRET123"), "{err}");
}

#[test]
fn unknown_flag_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &[], &[("LOG_LEVLE", "DEBUG")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown setting 'LOG_LEVLE' (in command line) (did you mean 'LOG_LEVEL'?)"
    );
}

#[test]
fn base_cwd_must_be_inside_allowed_root() {
    let err = invalid(&[
        ("CLAUDE_BASE_CWD", "/srv/a"),
        ("CLAUDE_ALLOWED_ROOT", "/srv/b"),
    ]);
    assert_eq!(
        err,
        "invalid CLAUDE_BASE_CWD='/srv/a' (from environment): expected a folder inside CLAUDE_ALLOWED_ROOT (/srv/b); move one of them or set both"
    );
}

#[test]
fn openai_needs_a_base_url() {
    let err = invalid(&[("ORCA_LLM", "openai")]);
    assert!(
        err.starts_with("invalid ORCA_LLM='openai' (from environment): expected OPENAI_BASE_URL"),
        "{err}"
    );
}

#[test]
fn reload_lists_changed_reloadable_settings() {
    let dir = tempfile::tempdir().unwrap();
    let old = load(dir.path(), &[], &[]).unwrap();
    let new = load(
        dir.path(),
        &[
            ("MAX_CONCURRENT_TASKS", "5"),
            ("CLAUDE_MODEL", "opus"),
            ("ORCA_LEASE_SEC", "60"),
            ("LOG_LEVEL", "INFO"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        old.reloadable_changes(&new),
        vec!["MAX_CONCURRENT_TASKS", "CLAUDE_MODEL"]
    );
    assert_eq!(old.restart_required_changes(&new), vec!["ORCA_LEASE_SEC"]);
    assert!(old.reloadable_changes(&old).is_empty());
    let mut applied = old.clone();
    applied.apply_reloadable(&new);
    assert_eq!(applied.max_concurrent_tasks, 5);
    assert_eq!(applied.claude_model.as_deref(), Some("opus"));
    assert_eq!(applied.lease_sec, 30);
    assert_eq!(
        applied.sources["MAX_CONCURRENT_TASKS"].1,
        Source::Environment
    );
    assert!(applied.reloadable_changes(&new).is_empty());
}

#[test]
fn the_bots_allow_list_and_chat_reload_and_its_token_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = load(
        dir.path(),
        &[
            ("TELEGRAM_BOT_TOKEN", "1:old"),
            ("TELEGRAM_ALLOWED_USERS", "1"),
        ],
        &[],
    )
    .unwrap();
    let new = load(
        dir.path(),
        &[
            ("TELEGRAM_BOT_TOKEN", "1:new"),
            ("TELEGRAM_ALLOWED_USERS", "1,2"),
            ("TELEGRAM_CHAT_ID", "-100"),
            ("TELEGRAM_API_URL", "http://127.0.0.1:9"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        old.reloadable_changes(&new),
        vec!["TELEGRAM_ALLOWED_USERS", "TELEGRAM_CHAT_ID"]
    );
    assert_eq!(
        old.restart_required_changes(&new),
        vec!["TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL"]
    );
    let mut applied = old.clone();
    applied.apply_reloadable(&new);
    assert_eq!(applied.telegram_allowed_users, vec![1, 2]);
    assert_eq!(applied.telegram_chat_id, Some(-100));
    assert_eq!(
        applied
            .telegram_bot_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        Some("1:old".to_owned())
    );
    assert_eq!(applied.telegram_api_url, old.telegram_api_url);
}

#[test]
fn defaults_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".env", "MAX_CONCURRENT_TASKS=9\n");
    assert_eq!(
        Config::defaults(dir.path()).unwrap().max_concurrent_tasks,
        3
    );
}

#[test]
fn hostname_is_not_empty() {
    assert!(!hostname().is_empty());
}
