//! The report types, shaped like the reference seed's JSON (camelCase keys, lowercase enum words).

use std::{borrow::Cow, fmt, str::FromStr, sync::Arc};

use serde::{ser::SerializeMap, Serialize, Serializer};

use super::catalog::Code;
pub use crate::core::subsystem::Subsystem;

/// How much an issue matters. Ordered: `Info < Warning < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            _ => Err(format!(
                "unknown severity {s:?} (expected info, warning or critical)"
            )),
        }
    }
}

/// The verdict of a report. Ordered: `Healthy < Warning < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Warning,
    Critical,
}

impl Status {
    /// The status issues of this severity impose; info imposes nothing.
    pub fn of(severity: Severity) -> Self {
        match severity {
            Severity::Info => Self::Healthy,
            Severity::Warning => Self::Warning,
            Severity::Critical => Self::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Named numbers, in the order a rule wrote them. Serializes as a JSON object. Values are always
/// finite: rules skip a ratio whose denominator is zero rather than write NaN or infinity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics(Vec<(Cow<'static, str>, f64)>);

impl Metrics {
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Adds a value under a key not set yet (rules write each key once; checked in debug
    /// builds, as a search on every write cost a measurable share of scoring).
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: f64) {
        let key = key.into();
        debug_assert!(value.is_finite(), "rules only write finite metrics");
        debug_assert!(self.get(&key).is_none(), "metric {key} written twice");
        self.0.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Collects distinct keys (a map's entries, or a rule's reads).
impl<K: Into<Cow<'static, str>>> FromIterator<(K, f64)> for Metrics {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

/// One problem in one entity, with what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub suggested_action: Cow<'static, str>,
    pub entity: Arc<str>,
    pub entity_metrics: Metrics,
    pub subsystem: Subsystem,
    /// The app instance that reported the entity ("host" for the host sampler).
    pub source: Arc<str>,
}

impl Issue {
    /// What identifies an issue across recomputations: a watcher is told when this set changes,
    /// not when a number in the message moves.
    pub fn identity(&self) -> (Severity, Subsystem, Code, &str, &str) {
        (
            self.severity,
            self.subsystem,
            self.code,
            &self.entity,
            &self.source,
        )
    }

    /// The deterministic report order: critical first, then subsystem, code, entity, source.
    pub fn order_key(&self) -> impl Ord + '_ {
        (
            std::cmp::Reverse(self.severity),
            self.subsystem,
            self.code.as_str(),
            &*self.entity,
            &*self.source,
        )
    }
}

/// One line of a score's arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deduction {
    pub code: Code,
    pub subsystem: Subsystem,
    pub severity: Severity,
    pub penalty: u32,
    pub entity: Arc<str>,
}

/// How a score was computed: `score = max(0, base - sum(penalties))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreBreakdown {
    pub base: u32,
    pub deductions: Vec<Deduction>,
}

impl ScoreBreakdown {
    pub const BASE: u32 = 100;

    pub fn score(&self) -> u32 {
        let total: u32 = self
            .deductions
            .iter()
            .fold(0u32, |sum, d| sum.saturating_add(d.penalty));
        self.base.saturating_sub(total)
    }
}

/// One entity a report evaluated, healthy or not.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityHealth {
    pub name: Arc<str>,
    pub source: Arc<str>,
    pub status: Status,
    pub metrics: Metrics,
    pub stale: bool,
}

/// The health of one subsystem.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub subsystem: Subsystem,
    pub available: bool,
    pub status: Status,
    pub score: u32,
    #[serde(serialize_with = "plain_issues")]
    pub issues: Vec<Issue>,
    pub score_breakdown: ScoreBreakdown,
    pub entities: EntityList,
}

/// A report's entities in (source, name) order, held as the per-source runs the store
/// evaluated, so a report over many sources shares their rows instead of copying them.
#[derive(Clone, Debug, Default)]
pub struct EntityList(Vec<Arc<[EntityHealth]>>);

impl EntityList {
    /// The list of `runs`, in the order given; empty runs are dropped.
    pub fn from_runs(runs: impl IntoIterator<Item = Arc<[EntityHealth]>>) -> Self {
        Self(runs.into_iter().filter(|run| !run.is_empty()).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &EntityHealth> {
        self.0.iter().flat_map(|run| run.iter())
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|run| run.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<EntityHealth>> for EntityList {
    fn from(entities: Vec<EntityHealth>) -> Self {
        Self::from_runs([Arc::from(entities)])
    }
}

impl<'a> IntoIterator for &'a EntityList {
    type Item = &'a EntityHealth;
    type IntoIter = Box<dyn Iterator<Item = &'a EntityHealth> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Equal when the entities are, however they are split into runs.
impl PartialEq for EntityList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Serialize for EntityList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl HealthReport {
    /// The report of a subsystem nothing reports into.
    pub fn unavailable(subsystem: Subsystem) -> Self {
        Self {
            subsystem,
            available: false,
            status: Status::Healthy,
            score: ScoreBreakdown::BASE,
            issues: Vec::new(),
            score_breakdown: ScoreBreakdown {
                base: ScoreBreakdown::BASE,
                deductions: Vec::new(),
            },
            entities: EntityList::default(),
        }
    }
}

/// The weakest-link view over subsystems. Its issues serialize with `subsystem:` code prefixes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemHealthReport {
    pub status: Status,
    pub score: u32,
    #[serde(serialize_with = "prefixed_issues")]
    pub issues: Vec<Issue>,
    pub subsystems: std::collections::BTreeMap<&'static str, Arc<HealthReport>>,
}

/// The seed's issue object; `source` is healthscore's addition (which app instance).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssueJson<'a> {
    severity: Severity,
    code: Cow<'a, str>,
    message: &'a str,
    suggested_action: &'a str,
    entity: &'a str,
    entity_metrics: &'a Metrics,
    source: &'a str,
}

fn issues_json<S: Serializer>(
    issues: &[Issue],
    prefixed: bool,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(issues.iter().map(|issue| IssueJson {
        severity: issue.severity,
        code: if prefixed {
            Cow::Owned(format!("{}:{}", issue.subsystem, issue.code))
        } else {
            Cow::Borrowed(issue.code.as_str())
        },
        message: &issue.message,
        suggested_action: &issue.suggested_action,
        entity: &issue.entity,
        entity_metrics: &issue.entity_metrics,
        source: &issue.source,
    }))
}

fn plain_issues<S: Serializer>(issues: &[Issue], serializer: S) -> Result<S::Ok, S::Error> {
    issues_json(issues, false, serializer)
}

fn prefixed_issues<S: Serializer>(issues: &[Issue], serializer: S) -> Result<S::Ok, S::Error> {
    issues_json(issues, true, serializer)
}

impl Serialize for ScoreBreakdown {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct DeductionJson<'a> {
            code: &'a str,
            severity: Severity,
            penalty: u32,
            entity: &'a str,
        }
        #[derive(Serialize)]
        struct BreakdownJson<'a, I: Serialize> {
            base: u32,
            deductions: &'a I,
        }
        let deductions: Vec<_> = self
            .deductions
            .iter()
            .map(|d| DeductionJson {
                code: d.code.as_str(),
                severity: d.severity,
                penalty: d.penalty,
                entity: &d.entity,
            })
            .collect();
        BreakdownJson {
            base: self.base,
            deductions: &deductions,
        }
        .serialize(serializer)
    }
}
