//! The scoring policy: rule thresholds and penalties, with the defaults of DESIGN.md.
//!
//! Percentages are 0-100. Each pair of rules on one measure has a warning and a critical
//! threshold; `validate` rejects a pair whose warning is not below its critical.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{catalog::Code, model::Severity};

/// Everything the rules and the scorer read besides the snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub thresholds: Thresholds,
    pub penalties: Penalties,
}

impl Policy {
    /// The points an issue of this code and severity costs.
    pub fn penalty(&self, code: Code, severity: Severity) -> u32 {
        if let Some(&points) = self.penalties.codes.get(&code) {
            return points;
        }
        match severity {
            Severity::Info => self.penalties.info,
            Severity::Warning => self.penalties.warning,
            Severity::Critical => self.penalties.critical,
        }
    }

    /// Checks every value; the error names the key (`thresholds.datasources.saturated`).
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.thresholds.validate()?;
        self.penalties.validate()
    }
}

/// A policy value that cannot work, with the dotted key that holds it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{key}: {problem}")]
pub struct PolicyError {
    pub key: String,
    pub problem: String,
}

fn percent(key: &str, value: f64) -> Result<(), PolicyError> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(PolicyError {
            key: key.to_owned(),
            problem: format!("{value} is not a percentage between 0 and 100"),
        })
    }
}

