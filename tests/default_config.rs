//! The default config's `[thresholds.*]` tables are generated from the rules: each threshold's
//! default from its `Default`, its comment from its doc comment (through its JSON schema). A
//! section that differs is rewritten in place, and the test fails so that the change is
//! reviewed and committed.

mod common;

use healthscore::model::Thresholds;
use serde_json::Value;

/// Where a threshold's comment starts, as in the rest of the file.
const COMMENT_COLUMN: usize = 26;

/// The doc comment of each threshold, by table and key, from the schema of `Thresholds`.
fn description(schema: &Value, table: &str, key: &str) -> String {
    let reference = schema["properties"][table]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("thresholds.{table} has a schema of its own"));
    let name = reference.trim_start_matches("#/$defs/");
    schema["$defs"][name]["properties"][key]["description"]
        .as_str()
        .unwrap_or_else(|| panic!("thresholds.{table}.{key} has no doc comment"))
        .replace('\n', " ")
}

/// The tables as the default config writes them: the defaults in declaration order, each
/// followed by its doc comment.
fn generated() -> Vec<String> {
    let schema = serde_json::to_value(schemars::schema_for!(Thresholds)).expect("a JSON schema");
    let defaults = toml::to_string(&Thresholds::default()).expect("TOML");
    let mut table = String::new();
    let mut lines = Vec::new();
    for line in defaults.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !lines.is_empty() {
                lines.push(String::new());
            }
            table = name.to_owned();
            lines.push(format!("[thresholds.{name}]"));
        } else if let Some((key, _)) = line.split_once(" = ") {
            let comment = description(&schema, &table, key);
            lines.push(format!("{line:<COMMENT_COLUMN$}# {comment}"));
        }
    }
    lines
}

#[test]
fn default_config_thresholds_are_the_rules_defaults() {
    common::keep_generated(
        "src/cli/default_config.toml",
        |lines| {
            let first = lines
                .iter()
                .position(|l| l.starts_with("[thresholds."))
                .expect("a [thresholds.*] table");
            let end = first
                + lines[first..]
                    .iter()
                    .position(|l| l.starts_with('[') && !l.starts_with("[thresholds."))
                    .expect("a table after the thresholds");
            // The blank line before the next table stays the file's own.
            first..if lines[end - 1].is_empty() {
                end - 1
            } else {
                end
            }
        },
        &generated(),
    );
}
