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

use super::scrape::{source_target, Endpoint, Scrape, ScrapeSource, Target};
use crate::{
    core::{
        ingest::{self, Limits},
        probes::matches_source,
    },
    engine::Engine,
    http_client::{Credentials, Request},
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

/// The targets `groups` list for `target`'s scrape, the URL shaped by `__scheme__`,
/// `__metrics_path__` and `__param_<name>`, the other labels (`__` ones left out) added to the
/// scrape's, keeping those of the scrape's shard. Label values are limited to `max_bytes`.
fn targets(target: &Target, groups: &[Group], max_bytes: usize) -> Result<Vec<Endpoint>, String> {
    let mut urls = BTreeMap::new();
    for group in groups {
        let scheme = group
            .labels
            .get("__scheme__")
            .map_or("http", String::as_str);
        match scheme {
            "http" => {}
            "https" if target.ca.is_some() => {}
            "https" => return Err("__scheme__ \"https\": the [[scrape]] sets no ca".into()),
            _ => return Err(format!("__scheme__ {scheme:?}: only http and https")),
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
        let shown = target.labels.iter().chain(
            group
                .labels
                .iter()
                .filter(|(label, _)| !label.starts_with("__")),
        );
        let labels = ingest::labels("labels", shown, max_bytes).map_err(|e| e.to_string())?;
        for listed in &group.targets {
            let authority: hyper::http::uri::Authority = listed
                .parse()
                .map_err(|_| format!("{listed:?} is not a host:port target"))?;
            if authority.port().is_none() {
                return Err(format!("{listed:?} has no port"));
            }
            let url = format!("{scheme}://{authority}{path}{query}");
            let uri = url
                .parse::<hyper::Uri>()
                .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
            urls.insert(
                url,
                (authority.to_string(), path.to_owned(), uri, labels.clone()),
            );
        }
    }
    let mut per_address: BTreeMap<&str, usize> = BTreeMap::new();
    for (address, ..) in urls.values() {
        *per_address.entry(address).or_default() += 1;
    }
    let (count, index) = (target.shard_count.get(), target.shard_index);
    Ok(urls
        .iter()
        .filter(|(url, _)| stable_hash(url) % u64::from(count) == u64::from(index))
        .map(|(_, (address, path, uri, labels))| {
            // The path joins the name only when two targets share an address.
            let source = if per_address[address.as_str()] > 1 {
                format!("scrape:{}/{address}{path}", target.name)
            } else {
                format!("scrape:{}/{address}", target.name)
            };
            Endpoint {
                uri: uri.clone(),
                source,
                labels: labels.clone(),
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

/// Where a `[[scrape]]` finds its targets.
enum Lists {
    Files(Vec<String>),
    Http(hyper::Uri),
}

/// A `[[scrape]]` with discovery: it keeps one scrape task per target it lists.
pub struct Discovery {
    scrape: Arc<Scrape>,
    lists: Lists,
    refresh: Duration,
}

/// A target's scrape task and where it scrapes. The task ends with this (discovery stopped,
/// or the target gone or changed).
struct Scraping {
    endpoint: Endpoint,
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
    pub fn new(
        target: Target,
        credentials: Credentials,
        limits: Limits,
        telemetry: Arc<Telemetry>,
    ) -> Option<Self> {
        let lists = match (&target.http_sd, target.file_sd.is_empty()) {
            (Some(url), _) => Lists::Http(url.parse().ok()?),
            (None, false) => Lists::Files(target.file_sd.clone()),
            (None, true) => return None,
        };
        let refresh = Duration::from_secs(target.refresh_secs);
        Some(Self {
            scrape: Scrape::new(target, credentials, Some(MAX_IN_FLIGHT), limits, telemetry),
            lists,
            refresh,
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
            let target = self.scrape.target();
            let found = listed.and_then(|groups| targets(target, &groups, self.max_label_bytes()));
            let ok = found.is_ok();
            self.scrape.telemetry().sd_refresh(&target.name, ok);
            let found = match found {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(scrape = %target.name, %error, "target discovery failed; keeping the last target list");
                    continue;
                }
            };
            if !self.apply(found, &mut running, &engine).await {
                return;
            }
        }
    }

    async fn fetch(&self, uri: &hyper::Uri) -> Result<Vec<Group>, String> {
        let credentials = self.scrape.credentials();
        let request = Request {
            uri,
            accept: "application/json",
            bearer: credentials.bearer.as_deref(),
            tls: credentials.tls.as_ref(),
            max_body: MAX_LIST_BYTES,
            body: None,
        };
        let timeout = Duration::from_secs(self.scrape.target().timeout_secs);
        let body = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| format!("no answer within {timeout:?} (timeout_secs)"))?
            .map_err(|error| error.to_string())?;
        parse_groups(&body, false)
    }

    /// Label values as long as names may be.
    fn max_label_bytes(&self) -> usize {
        self.scrape.limits().max_name_bytes
    }

    /// Starts the targets that appeared, restarts those whose URL or labels changed and forgets
    /// those that left; `false` once the engine has stopped.
    async fn apply(
        &self,
        found: Vec<Endpoint>,
        running: &mut BTreeMap<String, Scraping>,
        engine: &Engine,
    ) -> bool {
        let mut wanted: BTreeMap<String, Endpoint> = found
            .into_iter()
            .map(|endpoint| (endpoint.source.clone(), endpoint))
            .collect();
        let gone: Vec<String> = running
            .keys()
            .filter(|source| !wanted.contains_key(*source))
            .cloned()
            .collect();
        for source in gone {
            if let Some(mut gone) = running.remove(&source) {
                gone.task.abort();
                // Stopped before it is forgotten: a push of its in flight cannot bring it back.
                let _ = (&mut gone.task).await;
            }
            self.scrape
                .telemetry()
                .forget_target(source_target(&source));
            if engine.forget(source.into()).await.is_err() {
                return false;
            }
        }
        running.retain(|source, scraping| wanted.get(source) == Some(&scraping.endpoint));
        wanted.retain(|source, _| !running.contains_key(source));
        for (source, endpoint) in wanted {
            let scrape = ScrapeSource::new(self.scrape.clone(), endpoint.clone());
            let task = tokio::spawn(scrape.run(engine.clone()));
            running.insert(source, Scraping { endpoint, task });
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

    fn scrape(name: &str, shard: (u32, u32)) -> Target {
        Target {
            name: name.into(),
            shard_count: shard.0.try_into().expect("not zero"),
            shard_index: shard.1,
            labels: [("env".to_owned(), "prod".to_owned())].into(),
            ..Target::default()
        }
    }

    #[test]
    fn urls_are_shaped_by_the_meta_labels_and_shared_addresses_keep_their_path() {
        let listed = groups(
            r#"[{"targets": ["10.0.0.1:8080", "10.0.0.2:8080"], "labels": {"team": "a",
                 "__metrics_path__": "/actuator/prometheus", "__param_format": "text plain"}},
                {"targets": ["10.0.0.1:8080"], "labels": {"env": "dev"}}]"#,
        );
        let found = targets(&scrape("apps", (1, 0)), &listed, 64).expect("targets");
        type Shown<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
        let shown: Vec<Shown> = found
            .iter()
            .map(|f| {
                let labels = f.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                (f.source.as_str(), f.uri.to_string(), labels.collect())
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "scrape:apps/10.0.0.1:8080/actuator/prometheus",
                    "http://10.0.0.1:8080/actuator/prometheus?format=text%20plain".into(),
                    vec![("env", "prod"), ("team", "a")]
                ),
                (
                    "scrape:apps/10.0.0.1:8080/metrics",
                    "http://10.0.0.1:8080/metrics".into(),
                    vec![("env", "dev")]
                ),
                (
                    "scrape:apps/10.0.0.2:8080",
                    "http://10.0.0.2:8080/actuator/prometheus?format=text%20plain".into(),
                    vec![("env", "prod"), ("team", "a")]
                ),
            ]
        );
        let yaml = parse_groups(
            b"- targets: ['10.0.0.3:9100']\n  labels: {job: node}\n",
            true,
        )
        .expect("YAML groups");
        assert_eq!(
            targets(&scrape("n", (1, 0)), &yaml, 64).expect("targets")[0].source,
            "scrape:n/10.0.0.3:9100"
        );
        for bad in [
            r#"[{"targets": ["no-port"]}]"#,
            r#"[{"targets": ["a:1"], "labels": {"__scheme__": "https"}}]"#,
            r#"[{"targets": ["a:1"], "labels": {"__scheme__": "ftp"}}]"#,
            r#"[{"targets": ["a:1"], "labels": {"bad-name": "x"}}]"#,
            r#"[{"targets": ["a:1"], "labels": {"long": "0123456789"}}]"#,
        ] {
            assert!(
                targets(&scrape("x", (1, 0)), &groups(bad), 8).is_err(),
                "{bad}"
            );
        }
        assert!(parse_groups(b"{\"targets\": 1}", false).is_err());
    }

    #[test]
    fn https_targets_need_the_scrapes_ca() {
        let listed = groups(r#"[{"targets": ["a:1"], "labels": {"__scheme__": "https"}}]"#);
        let with_ca = Target {
            ca: Some("/etc/ca.pem".into()),
            ..scrape("s", (1, 0))
        };
        let found = targets(&with_ca, &listed, 64).expect("targets");
        assert_eq!(found[0].uri.to_string(), "https://a:1/metrics");
    }

    #[test]
    fn two_shards_cover_every_target_exactly_once() {
        let all: Vec<String> = (0..1000)
            .map(|i| format!("\"10.0.{}.{}:80\"", i / 250, i % 250))
            .collect();
        let listed = groups(&format!(r#"[{{"targets": [{}]}}]"#, all.join(",")));
        let shard = |index| targets(&scrape("s", (2, index)), &listed, 64).expect("targets");
        let (a, b) = (shard(0), shard(1));
        assert_eq!(a.len() + b.len(), 1000);
        assert!(a.len() > 400 && b.len() > 400, "{} / {}", a.len(), b.len());
        assert!(a.iter().all(|found| !b.contains(found)));
    }
}
