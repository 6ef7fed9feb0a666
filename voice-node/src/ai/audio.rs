//! Phone audio for the models: 8 kHz mu-law → 16 kHz float PCM (what Whisper expects), and
//! TTS output (22.05 kHz) → 8 kHz mu-law.
//!
//! Resampling uses rubato's FFT resampler (band-limited): linear interpolation would
//! fold aliases into the 4–8 kHz band Whisper's mel filters look at.

use rubato::{FftFixedIn, Resampler};

/// Caller audio rate.
pub const PHONE_RATE: usize = 8_000;
/// Whisper's input rate.
pub const WHISPER_RATE: usize = 16_000;
/// Resampler input block (samples).
const CHUNK: usize = 1024;

/// Decodes mu-law to floats in [-1, 1].
pub fn mulaw_to_f32(mulaw: &[u8]) -> Vec<f32> {
    mulaw
        .iter()
        .map(|&b| f32::from(shared::mulaw::decode(b)) / 32_768.0)
        .collect()
}

/// 8 kHz samples → 16 kHz samples (exactly twice as many, delay compensated).
pub fn upsample_8k_to_16k(input: &[f32]) -> Vec<f32> {
    resample(input, PHONE_RATE, WHISPER_RATE)
}

/// Resamples mono `input` from `from` Hz to `to` Hz with rubato's FFT resampler (band-limited),
/// compensating its delay: the output has `len × to / from` samples aligned with the input.
pub fn resample(input: &[f32], from: usize, to: usize) -> Vec<f32> {
    if input.is_empty() || from == to {
        return input.to_vec();
    }
    let wanted = input.len() * to / from;
    let Ok(mut resampler) = FftFixedIn::<f32>::new(from, to, CHUNK, 1, 1) else {
        // Only for rates rubato refuses (0 Hz); keep silence of the right length.
        return vec![0.0; wanted];
    };
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(wanted + delay + 4 * CHUNK);
    let mut blocks = input.chunks_exact(CHUNK);
    for block in blocks.by_ref() {
        if let Ok(chunk) = resampler.process(&[block], None) {
            out.extend_from_slice(&chunk[0]);
        }
    }
    let rest = blocks.remainder();
    if !rest.is_empty()
        && let Ok(chunk) = resampler.process_partial(Some(&[rest]), None)
    {
        out.extend_from_slice(&chunk[0]);
    }
    // Flush the filter's tail so the last samples come out.
    while out.len() < wanted + delay {
        match resampler.process_partial::<&[f32]>(None, None) {
            Ok(chunk) if !chunk[0].is_empty() => out.extend_from_slice(&chunk[0]),
            _ => break,
        }
    }
    out.drain(..delay.min(out.len()));
    out.resize(wanted, 0.0);
    out
}

/// Float samples in [-1, 1] → mu-law bytes.
pub fn f32_to_mulaw(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .map(|&s| shared::mulaw::encode((s.clamp(-1.0, 1.0) * 32_767.0) as i16))
        .collect()
}

/// Mu-law at 8 kHz straight to Whisper's 16 kHz floats.
pub fn phone_to_whisper(mulaw: &[u8]) -> Vec<f32> {
    upsample_8k_to_16k(&mulaw_to_f32(mulaw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_keeps_a_tone_and_doubles_the_length() {
        let tone: Vec<f32> = (0..8000)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin() * 0.5)
            .collect();
        let up = upsample_8k_to_16k(&tone);
        assert_eq!(up.len(), 16_000);
        // Same tone at 16 kHz, delay compensated: compare in the middle.
        for (i, got) in up.iter().enumerate().skip(4000).take(100) {
            let want = (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.5;
            assert!((got - want).abs() < 0.02, "sample {i}: {got} vs {want}");
        }
    }
}
