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

#[cfg(unix)]
#[test]
fn a_new_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempDir::new("h-perm");
    let db = t.path("private/dir/usage.db");
    ingest(&db, &[&data("invocations.jsonl")]);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&t.path("private/dir")), 0o700);
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_as_it_was() {
    let t = TempDir::new("h-foreign");
    let db = t.path("other.db");
    let made = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table notes(x)'); c.commit()",
            s(&db),
        ])
        .status()
        .expect("python3");
    assert!(made.success());
    let out = run_expect(
        &[
            "--db",
            s(&db),
            "ingest",
            "--no-progress",
            s(&data("invocations.jsonl")),
        ],
        2,
    );
    assert!(
        stderr(&out).contains("not a bedrock-usage store"),
        "{}",
        stderr(&out)
    );
    let tables = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(','.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute('select name from sqlite_master order by name')))",
            s(&db),
        ])
        .output()
        .expect("python3");
    assert_eq!(stdout(&tables).trim(), "notes");
    // Not a database at all: the file is named, with what to do.
    std::fs::write(
        t.path("text.db"),
        "hello, this is not a database at all, just some text to fill a page....",
    )
    .expect("write");
    let out = run_expect(&["--db", s(&t.path("text.db")), "report"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("text.db") && err.contains("not an SQLite database"),
        "{err}"
    );
}

#[test]
fn reading_commands_never_wait_for_a_writer() {
    let t = TempDir::new("h-readers");
    ingest(&t.db(), &[&data("invocations.jsonl")]);
    // Another process holds the write lock for longer than the test waits.
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('begin immediate'); print('locked', flush=True); time.sleep(20)",
            s(&t.db()),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    for args in [
        vec!["--db", s(&t.db()), "report"],
        vec!["--db", s(&t.db()), "query", "stats count(*)"],
        vec!["--db", s(&t.db()), "pricing", "unpriced"],
    ] {
        let out = run_within(10, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn escape_sequences_and_formulas_in_fields_stay_inert() {
    let t = TempDir::new("h-escapes");
    // (From the shared role, whose metadata is believed.)
    let mut r = samples()[2].clone();
    r["requestMetadata"] = serde_json::json!({"developer": "\u{1b}[31mevil\nnext"});
    let mut r2 = samples()[3].clone();
    r2["requestMetadata"] = serde_json::json!({"developer": "=HYPERLINK(\"x\")"});
    std::fs::write(t.path("f.jsonl"), jsonl(&[r, r2])).expect("write");
    ingest(&t.db(), &[&t.path("f.jsonl")]);
    let table = run_ok(&["--db", s(&t.db()), "report"]);
    let text = stdout(&table) + &stderr(&table);
    assert!(
        !text.contains('\u{1b}'),
        "an escape reached the terminal: {text:?}"
    );
    assert!(text.contains("\\u{1b}[31mevil\\nnext"), "{text}");
    let csv = stdout(&run_ok(&["--db", s(&t.db()), "--format", "csv", "report"]));
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
}

fn demo_store(t: &TempDir) -> std::path::PathBuf {
    let (_, jsonl) = demo_corpus(3000, 9, (0, 0));
    std::fs::write(t.path("demo.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("demo.jsonl")]);
    demo_config(t)
}

#[test]
fn unpriced_calls_are_counted_the_same_at_every_grain_and_never_as_zero_cost() {
    let t = TempDir::new("h-unpriced");
    let cfg = demo_store(&t);
    let unpriced = |extra: &[&str]| -> u64 {
        report_csv(&t.db(), Some(&cfg), extra)
            .iter()
            .map(|r| r["unpriced_calls"].parse::<u64>().expect("n"))
            .sum()
    };
    let utc = unpriced(&["--by", "month"]);
    assert!(utc > 0, "the demo has unpriced calls");
    assert_eq!(utc, unpriced(&["--by", "month", "--tz", "Europe/Berlin"]));
    assert_eq!(utc, unpriced(&["--by", "day", "--tz", "Asia/Kolkata"]));
    assert_eq!(
        utc,
        unpriced(&["--by", "model", "--since", "2026-11-03T00:07:00Z"])
            + unpriced(&["--by", "model", "--until", "2026-11-03T00:07:00Z"])
    );
    let listed = run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&cfg),
        "--format",
        "csv",
        "pricing",
        "unpriced",
    ]);
    let listed: u64 = parse_csv(&stdout(&listed))
        .iter()
        .map(|r| r["calls"].parse::<u64>().expect("n"))
        .sum();
    assert_eq!(listed, utc);
    // A group whose calls are all unpriced has no cost in JSON (null), not 0.
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&cfg),
        "--format",
        "json",
        "report",
        "--by",
        "model",
    ]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let v2 = rows
        .iter()
        .find(|r| r["model"] == "meta.llama3-1-70b-instruct")
        .expect("the unpriced model's row");
    assert!(v2["cost_usd"].is_null(), "{v2}");
    assert!(rows
        .iter()
        .filter(|r| r["model"] != "meta.llama3-1-70b-instruct")
        .all(|r| r["cost_usd"].is_number()));
    // The table says a partial cost is partial.
    let table = stdout(&report_run(&t.db(), &cfg, &["--by", "developer"]));
    assert!(table.contains(" unpriced"), "{table}");
}

