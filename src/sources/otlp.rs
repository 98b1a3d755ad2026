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

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    common::v1::{any_value, KeyValue},
    metrics::v1::{metric::Data, number_data_point, AggregationTemporality, ResourceMetrics},
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

/// One resource's points, read: its source, its samples, how many points it had, the deltas
/// to add to its totals once applied, and the points refused alone.
struct Resource {
    source: String,
    samples: Vec<Sample>,
    points: u64,
    /// Points of metrics no row reads: counted, never made into samples.
    unread: u64,
    deltas: HashMap<String, f64>,
    refused: Vec<String>,
}

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
    pub async fn export(
        &self,
        request: ExportMetricsServiceRequest,
        admit: &dyn Admit,
    ) -> Exported {
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
        let invalid = |error: FieldError| (error.refusal, format!("{}: {error}", resource.source));
        let (mapped, unread) = self.mapping.apply(&resource.samples).map_err(invalid)?;
        let unread = unread as u64 + resource.unread;
        let read = resource.points.saturating_sub(unread);
        self.telemetry.otlp_points(PointResult::ignored, unread);
        if mapped.entity_count() == 0 {
            return Ok(());
        }
        let push = PushBuilder::new(&resource.source, mapped.entity_count(), &self.limits)
            .and_then(|push| mapped.add_to(push.ttl(Some(self.ttl))?))
            .map_err(invalid)?
            .build();
        match self.engine.push(push).await {
            Ok(_) => {
                self.telemetry.otlp_points(PointResult::applied, read);
                self.commit(&resource.source, resource.deltas);
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

    /// A resource's samples, named as Prometheus reads OTLP; delta series the mapping reads
    /// added to their running totals (committed by `apply`).
    fn read(&self, resource_metrics: ResourceMetrics) -> Result<Resource, String> {
        let attributes = resource_metrics
            .resource
            .map(|resource| attributes(resource.attributes))
            .unwrap_or_default();
        let source = match (
            attributes.get("service.instance.id"),
            attributes.get("service.name"),
            attributes.get("host.name"),
        ) {
            (Some(id), _, _) => id.clone(),
            (None, Some(service), Some(host)) => format!("{service}@{host}"),
            (None, Some(service), None) => service.clone(),
            (None, None, _) => {
                return Err(
                    "a resource has neither service.instance.id nor service.name: its points are rejected"
                        .into(),
                )
            }
        };
        let mut series: BTreeMap<(usize, Vec<(String, String)>), f64> = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        let (mut points, mut unread) = (0, 0);
        let mut deltas: HashMap<String, f64> = HashMap::new();
        let mut refused = Vec::new();
        let totals = self.totals.lock().expect("no panic holds this lock");
        for metric in resource_metrics
            .scope_metrics
            .into_iter()
            .flat_map(|scope| scope.metrics)
        {
            let base = normalize(metric.name, &metric.unit);
            // The points by value: their attributes become labels without a copy.
            let (name, delta, values): (String, bool, Vec<(Vec<KeyValue>, f64)>) = match metric.data
            {
                Some(Data::Gauge(gauge)) => (
                    base,
                    false,
                    gauge
                        .data_points
                        .into_iter()
                        .map(|p| (p.attributes, number(&p.value)))
                        .collect(),
                ),
                Some(Data::Sum(sum)) => (
                    if sum.is_monotonic && !base.ends_with("_total") {
                        format!("{base}_total")
                    } else {
                        base
                    },
                    sum.aggregation_temporality == AggregationTemporality::Delta as i32,
                    sum.data_points
                        .into_iter()
                        .map(|p| (p.attributes, number(&p.value)))
                        .collect(),
                ),
                Some(Data::Histogram(histogram)) => (
                    format!("{base}_count"),
                    histogram.aggregation_temporality == AggregationTemporality::Delta as i32,
                    histogram
                        .data_points
                        .into_iter()
                        .map(|p| (p.attributes, p.count as f64))
                        .collect(),
                ),
                // Exponential histograms and summaries carry nothing the rules read.
                _ => (base, false, Vec::new()),
            };
            points += values.len() as u64;
            if !self.mapping.reads(&name) {
                unread += values.len() as u64;
                continue;
            }
            // Series are keyed by the name's place in `names` (not a copy of it per point); a
            // name that comes again, in another scope or metric, is the same series.
            let metric_index = match names.iter().position(|known| *known == name) {
                Some(index) => index,
                None => {
                    names.push(name.clone());
                    names.len() - 1
                }
            };
            for (point_attributes, value) in values {
                let mut labels = point_labels(point_attributes);
                labels.sort();
                let value = if delta {
                    if !value.is_finite() {
                        refused.push(format!(
                            "{source}: metric {name} {labels:?}: a delta of {value} is not a finite number; the point is refused"
                        ));
                        continue;
                    }
                    let key = format!("{name}{labels:?}");
                    let pending = deltas.entry(key.clone()).or_default();
                    *pending += value;
                    totals.get(&source, &key) + *pending
                } else {
                    value
                };
                // The last point of a series wins.
                series.insert((metric_index, labels), value);
            }
        }
        let samples = series
            .into_iter()
            .map(|((metric_index, labels), value)| Sample {
                name: names[metric_index].clone(),
                labels,
                value,
                line: None,
            })
            .collect();
        Ok(Resource {
            source,
            samples,
            points: points - refused.len() as u64,
            unread,
            deltas,
            refused,
        })
    }
}

fn count_points(resource_metrics: &ResourceMetrics) -> u64 {
    resource_metrics
        .scope_metrics
        .iter()
        .flat_map(|scope| &scope.metrics)
        .map(|metric| match &metric.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}

fn number(value: &Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(v)) => *v,
        Some(number_data_point::Value::AsInt(v)) => *v as f64,
        None => f64::NAN,
    }
}

/// Resource attributes by their OTLP keys.
fn attributes(list: Vec<KeyValue>) -> HashMap<String, String> {
    list.into_iter()
        .filter_map(|kv| Some((kv.key, text(kv.value?.value?)?)))
        .collect()
}

/// Point attributes as labels, keys normalized; the strings are moved, not copied.
fn point_labels(list: Vec<KeyValue>) -> Vec<(String, String)> {
    list.into_iter()
        .filter_map(|kv| Some((normalize(kv.key, ""), text(kv.value?.value?)?)))
        .collect()
}

fn text(value: any_value::Value) -> Option<String> {
    match value {
        any_value::Value::StringValue(s) => Some(s),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A name as Prometheus reads it: characters outside `[a-zA-Z0-9_:]` become `_`, and the unit's
/// suffix is added for bytes and seconds. An ASCII name is rewritten in place.
fn normalize(name: String, unit: &str) -> String {
    let kept = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = if name.is_ascii() {
        let mut bytes = name.into_bytes();
        for byte in &mut bytes {
            if !kept(char::from(*byte)) {
                *byte = b'_';
            }
        }
        // ASCII stays ASCII, so this never fails and never copies.
        String::from_utf8(bytes).unwrap_or_default()
    } else {
        name.chars()
            .map(|c| if kept(c) { c } else { '_' })
            .collect()
    };
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
            normalize("db.client.connection.count".into(), "{connection}"),
            "db_client_connection_count"
        );
        assert_eq!(
            normalize("jvm.memory.used".into(), "By"),
            "jvm_memory_used_bytes"
        );
        // Outside ASCII, each character (not each byte) becomes one `_`.
        assert_eq!(normalize("pool.größe".into(), ""), "pool_gr__e");
        assert_eq!(
            normalize("jvm_memory_used_bytes".into(), "By"),
            "jvm_memory_used_bytes"
        );
        assert_eq!(
            normalize("http.server.request.duration".into(), "s"),
            "http_server_request_duration_seconds"
        );
    }
}
