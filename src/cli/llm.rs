//! `orca route "text"` (what routing makes of a sentence) and the LLM checks of `orca doctor`
//! (reachable, model present, a schema-constrained test call and its latency).

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::config::{Config, LlmMode};
use crate::mediate::client::{elapsed_ms, has_model, Backend, LlmError};
use crate::mediate::llm::{choose, client_for, Choice, Llm};
use crate::mediate::routing;
use crate::mediate::service::{check_folder, route_task};
use crate::task::Task;

/// What `orca route` prints.
#[derive(Debug, Serialize)]
pub struct RouteView {
    pub method: &'static str,
    pub model: Option<String>,
    #[serde(rename = "type")]
    pub task_type: String,
    pub priority: String,
    pub folder: Option<String>,
    pub title: Option<String>,
    pub prompt: String,
    pub reason: String,
    pub latency_ms: Option<u64>,
    /// Why this LLM or the rules.
    pub llm: String,
    /// The LLM's failure the rules stepped in for.
    pub fallback: Option<String>,
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// `orca route "text" [--json]`.
pub fn route(
    root: &Path,
    flags: &[(String, String)],
    text: &str,
    json: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let cfg = match Config::load(root, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(e.exit_code());
        }
    };
    if text.trim().is_empty() {
        eprintln!("error: nothing to route\nhint: orca route \"fix the login bug in /backend, it is urgent\"");
        return Ok(2);
    }
    let rt = runtime()?;
    let view = rt.block_on(async {
        let choice = choose(&cfg).await;
        let why = choice.reason().to_owned();
        let llm = match choice {
            Choice::Llm { client, reason } => Some(Llm::new(client, reason, &cfg)),
            Choice::Rules { .. } => None,
        };
        let mut task = Task::new("route", text);
        let need = routing::need(&task, false);
        let file = cfg.root.join("tasks").join("route.task.md");
        let check = |t: &Task| check_folder(&cfg, &file, t);
        let (r, failure) = route_task(llm.as_ref(), &mut task, need, check).await;
        RouteView {
            method: match r.method {
                crate::artifacts::result::Method::Llm => "llm",
                crate::artifacts::result::Method::Rules => "rules",
            },
            model: r.model,
            task_type: task
                .task_type
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            priority: task.priority.as_str().to_owned(),
            folder: task.working_dir.clone(),
            title: task.title.clone(),
            prompt: task.prompt.clone(),
            reason: r.reason,
            latency_ms: r.latency_ms,
            llm: why,
            fallback: failure.map(|e| format!("{}: {e}", e.kind())),
        }
    });
    let redactor = crate::config::Redactor::for_daemon(&cfg);
    if json {
        let mut v = serde_json::to_value(&view).map_err(io::Error::other)?;
        redactor.redact_json(&mut v);
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).map_err(io::Error::other)?
        )?;
    } else {
        let model = view
            .model
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let latency = view
            .latency_ms
            .map(|l| format!(", {l} ms"))
            .unwrap_or_default();
        let text = format!(
            "method    {}{model}{latency}\ntype      {}\npriority  {}\nfolder    {}\ntitle     {}\nprompt    {}\nreason    {}\nllm       {}\n",
            view.method,
            view.task_type,
            view.priority,
            view.folder.as_deref().unwrap_or("(default)"),
            view.title.as_deref().unwrap_or("(none)"),
            view.prompt,
            view.reason,
            view.llm,
        );
        write!(out, "{}", redactor.redact(&text))?;
    }
    Ok(0)
}

/// One doctor line: ok / off / warn (with a fix).
pub enum Line {
    Ok(String),
    Off(String),
    Warn(String, String),
}

/// The LLM section of `orca doctor`.
pub fn doctor_lines(cfg: &Config) -> Vec<Line> {
    let Ok(rt) = runtime() else {
        return vec![Line::Warn(
            "cannot start a runtime to check the LLM".into(),
            "try again".into(),
        )];
    };
    rt.block_on(doctor_async(cfg))
}

