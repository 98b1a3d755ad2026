//! The OTLP source: OpenTelemetry metric exports, as any SDK or Collector sends them. Each
//! resource's points become one push from the source named by its `service.instance.id` (else
//! `service.name`, with `@host.name` when set). Names and attribute keys are read the way
//! Prometheus reads OTLP (dots to underscores, units and `_total` appended), so the semantic
//! conventions and Micrometer's names map through the same rows as a scrape. Delta sums and
//! histogram counts of the series a row reads are added up into the cumulative counters the
//! rules expect; a delta counts only once its resource is applied, and the running totals are
//! bounded and forgotten with their source.
//!
//! A resource is all or nothing: bad data (no service name, NaN or negative values where a rule
//! reads them, too many entities) rejects that resource's points and is reported back; a delta
//! point that is not a finite number is refused alone. Points of metrics no row reads are
//! ignored and counted.

pub mod wire;

use std::{
    borrow::Cow,
    collections::{hash_map::Entry, HashMap},
    hash::BuildHasher,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use foldhash::fast::RandomState as FoldState;
use opentelemetry_proto::tonic::{
    collector::metrics::v1::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse},
    metrics::v1::AggregationTemporality,
};

use super::{exposition::Sample, mapping::Mapping, Admit};
use crate::{
    core::ingest::{FieldError, Limits, PushBuilder, Refusal},
    engine::{Engine, EngineError},
    telemetry::{PointResult, Telemetry},
};

/// What an export did: the points rejected, and why.
#[derive(Debug, Default, PartialEq)]
pub struct Exported {
    pub points: u64,
    pub rejected: u64,
    pub errors: Vec<String>,
    /// The heaviest refusal among the rejected resources.
    pub refusal: Option<Refusal>,
}

impl Exported {
    fn reject(
        &mut self,
        points: u64,
        refusal: Refusal,
        errors: Vec<String>,
        telemetry: &Telemetry,
    ) {
        self.rejected += points;
        telemetry.otlp_points(PointResult::rejected, points);
        self.errors.extend(errors);
        self.refusal = self.refusal.max(Some(refusal));
    }

    /// The OTLP answer: a partial success naming what was rejected, or, when every point was
    /// rejected, the heaviest refusal and the reasons as an error (the client retries only an
    /// exhausted one).
    pub fn response(self) -> Result<ExportMetricsServiceResponse, (Refusal, String)> {
        let message = self.errors.join("; ");
        if self.points > 0 && self.rejected == self.points {
            return Err((self.refusal.unwrap_or(Refusal::Invalid), message));
        }
        Ok(ExportMetricsServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                error_message: message,
            }),
        })
    }
}

/// Delta series whose running totals are kept, over every source: beyond it a new series'
/// points count from zero in each export (and a warning says so).
const MAX_DELTA_SERIES: usize = 100_000;

/// The receiver's state: the running totals of delta series.
pub struct Otlp {
    engine: Engine,
    limits: Limits,
    ttl: Duration,
    telemetry: Arc<Telemetry>,
    mapping: Mapping,
    totals: Mutex<Totals>,
}

/// The running totals of delta series, by source and series, with when each source last had
/// an export applied: a source silent for its TTL and `limits.forget_after_secs` is forgotten
/// by the engine, and its totals here.
#[derive(Default)]
struct Totals {
    sources: HashMap<String, SourceTotals>,
    series: usize,
    last_pruned: Option<Instant>,
}

struct SourceTotals {
    series: HashMap<String, f64>,
    applied: Instant,
}

impl Totals {
    fn get(&self, source: &str, series: &str) -> f64 {
        self.sources
            .get(source)
            .and_then(|totals| totals.series.get(series))
            .copied()
            .unwrap_or(0.0)
    }

