//! The README's issue-code table is generated from the catalog (codes, subsystems, severities,
//! triggers): a table that differs is rewritten in place, and the test fails so that the
//! change is reviewed and committed.

mod common;

use healthscore::model::CATALOG;

fn is_row(line: &str) -> bool {
    line.starts_with("| `") && line.contains('_') && line.split('|').count() == 6
}

fn catalog_rows() -> Vec<String> {
    CATALOG
        .iter()
        .map(|entry| {
            let subsystem = entry.subsystem.map_or("any", |s| s.key());
            let severity = entry.severity.as_str();
            format!(
                "| `{}` | {subsystem} | {severity} | {} |",
                entry.name, entry.trigger
            )
        })
        .collect()
}

#[test]
fn readme_issue_table_is_the_catalog() {
    common::keep_generated(
        "README.md",
        |lines| {
            let first = lines
                .iter()
                .position(|l| is_row(l))
                .expect("the issue-code table");
            first..first + lines[first..].iter().take_while(|l| is_row(l)).count()
        },
        &catalog_rows(),
    );
}
