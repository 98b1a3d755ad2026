//! The generated wire types and every conversion between them and the core's types.
//!
//! Validation of pushed snapshots happens here, on the way in, so the store and the scoring core
//! never see a bad value.

use std::{collections::HashSet, fmt, sync::Arc, time::Duration, time::SystemTime};

use prost::{
    bytes::{Buf, BufMut, Bytes},
    encoding::{self, WireType},
    DecodeError, Message,
};
use serde::Deserialize;

use crate::scoring::{self, snapshot as core};

/// `healthscore.v1`, generated from `proto/healthscore/v1/`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/healthscore.v1.rs"));

    /// `healthscore.v1.GetSystemHealthResponse`: `report = 1`, see [`super::Envelope`].
    pub type GetSystemHealthResponse = super::SystemReportEnvelope;
    /// `healthscore.v1.WatchHealthResponse`: `report = 1`, see [`super::Envelope`].
    pub type WatchHealthResponse = super::SystemReportEnvelope;
}

/// The two responses that carry a system report.
pub type SystemReportEnvelope = Envelope<v1::SystemHealthReport>;

/// A response whose only field is `report = 1`: either the report already encoded (shared by
/// every reader of one published state, so a large report is not rebuilt per call or per
/// stream), or a message built or decoded the usual way. Its wire format is that of the proto
/// message; clients read it with [`Envelope::report`].
#[derive(Clone, PartialEq)]
pub enum Envelope<M> {
    Encoded(Bytes),
    Built(Option<M>),
}

impl<M> Default for Envelope<M> {
    fn default() -> Self {
        Self::Built(None)
    }
}

impl<M: Message + Default> Envelope<M> {
    pub fn built(report: M) -> Self {
        Self::Built(Some(report))
    }

    /// The report, decoding it if it was received or kept encoded.
    pub fn report(self) -> Option<M> {
        match self {
            Self::Built(report) => report,
            Self::Encoded(bytes) => {
                Some(M::decode(bytes).expect("an Envelope only holds a valid encoding"))
            }
        }
    }
}

impl<M: fmt::Debug> fmt::Debug for Envelope<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encoded(bytes) => write!(f, "Envelope::Encoded({} bytes)", bytes.len()),
            Self::Built(report) => f.debug_tuple("Envelope::Built").field(report).finish(),
        }
    }
}

impl<M: Message + Default> Message for Envelope<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Self::Encoded(bytes) => {
                encoding::encode_key(1, WireType::LengthDelimited, buf);
                encoding::encode_varint(bytes.len() as u64, buf);
                buf.put_slice(bytes);
            }
            Self::Built(Some(report)) => encoding::message::encode(1, report, buf),
            Self::Built(None) => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != 1 {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let mut report = match std::mem::take(self) {
            Self::Built(report) => report.unwrap_or_default(),
            Self::Encoded(bytes) => M::decode(bytes)?,
        };
        encoding::message::merge(wire_type, &mut report, buf, ctx)?;
        *self = Self::Built(Some(report));
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Encoded(bytes) => {
                encoding::key_len(1)
                    + encoding::encoded_len_varint(bytes.len() as u64)
                    + bytes.len()
            }
            Self::Built(Some(report)) => encoding::message::encoded_len(1, report),
            Self::Built(None) => 0,
        }
    }

    fn clear(&mut self) {
        *self = Self::Built(None);
    }
}

/// The standard `grpc.health.v1` protocol, including `List`.
pub mod health {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// Encoded `FileDescriptorSet` of every proto above, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// A field of a request that cannot be accepted: `field` is the path to it
/// (`datasources[2] "mainDB".active`), `problem` says what is wrong with its value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<FieldError> for tonic::Status {
    fn from(error: FieldError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

impl From<scoring::Severity> for v1::Severity {
    fn from(severity: scoring::Severity) -> Self {
        match severity {
            scoring::Severity::Info => Self::Info,
            scoring::Severity::Warning => Self::Warning,
            scoring::Severity::Critical => Self::Critical,
        }
    }
}

impl From<scoring::Status> for v1::Status {
    fn from(status: scoring::Status) -> Self {
        match status {
            scoring::Status::Healthy => Self::Healthy,
            scoring::Status::Warning => Self::Warning,
            scoring::Status::Critical => Self::Critical,
        }
    }
}

/// Reads a wire severity filter: `None` for UNSPECIFIED (keep everything).
pub fn min_severity(raw: i32, field: &str) -> Result<Option<scoring::Severity>, FieldError> {
    match v1::Severity::try_from(raw) {
        Ok(v1::Severity::Unspecified) => Ok(None),
        Ok(v1::Severity::Info) => Ok(Some(scoring::Severity::Info)),
        Ok(v1::Severity::Warning) => Ok(Some(scoring::Severity::Warning)),
        Ok(v1::Severity::Critical) => Ok(Some(scoring::Severity::Critical)),
        Err(_) => Err(FieldError::new(
            field,
            format!("unknown severity value {raw}"),
        )),
    }
}

/// What a reader asked to leave out of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub min_severity: Option<scoring::Severity>,
    pub omit_entities: bool,
}

impl View {
    /// Reads `options` (absent means everything).
    pub fn from_options(options: Option<&v1::ReportOptions>) -> Result<Self, FieldError> {
        let Some(options) = options else {
            return Ok(Self::default());
        };
        Ok(Self {
            min_severity: min_severity(options.min_severity, "options.min_severity")?,
            omit_entities: options.omit_entities,
        })
    }

