//! The scrape source: Prometheus and OpenMetrics endpoints (Spring Boot's
//! `/actuator/prometheus`, node_exporter, anything with mapping rows), each read every interval
//! as the source `scrape:<name>` with a TTL of three intervals, so a target that stops answering
//! goes SOURCE_STALE like a silent pusher. A failed scrape is logged and counted, never a crash,
//! and changes nothing.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    num::{NonZeroU32, NonZeroUsize},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{
    exposition,
    mapping::{Mapping, Row},
    node_exporter::{self, CpuTimes},
    Running, Source, SourceError,
};
use crate::{
    core::{
        ingest::{self, FieldError, Limits, Push, PushBuilder},
        scoring::{Entity, SourceLabels},
    },
    engine::{Engine, EngineError},
    http_client::{Credentials, CredentialsError, HttpError, Request},
    setting::ConfigError,
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
    pub shard_count: NonZeroU32,
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
    pub max_body_bytes: NonZeroUsize,
    /// Shown with the sources' entities and series; a discovered target group's labels are
    /// added (and win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A file holding a bearer token sent to the targets and the `http_sd` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates that https targets and the `http_sd` URL are verified with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
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
            labels: BTreeMap::new(),
            token_file: None,
            ca: None,
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

    fn default_shard_count() -> NonZeroU32 {
        NonZeroU32::MIN
    }

    fn default_timeout() -> u64 {
        10
    }

    fn default_max_body() -> NonZeroUsize {
        NonZeroUsize::new(10 << 20).expect("not zero")
    }

    /// Checks the target; errors name the key (`scrape[1].url`).
    pub fn validate(&self, key: &str, limits: &Limits) -> Result<(), FieldError> {
        crate::core::ingest::name(
            &format!("{key}.name"),
            &self.source(),
            limits.max_name_bytes,
        )?;
        self.check_where(key)?;
        ingest::labels(
            &format!("{key}.labels"),
            &self.labels,
            limits.max_name_bytes,
        )?;
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
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(FieldError::new(
                    format!("{key}.{field}"),
                    format!("{url:?} is not an http:// or https://host:port/path URL"),
                ));
            }
            if uri.scheme_str() == Some("https") && self.ca.is_none() {
                return Err(FieldError::new(
                    format!("{key}.ca"),
                    format!("{url:?} is https: give the CA to verify it with"),
                ));
            }
            Ok(())
        };
        match (&self.url, self.file_sd.is_empty(), &self.http_sd) {
            (Some(url), true, None) => http_url("url", url)?,
            (None, false, None) => {
                for (index, glob) in self.file_sd.iter().enumerate() {
                    check_glob(glob).map_err(|problem| {
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
        if self.shard_index >= self.shard_count.get() {
            return Err(FieldError::new(
                format!("{key}.shard_index"),
                format!("must be below shard_count ({})", self.shard_count),
            ));
        }
        if self.shard_count.get() > 1 && self.url.is_some() {
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

    /// The endpoint of a `url` target (validated).
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            uri: self
                .url
                .as_deref()
                .unwrap_or_default()
                .parse()
                .expect("Target::validate accepted the URL"),
            source: self.source(),
            labels: Arc::new(self.labels.clone()),
        }
    }

    /// Reads the token and CA files; errors name the key (`scrape[1].ca`).
    pub fn credentials(&self, key: &str) -> Result<Credentials, ConfigError> {
        Credentials::read(self.token_file.as_deref(), self.ca.as_deref()).map_err(|error| {
            let (field, problem) = match error {
                CredentialsError::TokenFile(problem) => ("token_file", problem),
                CredentialsError::Ca(problem) => ("ca", problem),
            };
            ConfigError::Invalid {
                key: format!("{key}.{field}"),
                problem,
            }
        })
    }
}

/// Checks a `file_sd` glob: a `*` only in its last segment, a known file type.
pub fn check_glob(glob: &str) -> Result<(), String> {
    let path = Path::new(glob);
    let dir = path.parent().map(Path::to_string_lossy).unwrap_or_default();
    if dir.contains('*') {
        return Err(format!("{glob:?}: a * may stand only in the file name"));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if !(name.ends_with(".json") || name.ends_with(".yml") || name.ends_with(".yaml")) {
        return Err(format!(
            "{glob:?}: target files end in .json, .yml or .yaml"
        ));
    }
    Ok(())
}

/// What every target of one `[[scrape]]` shares, made once: its config, mapping, TTL and
/// credentials, and the permits of its scrapes in flight.
pub struct Scrape {
    target: Target,
    mapping: Mapping,
    ttl: Duration,
    credentials: Credentials,
    /// Shared by the targets of one discovery: scrapes in flight at once.
    in_flight: Option<Semaphore>,
    limits: Limits,
    telemetry: Arc<Telemetry>,
}

impl Scrape {
    /// The scrape of `target` (validated), read with `credentials`; its discovered targets
    /// scrape at most `in_flight` at once.
    pub fn new(
        target: Target,
        credentials: Credentials,
        in_flight: Option<usize>,
        limits: Limits,
        telemetry: Arc<Telemetry>,
    ) -> Arc<Self> {
        let mapping = match target.profile {
            Some(Profile::Micrometer) => Mapping::micrometer(),
            Some(Profile::Node) | None => Mapping::default(),
        }
        .with(&target.mappings);
        let ttl = limits.ttl_of_interval(Duration::from_secs(target.interval_secs));
        Arc::new(Self {
            target,
            mapping,
            ttl,
            credentials,
            in_flight: in_flight.map(Semaphore::new),
            limits,
            telemetry,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The push one target's answer `body` makes, and node_exporter's CPU counters for the
    /// next (`previous` are the last ones).
    fn read(
        &self,
        body: &[u8],
        endpoint: &Endpoint,
        previous: Option<CpuTimes>,
    ) -> Result<(Push, Option<CpuTimes>), ScrapeError> {
        let text = std::str::from_utf8(body).map_err(|_| ScrapeError::NotText)?;
        let node = self.target.profile == Some(Profile::Node);
        // Only what a row (or the node profile) reads is kept of a large exposition.
        let samples = exposition::parse_kept(text, |name| {
            self.mapping.reads(name) || (node && name.starts_with("node_"))
        })?;
        let (mapped, _unread) = self.mapping.apply(&samples)?;
        let (host, times) = if node {
            node_exporter::host_entities(&samples, previous)
        } else {
            (Vec::new(), None)
        };
        let entities = mapped.entity_count() + host.len();
        let push = PushBuilder::new(&endpoint.source, entities, &self.limits)?
            .ttl(Some(self.ttl))?
            .labels(endpoint.labels.clone());
        let push = mapped
            .add_to(push)?
            .list("host", host, |e| e.name(), |e, _, _| Ok(e))?;
        Ok((push.build(), times))
    }
}

/// Where one source is scraped: its URL, its source name and its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub uri: hyper::Uri,
    /// `scrape:<name>`, or `scrape:<name>/<host:port>` for a discovered target.
    pub source: String,
    pub labels: SourceLabels,
}

/// One running target.
pub struct ScrapeSource {
    scrape: Arc<Scrape>,
    /// Shared with the blocking task that reads each answer.
    endpoint: Arc<Endpoint>,
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
    #[error("reading the answer stopped: {0}")]
    Stopped(tokio::task::JoinError),
}

impl ScrapeSource {
    pub fn new(scrape: Arc<Scrape>, endpoint: Endpoint) -> Self {
        Self {
            scrape,
            endpoint: Arc::new(endpoint),
        }
    }

    /// Scrapes every interval, starting at an offset of its own, until the engine stops.
    pub async fn run(self, engine: Engine) {
        let target = &self.scrape.target;
        let interval = Duration::from_secs(target.interval_secs);
        // Targets start spread over the interval, so many of them do not scrape at once.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.endpoint.source.hash(&mut hasher);
        let offset = Duration::from_millis(hasher.finish() % interval.as_millis().max(1) as u64);
        tokio::time::sleep(offset).await;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cpu = None;
        let telemetry = &self.scrape.telemetry;
        loop {
            ticks.tick().await;
            let permit = match &self.scrape.in_flight {
                Some(in_flight) => in_flight.acquire().await.ok(),
                None => None,
            };
            let began = Instant::now();
            let scraped = self.scrape(&mut cpu).await;
            drop(permit);
            if !matches!(scraped, Err(ScrapeError::Timeout(_) | ScrapeError::Get(_))) {
                telemetry.scrape_duration(&target.name, began.elapsed().as_secs_f64());
            }
            let result = match scraped {
                Ok(push) => match engine.push(push).await {
                    Ok(_) => ScrapeResult::ok,
                    Err(EngineError::Stopped) => return,
                    Err(EngineError::Invalid(error)) => {
                        tracing::warn!(source = %self.endpoint.source, %error, "scrape refused");
                        ScrapeResult::refused
                    }
                },
                Err(error) => {
                    tracing::warn!(source = %self.endpoint.source, url = %self.endpoint.uri, %error, "scrape failed");
                    match error {
                        ScrapeError::Parse(_) | ScrapeError::Refused(_) | ScrapeError::NotText => {
                            ScrapeResult::refused
                        }
                        _ => ScrapeResult::failed,
                    }
                }
            };
            telemetry.scrape(source_target(&self.endpoint.source), result);
        }
    }

    /// One scrape, as the push it makes.
    async fn scrape(&self, cpu: &mut Option<CpuTimes>) -> Result<Push, ScrapeError> {
        let timeout = Duration::from_secs(self.scrape.target.timeout_secs);
        let body = tokio::time::timeout(timeout, self.fetch())
            .await
            .map_err(|_| ScrapeError::Timeout(timeout))??;
        // Reading thousands of series takes milliseconds: on the blocking pool, so that no
        // probe waits behind it on an async worker, and below the workers' priority.
        let (scrape, endpoint, previous) = (self.scrape.clone(), self.endpoint.clone(), *cpu);
        let (push, times) = tokio::task::spawn_blocking(move || {
            lower_priority();
            scrape.read(&body, &endpoint, previous)
        })
        .await
        .map_err(ScrapeError::Stopped)??;
        *cpu = times;
        Ok(push)
    }

    /// The target's answer, read up to its size limit.
    async fn fetch(&self) -> Result<Vec<u8>, ScrapeError> {
        let scrape = &*self.scrape;
        let get = Request {
            uri: &self.endpoint.uri,
            accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            bearer: scrape.credentials.bearer.as_deref(),
            tls: scrape.credentials.tls.as_ref(),
            max_body: scrape.target.max_body_bytes.get(),
            body: None,
        };
        Ok(get.send().await?)
    }
}

/// Lowers the calling thread's CPU priority to nice 10, once per thread: on Linux a nice value
/// is a thread's own. Scrape reads are the only work on tokio's blocking pool, so its threads
/// stay background threads. On 2 cores, with 1,000 targets read at the workers' priority, a
/// Check waited behind a read whenever both cores were busy (`scripts/discovery-load.sh`:
/// Check p99 0.53 ms idle, 1.96 ms under the load).
fn lower_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if !LOWERED.replace(true) {
            // SAFETY: setpriority only changes the calling thread's nice value (who = 0).
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
        }
    }
}

/// The target a source name stands for in `healthscore_scrapes_total`: the name without
/// `scrape:`.
pub fn source_target(source: &str) -> &str {
    source.strip_prefix("scrape:").unwrap_or(source)
}

impl Source for ScrapeSource {
    /// Scrapes from the first interval on.
    async fn start(self, engine: &Engine) -> Result<Running, SourceError> {
        Ok(Box::pin(self.run(engine.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_checked() {
        assert!(check_glob("/etc/healthscore/targets/*.json").is_ok());
        assert!(check_glob("targets.yml").is_ok());
        assert!(check_glob("/etc/*/targets.json").is_err());
        assert!(check_glob("/etc/targets/*.txt").is_err());
    }
}
