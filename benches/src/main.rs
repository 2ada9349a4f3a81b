//! aiot-bench: aiot's benchmarks against peer runtimes and raw baselines (BLUEPRINT section 10).
//!
//! `cargo run --release -p aiot-bench -- <subcommand>`. Each subcommand prints our figure, the
//! peer's or the baseline's from the same run, and the ratio with its direction. Implemented:
//! `savina` (aiot vs actix vs ractor), `remote` (aiot nodes vs raw quinn), `ingest` (motes
//! through a broker into the proxies vs the broker's raw pub/sub), `sim` (simulated vs real
//! time), `stream` (the embedded event log vs plain append + fsync to a file), `train` (the
//! Newton logistic regression vs scikit-learn's newton-cg), `migrate` (live migration vs a
//! stop-and-restart move).

mod alloc;
mod ingest;
mod migrate;
mod remote;
mod savina;
mod sim;
mod stream;
mod stream_kafka;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The one allocator every runtime in this process allocates through (memory figures).
#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(name = "aiot-bench", about = "aiot's benchmarks against peer runtimes and raw baselines")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Savina actor kernels: aiot vs actix 0.13 vs ractor 0.16, side by side.
    Savina(savina::Args),
    /// Remote tells and asks between two nodes vs raw quinn with the same framing.
    Remote(remote::Args),
    /// Mote frames through a broker into the proxies vs the same broker's raw pub/sub.
    Ingest(ingest::Args),
    /// Simulated time per wall second of the simulation scenarios.
    Sim(sim::Args),
    /// The embedded event log's appends and reads vs plain append + fsync to a file.
    Stream(stream::Args),
    /// Logistic regression fits: our Newton solver vs scikit-learn's newton-cg, same objective.
    Train(train::Args),
    /// Live migration of a stateful actor under load vs a stop-and-restart move.
    Migrate(migrate::Args),
}

/// The tokio runtime the cluster benchmarks run their nodes on: two workers, one per core.
fn node_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.bench {
        Bench::Savina(args) => savina::run(args),
        Bench::Remote(args) => remote::run(args),
        Bench::Ingest(args) => ingest::run(args),
        Bench::Sim(args) => sim::run(args),
        Bench::Stream(args) => stream::run(args),
        Bench::Train(args) => train::run(args),
        Bench::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("aiot-bench: FAILED: {why}");
            ExitCode::FAILURE
        }
    }
}
