//! The service's configuration: TOML with every key optional, defaults that run anywhere, and
//! errors that name the key.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::setting::ConfigError;
use crate::{
    alerts::AlertingConfig,
    core::{
        ingest::Limits,
        probes::HealthConfig,
        scoring::{Penalties, Policy, Thresholds},
    },
    engine,
    faces::{auth::AuthConfig, listener::Accepting, mcp::McpConfig, tls::TlsConfig},
    history::{journal::Journal, History, HistoryConfig},
    sources::{fleet::FleetConfig, host::HostConfig, scrape::Target},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub probes: ProbesConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub mcp: McpConfig,
    pub history: HistoryConfig,
    /// Prometheus and OpenMetrics targets, each the source `scrape:<name>`.
    pub scrape: Vec<Target>,
    pub otlp: OtlpConfig,
    pub health: HealthConfig,
    /// Alerts to Alertmanager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerting: Option<AlertingConfig>,
    /// The fleet guard: peers' failures read from Prometheus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetConfig>,
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
    /// Seconds the server waits, after the grace period, for open calls to finish before it
    /// closes every connection (idle ones included) and exits.
    pub drain_timeout_secs: u64,
    /// Connections open at once; more are closed as soon as they are accepted. Keep it below the
    /// process's file descriptor limit.
    pub max_connections: usize,
    /// Connections beyond `max_connections` that serve probes only (grpc.health.v1, `/livez`,
    /// `/readyz`), so that a client holding every slot does not take the probes down.
    pub probe_connections: usize,
    /// Connections open at once from one peer address.
    pub max_connections_per_peer: usize,
    /// Seconds a new connection may take to send its first bytes, and an HTTP/1.1 request its
    /// headers (also the wait for the next request on a kept-alive connection), before it is
    /// closed.
    pub handshake_timeout_secs: u64,
    /// Seconds an HTTP/1.1 request's body may take to arrive whole.
    pub body_timeout_secs: u64,
    /// Seconds a connection may carry no request (HTTP/2 pings do not count) before it is
    /// closed.
    pub idle_timeout_secs: u64,
    /// Seconds a send may wait on a peer that reads nothing before the connection is closed.
    pub send_timeout_secs: u64,
    /// Streams one HTTP/2 connection may have open at once (its SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// WatchHealth and grpc.health.v1 Watch streams open at once, over every connection; more are
    /// refused with RESOURCE_EXHAUSTED.
    pub max_watch_streams: usize,
    /// grpc.health.v1 Watch streams (which need no token) open at once; they have their own
    /// slots so anonymous probes cannot take the token holders' ones.
    pub max_probe_watch_streams: usize,
    /// Bytes that report answers being sent may hold at once; an answer that finds the budget
    /// spent waits up to a second, then gets RESOURCE_EXHAUSTED.
    pub max_answer_bytes_in_flight: usize,
    /// Requests handled at once over every face (probes not counted; a stream counts until it
    /// starts); more are refused at once with RESOURCE_EXHAUSTED (HTTP 429), never queued.
    pub max_concurrent_requests: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            shutdown_grace_secs: 5,
            drain_timeout_secs: 5,
            max_connections: 1_000,
            probe_connections: 64,
            max_connections_per_peer: 100,
            handshake_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 120,
            send_timeout_secs: 30,
            max_concurrent_streams: 100,
            max_watch_streams: 1_000,
            max_probe_watch_streams: 1_000,
            max_answer_bytes_in_flight: 16 << 20,
            max_concurrent_requests: 1_024,
        }
    }
}

/// The HTTP face: probes, JSON reports, live events, metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Whether the HTTP listener runs.
    pub enabled: bool,
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// The probe-only listener: grpc.health.v1 and `/livez`, `/readyz`, plaintext and open, for
/// kubelets when the main listeners serve TLS.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbesConfig {
    /// Address it binds; unset (the default) means no probe-only listener.
    pub listen: Option<SocketAddr>,
}

/// The OTLP metrics receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Whether MetricsService/Export (gRPC) and POST /v1/metrics (HTTP) are served.
    pub enabled: bool,
    /// How long an exporter's values stay fresh: OpenTelemetry SDKs export every 60 s by
    /// default, so three exports.
    pub ttl_secs: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_secs: 180,
        }
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
            level: "info,rmcp=warn".into(),
        }
    }
}

