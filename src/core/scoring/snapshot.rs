//! What rules read: one snapshot type per subsystem, already validated (names non-empty, counts
//! consistent, numbers finite). Counters are cumulative; rules take the entity's previous
//! snapshot to compute the window since it.

use std::sync::Arc;

use crate::core::{refusal::FieldError, subsystem::for_each_subsystem};

use super::{
    catalog::Code,
    model::{Metrics, Subsystem},
    policy::Thresholds,
};

/// What the subsystem table knows of a snapshot type: the subsystem it belongs to, and the
/// entity it is about. Generated for pushed snapshots; a sampled one implements it by hand.
pub trait Entity {
    const SUBSYSTEM: Subsystem;

    fn name(&self) -> &Arc<str>;
}

/// An entity's state as one source reported it, and the subsystem's rules over it.
pub trait Snapshot: Entity {
    /// Runs the subsystem's rules. `previous` is this entity's snapshot before this one, for
    /// counter windows; `None` on the first snapshot, whose totals are the window.
    fn evaluate(&self, previous: Option<&Self>, thresholds: &Thresholds) -> Evaluation;

    /// Whether the values agree with each other (no more active than the maximum, say). The
    /// error's field is this snapshot's field name; the input prefixes it with its path.
    fn check(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// What the rules found in one entity.
#[derive(Debug, PartialEq)]
pub struct Evaluation {
    /// Every value the rules read, for the report's entity list.
    pub metrics: Metrics,
    pub findings: Vec<Finding>,
}

/// One rule that fired.
#[derive(Debug, PartialEq)]
pub struct Finding {
    pub code: Code,
    pub message: String,
    /// The keys of `Evaluation::metrics` this rule read; they become the entityMetrics.
    pub reads: &'static [&'static str],
}

impl Default for Evaluation {
    fn default() -> Self {
        Self {
            // Every rule module writes at most this many metrics: one allocation per entity.
            metrics: Metrics::with_capacity(8),
            findings: Vec::new(),
        }
    }
}

impl Evaluation {
    pub fn fire(&mut self, code: Code, message: String, reads: &'static [&'static str]) {
        self.findings.push(Finding {
            code,
            message,
            reads,
        });
    }

    pub fn codes(&self) -> Vec<Code> {
        self.findings.iter().map(|f| f.code).collect()
    }
}

/// The part of a cumulative counter that falls in the window since `previous`. A counter below
/// its previous value was reset (the app restarted), so everything it counts is new.
pub fn window(current: u64, previous: Option<u64>) -> u64 {
    match previous {
        Some(previous) if current >= previous => current - previous,
        _ => current,
    }
}

/// `value <= bound`, or an error on `field` naming `bound_field`.
pub fn not_above(field: &str, value: u64, bound_field: &str, bound: u64) -> Result<(), FieldError> {
    if value > bound {
        Err(FieldError::new(
            field,
            format!("{value} is above {bound_field} ({bound})"),
        ))
    } else {
        Ok(())
    }
}

/// `value <= max`, unless `max` is 0 (unknown or unbounded).
pub fn at_most(field: &str, value: u64, max_field: &str, max: u64) -> Result<(), FieldError> {
    if max == 0 {
        return Ok(());
    }
    not_above(field, value, max_field, max)
}

/// `part / whole` as a percentage rounded to one decimal, or `None` when `whole` is zero.
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part / whole * 1000.0).round() / 10.0)
}

/// The type a snapshot field of this kind has in the core (see `for_each_subsystem!`).
macro_rules! field_type {
    (flag) => {
        bool
    };
    ($kind:ident) => {
        $kind
    };
}

macro_rules! pushed_snapshots {
    ($($variant:ident $key:literal $snapshot:ident
        [$($list:ident { $($name:ident: $kind:ident $(or $zero:ident)?,)* })?];)+) => {$($(
        #[doc = concat!("One entity of `", $key, "` as its source pushed it (`", stringify!($list), "`).")]
        #[derive(Clone, Debug, PartialEq)]
        pub struct $snapshot {
            pub name: Arc<str>,
            $(
                $(#[doc = concat!("0 when ", stringify!($zero), ".")])?
                pub $name: field_type!($kind),
            )*
        }

        impl Entity for $snapshot {
            const SUBSYSTEM: Subsystem = Subsystem::$variant;

            fn name(&self) -> &Arc<str> {
                &self.name
            }
        }
    )?)+};
}
for_each_subsystem!(pushed_snapshots: variant key snapshot pushed);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorState {
    Running,
    Idle,
    Degraded,
    Draining,
    Critical,
    Shutdown,
    Terminated,
}

impl ExecutorState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Idle => "idle",
            Self::Degraded => "degraded",
            Self::Draining => "draining",
            Self::Critical => "critical",
            Self::Shutdown => "shutdown",
            Self::Terminated => "terminated",
        }
    }
}

/// One entity of the host subsystem, as the host sampler read it.
#[derive(Clone, Debug, PartialEq)]
pub enum HostSnapshot {
    Cpu(CpuSample),
    Memory(MemorySample),
    Disk(DiskSample),
    /// A value the sampler could not read; `name` says which ("cpu", "memory", "disks").
    CollectorError {
        name: Arc<str>,
        error: String,
    },
}

/// CPU use, already averaged over the configured window.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuSample {
    pub name: Arc<str>,
    /// 0-100, averaged over the window.
    pub usage_percent: f64,
    pub window_samples: u32,
    pub cores: u32,
    pub load_1: f64,
    pub load_5: f64,
    pub load_15: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemorySample {
    pub name: Arc<str>,
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub swap_used_bytes: u64,
    pub swap_total_bytes: u64,
}

/// One mounted filesystem; `name` is its mount point.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskSample {
    pub name: Arc<str>,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_the_difference_since_previous() {
        assert_eq!(window(150, Some(100)), 50);
        assert_eq!(window(100, Some(100)), 0);
    }

    #[test]
    fn first_snapshot_window_is_its_total() {
        assert_eq!(window(150, None), 150);
    }

    #[test]
    fn counter_reset_counts_from_zero() {
        assert_eq!(window(30, Some(100)), 30);
    }

    #[test]
    fn percent_of_zero_is_none_not_nan() {
        assert_eq!(percent(5.0, 0.0), None);
        assert_eq!(percent(28.0, 32.0), Some(87.5));
    }
}
