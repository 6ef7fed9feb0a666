//! Piper from Rust (ONNX Runtime loaded at run time) through the phone codec, checked by ear —
//! Whisper's: the all-Rust loop text → Piper → 8 kHz mu-law → Whisper must get the words back.

mod ai_support;

use std::time::Instant;

use voice_node::ai::audio::phone_to_whisper;

#[test]
fn piper_speech_through_the_phone_codec_is_understood() {
    let models = ai_support::models();
    let piper = models
        .piper
        .as_ref()
        .expect("Piper voice not installed: run `cargo xtask models`");
    let sentences = [
        "Thank you for calling Acme Dental.",
        "We are open every weekday until the evening.",
        "Please leave your name and number after the tone.",
    ];
    for text in sentences {
        let t0 = Instant::now();
        let mulaw = piper.synthesize_mulaw(text).unwrap();
        let synth = t0.elapsed();
        let seconds = mulaw.len() as f64 / 8000.0;
        assert!((1.0..8.0).contains(&seconds), "{seconds} s for {text}");
        let heard = models
            .transcriber
            .transcribe(&phone_to_whisper(&mulaw))
            .unwrap();
        println!("{text} → {seconds:.1} s of audio in {synth:?} → heard: {heard}");
        let norm = |s: &str| {
            s.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || c.is_whitespace())
                .collect::<String>()
        };
        let (want, got) = (norm(text), norm(&heard));
        let missing = want
            .split_whitespace()
            .filter(|w| !got.split_whitespace().any(|g| g == *w))
            .count();
        assert!(missing <= 1, "{text} → {heard}");
    }
}