    /// Adds an applied export's deltas to its source's totals; the series that did not fit.
    fn commit(&mut self, source: &str, deltas: HashMap<String, f64>, now: Instant) -> usize {
        let mut left_out = 0;
        let totals = self
            .sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceTotals {
                series: HashMap::new(),
                applied: now,
            });
        totals.applied = now;
        for (series, delta) in deltas {
            match totals.series.get_mut(&series) {
                Some(total) => *total += delta,
                None if self.series < MAX_DELTA_SERIES => {
                    totals.series.insert(series, delta);
                    self.series += 1;
                }
                None => left_out += 1,
            }
        }
        left_out
    }

    /// Forgets the sources with nothing applied for `keep`; at most once a minute.
    fn prune(&mut self, keep: Duration, now: Instant) {
        if self
            .last_pruned
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(60))
        {
            return;
        }
        self.last_pruned = Some(now);
        let series = &mut self.series;
        self.sources.retain(|_, totals| {
            let kept = now.duration_since(totals.applied) < keep;
            if !kept {
                *series -= totals.series.len();
            }
            kept
        });
    }
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One resource, read: its source, its points of metrics a row reads (still as decoded, their
/// strings in the request's buffer), how many points it had, and the points refused alone.
struct Resource {
    source: String,
    /// Metric names as Prometheus reads them; a name that comes again, in another scope or
    /// metric, is the same series, so it is kept once.
    names: Vec<String>,
    metrics: Vec<ReadMetric>,
    /// Points not refused alone.
    points: u64,
    /// Points of metrics no row reads: counted, never made into samples.
    unread: u64,
    refused: Vec<String>,
}

/// The points of a metric a row reads: its name (in `Resource::names`), whether they are
/// deltas, and the points as decoded.
struct ReadMetric {
    name: usize,
    delta: bool,
    points: Points,
}

/// A read metric's points: numbers (gauges and sums) or histograms, whose counts are read.
enum Points {
    Numbers(Vec<wire::NumberDataPoint>),
    Histograms(Vec<wire::HistogramDataPoint>),
}

impl Points {
    fn len(&self) -> usize {
        match self {
            Self::Numbers(points) => points.len(),
            Self::Histograms(points) => points.len(),
        }
    }

    /// Each point's attributes and value.
    fn iter(&self) -> Box<dyn Iterator<Item = (&[wire::KeyValue], f64)> + '_> {
        match self {
            Self::Numbers(points) => {
                Box::new(points.iter().map(|p| (&p.attributes[..], number(p))))
            }
            Self::Histograms(points) => {
                Box::new(points.iter().map(|p| (&p.attributes[..], p.count as f64)))
            }
        }
    }

    /// Keeps the points whose value `keep` accepts.
    fn retain(&mut self, mut keep: impl FnMut(&[wire::KeyValue], f64) -> bool) {
        match self {
            Self::Numbers(points) => points.retain(|p| keep(&p.attributes, number(p))),
            Self::Histograms(points) => points.retain(|p| keep(&p.attributes, p.count as f64)),
        }
    }
}

fn number(point: &wire::NumberDataPoint) -> f64 {
    match point.value {
        Some(wire::Number::AsDouble(v)) => v,
        Some(wire::Number::AsInt(v)) => v as f64,
        None => f64::NAN,
    }
}

/// A sample of an export: its strings borrowed from the request and the resource's names, its
/// labels from the resource's [`Labels`].
type Point<'a> = Sample<Cow<'a, str>, &'a [(Cow<'a, str>, Cow<'a, str>)]>;

impl Otlp {
    pub fn new(engine: Engine, limits: Limits, ttl: Duration, telemetry: Arc<Telemetry>) -> Self {
        Self {
            engine,
            limits,
            ttl,
            telemetry,
            mapping: Mapping::otlp(),
            totals: Mutex::default(),
        }
    }

