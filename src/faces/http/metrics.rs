//! `/metrics`: the published state as Prometheus series, with prometheus-client. OpenMetrics
//! text for clients that ask for it (Prometheus does), the Prometheus text format otherwise.
//! The state's series are encoded once per state; healthscore's own counters per scrape.
//!
//! Series: `healthscore_system_score`, `healthscore_system_status` (0 healthy, 1 warning,
//! 2 critical), `healthscore_revision`, per subsystem `healthscore_subsystem_score`,
//! `healthscore_subsystem_available` and `healthscore_subsystem_status{status}` (one series per
//! status, 1 for the current one), `healthscore_issue{subsystem,code,severity,entity,source}`
//! (1 per current issue) and `healthscore_source_stale{source}`, both with the source's labels
//! (a clash with an own label exported as `exported_<name>`, as Prometheus does); then
//! `healthscore_pushes_total{result}` and `healthscore_watch_streams`.

use std::collections::{BTreeMap, HashSet};

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use super::Face;
use crate::core::{
    published::{Hold, Published, Rendition},
    scoring::{SourceLabels, Status},
};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(face): State<Face>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let state = face.engine.state();
    let series = state.rendition(Rendition::OpenMetrics, |state| {
        Bytes::from(state_series(state))
    });
    let mut counters = String::new();
    face.settings
        .telemetry
        .encode(&mut counters)
        .expect("writing to a String cannot fail");
    let (content_type, body) = if openmetrics {
        let mut body = Vec::with_capacity(series.len() + counters.len() + 6);
        body.extend_from_slice(&series);
        body.extend_from_slice(counters.as_bytes());
        body.extend_from_slice(b"# EOF\n");
        (OPENMETRICS, body)
    } else {
        let series = state.rendition(Rendition::PrometheusText, |_| {
            Bytes::from(prometheus_text(&String::from_utf8_lossy(&series)))
        });
        let mut body = series.to_vec();
        body.extend_from_slice(prometheus_text(&counters).as_bytes());
        (PROMETHEUS_TEXT, body)
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

type Labels = Vec<(&'static str, String)>;

/// `own` labels, then the source's `labels`; one named like an own label is exported as
/// `exported_<name>`.
fn with_source_labels(own: Labels, labels: &SourceLabels) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = own
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    for (name, value) in labels.iter() {
        let name = if own.iter().any(|(own, _)| own == name) {
            format!("exported_{name}")
        } else {
            name.clone()
        };
        all.push((name, value.clone()));
    }
    all
}

fn status_value(status: Status) -> i64 {
    match status {
        Status::Healthy => 0,
        Status::Warning => 1,
        Status::Critical => 2,
    }
}

/// The state's series in OpenMetrics text, without the closing `# EOF`.
fn state_series(state: &Published) -> String {
    let mut registry = Registry::default();
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    };
    let system = &state.system;
    gauge(
        &mut registry,
        "healthscore_system_score",
        "The system's score, 0-100: the lowest score of the available subsystems",
        i64::from(system.score),
    );
    gauge(
        &mut registry,
        "healthscore_system_status",
        "The system's status: 0 healthy, 1 warning, 2 critical",
        status_value(system.status),
    );
    gauge(
        &mut registry,
        "healthscore_revision",
        "Revision of the published state; grows each time a report's status, score or issues change",
        i64::try_from(state.stamp.revision).unwrap_or(i64::MAX),
    );
    let family = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Labels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let score = family(
        &mut registry,
        "healthscore_subsystem_score",
        "A subsystem's score, 0-100",
    );
    let available = family(
        &mut registry,
        "healthscore_subsystem_available",
        "1 when something reports into the subsystem",
    );
    let status = family(
        &mut registry,
        "healthscore_subsystem_status",
        "A subsystem's status: 1 for the current one of healthy, warning and critical",
    );
    let labelled = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let issue = labelled(
        &mut registry,
        "healthscore_issue",
        "1 for each current issue",
    );
    let stale = labelled(
        &mut registry,
        "healthscore_source_stale",
        "1 when a source missed its TTL, 0 while it reports on time",
    );
    let mut sources: BTreeMap<&str, (bool, &SourceLabels)> = BTreeMap::new();
    for report in system.subsystems.values() {
        for entity in &report.entities {
            let (is_stale, _) = sources
                .entry(&entity.source)
                .or_insert((false, &entity.labels));
            *is_stale |= entity.stale;
        }
    }
    let no_labels = SourceLabels::default();
    for (key, report) in system.subsystems.iter().map(|(s, r)| (s.key(), r)) {
        let subsystem = || vec![("subsystem", key.to_owned())];
        score
            .get_or_create(&subsystem())
            .set(i64::from(report.score));
        available
            .get_or_create(&subsystem())
            .set(i64::from(report.available));
        for candidate in [Status::Healthy, Status::Warning, Status::Critical] {
            let mut labels = subsystem();
            labels.push(("status", candidate.as_str().to_owned()));
            status
                .get_or_create(&labels)
                .set(i64::from(candidate == report.status));
        }
        for i in report.issues.iter() {
            let own = vec![
                ("subsystem", key.to_owned()),
                ("code", i.code.as_str().to_owned()),
                ("severity", i.severity.as_str().to_owned()),
                ("entity", i.entity.to_string()),
                ("source", i.source.to_string()),
            ];
            let source_labels = sources.get(&*i.source).map_or(&no_labels, |(_, l)| l);
            issue
                .get_or_create(&with_source_labels(own, source_labels))
                .set(1);
        }
    }
    for (source, (is_stale, labels)) in sources {
        let own = vec![("source", source.to_owned())];
        stale
            .get_or_create(&with_source_labels(own, labels))
            .set(i64::from(is_stale));
    }
    probe_series(&mut registry, state);
    let mut out = String::new();
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// Each readiness name's own failing (what the fleet guard reads from every instance) and the
/// fleet view this state was decided with.
fn probe_series(registry: &mut Registry, state: &Published) {
    let named = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<Labels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let probes = &state.probes;
    let failing = named(
        registry,
        "healthscore_probe_failing",
        "1 when a readiness name's reports fail it (before fail_after, recover_after, startup and the fleet guard)",
    );
    for probe in &probes.policy.names {
        let is_failing = matches!(probes.holds.get(&probe.name), Some(Hold::Failing { .. }));
        failing
            .get_or_create(&vec![("name", probe.name.to_string())])
            .set(i64::from(is_failing));
    }
    let Some(fleet) = &probes.fleet else {
        return;
    };
    let peers = Gauge::<i64>::default();
    peers.set(fleet.peers.map_or(0, i64::from));
    registry.register(
        "healthscore_fleet_peers",
        "Instances in the fleet guard's view, this one included (0 while there is no view)",
        peers,
    );
    let fleet_failing = named(
        registry,
        "healthscore_fleet_failing",
        "Instances failing each readiness name in the fleet guard's view, this one included",
    );
    for (name, count) in &fleet.failing {
        fleet_failing
            .get_or_create(&vec![("name", name.to_string())])
            .set(i64::from(*count));
    }
    let held = named(
        registry,
        "healthscore_fleet_held",
        "1 when the fleet guard holds a readiness name SERVING because its failure is shared",
    );
    for probe in &probes.policy.names {
        let is_held = fleet.held.contains_key(&probe.name);
        held.get_or_create(&vec![("name", probe.name.to_string())])
            .set(i64::from(is_held));
    }
}

/// OpenMetrics text (of gauges and counters, as healthscore writes) in the Prometheus text
/// format: a counter's HELP and TYPE name its `_total` series, and there is no UNIT or EOF.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (prefix, rest)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_series_in_the_text_format() {
        let openmetrics = "# HELP healthscore_pushes Pushes received.\n# TYPE healthscore_pushes counter\nhealthscore_pushes_total{result=\"accepted\"} 3\n# HELP healthscore_revision Revision.\n# TYPE healthscore_revision gauge\nhealthscore_revision 7\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP healthscore_pushes_total Pushes received.\n# TYPE healthscore_pushes_total counter\nhealthscore_pushes_total{result=\"accepted\"} 3\n# HELP healthscore_revision Revision.\n# TYPE healthscore_revision gauge\nhealthscore_revision 7\n"
        );
    }
}
