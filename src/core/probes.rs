//! The probe policy: the grpc.health.v1 names (the system `""`, each subsystem, the configured
//! groups), which reports each reads, and how long a change must last before it turns. The
//! engine applies it over time; faces only read what the engine decided.
//!
//! Pure: no I/O, no clock.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::scoring::{Code, HealthReport, Issue, Status, Subsystem, SystemHealthReport};

/// The grpc.health.v1 name that is SERVING while the process is up (a liveness target).
pub const LIVENESS_SERVICE: &str = "healthscore.v1.HealthReports";

/// The report status from which a name fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotServingAt {
    Warning,
    #[default]
    Critical,
}

impl NotServingAt {
    pub fn serves(self, status: Status) -> bool {
        match self {
            Self::Warning => status == Status::Healthy,
            Self::Critical => status != Status::Critical,
        }
    }
}

/// One readiness name: the reports it reads and how its verdict is made from them.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeName {
    pub name: Arc<str>,
    /// The subsystems whose reports decide this name, in table order.
    pub members: Vec<Subsystem>,
    /// Issue codes that never fail this name.
    pub exclude_codes: BTreeSet<Code>,
    pub not_serving_at: NotServingAt,
    /// How long its reports must have been failing without a break before it is NOT_SERVING.
    pub fail_after: Duration,
    /// How long its reports must have been serving before it is SERVING again.
    pub recover_after: Duration,
}

impl ProbeName {
    /// Whether `report` (one of the members') fails this name.
    pub fn fails(&self, report: &HealthReport) -> bool {
        if self.exclude_codes.is_empty() {
            // A report's status is the worst its issues impose: no need to walk them.
            return !self.not_serving_at.serves(report.status);
        }
        report.issues.iter().any(|issue| self.counts(issue))
    }

    /// The members whose reports in `system` fail this name, in table order.
    pub fn failing_members(&self, system: &SystemHealthReport) -> Vec<Subsystem> {
        self.members
            .iter()
            .copied()
            .filter(|member| {
                system
                    .subsystems
                    .get(*member)
                    .is_some_and(|report| self.fails(report))
            })
            .collect()
    }

    /// The distinct codes by which `report` fails this name, in report order.
    pub fn failing_codes(&self, report: &HealthReport) -> Vec<Code> {
        let mut codes = Vec::new();
        for issue in report.issues.iter().filter(|issue| self.counts(issue)) {
            if !codes.contains(&issue.code) {
                codes.push(issue.code);
            }
        }
        codes
    }

    fn counts(&self, issue: &Issue) -> bool {
        // The fleet guard's own issues describe a verdict; they are never a reason for one.
        !matches!(
            issue.code,
            Code::FleetCorrelated | Code::FleetViewUnavailable
        ) && !self.exclude_codes.contains(&issue.code)
            && !self.not_serving_at.serves(Status::of(issue.severity))
    }
}

/// What must have reported before the readiness names may serve.
#[derive(Clone, Debug, PartialEq)]
pub struct Startup {
    /// Source name patterns (`app-*`); each must match a source that has reported.
    pub sources: Vec<String>,
    /// The longest wait from the start, after which the names serve anyway.
    pub max_wait: Duration,
}

/// Every readiness name, and the startup gate in front of them.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbePolicy {
    /// `""`, then each subsystem, then the groups.
    pub names: Vec<ProbeName>,
    pub startup: Option<Startup>,
}

impl ProbePolicy {
    pub fn name(&self, name: &str) -> Option<&ProbeName> {
        self.names.iter().find(|probe| &*probe.name == name)
    }
}

/// Whether the source pattern `pattern` matches `name`: `*` matches any run of characters;
/// everything else matches itself.
pub fn matches_source(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars_anywhere() {
        for (pattern, name, expected) in [
            ("orders-*", "orders-1", true),
            ("orders-*", "orders-", true),
            ("orders-*", "billing-1", false),
            ("orders", "orders", true),
            ("orders", "orders-1", false),
            ("*-eu", "orders-eu", true),
            ("*-eu", "orders-us", false),
            ("a*b*c", "a-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("ab*ba", "aba", false),
            ("*", "anything", true),
        ] {
            assert_eq!(matches_source(pattern, name), expected, "{pattern} {name}");
        }
    }
}