    /// Applies each resource of `request` that `admit` lets in (by its source name).
    pub async fn export(&self, request: wire::Export, admit: &dyn Admit) -> Exported {
        let mut exported = Exported::default();
        for resource_metrics in request.resource_metrics {
            let mut points = count_points(&resource_metrics);
            exported.points += points;
            let outcome = match self.read(resource_metrics) {
                Ok(mut resource) => {
                    let refused = std::mem::take(&mut resource.refused);
                    if !refused.is_empty() {
                        let count = refused.len() as u64;
                        points -= count;
                        exported.reject(count, Refusal::Invalid, refused, &self.telemetry);
                    }
                    match admit.admit(&resource.source).await {
                        Ok(()) => self.apply(resource).await,
                        Err(error) => Err((error.refusal, format!("{}: {error}", resource.source))),
                    }
                }
                Err(error) => Err((Refusal::Invalid, error)),
            };
            if let Err((refusal, error)) = outcome {
                exported.reject(points, refusal, vec![error], &self.telemetry);
            }
        }
        exported
    }

    async fn apply(&self, resource: Resource) -> Result<(), (Refusal, String)> {
        let source = resource.source.as_str();
        let invalid = |error: FieldError| (error.refusal, format!("{source}: {error}"));
        let (push, deltas, read) = {
            let keys = KeyNames::of(&resource).map_err(|error| (Refusal::Invalid, error))?;
            let labels = Labels::of(&resource, &keys).map_err(|error| (Refusal::Invalid, error))?;
            let (samples, deltas) = self.samples(&resource, &labels);
            let (mapped, unread) = self.mapping.apply(&samples).map_err(invalid)?;
            let unread = unread as u64 + resource.unread;
            self.telemetry.otlp_points(PointResult::ignored, unread);
            if mapped.entity_count() == 0 {
                return Ok(());
            }
            let push = PushBuilder::new(source, mapped.entity_count(), &self.limits)
                .and_then(|push| mapped.add_to(push.ttl(Some(self.ttl))?))
                .map_err(invalid)?
                .build();
            (push, deltas, resource.points.saturating_sub(unread))
        };
        match self.engine.push(push).await {
            Ok(_) => {
                self.telemetry.otlp_points(PointResult::applied, read);
                self.commit(source, deltas);
                Ok(())
            }
            Err(EngineError::Invalid(error)) => Err(invalid(error)),
            Err(EngineError::Stopped) => {
                Err((Refusal::Exhausted, "healthscore is shutting down".into()))
            }
        }
    }

    /// Adds an applied resource's deltas to its source's running totals.
    fn commit(&self, source: &str, deltas: HashMap<String, f64>) {
        if deltas.is_empty() {
            return;
        }
        let now = Instant::now();
        let keep = self.ttl + Duration::from_secs(self.limits.forget_after_secs);
        let mut totals = self.totals.lock().expect("no panic holds this lock");
        totals.prune(keep, now);
        let left_out = totals.commit(source, deltas, now);
        if left_out > 0 {
            tracing::warn!(
                source,
                left_out,
                max = MAX_DELTA_SERIES,
                "too many OTLP delta series to keep running totals: these count from zero in each export"
            );
        }
    }

