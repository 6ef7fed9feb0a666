//! Silero VAD on the caller's 8 kHz audio: a small LSTM network that tells speech from noise
//! far better than an energy threshold (line hiss, music on hold, a TV in the room).
//!
//! - The model is `silero_vad.onnx` from the PyPI `silero-vad` wheel (`cargo xtask models`), run
//!   with the process's ONNX Runtime ([`super::onnx`]). It takes 256 new samples (32 ms at
//!   8 kHz) after 32 samples of context, an LSTM state `[2,B,128]` and the rate, and returns the
//!   speech probability and the next state, for a batch of `B` independent streams at once.
//! - Per call ([`SileroVad`]): the state, the context and the samples not yet forming a window.
//!   Twilio's 20 ms frames are decoded to f32 and re-chunked into 256-sample windows; a frame
//!   takes the probability of the latest window.
//! - A window quieter than [`SileroConfig::gate_rms`] (phone-line silence) is silence without
//!   running the network: the cheap energy measure answers the obvious case, the network the
//!   hard one (noise vs voice). Callers are silent half of a call, so this halves the work.
//! - Start and stop use the energy VAD's [`Hangover`] (same frame counts), with hysteresis:
//!   a frame is voiced at ≥ [`SileroConfig::threshold`] outside speech and at ≥
//!   [`SileroConfig::neg_threshold`] inside it, as Silero's own `get_speech_timestamps` does.
//! - The network loads once per node ([`SileroModel`], shared as `Arc`). A window costs
//!   ~0.17 ms of CPU whatever the batching (the network's arithmetic, not call overhead), so
//!   200 calls need most of a core. Run inline in the call tasks (as before) it took both of a
//!   2-core node's runtime workers, blocking on a few mutexed sessions, and every turn's
//!   network and timer wake-ups queued behind it (p99 added latency 4.1 s at 200 calls).
//!   Calls now send windows to batch threads ([`SileroVad::push_batched`]): one thread per core
//!   but one, each running every queued window as one batch, so inference never holds a
//!   runtime worker and never takes the last core.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use ort::session::Session;
use ort::value::Tensor;
use tokio::sync::oneshot;

use super::onnx::{self, OnnxRuntimeError};
use crate::agent::vad::{EnergyVad, Hangover, VadConfig, VadTransition, rms};

/// The rate the node feeds (Twilio's mu-law).
const SAMPLE_RATE: i64 = 8_000;
/// New samples per inference at 8 kHz (32 ms).
const WINDOW: usize = 256;
/// Samples of the previous window the network sees before the new ones, at 8 kHz.
const CONTEXT: usize = 32;
/// Size of one stream's LSTM state `[2, 1, 128]`.
const STATE: usize = 2 * 128;
/// Most windows in one batched run: bounds one run's time (~30 ms at 256) so a call whose
/// window arrives just after a run starts does not wait for a huge one.
const MAX_BATCH: usize = 256;

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

/// Thresholds on Silero's speech probability, the energy gate, and the hangover in frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SileroConfig {
    /// Probability at or above which a frame is voiced outside speech (Silero's default).
    pub threshold: f32,
    /// Probability at or above which a frame stays voiced inside speech: lower than
    /// `threshold` so the soft end of a word does not count toward the stop hangover.
    pub neg_threshold: f32,
    /// Window RMS (16-bit PCM) below which a window is silence without running the network.
    /// Twilio's line silence is 0–50 and the quietest syllables of speech are in the hundreds,
    /// so nothing the network would call speech is skipped.
    pub gate_rms: f64,
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
            gate_rms: 50.0,
            hangover,
        }
    }
}

/// One call's network input and state for one window: moved to a batch thread and back.
#[derive(Debug)]
struct Stream {
    /// `[288]`: the previous window's last 32 samples, then the new window.
    input: Box<[f32; CONTEXT + WINDOW]>,
    /// The LSTM state `[2, 128]` carried from window to window.
    state: Box<[f32; STATE]>,
}

impl Stream {
    fn new() -> Self {
        Stream {
            input: Box::new([0.0; CONTEXT + WINDOW]),
            state: Box::new([0.0; STATE]),
        }
    }
}

