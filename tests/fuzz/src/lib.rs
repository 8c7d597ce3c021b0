//! Hostile inputs for the parsers that face the outside: the finding parser (triage) and the
//! Jira webhook handler (ir-approve). Each input is a seed (a sample event in `events/`, a real
//! one in `../shared/real-findings/events/`, a real Jira delivery in
//! `../shared/real-jira-webhooks/`) with up to six mutations drawn by proptest: structural ones
//! on the JSON tree (remove a node, change its type, hostile strings and numbers, nesting past
//! serde's limit, long arrays, new keys) and byte-level ones on the text (truncate, flip,
//! insert, copy). [`targets`] holds the two handlers with their mocked AWS clients.
//! `tests/tests/fuzz.rs` runs a short pass with a fixed seed; `make fuzz` (the `fuzz` binary,
//! optimised) runs millions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;

/// The workspace's root.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared` beside the workspace (real third-party data, never copied in), if it is there.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = workspace_dir().join("../shared");
    dir.is_dir().then_some(dir)
}

/// The JSON seeds in `dir` (sorted), skipping the files that are not events.
pub fn seeds_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|x| x == "json")
            && p.file_name().is_some_and(|n| n != "expected.json")
    });
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| serde_json::from_slice::<Value>(b).is_ok())
        .collect()
}

/// Strings that have broken parsers: empty, control and bidi characters, huge, paths,
/// half ARNs and ids, numbers as text, bad dates and addresses.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "\u{202e}evil\u{202c}",
    "\u{feff}",
    "../../../etc/passwd",
    "arn:aws:iam::",
    "arn:aws:iam::111122223333:role/",
    "arn:aws:s3:::",
    "i-",
    "inc-",
    "999999999999999999999999",
    "-1",
    "1e309",
    "NaN",
    "%s%n%x",
    "😀👨‍👩‍👧",
    "300.1.1.1",
    "::ffff:1.2.3.4",
    "2026-13-45T99:99:99Z",
    "Backdoor:EC2/",
    "::::",
    "{\"nested\": true}",
];

/// Numbers at the edges.
const NUMBERS: &[f64] = &[0.0, -0.0, -1.0, 1e308, -1e308, 9_007_199_254_740_993.0, 0.5];

/// How many nodes `v` has (itself included).
fn count(v: &Value) -> u64 {
    1 + match v {
        Value::Object(o) => o.values().map(count).sum(),
        Value::Array(a) => a.iter().map(count).sum(),
        _ => 0,
    }
}

/// The `k`-th node of `v` in pre-order (`v` itself is 0), with the number of nodes skipped.
fn nth(v: &mut Value, k: u64) -> Result<&mut Value, u64> {
    if k == 0 {
        return Ok(v);
    }
    let mut skipped = 1;
    let children: Vec<&mut Value> = match v {
        Value::Object(o) => o.values_mut().collect(),
        Value::Array(a) => a.iter_mut().collect(),
        _ => return Err(skipped),
    };
    for child in children {
        match nth(child, k - skipped) {
            Ok(found) => return Ok(found),
            Err(n) => skipped += n,
        }
    }
    Err(skipped)
}

/// Removes one child of the `k`-th node (by `b`), if it has any.
fn remove_child(doc: &mut Value, k: u64, b: u64) {
    match nth(doc, k) {
        Ok(Value::Object(o)) if !o.is_empty() => {
            let key = o.keys().nth((b % o.len() as u64) as usize).cloned();
            if let Some(key) = key {
                o.remove(&key);
            }
        }
        Ok(Value::Array(a)) if !a.is_empty() => {
            a.remove((b % a.len() as u64) as usize);
        }
        _ => {}
    }
}

fn pick<T: Clone>(items: &[T], n: u64) -> T {
    items[(n % items.len() as u64) as usize].clone()
}

/// The node's value with its type changed.
fn retyped(v: &Value, n: u64) -> Value {
    match v {
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Bool(n.is_multiple_of(2))),
        Value::Number(x) => Value::String(x.to_string()),
        Value::Object(o) => Value::Array(o.values().cloned().collect()),
        Value::Array(_) => Value::Object(Default::default()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Null => Value::String(pick(HOSTILE, n).into()),
    }
}

