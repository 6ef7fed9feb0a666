//! `voice-node` command line (issue 4 builds the server).

fn main() {
    eprintln!("voice-node: not built yet (issue 4)");
    std::process::exit(2);
}
