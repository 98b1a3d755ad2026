//! The primitives every part's configuration uses, below every part: durations as people write
//! them, and the error that names a key. Each part keeps its own config type beside its code;
//! `config` reads the file and the environment and gathers the parts' sections.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written as `500ms`, `30s`, `2m` or a number of seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Delay(pub Duration);

impl TryFrom<String> for Delay {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse_duration(&text).map(Delay)
    }
}

impl From<Delay> for String {
    fn from(delay: Delay) -> String {
        match delay.0.subsec_millis() {
            0 => format!("{}s", delay.0.as_secs()),
            _ => format!("{}ms", delay.0.as_millis()),
        }
    }
}

/// Reads a duration such as `500ms`, `1s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 1s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

/// A configuration that cannot be used. The message names the key (and for files, the line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key {key}: {problem}")]
    Invalid { key: String, problem: String },
    #[error("environment variable {var}: {problem}")]
    Env { var: String, problem: String },
}
