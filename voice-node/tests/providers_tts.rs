//! ElevenLabs (`ulaw_8000`, streamed) and OpenAI TTS (24 kHz PCM, resampled) against local
//! servers answering as those APIs do, including their error statuses.

mod provider_fakes;

use std::time::Duration;

use provider_fakes::{FakeHttp, Reply};
use tokio::sync::mpsc;
use voice_node::providers::tts_elevenlabs::ElevenLabsTts;
use voice_node::providers::tts_openai::OpenAiTts;
use voice_node::providers::{ProviderError, RetryPolicy};

const VOICE: &str = "voice123";
const EL_PATH: &str = "/v1/text-to-speech/voice123/stream";
const OA_PATH: &str = "/v1/audio/speech";

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        first_byte: Duration::from_millis(300),
        total: Duration::from_secs(2),
    }
}

fn elevenlabs(fake: &FakeHttp) -> ElevenLabsTts {
    let mut t = ElevenLabsTts::new(
        voice_node::providers::http_client(),
        &fake.base,
        "xi-key",
        VOICE,
        "eleven_flash_v2_5",
    );
    t.policy = policy();
    t
}

fn openai(fake: &FakeHttp) -> OpenAiTts {
    let mut t = OpenAiTts::new(
        voice_node::providers::http_client(),
        &format!("{}/v1", fake.base),
        Some("sk-tts".into()),
        "gpt-4o-mini-tts",
        "alloy",
    );
    t.policy = policy();
    t
}

#[tokio::test]
async fn elevenlabs_streams_mulaw_chunks_as_they_arrive() {
    let fake = FakeHttp::start().await;
    let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![0x70 + i; 320]).collect();
    fake.on(EL_PATH, vec![Reply::Bytes(chunks.clone())]).await;
    let (tx, mut rx) = mpsc::channel(16);
    let sent = elevenlabs(&fake)
        .stream("Hello, thanks for calling.", &tx, |_| {})
        .await
        .unwrap();
    assert_eq!(sent, 1600);
    drop(tx);
    let mut got = Vec::new();
    while let Some(c) = rx.recv().await {
        got.extend(c);
    }
    assert_eq!(got, chunks.concat());

    let req = &fake.seen().await[0];
    assert!(
        req.uri.ends_with("/stream?output_format=ulaw_8000"),
        "{}",
        req.uri
    );
    assert_eq!(req.headers["xi-api-key"], "xi-key");
    assert_eq!(req.body["text"], "Hello, thanks for calling.");
    assert_eq!(req.body["model_id"], "eleven_flash_v2_5");
}

#[tokio::test]
async fn elevenlabs_bad_key_fails_at_once_and_500_is_retried() {
    let fake = FakeHttp::start().await;
    fake.on(EL_PATH, vec![Reply::Status(401, "invalid_api_key".into())])
        .await;
    let err = elevenlabs(&fake)
        .synthesize("hi", |_| panic!("401 is not retried"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("invalid_api_key"), "{err}");

    let fake = FakeHttp::start().await;
    fake.on(
        EL_PATH,
        vec![
            Reply::Status(500, "internal".into()),
            Reply::Bytes(vec![vec![0x55; 800]]),
        ],
    )
    .await;
    let mut retries = 0;
    let audio = elevenlabs(&fake)
        .synthesize("hi", |_| retries += 1)
        .await
        .unwrap();
    assert_eq!(audio, vec![0x55; 800]);
    assert_eq!(retries, 1);
}

#[tokio::test]
async fn openai_pcm_is_resampled_to_8k_mulaw() {
    let fake = FakeHttp::start().await;
    // Half a second of a 440 Hz tone at 24 kHz, s16le, in odd-sized chunks (a sample split
    // across chunks must survive).
    let pcm: Vec<u8> = (0..12_000)
        .flat_map(|i| {
            let s = (i as f32 * 440.0 * std::f32::consts::TAU / 24_000.0).sin() * 12_000.0;
            (s as i16).to_le_bytes()
        })
        .collect();
    let chunks: Vec<Vec<u8>> = pcm.chunks(999).map(<[u8]>::to_vec).collect();
    fake.on(OA_PATH, vec![Reply::Bytes(chunks)]).await;
    let mulaw = openai(&fake)
        .synthesize("We open at nine.", |_| {})
        .await
        .unwrap();
    assert_eq!(mulaw.len(), 4_000);
    // Still a 440 Hz tone: compare in the middle.
    for (i, &b) in mulaw.iter().enumerate().skip(1000).take(40) {
        let got = f32::from(shared::mulaw::decode(b));
        let want = (i as f32 * 440.0 * std::f32::consts::TAU / 8_000.0).sin() * 12_000.0;
        assert!((got - want).abs() < 1_000.0, "sample {i}: {got} vs {want}");
    }
    let req = &fake.seen().await[0];
    assert_eq!(req.body["response_format"], "pcm");
    assert_eq!(req.body["voice"], "alloy");
    assert_eq!(req.body["input"], "We open at nine.");
    assert_eq!(req.headers["authorization"], "Bearer sk-tts");
}

#[tokio::test]
async fn openai_server_errors_give_up_after_the_attempts() {
    let fake = FakeHttp::start().await;
    fake.on(OA_PATH, vec![Reply::Status(500, "server_error".into())])
        .await;
    let mut retries = 0;
    let err = openai(&fake)
        .synthesize("hi", |_| retries += 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 500, .. }),
        "{err}"
    );
    assert_eq!(retries, 2);
    assert_eq!(fake.seen().await.len(), 3);
}
