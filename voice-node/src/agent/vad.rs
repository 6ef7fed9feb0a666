//! A simple energy voice-activity detector over 20 ms mu-law frames, with start and stop
//! hangover.
//!
//! Good enough to cut utterances from a phone line for the minimal agent and to spot barge-in.
//! The AI agent prefers Silero (`crate::ai::vad_silero`) when its model is installed; both
//! implement [`VoiceActivity`] and share [`Hangover`], so they start and stop alike.
//! A frame is voiced when its RMS exceeds a threshold; speech starts after `start_frames`
//! voiced frames in a row and ends after `stop_frames` unvoiced ones, so a breath or a click
//! neither starts nor ends an utterance. A short utterance ("Hi,") needs a longer silence to
//! end ([`VadConfig::short_stop_frames`]): callers pause after a greeting word, and cutting the
//! turn there leaves the recognizer a single syllable.

/// Tuning, in frames of 20 ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// RMS (linear 16-bit PCM) above which a frame counts as voiced. Phone-line silence from
    /// Twilio is near 0–50; speech is in the thousands.
    pub rms_threshold: f64,
    /// Voiced frames in a row before speech starts (start hangover).
    pub start_frames: u32,
    /// Unvoiced frames in a row before speech ends (stop hangover).
    pub stop_frames: u32,
    /// An utterance with fewer voiced frames than this is "short" (a greeting word, a pause
    /// to think after "Hi,"): it ends only after `short_stop_frames` unvoiced frames.
    pub short_voiced_frames: u32,
    /// Stop hangover of a short utterance. Longer than `stop_frames` so "Hi, … what are your
    /// hours" stays one turn; a lone "Yes." still ends, just this much later.
    pub short_stop_frames: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            rms_threshold: 400.0,
            start_frames: 3,
            stop_frames: 30,
            short_voiced_frames: 30,
            short_stop_frames: 40,
        }
    }
}

impl VadConfig {
    /// The longest silence that can end an utterance: the stop hangover of a short one. What a
    /// caller must stay quiet for to be sure their turn ended.
    pub fn longest_stop_frames(&self) -> u32 {
        self.stop_frames.max(self.short_stop_frames)
    }
}

/// What a frame changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadTransition {
    /// Nothing changed.
    None,
    /// Speech started; it began `start_frames` frames ago.
    SpeechStarted,
    /// Speech ended; the last voiced frame was `stop_frames` frames ago (`short_stop_frames`
    /// after a short utterance).
    SpeechEnded,
}

/// A per-call voice-activity detector: 20 ms mu-law frames in, transitions out. The AI agent
/// holds one without knowing which detector it is.
pub trait VoiceActivity: Send + Sync + std::fmt::Debug {
    /// Feeds one 20 ms frame of mu-law audio.
    fn push(&mut self, frame: &[u8]) -> VadTransition;
    /// Whether speech is in progress.
    fn is_speaking(&self) -> bool;
    /// Voiced frames in a row ending at the latest frame (for barge-in: "≥ 200 ms of speech").
    fn voiced_run(&self) -> u32;
}

/// Start and stop hangover over per-frame voiced / unvoiced decisions: the part every detector
/// shares, so swapping the detector does not change how utterances are cut.
#[derive(Debug, Clone)]
pub struct Hangover {
    /// Tuning (only the frame counts are used here).
    config: VadConfig,
    /// Whether we are inside an utterance.
    speaking: bool,
    /// Consecutive voiced frames (outside speech: toward the start; inside: the current run).
    voiced_run: u32,
    /// Consecutive unvoiced frames inside speech.
    silent_run: u32,
    /// Voiced frames since the utterance started (not only in a row): tells a short utterance
    /// from a long one for the stop hangover.
    utterance_voiced: u32,
}

impl Hangover {
    /// Outside speech, with `config`'s start and stop frame counts.
    pub fn new(config: VadConfig) -> Self {
        Hangover {
            config,
            speaking: false,
            voiced_run: 0,
            silent_run: 0,
            utterance_voiced: 0,
        }
    }

    /// Whether speech is in progress.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Voiced frames in a row ending at the latest frame.
    pub fn voiced_run(&self) -> u32 {
        self.voiced_run
    }

    /// Unvoiced frames in a row ending at the latest frame (inside speech: how far the stop
    /// hangover has run).
    pub fn silent_run(&self) -> u32 {
        self.silent_run
    }

    /// Takes one frame's decision.
    pub fn push(&mut self, voiced: bool) -> VadTransition {
        if voiced {
            self.voiced_run += 1;
            self.silent_run = 0;
            if self.speaking {
                self.utterance_voiced += 1;
            }
        } else {
            self.voiced_run = 0;
            self.silent_run += 1;
        }
        if !self.speaking && self.voiced_run >= self.config.start_frames {
            self.speaking = true;
            self.utterance_voiced = self.voiced_run;
            return VadTransition::SpeechStarted;
        }
        if self.speaking && self.silent_run >= self.stop_frames() {
            self.speaking = false;
            return VadTransition::SpeechEnded;
        }
        VadTransition::None
    }

    /// Unvoiced frames that end the current utterance: more after a short one.
    fn stop_frames(&self) -> u32 {
        if self.utterance_voiced < self.config.short_voiced_frames {
            self.config.longest_stop_frames()
        } else {
            self.config.stop_frames
        }
    }
}

/// The energy detector's state for one call.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// RMS above which a frame is voiced.
    rms_threshold: f64,
    /// Start/stop hangover.
    hangover: Hangover,
}