#[test]
fn query_file_and_report_top() {
    let t = TempDir::new("h-top");
    let cfg = demo_store(&t);
    std::fs::write(t.path("q.insights"), "stats count(*) as n\n| sort n desc").expect("write");
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--format",
        "csv",
        "query",
        "--query-file",
        s(&t.path("q.insights")),
    ]);
    assert_eq!(stdout(&out).trim(), "n\n3000");
    let all = report_csv(&t.db(), Some(&cfg), &["--by", "developer"]);
    let top = report_csv(&t.db(), Some(&cfg), &["--by", "developer", "--top", "2"]);
    assert_eq!(top.len(), 2);
    let cost = |r: &std::collections::BTreeMap<String, String>| {
        r["cost_usd"].parse::<f64>().unwrap_or(0.0)
    };
    let mut costs: Vec<f64> = all.iter().map(cost).collect();
    costs.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(
        top.iter().map(cost).collect::<Vec<_>>(),
        costs[..2].to_vec()
    );
    let table = stdout(&report_run(&t.db(), &cfg, &["--top", "2"]));
    assert!(table.contains("top 2 shown"), "{table}");
}

#[test]
fn records_dated_in_the_future_are_said() {
    let t = TempDir::new("h-future");
    let mut r = samples()[0].clone();
    r["timestamp"] = serde_json::Value::String("2099-01-01T00:00:00Z".into());
    std::fs::write(t.path("f.jsonl"), jsonl(&[r])).expect("write");
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        s(&t.path("f.jsonl")),
    ]);
    assert!(
        stderr(&out).contains("dated more than a day in the future"),
        "{}",
        stderr(&out)
    );
}

/// `n` sample records with request ids `{tag}-0`, `{tag}-1`, ... (all the same length).
fn records(tag: &str, n: usize) -> Vec<serde_json::Value> {
    let base = samples();
    (0..n)
        .map(|i| {
            let mut r = base[i % base.len()].clone();
            r["requestId"] = serde_json::Value::String(format!("{tag}-{i:04}"));
            r
        })
        .collect()
}

fn fle_doc(events: &[serde_json::Value]) -> String {
    let ev: Vec<serde_json::Value> = events
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::json!({"logStreamName": "aws/bedrock/modelinvocations", "timestamp": 1_762_000_000_000i64 + i as i64, "message": r.to_string(), "ingestionTime": 1_762_000_000_000i64, "eventId": format!("{i}")}))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"events": ev, "searchedLogStreams": []}))
        .expect("json")
}