    /// A resource's source, and the points of the metrics a row reads, named as Prometheus
    /// reads OTLP. A delta that is not a finite number is refused here, alone.
    fn read(&self, resource_metrics: wire::ResourceMetrics) -> Result<Resource, String> {
        let source = source_name(resource_metrics.resource.as_ref())?;
        let mut resource = Resource {
            source,
            names: Vec::new(),
            metrics: Vec::new(),
            points: 0,
            unread: 0,
            refused: Vec::new(),
        };
        for metric in resource_metrics
            .scope_metrics
            .into_iter()
            .flat_map(|scope| scope.metrics)
        {
            let name = wire::text(&metric.name, || "a metric name".into())?;
            let unit = wire::text(&metric.unit, || format!("metric {name}'s unit"))?;
            let base = normalize(name, unit);
            let delta = |temporality| temporality == AggregationTemporality::Delta as i32;
            let (name, delta, mut points) = match metric.data {
                Some(wire::Data::Gauge(gauge)) => (base, false, Points::Numbers(gauge.data_points)),
                Some(wire::Data::Sum(sum)) => (
                    if sum.is_monotonic && !base.ends_with("_total") {
                        format!("{base}_total")
                    } else {
                        base
                    },
                    delta(sum.aggregation_temporality),
                    Points::Numbers(sum.data_points),
                ),
                Some(wire::Data::Histogram(histogram)) => (
                    format!("{base}_count"),
                    delta(histogram.aggregation_temporality),
                    Points::Histograms(histogram.data_points),
                ),
                Some(wire::Data::ExponentialHistogram(unread) | wire::Data::Summary(unread)) => {
                    resource.points += unread.data_points.len() as u64;
                    resource.unread += unread.data_points.len() as u64;
                    continue;
                }
                None => continue,
            };
            resource.points += points.len() as u64;
            if !self.mapping.reads(&name) {
                resource.unread += points.len() as u64;
                continue;
            }
            if delta {
                refuse_unfinished(&resource.source, &name, &mut points, &mut resource.refused);
            }
            let index = match resource.names.iter().position(|known| *known == name) {
                Some(index) => index,
                None => {
                    resource.names.push(name);
                    resource.names.len() - 1
                }
            };
            resource.metrics.push(ReadMetric {
                name: index,
                delta,
                points,
            });
        }
        resource.points -= resource.refused.len() as u64;
        Ok(resource)
    }

    /// The resource's samples, one a series (the last point of a series wins), delta series
    /// added to their running totals; and the deltas to commit once the push is applied.
    fn samples<'a>(
        &self,
        resource: &'a Resource,
        labels: &'a Labels<'a>,
    ) -> (Vec<Point<'a>>, HashMap<String, f64>) {
        let source = &resource.source;
        let mut samples: Vec<Point> = Vec::with_capacity(labels.spans.len());
        let mut series: Vec<u64> = Vec::with_capacity(labels.spans.len());
        let hashing = FoldState::default();
        let mut deltas: HashMap<String, f64> = HashMap::new();
        let mut spans = labels.spans.iter();
        let totals = self.totals.lock().expect("no panic holds this lock");
        for metric in &resource.metrics {
            let name = resource.names[metric.name].as_str();
            for ((_, value), span) in metric.points.iter().zip(&mut spans) {
                let point_labels = &labels.all[span.clone()];
                let value = if metric.delta {
                    let key = format!("{name}{point_labels:?}");
                    let total = totals.get(source, &key);
                    let pending = deltas.entry(key).or_default();
                    *pending += value;
                    total + *pending
                } else {
                    value
                };
                series.push(hashing.hash_one((metric.name, point_labels)));
                samples.push(Sample {
                    name: Cow::Borrowed(name),
                    labels: point_labels,
                    value,
                    line: None,
                });
            }
        }
        keep_last_of_each_series(&mut samples, &series);
        (samples, deltas)
    }
}

/// The labels of a resource's read points, in one list for all of them: each point's are a span
/// of it, sorted, so a point's labels cost no allocation of their own.
struct Labels<'a> {
    all: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Each read point's span of `all`, in the order of the resource's metrics and points.
    spans: Vec<std::ops::Range<usize>>,
}

impl<'a> Labels<'a> {
    fn of(resource: &'a Resource, keys: &'a KeyNames<'a>) -> Result<Self, String> {
        let source = &resource.source;
        let count = resource.metrics.iter().map(|m| m.points.len()).sum();
        let mut labels = Labels {
            all: Vec::with_capacity(count * 2),
            spans: Vec::with_capacity(count),
        };
        let mut names = KeyMemo::new(keys);
        for metric in &resource.metrics {
            let name = resource.names[metric.name].as_str();
            for (attributes, _) in metric.points.iter() {
                let start = labels.all.len();
                for (place, kv) in attributes.iter().enumerate() {
                    let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
                        continue;
                    };
                    let key = names.name(place, &kv.key);
                    let value = text(value, || {
                        format!("{source}: metric {name}: attribute {key}")
                    })?;
                    labels.all.push((Cow::Borrowed(key), value));
                }
                labels.all[start..].sort_unstable();
                labels.spans.push(start..labels.all.len());
            }
        }
        Ok(labels)
    }
}

