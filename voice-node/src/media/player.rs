//! Outbound audio: utterances cut into 20 ms frames and paced slightly faster than real time.
//!
//! Twilio buffers what we send and plays it in order. Sending everything at once would make a
//! barge-in `clear` throw away seconds of audio we already paid to synthesize and would trip its
//! buffering limits (twilio.md §4.3); sending at exactly real time would let network jitter
//! starve the caller's playback. So frame `k` of a continuous run is due at
//!
//! ```text
//! origin + k·20 ms − min(initial_lead + k·speedup, max_lead)
//! ```
//!
//! — a small burst up front (the first ~60 ms go out at once so Twilio's jitter buffer fills),
//! then one frame every ~19 ms until we are `max_lead` ahead, then exactly real time. A frame
//! sent more than 20 ms after its due time counts as late.
//!
//! Frames leave in small batches: once a frame is due, the frames due within the next
//! `batch_ahead` (60 ms) go with it, so a call wakes and writes to its socket every ~80 ms
//! instead of every 20 ms. The socket write of a batch is one syscall; at a thousand calls that
//! is most of the node's CPU. The lead then peaks at `max_lead + batch_ahead`.
//!
//! The player is a plain state machine with no I/O: the session asks it for the next
//! [`Step`] and does the sending, so pacing is tested with tokio's paused clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use shared::mulaw::{FRAME_BYTES, FrameCutter, SILENCE};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;

use crate::agent::{CallClock, SpeechAudio, TurnTimings, Utterance, UtteranceId};

/// Pacing parameters (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Audio per frame.
    pub frame: Duration,
    /// How far ahead of real time the first frame is (the initial burst).
    pub initial_lead: Duration,
    /// How much sooner than real time each further frame goes (20 ms frames every 19 ms).
    pub speedup_per_frame: Duration,
    /// The most we run ahead of real time (Twilio integrators report ≤ 0.4 s stays audible).
    pub max_lead: Duration,
    /// A frame sent later than this after its due time counts as late.
    pub late_after: Duration,
    /// How often a starved streaming utterance is polled for more audio.
    pub starved_poll: Duration,
    /// Once a frame is due, the frames due this much later go out with it (see the module docs).
    pub batch_ahead: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            frame: Duration::from_millis(20),
            initial_lead: Duration::from_millis(60),
            speedup_per_frame: Duration::from_millis(1),
            max_lead: Duration::from_millis(300),
            late_after: Duration::from_millis(20),
            starved_poll: Duration::from_millis(10),
            batch_ahead: Duration::from_millis(60),
        }
    }
}

impl Pacing {
    /// When frame `k` of a run that started at `origin` is due.
    pub fn due(&self, origin: Instant, k: u32) -> Instant {
        let lead = (self.initial_lead + self.speedup_per_frame * k).min(self.max_lead);
        origin + (self.frame * k).saturating_sub(lead)
    }
}

/// The first frame of an agent utterance went out: the session writes its transcript turn now,
/// so turns keep the order in which they were heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtteranceStarted {
    /// The utterance.
    pub id: UtteranceId,
    /// Its transcript turn's sequence number.
    pub seq: u32,
    /// What it says; `None` when the agent writes the turn itself (see `Utterance::text`).
    pub text: Option<String>,
    /// Its timings, with `first_audio_frame_ms` filled in.
    pub timings: TurnTimings,
}

/// An utterance is over: played to the end, or cut short / never played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtteranceFinished {
    /// The utterance.
    pub id: UtteranceId,
    /// Its transcript turn's sequence number, if any of it was sent.
    pub seq: Option<u32>,
    /// Whether the caller missed part of it (barge-in, call end).
    pub interrupted: bool,
}

/// What the session should do next.
// `Send` carries the frame by value: this is a short-lived return value on the stack, and
// boxing it would allocate once per frame, which the media path avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    /// Send this frame now.
    Send {
        /// 160 bytes of mu-law.
        frame: [u8; FRAME_BYTES],
        /// More than `late_after` behind schedule.
        late: bool,
        /// Set on an utterance's first frame.
        started: Option<UtteranceStarted>,
    },
    /// The utterance's last frame is out: send its mark.
    Mark(UtteranceId),
    /// Nothing is due before this instant.
    WaitUntil(Instant),
    /// Nothing to send.
    Idle,
}

