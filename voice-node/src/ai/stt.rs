//! Speech to text: Whisper tiny.en in candle, one VAD-cut utterance at a time.
//!
//! As measured on a 2-core machine (ARCHITECTURE.md): the encoder sees a 10 s window
//! (`audio_ctx` 500 instead of Whisper's 30 s, ~3× less work with the same accuracy on phone
//! utterances), decoding is greedy, special and timestamp tokens are suppressed. Longer speech
//! is cut into 10 s windows. The loaded weights are shared; each job clones the model (the
//! tensors are reference-counted, only the per-run caches are new), so jobs never lock each other.

use std::path::Path;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, Config, audio, model::Whisper};
use tokenizers::Tokenizer;

/// Seconds of audio per encoder window (`audio_ctx` = 50 per second).
pub const WINDOW_SECONDS: usize = 10;
/// Mel frames per window (100 per second).
const WINDOW_FRAMES: usize = WINDOW_SECONDS * 100;
/// Upper bound on tokens per window (a 10 s utterance is ~40 tokens).
const MAX_TOKENS: usize = 96;

/// Loading or running Whisper failed.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// The network.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// Files, config or tokenizer.
    #[error("setup: {0}")]
    Setup(String),
}

/// The loaded model, shared by all calls.
pub struct Transcriber {
    /// Weights and config; cloned per job.
    model: Whisper,
    /// Mel filterbank, `n_mels × 201`.
    mel_filters: Vec<f32>,
    /// Token ids ↔ text.
    tokenizer: Tokenizer,
    /// `<|startoftranscript|>`, `<|transcribe|>`, `<|notimestamps|>`.
    prompt: [u32; 3],
    /// `<|endoftext|>`.
    eot: u32,
    /// 0 for ordinary tokens, −∞ for special and timestamp ones (ids after EOT).
    suppress: Tensor,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber").finish_non_exhaustive()
    }
}

impl Transcriber {
    /// Loads `model.safetensors`, `config.json`, `tokenizer.json` and `melfilters.bytes` from
    /// `dir` (as written by `cargo xtask models`).
    pub fn load(dir: &Path) -> Result<Self, SttError> {
        let setup = |e: &dyn std::fmt::Display| SttError::Setup(e.to_string());
        let device = Device::Cpu;
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).map_err(|e| setup(&e))?,
        )
        .map_err(|e| setup(&e))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| setup(&e))?;
        let token = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| SttError::Setup(format!("token {t} missing")))
        };
        let prompt = [
            token(w::SOT_TOKEN)?,
            token(w::TRANSCRIBE_TOKEN)?,
            token(w::NO_TIMESTAMPS_TOKEN)?,
        ];
        let eot = token(w::EOT_TOKEN)?;
        let bytes = std::fs::read(dir.join("melfilters.bytes")).map_err(|e| setup(&e))?;
        let mel_filters: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let suppress: Vec<f32> = (0..config.vocab_size as u32)
            .map(|i| {
                if i > eot || config.suppress_tokens.contains(&i) {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let suppress = Tensor::new(suppress.as_slice(), &device)?;
        // In memory rather than mmap: candle's mmap loader is `unsafe` (forbidden here).
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| setup(&e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, w::DTYPE, &device)?;
        let model = Whisper::load(&vb, config)?;
        Ok(Transcriber {
            model,
            mel_filters,
            tokenizer,
            prompt,
            eot,
            suppress,
        })
    }

    /// Transcribes 16 kHz mono samples (see [`super::audio::phone_to_whisper`]).
    pub fn transcribe(&self, samples: &[f32]) -> Result<String, SttError> {
        let mut model = self.model.clone();
        let mut text = String::new();
        for window in samples.chunks(WINDOW_SECONDS * audio_rate()) {
            // Windows shorter than 0.2 s hold no words; Whisper would invent some.
            if window.len() < audio_rate() / 5 {
                continue;
            }
            let part = self.transcribe_window(&mut model, window)?;
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&part);
            }
        }
        Ok(text)
    }

    fn transcribe_window(&self, model: &mut Whisper, window: &[f32]) -> Result<String, SttError> {
        let cfg = &model.config;
        let n_mels = cfg.num_mel_bins;
        // Pad to the full window so the encoder always sees `audio_ctx` positions.
        let mut padded = window.to_vec();
        padded.resize(WINDOW_SECONDS * audio_rate(), 0.0);
        let mel = audio::pcm_to_mel(cfg, &padded, &self.mel_filters);
        let frames = mel.len() / n_mels;
        let mel = Tensor::from_vec(mel, (1, n_mels, frames), &Device::Cpu)?.narrow(
            2,
            0,
            WINDOW_FRAMES.min(frames),
        )?;
        model.reset_kv_cache();
        let features = model.encoder.forward(&mel, true)?;
        let mut tokens: Vec<u32> = self.prompt.to_vec();
        for i in 0..token_budget(window.len()) {
            let input = Tensor::new(tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let ys = model.decoder.forward(&input, &features, i == 0)?;
            let (_, seq_len, _) = ys.dims3()?;
            let logits = model
                .decoder
                .final_linear(&ys.i((..1, seq_len - 1..))?)?
                .i(0)?
                .i(0)?;
            let logits = logits.to_dtype(DType::F32)?.broadcast_add(&self.suppress)?;
            let next = logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
            if next == self.eot {
                break;
            }
            tokens.push(next);
        }
        let text = self
            .tokenizer
            .decode(&tokens[self.prompt.len()..], true)
            .map_err(|e| SttError::Setup(e.to_string()))?;
        Ok(collapse_repeats(text.trim()))
    }
}

