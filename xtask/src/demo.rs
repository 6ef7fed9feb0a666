//! `cargo xtask demo`: the end-to-end demo from the contract, which needs the edge, the node and
//! the offline pipeline. Until they exist it says so plainly and fails, rather than pretend.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit after the simulated calls (non-zero if any failed) instead of serving until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// What the demo will do, and whether it exists yet.
const PARTS: &[(&str, bool)] = &[
    (
        "private Postgres cluster (`cargo xtask db` runs one today)",
        true,
    ),
    (
        "schema migrations (migrations/, applied by the voice node)",
        true,
    ),
    (
        "install missing tools: espeak-ng, sox (apt); offline model wheels (PyPI)",
        false,
    ),
    (
        "voice node: HTTP + Media Streams server, AI pipeline, call flows",
        false,
    ),
    ("edge worker: native server for the Twilio webhooks", false),
    ("dashboard served by the node", false),
    (
        "`voice-node simulate`: one simulated call per mode through edge → node",
        false,
    ),
];

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    println!(
        "cargo xtask demo{}: not available yet.",
        if args.once { " --once" } else { "" }
    );
    println!(
        "It places one simulated call per mode (screening, receptionist, forward) through the"
    );
    println!(
        "edge and a voice node with the offline pipeline, and prints each transcript and outcome."
    );
    println!("Status of what it needs:");
    for (part, built) in PARTS {
        println!("  [{}] {part}", if *built { "built" } else { "not yet" });
    }
    println!("Nothing was started. `cargo xtask test` runs everything that exists.");
    Ok(ExitCode::from(2))
}