/// A session and the constant rate input: runs a batch of streams.
struct Runner {
    /// `ort`'s `Session::run` takes `&mut self`: one owner per session.
    session: Session,
    /// The sample rate input (constant).
    sr: Tensor<i64>,
}

impl Runner {
    /// Runs one window of every stream in one inference: returns their probabilities and
    /// updates their states.
    fn run(&mut self, streams: &mut [&mut Stream]) -> Result<Vec<f32>, SileroError> {
        let b = streams.len();
        let mut input = Vec::with_capacity(b * (CONTEXT + WINDOW));
        let mut state = vec![0.0f32; b * STATE];
        for (i, stream) in streams.iter().enumerate() {
            input.extend_from_slice(&stream.input[..]);
            // `[2, B, 128]`: layer-major.
            for layer in 0..2 {
                state[(layer * b + i) * 128..][..128]
                    .copy_from_slice(&stream.state[layer * 128..][..128]);
            }
        }
        let input = Tensor::from_array(([b, CONTEXT + WINDOW], input)).map_err(inference)?;
        let state = Tensor::from_array(([2usize, b, 128], state)).map_err(inference)?;
        let outputs = self
            .session
            .run(ort::inputs![
                "input" => &input,
                "state" => &state,
                "sr" => &self.sr,
            ])
            .map_err(inference)?;
        let (_, probabilities) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        let (_, next) = outputs[1].try_extract_tensor::<f32>().map_err(inference)?;
        if probabilities.len() != b || next.len() != b * STATE {
            return Err(inference(format!(
                "{} probabilities and {} state values for {b} windows",
                probabilities.len(),
                next.len()
            )));
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            for layer in 0..2 {
                stream.state[layer * 128..][..128]
                    .copy_from_slice(&next[(layer * b + i) * 128..][..128]);
            }
        }
        Ok(probabilities.to_vec())
    }
}

/// A batch thread's answer to one window: the call's stream back, and the probability.
type Answer = (Stream, Result<f32, SileroError>);

/// One window waiting for a batch thread, with where its answer goes.
struct Job {
    /// The call's input and state (returned with the answer).
    stream: Stream,
    /// The call's task, waiting.
    reply: oneshot::Sender<Answer>,
}

/// Counters of the node's Silero work, for benchmarks and profiling.
#[derive(Debug, Default)]
struct Counters {
    /// Windows the network ran on.
    windows: AtomicU64,
    /// Windows the energy gate answered without the network.
    gated: AtomicU64,
    /// Batched runs.
    batches: AtomicU64,
    /// Time inside batched runs, µs.
    busy_us: AtomicU64,
}

/// A snapshot of [`SileroModel::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SileroStats {
    /// Windows the network ran on.
    pub windows: u64,
    /// Windows the energy gate answered without the network.
    pub gated: u64,
    /// Batched runs (windows / batches = mean batch size).
    pub batches: u64,
    /// CPU time inside batched runs, µs.
    pub busy_us: u64,
}