/// The prefix of environment variables that set config keys: `HEALTHSCORE_HOST__INTERVAL_SECS`
/// sets `host.interval_secs` (sections separated by a double underscore). Variables with the
/// prefix but no double underscore are not config keys and are ignored.
pub const ENV_PREFIX: &str = "HEALTHSCORE_";

impl Config {
    /// The configuration from defaults, then `file` (if any), then `HEALTHSCORE_*` variables
    /// among `env`; validated. Errors name the file line, the key or the variable.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut table, origin) = match file {
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: origin.clone(),
                    source,
                })?;
                // Parsed into the target type first so that errors carry the file's line.
                toml::from_str::<Config>(&text).map_err(|error| parse_error(&origin, &error))?;
                let table = text
                    .parse::<toml::Table>()
                    .map_err(|error| parse_error(&origin, &error))?;
                (table, origin)
            }
            None => (toml::Table::new(), "defaults".to_owned()),
        };
        let mut set_by_env = Vec::new();
        for (var, value) in env {
            // Only SECTION__KEY names are config keys. Others are left alone: Kubernetes injects
            // HEALTHSCORE_PORT, HEALTHSCORE_SERVICE_HOST... for a Service named healthscore.
            let Some(path) = var.strip_prefix(ENV_PREFIX).filter(|p| p.contains("__")) else {
                continue;
            };
            set_env_key(&mut table, &var, path, &value)?;
            set_by_env.push(var);
        }
        let config: Config = Config::deserialize(toml::Value::Table(table)).map_err(|error| {
            let message = error.to_string().trim_end().to_owned();
            match set_by_env.as_slice() {
                [] => ConfigError::Parse {
                    path: origin.clone(),
                    message,
                },
                vars => ConfigError::Parse {
                    path: format!("{origin} with {}", vars.join(", ")),
                    message,
                },
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| parse_error(origin, &error))?;
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
        for (key, value) in [
            ("host.interval_secs", self.host.interval_secs),
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.max_concurrent_requests",
                self.server.max_concurrent_requests as u64,
            ),
            (
                "server.handshake_timeout_secs",
                self.server.handshake_timeout_secs,
            ),
            (
                "server.max_concurrent_streams",
                self.server.max_concurrent_streams.into(),
            ),
            (
                "server.max_watch_streams",
                self.server.max_watch_streams as u64,
            ),
            (
                "server.max_probe_watch_streams",
                self.server.max_probe_watch_streams as u64,
            ),
            (
                "server.max_connections_per_peer",
                self.server.max_connections_per_peer as u64,
            ),
            ("server.body_timeout_secs", self.server.body_timeout_secs),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
            ("server.send_timeout_secs", self.server.send_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    problem: "must be at least 1".into(),
                });
            }
        }
        for (key, value, max) in [
            (
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
                3_600,
            ),
            (
                "server.drain_timeout_secs",
                self.server.drain_timeout_secs,
                3_600,
            ),
            (
                "server.handshake_timeout_secs",
                self.server.handshake_timeout_secs,
                3_600,
            ),
            (
                "server.body_timeout_secs",
                self.server.body_timeout_secs,
                3_600,
            ),
            (
                "server.idle_timeout_secs",
                self.server.idle_timeout_secs,
                86_400,
            ),
            (
                "server.send_timeout_secs",
                self.server.send_timeout_secs,
                3_600,
            ),
            ("host.interval_secs", self.host.interval_secs, 3_600),
            ("host.cpu_window_secs", self.host.cpu_window_secs, 86_400),
        ] {
            if value > max {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    problem: format!("{value} is above the maximum of {max} seconds"),
                });
            }
        }
        if !(self.limits.min_ttl_secs..=self.limits.max_ttl_secs).contains(&self.otlp.ttl_secs) {
            return Err(ConfigError::Invalid {
                key: "otlp.ttl_secs".into(),
                problem: format!(
                    "{} is outside limits.min_ttl_secs..=limits.max_ttl_secs ({}..={})",
                    self.otlp.ttl_secs, self.limits.min_ttl_secs, self.limits.max_ttl_secs
                ),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, target) in self.scrape.iter().enumerate() {
            let key = format!("scrape[{index}]");
            target
                .validate(&key, &self.limits)
                .map_err(|e| ConfigError::Invalid {
                    key: e.field,
                    problem: e.problem,
                })?;
            if !names.insert(&target.name) {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.name"),
                    problem: format!("{:?} names another target too", target.name),
                });
            }
        }
        // `serve` builds its log filter from this: `config check` must refuse what it refuses.
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Invalid {
                key: "log.level".into(),
                problem: format!("{:?} is not a valid filter: {error}", self.log.level),
            });
        }
        self.health.policy()?;
        if let Some(fleet) = &self.fleet {
            fleet.validate()?;
        }
        if let Some(alerting) = &self.alerting {
            alerting.validate()?;
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

    /// The engine's settings: the probe policy and the fleet guard, with `history` and
    /// `journal` (see [`History::open`]).
    pub fn engine(
        &self,
        history: History,
        journal: Option<Journal>,
    ) -> Result<engine::Settings, ConfigError> {
        Ok(engine::Settings {
            probes: self.health.policy()?,
            fleet: self.fleet.as_ref().map(FleetConfig::guard),
            history,
            journal,
        })
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_secs)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.server.drain_timeout_secs)
    }

    /// How the network faces accept connections.
    pub fn accepting(&self) -> Accepting {
        Accepting {
            max_connections: self.server.max_connections,
            probe_connections: self.server.probe_connections,
            max_connections_per_peer: self.server.max_connections_per_peer,
            handshake_timeout: Duration::from_secs(self.server.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(self.server.idle_timeout_secs),
            send_timeout: Duration::from_secs(self.server.send_timeout_secs),
        }
    }
}