/// Tokens a window of `samples` may decode to. Greedy Whisper tiny sometimes loops on a
/// phrase ("Yes it's quite urgent. Yes it's quite urgent. …") until the token limit; people
/// say at most ~4 words a second, so a budget proportional to the audio ends such a loop
/// early without clipping real speech.
fn token_budget(samples: usize) -> usize {
    (12 + (samples * 8).div_ceil(audio_rate())).min(MAX_TOKENS)
}

/// Collapses a phrase of up to 8 words repeated in a row into one: the rest of a greedy decoding
/// loop that the token budget did not stop. A short phrase must come three times ("bye bye" and
/// "no, no" are speech); a phrase of four words or more twice is already a loop (the budget
/// often stops one after its second time: "Yes that's the best number. Yes that's the best
/// number."), since people do not say a whole sentence twice in one breath.
fn collapse_repeats(text: &str) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    // Words compare without case or punctuation ("urgent." and "Urgent").
    let same_word = |a: &str, b: &str| {
        let letters = |w: &str| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .chars()
                .flat_map(char::to_lowercase)
                .collect::<String>()
        };
        letters(a) == letters(b)
    };
    let mut i = 0;
    while i < words.len() {
        // The shortest phrase starting at `i` that loops, with its count.
        let looped = (1..=8.min((words.len() - i) / 2)).find_map(|n| {
            let repeats_at = |at: usize| (0..n).all(|k| same_word(words[i + k], words[at + k]));
            let mut reps = 1;
            while i + (reps + 1) * n <= words.len() && repeats_at(i + reps * n) {
                reps += 1;
            }
            (reps >= 3 || (reps == 2 && n >= LONG_PHRASE)).then_some((n, reps))
        });
        match looped {
            Some((n, reps)) => {
                words.drain(i + n..i + reps * n);
            }
            None => i += 1,
        }
    }
    words.join(" ")
}

/// Words from which a phrase said twice in a row counts as a decoding loop.
const LONG_PHRASE: usize = 4;

fn audio_rate() -> usize {
    w::SAMPLE_RATE
}

#[cfg(test)]
mod repeat_tests {
    use super::*;

    #[test]
    fn a_looping_phrase_is_said_once() {
        let looped = "Yes it's quite urgent. Yes it's quite urgent. Yes it's quite urgent. Yes it's quite urgent. Yes it's quite good.";
        assert_eq!(
            collapse_repeats(looped),
            "Yes it's quite urgent. Yes it's quite good."
        );
        assert_eq!(collapse_repeats("no no no no"), "no");
        // Cut by the token budget after its second time (the demo printed this).
        assert_eq!(
            collapse_repeats("Yes that's the best number. Yes that's the best number."),
            "Yes that's the best number."
        );
    }

    #[test]
    fn ordinary_repetition_is_kept() {
        // Twice is speech ("very very", "bye bye"), not a loop.
        assert_eq!(collapse_repeats("bye bye, thank you"), "bye bye, thank you");
        assert_eq!(collapse_repeats("it is what it is"), "it is what it is");
        assert_eq!(collapse_repeats("no, no, it's fine"), "no, no, it's fine");
        assert_eq!(
            collapse_repeats("my name is my name is Ann"),
            "my name is my name is Ann",
            "a short phrase twice is how people restart"
        );
    }

    #[test]
    fn the_budget_grows_with_the_audio_and_is_capped() {
        assert_eq!(token_budget(audio_rate() * 2), 28);
        assert!(token_budget(audio_rate() * 30) == MAX_TOKENS);
        assert!(token_budget(0) >= 12);
    }
}
