//! The store's column segments: written at ingest (a new segment per day for new calls, a day
//! written again when it has many), read by `query` with answers equal to the rows' in every
//! state (segments missing, behind, damaged, of another store, half written by a killed ingest),
//! and `store check` saying consistent, rebuildable or damaged.

use std::path::{Path, PathBuf};

use crate::util::*;

/// Queries of every shape the columns answer differently: stats (counted together), sort and
/// limit (top rows), plain limits and dedup (the order calls were stored in), pushed-down
/// filters on texts, ids, counts and times, and fields that need several columns.
const QUERIES: &[&str] = &[
    "stats count(*) as n by developer",
    "stats count(*) as n, sum(cost_usd) as c, avg(output.outputTokenCount) as a, pct(output.outputTokenCount, 99) as p, stddev(input.inputTokenCount) as s by modelId, region",
    "filter ispresent(errorCode) | stats count(*) as n by errorCode",
    "filter requestMetadata.developer like 'car' | stats count(*) as n, max(output.outputTokenCount) as m",
    "filter output.outputTokenCount > 2000 and developer != 'alice' | stats count(*) as n by bin(1d)",
    "fields @timestamp, requestId | sort @timestamp desc | limit 20",
    "sort output.outputTokenCount desc, requestId | limit 7",
    "filter modelId like /haiku/ | fields requestId, operation | limit 30",
    "dedup modelId | fields modelId, requestId",
    "fields @timestamp, @message | limit 5",
    "filter @timestamp >= 1762300800000 and input.inputTokenCount < 3000 | fields requestId | sort requestId | limit 50",
    "stats earliest(requestId) as first, latest(requestId) as last, count_distinct(requestId) as calls",
    "stats count(*) as n, max(input.inputTokenCount) as hi, min(output.outputTokenCount) as lo, count(output.outputTokenCount) as c by developer, operation",
    "filter operation != 'Converse' | stats max(input.cacheReadInputTokenCount) as m, avg(output.outputTokenCount) as a by modelId, region, operation",
];

/// The answers that do not depend on the order calls were stored in (stats, and sorts with no
/// ties): equal between stores that hold the same calls in another order.
fn order_free(answers: Vec<(String, String)>) -> Vec<(String, String)> {
    answers
        .into_iter()
        .filter(|(q, _)| q.starts_with("stats") || q.contains("| stats") || q.contains("sort"))
        .collect()
}

fn answers(db: &Path, columns: bool, range: &[&str]) -> Vec<(String, String)> {
    QUERIES
        .iter()
        .map(|q| {
            let mut args = vec!["--db", s(db), "--format", "json", "query"];
            args.extend_from_slice(range);
            if !columns {
                args.push("--no-columns");
            }
            args.push(q);
            let out = run_ok(&args);
            (q.to_string(), stdout(&out))
        })
        .collect()
}

/// Every query gives the same answer from the columns as from the rows, whole and in a range
/// that cuts days.
fn assert_columns_agree(db: &Path, when: &str) {
    for range in [
        &[][..],
        &[
            "--since",
            "2026-11-04T06:30:00Z",
            "--until",
            "2026-11-09T12:00:00Z",
        ][..],
    ] {
        let rows = answers(db, false, range);
        let cols = answers(db, true, range);
        for ((q, a), (_, b)) in rows.iter().zip(&cols) {
            assert_eq!(a, b, "{when}: `{q}` {range:?}: columns and rows differ");
        }
    }
}

