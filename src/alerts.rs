//! Alerts: every active issue is posted to Alertmanager's API (`POST /api/v2/alerts`) the way
//! Prometheus posts its alerts, so Alertmanager routes, groups, deduplicates, silences and
//! delivers them. An issue fires once it has lasted `health.fail_after`, is re-sent every
//! `resend_secs` while active (Alertmanager forgets alerts it stops hearing about), and is sent
//! once more with `endsAt` when it ends.
//!
//! Sending never blocks the engine or a probe: one bounded queue per Alertmanager, the oldest
//! alerts dropped when it is full, batches retried with backoff, everything counted.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::{
    core::{
        published::Published,
        scoring::{Issue, Severity, Subsystem},
    },
    engine::Engine,
    history::rfc3339,
    http_client::{self, Credentials, CredentialsError, Request},
    setting::ConfigError,
    telemetry::Telemetry,
};

/// Alerts each Alertmanager's queue holds; past it the oldest are dropped (Prometheus' default).
const QUEUE_CAPACITY: usize = 10_000;
/// Alerts per POST (Prometheus' default).
const BATCH: usize = 64;
/// The labels healthscore sets itself.
const OWN_LABELS: [&str; 6] = [
    "alertname",
    "subsystem",
    "entity",
    "source",
    "severity",
    "instance",
];

/// `[alerting]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// Every URL gets every alert (an HA pair): `["http://alertmanager:9093"]`.
    pub alertmanagers: Vec<String>,
    /// Seconds between re-sends of the active alerts.
    pub resend_secs: u64,
    /// Seconds a POST may take.
    pub timeout_secs: u64,
    /// Issues below this severity are not sent.
    pub min_severity: Severity,
    /// Labels added to every alert: `{ cluster = "prod-eu" }`.
    pub labels: BTreeMap<String, String>,
    /// A file holding a bearer token for a secured Alertmanager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates to verify an `https` Alertmanager with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The `instance` label (default: `http.listen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The dashboard's address people reach, for `generatorURL` (default: `http://` and
    /// `http.listen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            alertmanagers: Vec::new(),
            resend_secs: 60,
            timeout_secs: 10,
            min_severity: Severity::Warning,
            labels: BTreeMap::new(),
            token_file: None,
            ca: None,
            instance: None,
            external_url: None,
        }
    }
}

impl AlertingConfig {
    /// Checks every key without touching a file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            key: format!("alerting.{key}"),
            problem,
        };
        if self.alertmanagers.is_empty() {
            return Err(invalid(
                "alertmanagers".into(),
                "lists no Alertmanager (remove [alerting] to send no alerts)".into(),
            ));
        }
        for (index, url) in self.alertmanagers.iter().enumerate() {
            let uri = http_client::parse_url(url)
                .map_err(|problem| invalid(format!("alertmanagers[{index}]"), problem))?;
            if uri.scheme_str() == Some("https") && self.ca.is_none() {
                return Err(invalid(
                    "ca".into(),
                    format!("{url:?} is https: give the CA to verify it with"),
                ));
            }
        }
        for (key, value, range) in [
            ("resend_secs", self.resend_secs, 1..=3_600),
            ("timeout_secs", self.timeout_secs, 1..=300),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key.into(),
                    format!("{value} is outside {}..={}", range.start(), range.end()),
                ));
            }
        }
        for name in self.labels.keys() {
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || OWN_LABELS.contains(&name.as_str()) || name.starts_with("__") {
                return Err(invalid(
                    format!("labels.{name}"),
                    format!(
                        "not a label name of your own (a Prometheus label name, none of {})",
                        OWN_LABELS.join(", ")
                    ),
                ));
            }
        }
        if let Some(url) = &self.external_url {
            http_client::parse_url(url)
                .map_err(|problem| invalid("external_url".into(), problem))?;
        }
        Ok(())
    }
}

/// What identifies an alert: the issue's identity.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    code: &'static str,
    subsystem: Subsystem,
    entity: Arc<str>,
    source: Arc<str>,
    severity: Severity,
}

impl Key {
    fn of(issue: &Issue) -> Self {
        Self {
            code: issue.code.as_str(),
            subsystem: issue.subsystem,
            entity: issue.entity.clone(),
            source: issue.source.clone(),
            severity: issue.severity,
        }
    }
}

/// One alert in Alertmanager's API v2 shape.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<&'static str, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
}

/// An issue being watched: since when, and the alert last sent for it.
struct Tracked {
    since: (Instant, SystemTime),
    sent: Option<Alert>,
}

/// One Alertmanager: its address and its queue of encoded alerts.
struct Queue {
    name: String,
    uri: hyper::Uri,
    alerts: Mutex<VecDeque<Bytes>>,
    ready: Notify,
}

