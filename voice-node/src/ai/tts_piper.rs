//! Piper TTS (the demo-quality offline voice): a VITS voice run with ONNX Runtime.
//!
//! - Phonemes come from `espeak-ng -q --ipa` as a subprocess: espeak-ng is GPL, so it is never
//!   linked into the node.
//! - ONNX Runtime is the shared library of the PyPI `onnxruntime` wheel, loaded at run time
//!   (`ort` with `load-dynamic`, built without its download feature).
//! - Output (22.05 kHz float) is resampled to 8 kHz with rubato and mu-law encoded.
//!
//! One session per node; `Session::run` needs `&mut`, so calls take turns through a mutex, on the
//! inference pool (never on the async runtime).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

/// Loading or running Piper failed.
#[derive(Debug, thiserror::Error)]
pub enum PiperError {
    /// ONNX Runtime.
    #[error("onnxruntime: {0}")]
    Ort(String),
    /// Files.
    #[error("setup: {0}")]
    Setup(String),
    /// espeak-ng.
    #[error("espeak-ng --ipa: {0}")]
    Phonemes(String),
}

/// What the voice's `.onnx.json` says that we use.
#[derive(Debug, Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    #[serde(default)]
    inference: InferenceConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Debug, Deserialize)]
struct AudioConfig {
    sample_rate: usize,
}

#[derive(Debug, Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

/// A loaded Piper voice.
pub struct PiperVoice {
    /// The network; one run at a time.
    session: Mutex<Session>,
    /// IPA character → ids.
    ids: HashMap<char, Vec<i64>>,
    /// Output rate of the voice.
    sample_rate: usize,
    /// noise scale, length scale, noise width.
    scales: [f32; 3],
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

fn ort_err(e: impl std::fmt::Display) -> PiperError {
    PiperError::Ort(e.to_string())
}

impl PiperVoice {
    /// Loads ONNX Runtime from `onnxruntime_so` and the voice `model` (with `model.json` beside
    /// it). Blocking (~1.5 s).
    pub fn load(onnxruntime_so: &Path, model: &Path, config: &Path) -> Result<Self, PiperError> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| PiperError::Setup(format!("{}: {e}", config.display())))?;
        let config: VoiceConfig =
            serde_json::from_str(&text).map_err(|e| PiperError::Setup(e.to_string()))?;
        let ids = config
            .phoneme_id_map
            .into_iter()
            .filter_map(|(k, v)| {
                let mut chars = k.chars();
                let c = chars.next()?;
                chars.next().is_none().then_some((c, v))
            })
            .collect();
        // The process's one environment, shared with Silero VAD (`ort` allows only one).
        let env = super::onnx::environment(onnxruntime_so).map_err(ort_err)?;
        let session = Session::builder(&env)
            .map_err(ort_err)?
            .with_intra_threads(1)
            .map_err(ort_err)?
            .commit_from_file(model)
            .map_err(ort_err)?;
        let i = config.inference;
        Ok(PiperVoice {
            session: Mutex::new(session),
            ids,
            sample_rate: config.audio.sample_rate,
            scales: [i.noise_scale, i.length_scale, i.noise_w],
        })
    }

    /// The voice's ids for IPA text: `^`, then each phoneme followed by the pad `_`, then `$`.
    fn phoneme_ids(&self, ipa: &str) -> Vec<i64> {
        let id = |c: char| self.ids.get(&c).cloned().unwrap_or_default();
        let mut out = id('^');
        let pad = id('_');
        for c in ipa.chars() {
            let Some(ids) = self.ids.get(&c) else {
                continue;
            };
            out.extend_from_slice(ids);
            out.extend_from_slice(&pad);
        }
        out.extend(id('$'));
        out
    }

    /// Speech for `text` as 22.05 kHz (the voice's rate) float samples. Blocking.
    pub fn synthesize(&self, text: &str) -> Result<Vec<f32>, PiperError> {
        let ipa = phonemize(text)?;
        let ids = self.phoneme_ids(&ipa);
        let len = ids.len();
        let input = Tensor::from_array(([1usize, len], ids)).map_err(ort_err)?;
        let lengths = Tensor::from_array(([1usize], vec![len as i64])).map_err(ort_err)?;
        let scales = Tensor::from_array(([3usize], self.scales.to_vec())).map_err(ort_err)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| PiperError::Ort("session poisoned".into()))?;
        let outputs = session
            .run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ])
            .map_err(ort_err)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(ort_err)?;
        Ok(audio.to_vec())
    }

    /// Speech for `text` as 8 kHz mu-law. Blocking.
    pub fn synthesize_mulaw(&self, text: &str) -> Result<Vec<u8>, PiperError> {
        let audio = self.synthesize(text)?;
        let phone = super::audio::resample(&audio, self.sample_rate, super::audio::PHONE_RATE);
        Ok(super::audio::f32_to_mulaw(&phone))
    }
}

/// IPA for `text` from `espeak-ng -q -v en-us --ipa` (lines joined by spaces).
pub fn phonemize(text: &str) -> Result<String, PiperError> {
    let out = Command::new("espeak-ng")
        .args(["-q", "-v", "en-us", "--ipa", "--", text])
        .output()
        .map_err(|e| PiperError::Phonemes(e.to_string()))?;
    if !out.status.success() {
        return Err(PiperError::Phonemes(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let ipa = String::from_utf8_lossy(&out.stdout);
    Ok(ipa.split_whitespace().collect::<Vec<_>>().join(" "))
}
