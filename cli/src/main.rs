//! `pwreset`: the dev server (the embedded default a newcomer runs first) and admin commands.

mod dev;
mod pages;
mod serve;

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pwreset",
    version,
    about = "Self-service password reset: dev server and admin commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// Everything in this process: users, outbox and mail in memory (mail printed here).
    Memory,
    /// DynamoDB and SES v2 (AWS or emulators via AWS_ENDPOINT_URL_*).
    Aws,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the whole API, an in-process mail outbox and a reference web page.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        #[arg(long, value_enum, default_value_t = Backend::Memory)]
        backend: Backend,
        /// Do not create the demo user.
        #[arg(long)]
        no_demo: bool,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve {
            addr,
            backend,
            no_demo,
        } => match backend {
            Backend::Memory => serve::run(addr, !no_demo).await,
            Backend::Aws => Err(anyhow::anyhow!(
                "--backend aws is not available in this build yet; use --backend memory"
            )),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pwreset: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