fn ingest_err(db: &std::path::Path, file: &std::path::Path) -> String {
    stderr(&run_ok(&[
        "--db",
        s(db),
        "ingest",
        "--no-progress",
        s(file),
    ]))
}

fn touch_later(file: &std::path::Path) {
    let f = std::fs::File::options()
        .write(true)
        .open(file)
        .expect("open");
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(10))
        .expect("mtime");
}

#[test]
fn a_filter_log_events_export_that_grew_is_read_again_whole() {
    let t = TempDir::new("h-fle-grown");
    let file = t.path("export.json");
    let all = records("fle", 60);
    std::fs::write(&file, fle_doc(&all[..30])).expect("write");
    ingest_err(&t.db(), &file);
    assert_eq!(stored(&t.db()), 30);
    // Exported again, larger: the same first events, then more.
    std::fs::write(&file, fle_doc(&all)).expect("write");
    let err = ingest_err(&t.db(), &file);
    assert_eq!(stored(&t.db()), 60, "{err}");
    assert!(!err.contains("bad inputs"), "{err}");
    // And then it is unchanged.
    let out = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        s(&file),
    ]));
    assert!(out.contains("nothing new"), "{out}");
}

#[test]
fn a_file_rewritten_in_place_with_the_same_size_and_head_is_read_again() {
    let t = TempDir::new("h-rewritten");
    let file = t.path("f.jsonl");
    let first = records("aaaa", 6);
    std::fs::write(&file, jsonl(&first)).expect("write");
    ingest_err(&t.db(), &file);
    // The same size and the same first 4 KiB, other records at the end.
    let mut second = first.clone();
    for (i, r) in second.iter_mut().enumerate().skip(3) {
        r["requestId"] = serde_json::Value::String(format!("bbbb-{i:04}"));
    }
    std::fs::write(&file, jsonl(&second)).expect("write");
    assert_eq!(
        std::fs::metadata(&file).expect("meta").len() as usize,
        jsonl(&first).len()
    );
    touch_later(&file);
    ingest_err(&t.db(), &file);
    assert_eq!(stored(&t.db()), 9, "the rewritten records must be read");
}

#[test]
fn a_file_that_grew_after_a_change_in_what_was_read_is_read_from_the_start() {
    let t = TempDir::new("h-grown-changed");
    let file = t.path("f.jsonl");
    let first = records("cccc", 4);
    std::fs::write(&file, jsonl(&first)).expect("write");
    ingest_err(&t.db(), &file);
    // The last record read before is replaced (same length), and one more is appended.
    let mut second = first.clone();
    second[3]["requestId"] = serde_json::Value::String("dddd-0003".into());
    second.push(records("eeee", 1)[0].clone());
    std::fs::write(&file, jsonl(&second)).expect("write");
    ingest_err(&t.db(), &file);
    assert_eq!(
        stored(&t.db()),
        6,
        "the changed record and the new one must both be read"
    );
}