    fn keeps(&self, issue: &scoring::Issue) -> bool {
        self.min_severity.is_none_or(|min| issue.severity >= min)
    }
}

/// When a published state was computed, and its revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub revision: u64,
    pub generated_at: SystemTime,
}

fn metrics_map(metrics: &scoring::Metrics) -> std::collections::BTreeMap<String, f64> {
    metrics.iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn issue(issue: &scoring::Issue, prefixed: bool) -> v1::Issue {
    v1::Issue {
        severity: v1::Severity::from(issue.severity).into(),
        code: if prefixed {
            format!("{}:{}", issue.subsystem, issue.code)
        } else {
            issue.code.as_str().to_owned()
        },
        message: issue.message.clone(),
        suggested_action: issue.suggested_action.to_string(),
        entity: issue.entity.to_string(),
        entity_metrics: metrics_map(&issue.entity_metrics),
        subsystem: issue.subsystem.key().to_owned(),
        source: issue.source.to_string(),
    }
}

/// A subsystem report on the wire, filtered by `view`.
pub fn health_report(report: &scoring::HealthReport, stamp: Stamp, view: View) -> v1::HealthReport {
    v1::HealthReport {
        subsystem: report.subsystem.key().to_owned(),
        available: report.available,
        status: v1::Status::from(report.status).into(),
        score: report.score,
        issues: report
            .issues
            .iter()
            .filter(|i| view.keeps(i))
            .map(|i| issue(i, false))
            .collect(),
        score_breakdown: Some(v1::ScoreBreakdown {
            base: report.score_breakdown.base,
            deductions: report
                .score_breakdown
                .deductions
                .iter()
                .map(|d| v1::Deduction {
                    code: d.code.as_str().to_owned(),
                    severity: v1::Severity::from(d.severity).into(),
                    penalty: d.penalty,
                    entity: d.entity.to_string(),
                })
                .collect(),
        }),
        entities: if view.omit_entities {
            Vec::new()
        } else {
            report
                .entities
                .iter()
                .map(|e| v1::EntityHealth {
                    name: e.name.to_string(),
                    source: e.source.to_string(),
                    status: v1::Status::from(e.status).into(),
                    metrics: metrics_map(&e.metrics),
                    stale: e.stale,
                })
                .collect()
        },
        revision: stamp.revision,
        generated_at: Some(stamp.generated_at.into()),
    }
}

/// The system report on the wire, filtered by `view` (which also applies to every subsystem).
pub fn system_report(
    report: &scoring::SystemHealthReport,
    stamp: Stamp,
    view: View,
) -> v1::SystemHealthReport {
    v1::SystemHealthReport {
        status: v1::Status::from(report.status).into(),
        score: report.score,
        issues: report
            .issues
            .iter()
            .filter(|i| view.keeps(i))
            .map(|i| issue(i, true))
            .collect(),
        subsystems: report
            .subsystems
            .iter()
            .map(|(key, r)| ((*key).to_owned(), health_report(r, stamp, view)))
            .collect(),
        revision: stamp.revision,
        generated_at: Some(stamp.generated_at.into()),
    }
}

/// What a validated `ReportMetricsRequest` carries. `None` lists leave their subsystem untouched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Push {
    pub source: Arc<str>,
    pub sequence: Option<u64>,
    pub ttl: Option<Duration>,
    pub datasources: Option<Vec<core::DatasourceSnapshot>>,
    pub caches: Option<Vec<core::CacheSnapshot>>,
    pub watchers: Option<Vec<core::WatcherSnapshot>>,
    pub schedulers: Option<Vec<core::SchedulerSnapshot>>,
    pub executors: Option<Vec<core::ExecutorSnapshot>>,
    pub web_servers: Option<Vec<core::WebServerSnapshot>>,
    pub runtimes: Option<Vec<core::RuntimeSnapshot>>,
    pub performance: Option<Vec<core::PerformanceSnapshot>>,
}

