//! The `healthscore` command line: argument parsing and the subcommands.

mod check;
mod config_cmd;
mod connect;
mod get;
mod history;
mod mcp;
mod probe;
pub mod push;
mod serve;
mod style;
mod watch;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Explainable health reports over gRPC, with grpc.health.v1 for probes.
///
/// Exit codes: 0 success; 1 bad arguments or config; probe adds grpc-health-probe's
/// 2 (connection failure), 3 (RPC failure) and 4 (not serving); check uses the monitoring
/// plugins' 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
#[derive(Debug, Parser)]
#[command(name = "healthscore", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: HealthReports, grpc.health.v1 and reflection on one port.
    Serve(serve::Args),
    /// One grpc.health.v1 Check, with grpc-health-probe's exit codes (for exec probes and
    /// Docker HEALTHCHECK).
    Probe(probe::Args),
    /// A Nagios/Icinga/Sensu plugin: one status line with performance data, the issues, and
    /// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(check::Args),
    /// Print the system report, or one subsystem's.
    Get(get::Args),
    /// Follow WatchHealth: one line per change of status, score or issues.
    Watch(watch::Args),
    /// Push snapshots from a JSON file (or - for stdin), as an app would with ReportMetrics.
    Push(push::Args),
    /// Print the status transitions (newest first) and the uptime of the last hour and day.
    History(history::Args),
    /// Serve the MCP health tools on stdin/stdout for an AI agent, reading from a running
    /// server over gRPC.
    Mcp(mcp::Args),
    /// Validate a config file or print the default one.
    #[command(subcommand)]
    Config(config_cmd::Command),
}

/// Options shared by the commands that read a config file.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file; every key is optional (see `healthscore config default`).
    #[arg(long, value_name = "FILE", env = "HEALTHSCORE_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with success; usage errors exit 1 like
            // grpc-health-probe's bad arguments.
            let _ = error.print();
            // A monitoring system reads 1 as WARNING: a plugin's usage error is UNKNOWN.
            let plugin = std::env::args().nth(1).as_deref() == Some("check");
            return match (error.use_stderr(), plugin) {
                (false, _) => ExitCode::SUCCESS,
                (true, true) => ExitCode::from(check::UNKNOWN),
                (true, false) => ExitCode::from(1),
            };
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Probe(args) => Ok(probe::run(args)),
        Command::Check(args) => Ok(check::run(args)),
        Command::Get(args) => get::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Push(args) => push::run(args),
        Command::Mcp(args) => mcp::run(args),
        Command::History(args) => history::run(args),
        Command::Config(command) => config_cmd::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// A runtime for the client commands: one thread is plenty.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
