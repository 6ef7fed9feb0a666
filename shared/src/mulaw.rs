//! G.711 mu-law, the only audio encoding Twilio Media Streams speak (8 kHz, mono, 1 byte/sample),
//! and the 20 ms framing Twilio uses on the wire.
//!
//! The codec is the classic ITU-T G.711 / Sun Microsystems `g711.c` algorithm: bias `0x84`, clip
//! at 32635, bytes stored inverted. Decoding is a 256-entry table built at compile time because
//! the node decodes every inbound byte of every call (8000 per second per call); encoding is a
//! handful of integer operations and needs no table.
//!
//! Two bytes mean zero: `0xFF` (+0) and `0x7F` (-0). Encoders pick `0xFF` for silence and so do
//! we ([`SILENCE`]). Encoders also disagree by one step near zero (Python's `audioop` maps PCM -1
//! to `0x7E`; this algorithm maps it to `0x7F`); both decode to within one step of the input.
//!
//! ```
//! use shared::mulaw;
//! assert_eq!(mulaw::decode(0xFF), 0);
//! assert_eq!(mulaw::encode(0), 0xFF);
//! assert_eq!(mulaw::decode(mulaw::encode(1000)), 988);
//! ```

use std::slice::ChunksExact;

/// Bytes in one 20 ms frame at 8000 samples/s: the unit Twilio sends inbound and the unit we
/// send outbound (some integrators report audio is only audible when sent whole-frame).
pub const FRAME_BYTES: usize = 160;

/// Duration of one frame, for pacing outbound audio.
pub const FRAME_MS: u64 = 20;

/// Samples per second of Twilio's telephone audio.
pub const SAMPLE_RATE: u32 = 8000;

/// The mu-law byte for digital silence (+0). Used to pad partial frames.
pub const SILENCE: u8 = 0xFF;

/// Added to the magnitude so every segment boundary is a power of two (the G.711 trick that
/// makes the segment number a bit position).
const BIAS: i32 = 0x84;

/// Largest magnitude that still fits after adding [`BIAS`]; louder input saturates here.
const CLIP: i32 = 32635;

/// Decoded value of every mu-law byte, computed once at compile time.
static DECODE_TABLE: [i16; 256] = build_decode_table();

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let u = !(code as u8);
        let exponent = ((u >> 4) & 0x07) as i32;
        let mantissa = (u & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
        // The largest magnitude is 32124, so both signs fit in i16.
        table[code] = if u & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        code += 1;
    }
    table
}

/// Decodes one mu-law byte to 16-bit linear PCM.
#[inline]
pub fn decode(code: u8) -> i16 {
    DECODE_TABLE[usize::from(code)]
}

/// Encodes one 16-bit linear PCM sample to mu-law, saturating at ±32635.
#[inline]
pub fn encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign: u8 = if pcm < 0 { 0x80 } else { 0 };
    // i32 so that -32768 negates without overflow.
    pcm = pcm.abs().min(CLIP) + BIAS;
    // pcm is in 0x84..=0x7FFF, so pcm >> 7 is in 1..=255 and the segment is its top bit (0..=7).
    let exponent = 31 - (pcm >> 7).leading_zeros();
    let mantissa = ((pcm >> (exponent + 3)) & 0x0F) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Decodes `input` into `output` and returns how many samples were written: the shorter of
/// the two lengths, so a short buffer truncates instead of panicking.
pub fn decode_into(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    for (out, &code) in output.iter_mut().zip(input) {
        *out = decode(code);
    }
    n
}

/// Encodes `input` into `output` and returns how many bytes were written: the shorter of the
/// two lengths, so a short buffer truncates instead of panicking.
pub fn encode_into(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (out, &sample) in output.iter_mut().zip(input) {
        *out = encode(sample);
    }
    n
}

