//! Which LLM Orca uses (ORCA_LLM=auto|off|ollama|openai) and why, said in `doctor`,
//! `status` and at start-up; and the LLM with its gate, shared by routing and summaries.

use std::time::Duration;

use serde_json::Value;

use super::client::{has_model, Backend, LlmClient, LlmError};
use super::gate::Gate;
use crate::config::{redact_url_password, Config, LlmMode};

/// How long `auto` waits for Ollama's `/api/tags`.
pub const AUTO_PROBE: Duration = Duration::from_millis(500);

/// What ORCA_LLM and the servers make of mediation.
pub enum Choice {
    /// The rules decide; `reason` says why.
    Rules {
        reason: String,
    },
    Llm {
        client: LlmClient,
        reason: String,
    },
}

impl Choice {
    pub fn reason(&self) -> &str {
        match self {
            Choice::Rules { reason } | Choice::Llm { reason, .. } => reason,
        }
    }
}

/// The model asked: ORCA_LLM_MODEL, else OLLAMA_MODEL.
pub fn model_of(cfg: &Config) -> String {
    cfg.llm_model
        .clone()
        .unwrap_or_else(|| cfg.ollama_model.clone())
}

/// The client ORCA_LLM names (None for `off`; `auto` means Ollama, to be probed).
pub fn client_for(cfg: &Config) -> Result<Option<LlmClient>, LlmError> {
    let timeout = Duration::from_secs(cfg.llm_timeout_sec);
    let backend = match cfg.llm {
        LlmMode::Off => return Ok(None),
        LlmMode::Auto | LlmMode::Ollama => Backend::Ollama {
            base: cfg.ollama_host.clone(),
            model: model_of(cfg),
        },
        LlmMode::OpenAi => Backend::OpenAi {
            base: cfg.openai_base_url.clone().unwrap_or_default(),
            model: model_of(cfg),
            key: cfg.openai_api_key.clone(),
        },
    };
    LlmClient::new(backend, timeout).map(Some)
}

/// Decides per ORCA_LLM: `auto` uses Ollama when `/api/tags` answers within 500 ms and
/// lists the model.
pub async fn choose(cfg: &Config) -> Choice {
    let client = match client_for(cfg) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Choice::Rules {
                reason: "ORCA_LLM=off: rule-based routing and summaries".into(),
            }
        }
        Err(e) => {
            return Choice::Rules {
                reason: format!("cannot set up the LLM client ({e}): rules decide"),
            }
        }
    };
    let host = redact_url_password(&cfg.ollama_host);
    let model = client.model().to_owned();
    match cfg.llm {
        LlmMode::Auto => match client.models(Some(AUTO_PROBE)).await {
            Ok(have) if has_model(&have, &model) => Choice::Llm {
                reason: format!("ORCA_LLM=auto: Ollama at {host} answered and lists {model}"),
                client,
            },
            Ok(_) => Choice::Rules {
                reason: format!("ORCA_LLM=auto: Ollama at {host} answered but has no model {model} (fix: `ollama pull {model}`); rule-based"),
            },
            Err(e) => Choice::Rules {
                reason: format!("ORCA_LLM=auto: Ollama not reachable at {host} within {} ms ({e}); rule-based", AUTO_PROBE.as_millis()),
            },
        },
        LlmMode::Ollama => {
            // Used in any case (the server may come up, the model be pulled later); the
            // start-up line says what is wrong now.
            let mut reason = format!("ORCA_LLM=ollama: {}", client.describe());
            match client.models(Some(AUTO_PROBE)).await {
                Ok(have) if has_model(&have, &model) => {}
                Ok(_) => reason.push_str(&format!(
                    "; warning: the model is not pulled (fix: `ollama pull {model}`); the rules decide until it is"
                )),
                Err(e) => reason.push_str(&format!(
                    "; warning: not reachable now ({e}); the rules decide until it answers"
                )),
            }
            Choice::Llm { reason, client }
        }
        _ => Choice::Llm {
            reason: format!("ORCA_LLM={}: {}", cfg.llm.as_str(), client.describe()),
            client,
        },
    }
}

/// The LLM in use, behind its gate.
pub struct Llm {
    pub client: LlmClient,
    pub gate: Gate,
    /// Why this LLM (from [`choose`]).
    pub reason: String,
}

impl Llm {
    pub fn new(client: LlmClient, reason: String, cfg: &Config) -> Llm {
        Llm {
            client,
            gate: Gate::new(
                cfg.llm_concurrency,
                Duration::from_secs(cfg.llm_timeout_sec),
            ),
            reason,
        }
    }

    /// One schema-constrained question through the gate; the answer as `check` reads it
    /// (a wrong shape is retried like a malformed answer).
    pub async fn ask<T>(
        &self,
        system: &str,
        user: &str,
        name: &str,
        schema: &Value,
        check: impl Fn(Value) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let check = &check;
        self.gate
            .run(|| async move {
                let v = self.client.chat_json(system, user, name, schema).await?;
                check(v)
            })
            .await
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        self.client.model()
    }
}
