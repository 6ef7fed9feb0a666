//! ElevenLabs text to speech, streamed, straight in the phone's format:
//! `POST {base}/v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000` with the
//! `xi-api-key` header answers raw 8 kHz mu-law bytes (no container), so the node forwards them
//! as they arrive with no decoding or resampling.

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use super::{ProviderError, RetryPolicy, join_url};

/// An ElevenLabs voice.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    /// Pooled HTTP client.
    client: reqwest::Client,
    /// `https://api.elevenlabs.io`.
    base_url: String,
    /// The `xi-api-key`.
    api_key: String,
    /// The voice.
    voice_id: String,
    /// `eleven_flash_v2_5` (lowest latency), `eleven_multilingual_v2`, …
    model: String,
    /// Timeouts and retries.
    pub policy: RetryPolicy,
}

impl ElevenLabsTts {
    /// A client for `voice_id` spoken by `model`.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: &str,
        voice_id: &str,
        model: &str,
    ) -> Self {
        ElevenLabsTts {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            voice_id: voice_id.to_owned(),
            model: model.to_owned(),
            policy: RetryPolicy::default(),
        }
    }

    async fn start(&self, text: &str) -> Result<reqwest::Response, ProviderError> {
        let url = join_url(
            &self.base_url,
            &format!(
                "/v1/text-to-speech/{}/stream?output_format=ulaw_8000",
                self.voice_id
            ),
        );
        let request = self
            .client
            .post(url)
            .header("xi-api-key", &self.api_key)
            .json(&json!({ "text": text, "model_id": self.model }));
        self.policy.send(request).await
    }

    /// Streams `text` as mu-law chunks into `audio` as they arrive. Returns the bytes sent.
    /// Retries apply only before the first byte went out (the caller may already hear it).
    pub async fn stream(
        &self,
        text: &str,
        audio: &mpsc::Sender<Vec<u8>>,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<usize, ProviderError> {
        let response = self.policy.run(|| self.start(text), on_retry).await?;
        let mut body = response.bytes_stream();
        let mut sent = 0;
        let read = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk
                    .map_err(|e| ProviderError::Protocol(format!("audio stream broke: {e}")))?;
                if chunk.is_empty() {
                    continue;
                }
                sent += chunk.len();
                if audio.send(chunk.to_vec()).await.is_err() {
                    break; // the listener is gone (barge-in): stop downloading
                }
            }
            Ok::<_, ProviderError>(())
        };
        tokio::time::timeout(self.policy.total, read)
            .await
            .map_err(|_| ProviderError::TotalTimeout(self.policy.total))??;
        Ok(sent)
    }

    /// All of `text` as mu-law.
    pub async fn synthesize(
        &self,
        text: &str,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<Vec<u8>, ProviderError> {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let collect = async {
            let mut out = Vec::new();
            while let Some(chunk) = rx.recv().await {
                out.extend_from_slice(&chunk);
            }
            out
        };
        let stream = async move {
            let result = self.stream(text, &tx, on_retry).await;
            drop(tx);
            result
        };
        let (result, audio) = tokio::join!(stream, collect);
        result?;
        if audio.is_empty() {
            return Err(ProviderError::Protocol("ElevenLabs sent no audio".into()));
        }
        Ok(audio)
    }
}
