//! The fleet guard's input: every `refresh`, how many of this service's other instances fail
//! each probe name, read from the user's Prometheus (or Thanos, or Mimir) over its query API,
//! from the `healthscore_probe_failing{name}` series every instance exposes. The engine decides
//! with the newest view; a probe never waits on Prometheus.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    core::fleet::{check_selector, FleetView, Guard, PeerCount},
    engine::{Engine, EngineError},
    http_client::{self, Credentials, CredentialsError, Request},
    setting::{ConfigError, Delay},
};

/// The most bytes a query answer may have: one series per probe name.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// `[fleet]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The Prometheus (or Thanos/Mimir query) API, `http://prometheus:9090`.
    pub prometheus_url: String,
    /// A label selector for this service's instances: `job="healthscore", app="orders"`.
    pub peers: String,
    /// This instance's `instance` label (default: `http.listen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Above this share of the instances failing the same name, nobody leaves.
    #[serde(default = "FleetConfig::default_fraction")]
    pub max_unready_fraction: f64,
    /// How often the peers' view is read.
    #[serde(default = "FleetConfig::default_refresh")]
    pub refresh: Delay,
    /// A file holding a bearer token for the Prometheus API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_token_file: Option<PathBuf>,
    /// PEM CA certificates to verify an `https` Prometheus with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_ca: Option<PathBuf>,
}

impl FleetConfig {
    fn default_fraction() -> f64 {
        0.5
    }

    fn default_refresh() -> Delay {
        Delay(Duration::from_secs(10))
    }

    /// Checks every key without touching a file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: format!("fleet.{key}"),
            problem,
        };
        let uri = http_client::parse_url(&self.prometheus_url)
            .map_err(|problem| invalid("prometheus_url", problem))?;
        if uri.scheme_str() == Some("https") && self.prometheus_ca.is_none() {
            return Err(invalid(
                "prometheus_ca",
                "an https prometheus_url needs the CA to verify it with".into(),
            ));
        }
        check_selector(&self.peers).map_err(|problem| invalid("peers", problem))?;
        if !(0.0..=1.0).contains(&self.max_unready_fraction) {
            return Err(invalid(
                "max_unready_fraction",
                format!("{} is outside 0..1", self.max_unready_fraction),
            ));
        }
        if self.refresh.0 < Duration::from_secs(1) {
            return Err(invalid(
                "refresh",
                format!("{:?} is under the minimum of 1s", self.refresh.0),
            ));
        }
        if let Some(instance) = &self.instance {
            if instance.is_empty() || instance.contains(['"', '\\', '\n']) {
                return Err(invalid(
                    "instance",
                    format!("{instance:?} is not an instance label value"),
                ));
            }
        }
        Ok(())
    }

    /// The guard's settings: a view is stale after three refreshes missed.
    pub fn guard(&self) -> Guard {
        Guard {
            max_unready_fraction: self.max_unready_fraction,
            stale_after: self.refresh.0 * 3,
        }
    }
}

/// The running refresh: its queries, made once.
pub struct FleetSource {
    /// `sum by (name)` and `count by (name)` of the other instances' failing series.
    queries: [hyper::Uri; 2],
    refresh: Duration,
    credentials: Credentials,
}