/// The loaded network, shared by every call of the node.
pub struct SileroModel {
    /// One queue per batch thread; a call sticks to one (its windows stay in order).
    workers: Vec<mpsc::Sender<Job>>,
    /// Round-robin assignment of calls to batch threads.
    next: AtomicUsize,
    /// Work done, shared with the batch threads.
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SileroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroModel")
            .field("batch_threads", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl SileroModel {
    /// Loads `model` with ONNX Runtime from `libonnxruntime_so` for a machine of `cores` cores:
    /// `cores - 1` batch threads (at least one), so inference never takes every core from the
    /// runtime. Blocking (~50 ms per session).
    pub fn load(libonnxruntime_so: &Path, model: &Path, cores: usize) -> Result<Self, SileroError> {
        let env = onnx::environment(libonnxruntime_so)?;
        let load = |e: &dyn std::fmt::Display| SileroError::Load {
            path: model.display().to_string(),
            message: e.to_string(),
        };
        let runner = || -> Result<Runner, SileroError> {
            let session = Session::builder(&env)
                .map_err(|e| load(&e))?
                .with_intra_threads(1)
                .map_err(|e| load(&e))?
                .with_inter_threads(1)
                .map_err(|e| load(&e))?
                .commit_from_file(model)
                .map_err(|e| load(&e))?;
            Ok(Runner {
                session,
                sr: Tensor::from_array(([1usize], vec![SAMPLE_RATE])).map_err(inference)?,
            })
        };
        let counters = Arc::new(Counters::default());
        let mut workers = Vec::new();
        for n in 0..cores.saturating_sub(1).max(1) {
            let (tx, rx) = mpsc::channel();
            let runner = runner()?;
            let counters = Arc::clone(&counters);
            std::thread::Builder::new()
                .name(format!("silero-{n}"))
                .spawn(move || serve_batches(runner, &rx, &counters))
                .map_err(|e| load(&e))?;
            workers.push(tx);
        }
        Ok(SileroModel {
            workers,
            next: AtomicUsize::new(0),
            counters,
        })
    }

    /// A fresh detector for one call.
    pub fn detector(self: &Arc<Self>, config: SileroConfig) -> Result<SileroVad, SileroError> {
        let worker = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        Ok(SileroVad {
            model: Arc::clone(self),
            worker,
            config,
            stream: Some(Stream::new()),
            pending: Vec::with_capacity(WINDOW + shared::mulaw::FRAME_BYTES),
            probability: 0.0,
            hangover: Hangover::new(config.hangover),
            fallback: false,
        })
    }

    /// The work done so far by every call of this model.
    pub fn stats(&self) -> SileroStats {
        SileroStats {
            windows: self.counters.windows.load(Ordering::Relaxed),
            gated: self.counters.gated.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            busy_us: self.counters.busy_us.load(Ordering::Relaxed),
        }
    }
}

/// A batch thread: waits for a window, takes every window queued behind it (up to
/// [`MAX_BATCH`]) and runs them as one batch. No waiting to fill a batch: an idle node answers
/// a window at once, a busy one batches what piled up while the previous run ran.
fn serve_batches(mut runner: Runner, jobs: &mpsc::Receiver<Job>, counters: &Counters) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let t0 = std::time::Instant::now();
        let (mut streams, replies): (Vec<Stream>, Vec<_>) =
            batch.into_iter().map(|j| (j.stream, j.reply)).unzip();
        let result = {
            let mut refs: Vec<&mut Stream> = streams.iter_mut().collect();
            runner.run(&mut refs)
        };
        counters
            .busy_us
            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .windows
            .fetch_add(streams.len() as u64, Ordering::Relaxed);
        for (i, (stream, reply)) in streams.into_iter().zip(replies).enumerate() {
            let answer = match &result {
                Ok(p) => Ok(p[i]),
                Err(e) => Err(inference(e)),
            };
            // A call that ended meanwhile no longer listens.
            let _ = reply.send((stream, answer));
        }
    }
}

/// One call's Silero detector; see the module docs.
pub struct SileroVad {
    /// The network.
    model: Arc<SileroModel>,
    /// Which of the model's batch threads this call uses.
    worker: usize,
    /// Thresholds, gate and hangover.
    config: SileroConfig,
    /// The network's input and state; `None` only while a batch thread holds it (or after
    /// that thread died, which puts the call on the energy fallback).
    stream: Option<Stream>,
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
            .field("worker", &self.worker)
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

    /// Decodes a frame into the pending samples.
    fn decode(&mut self, frame: &[u8]) {
        if !self.fallback {
            self.pending.extend(
                frame
                    .iter()
                    .map(|&b| f32::from(shared::mulaw::decode(b)) / 32768.0),
            );
        }
    }

