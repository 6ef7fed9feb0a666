//! A simple energy voice-activity detector over 20 ms mu-law frames, with start and stop
//! hangover.
//!
//! Good enough to cut utterances from a phone line for the minimal agent and to spot barge-in.
//! The AI agent prefers Silero (`crate::ai::vad_silero`) when its model is installed; both
//! implement [`VoiceActivity`] and share [`Hangover`], so they start and stop alike.
//! A frame is voiced when its RMS exceeds a threshold; speech starts after `start_frames`
//! voiced frames in a row and ends after `stop_frames` unvoiced ones, so a breath or a click
//! neither starts nor ends an utterance.

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
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            rms_threshold: 400.0,
            start_frames: 3,
            stop_frames: 30,
        }
    }
}

/// What a frame changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadTransition {
    /// Nothing changed.
    None,
    /// Speech started; it began `start_frames` frames ago.
    SpeechStarted,
    /// Speech ended; the last voiced frame was `stop_frames` frames ago.
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
}

impl Hangover {
    /// Outside speech, with `config`'s start and stop frame counts.
    pub fn new(config: VadConfig) -> Self {
        Hangover {
            config,
            speaking: false,
            voiced_run: 0,
            silent_run: 0,
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

    /// Takes one frame's decision.
    pub fn push(&mut self, voiced: bool) -> VadTransition {
        if voiced {
            self.voiced_run += 1;
            self.silent_run = 0;
        } else {
            self.voiced_run = 0;
            self.silent_run += 1;
        }
        if !self.speaking && self.voiced_run >= self.config.start_frames {
            self.speaking = true;
            return VadTransition::SpeechStarted;
        }
        if self.speaking && self.silent_run >= self.config.stop_frames {
            self.speaking = false;
            return VadTransition::SpeechEnded;
        }
        VadTransition::None
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
        for _ in 0..29 {
            assert_eq!(vad.push(&QUIET), VadTransition::None);
        }
        assert_eq!(vad.push(&QUIET), VadTransition::SpeechEnded);
        assert!(!vad.is_speaking());
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
