//! OpenAI text to speech: `POST {base}/audio/speech` (base `https://api.openai.com/v1`) with
//! `response_format: "pcm"`, which is raw 24 kHz signed 16-bit little-endian mono. The node
//! resamples it to 8 kHz with the band-limited resampler of [`crate::ai::audio`] and encodes
//! mu-law. Resampling needs the whole clause (a streaming resampler would click at chunk
//! seams), and clauses are short, so each clause is downloaded whole.

use futures_util::StreamExt;
use serde_json::json;

use super::{ProviderError, RetryPolicy, join_url};
use crate::ai::audio;

/// The sample rate of OpenAI's `pcm` output.
pub const OPENAI_PCM_RATE: usize = 24_000;

/// An OpenAI (or compatible) speech endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    /// Pooled HTTP client.
    client: reqwest::Client,
    /// `https://api.openai.com/v1`.
    base_url: String,
    /// Bearer key.
    api_key: Option<String>,
    /// `gpt-4o-mini-tts`, `tts-1`.
    model: String,
    /// `alloy`, `nova`, …
    voice: String,
    /// Timeouts and retries.
    pub policy: RetryPolicy,
}

impl OpenAiTts {
    /// A client for `voice` spoken by `model`.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        model: &str,
        voice: &str,
    ) -> Self {
        OpenAiTts {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            model: model.to_owned(),
            voice: voice.to_owned(),
            policy: RetryPolicy::default(),
        }
    }

    async fn pcm_once(&self, text: &str) -> Result<Vec<u8>, ProviderError> {
        let mut request = self
            .client
            .post(join_url(&self.base_url, "/audio/speech"))
            .json(&json!({
                "model": self.model,
                "input": text,
                "voice": self.voice,
                "response_format": "pcm",
            }));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = self.policy.send(request).await?;
        let mut body = response.bytes_stream();
        let mut pcm = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ProviderError::Protocol(format!("audio stream broke: {e}")))?;
            pcm.extend_from_slice(&chunk);
        }
        Ok(pcm)
    }

    /// `text` as 8 kHz mu-law.
    pub async fn synthesize(
        &self,
        text: &str,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<Vec<u8>, ProviderError> {
        let pcm = self.policy.run(|| self.pcm_once(text), on_retry).await?;
        if pcm.len() < 2 {
            return Err(ProviderError::Protocol("OpenAI TTS sent no audio".into()));
        }
        // Resampling a clause takes ~1 ms per second of audio: fine on the runtime's blocking
        // pool, never on the async workers.
        tokio::task::spawn_blocking(move || pcm24k_to_mulaw8k(&pcm))
            .await
            .map_err(|e| ProviderError::Protocol(format!("resampling failed: {e}")))
    }
}

/// 24 kHz s16le PCM → 8 kHz mu-law (an odd trailing byte is dropped).
pub fn pcm24k_to_mulaw8k(pcm: &[u8]) -> Vec<u8> {
    let samples: Vec<f32> = pcm
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
        .collect();
    audio::f32_to_mulaw(&audio::resample(
        &samples,
        OPENAI_PCM_RATE,
        audio::PHONE_RATE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_at_24k_becomes_a_third_as_many_mulaw_samples_of_the_same_tone() {
        let pcm: Vec<u8> = (0..24_000)
            .flat_map(|i| {
                let s = (i as f32 * 440.0 * std::f32::consts::TAU / 24_000.0).sin() * 16_000.0;
                (s as i16).to_le_bytes()
            })
            .collect();
        let mulaw = pcm24k_to_mulaw8k(&pcm);
        assert_eq!(mulaw.len(), 8_000);
        for (i, &b) in mulaw.iter().enumerate().skip(2000).take(50) {
            let got = f32::from(shared::mulaw::decode(b));
            let want = (i as f32 * 440.0 * std::f32::consts::TAU / 8_000.0).sin() * 16_000.0;
            assert!((got - want).abs() < 1_200.0, "sample {i}: {got} vs {want}");
        }
    }
}
