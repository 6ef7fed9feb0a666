//! What the simulated caller sends: a noise floor between sentences, and sentences (Piper speech
//! when the offline models are installed, else espeak-ng; or a raw mu-law file) cut into 20 ms
//! frames. Piper matters for realism: Whisper transcribes it almost perfectly, espeak-ng's robotic
//! voice poorly (reference/offline_ai.md: 2–4 % vs ~30 % WER), and real callers sound like the
//! former.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::ai::models::ModelPaths;
use crate::ai::tts_piper::PiperVoice;

use anyhow::Context;
use shared::mulaw::{self, FRAME_BYTES};

/// A sample louder than this (linear PCM) counts as speech, not line noise.
const SPEECH_LEVEL: u16 = 1_000;

/// One thing the caller says.
#[derive(Debug, Clone)]
pub struct Utterance {
    /// What it is, for the report: the sentence, or the file name.
    pub label: String,
    /// 8 kHz mu-law, padded with silence to whole frames.
    pub audio: Vec<u8>,
    /// Index of the last frame holding speech: the end of speech for turn latency (espeak-ng
    /// adds trailing silence that the agent's VAD must wait out; it is not the caller talking).
    pub last_speech_frame: usize,
}

impl Utterance {
    /// Wraps raw mu-law audio.
    pub fn from_mulaw(label: impl Into<String>, mut audio: Vec<u8>) -> Self {
        let rem = audio.len() % FRAME_BYTES;
        if rem != 0 {
            audio.resize(audio.len() + FRAME_BYTES - rem, mulaw::SILENCE);
        }
        let last_speech_frame = audio
            .chunks_exact(FRAME_BYTES)
            .rposition(|frame| {
                frame
                    .iter()
                    .any(|&b| mulaw::decode(b).unsigned_abs() > SPEECH_LEVEL)
            })
            .unwrap_or_else(|| self::frames_in(&audio).saturating_sub(1));
        Self {
            label: label.into(),
            audio,
            last_speech_frame,
        }
    }

    /// Synthesizes `sentence` with Piper when its models are installed, else espeak-ng + sox.
    pub async fn speak(sentence: &str) -> anyhow::Result<Self> {
        let audio = match piper().await {
            Some(voice) => {
                let text = sentence.to_owned();
                tokio::task::spawn_blocking(move || voice.synthesize_mulaw(&text))
                    .await
                    .context("the Piper task failed")?
                    .with_context(|| format!("synthesizing {sentence:?} with Piper"))?
            }
            None => crate::speech::synthesize_mulaw(sentence)
                .await
                .with_context(|| format!("synthesizing {sentence:?}"))?,
        };
        Ok(Self::from_mulaw(sentence, audio))
    }

    /// Reads a raw 8 kHz mu-law file (no header).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let audio =
            std::fs::read(path).with_context(|| format!("reading --audio {}", path.display()))?;
        if audio.is_empty() {
            anyhow::bail!("--audio {} is empty", path.display());
        }
        Ok(Self::from_mulaw(path.display().to_string(), audio))
    }

    /// Number of 20 ms frames.
    pub fn frames(&self) -> usize {
        frames_in(&self.audio)
    }

    /// Frame `i` (160 bytes).
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.audio[i * FRAME_BYTES..(i + 1) * FRAME_BYTES]
    }
}

/// The Piper voice, loaded once per process (~1.5 s), or `None` when the models are absent or
/// fail to load (then espeak-ng speaks, with a warning).
async fn piper() -> Option<Arc<PiperVoice>> {
    static VOICE: OnceLock<Option<Arc<PiperVoice>>> = OnceLock::new();
    if let Some(voice) = VOICE.get() {
        return voice.clone();
    }
    let loaded = tokio::task::spawn_blocking(|| {
        let paths = ModelPaths::from_env().ok()?.piper?;
        match PiperVoice::load(&paths.onnxruntime, &paths.model, &paths.config) {
            Ok(voice) => Some(Arc::new(voice)),
            Err(err) => {
                tracing::warn!(error = %err, "Piper voice failed to load; the caller speaks with espeak-ng");
                None
            }
        }
    })
    .await
    .ok()
    .flatten();
    VOICE.get_or_init(|| loaded).clone()
}

fn frames_in(audio: &[u8]) -> usize {
    audio.len() / FRAME_BYTES
}

/// A quiet phone line: mu-law codes within a few steps of zero, like real captures
/// (twilio.md §4.4: `0xFF`/`0x7F`/`0xFE`/`0x7E`), never loud enough to trip a VAD.
#[derive(Debug, Clone)]
pub struct NoiseFloor {
    /// xorshift state; seeded per call so calls differ.
    state: u64,
}

impl NoiseFloor {
    /// A noise source seeded by `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    /// The next 20 ms of line noise.
    pub fn frame(&mut self) -> [u8; FRAME_BYTES] {
        const CODES: [u8; 8] = [0xFF, 0x7F, 0xFE, 0x7E, 0xFF, 0x7F, 0xFD, 0x7D];
        let mut out = [mulaw::SILENCE; FRAME_BYTES];
        for byte in &mut out {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = CODES[(self.state & 7) as usize];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_floor_is_quiet() {
        let mut noise = NoiseFloor::new(42);
        let frame = noise.frame();
        assert!(frame.iter().all(|&b| mulaw::decode(b).unsigned_abs() < 40));
        assert_ne!(frame, noise.frame());
    }

    #[test]
    fn speech_end_is_the_last_loud_frame() {
        let mut audio = vec![0xFF; FRAME_BYTES * 2];
        audio.extend(vec![0x80; FRAME_BYTES]); // loud
        audio.extend(vec![0xFF; FRAME_BYTES * 3 + 7]); // trailing silence, not frame-aligned
        let u = Utterance::from_mulaw("x", audio);
        assert_eq!(u.frames(), 7);
        assert_eq!(u.last_speech_frame, 2);
        assert_eq!(u.frame(6).len(), FRAME_BYTES);
    }
}
