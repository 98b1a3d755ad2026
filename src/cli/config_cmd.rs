//! `healthscore config`: validate a file, print the defaults.

use std::{path::PathBuf, process::ExitCode};

use crate::{
    config::Config,
    faces::{auth::Tokens, tls::Certificates},
    history::journal,
};

/// The default configuration with every key commented; a test keeps it equal to the defaults.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a config file (and HEALTHSCORE_* variables), and the TLS, token and journal files
    /// it names: exit 0 if usable, 1 with the key and line of the first problem otherwise. A
    /// journal that cannot be used is a warning: `serve` runs without it.
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
            let config = Config::load(Some(&file), std::env::vars())?;
            Certificates::load(&config.tls)?;
            Tokens::load(&config.auth)?;
            if let Some(path) = &config.history.path {
                if let Err(error) = journal::check(path) {
                    eprintln!(
                        "warning: history.path: {}: {error} (serve keeps the history in memory only)",
                        path.display()
                    );
                }
            }
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

    #[test]
    fn the_commented_examples_are_valid() {
        // Each example starts at a commented table header and runs to the end of its comment.
        let mut examples = String::new();
        let mut inside = false;
        for line in DEFAULT_CONFIG.lines() {
            let header = ["# [health.", "# [fleet]", "# [alerting]"]
                .iter()
                .any(|start| line.starts_with(start));
            inside = header || (inside && line.starts_with("# "));
            if inside {
                examples.push_str(&line[2..]);
                examples.push('\n');
            }
        }
        assert!(examples.contains("[health.groups.traffic]"), "{examples}");
        assert!(examples.contains("[health.startup]"), "{examples}");
        let config = Config::from_toml(&examples, "examples").expect("valid examples");
        assert!(config.health.startup.is_some());
        assert!(config.fleet.is_some());
        assert!(config.alerting.is_some());
    }
}
