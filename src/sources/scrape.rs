//! The scrape source: Prometheus and OpenMetrics endpoints (Spring Boot's
//! `/actuator/prometheus`, node_exporter, anything with mapping rows), each read every interval
//! as the source `scrape:<name>` with a TTL of three intervals, so a target that stops answering
//! goes SOURCE_STALE like a silent pusher. A failed scrape is logged and counted, never a crash,
//! and changes nothing.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{
    discovery, exposition,
    mapping::{node_host, CpuTimes, Mapping, Row},
    push, Running, Source, SourceError,
};
use crate::{
    core::ingest::{FieldError, Limits, Push},
    engine::{Engine, EngineError},
    http_client::{HttpError, Request},
    telemetry::{ScrapeResult, Telemetry},
};

/// Which well-known names a target publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Micrometer (Spring Boot's `/actuator/prometheus`): pools, caches, executors, the JVM,
    /// Tomcat or Jetty.
    Micrometer,
    /// node_exporter: the host's CPU, memory and filesystems.
    Node,
}

/// One `[[scrape]]`: a fixed `url`, or targets from `file_sd` or `http_sd`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The source is `scrape:<name>` (`scrape:<name>/<host:port>` for a discovered target).
    pub name: String,
    /// `http://host:port/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Globs (a `*` in the file name) of Prometheus `file_sd` files, JSON or YAML.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sd: Vec<String>,
    /// A Prometheus `http_sd` URL answering target groups in JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_sd: Option<String>,
    /// Seconds between reads of the target list (files are polled for changes as often).
    #[serde(default = "Target::default_refresh")]
    pub refresh_secs: u64,
    /// Shards over several healthscore instances: this one scrapes the targets whose stable
    /// hash modulo `shard_count` is `shard_index`.
    #[serde(default = "Target::default_shard_count")]
    pub shard_count: u32,
    #[serde(default)]
    pub shard_index: u32,
    #[serde(default = "Target::default_interval")]
    pub interval_secs: u64,
    #[serde(default = "Target::default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Rows added to (or overriding) the profile's.
    #[serde(default)]
    pub mappings: Vec<Row>,
    /// A larger answer is refused.
    #[serde(default = "Target::default_max_body")]
    pub max_body_bytes: usize,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: None,
            file_sd: Vec::new(),
            http_sd: None,
            refresh_secs: Self::default_refresh(),
            shard_count: Self::default_shard_count(),
            shard_index: 0,
            interval_secs: Self::default_interval(),
            timeout_secs: Self::default_timeout(),
            profile: None,
            mappings: Vec::new(),
            max_body_bytes: Self::default_max_body(),
        }
    }
}

impl Target {
    fn default_interval() -> u64 {
        15
    }

    fn default_refresh() -> u64 {
        60
    }

    fn default_shard_count() -> u32 {
        1
    }

    fn default_timeout() -> u64 {
        10
    }

    fn default_max_body() -> usize {
        10 << 20
    }