impl EnergyVad {
    /// A detector with `config`.
    pub fn new(config: VadConfig) -> Self {
        EnergyVad {
            rms_threshold: config.rms_threshold,
            hangover: Hangover::new(config),
        }
    }

    /// Whether speech is in progress.
    pub fn is_speaking(&self) -> bool {
        self.hangover.is_speaking()
    }

    /// Voiced frames in a row ending at the latest frame (for barge-in: "≥ 200 ms of speech").
    pub fn voiced_run(&self) -> u32 {
        self.hangover.voiced_run()
    }

    /// Its start/stop state.
    pub fn hangover(&self) -> &Hangover {
        &self.hangover
    }

    /// Feeds one frame of mu-law audio.
    pub fn push(&mut self, frame: &[u8]) -> VadTransition {
        self.hangover.push(rms(frame) > self.rms_threshold)
    }
}

impl VoiceActivity for EnergyVad {
    fn push(&mut self, frame: &[u8]) -> VadTransition {
        EnergyVad::push(self, frame)
    }

    fn is_speaking(&self) -> bool {
        EnergyVad::is_speaking(self)
    }

    fn voiced_run(&self) -> u32 {
        EnergyVad::voiced_run(self)
    }
}

/// Root mean square of a mu-law frame, in 16-bit PCM units.
pub fn rms(frame: &[u8]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame
        .iter()
        .map(|&b| {
            let s = f64::from(shared::mulaw::decode(b));
            s * s
        })
        .sum();
    (sum / frame.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUD: [u8; 160] = [0x90; 160];
    const QUIET: [u8; 160] = [0xFF; 160];

    #[test]
    fn speech_starts_after_start_hangover_and_ends_after_stop_hangover() {
        let mut vad = EnergyVad::new(VadConfig::default());
        assert!(rms(&LOUD) > 400.0 && rms(&QUIET) < 50.0);
        assert_eq!(vad.push(&LOUD), VadTransition::None);
        assert_eq!(vad.push(&LOUD), VadTransition::None);
        assert_eq!(vad.push(&LOUD), VadTransition::SpeechStarted);
        // A sentence, not a short word: the normal stop hangover applies.
        for _ in 3..VadConfig::default().short_voiced_frames {
            assert_eq!(vad.push(&LOUD), VadTransition::None);
        }
        for _ in 0..29 {
            assert_eq!(vad.push(&QUIET), VadTransition::None);
        }
        assert_eq!(vad.push(&QUIET), VadTransition::SpeechEnded);
        assert!(!vad.is_speaking());
    }

    /// Per-frame decisions `(voiced, frames)` through a [`Hangover`]: every transition with
    /// its frame index.
    fn cut(config: VadConfig, runs: &[(bool, u32)]) -> Vec<(u32, VadTransition)> {
        let mut hangover = Hangover::new(config);
        let mut found = Vec::new();
        let mut i = 0;
        for &(voiced, frames) in runs {
            for _ in 0..frames {
                let t = hangover.push(voiced);
                if t != VadTransition::None {
                    found.push((i, t));
                }
                i += 1;
            }
        }
        found
    }

    #[test]
    fn a_short_word_then_a_pause_then_more_speech_stays_one_utterance() {
        // The AI agent's tuning (500 ms stop hangover). "Hi," is ~300 ms of voice; the pause
        // after it, as a detector sees it, is the 300 ms of silence plus the word's fading
        // tail and the next word's onset: 26 unvoiced frames. Then the question.
        let agent = VadConfig {
            stop_frames: 25,
            ..VadConfig::default()
        };
        let caller = [(true, 15), (false, 26), (true, 80), (false, 60)];
        let found = cut(agent, &caller);
        assert_eq!(
            found,
            vec![
                (2, VadTransition::SpeechStarted),
                (145, VadTransition::SpeechEnded)
            ],
            "the turn was cut after the short word"
        );
        // What the shared hangover did before short turns had their own: cut after "Hi,".
        let before = VadConfig {
            short_voiced_frames: 0,
            ..agent
        };
        let split = cut(before, &caller);
        assert_eq!(split.len(), 4, "{split:?}");
        assert_eq!(split[1], (39, VadTransition::SpeechEnded));
    }

    #[test]
    fn a_lone_short_answer_still_ends_after_the_short_stop_hangover() {
        let config = VadConfig {
            stop_frames: 25,
            ..VadConfig::default()
        };
        // "Yes." then silence: ends, 800 ms after the word instead of 500 ms.
        let found = cut(config, &[(true, 12), (false, 60)]);
        assert_eq!(
            found,
            vec![
                (2, VadTransition::SpeechStarted),
                (11 + config.short_stop_frames, VadTransition::SpeechEnded)
            ]
        );
        // A long utterance keeps the normal one.
        let found = cut(config, &[(true, 40), (false, 60)]);
        assert_eq!(found[1], (39 + 25, VadTransition::SpeechEnded));
    }

    #[test]
    fn a_click_does_not_start_speech_and_a_pause_does_not_end_it() {
        let mut vad = EnergyVad::new(VadConfig::default());
        for _ in 0..2 {
            vad.push(&LOUD);
        }
        assert_eq!(vad.push(&QUIET), VadTransition::None);
        assert!(!vad.is_speaking());
        for _ in 0..3 {
            vad.push(&LOUD);
        }
        assert!(vad.is_speaking());
        for _ in 0..10 {
            vad.push(&QUIET);
        }
        vad.push(&LOUD);
        assert!(vad.is_speaking());
    }
}
