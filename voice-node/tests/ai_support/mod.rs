//! Shared by the `ai_*` tests: the models, loaded once per test binary.
//!
//! The models come from `CALLGATE_MODELS_DIR` (`cargo xtask test` fetches them and sets it) or,
//! when unset, the user cache `cargo xtask models` fills (`~/.cache/callgate/models`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use voice_node::ai::AiModels;
use voice_node::ai::models::ModelPaths;

pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CALLGATE_MODELS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_default();
    cache.join("callgate/models")
}

/// The node's models; panics with the fix when they are not installed.
pub fn models() -> Arc<AiModels> {
    static MODELS: OnceLock<Arc<AiModels>> = OnceLock::new();
    Arc::clone(MODELS.get_or_init(|| {
        let dir = models_dir();
        let paths = ModelPaths::locate(&dir).unwrap_or_else(|e| {
            panic!(
                "AI models missing ({e}); run `cargo xtask models --dir {}`",
                dir.display()
            )
        });
        Arc::new(AiModels::load(&paths).expect("models load"))
    }))
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
