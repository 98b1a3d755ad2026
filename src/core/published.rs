//! The read model: one immutable [`Published`] state of every report, what a reader may leave
//! out of it ([`View`]), and the fingerprint watchers compare ([`verdict`]). The engine builds
//! states; faces only read them.
//!
//! Pure: no I/O, no clock (the engine stamps each state).

use std::{
    collections::{hash_map::DefaultHasher, BTreeMap},
    hash::{Hash, Hasher},
    sync::{Arc, OnceLock},
    time::SystemTime,
};

use bytes::Bytes;

use super::scoring::{
    issue_digest, HealthReport, Issue, Severity, Status, Subsystem, SystemHealthReport,
};

/// The grpc.health.v1 name that is SERVING while the process is up (a liveness target).
pub const LIVENESS_SERVICE: &str = "healthscore.v1.HealthReports";

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

/// The encodings of a state that faces share among all its readers, each made on first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendition {
    /// The protobuf `SystemHealthReport` with every issue and the entity lists.
    ProtoSystem,
    /// The protobuf `SystemHealthReport` with every issue and no entity lists.
    ProtoSystemCompact,
}

impl Rendition {
    const COUNT: usize = 2;
}

/// One computed state of every report. Immutable; replaced as a whole.
#[derive(Debug)]
pub struct Published {
    pub stamp: Stamp,
    /// Every subsystem's report, under `system.subsystems`.
    pub system: SystemHealthReport,
    /// The probe-facing status of every known service name.
    pub serving: BTreeMap<&'static str, Serving>,
    /// `verdict` of every subsystem with no severity filter, computed once for every watcher.
    pub system_verdict: u64,
    renditions: [OnceLock<Bytes>; Rendition::COUNT],
}

impl Published {
    pub fn new(
        stamp: Stamp,
        system: SystemHealthReport,
        serving: BTreeMap<&'static str, Serving>,
    ) -> Self {
        let system_verdict = verdict(system.subsystems.values(), None);
        Self {
            stamp,
            system,
            serving,
            system_verdict,
            renditions: Default::default(),
        }
    }

    pub fn report(&self, subsystem: Subsystem) -> &Arc<HealthReport> {
        self.system
            .subsystems
            .get(subsystem.key())
            .expect("every subsystem has a report")
    }

    /// `rendition` of this state: made by `render` for the first reader, shared by the others.
    pub fn rendition(&self, rendition: Rendition, render: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.renditions[rendition as usize]
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

/// What a reader asked to leave out of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Issues below this severity are left out; the status, score and breakdown still count
    /// them.
    pub min_severity: Option<Severity>,
    pub omit_entities: bool,
}

impl View {
    pub fn keeps(&self, issue: &Issue) -> bool {
        self.min_severity.is_none_or(|min| issue.severity >= min)
    }
}
