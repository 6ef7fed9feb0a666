//! `voice-node simulate`: Twilio's side of a call. Built out by issue 4.

use std::process::ExitCode;

/// Command-line arguments of `voice-node simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

pub async fn run(_args: SimulateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`voice-node simulate` is not built yet")
}
