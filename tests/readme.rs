//! The README's issue-code table is the catalog: same codes, subsystems, severities, triggers.

use healthscore::core::scoring::catalog::CATALOG;

#[test]
fn readme_issue_table_matches_the_catalog() {
    let readme = include_str!("../README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("| `") && line.contains("_"))
        .filter(|line| line.split('|').count() == 6)
        .collect();
    let expected: Vec<String> = CATALOG
        .iter()
        .map(|entry| {
            let subsystem = entry.subsystem.map_or("any", |s| s.key());
            let severity = entry.severity.as_str();
            format!(
                "| `{}` | {subsystem} | {severity} | {} |",
                entry.name, entry.trigger
            )
        })
        .collect();
    assert_eq!(
        rows, expected,
        "regenerate the README's issue-code table from the catalog"
    );
}
