//! The read model: one immutable [`Published`] state of every report, what a reader may leave
//! out of it ([`View`]), and the fingerprint watchers compare ([`verdict`]). The engine builds
//! states; faces only read them.
//!
//! Pure: no I/O, no clock (the engine stamps each state).

use std::{
    collections::{hash_map::DefaultHasher, BTreeMap},
    hash::{Hash, Hasher},
    sync::{Arc, OnceLock},
    time::{Instant, SystemTime},
};

use bytes::Bytes;

use super::{
    fleet,
    probes::ProbePolicy,
    refusal::FieldError,
    scoring::{
        issue_digest, system_report, Deduction, EntityHealth, HealthReport, Issue, Severity,
        Status, Subsystem, SystemHealthReport,
    },
};

/// When a published state was computed, and its revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub revision: u64,
    pub generated_at: SystemTime,
}

/// What a probe is told about a name: the two answers of grpc.health.v1 and `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serving {
    Serving,
    NotServing,
}

/// Why every readiness name is NOT_SERVING whatever its reports say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Waiting for the sources of `[health.startup]`.
    Starting,
    /// SIGTERM: traffic is moving away.
    ShuttingDown,
}

/// Why a readiness name's status differs, or is about to differ, from what its reports say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Its reports have been failing since `since`: NOT_SERVING from `not_serving_at`
    /// (`fail_after` later), SERVING until then.
    Failing {
        since: Instant,
        not_serving_at: Instant,
    },
    /// Its reports serve again: NOT_SERVING until `serving_at` (`recover_after`).
    Recovering { serving_at: Instant },
}

/// The probe-facing side of a state: every grpc.health.v1 name's status as probes see it.
#[derive(Debug)]
pub struct Probes {
    /// The status of every known name: the readiness names and the liveness one.
    pub serving: BTreeMap<Arc<str>, Serving>,
    /// The readiness names whose reports fail, or recover, and since when.
    pub holds: BTreeMap<Arc<str>, Hold>,
    pub gate: Option<Gate>,
    /// What each readiness name reads.
    pub policy: Arc<ProbePolicy>,
    /// The fleet guard's view and verdicts, when `[fleet]` is set.
    pub fleet: Option<FleetState>,
}

/// The fleet view a state was decided with.
#[derive(Debug, Default)]
pub struct FleetState {
    /// Instances in the view, this one included; `None` while there is no usable view.
    pub peers: Option<u32>,
    /// Per readiness name, the instances failing it, this one included.
    pub failing: BTreeMap<Arc<str>, u32>,
    /// What the guard said about each failing name.
    pub verdicts: BTreeMap<Arc<str>, fleet::Verdict>,
    /// The names it holds SERVING, and since when.
    pub held: BTreeMap<Arc<str>, SystemTime>,
}

impl Probes {
    /// The status of `name` in an answer that leaves the `excluded` subsystems out: as decided,
    /// except that a name NOT_SERVING only because of members failing now that are all
    /// excluded serves. `None` for a name not known.
    pub fn serving_without(
        &self,
        name: &str,
        excluded: &[Subsystem],
        system: &SystemHealthReport,
    ) -> Option<Serving> {
        let serving = *self.serving.get(name)?;
        if serving == Serving::Serving || excluded.is_empty() || self.gate.is_some() {
            return Some(serving);
        }
        let Some(probe) = self.policy.name(name) else {
            return Some(serving);
        };
        let failing = probe.failing_members(system);
        let all_excluded = !failing.is_empty() && failing.iter().all(|m| excluded.contains(m));
        Some(if all_excluded {
            Serving::Serving
        } else {
            Serving::NotServing
        })
    }
}

/// The encodings of a state that faces share among all its readers, each made on first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendition {
    /// The protobuf `SystemHealthReport` in the default view.
    ProtoSystem,
    /// The protobuf `SystemHealthReport` in the default view without entity lists.
    ProtoSystemCompact,
    /// The system report's JSON in the default view.
    JsonSystem,
    /// A subsystem report's JSON in the default view.
    JsonSubsystem(Subsystem),
    /// The state's series in OpenMetrics text (without `# EOF`).
    OpenMetrics,
    /// The state's series in the Prometheus text format.
    PrometheusText,
    /// The Flask seed's health-check response.
    FlaskHealthCheck,
}