async fn doctor_async(cfg: &Config) -> Vec<Line> {
    let mut lines = Vec::new();
    if cfg.llm == LlmMode::Off {
        lines.push(Line::Off(
            "ORCA_LLM=off: rule-based routing and summaries".into(),
        ));
        return lines;
    }
    let client = match client_for(cfg) {
        Ok(Some(c)) => c,
        Ok(None) => return lines,
        Err(e) => {
            lines.push(Line::Warn(
                format!("cannot set up the LLM client: {e}"),
                "check OLLAMA_HOST / OPENAI_BASE_URL".into(),
            ));
            return lines;
        }
    };
    let model = client.model().to_owned();
    let (kind, url) = match client.backend() {
        Backend::Ollama { base, .. } => ("Ollama", crate::config::redact_url_password(base)),
        Backend::OpenAi { base, .. } => (
            "OpenAI-compatible server",
            crate::config::redact_url_password(base),
        ),
    };
    let where_ = format!("{kind} at {url}");
    // Reachable, and the model there.
    let probe = if cfg.llm == LlmMode::Auto {
        Some(crate::mediate::llm::AUTO_PROBE)
    } else {
        None
    };
    let models = client.models(probe).await;
    let not_there = |e: &LlmError| {
        format!(
            "ORCA_LLM={}: {kind} not reachable at {url} ({e}); rule-based fallback",
            cfg.llm.as_str()
        )
    };
    match (&models, cfg.llm) {
        (Err(e), LlmMode::Auto) => {
            lines.push(Line::Off(not_there(e)));
            return lines;
        }
        (Err(e), _) => {
            let fix = match cfg.llm {
                LlmMode::OpenAi => "start the server, check OPENAI_BASE_URL, or set ORCA_LLM=off",
                _ => "start it with `ollama serve`, set OLLAMA_HOST, or set ORCA_LLM=off",
            };
            lines.push(Line::Warn(not_there(e), fix.into()));
            return lines;
        }
        (Ok(have), _) => {
            let version = client.version().await.ok().filter(|v| !v.is_empty());
            let v = version
                .map(|v| format!(" (version {v})"))
                .unwrap_or_default();
            lines.push(Line::Ok(format!("{where_} reachable{v}")));
            let listed = has_model(have, &model);
            let is_ollama = matches!(client.backend(), Backend::Ollama { .. });
            if listed {
                lines.push(Line::Ok(format!("model {model} present")));
            } else if is_ollama {
                let text = format!("model {model} is not pulled");
                let fix = format!("ollama pull {model}");
                if cfg.llm == LlmMode::Auto {
                    lines.push(Line::Off(format!(
                        "ORCA_LLM=auto: {text} (fix: `{fix}`); rule-based"
                    )));
                } else {
                    lines.push(Line::Warn(format!("{text}; Orca falls back to rules"), fix));
                }
                return lines;
            } else {
                lines.push(Line::Warn(
                    format!("model {model} is not in the server's /models list"),
                    "set ORCA_LLM_MODEL to a model the server serves".into(),
                ));
            }
        }
    }
    // A schema-constrained test call.
    let llm = Llm::new(client, String::new(), cfg);
    let start = Instant::now();
    let task = Task::new("doctor", "Fix the crash in the login page, it is urgent");
    match routing::ask(&llm, &task).await {
        Ok(r) => {
            let mode = llm
                .client
                .json_mode()
                .filter(|_| cfg.llm == LlmMode::OpenAi)
                .map(|m| format!("; asked with {}", m.as_str()))
                .unwrap_or_default();
            lines.push(Line::Ok(format!(
                "a schema-constrained test call answered in {} ms (type {}, priority {}){mode}",
                elapsed_ms(start),
                r.task_type,
                r.priority
            )));
        }
        Err(e) => lines.push(Line::Warn(
            format!(
                "the test call failed ({}: {e}); Orca falls back to rules",
                e.kind()
            ),
            "check the model and the server's log, or set ORCA_LLM=off".into(),
        )),
    }
    lines
}
