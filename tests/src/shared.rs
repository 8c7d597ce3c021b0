//! Real third-party data kept beside the project in `../shared` (real Jira deliveries, the
//! Atlassian Document Format schema, PagerDuty's Events v2 OpenAPI): read, never copied into the
//! project. Without `../shared` a test prints a loud SKIPPED line and checks nothing of it.

use std::path::PathBuf;

use serde_json::Value;

/// `../shared` beside the workspace, if it is there.
pub fn dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    dir.is_dir().then_some(dir)
}

/// The JSON file at `relative` under `../shared`; `None` (after a loud SKIPPED line naming
/// `test`) when `../shared` is absent. A file that is there but not JSON is a failure.
pub fn json(test: &str, relative: &str) -> Option<Value> {
    let Some(dir) = dir() else {
        skipped(test, relative);
        return None;
    };
    let path = dir.join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is in ../shared's place but unreadable: {e}",
            path.display()
        )
    });
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

pub fn skipped(test: &str, relative: &str) {
    eprintln!(
        "\n==== SKIPPED: ../shared/{relative} is absent: {test} checked NOTHING of it ====\n"
    );
    println!("SKIPPED {test}: no ../shared");
}