impl FleetSource {
    /// The refresh of `config` (validated), for the instance labelled `instance`; reads the
    /// token and CA files.
    pub fn new(config: &FleetConfig, instance: &str) -> Result<Self, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: format!("fleet.{key}"),
            problem,
        };
        let base = config.prometheus_url.trim_end_matches('/');
        let instance = config.instance.as_deref().unwrap_or(instance);
        let series = format!(
            "healthscore_probe_failing{{{}, instance!=\"{instance}\"}}",
            config.peers.trim().trim_end_matches(',')
        );
        let query = |aggregate: &str| {
            let promql = format!("{aggregate} by (name) ({series})");
            let encoded =
                percent_encoding::utf8_percent_encode(&promql, percent_encoding::NON_ALPHANUMERIC);
            format!("{base}/api/v1/query?query={encoded}")
                .parse::<hyper::Uri>()
                .map_err(|error| invalid("prometheus_url", error.to_string()))
        };
        let credentials = Credentials::read(
            config.prometheus_token_file.as_deref(),
            config.prometheus_ca.as_deref(),
        )
        .map_err(|error| match error {
            CredentialsError::TokenFile(problem) => invalid("prometheus_token_file", problem),
            CredentialsError::Ca(problem) => invalid("prometheus_ca", problem),
        })?;
        Ok(Self {
            queries: [query("sum")?, query("count")?],
            refresh: config.refresh.0,
            credentials,
        })
    }

    /// Reads the view every `refresh` and hands it to the engine, until the engine stops.
    pub async fn run(self, engine: Engine) {
        let mut ticks = tokio::time::interval(self.refresh);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = None;
        loop {
            ticks.tick().await;
            // A slow Prometheus costs a refresh, never a probe.
            let view = match tokio::time::timeout(self.refresh, self.read()).await {
                Ok(Ok(names)) if names.is_empty() => Err(
                    "Prometheus has no healthscore_probe_failing series for fleet.peers".to_owned(),
                ),
                Ok(Ok(names)) => Ok(names),
                Ok(Err(reason)) => Err(reason),
                Err(_) => Err(format!(
                    "no answer within {:?} (fleet.refresh)",
                    self.refresh
                )),
            };
            let view = match view {
                Ok(names) => {
                    if reported.take().is_some() {
                        tracing::info!("fleet guard: the peers' view is back");
                    }
                    FleetView::Seen {
                        at: std::time::Instant::now(),
                        names,
                    }
                }
                Err(reason) => {
                    // Once per cause, not once per refresh.
                    if reported.as_ref() != Some(&reason) {
                        tracing::warn!(%reason, "fleet guard: cannot read the peers' view; deciding locally");
                        reported = Some(reason.clone());
                    }
                    FleetView::Unavailable { reason }
                }
            };
            if let Err(EngineError::Stopped) = engine.fleet_view(view).await {
                return;
            }
        }
    }

    async fn read(&self) -> Result<BTreeMap<String, PeerCount>, String> {
        let [failing, peers] = [&self.queries[0], &self.queries[1]].map(|uri| Request {
            uri,
            accept: "application/json",
            bearer: self.credentials.bearer.as_deref(),
            tls: self.credentials.tls.as_ref(),
            max_body: MAX_ANSWER_BYTES,
            body: None,
        });
        let (failing, peers) = tokio::join!(failing.send(), peers.send());
        let failing = vector(&failing.map_err(|e| e.to_string())?)?;
        let peers = vector(&peers.map_err(|e| e.to_string())?)?;
        Ok(peers
            .into_iter()
            .map(|(name, peers)| {
                let failing = failing.get(&name).copied().unwrap_or(0);
                (name, PeerCount { failing, peers })
            })
            .collect())
    }
}

/// An instant vector answer of the query API as `name` label to value.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

fn vector(body: &[u8]) -> Result<BTreeMap<String, u32>, String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|error| format!("the query API's answer is not what Prometheus sends: {error}"))?;
    let data = match (answer.status.as_str(), answer.data) {
        ("success", Some(data)) if data.result_type == "vector" => data,
        ("success", _) => return Err("the query API answered something other than a vector".into()),
        _ => {
            return Err(format!(
                "the query failed: {}",
                answer.error.unwrap_or_default()
            ))
        }
    };
    data.result
        .into_iter()
        .map(|sample| {
            let name = sample.metric.get("name").cloned().unwrap_or_default();
            let value: f64 = sample
                .value
                .1
                .parse()
                .map_err(|_| format!("{:?} is not a number", sample.value.1))?;
            if !(0.0..=f64::from(u32::MAX)).contains(&value) {
                return Err(format!("{value} is not a count of instances"));
            }
            Ok((name, value as u32))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answers_are_read_and_bad_ones_refused() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"name":""},"value":[1700000000.1,"4"]},
            {"metric":{"name":"datasources"},"value":[1700000000.1,"2"]}]}}"#;
        let read = vector(body).expect("a vector");
        assert_eq!(read.get(""), Some(&4));
        assert_eq!(read.get("datasources"), Some(&2));
        for bad in [
            &br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#[..],
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#,
            b"<html>",
        ] {
            assert!(vector(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        let good = FleetConfig {
            prometheus_url: "http://prometheus:9090".into(),
            peers: r#"job="healthscore""#.into(),
            instance: None,
            max_unready_fraction: 0.5,
            refresh: Delay(Duration::from_secs(10)),
            prometheus_token_file: None,
            prometheus_ca: None,
        };
        assert!(good.validate().is_ok());
        for (bad, key) in [
            (
                FleetConfig {
                    prometheus_url: "prometheus:9090".into(),
                    ..good.clone()
                },
                "fleet.prometheus_url",
            ),
            (
                FleetConfig {
                    prometheus_url: "https://prometheus:9090".into(),
                    ..good.clone()
                },
                "fleet.prometheus_ca",
            ),
            (
                FleetConfig {
                    peers: "job=healthscore".into(),
                    ..good.clone()
                },
                "fleet.peers",
            ),
            (
                FleetConfig {
                    max_unready_fraction: 1.5,
                    ..good.clone()
                },
                "fleet.max_unready_fraction",
            ),
            (
                FleetConfig {
                    refresh: Delay(Duration::from_millis(500)),
                    ..good.clone()
                },
                "fleet.refresh",
            ),
        ] {
            let error = bad.validate().expect_err("refused").to_string();
            assert!(error.starts_with(&format!("config key {key}:")), "{error}");
        }
    }
}
