//! The golden query suite: each `tests/queries/NN-name.query` runs over a fixed corpus (the
//! sample records and a seeded demo month) and its JSON output is compared with
//! `tests/golden/queries/NN-name.json` (`UPDATE_GOLDEN=1` rewrites). The first line says where it
//! runs: `# mode: store`, `# mode: files`, or `# mode: both` — over the store and over the files,
//! which must then give the same answer. Over the store, every query also runs with
//! `--no-columns` (the rows, not the column segments), which must give the same answer.

use std::path::Path;

use crate::util::*;

fn setup(t: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let (_, jsonl) = demo_corpus(400, 77, (0, 1));
    let corpus = t.path("corpus");
    std::fs::create_dir_all(&corpus).expect("mkdir");
    std::fs::write(corpus.join("month.jsonl"), jsonl).expect("write");
    std::fs::copy(data("invocations.jsonl"), corpus.join("samples.jsonl")).expect("copy");
    let config = demo_config(t);
    run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&config),
        "ingest",
        "--no-progress",
        s(&corpus),
    ]);
    (corpus, config)
}

fn query(args: &[&str]) -> (String, String) {
    let out = run_ok(args);
    (stdout(&out), stderr(&out))
}

#[test]
fn golden_queries() {
    let t = TempDir::new("queries");
    let (corpus, config) = setup(&t);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("queries")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "query"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the suite has {} queries", files.len());
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join("queries");
    std::fs::create_dir_all(&golden_dir).expect("mkdir");
    let db = t.db();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("query");
        let mode = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# mode: "))
            .unwrap_or("store")
            .trim()
            .to_string();
        let name = f
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let store_args = [
            "--db",
            s(&db),
            "--config",
            s(&config),
            "--format",
            "json",
            "query",
            &text,
        ];
        let files_args = ["--format", "json", "query", "--from", s(&corpus), &text];
        // Over the store: the same answer from its column segments as from its rows.
        let rows_args = [
            "--db",
            s(&db),
            "--config",
            s(&config),
            "--format",
            "json",
            "query",
            "--no-columns",
            &text,
        ];
        if mode != "files" {
            assert_eq!(
                query(&store_args).0,
                query(&rows_args).0,
                "{name}: the store's columns and its rows give different answers"
            );
        }
        let got = match mode.as_str() {
            "files" => query(&files_args).0,
            "both" => {
                let (a, _) = query(&store_args);
                let (b, _) = query(&files_args);
                assert_eq!(
                    a, b,
                    "{name}: the store and the files give different answers"
                );
                a
            }
            _ => query(&store_args).0,
        };
        golden(&format!("queries/{name}.json"), &got);
    }
}

#[test]
fn errors_and_hints() {
    let t = TempDir::new("query-errors");
    let (corpus, _) = setup(&t);
    let out = run_expect(
        &[
            "--db",
            s(&t.db()),
            "query",
            "filter modelId like /sonnet/ | pattern @message",
        ],
        2,
    );
    assert!(
        stderr(&out).contains(
            "`pattern` is a CloudWatch Logs Insights command that bedrock-usage does not support"
        ),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("  filter modelId like /sonnet/ | pattern @message\n                                 ^^^^^^^"), "{}", stderr(&out));
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--format",
        "json",
        "query",
        "stats sum(usage.inputTokens) as s",
    ]);
    assert!(stderr(&out).contains("no event has the field `usage.inputTokens`: it reads as null; did you mean `input.inputTokenCount`?"), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[\n  {}\n]");
    let out = run_ok(&["query", "--from", s(&corpus), "fields modelld | limit 1"]);
    assert!(
        stderr(&out).contains("did you mean `modelId`?"),
        "{}",
        stderr(&out)
    );
    // The default limit, and the flag that lifts it.
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--format",
        "csv",
        "query",
        "fields requestId",
        "--limit",
        "7",
    ]);
    assert_eq!(stdout(&out).lines().count(), 8);
    assert!(
        stderr(&out).contains("only the first 7 rows"),
        "{}",
        stderr(&out)
    );
    // The aws shape.
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--format",
        "aws",
        "query",
        "stats count(*) as n",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        v["results"][0][0],
        serde_json::json!({"field": "n", "value": "406"})
    );
    assert_eq!(v["status"], "Complete");
    let err = stderr(&run_expect(
        &["--db", s(&t.db()), "--format", "aws", "report"],
        2,
    ));
    assert!(
        err.contains("--format aws is the output of `query` only"),
        "{err}"
    );
}

/// Over the store, a `stats` of sums reads rollups, with raw events at the edges of a time range;
/// at any boundary it must agree with the same query over the files.
#[test]
fn time_ranges_agree_between_store_and_files() {
    let t = TempDir::new("query-ranges");
    let (corpus, config) = setup(&t);
    // (Token fields a record leaves out read as 0 in the store and null in files: use ones every record has.)
    let q = "stats count(*) as n, sum(output.outputTokenCount) as o, sum(input.inputTokenCount) as i by identity.arn, bin(1h) as h | sort h, identity.arn";
    for (a, b) in [
        ("2026-11-03T07:13:27.500Z", "2026-11-17T22:01:00Z"),
        ("2026-11-10T10:14:59.999Z", "2026-11-10T16:00:00.001Z"),
        ("2026-11-05", "2026-11-08"),
    ] {
        let store = run_ok(&[
            "--db",
            s(&t.db()),
            "--config",
            s(&config),
            "--format",
            "json",
            "query",
            "--since",
            a,
            "--until",
            b,
            q,
        ]);
        let files = run_ok(&[
            "--format",
            "json",
            "query",
            "--from",
            s(&corpus),
            "--since",
            a,
            "--until",
            b,
            q,
        ]);
        assert!(
            stdout(&store) == stdout(&files),
            "{a}..{b}: the store and the files differ"
        );
        assert!(
            stdout(&store).matches("\"n\"").count() > 1,
            "{a}..{b}: {}",
            stdout(&store)
        );
    }
}