#[test]
fn the_demo_never_writes_into_the_store_of_the_environment() {
    let t = TempDir::new("h-demo");
    let real = t.path("real.db");
    let out = bin()
        .env("BEDROCK_USAGE_DB", &real)
        .args(["demo", "--seed", "5", "--records", "300"])
        .output()
        .expect("demo");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !real.exists(),
        "the demo wrote into BEDROCK_USAGE_DB's store"
    );
    // Its "try next" lines reproduce its figures.
    let text = stdout(&out);
    assert!(text.contains("--seed 5 --records 300"), "{text}");
    let demo_csv = |args: &[&str]| {
        let mut a = vec!["--format", "csv", "demo", "--seed", "5", "--records", "300"];
        a.extend_from_slice(args);
        let out = run_ok(&a);
        stdout(&out)
            .lines()
            .take_while(|l| !l.starts_with("model,"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let kept = t.path("kept.db");
    let shown = demo_csv(&["--db", s(&kept)]);
    assert!(
        t.path("kept.toml").exists(),
        "the demo's config is saved beside its store"
    );
    let dir = t.path("corpus");
    run_ok(&[
        "demo",
        "--write",
        s(&dir),
        "--seed",
        "5",
        "--records",
        "300",
        "--month",
        "2026-11",
        "--body-kb",
        "0-0",
    ]);
    let db = t.path("corpus.db");
    ingest(&db, &[&dir.join("AWSLogs")]);
    let again = stdout(&run_ok(&[
        "--db",
        s(&db),
        "--config",
        s(&dir.join("bedrock-usage.toml")),
        "--format",
        "csv",
        "report",
        "--by",
        "developer",
    ]));
    assert_eq!(shown.trim(), again.trim());
}

#[test]
fn filters_match_case_insensitively_and_before_aliasing_and_say_when_nothing_matches() {
    let t = TempDir::new("h-filters");
    let cfg = demo_store(&t);
    let devs = |extra: &[&str]| -> Vec<String> {
        report_csv(&t.db(), Some(&cfg), extra)
            .iter()
            .map(|r| r["developer"].clone())
            .collect()
    };
    assert_eq!(devs(&["--developer", "Alice"]), vec!["alice".to_string()]);
    assert_eq!(
        devs(&["--developer", "BOB@example.com"]),
        vec!["bob".to_string()]
    );
    assert_eq!(devs(&["--team", "PAYMENTS"]).len(), 2);
    let out = report_run(&t.db(), &cfg, &["--developer", "nobody"]);
    let err = stderr(&out);
    assert!(
        err.contains("no calls match --developer nobody") && err.contains("alice, bob"),
        "{err}"
    );
}

#[test]
fn sort_by_an_aggregate_or_a_bin_as_written_in_stats() {
    let t = TempDir::new("h-sort");
    let cfg = demo_store(&t);
    let q = |query: &str| -> Vec<std::collections::BTreeMap<String, String>> {
        parse_csv(&stdout(&run_ok(&[
            "--db",
            s(&t.db()),
            "--config",
            s(&cfg),
            "--format",
            "csv",
            "query",
            query,
        ])))
    };
    let rows = q("stats count(*) by developer | sort count(*) desc | limit 3");
    let n: Vec<u64> = rows
        .iter()
        .map(|r| r["count(*)"].parse().expect("n"))
        .collect();
    assert_eq!(n.len(), 3);
    assert!(n.windows(2).all(|w| w[0] >= w[1]), "{n:?}");
    let all = q("stats count(*) as c by developer | sort c desc");
    assert_eq!(n[0].to_string(), all[0]["c"], "the top row is the largest");
    let rows =
        q("stats sum(input.inputTokenCount) by developer | sort sum(input.inputTokenCount) asc");
    let v: Vec<u64> = rows
        .iter()
        .map(|r| r["sum(input.inputTokenCount)"].parse().expect("n"))
        .collect();
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
    let rows = q("stats count(*) by bin(1d) | sort bin(1d) desc");
    let days: Vec<String> = rows.iter().map(|r| r["bin(1d)"].clone()).collect();
    let mut sorted = days.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(days, sorted);
}

#[test]
fn store_check_finds_a_torn_copy_and_store_backup_makes_a_sound_one() {
    let t = TempDir::new("h-store");
    demo_store(&t);
    let out = run_ok(&["--db", s(&t.db()), "--format", "json", "store", "check"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        rows.len() >= 4 && rows.iter().all(|r| r["status"] == "ok"),
        "{rows:?}"
    );
    // A backup, made while nothing else writes here, is a sound store with the same report.
    let copy = t.path("backup.db");
    run_ok(&["--db", s(&t.db()), "store", "backup", s(&copy)]);
    run_ok(&["--db", s(&copy), "store", "check", "--full"]);
    assert_eq!(
        stdout(&run_ok(&["--db", s(&t.db()), "--format", "csv", "report"])),
        stdout(&run_ok(&["--db", s(&copy), "--format", "csv", "report"]))
    );
    run_expect(&["--db", s(&t.db()), "store", "backup", s(&copy)], 2);
    // Rollups that no longer sum the invocations are found.
    let damaged = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('delete from invocation where request_id in (select request_id from invocation limit 10)'); c.commit()", s(&copy)])
        .status()
        .expect("python3");
    assert!(damaged.success());
    let out = run_expect(&["--db", s(&copy), "--format", "json", "store", "check"], 1);
    assert!(stdout(&out).contains("sums differ"), "{}", stdout(&out));
    // `aws status` flags it too (here with AWS unreachable: the store's checks still run).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = bin()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "--db",
            s(&copy),
            "--format",
            "json",
            "aws",
            "status",
            "--region",
            "us-east-1",
            "--endpoint-url",
            &url,
        ])
        .output()
        .expect("status");
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        checks.iter().any(|c| c["check"]
            .as_str()
            .is_some_and(|n| n.starts_with("store rollups"))
            && c["status"] == "FAIL"),
        "{checks:?}"
    );
}