fn segments(db: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(format!("{}.columns", db.display()))
        .map(|d| {
            d.map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "cols"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn check(db: &Path, full: bool, code: i32) -> String {
    let mut args = vec!["--db", s(db), "store", "check"];
    if full {
        args.push("--full");
    }
    let out = run_expect(&args, code);
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("column segments"))
        .unwrap_or_default()
        .to_string();
    assert!(!line.is_empty(), "store check has no column line");
    line
}

fn corpus(t: &TempDir, records: u64, pieces: usize) -> (PathBuf, Vec<PathBuf>) {
    let (_, jsonl) = demo_corpus(records, 23, (0, 1));
    let text = String::from_utf8(jsonl).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let dir = t.path("corpus");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut files = Vec::new();
    for (i, part) in lines.chunks(lines.len() / pieces + 1).enumerate() {
        let p = dir.join(format!("part-{i:02}.jsonl"));
        std::fs::write(&p, part.join("\n") + "\n").expect("write");
        files.push(p);
    }
    (dir, files)
}

#[test]
fn segments_follow_the_store_and_answers_never_change() {
    let t = TempDir::new("columns");
    let (dir, files) = corpus(&t, 4000, 10);
    let db = t.db();
    // One ingest per piece: each adds a segment to the days it touches, and a day with more
    // than eight is written again as one.
    for f in &files {
        ingest(&db, &[f]);
    }
    assert!(check(&db, true, 0).contains("consistent: 4,000 of 4,000 calls"));
    let listed = segments(&db);
    let days = 30;
    assert!(
        listed.len() > days && listed.len() <= days * 8,
        "{} segments for {days} days",
        listed.len()
    );
    let clean = t.path("clean.db");
    ingest(&clean, &[&dir]);
    assert_eq!(
        order_free(answers(&db, true, &[])),
        order_free(answers(&clean, true, &[])),
        "ingested in pieces, the columns answer as ingested at once"
    );
    assert_columns_agree(&db, "after ten ingests");
    // The warnings too: fields no call has, hints, from a first pass that reads no texts.
    for q in [
        "fields @timestamp, erorCode, requestId | sort @timestamp desc | limit 5",
        "filter ispresent(errorCode) | stats count(*) by inferenceRegion, requestMetadata.team",
    ] {
        let cols = run_ok(&["--db", s(&db), "query", q]);
        let rows = run_ok(&["--db", s(&db), "query", "--no-columns", q]);
        assert_eq!(stdout(&cols), stdout(&rows), "{q}");
        let warned = |o: &std::process::Output| -> Vec<String> {
            stderr(o)
                .lines()
                .filter(|l| l.starts_with("warning"))
                .map(str::to_string)
                .collect()
        };
        assert!(!warned(&rows).is_empty(), "{q}: no warning");
        assert_eq!(warned(&cols), warned(&rows), "{q}");
    }

    // A day without its segments: read from the store, and said so.
    for p in listed.iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("2026-11-05"))
    }) {
        std::fs::remove_file(p).expect("rm");
    }
    let line = check(&db, false, 0);
    assert!(
        line.contains("rebuildable") && line.contains("2026-11-05"),
        "{line}"
    );
    assert_columns_agree(&db, "a day's segments removed");

    // A damaged column: `store check --full` fails naming the file; a query that reads the
    // column warns and reads those calls from the store.
    let victim = segments(&db)
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("2026-11-07"))
        })
        .expect("a segment of the 7th");
    let mut bytes = std::fs::read(&victim).expect("read");
    let at = bytes.len() - 3; // in the last column (cache_write_1h_tokens)
    bytes[at] ^= 0x5a;
    std::fs::write(&victim, &bytes).expect("write");
    let line = check(&db, true, 1);
    assert!(
        line.contains("FAIL") && line.contains("damaged") && line.contains(s(&victim)),
        "{line}"
    );
    let q = "stats max(cache_write_1h_tokens) as w, count(*) as n by model";
    let out = run_ok(&["--db", s(&db), "--format", "json", "query", q]);
    assert!(
        stderr(&out).contains("damaged") && stderr(&out).contains("store columns --rebuild"),
        "{}",
        stderr(&out)
    );
    let rows = run_ok(&[
        "--db",
        s(&db),
        "--format",
        "json",
        "query",
        "--no-columns",
        q,
    ]);
    assert_eq!(stdout(&out), stdout(&rows));
    assert_columns_agree(&db, "a damaged segment");

    // A segment of another store at the same place is never read.
    let other = t.path("other.db");
    ingest(&other, &[&files[0]]);
    let foreign = segments(&other).pop().expect("a segment");
    std::fs::copy(
        &foreign,
        Path::new(&format!("{}.columns", db.display())).join("2026-11-30_0_999999.cols"),
    )
    .expect("copy");
    let line = check(&db, false, 0);
    assert!(line.contains("another store"), "{line}");
    assert_columns_agree(&db, "a foreign segment");

    // `store columns --rebuild`: every day written again, left-overs removed.
    let out = run_ok(&["--db", s(&db), "store", "columns", "--rebuild"]);
    assert!(
        stderr(&out).contains("4,000 calls of 30 days"),
        "{}",
        stderr(&out)
    );
    assert!(check(&db, true, 0).contains("consistent"));
    assert_eq!(segments(&db).len(), days);
    assert_columns_agree(&db, "rebuilt");
    assert_eq!(
        order_free(answers(&db, true, &[])),
        order_free(answers(&clean, true, &[]))
    );
}

/// `kill -9` during ingest at random moments (while facts or segments are being written):
/// meanwhile the columns and the rows give the same answers and `store check` never fails;
/// after one clean run every answer equals a store that was never killed.
#[test]
fn kill_9_during_ingest_leaves_columns_consistent_or_rebuildable() {
    let t = TempDir::new("columns-crash");
    let (dir, _) = corpus(&t, 12_000, 6);
    let clean = t.path("clean.db");
    ingest(&clean, &[&dir]);
    let want = order_free(answers(&clean, true, &[]));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut r = rng(seed);
    let db = t.db();
    let (mut mid_run, mut states) = (0, std::collections::BTreeSet::new());
    for round in 0..6 {
        let mut child = bin()
            .args(["--db", s(&db), "ingest", "--no-progress", s(&dir)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(r.range(20, 900)));
        if child.try_wait().expect("wait").is_none() {
            mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !db.exists() {
            continue;
        }
        let line = check(&db, true, 0);
        states.insert(if line.contains("consistent") {
            "consistent"
        } else {
            "rebuildable"
        });
        let cols = answers(&db, true, &[]);
        let rows = answers(&db, false, &[]);
        for ((q, a), (_, b)) in cols.iter().zip(&rows) {
            assert_eq!(
                a, b,
                "round {round} (seed {seed}): `{q}`: columns and rows differ"
            );
        }
    }
    assert!(
        mid_run > 0,
        "no kill landed during an ingest (seed {seed}): make the corpus larger"
    );
    ingest(&db, &[&dir]);
    run_ok(&["--db", s(&db), "store", "columns"]);
    assert!(check(&db, true, 0).contains("consistent"), "seed {seed}");
    assert_eq!(order_free(answers(&db, true, &[])), want, "seed {seed}");
    assert_eq!(order_free(answers(&db, false, &[])), want, "seed {seed}");
    eprintln!("states seen after kills: {states:?}");
}
