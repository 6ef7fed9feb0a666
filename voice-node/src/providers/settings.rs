//! Which cloud providers a call uses.
//!
//! Per kind (`stt`, `tts`, `llm`): the tenant's `tenant_provider_settings` row when there is one
//! (its sealed key opened with the node's seal key, [`crate::api::seal`]); otherwise the
//! node's environment (`CALLGATE_{STT,TTS,LLM}_PROVIDER`, `_BASE_URL`, `_API_KEY`, `_MODEL`,
//! `CALLGATE_TTS_VOICE`, `CALLGATE_STT_ENDPOINTING_MS`); otherwise — or when the choice is
//! `offline`, or cannot work (no key) — the offline models, exactly as without this module.
//!
//! The tenant's rows are read once per call ([`ProviderSource::tenant_providers`], bounded):
//! the Realtime agent reads them to decide, and hands them to the cascaded agent it falls back to.
//!
//! A call may instead run speech to speech on OpenAI Realtime
//! ([`ProviderSource::realtime_for_call`]): when the tenant's `llm` row says
//! `settings.realtime = true` (its base URL, model and key are then the Realtime endpoint's), or,
//! for tenants without an `llm` row, when `CALLGATE_REALTIME_URL` or `CALLGATE_REALTIME_API_KEY`
//! is set. No new provider kind is needed: the Realtime model replaces the language model (and
//! with it STT and TTS), and the dashboard's `PUT /api/providers/llm` already stores the flag.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::llm_openai::OpenAiChat;
use super::realtime_openai::client::{DEFAULT_MODEL, DEFAULT_URL, DEFAULT_VOICE, RealtimeConfig};
use super::stt_deepgram::DeepgramStt;
use super::tts_elevenlabs::ElevenLabsTts;
use super::tts_openai::OpenAiTts;
use super::{ProviderError, RetryPolicy};
use crate::api::seal::SealKey;

/// How long a call start waits for the tenant's provider settings before using the node's.
const TENANT_LOOKUP_LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

/// One kind's configured provider, before it is built.
#[derive(Clone, Default)]
pub struct ProviderChoice {
    /// `offline`, `deepgram`, `elevenlabs`, `openai`.
    pub provider: String,
    /// Overrides the provider's public endpoint (Groq, a local llama.cpp, a test server).
    pub base_url: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// The plaintext key (only in memory).
    pub api_key: Option<String>,
    /// Provider specific: `voice` (TTS), `endpointing_ms` (STT).
    pub settings: Value,
}

impl std::fmt::Debug for ProviderChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderChoice")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ProviderChoice {
    fn setting_str(&self, key: &str) -> Option<String> {
        self.settings
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn base(&self, default: &str) -> String {
        self.base_url.clone().unwrap_or_else(|| default.to_owned())
    }

    fn model(&self, default: &str) -> String {
        self.model.clone().unwrap_or_else(|| default.to_owned())
    }

    fn required_key(&self, kind: &str) -> Result<String, ProviderError> {
        self.api_key.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
            ProviderError::Config(format!(
                "{kind} provider `{}` needs an API key (tenant settings or CALLGATE_{}_API_KEY)",
                self.provider,
                kind.to_uppercase()
            ))
        })
    }
}

/// A cloud speech-to-text provider.
#[derive(Debug, Clone)]
pub enum SpeechToText {
    /// Deepgram live streaming.
    Deepgram(DeepgramStt),
}

impl SpeechToText {
    /// The provider's name (event rows, logs).
    pub fn name(&self) -> &'static str {
        match self {
            SpeechToText::Deepgram(_) => "deepgram",
        }
    }

    /// The transcript of one utterance of 8 kHz mu-law.
    pub async fn transcribe(
        &self,
        mulaw: &[u8],
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<String, ProviderError> {
        match self {
            SpeechToText::Deepgram(d) => d.transcribe(mulaw, on_retry).await,
        }
    }
}

