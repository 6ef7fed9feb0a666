//! Silero VAD on the caller's 8 kHz audio: a small LSTM network that tells speech from noise
//! far better than an energy threshold (line hiss, music on hold, a TV in the room).
//!
//! - The model is `silero_vad.onnx` from the PyPI `silero-vad` wheel (`cargo xtask models`), run
//!   with the process's ONNX Runtime ([`super::onnx`]). It takes 256 new samples (32 ms at
//!   8 kHz) after 32 samples of context, an LSTM state `[2,1,128]` and the rate, and returns the
//!   speech probability and the next state.
//! - Per call ([`SileroVad`]): the state, the context and the samples not yet forming a window.
//!   Twilio's 20 ms frames are decoded to f32 and re-chunked into 256-sample windows; a frame
//!   takes the probability of the latest window.
//! - Start and stop use the energy VAD's [`Hangover`] (same frame counts), with hysteresis:
//!   a frame is voiced at ≥ [`SileroConfig::threshold`] outside speech and at ≥
//!   [`SileroConfig::neg_threshold`] inside it, as Silero's own `get_speech_timestamps` does.
//! - The network loads once per node ([`SileroModel`], shared as `Arc`). `ort`'s
//!   `Session::run` takes `&mut self`, so the model holds a few sessions (one per core), each
//!   behind a mutex, and a call sticks to one. A window costs ~0.1–0.2 ms, so it runs inline in
//!   the call's task rather than through the inference pool (a pool hop costs more than that).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;

use super::onnx::{self, OnnxRuntimeError};
use crate::agent::vad::{EnergyVad, Hangover, VadConfig, VadTransition, VoiceActivity, rms};

/// The rate the node feeds (Twilio's mu-law).
const SAMPLE_RATE: i64 = 8_000;
/// New samples per inference at 8 kHz (32 ms).
const WINDOW: usize = 256;
/// Samples of the previous window the network sees before the new ones, at 8 kHz.
const CONTEXT: usize = 32;
/// Size of the LSTM state `[2, 1, 128]`.
const STATE: usize = 2 * 128;

/// Loading or running Silero failed.
#[derive(Debug, thiserror::Error)]
pub enum SileroError {
    /// ONNX Runtime itself.
    #[error(transparent)]
    Runtime(#[from] OnnxRuntimeError),
    /// The model file.
    #[error("silero model {path}: {message}")]
    Load {
        /// The `.onnx` file.
        path: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// One inference.
    #[error("silero inference: {0}")]
    Inference(String),
}

fn inference(e: impl std::fmt::Display) -> SileroError {
    SileroError::Inference(e.to_string())
}

/// Thresholds on Silero's speech probability, and the hangover in frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SileroConfig {
    /// Probability at or above which a frame is voiced outside speech (Silero's default).
    pub threshold: f32,
    /// Probability at or above which a frame stays voiced inside speech: lower than
    /// `threshold` so the soft end of a word does not count toward the stop hangover.
    pub neg_threshold: f32,
    /// Start/stop frame counts (shared with the energy VAD); its RMS threshold is the fallback
    /// decision if an inference ever fails.
    pub hangover: VadConfig,
}

impl SileroConfig {
    /// Silero's usual thresholds with `hangover`'s frame counts.
    pub fn with_hangover(hangover: VadConfig) -> Self {
        SileroConfig {
            threshold: 0.5,
            neg_threshold: 0.35,
            hangover,
        }
    }
}

/// The loaded network, shared by every call of the node.
pub struct SileroModel {
    /// Independent sessions so calls on different cores do not queue on one lock.
    sessions: Vec<Mutex<Session>>,
    /// Round-robin assignment of calls to sessions.
    next: AtomicUsize,
}

impl std::fmt::Debug for SileroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroModel")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SileroModel {
    /// Loads `model` into `sessions` sessions (at least one) with ONNX Runtime from
    /// `libonnxruntime_so`. Blocking (~50 ms per session).
    pub fn load(
        libonnxruntime_so: &Path,
        model: &Path,
        sessions: usize,
    ) -> Result<Self, SileroError> {
        let env = onnx::environment(libonnxruntime_so)?;
        let load = |e: &dyn std::fmt::Display| SileroError::Load {
            path: model.display().to_string(),
            message: e.to_string(),
        };
        let sessions = (0..sessions.max(1))
            .map(|_| {
                let session = Session::builder(&env)
                    .map_err(|e| load(&e))?
                    .with_intra_threads(1)
                    .map_err(|e| load(&e))?
                    .with_inter_threads(1)
                    .map_err(|e| load(&e))?
                    .commit_from_file(model)
                    .map_err(|e| load(&e))?;
                Ok(Mutex::new(session))
            })
            .collect::<Result<Vec<_>, SileroError>>()?;
        Ok(SileroModel {
            sessions,
            next: AtomicUsize::new(0),
        })
    }

