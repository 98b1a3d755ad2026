//! Connection pool rules: DS_POOL_*.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::{
    refusal::FieldError,
    scoring::{
        catalog::Code,
        policy::{ordered, percentages, PolicyError, Thresholds, Validate},
        snapshot::{at_most, percent, DatasourceSnapshot, Evaluation, Snapshot},
    },
};

/// Connection pools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DatasourceThresholds {
    /// DS_POOL_HIGH_UTILIZATION when active/max is above this percentage.
    pub high_utilization: f64,
    /// DS_POOL_SATURATED when active/max is at or above this percentage.
    pub saturated: f64,
}

impl Default for DatasourceThresholds {
    fn default() -> Self {
        Self {
            high_utilization: 80.0,
            saturated: 95.0,
        }
    }
}

impl Validate for DatasourceThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        let (high, saturated) = (
            ("high_utilization", self.high_utilization),
            ("saturated", self.saturated),
        );
        percentages(key, &[high, saturated])?;
        ordered(key, high, saturated)
    }
}

impl Snapshot for DatasourceSnapshot {
    fn check(&self) -> Result<(), FieldError> {
        at_most("active", self.active.into(), "max", self.max.into())
    }

    fn evaluate(&self, _previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let t = &t.datasources;
        let mut e = Evaluation::default();
        let (name, active, max) = (&self.name, self.active, self.max);
        e.metrics.set("started", f64::from(u8::from(self.started)));
        e.metrics.set("active", f64::from(active));
        e.metrics.set("idle", f64::from(self.idle));
        e.metrics.set("max", f64::from(max));
        e.metrics
            .set("threadsAwaiting", f64::from(self.threads_awaiting));
        if !self.started {
            e.fire(
                Code::DsPoolNotStarted,
                format!("Datasource '{name}' pool has not started"),
                &["started"],
            );
        }
        if let Some(utilization) = percent(f64::from(active), f64::from(max)) {
            e.metrics.set("utilization", utilization);
            const READS: &[&str] = &["utilization", "active", "max"];
            // Whole percent, rounded down: "94%" never reads as the 95% saturation line.
            let shown = utilization.floor();
            if utilization >= t.saturated {
                e.fire(
                    Code::DsPoolSaturated,
                    format!(
                        "Datasource '{name}' pool is saturated at {shown}% ({active}/{max} active)"
                    ),
                    READS,
                );
            } else if utilization > t.high_utilization {
                e.fire(
                    Code::DsPoolHighUtilization,
                    format!("Datasource '{name}' pool is under high load at {shown}% ({active}/{max} active)"),
                    READS,
                );
            }
        }
        if self.threads_awaiting > 0 {
            e.fire(
                Code::DsPoolThreadsAwaiting,
                format!(
                    "Datasource '{name}' has {} threads waiting for a connection",
                    self.threads_awaiting
                ),
                &["threadsAwaiting", "active", "max"],
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(active: u32, max: u32) -> DatasourceSnapshot {
        DatasourceSnapshot {
            name: "mainDB".into(),
            started: true,
            active,
            idle: 0,
            max,
            threads_awaiting: 0,
        }
    }

    fn codes(s: &DatasourceSnapshot) -> Vec<Code> {
        s.evaluate(None, &Thresholds::default()).codes()
    }

    #[test]
    fn utilization_bands() {
        use Code::*;
        for (active, max, expected) in [
            (80, 100, vec![]),
            (81, 100, vec![DsPoolHighUtilization]),
            (94, 100, vec![DsPoolHighUtilization]),
            (95, 100, vec![DsPoolSaturated]),
            (100, 100, vec![DsPoolSaturated]),
            (28, 32, vec![DsPoolHighUtilization]),
        ] {
            assert_eq!(codes(&pool(active, max)), expected, "{active}/{max}");
        }
    }

    #[test]
    fn saturated_pool_is_critical_not_high_utilization() {
        assert_eq!(codes(&pool(31, 32)), vec![Code::DsPoolSaturated]);
    }

    #[test]
    fn message_and_metrics_carry_the_numbers() {
        let e = pool(28, 32).evaluate(None, &Thresholds::default());
        assert_eq!(
            e.findings[0].message,
            "Datasource 'mainDB' pool is under high load at 87% (28/32 active)"
        );
        assert_eq!(e.metrics.get("utilization"), Some(87.5));
    }

    #[test]
    fn zero_max_has_no_utilization_and_no_nan() {
        let e = pool(5, 0).evaluate(None, &Thresholds::default());
        assert!(e.findings.is_empty());
        assert_eq!(e.metrics.get("utilization"), None);
        assert!(e.metrics.iter().all(|(_, v)| v.is_finite()));
    }

    #[test]
    fn not_started_pool_is_flagged() {
        let mut s = pool(0, 10);
        assert_eq!(codes(&s), vec![]);
        s.started = false;
        assert_eq!(codes(&s), vec![Code::DsPoolNotStarted]);
    }

    #[test]
    fn waiting_threads_are_flagged_from_one() {
        let mut s = pool(1, 10);
        assert_eq!(codes(&s), vec![]);
        s.threads_awaiting = 1;
        assert_eq!(codes(&s), vec![Code::DsPoolThreadsAwaiting]);
    }
}