/// A cloud text-to-speech provider.
#[derive(Debug, Clone)]
pub enum TextToSpeech {
    /// ElevenLabs, `ulaw_8000`.
    ElevenLabs(ElevenLabsTts),
    /// OpenAI, 24 kHz PCM resampled.
    OpenAi(OpenAiTts),
}

impl TextToSpeech {
    /// The provider's name (event rows, logs).
    pub fn name(&self) -> &'static str {
        match self {
            TextToSpeech::ElevenLabs(_) => "elevenlabs",
            TextToSpeech::OpenAi(_) => "openai",
        }
    }

    /// `text` as 8 kHz mu-law.
    pub async fn synthesize(
        &self,
        text: &str,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<Vec<u8>, ProviderError> {
        match self {
            TextToSpeech::ElevenLabs(t) => t.synthesize(text, on_retry).await,
            TextToSpeech::OpenAi(t) => t.synthesize(text, on_retry).await,
        }
    }
}

/// The cloud providers of one call; `None` means the offline model for that stage.
#[derive(Debug, Clone, Default)]
pub struct CallProviders {
    /// Replaces Whisper.
    pub stt: Option<SpeechToText>,
    /// Replaces Piper / espeak-ng.
    pub tts: Option<TextToSpeech>,
    /// Screens callers and writes the receptionist's answers.
    pub llm: Option<OpenAiChat>,
}

impl CallProviders {
    /// Whether every stage is offline.
    pub fn is_offline(&self) -> bool {
        self.stt.is_none() && self.tts.is_none() && self.llm.is_none()
    }
}

/// Where the node finds each call's providers.
#[derive(Debug, Clone)]
pub struct ProviderSource {
    /// Shared by every provider of every call (connection pooling).
    client: reqwest::Client,
    /// The environment's choice per kind: stt, tts, llm.
    env: [Option<ProviderChoice>; 3],
    /// The environment's Realtime endpoint (`CALLGATE_REALTIME_*`); `base_url` is the whole
    /// endpoint URL.
    realtime_env: Option<ProviderChoice>,
    /// Opens tenants' sealed keys.
    seal: SealKey,
    /// Timeouts and retries for every provider built here.
    policy: RetryPolicy,
}

const KINDS: [&str; 3] = ["stt", "tts", "llm"];

/// A tenant's `tenant_provider_settings` rows as a call's start read them (keys opened), per
/// kind: stt, tts, llm. All `None` when the tenant has none, or they could not be read in time
/// (the node's defaults apply). Read once per call: the Realtime agent hands what it read to the
/// cascaded agent it falls back to.
#[derive(Debug, Clone, Default)]
pub struct TenantProviders([Option<ProviderChoice>; 3]);

/// A `tenant_provider_settings` row.
#[derive(sqlx::FromRow)]
struct ProviderRow {
    kind: String,
    provider: String,
    base_url: Option<String>,
    model: Option<String>,
    settings: Value,
    api_key_encrypted: Option<Vec<u8>>,
}

impl ProviderSource {
    /// From the process environment (see the module docs; the README lists the variables).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// No environment defaults: calls use their tenant's rows, if any, else the offline models.
    pub fn offline() -> Self {
        Self::from_lookup(|_| None)
    }

