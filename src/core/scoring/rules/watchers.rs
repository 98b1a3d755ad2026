//! Watcher rules: WATCHER_*.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::scoring::{
    catalog::Code,
    policy::{PolicyError, Thresholds, Validate},
    snapshot::{Evaluation, Snapshot, WatcherSnapshot},
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WatcherThresholds {
    /// WATCHER_HIGH_ERRORS (instead of WATCHER_ERRORS) at this many consecutive errors.
    pub high_errors: u32,
}

impl Default for WatcherThresholds {
    fn default() -> Self {
        Self { high_errors: 10 }
    }
}

impl Validate for WatcherThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        if self.high_errors == 0 {
            return Err(PolicyError {
                key: format!("{key}.high_errors"),
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

impl Snapshot for WatcherSnapshot {
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
