//! Executor rules: EXECUTOR_*.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::{
    refusal::FieldError,
    scoring::{
        catalog::Code,
        policy::{percentages, PolicyError, Thresholds, Validate},
        snapshot::{at_most, percent, Evaluation, ExecutorSnapshot, ExecutorState, Snapshot},
    },
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorThresholds {
    /// EXECUTOR_NEAR_SATURATION when thread or queue use is at or above this percentage.
    pub near_saturation: f64,
    /// EXECUTOR_QUEUE_BACKLOG when more tasks than this are queued.
    pub queue_backlog: u32,
}

impl Default for ExecutorThresholds {
    fn default() -> Self {
        Self {
            near_saturation: 90.0,
            queue_backlog: 50,
        }
    }
}

impl Validate for ExecutorThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        percentages(key, &[("near_saturation", self.near_saturation)])
    }
}

impl Snapshot for ExecutorSnapshot {
    fn check(&self) -> Result<(), FieldError> {
        at_most(
            "active",
            self.active.into(),
            "max_threads",
            self.max_threads.into(),
        )
    }

    fn evaluate(&self, _previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let t = &t.executors;
        let name = &self.name;
        let state = self.state.as_str();
        let mut e = Evaluation::default();
        e.metrics.set("active", f64::from(self.active));
        e.metrics.set("maxThreads", f64::from(self.max_threads));
        e.metrics.set("queued", f64::from(self.queued));
        e.metrics
            .set("queueCapacity", f64::from(self.queue_capacity));
        match self.state {
            ExecutorState::Shutdown | ExecutorState::Terminated | ExecutorState::Critical => e
                .fire(
                    Code::ExecutorUnhealthy,
                    format!("Executor '{name}' is {state}"),
                    &[],
                ),
            ExecutorState::Degraded | ExecutorState::Draining | ExecutorState::Idle => e.fire(
                Code::ExecutorDegraded,
                format!("Executor '{name}' is {state}"),
                &[],
            ),
            ExecutorState::Running => {}
        }
        let threads = percent(f64::from(self.active), f64::from(self.max_threads));
        let queue = percent(f64::from(self.queued), f64::from(self.queue_capacity));
        if let Some(saturation) = threads.into_iter().chain(queue).reduce(f64::max) {
            e.metrics.set("saturation", saturation);
            if saturation >= t.near_saturation {
                e.fire(
                    Code::ExecutorNearSaturation,
                    format!(
                        "Executor '{name}' is {saturation:.0}% saturated ({}/{} threads, {}/{} queued)",
                        self.active, self.max_threads, self.queued, self.queue_capacity
                    ),
                    &["saturation", "active", "maxThreads", "queued", "queueCapacity"],
                );
            }
        }
        if self.queued > t.queue_backlog {
            e.fire(
                Code::ExecutorQueueBacklog,
                format!("Executor '{name}' has {} tasks queued", self.queued),
                &["queued"],
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executor(state: ExecutorState, active: u32, queued: u32) -> ExecutorSnapshot {
        ExecutorSnapshot {
            name: "workers".into(),
            state,
            active,
            max_threads: 10,
            queued,
            queue_capacity: 1000,
        }
    }

    fn codes(s: &ExecutorSnapshot) -> Vec<Code> {
        s.evaluate(None, &Thresholds::default()).codes()
    }

    #[test]
    fn state_bands() {
        use ExecutorState::*;
        for (state, expected) in [
            (Running, vec![]),
            (Idle, vec![Code::ExecutorDegraded]),
            (Degraded, vec![Code::ExecutorDegraded]),
            (Draining, vec![Code::ExecutorDegraded]),
            (Critical, vec![Code::ExecutorUnhealthy]),
            (Shutdown, vec![Code::ExecutorUnhealthy]),
            (Terminated, vec![Code::ExecutorUnhealthy]),
        ] {
            assert_eq!(codes(&executor(state, 0, 0)), expected, "{state:?}");
        }
    }

    #[test]
    fn saturation_takes_the_worse_of_threads_and_queue() {
        use ExecutorState::Running;
        assert_eq!(codes(&executor(Running, 8, 0)), vec![]);
        assert_eq!(
            codes(&executor(Running, 9, 0)),
            vec![Code::ExecutorNearSaturation]
        );
        let mut s = executor(Running, 0, 0);
        s.queue_capacity = 50;
        s.queued = 44;
        assert_eq!(codes(&s), vec![]);
        s.queued = 45;
        assert_eq!(codes(&s), vec![Code::ExecutorNearSaturation]);
    }

    #[test]
    fn backlog_above_fifty() {
        use ExecutorState::Running;
        assert_eq!(codes(&executor(Running, 0, 50)), vec![]);
        assert_eq!(
            codes(&executor(Running, 0, 51)),
            vec![Code::ExecutorQueueBacklog]
        );
    }

    #[test]
    fn zero_capacities_have_no_saturation() {
        let mut s = executor(ExecutorState::Running, 3, 3);
        s.max_threads = 0;
        s.queue_capacity = 0;
        let e = s.evaluate(None, &Thresholds::default());
        assert_eq!(e.metrics.get("saturation"), None);
        assert!(e.findings.is_empty());
    }
}
