//! `cargo xtask`: the project's automation (filled in by the foundation issue).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("xtask: no commands yet")
}
