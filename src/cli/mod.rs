//! The `healthscore` command line: argument parsing and the subcommands.

mod serve;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Explainable health reports over gRPC, with grpc.health.v1 for probes.
#[derive(Debug, Parser)]
#[command(name = "healthscore", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server (HealthReports, grpc.health.v1, reflection) on one port.
    Serve(serve::Args),
}

/// Options shared by the commands that read a config file.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file; every key is optional (see `healthscore config default`).
    #[arg(long, value_name = "FILE", env = "HEALTHSCORE_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