    /// From `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let env = KINDS.map(|kind| {
            let up = kind.to_uppercase();
            let provider = get(&format!("CALLGATE_{up}_PROVIDER"))?;
            let mut settings = serde_json::Map::new();
            if let Some(voice) = get("CALLGATE_TTS_VOICE").filter(|_| kind == "tts") {
                settings.insert("voice".into(), voice.into());
            }
            if let Some(ms) = get("CALLGATE_STT_ENDPOINTING_MS").filter(|_| kind == "stt") {
                settings.insert("endpointing_ms".into(), ms.into());
            }
            Some(ProviderChoice {
                provider,
                base_url: get(&format!("CALLGATE_{up}_BASE_URL")),
                model: get(&format!("CALLGATE_{up}_MODEL")),
                api_key: get(&format!("CALLGATE_{up}_API_KEY")),
                settings: Value::Object(settings),
            })
        });
        let realtime_url = get("CALLGATE_REALTIME_URL");
        let realtime_key = get("CALLGATE_REALTIME_API_KEY");
        let realtime_env = (realtime_url.is_some() || realtime_key.is_some()).then(|| {
            let mut settings = serde_json::Map::new();
            if let Some(voice) = get("CALLGATE_REALTIME_VOICE") {
                settings.insert("voice".into(), voice.into());
            }
            ProviderChoice {
                provider: "openai".into(),
                base_url: realtime_url,
                model: get("CALLGATE_REALTIME_MODEL"),
                api_key: realtime_key,
                settings: Value::Object(settings),
            }
        });
        let secret = get("EDGE_SHARED_SECRET").unwrap_or_default();
        let mut policy = RetryPolicy::default();
        if let Some(ms) = get("CALLGATE_PROVIDER_FIRST_BYTE_MS").and_then(|v| v.parse().ok()) {
            policy.first_byte = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = get("CALLGATE_PROVIDER_TOTAL_MS").and_then(|v| v.parse().ok()) {
            policy.total = std::time::Duration::from_millis(ms);
        }
        ProviderSource {
            client: super::http_client(),
            env,
            realtime_env,
            seal: SealKey::from_config(get("CALLGATE_SEAL_KEY").as_deref(), secret.as_bytes()),
            policy,
        }
    }

    /// Replaces the seal key (the node's [`SealKey::from_config`]).
    pub fn with_seal(mut self, seal: SealKey) -> Self {
        self.seal = seal;
        self
    }

    /// Replaces the timeouts and retries.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether no environment default is set (tenants may still have rows).
    pub fn env_is_offline(&self) -> bool {
        self.env.iter().all(|c| {
            c.as_ref()
                .is_none_or(|c| c.provider.eq_ignore_ascii_case("offline"))
        })
    }

    /// The rows of `tenant` for one call, bounded by [`TENANT_LOOKUP_LIMIT`]: every call start
    /// reads this, and during a database outage the call must start on the node's defaults
    /// rather than wait out the pool's acquire timeout. Never fails: an error is logged and
    /// reads as no rows.
    pub async fn tenant_providers(
        &self,
        db: Option<&PgPool>,
        tenant: Option<Uuid>,
    ) -> TenantProviders {
        let mut choices = TenantProviders::default();
        let (Some(db), Some(tenant)) = (db, tenant) else {
            return choices;
        };
        let rows: Result<Vec<ProviderRow>, sqlx::Error> = tokio::time::timeout(
            TENANT_LOOKUP_LIMIT,
            sqlx::query_as(
                "SELECT kind, provider, base_url, model, settings, api_key_encrypted
                   FROM tenant_provider_settings WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_all(db),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(
                    %tenant,
                    error = %err,
                    "cannot read the tenant's provider settings; using the node's defaults"
                );
                return choices;
            }
        };
        for row in rows {
            let Some(i) = KINDS.iter().position(|k| *k == row.kind) else {
                continue;
            };
            let api_key = row.api_key_encrypted.and_then(|sealed| {
                self.seal
                    .open(tenant, &row.kind, &sealed)
                    .inspect_err(|_| {
                        tracing::warn!(
                            %tenant,
                            kind = row.kind,
                            "the tenant's sealed API key does not open with this node's seal key"
                        );
                    })
                    .ok()
            });
            choices.0[i] = Some(ProviderChoice {
                provider: row.provider,
                base_url: row.base_url,
                model: row.model,
                api_key,
                settings: row.settings,
            });
        }
        choices
    }

    /// The cascaded providers of a call whose tenant has `tenant`'s rows (else the node's
    /// environment). Never fails: a choice that cannot be used is logged and that stage stays
    /// offline.
    pub fn for_call(&self, tenant: &TenantProviders) -> CallProviders {
        let [stt, tts, llm] =
            std::array::from_fn(|i| tenant.0[i].clone().or_else(|| self.env[i].clone()));
        CallProviders {
            stt: stt.and_then(|c| report(self.build_stt(&c), "stt", &c)),
            tts: tts.and_then(|c| report(self.build_tts(&c), "tts", &c)),
            llm: llm.and_then(|c| report(self.build_llm(&c), "llm", &c)),
        }
    }

    /// The Realtime session a call whose tenant has `tenant`'s rows runs on instead of the
    /// cascaded pipeline, if any (see the module docs). A tenant's `llm` row decides for the
    /// tenant: without the flag the call is cascaded even when the environment names a
    /// Realtime endpoint.
    pub fn realtime_for_call(&self, tenant: &TenantProviders) -> Option<RealtimeConfig> {
        let c = match &tenant.0[2] {
            Some(row) => {
                let wanted = row.settings.get("realtime").and_then(Value::as_bool);
                (wanted == Some(true)).then(|| ProviderChoice {
                    // The row's base is the API's (`…/v1`); the endpoint is under it.
                    base_url: Some(super::join_url(
                        &row.base("https://api.openai.com/v1"),
                        "/realtime",
                    )),
                    ..row.clone()
                })?
            }
            None => self.realtime_env.clone()?,
        };
        let url = c.base(DEFAULT_URL);
        let key = if url.contains("api.openai.com") {
            match c.required_key("realtime") {
                Ok(key) => Some(key),
                Err(err) => {
                    tracing::warn!(error = %err, "Realtime unusable; the call stays cascaded");
                    return None;
                }
            }
        } else {
            c.api_key.clone()
        };
        let voice = c
            .setting_str("voice")
            .unwrap_or_else(|| DEFAULT_VOICE.to_owned());
        Some(
            RealtimeConfig::new(&url, key, &c.model(DEFAULT_MODEL), &voice)
                .with_policy(self.policy),
        )
    }

    fn build_stt(&self, c: &ProviderChoice) -> Result<Option<SpeechToText>, ProviderError> {
        match c.provider.as_str() {
            "offline" => Ok(None),
            "deepgram" => {
                let endpointing = c
                    .settings
                    .get("endpointing_ms")
                    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                    .unwrap_or(300) as u32;
                let mut d = DeepgramStt::new(
                    &c.base("wss://api.deepgram.com"),
                    &c.required_key("stt")?,
                    &c.model("nova-3"),
                    endpointing,
                );
                d.policy = self.policy;
                Ok(Some(SpeechToText::Deepgram(d)))
            }
            other => Err(unsupported("stt", other)),
        }
    }

    fn build_tts(&self, c: &ProviderChoice) -> Result<Option<TextToSpeech>, ProviderError> {
        match c.provider.as_str() {
            "offline" => Ok(None),
            "elevenlabs" => {
                let mut t = ElevenLabsTts::new(
                    self.client.clone(),
                    &c.base("https://api.elevenlabs.io"),
                    &c.required_key("tts")?,
                    // "Rachel", one of ElevenLabs' default voices.
                    &c.setting_str("voice")
                        .unwrap_or_else(|| "21m00Tcm4TlvDq8ikWAM".into()),
                    &c.model("eleven_flash_v2_5"),
                );
                t.policy = self.policy;
                Ok(Some(TextToSpeech::ElevenLabs(t)))
            }
            "openai" => {
                let mut t = OpenAiTts::new(
                    self.client.clone(),
                    &c.base("https://api.openai.com/v1"),
                    c.api_key.clone(),
                    &c.model("gpt-4o-mini-tts"),
                    &c.setting_str("voice").unwrap_or_else(|| "alloy".into()),
                );
                t.policy = self.policy;
                Ok(Some(TextToSpeech::OpenAi(t)))
            }
            other => Err(unsupported("tts", other)),
        }
    }

    fn build_llm(&self, c: &ProviderChoice) -> Result<Option<OpenAiChat>, ProviderError> {
        match c.provider.as_str() {
            "offline" => Ok(None),
            "openai" => {
                let base = c.base("https://api.openai.com/v1");
                // The public endpoint needs a key; local servers (llama.cpp, vLLM) usually not.
                let key = if base.contains("api.openai.com") {
                    Some(c.required_key("llm")?)
                } else {
                    c.api_key.clone()
                };
                let mut chat =
                    OpenAiChat::new(self.client.clone(), &base, key, &c.model("gpt-4o-mini"));
                chat.policy = self.policy;
                Ok(Some(chat))
            }
            other => Err(unsupported("llm", other)),
        }
    }
}