#[test]
fn a_line_longer_than_any_record_is_skipped_not_held_whole() {
    let t = TempDir::new("h-huge");
    let recs = records("huge", 2);
    let mut text = recs[0].to_string();
    text.push('\n');
    text.push_str(&format!("{{\"x\":\"{}\"}}\n", "a".repeat(5 << 20)));
    text.push_str(&recs[1].to_string());
    text.push('\n');
    let file = t.path("huge.json.gz");
    std::fs::write(&file, gzip(text.as_bytes())).expect("write");
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        "--max-record-mb",
        "1",
        s(&file),
    ]);
    assert_eq!(stored(&t.db()), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "huge.json.gz:2: a line of 5242889 bytes, longer than the longest record read (1 MiB)"
        ),
        "{err}"
    );
    let q = run_ok(&[
        "--format",
        "csv",
        "query",
        "--max-record-mb",
        "1",
        "--from",
        s(&file),
        "stats count(*) as n",
    ]);
    assert_eq!(stdout(&q).trim(), "n\n2");
    // Run again: nothing new, the long line is not read again.
    let again = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        "--max-record-mb",
        "1",
        s(&file),
    ]));
    assert!(again.contains("nothing new"), "{again}");
}

#[test]
fn config_check_reports_type_errors_a_missing_catalog_and_unpriceable_models_together() {
    let t = TempDir::new("h-config");
    let cfg = t.path("c.toml");
    std::fs::write(
        &cfg,
        "[sync]\npublish_metrics = \"yes\"\n\n[attribution]\nmetadata_keyz = [\"x\"]\n\n[aliases]\n\"a\" = \"\"\n\n[pricing]\ncatalog = \"no-such-prices.toml\"\n\n[models]\n\"arn:aws:bedrock:us-east-1:1:application-inference-profile/p\" = \"anthropic.claude-nonexistent-9\"\n",
    )
    .expect("write");
    let out = run_expect(&["--config", s(&cfg), "config", "check"], 2);
    let err = stderr(&out);
    for needle in [
        "`[sync]`",
        "publish_metrics",
        "line 5",
        "metadata_keyz",
        "`aliases.\"a\"`",
        "`pricing.catalog`",
        "no-such-prices.toml",
        "cannot be priced",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}

#[test]
fn request_metadata_from_a_personal_principal_does_not_move_its_calls() {
    let t = TempDir::new("h-trust");
    let mut mallory = samples()[0].clone();
    mallory["identity"]["arn"] =
        serde_json::Value::String("arn:aws:iam::123456789012:user/mallory".into());
    mallory["requestMetadata"] = serde_json::json!({"developer": "alice"});
    let mut shared = samples()[1].clone();
    shared["identity"]["arn"] =
        serde_json::Value::String("arn:aws:sts::123456789012:assumed-role/ci-runner/job-1".into());
    shared["requestMetadata"] = serde_json::json!({"developer": "alice"});
    std::fs::write(t.path("f.jsonl"), jsonl(&[mallory, shared])).expect("write");
    ingest(&t.db(), &[&t.path("f.jsonl")]);
    let rows = report_csv(&t.db(), None, &["--by", "developer,principal"]);
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["developer"].clone(), r["principal"].clone()))
        .collect();
    assert!(
        pairs.contains(&(
            "mallory".into(),
            "arn:aws:iam::123456789012:user/mallory".into()
        )),
        "{pairs:?}"
    );
    // From a role many may assume, metadata is believed.
    assert!(
        pairs.contains(&(
            "alice".into(),
            "arn:aws:sts::123456789012:assumed-role/ci-runner/job-1".into()
        )),
        "{pairs:?}"
    );
    let out = run_ok(&["--db", s(&t.db()), "report"]);
    assert!(
        stderr(&out).contains("say `developer = alice` in request metadata; counted as mallory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_repeated_request_id_with_other_facts_is_warned_about_with_its_file() {
    let t = TempDir::new("h-dupes");
    let first = records("dupe", 3);
    std::fs::write(t.path("a.jsonl"), jsonl(&first)).expect("write");
    ingest(&t.db(), &[&t.path("a.jsonl")]);
    let mut changed = first.clone();
    changed[1]["input"]["inputTokenCount"] = serde_json::json!(999_999);
    std::fs::write(t.path("b.jsonl"), jsonl(&changed)).expect("write");
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        s(&t.path("b.jsonl")),
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("1 records repeat a stored request id with other facts"),
        "{err}"
    );
    assert!(
        err.contains(
            "b.jsonl: requestId `dupe-0001` was stored before with other facts: here tokens"
        ),
        "{err}"
    );
    // Exact copies are duplicates like any other, with no word.
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        s(&t.path("a.jsonl")),
    ]);
    assert!(
        !stderr(&out).contains("repeat a stored request id"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored(&t.db()), 3);
}

