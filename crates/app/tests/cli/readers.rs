//! One reader for `ingest` and `query --from`: the same file gives the same records either way.
//! Each test is a regression test for a place where the two readers once disagreed.

use crate::util::*;

/// The request ids a query over the store finds after `ingest`, and those `query --from` finds
/// in the files themselves, with both runs' stderr.
pub fn both_ways(files: &[&std::path::Path]) -> (String, String, String, String) {
    let t = TempDir::new("readers");
    let db = t.db();
    let mut args = vec!["--db", s(&db), "ingest", "--no-progress"];
    args.extend(files.iter().map(|p| s(p)));
    let ingested = run_ok(&args);
    let q = "fields requestId | sort requestId asc";
    let stored = run_ok(&["--db", s(&db), "--format", "csv", "query", q]);
    let mut args = vec!["--format", "csv", "query", q];
    for f in files {
        args.extend(["--from", s(f)]);
    }
    let read = run_ok(&args);
    (
        stdout(&stored),
        stdout(&read),
        stderr(&ingested),
        stderr(&read),
    )
}

#[test]
fn export_line_without_a_space_is_a_bad_line_in_both() {
    let t = TempDir::new("readers-export");
    let samples = std::fs::read_to_string(data("invocations.jsonl")).expect("samples");
    let lines: Vec<&str> = samples.lines().collect();
    let file = t.path("export.log");
    // An export-task line (timestamp, space, record), then a timestamp with no record after it.
    let text = format!(
        "2026-11-03T02:14:07.000Z {}\n1730600047000\n{}\n",
        lines[0], lines[1]
    );
    std::fs::write(&file, text).expect("write");
    let (stored, read, ingest_err, query_err) = both_ways(&[&file]);
    assert_eq!(
        stored, read,
        "ingest and query --from read different records"
    );
    assert_eq!(stored.lines().count(), 3, "{stored}"); // header and two records
    let why =
        "export.log:2: not a record: the line starts with a number and has no record after it";
    assert!(ingest_err.contains(why), "{ingest_err}");
    assert!(query_err.contains(why), "{query_err}");
}

#[test]
fn filter_log_events_document_is_streamed_in_both() {
    let t = TempDir::new("readers-fle");
    let whole = std::fs::read_to_string(data("filter-log-events.json")).expect("doc");
    // Cut inside the last event: the events before the cut are read by both, and both say
    // where the document broke.
    let cut = whole.rfind("\"message\"").expect("an event");
    let file = t.path("cut.json");
    std::fs::write(&file, &whole[..cut]).expect("write");
    let (stored, read, ingest_err, query_err) = both_ways(&[&file]);
    assert_eq!(
        stored, read,
        "ingest and query --from read different records"
    );
    assert!(
        stored.lines().count() >= 2,
        "no event before the cut was read: {stored}"
    );
    for err in [&ingest_err, &query_err] {
        assert!(
            err.contains("not a valid `aws logs filter-log-events` document"),
            "{err}"
        );
    }
    // And whole, the same records either way.
    let (stored, read, _, _) = both_ways(&[&data("filter-log-events.json")]);
    assert_eq!(stored, read);
    assert_eq!(stored.lines().count(), 4, "{stored}");
}
