//! Every row of `../shared/real-findings/expected.tsv` (55 real GuardDuty and Security Hub
//! events from public sources, each with the route, primary resource and verdict a reader of the
//! AWS docs expects): the parser accepts or rejects the event as the row says, with a typed
//! error, never a panic, and each finding it accepts takes the row's route and primary resource.
//! Skipped loudly when `../shared` is absent.

use ir_core::incident::{Incident, Resource};
use ir_core::policy::route_for;

/// One row: file, route(s), primary resource id(s), verdict, notes.
struct Row {
    file: String,
    routes: Vec<String>,
    resources: Vec<String>,
    accept: bool,
    notes: String,
}

fn rows(text: &str) -> Vec<Row> {
    let lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    lines
        .skip(1) // the header
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(
                cols.len() >= 4,
                "expected.tsv row with too few columns: {line}"
            );
            let list = |s: &str| s.split(';').map(str::to_string).collect();
            Row {
                file: cols[0].to_string(),
                routes: list(cols[1]),
                resources: list(cols[2]),
                accept: match cols[3] {
                    "accept" => true,
                    "reject" => false,
                    other => panic!("{}: verdict `{other}`", cols[0]),
                },
                notes: cols.get(4).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

/// The primary resource's own id, as the corpus writes it (`-` for none).
fn bare_id(incident: &Incident) -> String {
    match incident.primary_resource() {
        None => "-".into(),
        Some(Resource::Ec2Instance { instance_id, .. }) => instance_id.clone(),
        Some(Resource::IamUser { user_name, .. }) => user_name.clone(),
        Some(Resource::IamRole { role_name, .. }) => role_name.clone(),
        Some(Resource::RootUser { .. }) => "root".into(),
        Some(Resource::S3Bucket { bucket_name, .. }) => bucket_name.clone(),
        // The corpus names it by its last ARN part (`sg-…`, `AWS::::Account:<id>` → `<id>`);
        // the incident keeps ASFF's whole `Id`.
        Some(Resource::Other { id, .. }) => id.rsplit(['/', ':']).next().unwrap_or(id).to_string(),
    }
}

/// What the parser made of one file, or why the row does not hold.
fn check(dir: &std::path::Path, row: &Row) -> Result<String, String> {
    let path = dir.join("events").join(&row.file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("unreadable: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let parsed = std::panic::catch_unwind(|| Incident::from_event_value(value))
        .map_err(|_| "the parser panicked".to_string())?;
    match (parsed, row.accept) {
        (Err(e), false) => Ok(format!("rejected: {} ({e})", e.error_type())),
        (Err(e), true) => Err(format!(
            "rejected ({}: {e}), expected accepted",
            e.error_type()
        )),
        (Ok(incidents), false) => Err(format!(
            "accepted {} finding(s), expected rejected",
            incidents.len()
        )),
        (Ok(incidents), true) => {
            let policy = ir_core::LoadedPolicy::default_policy().expect("default policy");
            let decisions: Vec<_> = incidents
                .iter()
                .map(|i| policy.policy.evaluate(i, chrono::Utc::now()))
                .collect();
            let routes: Vec<String> = incidents.iter().map(|i| route_for(i).to_string()).collect();
            let decided: Vec<String> = decisions.iter().map(|d| d.route.to_string()).collect();
            if decided != routes {
                return Err(format!(
                    "the default policy routes {decided:?}, the parser {routes:?}"
                ));
            }
            // An attack sequence without its signals' resources says why nothing is contained.
            for (i, d) in incidents.iter().zip(&decisions) {
                let unnamed =
                    i.finding_type.starts_with("AttackSequence:") && i.primary_resource().is_none();
                if unnamed
                    && !d
                        .reasons
                        .iter()
                        .any(|r| r.contains("attack sequence without"))
                {
                    return Err(format!(
                        "attack sequence decided without saying why: {:?}",
                        d.reasons
                    ));
                }
            }
            let ids: Vec<String> = incidents.iter().map(bare_id).collect();
            if routes != row.routes || ids != row.resources {
                return Err(format!(
                    "routes {routes:?} resources {ids:?}, expected {:?} {:?}",
                    row.routes, row.resources
                ));
            }
            Ok(format!("{} -> {}", routes.join(";"), ids.join(";")))
        }
    }
}

#[test]
fn every_real_finding_is_parsed_as_the_corpus_expects() {
    let Some(shared) = ir_tests::shared::dir() else {
        ir_tests::shared::skipped("real findings corpus", "real-findings/expected.tsv");
        return;
    };
    let dir = shared.join("real-findings");
    let table = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    let rows = rows(&table);
    assert!(
        rows.len() >= 40,
        "expected.tsv has only {} rows",
        rows.len()
    );
    let mut failures = Vec::new();
    for row in &rows {
        match check(&dir, row) {
            Ok(seen) => println!("ok   {:<55} {seen}", row.file),
            Err(why) => {
                println!("FAIL {:<55} {why} [{}]", row.file, row.notes);
                failures.push(format!("{}: {why}", row.file));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows fail:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
