//! The report types, shaped like the reference seed's JSON (camelCase keys, lowercase enum words).

use std::{
    borrow::Cow,
    collections::{hash_map::DefaultHasher, BTreeMap, BinaryHeap},
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use serde::{ser::SerializeMap, Serialize, Serializer};

pub use super::catalog::{Code, Severity};
pub use crate::core::subsystem::{BySubsystem, Subsystem};

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

/// How a list writes its issues' codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeForm {
    /// `DS_POOL_SATURATED`: a subsystem's report, where the subsystem goes without saying.
    Bare,
    /// `datasources:DS_POOL_SATURATED`: the system's report, where subsystems' issues mix.
    Qualified,
}

impl Issue {
    /// The issue's code as `form` writes it.
    pub fn code_in(&self, form: CodeForm) -> Cow<'static, str> {
        match form {
            CodeForm::Bare => Cow::Borrowed(self.code.as_str()),
            CodeForm::Qualified => Cow::Owned(format!("{}:{}", self.subsystem, self.code)),
        }
    }

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

/// A digest of a set of issues' identities, independent of their order: the sum of each
/// identity's hash. Reports carry theirs, so a watcher's verdict needs no pass over the issues.
pub fn issue_digest<'a>(issues: impl IntoIterator<Item = &'a Issue>) -> u64 {
    issues.into_iter().fold(0u64, |digest, issue| {
        let mut hasher = DefaultHasher::new();
        issue.identity().hash(&mut hasher);
        digest.wrapping_add(hasher.finish())
    })
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
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreBreakdown {
    pub base: u32,
    /// One per issue, in the issues' order.
    pub deductions: Runs<Deduction>,
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

/// The labels a source carries, shown with its entities: a `[[scrape]]`'s `labels` and a
/// discovered target group's (Prometheus' `__` meta labels left out). Shared by every row of
/// the source.
pub type SourceLabels = Arc<BTreeMap<String, String>>;

/// One entity a report evaluated, healthy or not.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityHealth {
    pub name: Arc<str>,
    pub source: Arc<str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: SourceLabels,
    pub status: Status,
    pub metrics: Metrics,
    pub stale: bool,
}

/// The health of one subsystem. Its JSON form is `core::json`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    pub subsystem: Subsystem,
    pub available: bool,
    pub status: Status,
    pub score: u32,
    pub issues: Runs<Issue>,
    pub score_breakdown: ScoreBreakdown,
    pub entities: Runs<EntityHealth>,
    /// `issue_digest` of the issues, for watchers' verdicts.
    pub issue_digest: u64,
    /// What an answer this report was read from left out (zero for reports the engine built).
    pub omitted: Omitted,
}

/// Items an answer left out, as it said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Omitted {
    pub entities: u32,
    pub issues: u32,
    pub deductions: u32,
    /// The points the left-out deductions took.
    pub penalty: u32,
}

/// Items of a report (entities, issues, deductions) held as the per-source runs the store
/// evaluated, each run already in report order, so that a report over many sources shares
/// them instead of copying them. Reading merges the runs; between equal keys the earlier run
/// (the earlier source) comes first.
#[derive(Clone, Debug)]
pub struct Runs<T>(Vec<Arc<[T]>>);

/// The order items are listed in within a report.
pub trait ReportOrder {
    fn report_key(&self) -> impl Ord + '_;
}

impl ReportOrder for EntityHealth {
    fn report_key(&self) -> impl Ord + '_ {
        (&*self.source, &*self.name)
    }
}

impl ReportOrder for Issue {
    fn report_key(&self) -> impl Ord + '_ {
        self.order_key()
    }
}

/// A deduction has no source: ties between sources fall to the run order, the source order.
impl ReportOrder for Deduction {
    fn report_key(&self) -> impl Ord + '_ {
        (
            std::cmp::Reverse(self.severity),
            self.subsystem,
            self.code.as_str(),
            &*self.entity,
        )
    }
}

impl<T> Default for Runs<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Runs<T> {
    /// The items of `runs`, each already in report order; empty runs are dropped.
    pub fn from_runs(runs: impl IntoIterator<Item = Arc<[T]>>) -> Self {
        Self(runs.into_iter().filter(|run| !run.is_empty()).collect())
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|run| run.len()).sum()
    }

    /// These items and those of `run` (already in report order), sharing both.
    pub fn with(&self, run: Arc<[T]>) -> Self {
        Self::from_runs(self.0.iter().cloned().chain([run]))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: ReportOrder> Runs<T> {
    /// The items in report order.
    pub fn iter(&self) -> Merge<'_, T> {
        let heads = self
            .0
            .iter()
            .enumerate()
            .map(|(run, items)| Head {
                item: &items[0],
                run,
                index: 0,
            })
            .collect();
        Merge {
            runs: &self.0,
            heads,
        }
    }
}

/// Items of a report in report order: a merge of its runs.
pub struct Merge<'a, T> {
    runs: &'a [Arc<[T]>],
    heads: BinaryHeap<Head<'a, T>>,
}

/// The next item of one run.
struct Head<'a, T> {
    item: &'a T,
    run: usize,
    index: usize,
}

impl<T: ReportOrder> Ord for Head<'_, T> {
    /// Reversed, so the max-heap pops the first item in report order.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.item.report_key(), other.run).cmp(&(self.item.report_key(), self.run))
    }
}

impl<T: ReportOrder> PartialOrd for Head<'_, T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: ReportOrder> PartialEq for Head<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl<T: ReportOrder> Eq for Head<'_, T> {}

impl<'a, T: ReportOrder> Iterator for Merge<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let head = self.heads.pop()?;
        let run = &self.runs[head.run];
        if let Some(item) = run.get(head.index + 1) {
            self.heads.push(Head {
                item,
                run: head.run,
                index: head.index + 1,
            });
        }
        Some(head.item)
    }
}

impl<T> From<Vec<T>> for Runs<T> {
    fn from(items: Vec<T>) -> Self {
        Self::from_runs([Arc::from(items)])
    }
}

impl<'a, T: ReportOrder> IntoIterator for &'a Runs<T> {
    type Item = &'a T;
    type IntoIter = Merge<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Equal when the items are, however they are split into runs.
impl<T: ReportOrder + PartialEq> PartialEq for Runs<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
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
            issues: Runs::default(),
            score_breakdown: ScoreBreakdown {
                base: ScoreBreakdown::BASE,
                deductions: Runs::default(),
            },
            entities: Runs::default(),
            issue_digest: 0,
            omitted: Omitted::default(),
        }
    }
}

/// The weakest-link view over subsystems. Its issues are its subsystems' (read through
/// [`SystemHealthReport::issues`]). Its JSON form is `core::json`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemHealthReport {
    pub status: Status,
    pub score: u32,
    pub subsystems: BySubsystem<Arc<HealthReport>>,
    /// Issues an answer this report was read from left out of its own list (zero for reports
    /// the engine built).
    pub issues_omitted: u32,
}

impl SystemHealthReport {
    /// Every subsystem's issues in report order: severity first, then subsystem (each
    /// subsystem's list is already ordered by code, entity and source within a severity).
    pub fn issues(&self) -> impl Iterator<Item = &Issue> + '_ {
        [Severity::Critical, Severity::Warning, Severity::Info]
            .into_iter()
            .flat_map(move |severity| {
                self.subsystems.values().flat_map(move |report| {
                    report.issues.iter().filter(move |i| i.severity == severity)
                })
            })
    }
}
