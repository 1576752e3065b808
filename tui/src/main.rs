//! `blindtuner`: the command line for the hospital and the cloud, and the terminal app.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod app;
mod bench;
mod cloud;
mod demo;
mod extract;
mod files;
mod hospital;
mod malloc;
mod presets;
mod report;
mod results;
mod selftest;

/// Privacy-preserving fine-tuning of a classifier head on CKKS-encrypted DeiT features.
///
/// Two parties, each running blindtuner on its own machine:
///
///   HOSPITAL (holds the secret key): keygen → encrypt → [send dataset.bltn and eval.keys] →
///   refresh --watch DIR (while the cloud trains) → decrypt → evaluate.
///
///   CLOUD (public files only): train (and infer) on ciphertexts; it refuses secret-key files.
///
/// With no arguments: the terminal app on a terminal, `demo --headless` otherwise.
#[derive(Parser, Debug)]
#[command(name = "blindtuner", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// [hospital] Make the keys: secret.key (owner-only, never leaves the hospital),
    /// params.bltn, public.keys and eval.keys (for the cloud), with the rotations the trainer
    /// needs for the data's dimensions.
    Keygen(hospital::KeygenArgs),
    /// [hospital] Standardise (statistics kept in the hospital directory), shuffle, pack and
    /// encrypt a features file's train and validation splits into an EncryptedDataset.
    Encrypt(hospital::EncryptArgs),
    /// [cloud] Train the classifier head on the EncryptedDataset with Nesterov accelerated
    /// gradient; checkpoints after every step (`--resume` continues). Takes public files only.
    Train(cloud::TrainArgs),
    /// [hospital] Answer the cloud's masked refresh requests (and validation-loss verdicts)
    /// in a shared exchange directory (or over loopback TCP) while it trains.
    Refresh(hospital::RefreshArgs),
    /// [hospital] Decrypt the cloud's EncryptedModel into a Model file.
    Decrypt(hospital::DecryptArgs),
    /// [hospital] Accuracy, per-class accuracy, confusion matrix and loss of a Model on a split.
    Evaluate(hospital::EvaluateArgs),
    /// [cloud] Encrypted inference: class scores of an EncryptedDataset under an EncryptedModel.
    Infer(cloud::InferArgs),
    /// [both] What a blindtuner file is: kind, parameters, fingerprint, sizes.
    Inspect {
        /// The file.
        file: PathBuf,
    },
    /// [both] The whole pipeline in one process on the embedded fixtures: keygen → encrypt →
    /// train encrypted, plaintext mirror and exact side by side → decrypt → evaluate.
    Demo(demo::Args),
    /// [both] Check the CKKS foundation on this machine: NTT, RNS rescale and slot encoding
    /// precision on every named parameter preset.
    Selftest(selftest::Args),
    Extract(Box<extract::Args>),
    /// [both] Speed benchmarks: `ckks` (the keys and timing rules of ../shared/bench, OpenFHE
    /// comparison), `train` (encrypted steps, JSON with --json).
    Bench(bench::Args),
    /// [both] PNG figures (loss and accuracy per step, seconds per step by operation) and the
    /// markdown results table from `bench train --history` files (docs/RESULTS.md).
    Report(report::Args),
    /// The interactive terminal app (the default on a terminal).
    App(demo::Args),
}

/// A closed stdout (`blindtuner evaluate | head`) ends the process quietly, as for other Unix
/// tools, instead of a panic in `println!`.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE at start-up, before any other
    // thread exists; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> Result<()> {
    malloc::configure();
    default_sigpipe();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keygen(a)) => hospital::keygen(&a),
        Some(Command::Encrypt(a)) => hospital::encrypt(&a),
        Some(Command::Train(a)) => cloud::train(&a),
        Some(Command::Refresh(a)) => hospital::refresh(&a),
        Some(Command::Decrypt(a)) => hospital::decrypt_cmd(&a),
        Some(Command::Evaluate(a)) => hospital::evaluate(&a),
        Some(Command::Infer(a)) => cloud::infer(&a),
        Some(Command::Inspect { file }) => inspect(&file),
        Some(Command::Demo(a)) => demo::run_cli(&a),
        Some(Command::Selftest(args)) => selftest::run(&args),
        Some(Command::Extract(args)) => extract::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::App(a)) => app::run(&a),
        None => {
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                app::run(&demo::Args::default())
            } else {
                demo::run_cli(&demo::Args {
                    headless: true,
                    ..demo::Args::default()
                })
            }
        }
    }
}

fn inspect(path: &std::path::Path) -> Result<()> {
    let bytes = files::read(path)?;
    println!("{}", path.display());
    for (k, v) in files::describe(path, &bytes)? {
        println!("  {k:<20} {v}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn demo_defaults_of_clap_and_of_the_app_agree() {
        let Some(Command::Demo(a)) = Cli::try_parse_from(["blindtuner", "demo"]).unwrap().command
        else {
            panic!("demo");
        };
        let d = demo::Args::default();
        assert_eq!(
            (
                a.dataset,
                a.preset,
                a.steps,
                a.batch_chunks,
                a.lr,
                a.momentum
            ),
            (
                d.dataset,
                d.preset,
                d.steps,
                d.batch_chunks,
                d.lr,
                d.momentum
            )
        );
        assert!(!a.insecure_test_preset && !d.insecure_test_preset);
    }

    #[test]
    fn help_names_each_partys_commands() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for s in [
            "HOSPITAL",
            "CLOUD",
            "[hospital] Make the keys",
            "[cloud] Train",
            "secret",
        ] {
            assert!(help.contains(s), "{s} missing from --help:\n{help}");
        }
        // The insecure test preset is hidden from the help.
        let keygen = Cli::command()
            .find_subcommand_mut("keygen")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!keygen.contains("insecure-test-preset"), "{keygen}");
        assert!(keygen.contains("128-bit"), "{keygen}");
    }
}
