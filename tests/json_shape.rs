//! The JSON form of a report has the reference seed's shape: the same keys with the same value
//! types, camelCase, lowercase enum words.

use std::sync::Arc;

use healthscore::model::{
    json_report, subsystem_report, Code, DatasourceSnapshot, Observed, Policy, View,
};
use serde_json::Value;

/// Keys healthscore adds to the seed's objects, each documented in DESIGN.md.
const ADDITIONS: &[&str] = &["subsystem", "available", "entities", "source", "entity"];

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `seed` is in `ours` with a value of the same type, recursively (arrays are
/// compared by their first element); keys only in `ours` must be listed in ADDITIONS.
fn assert_same_shape(seed: &Value, ours: &Value, path: &str) {
    assert_eq!(kind(seed), kind(ours), "type of {path}");
    match (seed, ours) {
        (Value::Object(seed), Value::Object(ours)) => {
            for (key, value) in seed {
                let Some(mine) = ours.get(key) else {
                    panic!("{path}.{key} is missing");
                };
                // entityMetrics is a free-form map of numbers; compare the seed's keys anyway.
                assert_same_shape(value, mine, &format!("{path}.{key}"));
            }
            for key in ours.keys() {
                assert!(
                    seed.contains_key(key) || ADDITIONS.contains(&key.as_str()),
                    "{path}.{key} is not in the seed's shape"
                );
            }
        }
        (Value::Array(seed), Value::Array(ours)) => {
            if let (Some(seed), Some(mine)) = (seed.first(), ours.first()) {
                assert_same_shape(seed, mine, &format!("{path}[0]"));
            }
        }
        _ => {}
    }
}

#[test]
fn report_json_matches_the_reference_example() {
    let seed: Value =
        serde_json::from_str(include_str!("fixtures/seed_report.json")).expect("fixture is JSON");

    // The seed's own example: 28 of 32 connections, a warning its example deducts 15 for.
    let mut policy = Policy::default();
    policy
        .penalties
        .codes
        .insert(Code::DsPoolHighUtilization, 15);
    let source: Arc<str> = "app-1".into();
    let pool = DatasourceSnapshot {
        name: "mainDB".into(),
        started: true,
        active: 28,
        idle: 4,
        max: 32,
        threads_awaiting: 0,
    };
    let report = subsystem_report(
        [Observed {
            source: &source,
            current: &pool,
            previous: None,
            stale: None,
        }],
        &policy,
    );
    let ours =
        serde_json::to_value(json_report(&report, View::default())).expect("report serializes");

    assert_same_shape(&seed, &ours, "report");
    assert_eq!(
        ours["status"], "warning",
        "the seed says healthy, but DESIGN.md: any warning issue makes the status warning"
    );
    assert_eq!(ours["score"], seed["score"]);
    assert_eq!(ours["issues"][0]["code"], seed["issues"][0]["code"]);
    assert_eq!(ours["issues"][0]["severity"], seed["issues"][0]["severity"]);
    assert_eq!(ours["issues"][0]["message"], seed["issues"][0]["message"]);
    assert_eq!(
        ours["issues"][0]["suggestedAction"],
        seed["issues"][0]["suggestedAction"]
    );
    assert_eq!(ours["issues"][0]["entity"], seed["issues"][0]["entity"]);
    assert_eq!(ours["issues"][0]["entityMetrics"]["active"], 28.0);
    assert_eq!(ours["issues"][0]["entityMetrics"]["max"], 32.0);
    assert_eq!(
        ours["scoreBreakdown"]["base"],
        seed["scoreBreakdown"]["base"]
    );
    assert_eq!(
        ours["scoreBreakdown"]["deductions"][0]["penalty"],
        seed["scoreBreakdown"]["deductions"][0]["penalty"]
    );
}
