//! The seeds' JSON shape of reports (camelCase keys, lowercase enum words), as a [`View`] lists
//! them: the one serializer behind `healthscore get -o json` and the HTTP face.
//!
//! healthscore adds to the seeds' keys: `source` and `subsystem` on issues, `available` and
//! `entities` on reports, and `entitiesOmitted` / `issuesOmitted` / `deductionsOmitted` /
//! `omittedPenalty` when a view left something out.
//!
//! Pure: no I/O.

use std::borrow::Cow;

use serde::{ser::SerializeMap, Serialize, Serializer};

use super::{
    published::View,
    scoring::{CodeForm, HealthReport, Issue, SystemHealthReport},
};

/// `report` as JSON, listed as `view` asks.
pub fn report(report: &HealthReport, view: View) -> impl Serialize + '_ {
    Report { report, view }
}

/// `system` as JSON, listed as `view` asks (for its own issue list and every subsystem).
pub fn system(system: &SystemHealthReport, view: View) -> impl Serialize + '_ {
    System { system, view }
}

struct Report<'a> {
    report: &'a HealthReport,
    view: View,
}

struct System<'a> {
    system: &'a SystemHealthReport,
    view: View,
}

/// The seed's issue object; `source` is healthscore's addition (which app instance).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssueJson<'a> {
    severity: &'static str,
    code: Cow<'a, str>,
    message: &'a str,
    suggested_action: &'a str,
    entity: &'a str,
    entity_metrics: &'a super::scoring::Metrics,
    source: &'a str,
}

fn issues<'a>(issues: &'a [&'a Issue], form: CodeForm) -> impl Serialize + 'a {
    Issues { issues, form }
}

struct Issues<'a> {
    issues: &'a [&'a Issue],
    form: CodeForm,
}

impl Serialize for Issues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.issues.iter().map(|issue| IssueJson {
            severity: issue.severity.as_str(),
            code: issue.code_in(self.form),
            message: &issue.message,
            suggested_action: &issue.suggested_action,
            entity: &issue.entity,
            entity_metrics: &issue.entity_metrics,
            source: &issue.source,
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeductionJson<'a> {
    code: &'a str,
    severity: &'static str,
    penalty: u32,
    entity: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BreakdownJson<'a> {
    base: u32,
    deductions: Vec<DeductionJson<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    deductions_omitted: u32,
    #[serde(skip_serializing_if = "is_zero")]
    omitted_penalty: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (report, view) = (self.report, self.view);
        let listed_issues = view.issues(report);
        let entities = view.entities(report);
        let deductions = view.deductions(report);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("subsystem", &report.subsystem)?;
        map.serialize_entry("available", &report.available)?;
        map.serialize_entry("status", &report.status)?;
        map.serialize_entry("score", &report.score)?;
        map.serialize_entry("issues", &issues(&listed_issues.items, CodeForm::Bare))?;
        map.serialize_entry(
            "scoreBreakdown",
            &BreakdownJson {
                base: report.score_breakdown.base,
                deductions: deductions
                    .items
                    .iter()
                    .map(|d| DeductionJson {
                        code: d.code.as_str(),
                        severity: d.severity.as_str(),
                        penalty: d.penalty,
                        entity: &d.entity,
                    })
                    .collect(),
                deductions_omitted: deductions.omitted,
                omitted_penalty: deductions.omitted_penalty,
            },
        )?;
        map.serialize_entry("entities", &entities.items)?;
        if entities.omitted > 0 {
            map.serialize_entry("entitiesOmitted", &entities.omitted)?;
        }
        if listed_issues.omitted > 0 {
            map.serialize_entry("issuesOmitted", &listed_issues.omitted)?;
        }
        map.end()
    }
}

impl Serialize for System<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (system, view) = (self.system, self.view);
        let listed = view.system_issues(system);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("status", &system.status)?;
        map.serialize_entry("score", &system.score)?;
        map.serialize_entry("issues", &issues(&listed.items, CodeForm::Qualified))?;
        if listed.omitted > 0 {
            map.serialize_entry("issuesOmitted", &listed.omitted)?;
        }
        let subsystems: std::collections::BTreeMap<_, _> = system
            .subsystems
            .iter()
            .map(|(subsystem, r)| (subsystem.key(), Report { report: r, view }))
            .collect();
        map.serialize_entry("subsystems", &subsystems)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::scoring::{
        snapshot::{ExecutorSnapshot, ExecutorState},
        subsystem_report, system_report, Observed, Policy,
    };

    #[test]
    fn system_json_prefixes_codes_with_the_subsystem() {
        let source: Arc<str> = "app-1".into();
        let executor = ExecutorSnapshot {
            name: "workers".into(),
            state: ExecutorState::Degraded,
            active: 0,
            max_threads: 4,
            queued: 0,
            queue_capacity: 0,
        };
        let observed = Observed {
            source: &source,
            current: &executor,
            previous: None,
            stale: None,
        };
        let executors = Arc::new(subsystem_report([observed], &Policy::default()));
        let system = system_report([&executors]);
        let json =
            serde_json::to_value(super::system(&system, View::default())).expect("serializable");
        assert_eq!(json["issues"][0]["code"], "executors:EXECUTOR_DEGRADED");
        assert_eq!(
            json["subsystems"]["executors"]["issues"][0]["code"],
            "EXECUTOR_DEGRADED"
        );
        assert_eq!(json["status"], "warning");
    }
}