impl Push {
    pub fn entity_count(&self) -> usize {
        fn len<T>(list: &Option<Vec<T>>) -> usize {
            list.as_ref().map_or(0, Vec::len)
        }
        len(&self.datasources)
            + len(&self.caches)
            + len(&self.watchers)
            + len(&self.schedulers)
            + len(&self.executors)
            + len(&self.web_servers)
            + len(&self.runtimes)
            + len(&self.performance)
    }
}

/// Validates a name (source or entity): non-empty, at most `max_bytes`, no control characters.
pub fn name(field: &str, value: &str, max_bytes: usize) -> Result<Arc<str>, FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(FieldError::new(
            field,
            format!("is {} bytes long; the limit is {max_bytes}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Arc::from(value))
}

/// Converts one repeated snapshot field, checking names (non-empty, unique) and each snapshot.
fn snapshots<W, C>(
    list: Vec<W>,
    field: &str,
    max_name_bytes: usize,
    wire_name: impl Fn(&W) -> &str,
    convert: impl Fn(W, Arc<str>, &dyn Fn(&str) -> String) -> Result<C, FieldError>,
) -> Result<Option<Vec<C>>, FieldError> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut seen = HashSet::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for (index, snapshot) in list.into_iter().enumerate() {
        let raw = wire_name(&snapshot);
        let name = name(&format!("{field}[{index}].name"), raw, max_name_bytes)?;
        if !seen.insert(name.clone()) {
            return Err(FieldError::new(
                format!("{field}[{index}].name"),
                format!("duplicate entity name {name:?}"),
            ));
        }
        let path = |key: &str| format!("{field}[{index}] {name:?}.{key}");
        out.push(convert(snapshot, name.clone(), &path)?);
    }
    Ok(Some(out))
}

fn at_most(
    path: &dyn Fn(&str) -> String,
    key: &str,
    value: u64,
    max_key: &str,
    max: u64,
) -> Result<(), FieldError> {
    if max > 0 && value > max {
        Err(FieldError::new(
            path(key),
            format!("{value} is above {max_key} ({max})"),
        ))
    } else {
        Ok(())
    }
}

impl Push {
    /// Validates a request; names longer than `max_name_bytes` are rejected. Limits that depend
    /// on the store (TTL bounds, entity and source counts) are the store's to check.
    pub fn from_wire(
        request: v1::ReportMetricsRequest,
        max_name_bytes: usize,
    ) -> Result<Self, FieldError> {
        let source = name("source", &request.source, max_name_bytes)?;
        let ttl = request
            .ttl
            .map(|ttl| {
                Duration::try_from(ttl).map_err(|_| {
                    FieldError::new(
                        "ttl",
                        format!(
                            "{}s {}ns is not a valid positive duration",
                            ttl.seconds, ttl.nanos
                        ),
                    )
                })
            })
            .transpose()?;
        let n = max_name_bytes;
        Ok(Self {
            source,
            sequence: (request.sequence > 0).then_some(request.sequence),
            ttl,
            datasources: snapshots(
                request.datasources,
                "datasources",
                n,
                |s| &s.name,
                |s, name, path| {
                    at_most(path, "active", s.active.into(), "max", s.max.into())?;
                    Ok(core::DatasourceSnapshot {
                        name,
                        started: s.started.unwrap_or(true),
                        active: s.active,
                        idle: s.idle,
                        max: s.max,
                        threads_awaiting: s.threads_awaiting,
                    })
                },
            )?,
            caches: snapshots(
                request.caches,
                "caches",
                n,
                |s| &s.name,
                |s, name, path| {
                    at_most(path, "size", s.size, "max_size", s.max_size)?;
                    Ok(core::CacheSnapshot {
                        name,
                        enabled: s.enabled.unwrap_or(true),
                        hits: s.hits,
                        misses: s.misses,
                        evictions: s.evictions,
                        size: s.size,
                        max_size: s.max_size,
                    })
                },
            )?,
            watchers: snapshots(
                request.watchers,
                "watchers",
                n,
                |s| &s.name,
                |s, name, _| {
                    Ok(core::WatcherSnapshot {
                        name,
                        running: s.running.unwrap_or(true),
                        consecutive_errors: s.consecutive_errors,
                    })
                },
            )?,
            schedulers: snapshots(
                request.schedulers,
                "schedulers",
                n,
                |s| &s.name,
                |s, name, path| {
                    if s.paused_tasks > s.tasks {
                        return Err(FieldError::new(
                            path("paused_tasks"),
                            format!("{} is above tasks ({})", s.paused_tasks, s.tasks),
                        ));
                    }
                    Ok(core::SchedulerSnapshot {
                        name,
                        started: s.started.unwrap_or(true),
                        tasks: s.tasks,
                        paused_tasks: s.paused_tasks,
                    })
                },
            )?,
            executors: snapshots(
                request.executors,
                "executors",
                n,
                |s| &s.name,
                |s, name, path| {
                    at_most(
                        path,
                        "active",
                        s.active.into(),
                        "max_threads",
                        s.max_threads.into(),
                    )?;
                    let state = match v1::ExecutorState::try_from(s.state) {
                        Ok(v1::ExecutorState::Unspecified | v1::ExecutorState::Running) => {
                            core::ExecutorState::Running
                        }
                        Ok(v1::ExecutorState::Idle) => core::ExecutorState::Idle,
                        Ok(v1::ExecutorState::Degraded) => core::ExecutorState::Degraded,
                        Ok(v1::ExecutorState::Draining) => core::ExecutorState::Draining,
                        Ok(v1::ExecutorState::Critical) => core::ExecutorState::Critical,
                        Ok(v1::ExecutorState::Shutdown) => core::ExecutorState::Shutdown,
                        Ok(v1::ExecutorState::Terminated) => core::ExecutorState::Terminated,
                        Err(_) => {
                            return Err(FieldError::new(
                                path("state"),
                                format!("unknown executor state {}", s.state),
                            ))
                        }
                    };
                    Ok(core::ExecutorSnapshot {
                        name,
                        state,
                        active: s.active,
                        max_threads: s.max_threads,
                        queued: s.queued,
                        queue_capacity: s.queue_capacity,
                    })
                },
            )?,
            web_servers: snapshots(
                request.web_servers,
                "web_servers",
                n,
                |s| &s.name,
                |s, name, path| {
                    at_most(
                        path,
                        "busy_workers",
                        s.busy_workers.into(),
                        "max_workers",
                        s.max_workers.into(),
                    )?;
                    if s.errors > s.requests {
                        return Err(FieldError::new(
                            path("errors"),
                            format!("{} is above requests ({})", s.errors, s.requests),
                        ));
                    }
                    Ok(core::WebServerSnapshot {
                        name,
                        busy_workers: s.busy_workers,
                        max_workers: s.max_workers,
                        queued: s.queued,
                        queue_capacity: s.queue_capacity,
                        requests: s.requests,
                        errors: s.errors,
                        connections: s.connections,
                    })
                },
            )?,
            runtimes: snapshots(
                request.runtimes,
                "runtimes",
                n,
                |s| &s.name,
                |s, name, path| {
                    at_most(
                        path,
                        "heap_used_bytes",
                        s.heap_used_bytes,
                        "heap_max_bytes",
                        s.heap_max_bytes,
                    )?;
                    Ok(core::RuntimeSnapshot {
                        name,
                        heap_used_bytes: s.heap_used_bytes,
                        heap_max_bytes: s.heap_max_bytes,
                        blocked_threads: s.blocked_threads,
                    })
                },
            )?,
            performance: snapshots(
                request.performance,
                "performance",
                n,
                |s| &s.name,
                |s, name, _| {
                    Ok(core::PerformanceSnapshot {
                        name,
                        slow_queries: s.slow_queries,
                        slow_requests: s.slow_requests,
                        slow_http_calls: s.slow_http_calls,
                    })
                },
            )?,
        })
    }
}

/// Reads an `ExecutorState` from JSON the way the proto JSON mapping writes it: its name
/// (`"EXECUTOR_STATE_DEGRADED"`, or the short `"DEGRADED"`/`"degraded"`) or its number.
pub fn executor_state_json<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<i32, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i32),
        Name(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(n),
        Raw::Name(name) => {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("EXECUTOR_STATE_") {
                upper
            } else {
                format!("EXECUTOR_STATE_{upper}")
            };
            v1::ExecutorState::from_str_name(&full)
                .map(|state| state as i32)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown executor state {name:?}")))
        }
    }
}