#[test]
fn a_refused_connection_fails_fast_with_a_readable_message() {
    let t = TempDir::new("h-refused");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec![
            "--db",
            s(&t.db()),
            "sync",
            "--no-progress",
            "--log-group",
            "g",
            "--region",
            "us-east-1",
            "--endpoint-url",
            url.as_str(),
            "--since",
            "1d",
        ],
        vec![
            "--db",
            s(&t.db()),
            "aws",
            "status",
            "--region",
            "us-east-1",
            "--endpoint-url",
            url.as_str(),
        ],
    ] {
        let mut c = bin();
        c.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .args(&args)
            .stdin(Stdio::null());
        let out = c.output().expect("run");
        let text = stdout(&out) + &stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("cannot connect to AWS"), "{text}");
        assert!(
            !text.contains("DispatchFailure(") && !text.contains("ConnectorError {"),
            "a debug dump: {text}"
        );
    }
}

#[test]
fn claude_2_and_instant_are_priced_and_pricing_list_says_what_is_unconfirmed() {
    for id in [
        "anthropic.claude-v2:1",
        "anthropic.claude-v2",
        "anthropic.claude-instant-v1",
        "anthropic.claude-v2:1:200k",
        "anthropic.claude-instant-v1:2:100k",
    ] {
        let out = run_ok(&["pricing", "show", id, "--date", "2026-11-03"]);
        assert!(!stdout(&out).contains("UNPRICED"), "{id}: {}", stdout(&out));
    }
    let list = stdout(&run_ok(&["pricing", "list"]));
    assert!(
        list.contains("Sources:") && list.contains("Unconfirmed"),
        "{list}"
    );
    let out = run_ok(&["--format", "json", "pricing", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(rows.iter().any(|r| r["confirmed"] == "no"));
    assert!(
        rows.iter()
            .all(|r| r["source"].as_str().is_some_and(|s| !s.is_empty())),
        "every entry names its source"
    );
}
