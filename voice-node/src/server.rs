//! The HTTP + WebSocket server (`voice-node serve`). Built out by issue 4.

use std::process::ExitCode;

/// Run the server until drained.
pub async fn serve() -> anyhow::Result<ExitCode> {
    anyhow::bail!("`voice-node serve` is not built yet (issue 4)")
}