fn parse_error(origin: &str, error: &toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        path: origin.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    }
}

/// Sets the key named by an environment variable's `path` (`HOST__INTERVAL_SECS`) in `table`.
/// The value is read as TOML (`10`, `true`, `"x"`), or as a string when it is not valid TOML.
fn set_env_key(
    table: &mut toml::Table,
    var: &str,
    path: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let env_error = |problem: String| ConfigError::Env {
        var: var.to_owned(),
        problem,
    };
    let segments: Vec<&str> = path.split("__").collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(env_error(
            "expected SECTION__KEY, e.g. HEALTHSCORE_HOST__INTERVAL_SECS".into(),
        ));
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut current = table;
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        // Issue codes under penalties.codes keep their upper case; every other key is lower case.
        let key = if index == 2 && segments[0].eq_ignore_ascii_case("penalties") {
            segment.to_string()
        } else {
            segment.to_ascii_lowercase()
        };
        if index == last {
            current.insert(key, value);
            return Ok(());
        }
        let next = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = next
            .as_table_mut()
            .ok_or_else(|| env_error(format!("{key} is not a section")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{probes::NotServingAt, scoring::Subsystem};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_sets_nested_keys_and_code_penalties() {
        let config = Config::load(
            None,
            env(&[
                ("HEALTHSCORE_HOST__INTERVAL_SECS", "10"),
                ("HEALTHSCORE_SERVER__LISTEN", "0.0.0.0:7000"),
                ("HEALTHSCORE_HEALTH__NOT_SERVING_AT", "warning"),
                (
                    "HEALTHSCORE_PENALTIES__CODES__DS_POOL_HIGH_UTILIZATION",
                    "15",
                ),
                ("HEALTHSCORE_CONFIG", "ignored.toml"),
                // What Kubernetes injects for a Service named healthscore: not config keys.
                ("HEALTHSCORE_PORT", "tcp://10.0.0.7:50051"),
                ("HEALTHSCORE_SERVICE_HOST", "10.0.0.7"),
                ("HEALTHSCORE_PORT_50051_TCP_ADDR", "10.0.0.7"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.host.interval_secs, 10);
        assert_eq!(config.server.listen.port(), 7000);
        assert_eq!(config.health.not_serving_at, NotServingAt::Warning);
        assert_eq!(
            config
                .penalties
                .codes
                .get(&crate::core::scoring::Code::DsPoolHighUtilization),
            Some(&15)
        );
    }

    #[test]
    fn unknown_environment_key_is_an_error_naming_the_variable() {
        let error = Config::load(None, env(&[("HEALTHSCORE_HOST__INTERVALL", "10")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("HEALTHSCORE_HOST__INTERVALL"), "{message}");
        assert!(message.contains("intervall"), "{message}");
    }

    #[test]
    fn a_zero_where_the_type_wants_at_least_one_names_the_key() {
        let error = Config::from_toml("[history]\nmax_transitions = 0\n", "test").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("max_transitions = 0"), "{message}");
        assert!(message.contains("nonzero"), "{message}");
        let error = Config::load(
            None,
            env(&[("HEALTHSCORE_LIMITS__MAX_PUSHES_PER_SOURCE_PER_SEC", "0")]),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("limits.max_pushes_per_source_per_sec"),
            "{message}"
        );
    }

    #[test]
    fn durations_that_would_overflow_deadlines_are_rejected() {
        for (text, key) in [
            (
                "[limits]\nmax_ttl_secs = 18446744073709551615\n",
                "limits.max_ttl_secs",
            ),
            (
                "[limits]\nforget_after_secs = 99999999999\n",
                "limits.forget_after_secs",
            ),
            (
                "[server]\nshutdown_grace_secs = 86400\n",
                "server.shutdown_grace_secs",
            ),
        ] {
            let error = Config::from_toml(text, "test").unwrap_err();
            assert!(
                error.to_string().starts_with(&format!("config key {key}:")),
                "{error}"
            );
        }
    }

    #[test]
    fn cpu_window_shorter_than_interval_is_rejected() {
        let error = Config::from_toml("[host]\ninterval_secs = 10\ncpu_window_secs = 5\n", "test")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("config key host.cpu_window_secs"),
            "{error}"
        );
    }

    #[test]
    fn probe_groups_and_startup_are_checked_by_key() {
        for (text, key) in [
            ("[health.groups.caches]\n", "health.groups.caches"),
            (
                "[health.groups.\"healthscore.v1.HealthReports\"]\n",
                "health.groups.healthscore.v1.HealthReports",
            ),
            (
                "[health.groups.web]\ninclude = [\"caches\"]\nexclude = [\"host\"]\n",
                "health.groups.web.exclude",
            ),
            (
                "[health.groups.web]\ninclude = [\"cache\"]\n",
                "health.groups.web.include",
            ),
            ("[health.groups.web]\ninclude = []\n", "health.groups.web"),
            (
                "[health]\nfail_after_by_name = { web = \"1s\" }\n",
                "health.fail_after_by_name.web",
            ),
            (
                "[health.startup]\nsources = []\nmax_wait = \"1m\"\n",
                "health.startup.sources",
            ),
        ] {
            let error = Config::from_toml(text, "test").unwrap_err();
            assert!(
                error.to_string().starts_with(&format!("config key {key}:")),
                "{text}: {error}"
            );
        }
        for (text, needle) in [
            (
                "[health.groups.web]\nexclude_codes = [\"NOPE\"]\n",
                "unknown issue code",
            ),
            ("[health.startup]\nsources = [\"app-*\"]\n", "max_wait"),
            ("[health]\nfail_after = \"soon\"\n", "not a duration"),
        ] {
            let error = Config::from_toml(text, "test").unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
        let config = Config::from_toml(
            "[health]\nfail_after = \"10s\"\n[health.groups.web]\nexclude = [\"host\"]\n\
             not_serving_at = \"warning\"\n",
            "test",
        )
        .expect("valid");
        let policy = config.health.policy().expect("valid");
        let web = policy.name("web").expect("the group is a name");
        assert!(!web.members.contains(&Subsystem::Host));
        assert_eq!(web.members.len(), Subsystem::ALL.len() - 1);
        assert_eq!(web.not_serving_at, NotServingAt::Warning);
        assert_eq!(web.fail_after, Duration::from_secs(10));
        assert_eq!(policy.names.len(), Subsystem::ALL.len() + 2);
    }
}
