//! Admin without SQL: migrations, tenants, numbers, users. Built out by issue 4.

use std::process::ExitCode;

use clap::Subcommand;

/// `voice-node tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {}
/// `voice-node number …`
#[derive(Debug, Subcommand)]
pub enum NumberCommand {}
/// `voice-node user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {}

pub async fn migrate() -> anyhow::Result<ExitCode> {
    anyhow::bail!("`voice-node migrate` is not built yet")
}
pub async fn tenant(cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
pub async fn number(cmd: NumberCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
pub async fn user(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
