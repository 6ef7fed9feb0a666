//! A simple energy voice-activity detector over 20 ms mu-law frames, with start and stop
//! hangover.
//!
//! Good enough to cut utterances from a phone line for the minimal agent and to spot barge-in;
//! issue 5 may replace it with Silero behind the same shape (frames in, transitions out).
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

/// The detector's state for one call.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// Tuning.
    config: VadConfig,
    /// Whether we are inside an utterance.
    speaking: bool,
    /// Consecutive voiced frames (outside speech: toward the start; inside: the current run).
    voiced_run: u32,
    /// Consecutive unvoiced frames inside speech.
    silent_run: u32,
}

impl EnergyVad {
    /// A detector with `config`.
    pub fn new(config: VadConfig) -> Self {
        EnergyVad {
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

    /// Voiced frames in a row ending at the latest frame (for barge-in: "≥ 200 ms of speech").
    pub fn voiced_run(&self) -> u32 {
        self.voiced_run
    }

    /// Feeds one frame of mu-law audio.
    pub fn push(&mut self, frame: &[u8]) -> VadTransition {
        let voiced = rms(frame) > self.config.rms_threshold;
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
