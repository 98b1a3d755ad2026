//! Watcher rules: WATCHER_*.

use std::sync::Arc;

use crate::core::scoring::{
    catalog::Code,
    model::Subsystem,
    policy::Thresholds,
    snapshot::{Evaluation, Snapshot, WatcherSnapshot},
};

impl Snapshot for WatcherSnapshot {
    const SUBSYSTEM: Subsystem = Subsystem::Watchers;

    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn evaluate(&self, _previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let name = &self.name;
        let errors = self.consecutive_errors;
        let mut e = Evaluation::default();
        e.metrics.set("running", f64::from(u8::from(self.running)));
        e.metrics.set("consecutiveErrors", f64::from(errors));
        if !self.running {
            e.fire(
                Code::WatcherStopped,
                format!("Watcher '{name}' is stopped"),
                &["running"],
            );
        }
        if errors >= t.watchers.high_errors {
            e.fire(
                Code::WatcherHighErrors,
                format!("Watcher '{name}' failed {errors} times in a row"),
                &["consecutiveErrors"],
            );
        } else if errors > 0 {
            e.fire(
                Code::WatcherErrors,
                format!("Watcher '{name}' failed {errors} times in a row"),
                &["consecutiveErrors"],
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bands() {
        for (errors, expected) in [
            (0, vec![]),
            (1, vec![Code::WatcherErrors]),
            (9, vec![Code::WatcherErrors]),
            (10, vec![Code::WatcherHighErrors]),
        ] {
            let s = WatcherSnapshot {
                name: "config".into(),
                running: true,
                consecutive_errors: errors,
            };
            assert_eq!(
                s.evaluate(None, &Thresholds::default()).codes(),
                expected,
                "{errors}"
            );
        }
    }

    #[test]
    fn stopped_watcher_is_flagged() {
        let s = WatcherSnapshot {
            name: "config".into(),
            running: false,
            consecutive_errors: 0,
        };
        assert_eq!(
            s.evaluate(None, &Thresholds::default()).codes(),
            vec![Code::WatcherStopped]
        );
    }
}
