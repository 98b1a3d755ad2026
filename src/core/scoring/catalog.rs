//! The issue-code catalog: every code's name, subsystem, default severity, trigger and suggested
//! action. Each subsystem's codes are written once, in its row of the subsystem table; the
//! codes of no one subsystem are written here. Rules refer to codes by `Code`.

use std::{fmt, str::FromStr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::subsystem::{for_each_subsystem, Subsystem};

/// How much an issue matters. Ordered: `Info < Warning < Critical`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            _ => Err(format!(
                "unknown severity {s:?} (expected info, warning or critical)"
            )),
        }
    }
}

/// One catalog row.
#[derive(Debug)]
pub struct Entry {
    pub code: Code,
    pub name: &'static str,
    /// `None` for codes any subsystem can carry (staleness, the fleet guard).
    pub subsystem: Option<Subsystem>,
    pub severity: Severity,
    /// When the rule fires, with its default threshold.
    pub trigger: &'static str,
    pub suggested_action: &'static str,
}

macro_rules! catalog {
    ($($variant:ident
        [$($code:ident => $name:literal, $severity:ident, $trigger:literal, $action:literal;)*];
    )+) => {
        /// An issue code. Its string form is the catalog's name (`DS_POOL_SATURATED`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($($code,)*)+ SourceStale, FleetCorrelated, FleetViewUnavailable }

        /// Every code, in catalog order: each subsystem's, in the table's order, then the codes
        /// any subsystem can carry.
        pub const CATALOG: &[Entry] = &[
            $($(Entry {
                code: Code::$code,
                name: $name,
                subsystem: Some(Subsystem::$variant),
                severity: Severity::$severity,
                trigger: $trigger,
                suggested_action: $action,
            },)*)+
            Entry {
                code: Code::SourceStale,
                name: "SOURCE_STALE",
                subsystem: None,
                severity: Severity::Critical,
                trigger: "a source missed its TTL",
                suggested_action: "Check that the reporting application is up and can reach healthscore",
            },
            Entry {
                code: Code::FleetCorrelated,
                name: "FLEET_CORRELATED",
                subsystem: None,
                severity: Severity::Warning,
                trigger: "more than fleet.max_unready_fraction of the peers fail the same probe name: it is held SERVING",
                suggested_action: "Look for what the peers share (a database, a downstream service): removing replicas cannot fix it",
            },
            Entry {
                code: Code::FleetViewUnavailable,
                name: "FLEET_VIEW_UNAVAILABLE",
                subsystem: None,
                severity: Severity::Info,
                trigger: "a probe name fails and the peers' view could not be read from fleet.prometheus_url",
                suggested_action: "Check that fleet.prometheus_url answers and fleet.peers selects this service's instances",
            },
        ];
    };
}
for_each_subsystem!(catalog: variant codes);

impl Code {
    pub fn entry(self) -> &'static Entry {
        // CATALOG is written in declaration order, so the discriminant is the index.
        &CATALOG[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.entry().name
    }

    pub fn severity(self) -> Severity {
        self.entry().severity
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Code {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CATALOG
            .iter()
            .find(|entry| entry.name == s)
            .map(|entry| entry.code)
            .ok_or_else(|| format!("unknown issue code {s:?}"))
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rows_are_in_declaration_order() {
        for (index, entry) in CATALOG.iter().enumerate() {
            assert_eq!(entry.code as usize, index, "{}", entry.name);
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for entry in CATALOG {
            assert_eq!(entry.name.parse::<Code>(), Ok(entry.code));
        }
        let mut names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }
}