/// Splits a buffer into whole 20 ms frames without copying.
///
/// A trailing partial frame is not yielded (sending it would break frame alignment); it is
/// available from [`ChunksExact::remainder`]. For audio that arrives in arbitrary pieces use
/// [`FrameCutter`], which carries the partial frame over to the next piece.
pub fn frames(audio: &[u8]) -> ChunksExact<'_, u8> {
    audio.chunks_exact(FRAME_BYTES)
}

/// Re-cuts audio that arrives in arbitrary-sized chunks (TTS output, provider streams) into
/// whole 160-byte frames, keeping the partial tail until more audio or [`flush`](Self::flush).
///
/// Frames are pulled one at a time so an async caller can `await` a send between frames, and
/// nothing is lost if it stops pulling early: unpulled frames stay buffered.
///
/// ```
/// use shared::mulaw::{FrameCutter, FRAME_BYTES};
/// let mut cutter = FrameCutter::new();
/// cutter.push(&[0x10; 100]);
/// assert!(cutter.next_frame().is_none());
/// cutter.push(&[0x20; 100]);
/// let frame = cutter.next_frame().unwrap();
/// assert_eq!(frame.len(), FRAME_BYTES);
/// let tail = cutter.flush().unwrap(); // 40 bytes of audio, then silence
/// assert_eq!(tail[39], 0x20);
/// assert_eq!(tail[40], 0xFF);
/// ```
#[derive(Debug, Default, Clone)]
pub struct FrameCutter {
    /// Buffered audio; bytes before `start` were already handed out. Reused between pushes so a
    /// steady stream stops allocating once it reaches its largest chunk size.
    buf: Vec<u8>,
    /// Offset of the first byte not yet handed out; avoids shifting the buffer per frame.
    start: usize,
}

impl FrameCutter {
    /// An empty cutter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends audio. Frames become available from [`next_frame`](Self::next_frame).
    pub fn push(&mut self, audio: &[u8]) {
        if self.start > 0 {
            // Compact once per push rather than once per frame: at most one partial frame plus
            // any frames the caller has not pulled yet move to the front.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(audio);
    }

    /// The next whole frame, if at least 160 bytes are buffered.
    pub fn next_frame(&mut self) -> Option<[u8; FRAME_BYTES]> {
        let frame: [u8; FRAME_BYTES] = self
            .buf
            .get(self.start..self.start + FRAME_BYTES)?
            .try_into()
            .ok()?;
        self.start += FRAME_BYTES;
        Some(frame)
    }

    /// Pulls every whole frame currently buffered.
    pub fn frames(&mut self) -> impl Iterator<Item = [u8; FRAME_BYTES]> + '_ {
        std::iter::from_fn(move || self.next_frame())
    }