fn ordered(
    warning_key: &str,
    warning: f64,
    critical_key: &str,
    critical: f64,
) -> Result<(), PolicyError> {
    if warning < critical {
        Ok(())
    } else {
        Err(PolicyError {
            key: warning_key.to_owned(),
            problem: format!("{warning} must be below {critical_key} ({critical})"),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub datasources: DatasourceThresholds,
    pub caches: CacheThresholds,
    pub watchers: WatcherThresholds,
    pub web_server: WebServerThresholds,
    pub executors: ExecutorThresholds,
    pub runtime: RuntimeThresholds,
    pub host: HostThresholds,
}

impl Thresholds {
    fn validate(&self) -> Result<(), PolicyError> {
        let t = self;
        for (key, value) in [
            (
                "thresholds.datasources.high_utilization",
                t.datasources.high_utilization,
            ),
            ("thresholds.datasources.saturated", t.datasources.saturated),
            ("thresholds.caches.low_hit_rate", t.caches.low_hit_rate),
            ("thresholds.web_server.high_load", t.web_server.high_load),
            ("thresholds.web_server.queue_high", t.web_server.queue_high),
            ("thresholds.web_server.error_rate", t.web_server.error_rate),
            (
                "thresholds.executors.near_saturation",
                t.executors.near_saturation,
            ),
            ("thresholds.runtime.heap_pressure", t.runtime.heap_pressure),
            ("thresholds.runtime.heap_critical", t.runtime.heap_critical),
            ("thresholds.host.cpu_high", t.host.cpu_high),
            ("thresholds.host.cpu_critical", t.host.cpu_critical),
            ("thresholds.host.memory_high", t.host.memory_high),
            ("thresholds.host.memory_critical", t.host.memory_critical),
            ("thresholds.host.disk_high", t.host.disk_high),
            ("thresholds.host.disk_critical", t.host.disk_critical),
        ] {
            percent(key, value)?;
        }
        let ratio = t.web_server.connection_ratio;
        if !(ratio.is_finite() && ratio > 0.0) {
            return Err(PolicyError {
                key: "thresholds.web_server.connection_ratio".into(),
                problem: format!("{ratio} must be a positive number"),
            });
        }
        if t.watchers.high_errors == 0 {
            return Err(PolicyError {
                key: "thresholds.watchers.high_errors".into(),
                problem: "must be at least 1".into(),
            });
        }
        for (warning_key, warning, critical_key, critical) in [
            (
                "thresholds.datasources.high_utilization",
                t.datasources.high_utilization,
                "thresholds.datasources.saturated",
                t.datasources.saturated,
            ),
            (
                "thresholds.runtime.heap_pressure",
                t.runtime.heap_pressure,
                "thresholds.runtime.heap_critical",
                t.runtime.heap_critical,
            ),
            (
                "thresholds.host.cpu_high",
                t.host.cpu_high,
                "thresholds.host.cpu_critical",
                t.host.cpu_critical,
            ),
            (
                "thresholds.host.memory_high",
                t.host.memory_high,
                "thresholds.host.memory_critical",
                t.host.memory_critical,
            ),
            (
                "thresholds.host.disk_high",
                t.host.disk_high,
                "thresholds.host.disk_critical",
                t.host.disk_critical,
            ),
        ] {
            ordered(warning_key, warning, critical_key, critical)?;
        }
        Ok(())
    }
}

/// Connection pools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasourceThresholds {
    /// DS_POOL_HIGH_UTILIZATION when active/max is above this percentage.
    pub high_utilization: f64,
    /// DS_POOL_SATURATED when active/max is at or above this percentage.
    pub saturated: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheThresholds {
    /// CACHE_LOW_HIT_RATE when the window's hit rate is below this percentage...
    pub low_hit_rate: f64,
    /// ...over at least this many lookups, so a cold cache is not flagged.
    pub min_lookups: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatcherThresholds {
    /// WATCHER_HIGH_ERRORS (instead of WATCHER_ERRORS) at this many consecutive errors.
    pub high_errors: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorThresholds {
    /// EXECUTOR_NEAR_SATURATION when thread or queue use is at or above this percentage.
    pub near_saturation: f64,
    /// EXECUTOR_QUEUE_BACKLOG when more tasks than this are queued.
    pub queue_backlog: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeThresholds {
    /// JVM_HEAP_PRESSURE when heap used/max is above this percentage.
    pub heap_pressure: f64,
    /// JVM_HEAP_CRITICAL when heap used/max is above this percentage.
    pub heap_critical: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostThresholds {
    /// HOST_CPU_HIGH when the windowed CPU use is above this percentage.
    pub cpu_high: f64,
    /// HOST_CPU_CRITICAL when the windowed CPU use is above this percentage.
    pub cpu_critical: f64,
    /// HOST_MEMORY_HIGH when memory use is above this percentage.
    pub memory_high: f64,
    /// HOST_MEMORY_CRITICAL when memory use is above this percentage.
    pub memory_critical: f64,
    /// HOST_DISK_HIGH when a filesystem is fuller than this percentage.
    pub disk_high: f64,
    /// HOST_DISK_CRITICAL when a filesystem is fuller than this percentage.
    pub disk_critical: f64,
}

impl Default for DatasourceThresholds {
    fn default() -> Self {
        Self {
            high_utilization: 80.0,
            saturated: 95.0,
        }
    }
}

impl Default for CacheThresholds {
    fn default() -> Self {
        Self {
            low_hit_rate: 30.0,
            min_lookups: 100,
        }
    }
}

impl Default for WatcherThresholds {
    fn default() -> Self {
        Self { high_errors: 10 }
    }
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

impl Default for ExecutorThresholds {
    fn default() -> Self {
        Self {
            near_saturation: 90.0,
            queue_backlog: 50,
        }
    }
}

impl Default for RuntimeThresholds {
    fn default() -> Self {
        Self {
            heap_pressure: 85.0,
            heap_critical: 95.0,
        }
    }
}

impl Default for HostThresholds {
    fn default() -> Self {
        Self {
            cpu_high: 80.0,
            cpu_critical: 95.0,
            memory_high: 85.0,
            memory_critical: 95.0,
            disk_high: 90.0,
            disk_critical: 98.0,
        }
    }
}

/// Points deducted per issue: by severity, or per code where `codes` says so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Penalties {
    pub info: u32,
    pub warning: u32,
    pub critical: u32,
    /// Per-code overrides, e.g. `DS_POOL_HIGH_UTILIZATION = 15`.
    pub codes: BTreeMap<Code, u32>,
}

impl Default for Penalties {
    fn default() -> Self {
        Self {
            info: 5,
            warning: 25,
            critical: 50,
            codes: BTreeMap::new(),
        }
    }
}

impl Penalties {
    fn validate(&self) -> Result<(), PolicyError> {
        let too_big = |key: String, points: u32| {
            (points > 100).then(|| PolicyError {
                key,
                problem: format!("{points} is more than the base score of 100"),
            })
        };
        let named = [
            ("penalties.info".to_owned(), self.info),
            ("penalties.warning".to_owned(), self.warning),
            ("penalties.critical".to_owned(), self.critical),
        ];
        let per_code = self
            .codes
            .iter()
            .map(|(code, &points)| (format!("penalties.codes.{code}"), points));
        match named
            .into_iter()
            .chain(per_code)
            .find_map(|(k, p)| too_big(k, p))
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Policy::default().validate(), Ok(()));
    }

    #[test]
    fn warning_above_critical_names_the_warning_key() {
        let mut policy = Policy::default();
        policy.thresholds.host.disk_high = 99.0;
        let error = policy.validate().unwrap_err();
        assert_eq!(error.key, "thresholds.host.disk_high");
        assert!(error.problem.contains("thresholds.host.disk_critical"));
    }

    #[test]
    fn out_of_range_percentage_is_rejected() {
        let mut policy = Policy::default();
        policy.thresholds.caches.low_hit_rate = 130.0;
        assert_eq!(
            policy.validate().unwrap_err().key,
            "thresholds.caches.low_hit_rate"
        );
        policy.thresholds.caches.low_hit_rate = f64::NAN;
        assert_eq!(
            policy.validate().unwrap_err().key,
            "thresholds.caches.low_hit_rate"
        );
    }

    #[test]
    fn per_code_penalty_overrides_severity_default() {
        let mut policy = Policy::default();
        policy
            .penalties
            .codes
            .insert(Code::DsPoolHighUtilization, 15);
        assert_eq!(
            policy.penalty(Code::DsPoolHighUtilization, Severity::Warning),
            15
        );
        assert_eq!(
            policy.penalty(Code::DsPoolThreadsAwaiting, Severity::Warning),
            25
        );
        assert_eq!(
            policy.penalty(Code::DsPoolSaturated, Severity::Critical),
            50
        );
        assert_eq!(policy.penalty(Code::PerfSlowHttp, Severity::Info), 5);
    }

    #[test]
    fn penalty_above_base_is_rejected() {
        let mut policy = Policy::default();
        policy.penalties.codes.insert(Code::CacheDisabled, 101);
        assert_eq!(
            policy.validate().unwrap_err().key,
            "penalties.codes.CACHE_DISABLED"
        );
    }
}
