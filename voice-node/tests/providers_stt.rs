//! Deepgram live streaming against a local WebSocket server speaking Deepgram's messages:
//! finals joined and interims ignored, the audio and control messages it receives, typed error
//! closes, handshake statuses, retries and a hanging handshake.

mod provider_fakes;

use std::time::{Duration, Instant};

use provider_fakes::{Dg, FakeDeepgram};
use voice_node::providers::stt_deepgram::{DeepgramStt, SttEvent};
use voice_node::providers::{ProviderError, RetryPolicy};

fn deepgram(fake: &FakeDeepgram) -> DeepgramStt {
    let mut d = DeepgramStt::new(&fake.base, "dg-key", "nova-3", 300);
    d.policy = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        first_byte: Duration::from_millis(300),
        total: Duration::from_secs(2),
    };
    d
}

/// Two seconds of mu-law (a tone; the fake does not listen to it).
fn audio() -> Vec<u8> {
    (0..16_000)
        .map(|i| shared::mulaw::encode(((i as f32 * 0.3).sin() * 6000.0) as i16))
        .collect()
}

#[tokio::test]
async fn joins_final_results_and_ignores_interims() {
    let fake = FakeDeepgram::start(vec![Dg::Transcribe(vec![
        "Hi, this is Ann.".into(),
        "I'm calling about my appointment.".into(),
    ])])
    .await;
    let text = deepgram(&fake).transcribe(&audio(), |_| {}).await.unwrap();
    assert_eq!(text, "Hi, this is Ann. I'm calling about my appointment.");

    // The server got the phone audio as is, the key as `Token`, and the close request.
    let seen = fake.seen(1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization, "Token dg-key");
    assert_eq!(seen[0].audio_bytes, 16_000);
    assert!(seen[0].close_stream);
    let uri = &seen[0].uri;
    for param in [
        "encoding=mulaw",
        "sample_rate=8000",
        "channels=1",
        "interim_results=true",
        "endpointing=300",
        "model=nova-3",
    ] {
        assert!(uri.contains(param), "{param} missing from {uri}");
    }
}

#[tokio::test]
async fn stream_api_sends_keep_alive_and_reports_results() {
    let fake = FakeDeepgram::start(vec![Dg::Transcribe(vec!["hello".into()])]).await;
    let mut stream = deepgram(&fake).connect().await.unwrap();
    stream.keep_alive().await.unwrap();
    stream.send_audio(&audio()[..800]).await.unwrap();
    let interim = stream.next_event().await.unwrap();
    assert!(
        matches!(&interim, Some(SttEvent::Result(r)) if !r.is_final),
        "{interim:?}"
    );
    stream.close_stream().await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = stream.next_event().await.unwrap() {
        events.push(e);
    }
    assert!(matches!(&events[0], SttEvent::Result(r) if r.is_final && r.transcript == "hello"));
    assert_eq!(events.last(), Some(&SttEvent::Metadata));
    assert_eq!(fake.seen(1).await[0].keep_alives, 1);
}

#[tokio::test]
async fn an_error_close_is_typed_and_not_retried() {
    let fake = FakeDeepgram::start(vec![Dg::CloseWith(
        1008,
        "DATA-0000: could not decode the audio".into(),
    )])
    .await;
    let err = deepgram(&fake)
        .transcribe(&audio(), |_| panic!("not retried"))
        .await
        .unwrap_err();
    match err {
        ProviderError::Closed { code, reason } => {
            assert_eq!(code, 1008);
            assert!(reason.contains("DATA-0000"), "{reason}");
        }
        other => panic!("expected a typed close, got {other}"),
    }
}

#[tokio::test]
async fn a_refused_key_fails_at_once_and_a_503_handshake_is_retried() {
    let fake = FakeDeepgram::start(vec![Dg::Reject(401)]).await;
    let err = deepgram(&fake)
        .transcribe(&audio(), |_| panic!("401 is not retried"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 401, .. }),
        "{err}"
    );

    let fake = FakeDeepgram::start(vec![
        Dg::Reject(503),
        Dg::Transcribe(vec!["second try".into()]),
    ])
    .await;
    let mut retries = 0;
    let text = deepgram(&fake)
        .transcribe(&audio(), |_| retries += 1)
        .await
        .unwrap();
    assert_eq!(text, "second try");
    assert_eq!(retries, 1);
}

#[tokio::test]
async fn a_hanging_handshake_times_out() {
    let fake = FakeDeepgram::start(vec![Dg::Hang]).await;
    let t0 = Instant::now();
    let err = deepgram(&fake)
        .transcribe(&audio(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::FirstByteTimeout(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}
