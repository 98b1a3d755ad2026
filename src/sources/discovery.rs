//! Scrape targets from Prometheus' discovery formats: `file_sd` (JSON or YAML files of target
//! groups, globbed in the last path segment and re-read when they change) and `http_sd` (the
//! same JSON from a URL, as the OpenTelemetry Operator's Target Allocator serves it). Each target
//! is its own source, `scrape:<name>/<host:port>`; one that leaves the list is forgotten at once;
//! a list that cannot be read or parsed changes nothing. `shard_count` / `shard_index` keep the
//! targets whose stable hash falls to this instance, as Prometheus' `hashmod` relabelling does.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::Deserialize;
use tokio::sync::Semaphore;

use super::scrape::{ScrapeSource, Target};
use crate::{
    core::{ingest::Limits, probes::matches_source},
    engine::Engine,
    http_client::Request,
    telemetry::Telemetry,
};

/// Scrapes of one `[[scrape]]` in flight at once: a thousand targets never fire together.
const MAX_IN_FLIGHT: usize = 64;
/// The largest discovery answer or file read.
const MAX_LIST_BYTES: usize = 16 << 20;

/// One target group, in Prometheus' format.
#[derive(Debug, Deserialize)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A discovered target: its source name and URL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub source: String,
    pub url: String,
}

/// The target groups in `text`, JSON or (for `yaml`) YAML.
fn parse_groups(text: &[u8], yaml: bool) -> Result<Vec<Group>, String> {
    if yaml {
        serde_norway::from_slice(text).map_err(|error| format!("not YAML target groups: {error}"))
    } else {
        serde_json::from_slice(text).map_err(|error| format!("not JSON target groups: {error}"))
    }
}

/// FNV-1a: a hash that stays the same across builds, so shards agree.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The targets `groups` list for the scrape `name`, the URL shaped by `__scheme__`,
/// `__metrics_path__` and `__param_<name>`, keeping those of shard `index` of `count`.
fn targets(name: &str, groups: &[Group], (count, index): (u32, u32)) -> Result<Vec<Found>, String> {
    let mut urls = BTreeMap::new();
    for group in groups {
        let scheme = group
            .labels
            .get("__scheme__")
            .map_or("http", String::as_str);
        if scheme != "http" {
            return Err(format!(
                "__scheme__ {scheme:?}: only http targets are scraped"
            ));
        }
        let path = group
            .labels
            .get("__metrics_path__")
            .map_or("/metrics", String::as_str);
        let params: Vec<String> = group
            .labels
            .iter()
            .filter_map(|(label, value)| {
                let param = label.strip_prefix("__param_")?;
                let encode = |text: &str| {
                    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                };
                Some(format!("{}={}", encode(param), encode(value)))
            })
            .collect();
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        for target in &group.targets {
            let authority: hyper::http::uri::Authority = target
                .parse()
                .map_err(|_| format!("{target:?} is not a host:port target"))?;
            if authority.port().is_none() {
                return Err(format!("{target:?} has no port"));
            }
            let url = format!("http://{authority}{path}{query}");
            url.parse::<hyper::Uri>()
                .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
            urls.insert(url, (authority.to_string(), path.to_owned()));
        }
    }
    let mut per_address: BTreeMap<&str, usize> = BTreeMap::new();
    for (address, _) in urls.values() {
        *per_address.entry(address).or_default() += 1;
    }
    Ok(urls
        .iter()
        .filter(|(url, _)| stable_hash(url) % u64::from(count) == u64::from(index))
        .map(|(url, (address, path))| {
            // The path joins the name only when two targets share an address.
            let source = if per_address[address.as_str()] > 1 {
                format!("{name}/{address}{path}")
            } else {
                format!("{name}/{address}")
            };
            Found {
                source,
                url: url.clone(),
            }
        })
        .collect())
}

