//! The offline AI pipeline (issue 5): models that run on the node's CPU with no API key and no
//! network, and the agent that talks with them.
//!
//! - [`models`]: where the model files are (`cargo xtask models` puts them there).
//! - [`pool`]: the bounded inference pool; model work never runs on the async runtime.
//! - [`embed`]: all-MiniLM-L6-v2 sentence embeddings (candle).
//! - [`screening`]: the screening classifier (nearest labelled examples + rules).
//! - [`kb`]: FAQ answers from the tenant's knowledge base by similarity, with a threshold.
//! - [`audio`]: 8 kHz mu-law → 16 kHz float for Whisper (a band-limited resampler).
//! - [`stt`]: Whisper tiny.en (candle) on VAD-cut utterances.
//! - [`tts_piper`]: the Piper voice (ONNX Runtime loaded at run time), when installed.
//! - [`vad_silero`]: Silero VAD on the caller's audio, when installed (energy VAD otherwise).
//! - [`onnx`]: the process's one ONNX Runtime environment, shared by Piper and Silero.
//! - [`flow`]: the deterministic dialogue of each call mode.
//! - [`agent`]: the [`crate::agent::CallAgent`] that ties them together, and its factory.
//!
//! Models load once per node ([`AiModels`], shared as `Arc`) and serve every call.

pub mod agent;
pub mod audio;
pub mod embed;
pub mod flow;
pub mod kb;
pub mod models;
pub mod onnx;
pub mod pool;
pub mod screening;
pub mod stt;
pub mod tts_piper;
pub mod vad_silero;

use std::sync::Arc;
use std::time::Instant;

use embed::Embedder;
use models::ModelPaths;
use pool::InferencePool;
use screening::ScreeningClassifier;
use stt::Transcriber;

/// Every loaded model, shared by all calls of the node.
#[derive(Debug)]
pub struct AiModels {
    /// Sentence embeddings.
    pub embedder: Embedder,
    /// The screening classifier with the built-in examples, embedded at load.
    pub classifier: ScreeningClassifier,
    /// Speech to text.
    pub transcriber: Transcriber,
    /// The Piper voice, if installed and loadable (replies use espeak-ng otherwise).
    pub piper: Option<tts_piper::PiperVoice>,
    /// Silero VAD, if installed and loadable (calls use the energy VAD otherwise).
    pub silero: Option<Arc<vad_silero::SileroModel>>,
}

/// Loading a model failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file is missing.
    #[error(transparent)]
    Missing(#[from] models::MissingModels),
    /// Embedder.
    #[error("MiniLM: {0}")]
    Embed(#[from] embed::EmbedError),
    /// Whisper.
    #[error("Whisper: {0}")]
    Stt(#[from] stt::SttError),
    /// The loading job.
    #[error(transparent)]
    Pool(#[from] pool::PoolError),
}

impl AiModels {
    /// Loads every model (blocking: ~1 s; call from the pool or at start-up).
    pub fn load(paths: &ModelPaths) -> Result<Self, LoadError> {
        let t0 = Instant::now();
        let embedder = Embedder::load(&paths.minilm)?;
        let classifier = ScreeningClassifier::builtin(&embedder)?;
        let transcriber = Transcriber::load(&paths.whisper)?;
        let piper = paths.piper.as_ref().and_then(|p| {
            tts_piper::PiperVoice::load(&p.onnxruntime, &p.model, &p.config)
                .inspect_err(|err| {
                    tracing::warn!(error = %err, "cannot load the Piper voice; replies use espeak-ng");
                })
                .ok()
        });
        // Silero runs on `cores - 1` batch threads (at least one), leaving a core to the
        // runtime that carries the calls' audio.
        let sessions = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let silero = paths.silero.as_ref().and_then(|p| {
            vad_silero::SileroModel::load(&p.onnxruntime, &p.model, sessions)
                .inspect_err(|err| {
                    tracing::warn!(error = %err, "cannot load Silero VAD; calls use the energy VAD");
                })
                .ok()
                .map(Arc::new)
        });
        tracing::info!(
            ms = t0.elapsed().as_millis() as u64,
            examples = classifier.len(),
            piper = piper.is_some(),
            vad = if silero.is_some() { "silero" } else { "energy" },
            "offline AI models loaded"
        );
        Ok(AiModels {
            embedder,
            classifier,
            transcriber,
            piper,
            silero,
        })
    }

    /// Loads the models the environment points at, off the runtime.
    pub async fn load_from_env(pool: &InferencePool) -> Result<Arc<Self>, LoadError> {
        let paths = ModelPaths::from_env()?;
        Ok(Arc::new(pool.run(move || AiModels::load(&paths)).await??))
    }
}
