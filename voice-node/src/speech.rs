//! Light offline speech synthesis: espeak-ng (a subprocess — it is GPL, so never linked) piped
//! through sox to 8 kHz G.711 mu-law, the format Twilio Media Streams carry.
//!
//! Used by the minimal agent's greeting and by `voice-node simulate` to speak the caller's
//! sentences. sox does the resampling with a proper low-pass filter (22.05 kHz → 8 kHz); a naive
//! decimator would alias and hurt speech recognition on the far side.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Why speech could not be synthesized.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// espeak-ng or sox is not installed.
    #[error(
        "`{0}` is not installed (apt-get install espeak-ng sox; `cargo xtask test` installs them)"
    )]
    MissingTool(&'static str),
    /// The tool ran but failed.
    #[error("`{tool}` failed: {detail}")]
    ToolFailed {
        /// Which program failed.
        tool: &'static str,
        /// Its exit status and the tail of its stderr.
        detail: String,
    },
    /// Nothing to say.
    #[error("empty text")]
    EmptyText,
}

/// Synthesize `text` as 8 kHz mono mu-law bytes (raw, no header), ready to cut into 160-byte frames.
pub async fn synthesize_mulaw(text: &str) -> Result<Vec<u8>, SpeechError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SpeechError::EmptyText);
    }
    let wav = run(
        "espeak-ng",
        &["--stdout", "-v", "en-us", "-s", "165"],
        text.as_bytes(),
    )
    .await?;
    run(
        "sox",
        &[
            "-q", "-t", "wav", "-", "-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8", "-t",
            "raw", "-",
        ],
        &wav,
    )
    .await
}

/// Run `program args`, feed `input` on stdin, and return stdout.
async fn run(program: &'static str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, SpeechError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpeechError::MissingTool(program),
            _ => SpeechError::ToolFailed {
                tool: program,
                detail: e.to_string(),
            },
        })?;
    let mut stdin = child.stdin.take().ok_or(SpeechError::ToolFailed {
        tool: program,
        detail: "no stdin pipe".into(),
    })?;
    let input = input.to_vec();
    // Write stdin concurrently with reading stdout: a large input would otherwise deadlock once
    // both pipe buffers fill.
    let writer = tokio::spawn(async move {
        let result = stdin.write_all(&input).await;
        drop(stdin);
        result
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| SpeechError::ToolFailed {
            tool: program,
            detail: e.to_string(),
        })?;
    let _ = writer.await;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(SpeechError::ToolFailed {
            tool: program,
            detail: format!("{}: {}", output.status, tail.trim()),
        });
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn synthesizes_about_the_right_length_of_mulaw() {
        let audio = synthesize_mulaw("Hello, thanks for calling.")
            .await
            .expect("espeak-ng and sox");
        // ~1.5 s of speech at 8000 bytes/s; allow for espeak's rate and trailing silence.
        assert!(
            (6_000..40_000).contains(&audio.len()),
            "got {} bytes",
            audio.len()
        );
        // Not all silence: mu-law silence is 0xFF/0x7F.
        let loud = audio
            .iter()
            .filter(|&&b| shared::mulaw::decode(b).unsigned_abs() > 2000)
            .count();
        assert!(loud > 500, "only {loud} loud samples");
    }

    #[tokio::test]
    async fn empty_text_is_an_error() {
        assert!(matches!(
            synthesize_mulaw("  ").await,
            Err(SpeechError::EmptyText)
        ));
    }
}
