//! Web server rules: WEB_*. The error rate is read over the window since the previous snapshot.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::{
    refusal::FieldError,
    scoring::{
        catalog::Code,
        policy::{percentages, PolicyError, Thresholds, Validate},
        snapshot::{at_most, not_above, percent, window, Evaluation, Snapshot, WebServerSnapshot},
    },
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebServerThresholds {
    /// WEB_WORKER_HIGH_LOAD when busy/max workers is at or above this percentage.
    pub high_load: f64,
    /// WEB_QUEUE_HIGH when queued/capacity is above this percentage.
    pub queue_high: f64,
    /// WEB_LISTENER_HIGH_ERROR_RATE when the window's errors/requests is above this percentage.
    pub error_rate: f64,
    /// WEB_HIGH_CONNECTION_RATIO when connections exceed this many times max workers.
    pub connection_ratio: f64,
}

impl Default for WebServerThresholds {
    fn default() -> Self {
        Self {
            high_load: 80.0,
            queue_high: 50.0,
            error_rate: 5.0,
            connection_ratio: 10.0,
        }
    }
}

impl Validate for WebServerThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        percentages(
            key,
            &[
                ("high_load", self.high_load),
                ("queue_high", self.queue_high),
                ("error_rate", self.error_rate),
            ],
        )?;
        let ratio = self.connection_ratio;
        if !(ratio.is_finite() && ratio > 0.0) {
            return Err(PolicyError {
                key: format!("{key}.connection_ratio"),
                problem: format!("{ratio} must be a positive number"),
            });
        }
        Ok(())
    }
}

impl Snapshot for WebServerSnapshot {
    fn check(&self) -> Result<(), FieldError> {
        at_most(
            "busy_workers",
            self.busy_workers.into(),
            "max_workers",
            self.max_workers.into(),
        )?;
        not_above("errors", self.errors, "requests", self.requests)
    }

    fn evaluate(&self, previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let t = &t.web_server;
        let name = &self.name;
        let (busy, max) = (self.busy_workers, self.max_workers);
        let requests = window(self.requests, previous.map(|p| p.requests));
        let errors = window(self.errors, previous.map(|p| p.errors));
        let mut e = Evaluation::default();
        e.metrics.set("busyWorkers", f64::from(busy));
        e.metrics.set("maxWorkers", f64::from(max));
        e.metrics.set("queued", f64::from(self.queued));
        e.metrics
            .set("queueCapacity", f64::from(self.queue_capacity));
        e.metrics.set("requests", requests as f64);
        e.metrics.set("errors", errors as f64);
        e.metrics.set("connections", f64::from(self.connections));
        if let Some(utilization) = percent(f64::from(busy), f64::from(max)) {
            e.metrics.set("workerUtilization", utilization);
            const READS: &[&str] = &["workerUtilization", "busyWorkers", "maxWorkers"];
            if busy >= max {
                e.fire(
                    Code::WebWorkerSaturated,
                    format!("Web server '{name}' has every worker busy ({busy}/{max})"),
                    READS,
                );
            } else if utilization >= t.high_load {
                e.fire(
                    Code::WebWorkerHighLoad,
                    format!(
                        "Web server '{name}' workers are {utilization:.0}% busy ({busy}/{max})"
                    ),
                    READS,
                );
            }
            let ratio = f64::from(self.connections) / f64::from(max);
            if ratio > t.connection_ratio {
                e.fire(
                    Code::WebHighConnectionRatio,
                    format!(
                        "Web server '{name}' holds {} connections for {max} workers",
                        self.connections
                    ),
                    &["connections", "maxWorkers"],
                );
            }
        }
        if let Some(queue_use) = percent(f64::from(self.queued), f64::from(self.queue_capacity)) {
            e.metrics.set("queueUtilization", queue_use);
            if queue_use > t.queue_high {
                e.fire(
                    Code::WebQueueHigh,
                    format!(
                        "Web server '{name}' queue is {queue_use:.0}% full ({}/{})",
                        self.queued, self.queue_capacity
                    ),
                    &["queueUtilization", "queued", "queueCapacity"],
                );
            }
        }
        if let Some(error_rate) = percent(errors as f64, requests as f64) {
            // Counters that moved inconsistently (more errors than requests in the window) would
            // read above 100%: the rate is capped and the message says why.
            let error_rate = error_rate.min(100.0);
            e.metrics.set("errorRate", error_rate);
            if error_rate > t.error_rate {
                let counted = if errors > requests {
                    format!("{errors} errors against {requests} requests: the counters moved inconsistently")
                } else {
                    format!("{errors} of {requests}")
                };
                e.fire(
                    Code::WebListenerHighErrorRate,
                    format!("Web server '{name}' failed {error_rate:.1}% of requests ({counted})"),
                    &["errorRate", "errors", "requests"],
                );
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(busy: u32, max: u32) -> WebServerSnapshot {
        WebServerSnapshot {
            name: "http".into(),
            busy_workers: busy,
            max_workers: max,
            queued: 0,
            queue_capacity: 100,
            requests: 0,
            errors: 0,
            connections: 0,
        }
    }

    fn codes(s: &WebServerSnapshot) -> Vec<Code> {
        s.evaluate(None, &Thresholds::default()).codes()
    }

    #[test]
    fn worker_bands() {
        for (busy, max, expected) in [
            (79, 100, vec![]),
            (80, 100, vec![Code::WebWorkerHighLoad]),
            (99, 100, vec![Code::WebWorkerHighLoad]),
            (100, 100, vec![Code::WebWorkerSaturated]),
            (5, 0, vec![]),
        ] {
            assert_eq!(codes(&server(busy, max)), expected, "{busy}/{max}");
        }
    }

    #[test]
    fn queue_bands() {
        for (queued, capacity, expected) in [
            (50, 100, vec![]),
            (51, 100, vec![Code::WebQueueHigh]),
            (10, 0, vec![]),
        ] {
            let mut s = server(0, 10);
            s.queued = queued;
            s.queue_capacity = capacity;
            assert_eq!(codes(&s), expected, "{queued}/{capacity}");
        }
    }

    #[test]
    fn error_rate_over_window() {
        let mut previous = server(0, 10);
        previous.requests = 1000;
        previous.errors = 500;
        let mut current = previous.clone();
        current.requests = 1100;
        current.errors = 505;
        assert_eq!(
            current
                .evaluate(Some(&previous), &Thresholds::default())
                .codes(),
            vec![]
        );
        current.errors = 506;
        assert_eq!(
            current
                .evaluate(Some(&previous), &Thresholds::default())
                .codes(),
            vec![Code::WebListenerHighErrorRate]
        );
    }

    #[test]
    fn no_requests_means_no_error_rate() {
        let e = server(0, 10).evaluate(None, &Thresholds::default());
        assert_eq!(e.metrics.get("errorRate"), None);
    }

    #[test]
    fn connection_ratio_is_info() {
        let mut s = server(0, 10);
        s.connections = 100;
        assert_eq!(codes(&s), vec![]);
        s.connections = 101;
        assert_eq!(codes(&s), vec![Code::WebHighConnectionRatio]);
    }
}
