//! ONNX Runtime for the node's ONNX models (the Piper voice, Silero VAD), set up once per
//! process.
//!
//! `ort` allows one environment per process (a second `EnvironmentBuilder::build` fails, even
//! after the first is dropped), so every model takes it from here instead of building its own.
//! The shared library is the one of the PyPI `onnxruntime` wheel (`cargo xtask models`), loaded
//! at run time (`ort` with `load-dynamic`).

use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;

/// ONNX Runtime could not be loaded or set up; the message is ONNX Runtime's (the first
/// attempt's, which every later caller gets too).
#[derive(Debug, Clone, thiserror::Error)]
#[error("onnxruntime ({path}): {message}")]
pub struct OnnxRuntimeError {
    /// The shared library the first caller asked for.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The process's ONNX Runtime environment, loading `libonnxruntime_so` on first use. Later
/// calls return the same environment whatever path they pass (one runtime per process).
pub fn environment(libonnxruntime_so: &Path) -> Result<Environment, OnnxRuntimeError> {
    static ENV: OnceLock<Result<Environment, OnnxRuntimeError>> = OnceLock::new();
    ENV.get_or_init(|| {
        let failed = |e: &dyn std::fmt::Display| OnnxRuntimeError {
            path: libonnxruntime_so.display().to_string(),
            message: e.to_string(),
        };
        let builder = ort::init_from(libonnxruntime_so).map_err(|e| failed(&e))?;
        builder.build().map_err(|e| failed(&e))
    })
    .clone()
}