impl Rendition {
    const FIXED: usize = 6;
    const COUNT: usize = Self::FIXED + Subsystem::ALL.len();

    fn index(self) -> usize {
        match self {
            Self::ProtoSystem => 0,
            Self::ProtoSystemCompact => 1,
            Self::JsonSystem => 2,
            Self::OpenMetrics => 3,
            Self::PrometheusText => 4,
            Self::FlaskHealthCheck => 5,
            Self::JsonSubsystem(subsystem) => Self::FIXED + subsystem as usize,
        }
    }
}

/// One computed state of every report. Immutable; replaced as a whole.
#[derive(Debug)]
pub struct Published {
    pub stamp: Stamp,
    /// Every subsystem's report, under `system.subsystems`.
    pub system: SystemHealthReport,
    /// The probe-facing side, as the engine decided it.
    pub probes: Probes,
    /// `verdict` of every subsystem with no severity filter, computed once for every watcher.
    pub system_verdict: u64,
    renditions: [OnceLock<Bytes>; Rendition::COUNT],
}

impl Published {
    pub fn new(stamp: Stamp, system: SystemHealthReport, probes: Probes) -> Self {
        let system_verdict = verdict(system.subsystems.values(), None);
        Self {
            stamp,
            system,
            probes,
            system_verdict,
            renditions: Default::default(),
        }
    }

    pub fn report(&self, subsystem: Subsystem) -> &Arc<HealthReport> {
        self.system
            .subsystems
            .get(subsystem)
            .expect("the engine's state has every subsystem's report")
    }

    /// `rendition` of this state: made by `render` for the first reader, shared by the others.
    pub fn rendition(&self, rendition: Rendition, render: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.renditions[rendition.index()]
            .get_or_init(|| render(self))
            .clone()
    }
}

/// A fingerprint of what a watcher is told about: the aggregate status and score of `reports`
/// and the identities of their issues at or above `min`. Metric values are left out on purpose.
pub fn verdict<'a>(
    reports: impl IntoIterator<Item = &'a Arc<HealthReport>>,
    min: Option<Severity>,
) -> u64 {
    let mut status = Status::Healthy;
    let mut score: Option<u32> = None;
    let mut digest = 0u64;
    for report in reports {
        status = status.max(report.status);
        if report.available {
            score = Some(score.map_or(report.score, |s| s.min(report.score)));
        }
        digest = digest.wrapping_add(match min {
            None => report.issue_digest,
            Some(min) => issue_digest(report.issues.iter().filter(|i| i.severity >= min)),
        });
    }
    let mut hasher = DefaultHasher::new();
    (status, score, digest).hash(&mut hasher);
    hasher.finish()
}

/// What one watcher follows: some subsystems from a severity up. It tells which published states
/// are news to the watcher (its status, score or issue set changed) and what to send then.
#[derive(Clone, Debug)]
pub struct Follow {
    subsystems: Vec<Subsystem>,
    min_severity: Option<Severity>,
    last: Option<u64>,
}

impl Follow {
    /// Follows `subsystems` (all of them when empty).
    pub fn new(subsystems: Vec<Subsystem>, min_severity: Option<Severity>) -> Self {
        let subsystems = if subsystems.is_empty() {
            Subsystem::ALL.to_vec()
        } else {
            subsystems
        };
        Self {
            subsystems,
            min_severity,
            last: None,
        }
    }

    fn whole_system(&self) -> bool {
        self.subsystems.len() == Subsystem::ALL.len()
    }

    /// Whether `state` differs from the last state this watcher was told about (the first
    /// state always does); remembers it.
    pub fn is_news(&mut self, state: &Published) -> bool {
        let verdict = if self.whole_system() && self.min_severity.is_none() {
            state.system_verdict
        } else {
            verdict(
                self.subsystems.iter().map(|&s| state.report(s)),
                self.min_severity,
            )
        };
        self.last.replace(verdict) != Some(verdict)
    }

