//! `blindtuner`: the command line for the hospital and the cloud.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod extract;
mod malloc;
mod selftest;

/// Privacy-preserving fine-tuning of a classifier head on CKKS-encrypted DEiT features.
///
/// The hospital extracts features, encrypts them and keeps the secret key; the cloud trains on
/// ciphertexts with public evaluation keys only. Run with no arguments for the default job.
#[derive(Parser, Debug)]
#[command(name = "blindtuner", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the CKKS foundation on this machine: NTT, RNS rescale and slot encoding precision
    /// on every named parameter preset (both parties can run it).
    Selftest(selftest::Args),
    Extract(Box<extract::Args>),
    /// Speed benchmarks with the keys and timing rules of ../shared/bench (OpenFHE comparison).
    Bench(bench::Args),
}

fn main() -> Result<()> {
    malloc::configure();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Selftest(args)) => selftest::run(&args),
        Some(Command::Extract(args)) => extract::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        None => selftest::run(&selftest::Args::default()),
    }
}
