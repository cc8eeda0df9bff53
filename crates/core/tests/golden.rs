//! Golden tests for the record parser: each input file under tests/data parses into the values
//! in tests/golden (one JSON value per line: the `Invocation`, or the error). Set
//! `UPDATE_GOLDEN=1` to rewrite the expected files after a deliberate change, then review the
//! diff.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test or a tool: a panic is its report

use std::path::Path;

use bedrock_usage_core::parse_record;

fn check(input: &str, expected: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let text = std::fs::read_to_string(dir.join("data").join(input)).expect("input");
    let mut got = String::new();
    for (i, line) in text.lines().enumerate() {
        let v = match parse_record(line.as_bytes()) {
            Ok(inv) => serde_json::to_value(&inv).expect("serialize"),
            Err(e) => serde_json::json!({ "line": i + 1, "error": e.to_string() }),
        };
        got.push_str(&serde_json::to_string_pretty(&v).expect("json"));
        got.push('\n');
    }
    let path = dir.join("golden").join(expected);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if want != got {
        panic!(
            "{} differs from the parser's output (- expected, + got):\n{}rerun with UPDATE_GOLDEN=1 if the change is intended",
            path.display(),
            bedrock_usage_core::diff::line_diff(&want, &got)
        );
    }
}

#[test]
fn samples() {
    check("invocations.jsonl", "invocations.json");
}

#[test]
fn edge_cases() {
    check("edge-cases.jsonl", "edge-cases.json");
}