/// The source a resource's points are pushed from: its `service.instance.id`, else its
/// `service.name` (with `@host.name` when set).
fn source_name(resource: Option<&wire::Resource>) -> Result<String, String> {
    let attributes = resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default();
    // A key given twice is read at its last place, as a map of the attributes would hold it.
    let attribute = |key: &str| -> Result<Option<String>, String> {
        attributes
            .iter()
            .rev()
            .filter(|kv| kv.key == key.as_bytes())
            .find_map(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|value| text(value, || format!("resource attribute {key}")).map(Cow::into_owned))
            .transpose()
    };
    match (
        attribute("service.instance.id")?,
        attribute("service.name")?,
        attribute("host.name")?,
    ) {
        (Some(id), _, _) => Ok(id),
        (None, Some(service), Some(host)) => Ok(format!("{service}@{host}")),
        (None, Some(service), None) => Ok(service),
        (None, None, _) => Err(
            "a resource has neither service.instance.id nor service.name: its points are rejected"
                .into(),
        ),
    }
}

/// Refuses the deltas of `points` that are not finite numbers, each into `refused` with the
/// reason.
fn refuse_unfinished(source: &str, name: &str, points: &mut Points, refused: &mut Vec<String>) {
    points.retain(|attributes, value| {
        if value.is_finite() {
            return true;
        }
        let mut labels: Vec<(String, String)> = attributes
            .iter()
            .filter_map(|kv| {
                let value = text(kv.value.as_ref()?.value.as_ref()?, String::new).ok()?;
                let key = String::from_utf8_lossy(&kv.key);
                Some((normalize(&key, ""), value.into_owned()))
            })
            .collect();
        labels.sort();
        refused.push(format!(
            "{source}: metric {name} {labels:?}: a delta of {value} is not a finite number; the point is refused"
        ));
        false
    });
}

/// The label names of a resource's attribute keys: each distinct key normalized once, borrowed
/// as it is when it needs no change.
struct KeyNames<'a>(HashMap<&'a [u8], Cow<'a, str>, FoldState>);

impl<'a> KeyNames<'a> {
    fn of(resource: &'a Resource) -> Result<Self, String> {
        let mut names: HashMap<&[u8], Cow<str>, FoldState> = HashMap::default();
        // The keys of the point before, by place: points mostly repeat them.
        let mut before: Vec<&[u8]> = Vec::new();
        let attributes = resource
            .metrics
            .iter()
            .flat_map(|metric| metric.points.iter())
            .map(|(attributes, _)| attributes);
        for attributes in attributes {
            for (place, kv) in attributes.iter().enumerate() {
                let key = &kv.key[..];
                match before.get_mut(place) {
                    Some(known) if *known == key => continue,
                    Some(known) => *known = key,
                    None => before.push(key),
                }
                if names.contains_key(key) {
                    continue;
                }
                let text =
                    wire::text(&kv.key, || format!("{}: an attribute key", resource.source))?;
                let name = if text.bytes().all(kept) {
                    Cow::Borrowed(text)
                } else {
                    Cow::Owned(normalize(text, ""))
                };
                names.insert(key, name);
            }
        }
        Ok(Self(names))
    }
}

/// Label names looked up by key, remembering the point before's by place: a key is looked up
/// only when it differs from the one at its place in the point before.
struct KeyMemo<'a> {
    names: &'a KeyNames<'a>,
    before: Vec<(&'a [u8], &'a str)>,
}

impl<'a> KeyMemo<'a> {
    fn new(names: &'a KeyNames<'a>) -> Self {
        Self {
            names,
            before: Vec::new(),
        }
    }

