//! Slow-call rules: PERF_SLOW_*, info only, over the window since the previous snapshot.


use crate::core::scoring::{
    catalog::Code,
    policy::Thresholds,
    snapshot::{window, Evaluation, PerformanceSnapshot, Snapshot},
};

/// A rule's code, the metric it writes (its only read), what it counts, the current total and
/// the previous one.
type SlowCounter = (
    Code,
    &'static [&'static str],
    &'static str,
    u64,
    Option<u64>,
);

impl Snapshot for PerformanceSnapshot {
    fn evaluate(&self, previous: Option<&Self>, _t: &Thresholds) -> Evaluation {
        let name = &self.name;
        let mut e = Evaluation::default();
        let counters: [SlowCounter; 3] = [
            (
                Code::PerfSlowQueries,
                &["slowQueries"],
                "slow queries",
                self.slow_queries,
                previous.map(|p| p.slow_queries),
            ),
            (
                Code::PerfSlowRequests,
                &["slowRequests"],
                "slow requests",
                self.slow_requests,
                previous.map(|p| p.slow_requests),
            ),
            (
                Code::PerfSlowHttp,
                &["slowHttpCalls"],
                "slow outbound HTTP calls",
                self.slow_http_calls,
                previous.map(|p| p.slow_http_calls),
            ),
        ];
        for (code, reads, what, current, previous) in counters {
            let count = window(current, previous);
            e.metrics.set(reads[0], count as f64);
            if count > 0 {
                e.fire(
                    code,
                    format!("'{name}' had {count} {what} since its last report"),
                    reads,
                );
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perf(queries: u64, requests: u64, http: u64) -> PerformanceSnapshot {
        PerformanceSnapshot {
            name: "api".into(),
            slow_queries: queries,
            slow_requests: requests,
            slow_http_calls: http,
        }
    }

    #[test]
    fn any_slow_call_in_window_is_info() {
        let t = Thresholds::default();
        assert_eq!(perf(0, 0, 0).evaluate(None, &t).codes(), vec![]);
        assert_eq!(
            perf(1, 1, 1).evaluate(None, &t).codes(),
            vec![
                Code::PerfSlowQueries,
                Code::PerfSlowRequests,
                Code::PerfSlowHttp
            ]
        );
    }

    #[test]
    fn unchanged_counters_are_quiet_and_reset_counts_again() {
        let t = Thresholds::default();
        let previous = perf(5, 5, 5);
        assert_eq!(perf(5, 5, 5).evaluate(Some(&previous), &t).codes(), vec![]);
        assert_eq!(
            perf(2, 5, 5).evaluate(Some(&previous), &t).codes(),
            vec![Code::PerfSlowQueries]
        );
    }
}