fn unsupported(kind: &str, provider: &str) -> ProviderError {
    ProviderError::Config(format!(
        "{kind} provider `{provider}` is not supported by this node"
    ))
}

/// The built provider, or `None` with a warning saying why the stage stays offline.
fn report<T>(built: Result<Option<T>, ProviderError>, kind: &str, c: &ProviderChoice) -> Option<T> {
    built
        .inspect_err(|err| {
            tracing::warn!(kind, provider = %c.provider, error = %err, "provider unusable; this stage stays offline");
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn source(vars: &[(&str, &str)]) -> ProviderSource {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProviderSource::from_lookup(|k| map.get(k).cloned())
    }

    #[tokio::test]
    async fn no_environment_means_offline() {
        let s = source(&[]);
        assert!(s.env_is_offline());
        assert!(s.for_call(&TenantProviders::default()).is_offline());
    }

    #[tokio::test]
    async fn environment_chooses_each_stage() {
        let s = source(&[
            ("CALLGATE_STT_PROVIDER", "deepgram"),
            ("CALLGATE_STT_API_KEY", "dg"),
            ("CALLGATE_TTS_PROVIDER", "elevenlabs"),
            // no TTS key: that stage stays offline
            ("CALLGATE_LLM_PROVIDER", "openai"),
            ("CALLGATE_LLM_BASE_URL", "http://127.0.0.1:8080/v1"),
            ("CALLGATE_LLM_MODEL", "qwen2.5-0.5b"),
        ]);
        let p = s.for_call(&TenantProviders::default());
        assert_eq!(p.stt.as_ref().map(SpeechToText::name), Some("deepgram"));
        assert!(p.tts.is_none(), "ElevenLabs without a key cannot work");
        assert_eq!(p.llm.as_ref().map(OpenAiChat::model), Some("qwen2.5-0.5b"));
    }

    #[tokio::test]
    async fn realtime_comes_from_the_environment_and_needs_a_key_for_openai() {
        let none = TenantProviders::default();
        assert!(source(&[]).realtime_for_call(&none).is_none());
        let local = source(&[("CALLGATE_REALTIME_URL", "http://127.0.0.1:9/v1/realtime")])
            .realtime_for_call(&none)
            .expect("a local endpoint needs no key");
        assert_eq!(
            local.endpoint(),
            "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"
        );
        let keyless = source(&[("CALLGATE_REALTIME_URL", "wss://api.openai.com/v1/realtime")]);
        assert!(keyless.realtime_for_call(&none).is_none());
        let public = source(&[("CALLGATE_REALTIME_API_KEY", "sk-x")])
            .realtime_for_call(&none)
            .expect("the public endpoint with a key");
        assert!(
            public
                .endpoint()
                .starts_with("wss://api.openai.com/v1/realtime?model=")
        );
    }

    #[test]
    fn debug_output_hides_keys() {
        let c = ProviderChoice {
            provider: "openai".into(),
            api_key: Some("sk-secret".into()),
            ..ProviderChoice::default()
        };
        assert!(!format!("{c:?}").contains("sk-secret"));
    }
}