/// Where an utterance's frames come from.
#[derive(Debug)]
enum Source {
    /// A whole clip; `pos` is the next byte to send.
    Clip { data: Arc<[u8]>, pos: usize },
    /// A stream of chunks re-cut into frames.
    Stream {
        rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
        cutter: FrameCutter,
        ended: bool,
    },
}

impl Source {
    /// The next frame if one is ready; `Err(true)` when the source is exhausted, `Err(false)`
    /// when a stream is waiting for more audio.
    fn next_frame(&mut self) -> Result<[u8; FRAME_BYTES], bool> {
        match self {
            Source::Clip { data, pos } => {
                let rest = data.get(*pos..).unwrap_or_default();
                if rest.is_empty() {
                    return Err(true);
                }
                let n = rest.len().min(FRAME_BYTES);
                let mut frame = [SILENCE; FRAME_BYTES];
                frame[..n].copy_from_slice(&rest[..n]);
                *pos += n;
                Ok(frame)
            }
            Source::Stream { rx, cutter, ended } => {
                while !*ended && cutter.pending() < FRAME_BYTES {
                    match rx.try_recv() {
                        Ok(chunk) => cutter.push(&chunk),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => *ended = true,
                    }
                }
                if let Some(frame) = cutter.next_frame() {
                    return Ok(frame);
                }
                if *ended {
                    cutter.flush().ok_or(true)
                } else {
                    Err(false)
                }
            }
        }
    }

    /// Frames not yet sent (for a stream: those already buffered).
    fn remaining_frames(&self) -> u64 {
        let bytes = match self {
            Source::Clip { data, pos } => data.len().saturating_sub(*pos),
            Source::Stream { cutter, .. } => cutter.pending(),
        };
        bytes.div_ceil(FRAME_BYTES) as u64
    }
}

/// One queued utterance.
#[derive(Debug)]
struct Queued {
    id: UtteranceId,
    text: Option<String>,
    timings: TurnTimings,
    source: Source,
    /// Transcript sequence number, assigned at the first frame.
    seq: Option<u32>,
}

/// An utterance whose mark is out, waiting for Twilio's echo.
#[derive(Debug, Clone, Copy)]
struct AwaitingMark {
    id: UtteranceId,
    seq: Option<u32>,
    /// A `clear` was sent after it: its echo means "discarded", not "played".
    cleared: bool,
}

/// What a barge-in did.
#[derive(Debug, Default)]
pub struct Interruption {
    /// Whether Twilio holds audio of ours to discard (so `clear` must be sent).
    pub clear_needed: bool,
    /// Frames that will never be sent.
    pub dropped_frames: u64,
    /// Utterances resolved right away (cut mid-send or never started).
    pub finished: Vec<UtteranceFinished>,
}

/// Per-call outbound audio state; see the module docs.
#[derive(Debug)]
pub struct Player {
    /// Pacing parameters.
    pacing: Pacing,
    /// The call's clock, for `first_audio_frame_ms`.
    clock: CallClock,
    /// Utterances to send; the front one is being sent.
    queue: VecDeque<Queued>,
    /// The current run of continuous sending: its origin and the next frame index. `None` when
    /// idle or starved, so the next frame starts a new run (with a new burst).
    run: Option<(Instant, u32)>,
    /// Marks sent and not yet echoed, oldest first.
    awaiting: VecDeque<AwaitingMark>,
    /// While a batch is going out: frames due up to this instant are sent with it.
    batch_until: Option<Instant>,
}

impl Player {
    /// An idle player.
    pub fn new(pacing: Pacing, clock: CallClock) -> Self {
        Player {
            pacing,
            clock,
            queue: VecDeque::new(),
            run: None,
            awaiting: VecDeque::new(),
            batch_until: None,
        }
    }

