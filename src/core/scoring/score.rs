//! From evaluated entities to a report: issues, penalties, score, status; and the weakest-link
//! system aggregate.

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use super::{
    catalog::Code,
    model::{
        issue_digest, BySubsystem, Deduction, EntityHealth, HealthReport, Issue, Omitted, Runs,
        ScoreBreakdown, SourceLabels, Status, Subsystem, SystemHealthReport,
    },
    policy::Policy,
    snapshot::Snapshot,
};

/// One entity as the store holds it: its latest snapshot, the one before (for counter windows)
/// and whether its source is past its TTL.
pub struct Observed<'a, S> {
    pub source: &'a Arc<str>,
    pub current: &'a S,
    pub previous: Option<&'a S>,
    pub stale: Option<Staleness>,
}

/// How late a stale source is, for SOURCE_STALE's message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Staleness {
    pub silent_secs: f64,
    pub ttl_secs: f64,
}

/// One source's entities of one subsystem, evaluated: their report rows, the issues they raise
/// and those issues' deductions (each in report order), with the sums a report needs. The store
/// keeps one per source and subsystem, made when the source pushes, so a report is assembled
/// from these without running a rule or copying an item.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    pub entities: Arc<[EntityHealth]>,
    pub issues: Arc<[Issue]>,
    pub deductions: Arc<[Deduction]>,
    /// The sum of the deductions' penalties.
    pub penalty: u32,
    /// The worst status the issues impose.
    pub status: Status,
    /// `issue_digest` of the issues.
    pub digest: u64,
}

impl Evaluated {
    fn new(mut issues: Vec<Issue>, mut entities: Vec<EntityHealth>, policy: &Policy) -> Self {
        issues.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        // The store yields entities sorted by name, so this only checks the order.
        entities.sort_by(|a, b| a.name.cmp(&b.name));
        let deductions: Vec<Deduction> = issues
            .iter()
            .map(|issue| Deduction {
                code: issue.code,
                subsystem: issue.subsystem,
                severity: issue.severity,
                penalty: policy.penalty(issue.code, issue.severity),
                entity: issue.entity.clone(),
            })
            .collect();
        Self {
            penalty: deductions
                .iter()
                .fold(0u32, |sum, d| sum.saturating_add(d.penalty)),
            status: issues
                .iter()
                .map(|issue| Status::of(issue.severity))
                .max()
                .unwrap_or(Status::Healthy),
            digest: issue_digest(&issues),
            entities: entities.into(),
            issues: issues.into(),
            deductions: deductions.into(),
        }
    }
}

/// Runs the subsystem's rules on one source's entities (current snapshot, previous snapshot).
pub fn evaluate<'a, S: Snapshot + 'a>(
    source: &Arc<str>,
    labels: &SourceLabels,
    entities: impl IntoIterator<Item = (&'a S, Option<&'a S>)>,
    policy: &Policy,
) -> Evaluated {
    let subsystem = S::SUBSYSTEM;
    let entities = entities.into_iter();
    let mut issues = Vec::new();
    // Sized up front: for thousands of entities, growing this Vec dominated the cost.
    let mut rows = Vec::with_capacity(entities.size_hint().0);
    for (current, previous) in entities {
        let evaluation = current.evaluate(previous, &policy.thresholds);
        let name = current.name();
        let mut status = Status::Healthy;
        for finding in evaluation.findings {
            let severity = finding.code.severity();
            status = status.max(Status::of(severity));
            issues.push(Issue {
                severity,
                code: finding.code,
                message: finding.message,
                suggested_action: Cow::Borrowed(finding.code.entry().suggested_action),
                entity: name.clone(),
                entity_metrics: finding
                    .reads
                    .iter()
                    .filter_map(|&key| {
                        let value = evaluation.metrics.get(key);
                        // A misspelt read would drop out of the issue unseen.
                        debug_assert!(
                            value.is_some(),
                            "{} reads {key}, which is not set",
                            finding.code
                        );
                        value.map(|value| (key, value))
                    })
                    .collect(),
                subsystem,
                source: source.clone(),
            });
        }
        rows.push(EntityHealth {
            name: name.clone(),
            source: source.clone(),
            labels: labels.clone(),
            status,
            metrics: evaluation.metrics,
            stale: false,
        });
    }
    Evaluated::new(issues, rows, policy)
}

