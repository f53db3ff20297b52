//! `pwreset-bench`: the drivers behind `scripts/bench` (results in bench/RESULTS.md).
//!
//! - `load`    P1: request-reset throughput and latency on `pwreset serve`, concurrency 8,
//!   existing and missing addresses in interleaved rounds.
//! - `confirm` P3 + P6 (serve): a full confirm over HTTP against one bare argon2id hash,
//!   interleaved pairs; then the server's peak RSS after those full flows.
//! - `lambda`  P4 + P6 (Lambda): time from process start to first response of each Lambda
//!   binary against `hello-lambda`, under cargo-lambda's runtime emulator; then each
//!   binary's peak RSS after a full flow.
//! - `cpu`     CPU per request of `pwreset serve` (request, verify) against a hello-world
//!   axum server (`hello-server`) answering the same, interleaved phases.
//! - `inproc`  the verify route's cost inside the app (no sockets): the hello-world's
//!   router bare, under `app()`, as `pwreset serve` wraps it, and pwreset's verify.
//! - `cost`    P7: cost per million resets from the work measured in warm Lambda-mode
//!   flows (durations, CPU, DynamoDB request units, log bytes).
//!
//! Every server it starts binds 127.0.0.1 and is stopped by PID. Results are printed for
//! people and as one `RESULT {json}` line per benchmark for scripts.

mod cost;
mod cpu;
mod inproc;
mod lambda;
mod serve;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "pwreset benchmark drivers (see bench/RESULTS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// P1: POST /password-reset throughput at a fixed concurrency.
    Load {
        /// The `pwreset` binary to start (`pwreset serve`, limits off).
        #[arg(long)]
        pwreset: PathBuf,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Rounds; each round runs one phase per address kind, order alternating.
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// P3 and P6 for `pwreset serve`: confirm over HTTP vs one bare argon2id hash.
    Confirm {
        #[arg(long)]
        pwreset: PathBuf,
        /// Measured pairs (after the warm-up pairs).
        #[arg(long, default_value_t = 30)]
        pairs: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
    /// P3 for `POST /password-change`: the change over HTTP vs a bare verify + hash.
    Change {
        #[arg(long)]
        pwreset: PathBuf,
        #[arg(long, default_value_t = 30)]
        pairs: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
    /// P4 and P6 for the Lambda binaries, under `cargo lambda watch --only-lambda-apis`.
    Lambda {
        #[command(flatten)]
        setup: lambda::Setup,
        /// Repetitions of every cold-start case.
        #[arg(long, default_value_t = 7)]
        reps: usize,
    },
    /// CPU per request: `pwreset serve` against a hello-world axum server.
    Cpu {
        #[arg(long)]
        pwreset: PathBuf,
        /// Requests per phase.
        #[arg(long, default_value_t = 20000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Only these phases and the hello phases they are compared with (comma-separated:
        /// request_existing, request_missing, verify, hello_verify_read); all when absent. For profiling one.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// The hello-world axum server `cpu` compares against (prints `listening on <url>`).
    HelloServer,
    /// The verify route's cost inside the app, in process (no sockets): layers and handler.
    Inproc {
        /// Calls per phase and round.
        #[arg(long, default_value_t = 300_000)]
        requests: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// P7: cost per million resets on AWS from measured warm Lambda-mode flows.
    Cost {
        #[command(flatten)]
        setup: lambda::Setup,
        /// Metered resets (after one unmetered warm-up flow).
        #[arg(long, default_value_t = 100)]
        flows: usize,
        /// The SAM template whose `MemorySize` per function prices the GB-seconds.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::HelloServer = cli.command {
        // A multi-threaded runtime of its own, as `pwreset serve` has.
        return cpu::hello_server();
    }
    // One thread for the driver: on a 2-core machine it leaves the other to the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Load {
                pwreset,
                concurrency,
                rounds,
                seconds,
            } => serve::load(&pwreset, concurrency, rounds, seconds).await,
            Command::Confirm {
                pwreset,
                pairs,
                warmup,
            } => serve::confirm(&pwreset, pairs, warmup).await,
            Command::Change {
                pwreset,
                pairs,
                warmup,
            } => serve::change(&pwreset, pairs, warmup).await,
            Command::Lambda { setup, reps } => lambda::run(setup, reps).await,
            Command::HelloServer => Ok(()),
            Command::Inproc { requests, rounds } => inproc::run(requests, rounds).await,
            Command::Cpu {
                pwreset,
                requests,
                concurrency,
                rounds,
                only,
            } => cpu::run(&pwreset, requests, concurrency, rounds, &only).await,
            Command::Cost {
                setup,
                flows,
                template,
            } => cost::run(setup, flows, &template).await,
        }
    })
}
