//! Where the offline models live on disk, and whether they are all there.
//!
//! `cargo xtask models` fills the directory (see `xtask/src/models.rs`); the node only reads it.
//! Resolution order, the same in both: `CALLGATE_MODELS_DIR`, else `$CALLGATE_DATA_DIR/models`,
//! else `./.callgate/models`.

use std::path::{Path, PathBuf};

/// Subdirectory with all-MiniLM-L6-v2 (`model.safetensors`, `tokenizer.json`, `config.json`).
pub const MINILM_DIR: &str = "all-minilm-l6-v2";
/// Subdirectory with Whisper tiny.en for candle (`model.safetensors`, `config.json`,
/// `tokenizer.json`, `melfilters.bytes`).
pub const WHISPER_DIR: &str = "whisper-tiny-en";
/// Subdirectory with the Piper voice (`voice.onnx`, `voice.onnx.json`). Optional.
pub const PIPER_DIR: &str = "piper-en-us-joe-medium";
/// Subdirectory with ONNX Runtime's shared library (`libonnxruntime.so`), for Piper and Silero.
pub const ONNXRUNTIME_DIR: &str = "onnxruntime";
/// Subdirectory with Silero VAD (`silero_vad.onnx`). Optional: the energy VAD runs without it.
pub const SILERO_DIR: &str = "silero-vad";

/// The models directory the environment points at.
pub fn models_dir() -> PathBuf {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(dir) = env("CALLGATE_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env("CALLGATE_DATA_DIR") {
        return PathBuf::from(dir).join("models");
    }
    PathBuf::from(".callgate/models")
}

/// The model files the offline pipeline needs, all present.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    /// MiniLM sentence embeddings.
    pub minilm: PathBuf,
    /// Whisper tiny.en.
    pub whisper: PathBuf,
    /// The Piper voice, when it and ONNX Runtime are installed (espeak-ng speaks otherwise).
    pub piper: Option<PiperPaths>,
    /// Silero VAD, when it and ONNX Runtime are installed (the energy VAD runs otherwise).
    pub silero: Option<SileroPaths>,
}

/// The files Piper needs.
#[derive(Debug, Clone)]
pub struct PiperPaths {
    /// ONNX Runtime's shared library.
    pub onnxruntime: PathBuf,
    /// The voice network.
    pub model: PathBuf,
    /// Its configuration (phoneme ids, sample rate).
    pub config: PathBuf,
}

/// The files Silero VAD needs.
#[derive(Debug, Clone)]
pub struct SileroPaths {
    /// ONNX Runtime's shared library.
    pub onnxruntime: PathBuf,
    /// The network.
    pub model: PathBuf,
}

/// A model file is missing: the node runs without the AI pipeline.
#[derive(Debug, thiserror::Error)]
#[error("{missing} not found (run `cargo xtask models`, or set CALLGATE_MODELS_DIR)")]
pub struct MissingModels {
    /// The first missing file.
    pub missing: String,
}

impl ModelPaths {
    /// The models under `dir`, if every needed file is there.
    pub fn locate(dir: &Path) -> Result<Self, MissingModels> {
        let minilm = dir.join(MINILM_DIR);
        let whisper = dir.join(WHISPER_DIR);
        let needed = [
            minilm.join("model.safetensors"),
            minilm.join("tokenizer.json"),
            minilm.join("config.json"),
            whisper.join("model.safetensors"),
            whisper.join("config.json"),
            whisper.join("tokenizer.json"),
            whisper.join("melfilters.bytes"),
        ];
        if let Some(file) = needed.iter().find(|f| !f.is_file()) {
            return Err(MissingModels {
                missing: file.display().to_string(),
            });
        }
        let piper = PiperPaths {
            onnxruntime: dir.join(ONNXRUNTIME_DIR).join("libonnxruntime.so"),
            model: dir.join(PIPER_DIR).join("voice.onnx"),
            config: dir.join(PIPER_DIR).join("voice.onnx.json"),
        };
        let piper = [&piper.onnxruntime, &piper.model, &piper.config]
            .iter()
            .all(|f| f.is_file())
            .then_some(piper);
        Ok(ModelPaths {
            minilm,
            whisper,
            piper,
            silero: Self::locate_silero(dir),
        })
    }

    /// Silero VAD under `dir`, if it and ONNX Runtime are there.
    pub fn locate_silero(dir: &Path) -> Option<SileroPaths> {
        let silero = SileroPaths {
            onnxruntime: dir.join(ONNXRUNTIME_DIR).join("libonnxruntime.so"),
            model: dir.join(SILERO_DIR).join("silero_vad.onnx"),
        };
        (silero.onnxruntime.is_file() && silero.model.is_file()).then_some(silero)
    }

    /// The models the environment points at ([`models_dir`]).
    pub fn from_env() -> Result<Self, MissingModels> {
        Self::locate(&models_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_directory_reports_the_first_missing_file() {
        let dir = std::env::temp_dir().join(format!("callgate-no-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = ModelPaths::locate(&dir).unwrap_err();
        assert!(
            err.missing.ends_with("all-minilm-l6-v2/model.safetensors"),
            "{err}"
        );
        assert!(err.to_string().contains("cargo xtask models"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
