//! Conversions between the core's types and the wire's, in both directions (the CLI reads
//! reports back into core types to print them), and the gRPC status of each core error.

use std::sync::Arc;

use tonic::Code;

use crate::proto::{health::health_check_response::ServingStatus, v1};
use crate::{
    core::{
        ingest::{FieldError, Refusal},
        published::{Serving, Stamp, View},
        scoring::{self, CodeForm},
    },
    engine::EngineError,
    faces::NoWatchSlot,
    history,
};

impl From<FieldError> for tonic::Status {
    fn from(error: FieldError) -> Self {
        let code = match error.refusal {
            Refusal::Invalid => Code::InvalidArgument,
            Refusal::Exhausted => Code::ResourceExhausted,
            Refusal::Denied => Code::PermissionDenied,
        };
        tonic::Status::new(code, error.to_string())
    }
}

impl From<EngineError> for tonic::Status {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(field) => field.into(),
            EngineError::Stopped => tonic::Status::unavailable(error.to_string()),
        }
    }
}

impl From<NoWatchSlot> for tonic::Status {
    fn from(error: NoWatchSlot) -> Self {
        tonic::Status::resource_exhausted(error.to_string())
    }
}

impl From<Serving> for ServingStatus {
    fn from(serving: Serving) -> Self {
        match serving {
            Serving::Serving => Self::Serving,
            Serving::NotServing => Self::NotServing,
        }
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

/// Reads a request's report options (absent means the default view); the counts asked for are
/// capped at `max_listed`.
pub fn view(options: Option<&v1::ReportOptions>, max_listed: usize) -> Result<View, FieldError> {
    let Some(options) = options else {
        return Ok(View::default());
    };
    let asked = |n: u32| match n {
        0 => View::LISTED_BY_DEFAULT,
        n => usize::try_from(n).unwrap_or(usize::MAX).min(max_listed),
    };
    Ok(View {
        min_severity: min_severity(options.min_severity, "options.min_severity")?,
        max_entities: if options.omit_entities {
            0
        } else {
            asked(options.max_entities)
        },
        max_issues: asked(options.max_issues),
    })
}

fn metrics_map(metrics: &scoring::Metrics) -> std::collections::BTreeMap<String, f64> {
    metrics.iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn issue(issue: &scoring::Issue, form: CodeForm) -> v1::Issue {
    v1::Issue {
        severity: v1::Severity::from(issue.severity).into(),
        code: issue.code_in(form).into_owned(),
        message: issue.message.clone(),
        suggested_action: issue.suggested_action.to_string(),
        entity: issue.entity.to_string(),
        entity_metrics: metrics_map(&issue.entity_metrics),
        subsystem: issue.subsystem.key().to_owned(),
        source: issue.source.to_string(),
    }
}

/// A subsystem report on the wire, listed as `view` asks.
pub fn health_report(report: &scoring::HealthReport, stamp: Stamp, view: View) -> v1::HealthReport {
    let issues = view.issues(report);
    let entities = view.entities(report);
    let deductions = view.deductions(report);
    v1::HealthReport {
        subsystem: report.subsystem.key().to_owned(),
        available: report.available,
        status: v1::Status::from(report.status).into(),
        score: report.score,
        issues: issues
            .items
            .iter()
            .map(|i| issue(i, CodeForm::Bare))
            .collect(),
        issues_omitted: issues.omitted,
        score_breakdown: Some(v1::ScoreBreakdown {
            base: report.score_breakdown.base,
            deductions: deductions
                .items
                .iter()
                .map(|d| v1::Deduction {
                    code: d.code.as_str().to_owned(),
                    severity: v1::Severity::from(d.severity).into(),
                    penalty: d.penalty,
                    entity: d.entity.to_string(),
                })
                .collect(),
            deductions_omitted: deductions.omitted,
            omitted_penalty: deductions.omitted_penalty,
        }),
        entities: entities
            .items
            .iter()
            .map(|e| v1::EntityHealth {
                name: e.name.to_string(),
                source: e.source.to_string(),
                labels: e
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                status: v1::Status::from(e.status).into(),
                metrics: metrics_map(&e.metrics),
                stale: e.stale,
            })
            .collect(),
        entities_omitted: entities.omitted,
        revision: stamp.revision,
        generated_at: Some(stamp.generated_at.into()),
    }
}

/// The system report on the wire, listed as `view` asks (its own issues and every subsystem).
pub fn system_report(
    report: &scoring::SystemHealthReport,
    stamp: Stamp,
    view: View,
) -> v1::SystemHealthReport {
    let issues = view.system_issues(report);
    v1::SystemHealthReport {
        status: v1::Status::from(report.status).into(),
        score: report.score,
        issues: issues
            .items
            .iter()
            .map(|i| issue(i, CodeForm::Qualified))
            .collect(),
        issues_omitted: issues.omitted,
        subsystems: report
            .subsystems
            .iter()
            .map(|(subsystem, r)| (subsystem.key().to_owned(), health_report(r, stamp, view)))
            .collect(),
        revision: stamp.revision,
        generated_at: Some(stamp.generated_at.into()),
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
        let issues = issues(report.issues)?;
        Ok(Self {
            subsystem,
            available: report.available,
            status: status(report.status, "status")?,
            score: report.score,
            issue_digest: scoring::issue_digest(&issues),
            issues: issues.into(),
            omitted: scoring::Omitted {
                entities: report.entities_omitted,
                issues: report.issues_omitted,
                deductions: breakdown.deductions_omitted,
                penalty: breakdown.omitted_penalty,
            },
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
                    .collect::<Result<Vec<_>, FieldError>>()?
                    .into(),
            },
            entities: report
                .entities
                .into_iter()
                .map(|e| {
                    Ok(scoring::EntityHealth {
                        name: e.name.into(),
                        source: e.source.into(),
                        labels: Arc::new(e.labels.into_iter().collect()),
                        status: status(e.status, "entity.status")?,
                        metrics: metrics(e.metrics),
                        stale: e.stale,
                    })
                })
                .collect::<Result<Vec<_>, FieldError>>()?
                .into(),
        })
    }
}

impl TryFrom<v1::SystemHealthReport> for scoring::SystemHealthReport {
    type Error = FieldError;

    /// Reads a system report; its issues are its subsystems' (the wire repeats them).
    fn try_from(report: v1::SystemHealthReport) -> Result<Self, FieldError> {
        let subsystems = report
            .subsystems
            .into_values()
            .map(|r| {
                let r = scoring::HealthReport::try_from(r)?;
                Ok((r.subsystem, Arc::new(r)))
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Self {
            status: status(report.status, "status")?,
            score: report.score,
            subsystems,
            issues_omitted: report.issues_omitted,
        })
    }
}

/// The history a GetHistoryRequest asks for; errors name the field.
pub fn history_query(
    request: &v1::GetHistoryRequest,
    max_listed: usize,
) -> Result<history::Query, FieldError> {
    let name = match request.subsystem.as_str() {
        "" => None,
        "system" => Some(None),
        key => Some(Some(key.parse::<scoring::Subsystem>().map_err(
            |problem| FieldError::new("subsystem", format!("{problem} (or \"system\")")),
        )?)),
    };
    let since = match request.since {
        None => None,
        Some(since) => Some(
            std::time::SystemTime::try_from(since)
                .map_err(|_| FieldError::new("since", "not a valid timestamp"))?,
        ),
    };
    let limit = match request.limit {
        0 => history::LISTED_BY_DEFAULT,
        n => usize::try_from(n).unwrap_or(usize::MAX).min(max_listed),
    };
    Ok(history::Query { name, since, limit })
}

impl From<&history::Answer> for v1::GetHistoryResponse {
    fn from(answer: &history::Answer) -> Self {
        let codes = |codes: &[scoring::Code]| codes.iter().map(|c| c.as_str().to_owned()).collect();
        let duration = |d: std::time::Duration| prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        };
        Self {
            transitions: answer
                .transitions
                .iter()
                .map(|t| v1::StatusTransition {
                    at: Some(t.at.into()),
                    subsystem: t.key().to_owned(),
                    from: v1::Status::from(t.from).into(),
                    to: v1::Status::from(t.to).into(),
                    score: t.score.into(),
                    added_codes: codes(t.added()),
                    removed_codes: codes(t.removed()),
                })
                .collect(),
            transitions_omitted: u32::try_from(answer.omitted).unwrap_or(u32::MAX),
            uptime: answer
                .uptime
                .iter()
                .map(|(name, uptime)| v1::Uptime {
                    subsystem: name.map_or("system", scoring::Subsystem::key).to_owned(),
                    window: Some(duration(uptime.window)),
                    covered: Some(duration(uptime.covered)),
                    healthy: uptime.share(scoring::Status::Healthy),
                    warning: uptime.share(scoring::Status::Warning),
                    critical: uptime.share(scoring::Status::Critical),
                })
                .collect(),
        }
    }
}

impl TryFrom<v1::GetHistoryResponse> for history::Answer {
    type Error = FieldError;

    fn try_from(wire: v1::GetHistoryResponse) -> Result<Self, FieldError> {
        let name = |key: &str, field: &str| match key {
            "system" => Ok(None),
            key => key
                .parse::<scoring::Subsystem>()
                .map(Some)
                .map_err(|problem| FieldError::new(field, problem)),
        };
        let codes = |codes: &[String], field: &str| {
            codes
                .iter()
                .map(|code| code.parse::<scoring::Code>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|problem| FieldError::new(field, problem))
        };
        let time = |at: Option<prost_types::Timestamp>| {
            at.and_then(|at| std::time::SystemTime::try_from(at).ok())
                .ok_or_else(|| FieldError::new("transitions.at", "missing or invalid"))
        };
        let seconds = |d: Option<prost_types::Duration>| {
            std::time::Duration::from_secs(d.map_or(0, |d| d.seconds.max(0).unsigned_abs()))
        };
        let transitions = wire
            .transitions
            .into_iter()
            .map(|t| {
                let statuses = (
                    status(t.from, "transitions.from")?,
                    status(t.to, "transitions.to")?,
                );
                Ok(history::Transition::new(
                    time(t.at)?,
                    name(&t.subsystem, "transitions.subsystem")?,
                    statuses,
                    t.score,
                    &codes(&t.added_codes, "transitions.added_codes")?,
                    &codes(&t.removed_codes, "transitions.removed_codes")?,
                ))
            })
            .collect::<Result<_, FieldError>>()?;
        let uptime = wire
            .uptime
            .into_iter()
            .map(|u| {
                let covered = seconds(u.covered);
                let part = |share: f64| covered.mul_f64(share.clamp(0.0, 1.0));
                let uptime = history::Uptime {
                    window: seconds(u.window),
                    covered,
                    healthy: part(u.healthy),
                    warning: part(u.warning),
                    critical: part(u.critical),
                };
                Ok((name(&u.subsystem, "uptime.subsystem")?, uptime))
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Self {
            transitions,
            omitted: usize::try_from(wire.transitions_omitted).unwrap_or(usize::MAX),
            uptime,
        })
    }
}
