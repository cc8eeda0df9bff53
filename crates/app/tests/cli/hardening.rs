//! Nothing silently lost: each test pins a case where input was once dropped, hung the ingest or
//! was read wrong, named after it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::readers::both_ways;
use crate::util::*;

fn samples() -> Vec<serde_json::Value> {
    std::fs::read_to_string(data("invocations.jsonl"))
        .expect("samples")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn jsonl(values: &[serde_json::Value]) -> String {
    values.iter().map(|v| v.to_string() + "\n").collect()
}

/// Runs the binary, failing the test (instead of hanging it) after `secs`.
fn run_within(secs: u64, args: &[&str]) -> std::process::Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "bedrock-usage {} did not finish in {secs} s\nstderr:\n{}",
                args.join(" "),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn stored(db: &std::path::Path) -> usize {
    let v: Vec<serde_json::Value> = serde_json::from_str(&dump(db)).expect("dump");
    v.len()
}

#[test]
fn process_substitution_is_read_once() {
    let t = TempDir::new("h-procsub");
    std::fs::write(t.path("f.jsonl"), jsonl(&samples())).expect("write");
    let script = format!(
        "{} --db {} ingest --no-progress <(cat {})",
        env!("CARGO_BIN_EXE_bedrock-usage"),
        s(&t.db()),
        s(&t.path("f.jsonl"))
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_remove("BEDROCK_USAGE_DB")
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored(&t.db()), samples().len(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file: read once"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_read_once_and_a_directory_holding_one_does_not_hang() {
    let t = TempDir::new("h-fifo");
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("good.jsonl"), jsonl(&samples())).expect("write");
    let fifo = dir.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    // The directory: the FIFO is skipped with a note, the good file beside it is read.
    let out = run_within(
        30,
        &["--db", s(&t.db()), "ingest", "--no-progress", s(&dir)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored(&t.db()), samples().len());
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    // The FIFO named on the command line: read once.
    let t2 = TempDir::new("h-fifo2");
    let (f, text) = (fifo.clone(), jsonl(&samples()));
    let writer = std::thread::spawn(move || std::fs::write(f, text));
    let out = run_within(
        30,
        &["--db", s(&t2.db()), "ingest", "--no-progress", s(&fifo)],
    );
    writer.join().expect("writer").expect("write fifo");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored(&t2.db()), samples().len());
}

#[cfg(unix)]
#[test]
fn a_directory_symlink_loop_is_walked_once() {
    let t = TempDir::new("h-loop");
    let a = t.path("loop/a");
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::write(a.join("f.jsonl"), jsonl(&samples())).expect("write");
    std::os::unix::fs::symlink("..", a.join("up")).expect("symlink");
    let out = run_within(
        30,
        &[
            "--db",
            s(&t.db()),
            "ingest",
            "--no-progress",
            s(&t.path("loop")),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored(&t.db()), samples().len());
    assert!(stderr(&out).contains("already walked"), "{}", stderr(&out));
}

#[test]
fn pretty_printed_records_are_read_whatever_the_line_breaks() {
    let t = TempDir::new("h-pretty");
    let text: String = samples()
        .iter()
        .map(|v| serde_json::to_string_pretty(v).expect("json") + "\n")
        .collect();
    let file = t.path("pasted.json");
    std::fs::write(&file, text).expect("write");
    let (stored_ids, read_ids, ingest_err, _) = both_ways(&[&file]);
    assert_eq!(stored_ids, read_ids);
    assert_eq!(
        stored_ids.lines().count(),
        samples().len() + 1,
        "{ingest_err}"
    );
    // And the same records as from the JSON lines.
    let (lines_ids, _, _, _) = both_ways(&[&data("invocations.jsonl")]);
    assert_eq!(stored_ids, lines_ids);
}

#[test]
fn a_byte_order_mark_at_the_start_is_not_part_of_the_first_record() {
    let t = TempDir::new("h-bom");
    let file = t.path("powershell.jsonl");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(jsonl(&samples()).into_bytes());
    std::fs::write(&file, &bytes).expect("write");
    let (stored_ids, read_ids, err, _) = both_ways(&[&file]);
    assert_eq!(stored_ids, read_ids);
    assert_eq!(stored_ids.lines().count(), samples().len() + 1, "{err}");
    assert!(!err.contains("bad inputs"), "{err}");
}

#[test]
fn logs_insights_results_and_console_exports_are_read() {
    let t = TempDir::new("h-insights");
    let recs = samples();
    // `aws logs get-query-results`: rows of {field, value}, the record in @message.
    let rows: Vec<serde_json::Value> = recs
        .iter()
        .map(|r| {
            serde_json::json!([
                {"field": "@timestamp", "value": "2026-11-03 02:14:07.000"},
                {"field": "@message", "value": r.to_string()},
                {"field": "@ptr", "value": "abc"}
            ])
        })
        .collect();
    let results = serde_json::json!({
        "queryLanguage": "CWLI",
        "results": rows,
        "statistics": {"recordsMatched": recs.len()},
        "status": "Complete"
    });
    let a = t.path("get-query-results.json");
    std::fs::write(&a, serde_json::to_string_pretty(&results).expect("json")).expect("write");
    // The console's JSON export: an array of objects with @message.
    let export: Vec<serde_json::Value> = recs
        .iter()
        .map(|r| serde_json::json!({"@timestamp": "2026-11-03 02:14:07.000", "@message": r.to_string()}))
        .collect();
    let b = t.path("console-export.json");
    std::fs::write(&b, serde_json::to_string(&export).expect("json")).expect("write");
    let (want, _, _, _) = both_ways(&[&data("invocations.jsonl")]);
    for f in [&a, &b] {
        let (stored_ids, read_ids, err, _) = both_ways(&[f]);
        assert_eq!(stored_ids, read_ids, "{}", f.display());
        assert_eq!(stored_ids, want, "{}: {err}", f.display());
    }
}

#[test]
fn a_run_that_reads_nothing_exits_non_zero() {
    let t = TempDir::new("h-nothing");
    let out = run_expect(
        &[
            "--db",
            s(&t.db()),
            "ingest",
            "--no-progress",
            s(&t.path("typo.jsonl")),
        ],
        2,
    );
    assert!(
        stderr(&out).contains("nothing could be read"),
        "{}",
        stderr(&out)
    );
    std::fs::create_dir_all(t.path("empty")).expect("mkdir");
    run_expect(
        &[
            "--db",
            s(&t.db()),
            "ingest",
            "--no-progress",
            s(&t.path("empty")),
        ],
        2,
    );
    // Files that are unchanged since the last run were read before: that is not a failure.
    std::fs::write(t.path("f.jsonl"), jsonl(&samples())).expect("write");
    ingest(&t.db(), &[&t.path("f.jsonl")]);
    ingest(&t.db(), &[&t.path("f.jsonl")]);
}

#[test]
fn query_since_after_until_is_refused_as_report_does() {
    let out = run_expect(
        &[
            "query",
            "--from",
            s(&data("invocations.jsonl")),
            "--since",
            "2026-11-05",
            "--until",
            "2026-11-01",
            "stats count(*)",
        ],
        2,
    );
    assert!(
        stderr(&out).contains("--since must be before --until"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_unknown_field_hint_never_suggests_the_field_itself() {
    // `cost_usd` is a field of the store, not of the files: no event has it here.
    let out = run_ok(&[
        "query",
        "--from",
        s(&data("invocations.jsonl")),
        "fields cost_usd",
    ]);
    let err = stderr(&out);
    assert!(err.contains("no event has the field `cost_usd`"), "{err}");
    assert!(!err.contains("did you mean `cost_usd`"), "{err}");
}