    /// Queues an utterance after those already queued.
    pub fn enqueue(&mut self, utterance: Utterance) {
        let source = match utterance.audio {
            SpeechAudio::Clip(data) => Source::Clip { data, pos: 0 },
            SpeechAudio::Stream(rx) => Source::Stream {
                rx,
                cutter: FrameCutter::new(),
                ended: false,
            },
        };
        self.queue.push_back(Queued {
            id: utterance.id,
            text: utterance.text,
            timings: utterance.timings,
            source,
            seq: None,
        });
    }

    /// Nothing queued and no mark outstanding: everything said has been heard (or cleared).
    pub fn is_quiet(&self) -> bool {
        self.queue.is_empty() && self.awaiting.is_empty()
    }

    /// The next thing to do at `now`. `next_seq` hands out transcript sequence numbers.
    /// Called until it answers `WaitUntil` or `Idle`: the frames it hands out meanwhile are one
    /// batch (see the module docs).
    pub fn step(&mut self, now: Instant, next_seq: &mut u32) -> Step {
        let Some(current) = self.queue.front_mut() else {
            self.run = None;
            self.batch_until = None;
            return Step::Idle;
        };
        let (origin, k) = *self.run.get_or_insert((now, 0));
        let due = self.pacing.due(origin, k);
        let horizon = self.batch_until.filter(|end| *end > now).unwrap_or(now);
        if due > horizon {
            self.batch_until = None;
            return Step::WaitUntil(due);
        }
        if due <= now && self.batch_until.is_none() {
            self.batch_until = Some(now + self.pacing.batch_ahead);
        }
        match current.source.next_frame() {
            Ok(frame) => {
                let started = if current.seq.is_none() {
                    let seq = *next_seq;
                    *next_seq += 1;
                    current.seq = Some(seq);
                    current.timings.first_audio_frame_ms = Some(self.clock.ms_at(now));
                    Some(UtteranceStarted {
                        id: current.id,
                        seq,
                        text: current.text.clone(),
                        timings: current.timings,
                    })
                } else {
                    None
                };
                self.run = Some((origin, k + 1));
                Step::Send {
                    frame,
                    late: now.saturating_duration_since(due) > self.pacing.late_after,
                    started,
                }
            }
            Err(true) => {
                let done = self.queue.pop_front().map(|q| (q.id, q.seq));
                match done {
                    Some((id, seq)) => {
                        self.awaiting.push_back(AwaitingMark {
                            id,
                            seq,
                            cleared: false,
                        });
                        Step::Mark(id)
                    }
                    None => Step::Idle,
                }
            }
            Err(false) => {
                // Starved: the TTS is slower than playback. Start a new run when audio comes.
                self.run = None;
                self.batch_until = None;
                Step::WaitUntil(now + self.pacing.starved_poll)
            }
        }
    }

    /// Twilio echoed mark `name`. Returns the utterance it ends, if it is one of ours.
    pub fn on_mark(&mut self, name: &str) -> Option<UtteranceFinished> {
        let id = UtteranceId::from_mark_name(name)?;
        let index = self.awaiting.iter().position(|a| a.id == id)?;
        let mark = self.awaiting.remove(index)?;
        Some(UtteranceFinished {
            id: mark.id,
            seq: mark.seq,
            interrupted: mark.cleared,
        })
    }

    /// Barge-in: drops everything queued, and tells whether Twilio must be sent `clear`.
    pub fn interrupt(&mut self) -> Interruption {
        let mut result = Interruption::default();
        for queued in self.queue.drain(..) {
            result.dropped_frames += queued.source.remaining_frames();
            if queued.seq.is_some() {
                // Partly sent: Twilio holds its head.
                result.clear_needed = true;
            }
            result.finished.push(UtteranceFinished {
                id: queued.id,
                seq: queued.seq,
                interrupted: true,
            });
        }
        for mark in &mut self.awaiting {
            mark.cleared = true;
            result.clear_needed = true;
        }
        self.run = None;
        self.batch_until = None;
        result
    }