/// The files `globs` name now: each glob's directory is literal, its last segment may hold `*`.
fn expand(globs: &[String]) -> Vec<PathBuf> {
    let mut files = BTreeSet::new();
    for glob in globs {
        let path = Path::new(glob);
        let (Some(dir), Some(pattern)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let pattern = pattern.to_string_lossy();
        let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if matches_source(&pattern, &name.to_string_lossy()) && entry.path().is_file() {
                files.insert(entry.path());
            }
        }
    }
    files.into_iter().collect()
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

/// Where a `[[scrape]]` finds its targets.
enum Lists {
    Files(Vec<String>),
    Http(hyper::Uri),
}

/// A `[[scrape]]` with discovery: it keeps one scrape task per target it lists.
pub struct Discovery {
    target: Target,
    lists: Lists,
    refresh: Duration,
    shard: (u32, u32),
    limits: Limits,
    telemetry: Arc<Telemetry>,
    in_flight: Arc<Semaphore>,
}

/// A target's scrape task and its URL. The task ends with this (discovery stopped, or the
/// target gone).
struct Scraping {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scraping {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A file's identity for change detection: its path, modification time and length.
type Stamp = (PathBuf, Option<SystemTime>, u64);

impl Discovery {
    /// The discovery of `target` (validated), which has `file_sd` or `http_sd`.
    pub fn new(target: Target, limits: Limits, telemetry: Arc<Telemetry>) -> Option<Self> {
        let lists = match (&target.http_sd, target.file_sd.is_empty()) {
            (Some(url), _) => Lists::Http(url.parse().ok()?),
            (None, false) => Lists::Files(target.file_sd.clone()),
            (None, true) => return None,
        };
        Some(Self {
            refresh: Duration::from_secs(target.refresh_secs),
            shard: (target.shard_count, target.shard_index),
            target,
            lists,
            limits,
            telemetry,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Reads the list every refresh and keeps one scrape per target, until the engine stops.
    pub async fn run(self, engine: Engine) {
        let mut running: BTreeMap<String, Scraping> = BTreeMap::new();
        let mut last_stamps: Option<Vec<Stamp>> = None;
        let mut ticks = tokio::time::interval(self.refresh);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let listed = match &self.lists {
                Lists::Files(globs) => {
                    let files = expand(globs);
                    let stamps: Vec<Stamp> = files.iter().map(|file| stamp(file)).collect();
                    // Polling, as for certificates: it suits Kubernetes ConfigMap mounts.
                    if last_stamps.as_ref() == Some(&stamps) {
                        continue;
                    }
                    let listed = read_files(&files);
                    if listed.is_ok() {
                        last_stamps = Some(stamps);
                    }
                    listed
                }
                Lists::Http(uri) => self.fetch(uri).await,
            };
            let found = listed.and_then(|groups| targets(&self.target.name, &groups, self.shard));
            let ok = found.is_ok();
            self.telemetry.sd_refresh(&self.target.name, ok);
            let found = match found {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(scrape = %self.target.name, %error, "target discovery failed; keeping the last target list");
                    continue;
                }
            };
            if !self.apply(found, &mut running, &engine).await {
                return;
            }
        }
    }

    async fn fetch(&self, uri: &hyper::Uri) -> Result<Vec<Group>, String> {
        let request = Request {
            uri,
            accept: "application/json",
            bearer: None,
            tls: None,
            max_body: MAX_LIST_BYTES,
            body: None,
        };
        let timeout = Duration::from_secs(self.target.timeout_secs);
        let body = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| format!("no answer within {timeout:?} (timeout_secs)"))?
            .map_err(|error| error.to_string())?;
        parse_groups(&body, false)
    }

    /// Starts the targets that appeared and forgets those that left; `false` once the engine
    /// has stopped.
    async fn apply(
        &self,
        found: Vec<Found>,
        running: &mut BTreeMap<String, Scraping>,
        engine: &Engine,
    ) -> bool {
        let wanted: BTreeMap<String, String> = found
            .into_iter()
            .map(|f| (format!("scrape:{}", f.source), f.url))
            .collect();
        let gone: Vec<String> = running
            .iter()
            .filter(|(source, running)| wanted.get(*source) != Some(&running.url))
            .map(|(source, _)| source.clone())
            .collect();
        for source in gone {
            if let Some(mut gone) = running.remove(&source) {
                gone.task.abort();
                // Stopped before it is forgotten: a push of its in flight cannot bring it back.
                let _ = (&mut gone.task).await;
            }
            if engine.forget(source.into()).await.is_err() {
                return false;
            }
        }
        for (source, url) in wanted {
            if running.contains_key(&source) {
                continue;
            }
            let mut target = self.target.clone();
            target.name = source.trim_start_matches("scrape:").to_owned();
            target.url = Some(url.clone());
            let scrape = ScrapeSource::new(target, self.limits.clone(), self.telemetry.clone())
                .with_in_flight(self.in_flight.clone());
            let task = tokio::spawn(scrape.run(engine.clone()));
            running.insert(source, Scraping { url, task });
        }
        true
    }
}

impl super::Source for Discovery {
    /// Reads the first list at once; its targets are scraped within their interval.
    async fn start(self, engine: &Engine) -> Result<super::Running, super::SourceError> {
        Ok(Box::pin(self.run(engine.clone())))
    }
}

fn stamp(file: &Path) -> Stamp {
    let meta = std::fs::metadata(file).ok();
    (
        file.to_owned(),
        meta.as_ref().and_then(|m| m.modified().ok()),
        meta.map_or(0, |m| m.len()),
    )
}

/// Every group of every file; one file that cannot be read or parsed fails the whole list.
fn read_files(files: &[PathBuf]) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for file in files {
        let text = std::fs::read(file).map_err(|error| format!("{}: {error}", file.display()))?;
        if text.len() > MAX_LIST_BYTES {
            return Err(format!(
                "{}: larger than {MAX_LIST_BYTES} bytes",
                file.display()
            ));
        }
        let yaml = file.extension().is_none_or(|e| e != "json");
        let mut read = parse_groups(&text, yaml).map_err(|e| format!("{}: {e}", file.display()))?;
        groups.append(&mut read);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(json: &str) -> Vec<Group> {
        parse_groups(json.as_bytes(), false).expect("groups")
    }

    #[test]
    fn urls_are_shaped_by_the_meta_labels_and_shared_addresses_keep_their_path() {
        let listed = groups(
            r#"[{"targets": ["10.0.0.1:8080", "10.0.0.2:8080"], "labels": {"team": "a",
                 "__metrics_path__": "/actuator/prometheus", "__param_format": "text plain"}},
                {"targets": ["10.0.0.1:8080"]}]"#,
        );
        let found = targets("apps", &listed, (1, 0)).expect("targets");
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.source.as_str(), f.url.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "apps/10.0.0.1:8080/actuator/prometheus",
                    "http://10.0.0.1:8080/actuator/prometheus?format=text%20plain"
                ),
                ("apps/10.0.0.1:8080/metrics", "http://10.0.0.1:8080/metrics"),
                (
                    "apps/10.0.0.2:8080",
                    "http://10.0.0.2:8080/actuator/prometheus?format=text%20plain"
                ),
            ]
        );
        let yaml = parse_groups(
            b"- targets: ['10.0.0.3:9100']\n  labels: {job: node}\n",
            true,
        )
        .expect("YAML groups");
        assert_eq!(
            targets("n", &yaml, (1, 0)).expect("targets")[0].source,
            "n/10.0.0.3:9100"
        );
        for bad in [
            r#"[{"targets": ["no-port"]}]"#,
            r#"[{"targets": ["a:1"], "labels": {"__scheme__": "https"}}]"#,
        ] {
            assert!(targets("x", &groups(bad), (1, 0)).is_err(), "{bad}");
        }
        assert!(parse_groups(b"{\"targets\": 1}", false).is_err());
    }

    #[test]
    fn two_shards_cover_every_target_exactly_once() {
        let all: Vec<String> = (0..1000)
            .map(|i| format!("\"10.0.{}.{}:80\"", i / 250, i % 250))
            .collect();
        let listed = groups(&format!(r#"[{{"targets": [{}]}}]"#, all.join(",")));
        let shard = |index| targets("s", &listed, (2, index)).expect("targets");
        let (a, b) = (shard(0), shard(1));
        assert_eq!(a.len() + b.len(), 1000);
        assert!(a.len() > 400 && b.len() > 400, "{} / {}", a.len(), b.len());
        assert!(a.iter().all(|found| !b.contains(found)));
    }

    #[test]
    fn globs_are_checked() {
        assert!(check_glob("/etc/healthscore/targets/*.json").is_ok());
        assert!(check_glob("targets.yml").is_ok());
        assert!(check_glob("/etc/*/targets.json").is_err());
        assert!(check_glob("/etc/targets/*.txt").is_err());
    }
}