/// The alert sender: what it adds to every alert, and the queues it fills.
pub struct Alerter {
    resend: Duration,
    timeout: Duration,
    min_severity: Severity,
    fail_after: Duration,
    labels: BTreeMap<String, String>,
    instance: String,
    external_url: String,
    credentials: Credentials,
    queues: Vec<Arc<Queue>>,
    telemetry: Arc<Telemetry>,
}

impl Alerter {
    /// The sender of `config` (validated) for the instance at `listen`, holding alerts back for
    /// `fail_after`; reads the token and CA files.
    pub fn new(
        config: &AlertingConfig,
        listen: &str,
        fail_after: Duration,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: format!("alerting.{key}"),
            problem,
        };
        let credentials = Credentials::read(config.token_file.as_deref(), config.ca.as_deref())
            .map_err(|error| match error {
                CredentialsError::TokenFile(problem) => invalid("token_file", problem),
                CredentialsError::Ca(problem) => invalid("ca", problem),
            })?;
        let queues = config
            .alertmanagers
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let base = url.trim_end_matches('/');
                let uri = format!("{base}/api/v2/alerts").parse().map_err(|error| {
                    invalid(&format!("alertmanagers[{index}]"), format!("{error}"))
                })?;
                Ok(Arc::new(Queue {
                    name: url.clone(),
                    uri,
                    alerts: Mutex::new(VecDeque::new()),
                    ready: Notify::new(),
                }))
            })
            .collect::<Result<_, ConfigError>>()?;
        for url in &config.alertmanagers {
            telemetry.alerts_sent(url, true, 0);
        }
        Ok(Self {
            resend: Duration::from_secs(config.resend_secs),
            timeout: Duration::from_secs(config.timeout_secs),
            min_severity: config.min_severity,
            fail_after,
            labels: config.labels.clone(),
            instance: config.instance.clone().unwrap_or_else(|| listen.to_owned()),
            external_url: config
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{listen}"))
                .trim_end_matches('/')
                .to_owned(),
            credentials,
            queues,
            telemetry,
        })
    }

    /// Follows the engine's states until it stops, and sends what changes; one sender task per
    /// Alertmanager posts the queued alerts.
    pub async fn run(self, engine: Engine) {
        let alerter = Arc::new(self);
        // Dropped (so aborted) when following ends: the senders live as long as this does.
        let mut senders = tokio::task::JoinSet::new();
        for queue in &alerter.queues {
            senders.spawn(alerter.clone().send(queue.clone()));
        }
        let mut states = engine.subscribe();
        let mut tracked: HashMap<Key, Tracked> = HashMap::new();
        let mut next_resend = Instant::now() + alerter.resend;
        let mut last_revision = None;
        loop {
            let state = states.borrow_and_update().clone();
            let now = Instant::now();
            let resend = now >= next_resend;
            if resend {
                next_resend = now + alerter.resend;
            }
            let timer = alerter.matures_before(&tracked, now);
            // A state with the same revision has the same issues: nothing to look at.
            if resend || timer || last_revision != Some(state.stamp.revision) {
                last_revision = Some(state.stamp.revision);
                let batch = alerter.changes(&state, &mut tracked, resend, (now, SystemTime::now()));
                alerter.enqueue(batch);
            }
            let wake = alerter
                .next_maturity(&tracked)
                .map_or(next_resend, |at| at.min(next_resend));
            tokio::select! {
                changed = states.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Whether an issue that was too young to send has come of age.
    fn matures_before(&self, tracked: &HashMap<Key, Tracked>, now: Instant) -> bool {
        tracked
            .values()
            .any(|t| t.sent.is_none() && t.since.0 + self.fail_after <= now)
    }

    fn next_maturity(&self, tracked: &HashMap<Key, Tracked>) -> Option<Instant> {
        tracked
            .values()
            .filter(|t| t.sent.is_none())
            .map(|t| t.since.0 + self.fail_after)
            .min()
    }

    /// The alerts to send for `state`: those that fire for the first time (or all that fire,
    /// on `resend`), and one resolved alert for each sent one whose issue ended.
    fn changes(
        &self,
        state: &Published,
        tracked: &mut HashMap<Key, Tracked>,
        resend: bool,
        (now, wall): (Instant, SystemTime),
    ) -> Vec<Alert> {
        let mut current: HashMap<Key, &Issue> = HashMap::new();
        for issue in state.system.issues() {
            if issue.severity >= self.min_severity {
                current.insert(Key::of(issue), issue);
            }
        }
        let mut batch = Vec::new();
        tracked.retain(|key, entry| {
            if current.contains_key(key) {
                return true;
            }
            if let Some(mut alert) = entry.sent.take() {
                alert.ends_at = rfc3339(wall);
                batch.push(alert);
            }
            false
        });
        let ends_at = rfc3339(wall + self.resend * 4);
        for (key, issue) in current {
            let entry = tracked.entry(key).or_insert(Tracked {
                since: (now, wall),
                sent: None,
            });
            let mature = now.saturating_duration_since(entry.since.0) >= self.fail_after;
            if mature && (resend || entry.sent.is_none()) {
                let alert = self.alert(issue, entry.since.1, &ends_at);
                entry.sent = Some(alert.clone());
                batch.push(alert);
            }
        }
        batch
    }

    fn alert(&self, issue: &Issue, since: SystemTime, ends_at: &str) -> Alert {
        let mut labels = self.labels.clone();
        for (name, value) in [
            ("alertname", issue.code.as_str()),
            ("subsystem", issue.subsystem.key()),
            ("entity", &issue.entity),
            ("source", &issue.source),
            ("severity", issue.severity.as_str()),
            ("instance", &self.instance),
        ] {
            labels.insert(name.to_owned(), value.to_owned());
        }
        let description: Vec<String> = issue
            .entity_metrics
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        Alert {
            labels,
            annotations: BTreeMap::from([
                ("summary", issue.message.clone()),
                ("action", issue.suggested_action.to_string()),
                ("description", description.join(" ")),
            ]),
            starts_at: rfc3339(since),
            ends_at: ends_at.to_owned(),
            generator_url: format!("{}/?subsystem={}", self.external_url, issue.subsystem),
        }
    }

    /// Adds `batch` to every Alertmanager's queue, dropping the oldest past its capacity.
    fn enqueue(&self, batch: Vec<Alert>) {
        if batch.is_empty() {
            return;
        }
        let encoded: Vec<Bytes> = batch
            .iter()
            .filter_map(|alert| serde_json::to_vec(alert).ok().map(Bytes::from))
            .collect();
        for queue in &self.queues {
            let mut alerts = queue.alerts.lock().unwrap_or_else(|e| e.into_inner());
            alerts.extend(encoded.iter().cloned());
            let over = alerts.len().saturating_sub(QUEUE_CAPACITY);
            if over > 0 {
                alerts.drain(..over);
                self.telemetry.alerts_dropped(over as u64);
            }
            drop(alerts);
            queue.ready.notify_one();
        }
    }

    /// Posts `queue`'s alerts in batches, retrying a batch with backoff until it is older than
    /// a resend (by then the next resend carries what is still true).
    async fn send(self: Arc<Self>, queue: Arc<Queue>) {
        let mut warned: Option<Instant> = None;
        loop {
            let batch: Vec<Bytes> = {
                let mut alerts = queue.alerts.lock().unwrap_or_else(|e| e.into_inner());
                let n = alerts.len().min(BATCH);
                alerts.drain(..n).collect()
            };
            if batch.is_empty() {
                queue.ready.notified().await;
                continue;
            }
            let mut body =
                Vec::with_capacity(batch.iter().map(Bytes::len).sum::<usize>() + batch.len() + 1);
            body.push(b'[');
            for (index, alert) in batch.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(alert);
            }
            body.push(b']');
            let request = Request {
                uri: &queue.uri,
                accept: "application/json",
                bearer: self.credentials.bearer.as_deref(),
                tls: self.credentials.tls.as_ref(),
                max_body: 1 << 20,
                body: Some(("application/json", Bytes::from(body))),
            };
            let started = Instant::now();
            let mut backoff = Duration::from_secs(1);
            let count = batch.len() as u64;
            loop {
                let error = match tokio::time::timeout(self.timeout, request.send()).await {
                    Ok(Ok(_)) => {
                        self.telemetry.alerts_sent(&queue.name, true, count);
                        break;
                    }
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => format!(
                        "no answer within {:?} (alerting.timeout_secs)",
                        self.timeout
                    ),
                };
                self.telemetry.alerts_sent(&queue.name, false, count);
                if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(alertmanager = %queue.name, %error, "cannot send alerts; retrying");
                    warned = Some(Instant::now());
                }
                if started.elapsed() + backoff > self.resend {
                    self.telemetry.alerts_dropped(count);
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_key() {
        let good = AlertingConfig {
            alertmanagers: vec!["http://alertmanager:9093".into()],
            ..AlertingConfig::default()
        };
        assert!(good.validate().is_ok());
        for (bad, key) in [
            (AlertingConfig::default(), "alerting.alertmanagers"),
            (
                AlertingConfig {
                    alertmanagers: vec!["alertmanager:9093".into()],
                    ..good.clone()
                },
                "alerting.alertmanagers[0]",
            ),
            (
                AlertingConfig {
                    resend_secs: 0,
                    ..good.clone()
                },
                "alerting.resend_secs",
            ),
            (
                AlertingConfig {
                    labels: [("severity".into(), "x".into())].into(),
                    ..good.clone()
                },
                "alerting.labels.severity",
            ),
            (
                AlertingConfig {
                    labels: [("bad-name".into(), "x".into())].into(),
                    ..good.clone()
                },
                "alerting.labels.bad-name",
            ),
        ] {
            let error = bad.validate().expect_err("refused").to_string();
            assert!(error.starts_with(&format!("config key {key}:")), "{error}");
        }
    }
}
