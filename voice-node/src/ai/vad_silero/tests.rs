//! Silero against real speech (the committed STT fixtures), silence, noise and a click, and
//! against the energy VAD on noisy speech. Needs the model from `cargo xtask models`; each test
//! skips with a message when the models directory has no Silero file.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::*;
use crate::agent::vad::VoiceActivity;
use crate::ai::models::{ModelPaths, SileroPaths};

/// Synchronous tests drive Silero like the energy VAD, blocking on the batch thread's answer.
/// Only here: in the node a blocking push would hold (or, inside the runtime, panic) a worker.
impl VoiceActivity for SileroVad {
    fn push(&mut self, frame: &[u8]) -> VadTransition {
        self.decode(frame);
        while self.window_to_infer() {
            match self.send_window() {
                Ok(answer) => self.took(answer.blocking_recv()),
                Err(err) => self.fail(&err),
            }
        }
        self.decide(frame)
    }

    fn is_speaking(&self) -> bool {
        self.hangover.is_speaking()
    }

    fn voiced_run(&self) -> u32 {
        self.hangover.voiced_run()
    }
}

/// The models directory as the `ai_*` integration tests find it: `CALLGATE_MODELS_DIR` (set by
/// `cargo xtask test`), else the user cache `cargo xtask models` fills.
fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CALLGATE_MODELS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_default();
    cache.join("callgate/models")
}

/// The model, loaded once per test binary; `None` (with a message) when it is not installed.
fn model() -> Option<Arc<SileroModel>> {
    static MODEL: OnceLock<Option<Arc<SileroModel>>> = OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let dir = models_dir();
        let SileroPaths { onnxruntime, model } = ModelPaths::locate_silero(&dir)?;
        let loaded = SileroModel::load(&onnxruntime, &model, 1).expect("silero loads");
        Some(Arc::new(loaded))
    });
    if model.is_none() {
        eprintln!(
            "SKIPPED: no silero-vad/silero_vad.onnx (with onnxruntime) in {}; run `cargo xtask \
             models` or set CALLGATE_MODELS_DIR",
            models_dir().display()
        );
    }
    model.clone()
}

fn hangover() -> VadConfig {
    // The AI agent's tuning: 60 ms to start, 500 ms to stop.
    VadConfig {
        stop_frames: 25,
        ..VadConfig::default()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stt")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn silence(ms: usize) -> Vec<u8> {
    vec![0xFF; ms * 8]
}

/// Deterministic white noise (uniform, `rms` in 16-bit PCM units) added to mu-law audio.
fn with_noise(mulaw: &[u8], rms: f64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    // Uniform on [-a, a] has RMS a / sqrt(3).
    let amplitude = rms * 3f64.sqrt();
    mulaw
        .iter()
        .map(|&b| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            let s = f64::from(shared::mulaw::decode(b)) + u * amplitude;
            shared::mulaw::encode(s.clamp(-32768.0, 32767.0) as i16)
        })
        .collect()
}

/// Every transition with the index of the 20 ms frame that caused it.
fn transitions(vad: &mut dyn VoiceActivity, audio: &[u8]) -> Vec<(usize, VadTransition)> {
    audio
        .chunks(160)
        .map(|f| vad.push(f))
        .enumerate()
        .filter(|(_, t)| *t != VadTransition::None)
        .collect()
}

/// Per frame, whether the detector was inside speech after it.
fn speaking(vad: &mut dyn VoiceActivity, audio: &[u8]) -> Vec<bool> {
    audio
        .chunks(160)
        .map(|f| {
            vad.push(f);
            vad.is_speaking()
        })
        .collect()
}