    /// A fresh detector for one call.
    pub fn detector(self: &Arc<Self>, config: SileroConfig) -> Result<SileroVad, SileroError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        Ok(SileroVad {
            model: Arc::clone(self),
            slot,
            config,
            input: Tensor::from_array(([1usize, CONTEXT + WINDOW], vec![0.0f32; CONTEXT + WINDOW]))
                .map_err(inference)?,
            state: Tensor::from_array(([2usize, 1, 128], vec![0.0f32; STATE]))
                .map_err(inference)?,
            sr: Tensor::from_array(([1usize], vec![SAMPLE_RATE])).map_err(inference)?,
            pending: Vec::with_capacity(WINDOW + shared::mulaw::FRAME_BYTES),
            probability: 0.0,
            hangover: Hangover::new(config.hangover),
            fallback: false,
        })
    }
}

/// One call's Silero detector; see the module docs.
pub struct SileroVad {
    /// The network.
    model: Arc<SileroModel>,
    /// Which of the model's sessions this call uses.
    slot: usize,
    /// Thresholds and hangover.
    config: SileroConfig,
    /// `[1, 288]`: the previous window's last 32 samples, then the new window.
    input: Tensor<f32>,
    /// The LSTM state carried from window to window.
    state: Tensor<f32>,
    /// The sample rate input (constant).
    sr: Tensor<i64>,
    /// Decoded samples not yet forming a whole window.
    pending: Vec<f32>,
    /// Speech probability of the latest window.
    probability: f32,
    /// Start/stop hangover.
    hangover: Hangover,
    /// An inference failed (logged once): the rest of the call uses the energy decision rather
    /// than failing again every window.
    fallback: bool,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad")
            .field("slot", &self.slot)
            .field("probability", &self.probability)
            .field("hangover", &self.hangover)
            .finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Speech probability of the latest 32 ms window.
    pub fn probability(&self) -> f32 {
        self.probability
    }

    /// Runs the network on the first [`WINDOW`] pending samples.
    fn infer_window(&mut self) -> Result<f32, SileroError> {
        let (_, input) = self.input.extract_tensor_mut();
        input.copy_within(WINDOW..WINDOW + CONTEXT, 0);
        input[CONTEXT..].copy_from_slice(&self.pending[..WINDOW]);
        let mut session = self.model.sessions[self.slot]
            .lock()
            .map_err(|_| inference("session poisoned by a panic"))?;
        let outputs = session
            .run(ort::inputs![
                "input" => &self.input,
                "state" => &self.state,
                "sr" => &self.sr,
            ])
            .map_err(inference)?;
        let (_, probability) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        let probability = *probability
            .first()
            .ok_or_else(|| inference("empty output"))?;
        let (_, next_state) = outputs[1].try_extract_tensor::<f32>().map_err(inference)?;
        let (_, state) = self.state.extract_tensor_mut();
        if next_state.len() != state.len() {
            return Err(inference(format!("state of {} values", next_state.len())));
        }
        state.copy_from_slice(next_state);
        Ok(probability)
    }
}

impl VoiceActivity for SileroVad {
    fn push(&mut self, frame: &[u8]) -> VadTransition {
        if !self.fallback {
            self.pending.extend(
                frame
                    .iter()
                    .map(|&b| f32::from(shared::mulaw::decode(b)) / 32768.0),
            );
        }
        while !self.fallback && self.pending.len() >= WINDOW {
            match self.infer_window() {
                Ok(p) => self.probability = p,
                Err(err) => {
                    self.fallback = true;
                    tracing::warn!(error = %err, "Silero VAD failed; this call falls back to the energy VAD");
                }
            }
            self.pending.drain(..WINDOW);
        }
        let voiced = if self.fallback {
            rms(frame) > self.config.hangover.rms_threshold
        } else if self.hangover.is_speaking() {
            self.probability >= self.config.neg_threshold
        } else {
            self.probability >= self.config.threshold
        };
        self.hangover.push(voiced)
    }

    fn is_speaking(&self) -> bool {
        self.hangover.is_speaking()
    }

    fn voiced_run(&self) -> u32 {
        self.hangover.voiced_run()
    }
}

/// The detector for one call: Silero when the node loaded it, the energy VAD otherwise (or if
/// a detector cannot be made, which is logged).
pub fn call_vad(model: Option<&Arc<SileroModel>>, hangover: VadConfig) -> Box<dyn VoiceActivity> {
    if let Some(model) = model {
        match model.detector(SileroConfig::with_hangover(hangover)) {
            Ok(vad) => return Box::new(vad),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start Silero VAD for this call; using the energy VAD")
            }
        }
    }
    Box::new(EnergyVad::new(hangover))
}

#[cfg(test)]
mod tests;