    /// Bytes buffered and not yet handed out (whole frames plus the partial tail).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Ends the utterance: returns the next buffered frame, padding a partial tail with
    /// [`SILENCE`], or `None` when nothing is buffered. Call it until it returns `None` to drain
    /// everything; after that the cutter is empty and can be reused.
    pub fn flush(&mut self) -> Option<[u8; FRAME_BYTES]> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        let tail = self.buf.get(self.start..).unwrap_or_default();
        if tail.is_empty() {
            self.clear();
            return None;
        }
        let mut frame = [SILENCE; FRAME_BYTES];
        frame[..tail.len()].copy_from_slice(tail);
        self.clear();
        Some(frame)
    }

    /// Drops everything buffered (barge-in: the caller spoke, the rest of the utterance is void).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_decode_then_encode_except_negative_zero() {
        for code in 0..=255u8 {
            let back = encode(decode(code));
            if code == 0x7F {
                // -0 and +0 are the same sample; the encoder always picks +0.
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn decodes_reference_anchors() {
        // Anchors from twilio.md §4.4 (Python audioop) and the G.711 table's extremes.
        for (code, pcm) in [
            (0xFF, 0),
            (0x7F, 0),
            (0x80, 32124),
            (0x00, -32124),
            (0xEF, 132),
            (0x6F, -132),
            (0xFE, 8),
            (0x7E, -8),
        ] {
            assert_eq!(decode(code), pcm, "code {code:#04x}");
        }
    }

    #[test]
    fn encodes_reference_anchors_and_saturates() {
        assert_eq!(encode(0), 0xFF);
        assert_eq!(encode(32124), 0x80);
        assert_eq!(encode(-32124), 0x00);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
        assert_eq!(encode(132), 0xEF);
        assert_eq!(encode(-132), 0x6F);
    }

    #[test]
    fn decode_is_monotonic_in_each_half() {
        // 0x00..=0x7F runs from -32124 up to -0; 0x80..=0xFF runs from +32124 down to +0.
        for code in 0..0x7Fu8 {
            assert!(
                decode(code) < decode(code + 1),
                "negative half at {code:#04x}"
            );
        }
        for code in 0x80..0xFFu8 {
            assert!(
                decode(code) > decode(code + 1),
                "positive half at {code:#04x}"
            );
        }
    }

    #[test]
    fn encode_then_decode_is_monotonic_and_within_half_a_step() {
        let mut previous = i16::MIN;
        for sample in i16::MIN..=i16::MAX {
            let back = decode(encode(sample));
            assert!(back >= previous, "not monotonic at {sample}");
            previous = back;
            let clipped = i32::from(sample).clamp(-CLIP, CLIP);
            // The widest segment has 1024-wide steps and decoding returns the step's middle.
            let err = (i32::from(back) - clipped).abs();
            assert!(err <= 512, "sample {sample} decoded as {back}");
        }
    }

    #[test]
    fn slice_helpers_truncate_to_shorter_buffer() {
        let pcm = [0i16, 132, -132, 32124];
        let mut codes = [0u8; 3];
        assert_eq!(encode_into(&pcm, &mut codes), 3);
        assert_eq!(codes, [0xFF, 0xEF, 0x6F]);
        let mut back = [1i16; 5];
        assert_eq!(decode_into(&codes, &mut back), 3);
        assert_eq!(back, [0, 132, -132, 1, 1]);
    }

    #[test]
    fn frames_yields_whole_frames_and_leaves_remainder() {
        let audio = vec![0u8; FRAME_BYTES * 2 + 7];
        let mut it = frames(&audio);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(it.remainder().len(), 7);
        assert_eq!(frames(&[]).count(), 0);
    }

    #[test]
    fn cutter_reassembles_arbitrary_chunks_into_frames_in_order() {
        let audio: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut cutter = FrameCutter::new();
        let mut out = Vec::new();
        for chunk in audio.chunks(37) {
            cutter.push(chunk);
            out.extend(cutter.frames().flatten());
        }
        assert_eq!(out.len(), 6 * FRAME_BYTES);
        assert_eq!(cutter.pending(), 40);
        while let Some(frame) = cutter.flush() {
            out.extend(frame);
        }
        assert_eq!(out.len(), 7 * FRAME_BYTES);
        assert_eq!(&out[..1000], &audio[..]);
        assert!(out[1000..].iter().all(|&b| b == SILENCE));
        assert_eq!(cutter.pending(), 0);
        assert!(cutter.flush().is_none());
    }

    #[test]
    fn cutter_keeps_unpulled_frames_across_pushes() {
        let mut cutter = FrameCutter::new();
        cutter.push(&[1; FRAME_BYTES * 2]);
        assert_eq!(cutter.next_frame(), Some([1; FRAME_BYTES]));
        cutter.push(&[2; FRAME_BYTES]);
        assert_eq!(cutter.next_frame(), Some([1; FRAME_BYTES]));
        assert_eq!(cutter.next_frame(), Some([2; FRAME_BYTES]));
        assert_eq!(cutter.next_frame(), None);
    }

    #[test]
    fn cutter_clear_discards_buffered_audio() {
        let mut cutter = FrameCutter::new();
        cutter.push(&[3; 500]);
        cutter.clear();
        assert_eq!(cutter.pending(), 0);
        assert!(cutter.flush().is_none());
    }
}
