//! Speech recognition on committed phone-line fixtures (Piper voice → 8 kHz mu-law, see
//! `tests/fixtures/stt/generate.py`): word error rate under 10 %.

mod ai_support;

use std::time::Instant;

use voice_node::ai::audio::phone_to_whisper;

/// Lower-case words without punctuation; `'s` kept as `s`; digits spelt out one by one.
fn words(text: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let lower = text.to_lowercase().replace('\'', "");
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
        if raw.is_empty() {
            continue;
        }
        if raw.chars().all(|c| c.is_ascii_digit()) {
            out.extend(
                raw.chars()
                    .map(|d| DIGITS[d as usize - '0' as usize].to_owned()),
            );
        } else {
            out.push(raw.to_owned());
        }
    }
    out
}

/// Word-level edit distance.
fn edits(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(r != h))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

#[test]
fn word_error_rate_on_phone_fixtures_is_below_10_percent() {
    let models = ai_support::models();
    let dir = ai_support::fixtures().join("stt");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ulaw"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "fixtures missing in {}", dir.display());

    let (mut errors, mut total) = (0usize, 0usize);
    let (mut audio_s, mut stt_s) = (0f64, 0f64);
    for name in &names {
        let mulaw = std::fs::read(dir.join(name)).unwrap();
        let reference = std::fs::read_to_string(dir.join(name.replace(".ulaw", ".txt"))).unwrap();
        let t0 = Instant::now();
        let text = models
            .transcriber
            .transcribe(&phone_to_whisper(&mulaw))
            .unwrap();
        let took = t0.elapsed().as_secs_f64();
        let seconds = mulaw.len() as f64 / 8000.0;
        audio_s += seconds;
        stt_s += took;
        let (r, h) = (words(&reference), words(&text));
        let e = edits(&r, &h);
        errors += e;
        total += r.len();
        println!(
            "{name} {seconds:.1}s audio, {:.0} ms, {e} errors: {text}",
            took * 1000.0
        );
    }
    let wer = errors as f64 / total as f64;
    println!(
        "WER {:.1}% ({errors}/{total} words); RTF {:.2}",
        100.0 * wer,
        stt_s / audio_s
    );
    assert!(wer < 0.10, "WER {:.1}%", 100.0 * wer);
}

#[test]
fn silence_transcribes_to_no_words() {
    let models = ai_support::models();
    // Half a second of line silence (mu-law 0xFF = 0).
    let text = models
        .transcriber
        .transcribe(&phone_to_whisper(&[0xFF; 4000]))
        .unwrap();
    let words = words(&text);
    assert!(words.len() <= 2, "hallucinated: {text}");
}

#[test]
fn wer_normalisation_spells_out_digits() {
    assert_eq!(
        words("Call 555, it's Ann."),
        ["call", "five", "five", "five", "its", "ann"]
    );
    assert_eq!(edits(&words("a b c"), &words("a x c d")), 2);
}