    fn name(&mut self, place: usize, key: &'a [u8]) -> &'a str {
        if let Some(&(known, name)) = self.before.get(place) {
            if known == key {
                return name;
            }
        }
        let name = self
            .names
            .0
            .get(key)
            .expect("every key of the resource's read points is named");
        match self.before.get_mut(place) {
            Some(slot) => *slot = (key, name),
            None => self.before.push((key, name)),
        }
        name
    }
}

/// Keeps the last sample of each series, in order; `series` holds each sample's hash of its
/// metric and labels. A hash seen again is compared in full, so a collision keeps both.
fn keep_last_of_each_series(samples: &mut Vec<Point>, series: &[u64]) {
    let mut last: HashMap<u64, usize, FoldState> =
        HashMap::with_capacity_and_hasher(samples.len(), FoldState::default());
    let mut kept = vec![true; samples.len()];
    let mut repeats = false;
    for (index, sample) in samples.iter().enumerate().rev() {
        let same = |other: usize| {
            let other: &Point = &samples[other];
            other.name == sample.name && other.labels == sample.labels
        };
        match last.entry(series[index]) {
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
            Entry::Occupied(slot) => {
                let repeated = same(*slot.get())
                    || (index + 1..samples.len()).any(|later| kept[later] && same(later));
                kept[index] = !repeated;
                repeats |= repeated;
            }
        }
    }
    if repeats {
        let mut flags = kept.into_iter();
        samples.retain(|_| flags.next().unwrap_or(true));
    }
}

fn count_points(resource_metrics: &wire::ResourceMetrics) -> u64 {
    resource_metrics
        .scope_metrics
        .iter()
        .flat_map(|scope| &scope.metrics)
        .map(|metric| match &metric.data {
            Some(wire::Data::Gauge(g)) => g.data_points.len(),
            Some(wire::Data::Sum(s)) => s.data_points.len(),
            Some(wire::Data::Histogram(h)) => h.data_points.len(),
            Some(wire::Data::ExponentialHistogram(u) | wire::Data::Summary(u)) => {
                u.data_points.len()
            }
            None => 0,
        } as u64)
        .sum()
}

/// An attribute value as a label's text, borrowed when it is a string. `what` names it when it
/// is not UTF-8.
fn text(value: &wire::Value, what: impl FnOnce() -> String) -> Result<Cow<'_, str>, String> {
    Ok(match value {
        wire::Value::String(s) => Cow::Borrowed(wire::text(s, what)?),
        wire::Value::Int(i) => Cow::Owned(i.to_string()),
        wire::Value::Bool(b) => Cow::Owned(b.to_string()),
        wire::Value::Double(d) => Cow::Owned(d.to_string()),
    })
}

/// Whether a byte is kept as it is in a Prometheus name.
fn kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':'
}

/// A name as Prometheus reads it: characters outside `[a-zA-Z0-9_:]` become `_`, and the unit's
/// suffix is added for bytes and seconds.
fn normalize(name: &str, unit: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if u8::try_from(c).is_ok_and(kept) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suffix = match unit {
        "By" => "_bytes",
        "s" => "_seconds",
        _ => "",
    };
    if !suffix.is_empty() && !out.ends_with(suffix) {
        out.push_str(suffix);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_prometheus_reads_otlp() {
        assert_eq!(
            normalize("db.client.connection.count", "{connection}"),
            "db_client_connection_count"
        );
        assert_eq!(normalize("jvm.memory.used", "By"), "jvm_memory_used_bytes");
        // Outside ASCII, each character (not each byte) becomes one `_`.
        assert_eq!(normalize("pool.größe", ""), "pool_gr__e");
        assert_eq!(
            normalize("jvm_memory_used_bytes", "By"),
            "jvm_memory_used_bytes"
        );
        assert_eq!(
            normalize("http.server.request.duration", "s"),
            "http_server_request_duration_seconds"
        );
    }
}