fn severity(raw: i32, field: &str) -> Result<scoring::Severity, FieldError> {
    min_severity(raw, field)?.ok_or_else(|| FieldError::new(field, "severity is unspecified"))
}

/// Reads a wire status; UNSPECIFIED and unknown values are errors naming `field`.
pub fn status(raw: i32, field: &str) -> Result<scoring::Status, FieldError> {
    match v1::Status::try_from(raw) {
        Ok(v1::Status::Healthy) => Ok(scoring::Status::Healthy),
        Ok(v1::Status::Warning) => Ok(scoring::Status::Warning),
        Ok(v1::Status::Critical) => Ok(scoring::Status::Critical),
        _ => Err(FieldError::new(
            field,
            format!("unknown status value {raw}"),
        )),
    }
}

fn issues(list: Vec<v1::Issue>) -> Result<Vec<scoring::Issue>, FieldError> {
    list.into_iter().map(scoring::Issue::try_from).collect()
}

fn metrics(map: std::collections::BTreeMap<String, f64>) -> scoring::Metrics {
    map.into_iter().collect()
}

impl TryFrom<v1::Issue> for scoring::Issue {
    type Error = FieldError;

    /// Reads an issue from a report; a system report's `subsystem:` code prefix is dropped.
    fn try_from(issue: v1::Issue) -> Result<Self, FieldError> {
        let code = issue.code.rsplit(':').next().unwrap_or_default();
        Ok(Self {
            severity: severity(issue.severity, "issue.severity")?,
            code: code
                .parse()
                .map_err(|problem| FieldError::new("issue.code", problem))?,
            message: issue.message,
            suggested_action: issue.suggested_action.into(),
            entity: issue.entity.into(),
            entity_metrics: metrics(issue.entity_metrics),
            subsystem: issue
                .subsystem
                .parse()
                .map_err(|problem| FieldError::new("issue.subsystem", problem))?,
            source: issue.source.into(),
        })
    }
}