/// What `evaluated` shows while its source is stale: the last values, marked stale and
/// critical, and one SOURCE_STALE instead of the rules' issues (the values are no longer true).
pub fn stale(
    evaluated: &Evaluated,
    subsystem: Subsystem,
    source: &Arc<str>,
    staleness: Staleness,
    policy: &Policy,
) -> Evaluated {
    let entities: Vec<EntityHealth> = evaluated
        .entities
        .iter()
        .map(|entity| EntityHealth {
            status: Status::Critical,
            stale: true,
            ..entity.clone()
        })
        .collect();
    let issues = vec![stale_issue(subsystem, source, staleness)];
    Evaluated::new(issues, entities, policy)
}

/// Evaluates and scores one subsystem's entities, grouped by source: what the store does over
/// time, in one call (for tests and benchmarks).
pub fn subsystem_report<'a, S: Snapshot + 'a>(
    observed: impl IntoIterator<Item = Observed<'a, S>>,
    policy: &Policy,
) -> HealthReport {
    type Group<'a, S> = (Vec<(&'a S, Option<&'a S>)>, Option<Staleness>);
    let mut sources: BTreeMap<&Arc<str>, Group<'a, S>> = BTreeMap::new();
    for entity in observed {
        let (entities, stale) = sources.entry(entity.source).or_default();
        entities.push((entity.current, entity.previous));
        *stale = stale.or(entity.stale);
    }
    let parts: Vec<Evaluated> = sources
        .into_iter()
        .map(|(source, (entities, staleness))| {
            let evaluated = evaluate(source, &SourceLabels::default(), entities, policy);
            match staleness {
                Some(staleness) => stale(&evaluated, S::SUBSYSTEM, source, staleness, policy),
                None => evaluated,
            }
        })
        .collect();
    assemble(S::SUBSYSTEM, &parts)
}

/// Scores one subsystem from its sources' evaluations, given in source order. Costs one step
/// per source: items are shared, not copied.
pub fn assemble<'a>(
    subsystem: Subsystem,
    parts: impl IntoIterator<Item = &'a Evaluated>,
) -> HealthReport {
    let (mut entities, mut issues, mut deductions) = (Vec::new(), Vec::new(), Vec::new());
    let (mut penalty, mut status, mut digest) = (0u32, Status::Healthy, 0u64);
    for part in parts {
        entities.push(part.entities.clone());
        issues.push(part.issues.clone());
        deductions.push(part.deductions.clone());
        penalty = penalty.saturating_add(part.penalty);
        status = status.max(part.status);
        digest = digest.wrapping_add(part.digest);
    }
    let entities = Runs::from_runs(entities);
    HealthReport {
        subsystem,
        available: !entities.is_empty(),
        status,
        score: ScoreBreakdown::BASE.saturating_sub(penalty),
        issues: Runs::from_runs(issues),
        score_breakdown: ScoreBreakdown {
            base: ScoreBreakdown::BASE,
            deductions: Runs::from_runs(deductions),
        },
        entities,
        issue_digest: digest,
        omitted: Omitted::default(),
    }
}

/// `report` carrying `issues` as well (the fleet guard's, which no rule raises): their
/// deductions come off the score, and the status and digest take them in.
pub fn with_issues(report: &HealthReport, issues: Vec<Issue>, policy: &Policy) -> HealthReport {
    let extra = Evaluated::new(issues, Vec::new(), policy);
    HealthReport {
        subsystem: report.subsystem,
        available: report.available,
        status: report.status.max(extra.status),
        score: report.score.saturating_sub(extra.penalty),
        issues: report.issues.with(extra.issues),
        score_breakdown: ScoreBreakdown {
            base: report.score_breakdown.base,
            deductions: report.score_breakdown.deductions.with(extra.deductions),
        },
        entities: report.entities.clone(),
        issue_digest: report.issue_digest.wrapping_add(extra.digest),
        omitted: report.omitted,
    }
}

fn stale_issue(subsystem: Subsystem, source: &Arc<str>, staleness: Staleness) -> Issue {
    let code = Code::SourceStale;
    Issue {
        severity: code.severity(),
        code,
        message: format!(
            "Source '{source}' has not reported {subsystem} for {:.0}s (TTL {:.0}s)",
            staleness.silent_secs, staleness.ttl_secs
        ),
        suggested_action: Cow::Borrowed(code.entry().suggested_action),
        entity: source.clone(),
        entity_metrics: [
            ("silentSeconds", staleness.silent_secs.round()),
            ("ttlSeconds", staleness.ttl_secs),
        ]
        .into_iter()
        .collect(),
        subsystem,
        source: source.clone(),
    }
}

