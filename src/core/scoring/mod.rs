//! The pure scoring core: snapshots in, explainable reports out.
//!
//! Nothing here does I/O, reads a clock or knows about async, tonic or prost: every rule can be
//! tested with a struct literal, and the same inputs always give the same report.

pub mod catalog;
pub mod model;
pub mod policy;
pub mod rules;
pub mod score;
pub mod snapshot;

pub use catalog::Code;
pub use model::{
    issue_digest, CodeForm, Deduction, EntityHealth, HealthReport, Issue, Metrics, Omitted,
    ScoreBreakdown, Severity, SourceLabels, Status, Subsystem, SystemHealthReport,
};
pub use policy::{Penalties, Policy, Thresholds};
pub use score::{
    assemble, evaluate, stale, subsystem_report, system_report, Evaluated, Observed, Staleness,
};
pub use snapshot::{Entity, Snapshot};
