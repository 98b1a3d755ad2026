//! The probe policy: the grpc.health.v1 names (the system `""`, each subsystem, the configured
//! groups), which reports each reads, and how long a change must last before it turns. The
//! engine applies it over time; faces only read what the engine decided.
//!
//! Also `[health]`, the config that describes the policy (`HealthConfig`).
//!
//! Pure: no I/O, no clock.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::scoring::{Code, HealthReport, Issue, Status, Subsystem, SystemHealthReport};
use crate::setting::{ConfigError, Delay};

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

/// `[health]`: the probe policy as the config writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// `critical` (default): only critical reports are NOT_SERVING; `warning`: warning too.
    pub not_serving_at: NotServingAt,
    /// How long a name's reports must have been failing without a break before grpc.health.v1
    /// (and `/readyz`) say NOT_SERVING (`"30s"`); `"0s"`: at once.
    pub fail_after: Delay,
    /// `fail_after` for particular names: `{ datasources = "1m", "" = "10s" }`.
    pub fail_after_by_name: BTreeMap<String, Delay>,
    /// How long a name's report must have been serving before grpc.health.v1 (and `/readyz`)
    /// say SERVING again after NOT_SERVING (`"30s"`, `"2m"`); `"0s"` turns damping off.
    pub recover_after: Delay,
    /// `recover_after` for particular names: `{ datasources = "1m", "" = "10s" }`.
    pub recover_after_by_name: BTreeMap<String, Delay>,
    /// Probe groups: more readiness names, each over some subsystems.
    pub groups: BTreeMap<String, GroupConfig>,
    /// Readiness waits for these sources' first reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup: Option<StartupConfig>,
}

/// `[health.groups.NAME]`: a readiness name over the subsystems it includes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// The subsystem keys it reads (by default every subsystem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Subsystem keys it does not read.
    pub exclude: Vec<String>,
    /// Issue codes that never fail it.
    pub exclude_codes: Vec<Code>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_serving_at: Option<NotServingAt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_after: Option<Delay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recover_after: Option<Delay>,
}

/// `[health.startup]`: the sources readiness waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartupConfig {
    /// Source name patterns (`app-*`), each of which must match a source that has reported.
    pub sources: Vec<String>,
    /// The longest wait from the start, after which readiness goes by the reports anyway.
    pub max_wait: Delay,
}

impl HealthConfig {
    /// The probe policy these keys describe, or the first key that cannot be used.
    pub fn policy(&self) -> Result<ProbePolicy, ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid { key, problem };
        let subsystem_names = Subsystem::ALL.iter().map(|s| s.key());
        let known = |name: &str| name.is_empty() || subsystem_names.clone().any(|key| key == name);
        for (key, by_name) in [
            ("recover_after_by_name", &self.recover_after_by_name),
            ("fail_after_by_name", &self.fail_after_by_name),
        ] {
            if let Some(name) = by_name.keys().find(|name| !known(name)) {
                return Err(invalid(
                    format!("health.{key}.{name}"),
                    "not a health name (\"\" for the system, or a subsystem key)".into(),
                ));
            }
        }
        let by_name = |map: &BTreeMap<String, Delay>, name: &str, default: Delay| {
            map.get(name).copied().unwrap_or(default).0
        };
        let name = |name: &str, members: Vec<Subsystem>| ProbeName {
            name: name.into(),
            members,
            exclude_codes: BTreeSet::new(),
            not_serving_at: self.not_serving_at,
            fail_after: by_name(&self.fail_after_by_name, name, self.fail_after),
            recover_after: by_name(&self.recover_after_by_name, name, self.recover_after),
        };
        let mut names = vec![name("", Subsystem::ALL.to_vec())];
        names.extend(Subsystem::ALL.iter().map(|&s| name(s.key(), vec![s])));
        for (group_name, group) in &self.groups {
            names.push(self.group(group_name, group, known(group_name))?);
        }
        if let Some(startup) = &self.startup {
            if let Some(pattern) = startup.sources.iter().find(|p| p.is_empty()) {
                return Err(invalid(
                    "health.startup.sources".into(),
                    format!("{pattern:?} is an empty pattern"),
                ));
            }
            if startup.sources.is_empty() {
                return Err(invalid(
                    "health.startup.sources".into(),
                    "lists no source pattern (remove [health.startup] to serve at once)".into(),
                ));
            }
        }
        Ok(ProbePolicy {
            names,
            startup: self.startup.as_ref().map(|startup| Startup {
                sources: startup.sources.clone(),
                max_wait: startup.max_wait.0,
            }),
        })
    }

    fn group(
        &self,
        name: &str,
        group: &GroupConfig,
        collides: bool,
    ) -> Result<ProbeName, ConfigError> {
        let key = |field: &str| format!("health.groups.{name}{field}");
        let invalid = |key: String, problem: String| ConfigError::Invalid { key, problem };
        if collides || name == LIVENESS_SERVICE {
            return Err(invalid(
                key(""),
                format!("{name:?} is already a grpc.health.v1 name (the system, a subsystem key or {LIVENESS_SERVICE})"),
            ));
        }
        let subsystems = |field: &str, keys: &[String]| -> Result<Vec<Subsystem>, ConfigError> {
            keys.iter()
                .map(|k| {
                    k.parse::<Subsystem>()
                        .map_err(|problem| invalid(key(field), problem))
                })
                .collect()
        };
        let excluded = subsystems(".exclude", &group.exclude)?;
        let members: Vec<Subsystem> = match &group.include {
            Some(include) => {
                if !group.exclude.is_empty() {
                    return Err(invalid(
                        key(".exclude"),
                        "give include or exclude, not both".into(),
                    ));
                }
                let included = subsystems(".include", include)?;
                Subsystem::ALL
                    .iter()
                    .copied()
                    .filter(|s| included.contains(s))
                    .collect()
            }
            None => Subsystem::ALL
                .iter()
                .copied()
                .filter(|s| !excluded.contains(s))
                .collect(),
        };
        if members.is_empty() {
            return Err(invalid(key(""), "reads no subsystem".into()));
        }
        Ok(ProbeName {
            name: name.into(),
            members,
            exclude_codes: group.exclude_codes.iter().copied().collect(),
            not_serving_at: group.not_serving_at.unwrap_or(self.not_serving_at),
            fail_after: group.fail_after.unwrap_or(self.fail_after).0,
            recover_after: group.recover_after.unwrap_or(self.recover_after).0,
        })
    }
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
