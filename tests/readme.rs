//! The README's issue-code table is generated from the catalog (codes, subsystems, severities,
//! triggers): a table that differs is rewritten in place, and the test fails so that the
//! change is reviewed and committed.

use std::path::Path;

use healthscore::core::scoring::catalog::CATALOG;

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
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let first = lines
        .iter()
        .position(|l| is_row(l))
        .expect("the issue-code table");
    let end = first + lines[first..].iter().take_while(|l| is_row(l)).count();
    let rows = catalog_rows();
    if lines[first..end] == rows {
        return;
    }
    let mut regenerated: Vec<&str> = lines[..first].to_vec();
    regenerated.extend(rows.iter().map(String::as_str));
    regenerated.extend(&lines[end..]);
    std::fs::write(&path, regenerated.join("\n") + "\n").expect("write README.md");
    panic!("README.md's issue-code table was regenerated from the catalog: review and commit it");
}
