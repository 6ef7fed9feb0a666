//! `voice-node` command line: the server, migrations, admin without SQL, and the Twilio call
//! simulator. Each subcommand lives in its own module; this file only parses and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "voice-node", version, about = "callgate voice node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP + WebSocket server (Media Streams, dashboard API, internal edge API).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Tenants: `tenant create --name N [--mode …]`.
    #[command(subcommand)]
    Tenant(voice_node::admin::TenantCommand),
    /// Phone numbers: `number add --tenant ID --e164 +1… [--owner +1…]`.
    #[command(subcommand)]
    Number(voice_node::admin::NumberCommand),
    /// Knowledge base: `kb add --tenant ID --question Q --answer A`.
    #[command(subcommand)]
    Kb(voice_node::admin::KbCommand),
    /// Receptionist transfer targets: `department add --tenant ID --name N --to +1… [--keyword K]…`.
    #[command(subcommand)]
    Department(voice_node::admin::DepartmentCommand),
    /// Dashboard users: `user create --tenant ID --email E --role R` (password from stdin).
    #[command(subcommand)]
    User(voice_node::admin::UserCommand),
    /// Play Twilio's side of a call (or many) against an edge and a node.
    // Boxed: its many flags would make every other command as large.
    Simulate(Box<voice_node::simulate::SimulateArgs>),
}

fn main() -> ExitCode {
    voice_node::telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("voice-node: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => voice_node::server::serve().await,
            Command::Migrate => voice_node::admin::migrate().await,
            Command::Tenant(cmd) => voice_node::admin::tenant(cmd).await,
            Command::Number(cmd) => voice_node::admin::number(cmd).await,
            Command::Kb(cmd) => voice_node::admin::kb(cmd).await,
            Command::Department(cmd) => voice_node::admin::department(cmd).await,
            Command::User(cmd) => voice_node::admin::user(cmd).await,
            Command::Simulate(args) => voice_node::simulate::run(*args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("voice-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
