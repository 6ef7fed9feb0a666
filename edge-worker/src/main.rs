//! Native entry point of the edge worker (issue 3 builds the server).

fn main() {
    eprintln!("edge-worker: the native server is not built yet (issue 3)");
    std::process::exit(2);
}