    /// Moves the pending whole windows into the stream's input (after the previous window's
    /// last samples), answering those quieter than the gate as silence, until one needs the
    /// network: then `true`, with that window in the input.
    fn window_to_infer(&mut self) -> bool {
        while !self.fallback && self.pending.len() >= WINDOW {
            let Some(stream) = self.stream.as_mut() else {
                self.fail(&inference("the stream was lost with its batch thread"));
                return false;
            };
            let input = &mut stream.input[..];
            input.copy_within(WINDOW..WINDOW + CONTEXT, 0);
            input[CONTEXT..].copy_from_slice(&self.pending[..WINDOW]);
            self.pending.drain(..WINDOW);
            let energy = input[CONTEXT..].iter().map(|s| s * s).sum::<f32>() / WINDOW as f32;
            if f64::from(energy.sqrt()) * 32768.0 >= self.config.gate_rms {
                return true;
            }
            self.probability = 0.0;
            self.model.counters.gated.fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    fn fail(&mut self, err: &SileroError) {
        if !self.fallback {
            self.fallback = true;
            self.pending.clear();
            tracing::warn!(error = %err, "Silero VAD failed; this call falls back to the energy VAD");
        }
    }

    /// The frame's decision from the latest probability, through the hangover.
    fn decide(&mut self, frame: &[u8]) -> VadTransition {
        let voiced = if self.fallback {
            rms(frame) > self.config.hangover.rms_threshold
        } else if self.hangover.is_speaking() {
            self.probability >= self.config.neg_threshold
        } else {
            self.probability >= self.config.threshold
        };
        self.hangover.push(voiced)
    }

    /// Sends the stream's input to the call's batch thread: the answer (with the stream)
    /// comes back on the receiver, for [`SileroVad::took`].
    fn send_window(&mut self) -> Result<oneshot::Receiver<Answer>, SileroError> {
        let stream = self.stream.take().ok_or_else(|| inference("no stream"))?;
        let (reply, answer) = oneshot::channel();
        self.model.workers[self.worker]
            .send(Job { stream, reply })
            .map_err(|_| inference("the Silero batch thread stopped"))?;
        Ok(answer)
    }

    /// Takes a window's answer from the batch thread: the stream back, and the probability.
    fn took(&mut self, answer: Result<Answer, oneshot::error::RecvError>) {
        let result = answer
            .map_err(|_| inference("the Silero batch thread stopped"))
            .and_then(|(stream, result)| {
                self.stream = Some(stream);
                result
            });
        match result {
            Ok(p) => self.probability = p,
            Err(err) => self.fail(&err),
        }
    }

    /// Feeds one 20 ms mu-law frame, running its windows on the call's batch thread: the
    /// call's task waits (asynchronously) instead of holding a runtime worker for the
    /// inference. There is deliberately no synchronous `push` (no [`VoiceActivity`] impl):
    /// waiting for the batch thread synchronously would block a runtime worker, or panic
    /// inside one. The unit tests add a blocking impl of their own.
    pub async fn push_batched(&mut self, frame: &[u8]) -> VadTransition {
        self.decode(frame);
        while self.window_to_infer() {
            match self.send_window() {
                Ok(answer) => self.took(answer.await),
                Err(err) => self.fail(&err),
            }
        }
        self.decide(frame)
    }
}

/// One call's detector as the AI agent holds it: Silero (batched) or the energy VAD.
#[derive(Debug)]
pub enum CallVad {
    /// The node loaded Silero.
    Silero(Box<SileroVad>),
    /// No Silero model (or no detector could be made).
    Energy(EnergyVad),
}

impl CallVad {
    /// Feeds one 20 ms mu-law frame.
    pub async fn push(&mut self, frame: &[u8]) -> VadTransition {
        match self {
            CallVad::Silero(vad) => vad.push_batched(frame).await,
            CallVad::Energy(vad) => vad.push(frame),
        }
    }

    /// Its start/stop state (both detectors share [`Hangover`]): whether speech is in
    /// progress, and the voiced or unvoiced run ending at the latest frame.
    pub fn hangover(&self) -> &Hangover {
        match self {
            CallVad::Silero(vad) => &vad.hangover,
            CallVad::Energy(vad) => vad.hangover(),
        }
    }
}

/// The detector for one call: Silero when the node loaded it, the energy VAD otherwise (or if
/// a detector cannot be made, which is logged).
pub fn call_vad(model: Option<&Arc<SileroModel>>, hangover: VadConfig) -> CallVad {
    if let Some(model) = model {
        match model.detector(SileroConfig::with_hangover(hangover)) {
            Ok(vad) => return CallVad::Silero(Box::new(vad)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start Silero VAD for this call; using the energy VAD")
            }
        }
    }
    CallVad::Energy(EnergyVad::new(hangover))
}

#[cfg(test)]
mod tests;
