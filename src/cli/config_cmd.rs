//! `healthscore config`: validate a file, print the defaults.

use std::{path::PathBuf, process::ExitCode};

use crate::config::Config;

/// The default configuration with every key commented; a test keeps it equal to the defaults.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a config file (and HEALTHSCORE_* variables): exit 0 if usable, 1 with the key and
    /// line of the first problem otherwise.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the default config, every key commented.
    Default,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { file } => {
            Config::load(Some(&file), std::env::vars())?;
            println!("{}: ok", file.display());
        }
        Command::Default => print!("{DEFAULT_CONFIG}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_default_config_is_the_default() {
        let parsed = Config::from_toml(DEFAULT_CONFIG, "default_config.toml").expect("valid");
        assert_eq!(parsed, Config::default());
    }
}