    /// The aggregate over the followed subsystems, when they are not all of them.
    pub fn partial(&self, state: &Published) -> Option<SystemHealthReport> {
        (!self.whole_system())
            .then(|| system_report(self.subsystems.iter().map(|&s| state.report(s))))
    }
}

/// Reads a list of subsystem keys; `field` names the list in errors (`subsystems[1]`).
pub fn selection<S: AsRef<str>>(keys: &[S], field: &str) -> Result<Vec<Subsystem>, FieldError> {
    let mut chosen = std::collections::BTreeSet::new();
    for (index, key) in keys.iter().enumerate() {
        let subsystem = key
            .as_ref()
            .parse()
            .map_err(|problem: String| FieldError::new(format!("{field}[{index}]"), problem))?;
        chosen.insert(subsystem);
    }
    Ok(chosen.into_iter().collect())
}

/// What a reader asked to see of a report: issues from a severity up, and at most so many
/// entities and issues per report, the first in report order (the worst issues). The status,
/// score and breakdown always count everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Issues below this severity are left out.
    pub min_severity: Option<Severity>,
    pub max_entities: usize,
    /// Also bounds the deductions listed, which follow the issues.
    pub max_issues: usize,
}

/// Items of a report as a view lists them, and how many it left out.
pub struct Listed<'a, T> {
    pub items: Vec<&'a T>,
    pub omitted: u32,
}

/// The deductions a view lists, how many it left out and the points those took.
pub struct ListedDeductions<'a> {
    pub items: Vec<&'a Deduction>,
    pub omitted: u32,
    pub omitted_penalty: u32,
}

impl Default for View {
    /// What an answer lists unless asked otherwise: small enough for any default client.
    fn default() -> Self {
        Self {
            min_severity: None,
            max_entities: Self::LISTED_BY_DEFAULT,
            max_issues: Self::LISTED_BY_DEFAULT,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl View {
    /// Entities and issues listed per report unless a reader asks for another number.
    pub const LISTED_BY_DEFAULT: usize = 100;

    /// Everything there is: for a report that was already cut to a view (an answer read back).
    pub fn everything() -> Self {
        Self {
            min_severity: None,
            max_entities: usize::MAX,
            max_issues: usize::MAX,
        }
    }

    pub fn keeps(&self, issue: &Issue) -> bool {
        self.min_severity.is_none_or(|min| issue.severity >= min)
    }

    pub fn issues<'a>(&self, report: &'a HealthReport) -> Listed<'a, Issue> {
        self.list(report.issues.iter(), report.omitted.issues)
    }

    /// The system report's own issue list.
    pub fn system_issues<'a>(&self, system: &'a SystemHealthReport) -> Listed<'a, Issue> {
        self.list(system.issues(), system.issues_omitted)
    }

    fn list<'a>(&self, issues: impl Iterator<Item = &'a Issue>, omitted: u32) -> Listed<'a, Issue> {
        let mut kept = issues.filter(|issue| self.keeps(issue));
        let items: Vec<&Issue> = kept.by_ref().take(self.max_issues).collect();
        Listed {
            items,
            omitted: omitted.saturating_add(count(kept.count())),
        }
    }

    pub fn entities<'a>(&self, report: &'a HealthReport) -> Listed<'a, EntityHealth> {
        let items: Vec<&EntityHealth> = report.entities.iter().take(self.max_entities).collect();
        let left = report.entities.len() - items.len();
        Listed {
            items,
            omitted: report.omitted.entities.saturating_add(count(left)),
        }
    }

    /// The breakdown's deductions: one per issue whatever the severity filter, at most
    /// `max_issues` of them.
    pub fn deductions<'a>(&self, report: &'a HealthReport) -> ListedDeductions<'a> {
        let mut all = report.score_breakdown.deductions.iter();
        let items: Vec<&Deduction> = all.by_ref().take(self.max_issues).collect();
        let (mut omitted, mut omitted_penalty) =
            (report.omitted.deductions, report.omitted.penalty);
        for deduction in all {
            omitted = omitted.saturating_add(1);
            omitted_penalty = omitted_penalty.saturating_add(deduction.penalty);
        }
        ListedDeductions {
            items,
            omitted,
            omitted_penalty,
        }
    }
}