    /// Checks the target; errors name the key (`scrape[1].url`).
    pub fn validate(&self, key: &str, limits: &Limits) -> Result<(), FieldError> {
        crate::core::ingest::name(
            &format!("{key}.name"),
            &self.source(),
            limits.max_name_bytes,
        )?;
        self.check_where(key)?;
        if !(1..=3_600).contains(&self.interval_secs) {
            return Err(FieldError::new(
                format!("{key}.interval_secs"),
                "must be 1 to 3600",
            ));
        }
        if !(1..=self.interval_secs).contains(&self.timeout_secs) {
            return Err(FieldError::new(
                format!("{key}.timeout_secs"),
                format!("must be 1 to interval_secs ({})", self.interval_secs),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(FieldError::new(
                format!("{key}.max_body_bytes"),
                "must be at least 1",
            ));
        }
        if self.profile.is_none() && self.mappings.is_empty() {
            return Err(FieldError::new(
                format!("{key}.profile"),
                "set a profile (micrometer or node) or mapping rows",
            ));
        }
        for (index, row) in self.mappings.iter().enumerate() {
            row.validate(&format!("{key}.mappings[{index}]"))?;
        }
        Ok(())
    }

    /// Checks that exactly one of `url`, `file_sd` and `http_sd` says where the targets are,
    /// and each of them.
    fn check_where(&self, key: &str) -> Result<(), FieldError> {
        let http_url = |field: &str, url: &str| {
            let uri: hyper::Uri = url.parse().map_err(|error| {
                FieldError::new(
                    format!("{key}.{field}"),
                    format!("{url:?} is not a URL: {error}"),
                )
            })?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(FieldError::new(
                    format!("{key}.{field}"),
                    format!("{url:?} is not an http://host:port/path URL (https is not supported)"),
                ));
            }
            Ok(())
        };
        match (&self.url, self.file_sd.is_empty(), &self.http_sd) {
            (Some(url), true, None) => http_url("url", url)?,
            (None, false, None) => {
                for (index, glob) in self.file_sd.iter().enumerate() {
                    discovery::check_glob(glob).map_err(|problem| {
                        FieldError::new(format!("{key}.file_sd[{index}]"), problem)
                    })?;
                }
            }
            (None, true, Some(url)) => http_url("http_sd", url)?,
            _ => {
                return Err(FieldError::new(
                    format!("{key}.url"),
                    "give exactly one of url, file_sd and http_sd",
                ))
            }
        }
        if !(1..=3_600).contains(&self.refresh_secs) {
            return Err(FieldError::new(
                format!("{key}.refresh_secs"),
                "must be 1 to 3600",
            ));
        }
        if self.shard_count == 0 {
            return Err(FieldError::new(
                format!("{key}.shard_count"),
                "must be at least 1",
            ));
        }
        if self.shard_index >= self.shard_count {
            return Err(FieldError::new(
                format!("{key}.shard_index"),
                format!("must be below shard_count ({})", self.shard_count),
            ));
        }
        if self.shard_count > 1 && self.url.is_some() {
            return Err(FieldError::new(
                format!("{key}.shard_count"),
                "shards split discovered targets (file_sd, http_sd), not one url",
            ));
        }
        Ok(())
    }

    fn source(&self) -> String {
        format!("scrape:{}", self.name)
    }
}

/// A running target: its address, mapping and TTL, made once.
pub struct ScrapeSource {
    target: Target,
    uri: hyper::Uri,
    /// Shared by the targets of one discovery: scrapes in flight at once.
    in_flight: Option<Arc<Semaphore>>,
    mapping: Mapping,
    ttl: Duration,
    limits: Limits,
    telemetry: Arc<Telemetry>,
}

/// Why one scrape changed nothing.
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    #[error("no answer within {0:?} (timeout_secs)")]
    Timeout(Duration),
    #[error(transparent)]
    Get(#[from] HttpError),
    #[error("the answer is not UTF-8 text")]
    NotText,
    #[error("the answer is not an exposition: {0}")]
    Parse(#[from] exposition::ParseError),
    #[error("{0}")]
    Refused(#[from] FieldError),
}

impl ScrapeSource {
    /// A source for `target`, which `Target::validate` has accepted.
    pub fn new(target: Target, limits: Limits, telemetry: Arc<Telemetry>) -> Self {
        let uri = target
            .url
            .as_deref()
            .unwrap_or_default()
            .parse()
            .expect("Target::validate accepted the URL");
        let mapping = match target.profile {
            Some(Profile::Micrometer) => Mapping::micrometer(),
            Some(Profile::Node) | None => Mapping::default(),
        }
        .with(&target.mappings);
        let ttl = limits.ttl_of_interval(Duration::from_secs(target.interval_secs));
        Self {
            target,
            uri,
            in_flight: None,
            mapping,
            ttl,
            limits,
            telemetry,
        }
    }

    /// Scrapes only while it holds one of `in_flight`'s permits.
    pub fn with_in_flight(self, in_flight: Arc<Semaphore>) -> Self {
        Self {
            in_flight: Some(in_flight),
            ..self
        }
    }

    /// Scrapes every interval, starting at an offset of its own, until the engine stops.
    pub async fn run(self, engine: Engine) {
        let interval = Duration::from_secs(self.target.interval_secs);
        // Targets start spread over the interval, so many of them do not scrape at once.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.target.name.hash(&mut hasher);
        let offset = Duration::from_millis(hasher.finish() % interval.as_millis().max(1) as u64);
        tokio::time::sleep(offset).await;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cpu = None;
        loop {
            ticks.tick().await;
            let permit = match &self.in_flight {
                Some(in_flight) => in_flight.clone().acquire_owned().await.ok(),
                None => None,
            };
            let scraped = self.scrape(&mut cpu).await;
            drop(permit);
            let result = match scraped {
                Ok(push) => match engine.push(push).await {
                    Ok(_) => ScrapeResult::ok,
                    Err(EngineError::Stopped) => return,
                    Err(EngineError::Invalid(error)) => {
                        tracing::warn!(target = %self.target.name, %error, "scrape refused");
                        ScrapeResult::refused
                    }
                },
                Err(error) => {
                    tracing::warn!(target = %self.target.name, url = %self.uri, %error, "scrape failed");
                    match error {
                        ScrapeError::Parse(_) | ScrapeError::Refused(_) | ScrapeError::NotText => {
                            ScrapeResult::refused
                        }
                        _ => ScrapeResult::failed,
                    }
                }
            };
            self.telemetry.scrape(&self.target.name, result);
        }
    }

    /// One scrape, as the push it makes.
    async fn scrape(&self, cpu: &mut Option<CpuTimes>) -> Result<Push, ScrapeError> {
        let timeout = Duration::from_secs(self.target.timeout_secs);
        let body = tokio::time::timeout(timeout, self.fetch())
            .await
            .map_err(|_| ScrapeError::Timeout(timeout))??;
        let text = std::str::from_utf8(&body).map_err(|_| ScrapeError::NotText)?;
        let node = self.target.profile == Some(Profile::Node);
        // Only what a row (or the node profile) reads is kept of a large exposition.
        let samples = exposition::parse_kept(text, |name| {
            self.mapping.reads(name) || (node && name.starts_with("node_"))
        })?;
        let (mut request, _unread) = self.mapping.apply(&samples)?;
        request.source = self.target.source();
        let mut push = push::from_wire(request, &self.limits, SystemTime::now())?;
        push.ttl = Some(self.ttl);
        if node {
            let (host, times) = node_host(&samples, *cpu);
            *cpu = times;
            push.host = Some(host);
        }
        Ok(push)
    }

    /// The target's answer, read up to its size limit.
    async fn fetch(&self) -> Result<Vec<u8>, ScrapeError> {
        let get = Request {
            uri: &self.uri,
            accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            bearer: None,
            tls: None,
            max_body: self.target.max_body_bytes,
            body: None,
        };
        Ok(get.send().await?)
    }
}

impl Source for ScrapeSource {
    /// Scrapes from the first interval on.
    async fn start(self, engine: &Engine) -> Result<Running, SourceError> {
        Ok(Box::pin(self.run(engine.clone())))
    }
}
