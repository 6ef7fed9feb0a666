//! Twilio's playback buffer, modelled: agent audio plays at real time in arrival order, a `mark`
//! is echoed when the audio sent before it has played (at once if nothing is buffered), and
//! `clear` drops the buffer and echoes every pending mark immediately (twilio.md §4.2–4.3).
//!
//! Pure logic over [`Instant`]s so tests drive it with a paused clock or explicit times.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Bytes of 8 kHz mu-law per millisecond.
const BYTES_PER_MS: u64 = 8;

/// The duration of `bytes` of 8 kHz mu-law.
pub fn audio_duration(bytes: usize) -> Duration {
    Duration::from_micros(bytes as u64 * 1000 / BYTES_PER_MS)
}

/// The agent's audio as the caller hears it.
#[derive(Debug, Default)]
pub struct Playback {
    /// When the buffered audio finishes playing; `None` or a past instant means idle.
    play_end: Option<Instant>,
    /// Marks waiting for their audio to play, with the time they become due, in order.
    pending: VecDeque<(String, Instant)>,
    /// Total agent audio received, in bytes.
    received_bytes: u64,
    /// Audio dropped by `clear` before it played, in bytes (approximate: whole ms).
    cleared_bytes: u64,
}

/// What a `media` frame did to the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaArrival {
    /// How long the buffer had been empty when this audio arrived (zero when it was playing).
    /// Within an utterance, more than a frame of this is an audible gap: a late frame.
    pub underrun: Duration,
}

impl Playback {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Agent audio arrived at `now`: it plays after whatever is buffered.
    pub fn on_media(&mut self, now: Instant, bytes: usize) -> MediaArrival {
        let (start, underrun) = match self.play_end {
            Some(end) if end > now => (end, Duration::ZERO),
            Some(end) => (now, now - end),
            None => (now, Duration::ZERO),
        };
        self.play_end = Some(start + audio_duration(bytes));
        self.received_bytes += bytes as u64;
        MediaArrival { underrun }
    }

    /// A mark arrived at `now`. Returns `Some(name)` when it is due at once (nothing buffered);
    /// otherwise it waits for [`due_marks`](Self::due_marks).
    pub fn on_mark(&mut self, now: Instant, name: String) -> Option<String> {
        match self.play_end {
            Some(end) if end > now => {
                self.pending.push_back((name, end));
                None
            }
            // Marks are echoed in order: one behind a pending mark waits for it.
            _ if !self.pending.is_empty() => {
                let due = self.pending.back().map(|(_, due)| *due).unwrap_or(now);
                self.pending.push_back((name, due));
                None
            }
            _ => Some(name),
        }
    }

    /// `clear` at `now`: drops the buffered audio and returns every pending mark, in order, to
    /// be echoed immediately.
    pub fn on_clear(&mut self, now: Instant) -> Vec<String> {
        if let Some(end) = self.play_end
            && end > now
        {
            self.cleared_bytes += (end - now).as_millis() as u64 * BYTES_PER_MS;
        }
        self.play_end = Some(now);
        self.pending.drain(..).map(|(name, _)| name).collect()
    }

    /// Marks whose audio has finished playing by `now`, in order.
    pub fn due_marks(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((_, at)) = self.pending.front() {
            if *at > now {
                break;
            }
            if let Some((name, _)) = self.pending.pop_front() {
                due.push(name);
            }
        }
        due
    }

    /// When the next pending mark becomes due.
    pub fn next_mark_due(&self) -> Option<Instant> {
        self.pending.front().map(|(_, at)| *at)
    }

    /// Whether agent audio is still playing at `now`.
    pub fn is_playing(&self, now: Instant) -> bool {
        self.play_end.is_some_and(|end| end > now)
    }

    /// When the buffered audio ends (or ended).
    pub fn play_end(&self) -> Option<Instant> {
        self.play_end
    }

    /// Marks not yet echoed.
    pub fn pending_marks(&self) -> usize {
        self.pending.len()
    }

    /// Total agent audio received, bytes.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// Agent audio dropped by `clear` before it played, bytes.
    pub fn cleared_bytes(&self) -> u64 {
        self.cleared_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    #[test]
    fn a_mark_after_audio_is_due_when_the_audio_has_played() {
        let t0 = Instant::now();
        let mut p = Playback::new();
        for _ in 0..50 {
            p.on_media(t0, FRAME); // one second of audio, all at once
        }
        assert_eq!(p.on_mark(t0, "greeting".into()), None);
        assert_eq!(p.next_mark_due(), Some(t0 + Duration::from_secs(1)));
        assert!(p.due_marks(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(
            p.due_marks(t0 + Duration::from_secs(1)),
            vec!["greeting".to_owned()]
        );
        assert_eq!(p.pending_marks(), 0);
        assert!(!p.is_playing(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_mark_with_nothing_buffered_is_echoed_at_once() {
        let t0 = Instant::now();
        let mut p = Playback::new();
        assert_eq!(p.on_mark(t0, "m".into()), Some("m".into()));
        p.on_media(t0, FRAME);
        assert_eq!(
            p.on_mark(t0 + Duration::from_millis(20), "n".into()),
            Some("n".into())
        );
    }

    #[test]
    fn clear_empties_the_buffer_and_echoes_pending_marks_in_order() {
        let t0 = Instant::now();
        let mut p = Playback::new();
        p.on_media(t0, FRAME * 100); // 2 s
        assert_eq!(p.on_mark(t0, "a".into()), None);
        p.on_media(t0, FRAME * 100);
        assert_eq!(p.on_mark(t0, "b".into()), None);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(p.on_clear(t1), vec!["a".to_owned(), "b".to_owned()]);
        assert!(!p.is_playing(t1));
        assert_eq!(p.pending_marks(), 0);
        assert_eq!(p.cleared_bytes(), 3500 * 8);
        // Audio after the clear starts from now, not after the dropped audio.
        p.on_media(t1, FRAME);
        assert_eq!(p.play_end(), Some(t1 + Duration::from_millis(20)));
    }

    #[test]
    fn paced_frames_do_not_underrun_and_a_late_one_does() {
        let t0 = Instant::now();
        let mut p = Playback::new();
        let mut t = t0;
        for _ in 0..10 {
            assert_eq!(p.on_media(t, FRAME).underrun, Duration::ZERO);
            t += Duration::from_millis(19); // slightly faster than real time
        }
        let late = p.play_end().unwrap() + Duration::from_millis(45);
        assert_eq!(p.on_media(late, FRAME).underrun, Duration::from_millis(45));
    }

    #[test]
    fn a_mark_behind_a_pending_mark_waits_for_it() {
        let t0 = Instant::now();
        let mut p = Playback::new();
        p.on_media(t0, FRAME);
        assert_eq!(p.on_mark(t0, "a".into()), None);
        // Past the audio but before anyone polled: "b" must not overtake "a".
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(p.on_mark(t1, "b".into()), None);
        assert_eq!(p.due_marks(t1), vec!["a".to_owned(), "b".to_owned()]);
    }
}
