//! The service's configuration: TOML with every key optional, defaults that run anywhere, and
//! errors that name the key.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    scoring::{Penalties, Policy, Status, Thresholds},
    store::Limits,
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub health: HealthConfig,
    pub limits: Limits,
    pub host: HostConfig,
    pub log: LogConfig,
    pub thresholds: Thresholds,
    pub penalties: Penalties,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Seconds between turning every grpc.health.v1 name NOT_SERVING on SIGTERM/SIGINT and
    /// closing the server, so that probes and load balancers see it and move traffic away.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            shutdown_grace_secs: 5,
        }
    }
}

/// The report status from which grpc.health.v1 answers NOT_SERVING.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotServingAt {
    Warning,
    #[default]
    Critical,
}

impl NotServingAt {
    pub fn serves(self, status: Status) -> bool {
        match self {
            Self::Warning => status == Status::Healthy,
            Self::Critical => status != Status::Critical,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// `critical` (default): only critical reports are NOT_SERVING; `warning`: warning too.
    pub not_serving_at: NotServingAt,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Whether the host sampler runs.
    pub enabled: bool,
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Seconds of CPU samples averaged by the HOST_CPU rules.
    pub cpu_window_secs: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 5,
            cpu_window_secs: 30,
        }
    }
}

impl HostConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// How many samples the CPU window holds.
    pub fn cpu_window_samples(&self) -> usize {
        (self.cpu_window_secs / self.interval_secs.max(1)).max(1) as usize
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `healthscore=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used. The message names the key (and for files, the line).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key {key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy().validate().map_err(|e| ConfigError::Invalid {
            key: e.key,
            problem: e.problem,
        })?;
        self.limits.validate().map_err(|e| ConfigError::Invalid {
            key: e.field,
            problem: e.problem,
        })?;
        if self.host.interval_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "host.interval_secs".into(),
                problem: "must be at least 1".into(),
            });
        }
        if self.host.cpu_window_secs < self.host.interval_secs {
            return Err(ConfigError::Invalid {
                key: "host.cpu_window_secs".into(),
                problem: format!(
                    "{} is shorter than host.interval_secs ({})",
                    self.host.cpu_window_secs, self.host.interval_secs
                ),
            });
        }
        Ok(())
    }

    pub fn policy(&self) -> Policy {
        Policy {
            thresholds: self.thresholds.clone(),
            penalties: self.penalties.clone(),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_secs)
    }
}
