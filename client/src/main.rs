//! `postern`: the Postern command-line client.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Postern: end-to-end-encrypted, expiring messages about courier deliveries.
#[derive(Debug, Parser)]
#[command(name = "postern", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk through what Postern does, step by step, on real code.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => postern::demo::run(&mut std::io::stdout().lock()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("postern: {err}");
            ExitCode::FAILURE
        }
    }
}
