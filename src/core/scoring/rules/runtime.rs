//! Runtime rules: JVM_* (the codes keep the reference's names; any runtime with a heap fits).


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::{
    refusal::FieldError,
    scoring::{
        catalog::Code,
        policy::{ordered, percentages, PolicyError, Thresholds, Validate},
        snapshot::{at_most, percent, Evaluation, RuntimeSnapshot, Snapshot},
    },
};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeThresholds {
    /// JVM_HEAP_PRESSURE when heap used/max is above this percentage.
    pub heap_pressure: f64,
    /// JVM_HEAP_CRITICAL when heap used/max is above this percentage.
    pub heap_critical: f64,
}

impl Default for RuntimeThresholds {
    fn default() -> Self {
        Self {
            heap_pressure: 85.0,
            heap_critical: 95.0,
        }
    }
}

impl Validate for RuntimeThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        let pressure = ("heap_pressure", self.heap_pressure);
        let critical = ("heap_critical", self.heap_critical);
        percentages(key, &[pressure, critical])?;
        ordered(key, pressure, critical)
    }
}

impl Snapshot for RuntimeSnapshot {
    fn check(&self) -> Result<(), FieldError> {
        at_most(
            "heap_used_bytes",
            self.heap_used_bytes,
            "heap_max_bytes",
            self.heap_max_bytes,
        )
    }

    fn evaluate(&self, _previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let t = &t.runtime;
        let name = &self.name;
        let (used, max) = (self.heap_used_bytes as f64, self.heap_max_bytes as f64);
        let mut e = Evaluation::default();
        e.metrics.set("heapUsedBytes", used);
        e.metrics.set("heapMaxBytes", max);
        e.metrics
            .set("blockedThreads", f64::from(self.blocked_threads));
        if let Some(heap) = percent(used, max) {
            e.metrics.set("heapUtilization", heap);
            let message = |state: &str| {
                format!(
                    "Runtime '{name}' heap is {state} at {heap:.1}% ({:.0} of {:.0} MiB)",
                    used / MIB,
                    max / MIB
                )
            };
            const READS: &[&str] = &["heapUtilization", "heapUsedBytes", "heapMaxBytes"];
            if heap > t.heap_critical {
                e.fire(Code::JvmHeapCritical, message("critical"), READS);
            } else if heap > t.heap_pressure {
                e.fire(Code::JvmHeapPressure, message("under pressure"), READS);
            }
        }
        if self.blocked_threads > 0 {
            e.fire(
                Code::JvmBlockedThreads,
                format!(
                    "Runtime '{name}' has {} blocked threads",
                    self.blocked_threads
                ),
                &["blockedThreads"],
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_bands() {
        for (used, max, expected) in [
            (850, 1000, vec![]),
            (851, 1000, vec![Code::JvmHeapPressure]),
            (950, 1000, vec![Code::JvmHeapPressure]),
            (951, 1000, vec![Code::JvmHeapCritical]),
            (10, 0, vec![]),
        ] {
            let s = RuntimeSnapshot {
                name: "jvm".into(),
                heap_used_bytes: used,
                heap_max_bytes: max,
                blocked_threads: 0,
            };
            assert_eq!(
                s.evaluate(None, &Thresholds::default()).codes(),
                expected,
                "{used}/{max}"
            );
        }
    }

    #[test]
    fn blocked_threads_from_one() {
        let s = RuntimeSnapshot {
            name: "jvm".into(),
            heap_used_bytes: 0,
            heap_max_bytes: 0,
            blocked_threads: 1,
        };
        assert_eq!(
            s.evaluate(None, &Thresholds::default()).codes(),
            vec![Code::JvmBlockedThreads]
        );
    }
}