impl TryFrom<v1::HealthReport> for scoring::HealthReport {
    type Error = FieldError;

    fn try_from(report: v1::HealthReport) -> Result<Self, FieldError> {
        let subsystem: scoring::Subsystem = report
            .subsystem
            .parse()
            .map_err(|problem| FieldError::new("subsystem", problem))?;
        let breakdown = report.score_breakdown.unwrap_or_default();
        Ok(Self {
            subsystem,
            available: report.available,
            status: status(report.status, "status")?,
            score: report.score,
            issues: issues(report.issues)?,
            score_breakdown: scoring::ScoreBreakdown {
                base: breakdown.base,
                deductions: breakdown
                    .deductions
                    .into_iter()
                    .map(|d| {
                        Ok(scoring::Deduction {
                            code: d
                                .code
                                .parse()
                                .map_err(|problem| FieldError::new("deduction.code", problem))?,
                            subsystem,
                            severity: severity(d.severity, "deduction.severity")?,
                            penalty: d.penalty,
                            entity: d.entity.into(),
                        })
                    })
                    .collect::<Result<_, FieldError>>()?,
            },
            entities: report
                .entities
                .into_iter()
                .map(|e| {
                    Ok(scoring::EntityHealth {
                        name: e.name.into(),
                        source: e.source.into(),
                        status: status(e.status, "entity.status")?,
                        metrics: metrics(e.metrics),
                        stale: e.stale,
                    })
                })
                .collect::<Result<_, FieldError>>()?,
        })
    }
}

impl TryFrom<v1::SystemHealthReport> for scoring::SystemHealthReport {
    type Error = FieldError;

    fn try_from(report: v1::SystemHealthReport) -> Result<Self, FieldError> {
        let subsystems = report
            .subsystems
            .into_values()
            .map(|r| {
                let r = scoring::HealthReport::try_from(r)?;
                Ok((r.subsystem.key(), Arc::new(r)))
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Self {
            status: status(report.status, "status")?,
            score: report.score,
            issues: issues(report.issues)?,
            subsystems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_forms_are_the_same_bytes_on_the_wire() {
        let report = v1::SystemHealthReport {
            status: v1::Status::Critical.into(),
            score: 50,
            revision: 7,
            ..Default::default()
        };
        let built = Envelope::built(report.clone()).encode_to_vec();
        let encoded = Envelope::<v1::SystemHealthReport>::Encoded(report.encode_to_vec().into());
        assert_eq!(encoded.encode_to_vec(), built);
        assert_eq!(encoded.encoded_len(), built.len());
        let decoded = SystemReportEnvelope::decode(built.as_slice()).expect("decodes");
        assert_eq!(decoded.report(), Some(report));
        assert_eq!(
            SystemReportEnvelope::default().encode_to_vec(),
            Vec::<u8>::new()
        );
    }
}