#[test]
fn finds_speech_in_real_speech_and_none_in_silence_or_low_noise() {
    let Some(model) = model() else { return };
    // Per frame that ran a window: how long the push took (decode + inference + hangover).
    let mut window_ms: Vec<f64> = Vec::new();
    for name in ["01.ulaw", "02.ulaw", "03.ulaw", "04.ulaw", "05.ulaw"] {
        let speech = fixture(name);
        let audio = [silence(500), speech.clone(), silence(1_000)].concat();
        let mut vad = model
            .detector(SileroConfig::with_hangover(hangover()))
            .unwrap();
        let mut found = Vec::new();
        for (i, frame) in audio.chunks(160).enumerate() {
            let ran_window = vad.pending.len() + frame.len() >= WINDOW;
            let t0 = Instant::now();
            let t = vad.push(frame);
            if ran_window && i > 0 {
                window_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            if t != VadTransition::None {
                found.push((i, t));
            }
        }
        let starts: Vec<usize> = found
            .iter()
            .filter(|(_, t)| *t == VadTransition::SpeechStarted)
            .map(|(i, _)| *i)
            .collect();
        assert!(!starts.is_empty(), "{name}: no speech found: {found:?}");
        // Not before the speech (25 frames of leading silence), and it ends after it.
        assert!(
            starts[0] >= 25,
            "{name}: speech started in the silence: {found:?}"
        );
        assert_eq!(
            found.last().map(|(_, t)| *t),
            Some(VadTransition::SpeechEnded),
            "{name}: {found:?}"
        );
        assert!(!vad.is_speaking());
    }
    window_ms.sort_by(f64::total_cmp);
    let at = |q: f64| window_ms[((window_ms.len() - 1) as f64 * q) as usize];
    let (p50, p99) = (at(0.5), at(0.99));
    eprintln!(
        "silero: {} windows of 32 ms: p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
        window_ms.len(),
        at(1.0)
    );
    assert!(
        p50 < 2.0,
        "{p50} ms per 32 ms window is too slow to run inline in the call task"
    );

    for (what, audio) in [
        ("silence", silence(3_000)),
        ("low noise", with_noise(&silence(3_000), 150.0, 7)),
    ] {
        let mut vad = model
            .detector(SileroConfig::with_hangover(hangover()))
            .unwrap();
        let found = transitions(&mut vad, &audio);
        assert!(found.is_empty(), "{what}: {found:?}");
        assert!(vad.probability() < 0.35, "{what}: {}", vad.probability());
    }
}

#[test]
fn a_short_click_does_not_start_speech() {
    let Some(model) = model() else { return };
    // 10 ms of a full-scale decaying 1 kHz burst in the middle of silence.
    let click: Vec<u8> = (0..80)
        .map(|i| {
            let t = i as f64 / 8_000.0;
            let s =
                30_000.0 * (-t * 400.0).exp() * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin();
            shared::mulaw::encode(s as i16)
        })
        .collect();
    let audio = [
        silence(1_000),
        click.clone(),
        silence(1_000),
        click,
        silence(1_000),
    ]
    .concat();
    let mut vad = model
        .detector(SileroConfig::with_hangover(hangover()))
        .unwrap();
    let found = transitions(&mut vad, &audio);
    assert!(found.is_empty(), "a click started speech: {found:?}");
}

#[test]
fn on_noisy_speech_it_is_not_worse_than_the_energy_vad() {
    let Some(model) = model() else { return };
    let gap = silence(1_500);
    let (a, b) = (fixture("01.ulaw"), fixture("03.ulaw"));
    let clean = [gap.clone(), a.clone(), gap.clone(), b.clone(), gap.clone()].concat();
    // Where the caller talks, in frames: each fixture, plus the stop hangover after it (a
    // perfect detector still "speaks" for 500 ms after the last word).
    let frames = clean.len() / 160;
    let hang = hangover().stop_frames as usize + 5;
    let spans = [
        (gap.len() / 160, (gap.len() + a.len()) / 160),
        (
            (2 * gap.len() + a.len()) / 160,
            (2 * gap.len() + a.len() + b.len()) / 160,
        ),
    ];
    // Frames where speaking is wrong (well outside the speech) and where silence is wrong
    // (inside it, after a start allowance of 200 ms). Short pauses within the sentences are
    // under the stop hangover, so "speaking" is right throughout.
    let errors = |speaking: &[bool]| -> f64 {
        let mut wrong = 0;
        let mut judged = 0;
        for (i, &s) in speaking.iter().enumerate() {
            let inside = spans.iter().any(|&(from, to)| i >= from + 10 && i < to);
            let near = spans
                .iter()
                .any(|&(from, to)| i + 5 >= from && i < to + hang);
            if inside {
                judged += 1;
                wrong += usize::from(!s);
            } else if !near {
                judged += 1;
                wrong += usize::from(s);
            }
        }
        wrong as f64 / judged as f64
    };
    for noise in [250.0, 500.0, 900.0] {
        let noisy = with_noise(&clean, noise, 42);
        assert_eq!(noisy.len() / 160, frames);
        let mut silero = model
            .detector(SileroConfig::with_hangover(hangover()))
            .unwrap();
        let silero_err = errors(&speaking(&mut silero, &noisy));
        let mut energy = EnergyVad::new(hangover());
        let energy_err = errors(&speaking(&mut energy, &noisy));
        eprintln!(
            "noise rms {noise}: frame error silero {:.1}%, energy {:.1}%",
            silero_err * 100.0,
            energy_err * 100.0
        );
        assert!(
            silero_err <= energy_err,
            "noise {noise}: silero {silero_err} vs energy {energy_err}"
        );
        assert!(
            silero_err < 0.15,
            "noise {noise}: silero error {silero_err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_calls_decide_exactly_as_a_call_alone() {
    let Some(model) = model() else { return };
    // Four calls at once, each on different speech: their windows share batches.
    let names = ["01.ulaw", "02.ulaw", "03.ulaw", "04.ulaw"];
    let audio: Vec<Vec<u8>> = names
        .iter()
        .map(|n| [silence(700), fixture(n), silence(1_000)].concat())
        .collect();
    let before = model.stats();
    let calls: Vec<_> = audio
        .iter()
        .cloned()
        .map(|audio| {
            let mut vad = model
                .detector(SileroConfig::with_hangover(hangover()))
                .unwrap();
            tokio::spawn(async move {
                let mut found = Vec::new();
                for (i, frame) in audio.chunks(160).enumerate() {
                    let t = vad.push_batched(frame).await;
                    if t != VadTransition::None {
                        found.push((i, t));
                    }
                }
                found
            })
        })
        .collect();
    let mut batched = Vec::new();
    for call in calls {
        batched.push(call.await.unwrap());
    }
    let after = model.stats();
    for (audio, batched) in audio.into_iter().zip(&batched) {
        // Alone: each window a batch of one (the synchronous push blocks, so off the runtime).
        let mut alone = model
            .detector(SileroConfig::with_hangover(hangover()))
            .unwrap();
        let alone = tokio::task::spawn_blocking(move || transitions(&mut alone, &audio))
            .await
            .unwrap();
        assert_eq!(&alone, batched);
        assert_eq!(batched.len(), 2, "{batched:?}");
    }
    // The leading and trailing silence never reached the network.
    let gated = after.gated - before.gated;
    assert!(gated >= 4 * (700 + 500) / 32, "only {gated} windows gated");
    assert!(after.batches > before.batches);
}

#[test]
fn a_short_word_a_pause_and_more_speech_stay_one_turn() {
    let Some(model) = model() else { return };
    // "Hi," (the first 360 ms of fixture 01, then its own 320 ms pause), 300 ms more silence,
    // then the rest of the sentence: the pause after a greeting word that cut the demo's
    // "Hi, what are your opening hours on Saturday?" into "Hi" and the rest.
    let speech = fixture("01.ulaw");
    let (hi, rest) = speech.split_at(18 * 160);
    let audio = [
        silence(500),
        hi.to_vec(),
        silence(300),
        rest.to_vec(),
        silence(1_500),
    ]
    .concat();
    let agent = VadConfig {
        stop_frames: 25,
        ..VadConfig::default()
    };
    let mut vad = model.detector(SileroConfig::with_hangover(agent)).unwrap();
    let found = transitions(&mut vad, &audio);
    assert_eq!(found.len(), 2, "the turn was split: {found:?}");
    // The same audio through the hangover without the short-turn rule: split after "Hi,".
    let mut before = model
        .detector(SileroConfig::with_hangover(VadConfig {
            short_voiced_frames: 0,
            ..agent
        }))
        .unwrap();
    let split = transitions(&mut before, &audio);
    assert_eq!(split.len(), 4, "{split:?}");
    assert!(split[1].0 < 25 + 18 + 15 + 25 + 5, "{split:?}");
}

#[test]
fn barge_in_length_speech_is_seen_within_a_window_of_its_minimum() {
    let Some(model) = model() else { return };
    // The agent interrupts itself after 10 voiced frames (200 ms): over silence, speech must
    // get there within the start of the word plus one 32 ms window (and Silero's onset).
    let speech = fixture("02.ulaw");
    let onset = speech.chunks(160).position(|f| rms(f) > 400.0).unwrap();
    let audio = [silence(1_000), speech].concat();
    let mut vad = model
        .detector(SileroConfig::with_hangover(hangover()))
        .unwrap();
    let reached = audio
        .chunks(160)
        .position(|f| {
            vad.push(f);
            vad.voiced_run() >= 10
        })
        .unwrap();
    let frames_after_onset = reached - (1_000 / 20 + onset);
    eprintln!("barge-in length reached {frames_after_onset} frames after the speech onset");
    // 10 frames of speech, 2 frames (one window), and 2 frames for Silero's onset.
    assert!(frames_after_onset <= 10 + 2 + 2, "{frames_after_onset}");
}