/// The weakest-link aggregate: the lowest score of the available subsystems (100 if none), the
/// worst status, and (through `issues()`) every subsystem's issues in report order.
pub fn system_report<'a>(
    reports: impl IntoIterator<Item = &'a Arc<HealthReport>>,
) -> SystemHealthReport {
    let subsystems: BySubsystem<Arc<HealthReport>> = reports
        .into_iter()
        .map(|report| (report.subsystem, report.clone()))
        .collect();
    let score = subsystems
        .values()
        .filter(|r| r.available)
        .map(|r| r.score)
        .min()
        .unwrap_or(ScoreBreakdown::BASE);
    let status = subsystems
        .values()
        .map(|r| r.status)
        .max()
        .unwrap_or(Status::Healthy);
    SystemHealthReport {
        status,
        score,
        subsystems,
        issues_omitted: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scoring::{
        model::Severity,
        snapshot::{DatasourceSnapshot, PerformanceSnapshot, WatcherSnapshot},
    };

    fn source() -> Arc<str> {
        "app-1".into()
    }

    fn pool(name: &str, active: u32, max: u32, threads_awaiting: u32) -> DatasourceSnapshot {
        DatasourceSnapshot {
            name: name.into(),
            started: true,
            active,
            idle: 0,
            max,
            threads_awaiting,
        }
    }

    fn report_of<S: Snapshot>(snapshots: &[S], policy: &Policy) -> HealthReport {
        let source = source();
        subsystem_report(
            snapshots.iter().map(|s| Observed {
                source: &source,
                current: s,
                previous: None,
                stale: None,
            }),
            policy,
        )
    }

    #[test]
    fn penalties_follow_severity() {
        let policy = Policy::default();
        let warning = report_of(&[pool("a", 85, 100, 0)], &policy);
        assert_eq!((warning.status, warning.score), (Status::Warning, 75));
        let critical = report_of(&[pool("a", 99, 100, 0)], &policy);
        assert_eq!((critical.status, critical.score), (Status::Critical, 50));
        let both = report_of(&[pool("a", 99, 100, 3)], &policy);
        assert_eq!((both.status, both.score), (Status::Critical, 25));
    }

    #[test]
    fn per_code_penalty_override_is_used() {
        let mut policy = Policy::default();
        policy
            .penalties
            .codes
            .insert(Code::DsPoolHighUtilization, 15);
        let report = report_of(&[pool("mainDB", 28, 32, 0)], &policy);
        assert_eq!(report.score, 85);
        assert_eq!(
            report
                .score_breakdown
                .deductions
                .iter()
                .next()
                .map(|d| d.penalty),
            Some(15)
        );
    }

    #[test]
    fn score_clamps_at_zero() {
        let pools: Vec<_> = (0..3).map(|i| pool(&format!("p{i}"), 99, 100, 1)).collect();
        let report = report_of(&pools, &Policy::default());
        assert_eq!(report.score, 0);
        assert_eq!(report.score_breakdown.deductions.len(), 6);
    }

    #[test]
    fn info_issues_cost_points_but_never_change_status() {
        let perf = PerformanceSnapshot {
            name: "api".into(),
            slow_queries: 3,
            slow_requests: 0,
            slow_http_calls: 1,
        };
        let report = report_of(&[perf], &Policy::default());
        assert_eq!(report.status, Status::Healthy);
        assert_eq!(report.score, 90);
        assert!(report.issues.iter().all(|i| i.severity == Severity::Info));
    }

    #[test]
    fn subsystem_without_entities_is_unavailable_and_healthy() {
        let report = report_of::<DatasourceSnapshot>(&[], &Policy::default());
        assert_eq!(report, HealthReport::unavailable(Subsystem::Datasources));
        assert!(!report.available);
        assert_eq!((report.status, report.score), (Status::Healthy, 100));
    }

    #[test]
    fn healthy_entities_are_listed_too() {
        let report = report_of(
            &[pool("a", 1, 10, 0), pool("b", 99, 100, 0)],
            &Policy::default(),
        );
        let names: Vec<_> = report
            .entities
            .iter()
            .map(|e| (&*e.name, e.status))
            .collect();
        assert_eq!(names, vec![("a", Status::Healthy), ("b", Status::Critical)]);
    }

    #[test]
    fn stale_source_raises_one_source_stale_and_skips_rules() {
        let source = source();
        let pools = [pool("a", 99, 100, 0), pool("b", 99, 100, 0)];
        let staleness = Staleness {
            silent_secs: 45.0,
            ttl_secs: 30.0,
        };
        let report = subsystem_report(
            pools.iter().map(|s| Observed {
                source: &source,
                current: s,
                previous: None,
                stale: Some(staleness),
            }),
            &Policy::default(),
        );
        let codes: Vec<_> = report.issues.iter().map(|i| i.code).collect();
        assert_eq!(codes, vec![Code::SourceStale]);
        assert_eq!(report.status, Status::Critical);
        assert!(report.entities.iter().all(|e| e.stale));
        assert_eq!(
            report.issues.iter().next().expect("an issue").message,
            "Source 'app-1' has not reported datasources for 45s (TTL 30s)"
        );
    }

    #[test]
    fn issues_are_ordered_worst_first_then_code_then_entity() {
        let report = report_of(
            &[
                pool("b", 85, 100, 1),
                pool("a", 99, 100, 0),
                pool("c", 85, 100, 0),
            ],
            &Policy::default(),
        );
        let order: Vec<_> = report
            .issues
            .iter()
            .map(|i| (i.code.as_str(), &*i.entity))
            .collect();
        assert_eq!(
            order,
            vec![
                ("DS_POOL_SATURATED", "a"),
                ("DS_POOL_HIGH_UTILIZATION", "b"),
                ("DS_POOL_HIGH_UTILIZATION", "c"),
                ("DS_POOL_THREADS_AWAITING", "b"),
            ]
        );
    }

    #[test]
    fn system_takes_weakest_score_and_worst_status_and_prefixes_nothing_in_core() {
        let policy = Policy::default();
        let pools = Arc::new(report_of(&[pool("mainDB", 85, 100, 0)], &policy));
        let watchers = Arc::new(report_of(
            &[WatcherSnapshot {
                name: "cfg".into(),
                running: true,
                consecutive_errors: 12,
            }],
            &policy,
        ));
        let caches = Arc::new(HealthReport::unavailable(Subsystem::Caches));
        let system = system_report([&pools, &watchers, &caches]);
        assert_eq!(system.status, Status::Critical);
        assert_eq!(system.score, 50);
        assert_eq!(system.subsystems.values().count(), 3);
        let codes: Vec<_> = system.issues().map(|i| (i.subsystem, i.code)).collect();
        assert_eq!(
            codes,
            vec![
                (Subsystem::Watchers, Code::WatcherHighErrors),
                (Subsystem::Datasources, Code::DsPoolHighUtilization),
            ]
        );
    }

    #[test]
    fn system_of_unavailable_subsystems_is_healthy_100() {
        let empty = Arc::new(HealthReport::unavailable(Subsystem::Host));
        let system = system_report([&empty]);
        assert_eq!((system.status, system.score), (Status::Healthy, 100));
        let none = system_report([]);
        assert_eq!((none.status, none.score), (Status::Healthy, 100));
    }

    #[test]
    fn a_report_over_many_sources_lists_items_in_one_order_whatever_the_runs() {
        let policy = Policy::default();
        let sources: Vec<Arc<str>> = ["b-app", "a-app", "c-app"].map(Arc::from).to_vec();
        let pools: Vec<DatasourceSnapshot> = (0..12)
            .map(|i| {
                pool(
                    &format!("p{}", i % 4),
                    [99, 85, 10][i % 3],
                    100,
                    (i % 2) as u32,
                )
            })
            .collect();
        let observed = pools.iter().enumerate().map(|(i, current)| Observed {
            source: &sources[i % 3],
            current,
            previous: None,
            stale: None,
        });
        let report = subsystem_report(observed, &policy);
        let issues: Vec<&Issue> = report.issues.iter().collect();
        assert!(issues.is_sorted_by(|a, b| a.order_key() <= b.order_key()));
        assert!(issues.len() > 10, "{}", issues.len());
        let entities: Vec<_> = report
            .entities
            .iter()
            .map(|e| (&e.source, &e.name))
            .collect();
        let mut sorted = entities.clone();
        sorted.sort();
        assert_eq!(entities, sorted);
        let deductions: Vec<_> = report
            .score_breakdown
            .deductions
            .iter()
            .map(|d| (d.code, d.entity.clone()))
            .collect();
        let from_issues: Vec<_> = report
            .issues
            .iter()
            .map(|i| (i.code, i.entity.clone()))
            .collect();
        assert_eq!(deductions, from_issues);
        assert_eq!(report.score, report.score_breakdown.score());
    }
}