/// One structural mutation of `doc`: `kind` picks it, `a` the node, `b` the variant.
fn mutate_tree(doc: &mut Value, kind: u8, a: u64, b: u64) {
    let at = a % count(doc);
    if kind == 0 {
        remove_child(doc, at, b);
        return;
    }
    let Ok(node) = nth(doc, at) else {
        return;
    };
    *node = match kind {
        1 => Value::Null,
        2 => retyped(node, b),
        3 => Value::String(match b % 4 {
            0 => "A".repeat(70_000),
            _ => pick(HOSTILE, b).to_string(),
        }),
        4 => serde_json::Number::from_f64(pick(NUMBERS, b))
            .map(Value::Number)
            .unwrap_or(Value::from(u64::MAX)),
        // Around serde_json's 128-level limit: below it reaches the parsers, above it not.
        5 => (0..(20 + b % 200)).fold(node.take(), |v, _| Value::Array(vec![v])),
        // Long arrays of small values, short ones of large values (inputs stay under ~1 MB).
        6 => {
            let copies = match node {
                Value::Array(_) | Value::Object(_) => 1 + b % 20,
                _ => 1 + b % 2000,
            };
            Value::Array(vec![node.take(); copies as usize])
        }
        _ => {
            let mut o = match node.take() {
                Value::Object(o) => o,
                other => [("value".to_string(), other)].into_iter().collect(),
            };
            let key = pick(&["__proto__", "detail", "Detail", "id", "", "Resources"], b);
            o.insert(key.into(), Value::String(pick(HOSTILE, b / 7).into()));
            Value::Object(o)
        }
    };
}

/// One byte-level mutation of `text`.
fn mutate_bytes(text: &mut Vec<u8>, kind: u8, a: u64, b: u64) {
    if text.is_empty() {
        text.extend_from_slice(&b.to_le_bytes());
        return;
    }
    let at = (a % text.len() as u64) as usize;
    match kind {
        0 => text.truncate(at),
        1 => text[at] ^= (b as u8) | 1,
        2 => {
            let bytes = b.to_le_bytes();
            text.splice(at..at, bytes);
        }
        _ => {
            let from = (b % text.len() as u64) as usize;
            let len = (b as usize >> 8) % 64;
            let slice: Vec<u8> = text[from..(from + len).min(text.len())].to_vec();
            text.splice(at..at, slice);
        }
    }
}

/// One mutation: `kind` < 8 works on the tree, 8..12 on the bytes.
pub type Op = (u8, u64, u64);

/// `seed` with `ops` applied: tree mutations first, then byte mutations on the text.
pub fn mutate(seed: &Value, ops: &[Op]) -> Vec<u8> {
    let mut doc = seed.clone();
    for &(kind, a, b) in ops.iter().filter(|op| op.0 < 8) {
        mutate_tree(&mut doc, kind, a, b);
    }
    let mut text = serde_json::to_vec(&doc).unwrap_or_default();
    for &(kind, a, b) in ops.iter().filter(|op| op.0 >= 8) {
        mutate_bytes(&mut text, kind - 8, a, b);
    }
    text
}

/// Inputs drawn from `seeds`.
pub fn inputs(seeds: Arc<Vec<Value>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len().max(1);
    let ops = prop::collection::vec((0u8..12, any::<u64>(), any::<u64>()), 0..6);
    (0..n, ops).prop_map(move |(i, ops)| mutate(seeds.get(i).unwrap_or(&Value::Null), &ops))
}

/// Runs `check` on `cases` inputs drawn from `seeds` with the fixed `seed`; a panic or an `Err`
/// fails (proptest then shrinks it to a small input). Returns the first failure.
pub fn run(
    seeds: Vec<Vec<u8>>,
    cases: u32,
    seed: u64,
    check: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    // proptest wants `Fn`; the checks count what they see.
    let check = std::cell::RefCell::new(check);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let parsed: Vec<Value> = seeds
        .iter()
        .filter_map(|s| serde_json::from_slice(s).ok())
        .collect();
    let outcome = runner.run(&inputs(Arc::new(parsed)), |input| {
        (check.borrow_mut())(&input).map_err(TestCaseError::fail)
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, input)) => Err(format!(
            "{why}; input ({} bytes): {}",
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(2_000)])
        )),
        Err(TestError::Abort(why)) => Err(format!("aborted: {why}")),
    }
}

pub mod targets;