    /// The call is over: resolves everything still pending. Utterances whose mark was sent but
    /// not echoed count as heard unless a `clear` discarded them.
    pub fn finish(&mut self) -> Interruption {
        let mut result = Interruption::default();
        for queued in self.queue.drain(..) {
            result.dropped_frames += queued.source.remaining_frames();
            result.finished.push(UtteranceFinished {
                id: queued.id,
                seq: queued.seq,
                interrupted: true,
            });
        }
        for mark in self.awaiting.drain(..) {
            result.finished.push(UtteranceFinished {
                id: mark.id,
                seq: mark.seq,
                interrupted: mark.cleared,
            });
        }
        self.run = None;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(id: u32, frames: usize) -> Utterance {
        Utterance {
            id: UtteranceId(id),
            audio: SpeechAudio::Clip(Arc::from(vec![0x55u8; frames * FRAME_BYTES])),
            text: Some(format!("utterance {id}")),
            timings: TurnTimings::default(),
        }
    }

    /// The default pacing, one frame per wake.
    fn unbatched() -> Pacing {
        Pacing {
            batch_ahead: Duration::ZERO,
            ..Pacing::default()
        }
    }

    /// Runs the player to idle on the paused clock, returning (send times relative to the
    /// start, marks in order, late count).
    async fn drain(player: &mut Player) -> (Vec<Duration>, Vec<UtteranceId>, u32) {
        let start = Instant::now();
        let mut seq = 0;
        let (mut sends, mut marks, mut late) = (Vec::new(), Vec::new(), 0);
        loop {
            match player.step(Instant::now(), &mut seq) {
                Step::Send { late: l, .. } => {
                    sends.push(Instant::now() - start);
                    late += u32::from(l);
                }
                Step::Mark(id) => marks.push(id),
                Step::WaitUntil(t) => tokio::time::sleep_until(t).await,
                Step::Idle => return (sends, marks, late),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_then_runs_slightly_faster_than_real_time_up_to_the_lead_cap() {
        // Frame by frame, to see the schedule itself (batches: the next test).
        let pacing = unbatched();
        let mut player = Player::new(pacing, CallClock::starting_at(Instant::now()));
        player.enqueue(clip(1, 500)); // 10 s of audio
        let (sends, marks, late) = drain(&mut player).await;
        assert_eq!(sends.len(), 500);
        assert_eq!(marks, vec![UtteranceId(1)]);
        assert_eq!(late, 0);
        // Initial burst: the first four frames (80 ms of audio) go out at once.
        assert!(sends[..4].iter().all(|t| t.is_zero()), "{:?}", &sends[..5]);
        assert!(!sends[4].is_zero());
        // Never more than max_lead ahead of real time, never behind it.
        for (k, sent) in sends.iter().enumerate() {
            let audio_end = pacing.frame * k as u32;
            assert!(
                audio_end.saturating_sub(*sent) <= pacing.max_lead,
                "frame {k}"
            );
            assert!(
                *sent <= audio_end,
                "frame {k} sent at {sent:?}, plays at {audio_end:?}"
            );
        }
        // 10 s of audio sent in 10 s minus the 300 ms lead.
        let last = *sends.last().unwrap();
        assert_eq!(last, pacing.frame * 499 - pacing.max_lead);
    }

    #[tokio::test(start_paused = true)]
    async fn frames_leave_in_batches_of_about_80_ms_never_late_never_too_far_ahead() {
        let pacing = Pacing::default();
        let mut player = Player::new(pacing, CallClock::starting_at(Instant::now()));
        player.enqueue(clip(1, 500)); // 10 s of audio
        let (sends, marks, late) = drain(&mut player).await;
        assert_eq!((sends.len(), marks.len(), late), (500, 1, 0));
        let mut wakes = sends.clone();
        wakes.dedup();
        // One socket write per ~4 frames instead of one per frame.
        assert!((110..=135).contains(&wakes.len()), "{} wakes", wakes.len());
        for (k, sent) in sends.iter().enumerate() {
            let plays_at = pacing.frame * k as u32;
            assert!(
                plays_at.saturating_sub(*sent) <= pacing.max_lead + pacing.batch_ahead,
                "frame {k} sent at {sent:?}, plays at {plays_at:?}"
            );
            assert!(*sent <= plays_at, "frame {k} sent at {sent:?}");
        }
        // Without batching the same audio takes four times as many wakes.
        let mut single = Player::new(unbatched(), CallClock::starting_at(Instant::now()));
        single.enqueue(clip(2, 500));
        let (mut one_by_one, _, _) = drain(&mut single).await;
        one_by_one.dedup();
        assert!(one_by_one.len() > 3 * wakes.len(), "{}", one_by_one.len());
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_utterances_share_one_run_and_each_gets_a_mark() {
        let mut player = Player::new(unbatched(), CallClock::starting_at(Instant::now()));
        player.enqueue(clip(1, 10));
        player.enqueue(clip(2, 10));
        let (sends, marks, _) = drain(&mut player).await;
        assert_eq!(sends.len(), 20);
        assert_eq!(marks, vec![UtteranceId(1), UtteranceId(2)]);
        // No second burst at the boundary.
        assert!(sends[10] > sends[9]);
        assert!(!player.is_quiet(), "marks still await their echo");
        assert_eq!(player.on_mark("utt-1").map(|f| f.interrupted), Some(false));
        assert!(player.on_mark("utt-1").is_none());
        assert!(player.on_mark("someone-else").is_none());
        player.on_mark("utt-2");
        assert!(player.is_quiet());
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_wakeup_counts_late_frames_and_catches_up() {
        let mut player = Player::new(unbatched(), CallClock::starting_at(Instant::now()));
        player.enqueue(clip(1, 100));
        let mut seq = 0;
        // Send the burst, then oversleep 100 ms.
        while let Step::Send { .. } = player.step(Instant::now(), &mut seq) {}
        tokio::time::advance(Duration::from_millis(100)).await;
        let mut late = 0;
        while let Step::Send { late: l, .. } = player.step(Instant::now(), &mut seq) {
            late += u32::from(l);
        }
        assert!(late >= 3, "{late}");
    }

    #[test]
    fn interrupt_drops_queued_frames_and_asks_for_clear_only_when_twilio_holds_audio() {
        let clock = CallClock::starting_at(Instant::now());
        let mut player = Player::new(Pacing::default(), clock);
        player.enqueue(clip(1, 5));
        let nothing_sent = player.interrupt();
        assert!(!nothing_sent.clear_needed);
        assert_eq!(nothing_sent.dropped_frames, 5);
        assert_eq!(nothing_sent.finished[0].seq, None);

        player.enqueue(clip(2, 5));
        player.enqueue(clip(3, 5));
        let mut seq = 7;
        let now = Instant::now();
        let Step::Send { started, .. } = player.step(now, &mut seq) else {
            panic!()
        };
        assert_eq!(started.map(|s| s.seq), Some(7));
        let cut = player.interrupt();
        assert!(cut.clear_needed);
        assert_eq!(cut.dropped_frames, 4 + 5);
        assert_eq!(cut.finished.len(), 2);
        assert!(cut.finished.iter().all(|f| f.interrupted));
        assert!(player.is_quiet());
        assert!(matches!(player.step(now, &mut seq), Step::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn streamed_audio_is_recut_and_its_tail_padded() {
        let clock = CallClock::starting_at(Instant::now());
        let mut player = Player::new(Pacing::default(), clock);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        player.enqueue(Utterance {
            id: UtteranceId(9),
            audio: SpeechAudio::Stream(rx),
            text: Some("streamed".into()),
            timings: TurnTimings::default(),
        });
        let mut seq = 0;
        assert!(matches!(
            player.step(Instant::now(), &mut seq),
            Step::WaitUntil(_)
        ));
        tx.send(vec![1u8; 100]).await.unwrap();
        tx.send(vec![2u8; 100]).await.unwrap();
        drop(tx);
        let (sends, marks, _) = drain(&mut player).await;
        assert_eq!(sends.len(), 2);
        assert_eq!(marks, vec![UtteranceId(9)]);
    }
}
