//! The scoring policy: rule thresholds and penalties, with the defaults of DESIGN.md.
//!
//! Percentages are 0-100. Each pair of rules on one measure has a warning and a critical
//! threshold; `validate` rejects a pair whose warning is not below its critical.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{catalog::Code, model::Severity, rules};
use crate::core::subsystem::for_each_subsystem;

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

/// Checks that each `(name, value)` under `key` is a percentage.
pub fn percentages(key: &str, values: &[(&str, f64)]) -> Result<(), PolicyError> {
    for &(name, value) in values {
        if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
            return Err(PolicyError {
                key: format!("{key}.{name}"),
                problem: format!("{value} is not a percentage between 0 and 100"),
            });
        }
    }
    Ok(())
}

/// Checks that the warning threshold `(name, value)` under `key` is below the critical one.
pub fn ordered(key: &str, warning: (&str, f64), critical: (&str, f64)) -> Result<(), PolicyError> {
    if warning.1 < critical.1 {
        Ok(())
    } else {
        Err(PolicyError {
            key: format!("{key}.{}", warning.0),
            problem: format!(
                "{} must be below {key}.{} ({})",
                warning.1, critical.0, critical.1
            ),
        })
    }
}

/// What a subsystem's thresholds (in its rules module) must do to be in config.
pub trait Validate {
    /// Checks every value; `key` is the table's (`thresholds.datasources`).
    fn validate(&self, key: &str) -> Result<(), PolicyError>;
}

macro_rules! thresholds {
    ($($rules:ident [$($name:ident $type:ident)?];)+) => {
        /// Every subsystem's rule thresholds, under `[thresholds.<name>]`. Its JSON schema carries
        /// each threshold's doc comment, from which the default config's comments are written.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(default, deny_unknown_fields)]
        pub struct Thresholds {
            $($(pub $name: rules::$rules::$type,)?)+
        }

        impl Thresholds {
            fn validate(&self) -> Result<(), PolicyError> {
                $($(self.$name.validate(concat!("thresholds.", stringify!($name)))?;)?)+
                Ok(())
            }
        }
    };
}
for_each_subsystem!(thresholds: rules thresholds);

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
