//! `export parquet`: DuckDB (PyPI `duckdb`, which `.ci/run` installs) reads the export and gets
//! exactly `report --by developer,model,day`'s calls, tokens and cost; a second run writes
//! nothing; a day that gained calls is the only one written again; `--athena-ddl`.

use std::collections::BTreeMap;
use std::process::Command;

use bedrock_usage_core::NanoUsd;
use serde_json::Value;

use crate::util::*;

/// Rows of a DuckDB query over the export, as JSON objects.
fn duckdb(sql: &str) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, duckdb\nc = duckdb.connect()\nr = c.execute(sys.argv[1])\ncols = [d[0] for d in r.description]\nprint(json.dumps([dict(zip(cols, [v if v is None or isinstance(v, (int, str)) else str(v) for v in row])) for row in r.fetchall()]))",
            sql,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "DuckDB failed (pip install duckdb; .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn export(t: &TempDir, cfg: &std::path::Path, extra: &[&str]) -> Vec<Value> {
    let dir = t.path("export");
    let mut args = vec!["export", "parquet", s(&dir)];
    args.extend(extra);
    json_of(&t.db(), cfg, &args)
        .as_array()
        .expect("days")
        .clone()
}

#[test]
fn duckdb_reads_the_export_as_the_report_says_and_unchanged_days_are_not_written_again() {
    let t = TempDir::new("export-parquet");
    let (_, jsonl) = demo_corpus(4000, 41, (0, 1));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    let cfg = demo_config(&t);

    let days = export(&t, &cfg, &[]);
    assert_eq!(days.len(), 30, "one partition per day of the month");
    assert!(days.iter().all(|d| d["state"] == "written"));
    let glob = format!("{}/*/*.parquet", t.path("export").display());
    let got = duckdb(&format!(
        "SELECT developer, model, CAST(dt AS VARCHAR) AS day, count(*) AS calls, sum(input_tokens) AS input, \
         sum(output_tokens) AS output, sum(cache_read_tokens) AS cache_read, \
         sum(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write, \
         CAST(sum(cost_pico_usd) AS VARCHAR) AS pico, CAST(sum(cost_usd) AS VARCHAR) AS usd \
         FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY ALL"
    ));
    let db = t.db();
    let report = json_of(&db, &cfg, &["report", "--by", "developer,model,day"]);
    let key = |r: &Value| {
        (
            r["developer"].as_str().unwrap_or("").to_string(),
            r["model"].as_str().unwrap_or("").to_string(),
            r["day"].as_str().unwrap_or("").to_string(),
        )
    };
    let want: BTreeMap<_, _> = report
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (key(r), r.clone()))
        .collect();
    assert_eq!(got.len(), want.len(), "one group per report row");
    let mut unpriced_groups = 0;
    for g in &got {
        let r = &want[&key(g)];
        for (ours, theirs) in [
            ("calls", "calls"),
            ("input", "input_tokens"),
            ("output", "output_tokens"),
            ("cache_read", "cache_read_tokens"),
            ("cache_write", "cache_write_tokens"),
        ] {
            assert_eq!(g[ours], r[theirs], "{:?} {ours}", key(g));
        }
        match g["pico"].as_str() {
            // Every call of the group unpriced: null, as the report's cost.
            None => {
                assert!(r["cost_usd"].is_null(), "{:?}", key(g));
                unpriced_groups += 1;
            }
            Some(p) => {
                let pico: i128 = p.parse().expect("pico");
                let cost = NanoUsd::from_pico(pico);
                let theirs = NanoUsd::parse_usd(&r["cost_usd"].to_string()).expect("usd");
                assert_eq!(cost.micros(), theirs.micros(), "{:?}", key(g));
                // The decimal column is the same amount in dollars.
                let usd = g["usd"].as_str().expect("usd");
                assert_eq!(
                    usd.replace('.', "").trim_start_matches('0'),
                    pico.to_string().trim_start_matches('0'),
                    "{usd} against {pico}"
                );
            }
        }
    }
    assert!(unpriced_groups > 0, "the demo has an unpriced model");
    // Who: the shared principal's calls with metadata are their developers'; teams from config.
    let teams = duckdb(&format!(
        "SELECT DISTINCT developer, team, cost_center, attributed_by FROM read_parquet('{glob}') ORDER BY 1"
    ));
    assert!(
        teams
            .iter()
            .any(|r| r["developer"] == "alice" && r["team"] == "platform"),
        "{teams:?}"
    );
    assert!(teams.iter().any(|r| r["attributed_by"] == "metadata"));

    // Again: nothing written. More calls on one day: only that day.
    let again = export(&t, &cfg, &[]);
    assert!(again.iter().all(|d| d["state"] == "unchanged"), "{again:?}");
    let mtime = |day: &str| {
        std::fs::metadata(t.path(&format!("export/dt={day}/calls.parquet")))
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let before = (mtime("2026-11-10"), mtime("2026-11-11"));
    let one_day: Vec<u8> = demo_corpus(300, 77, (0, 0))
        .1
        .split(|b| *b == b'\n')
        .filter(|l| l.windows(10).any(|w| w == b"2026-11-11"))
        .flat_map(|l| l.iter().copied().chain(std::iter::once(b'\n')))
        .collect();
    assert!(!one_day.is_empty());
    std::fs::write(t.path("more.jsonl"), one_day).expect("write");
    ingest(&t.db(), &[&t.path("more.jsonl")]);
    let third = export(&t, &cfg, &[]);
    let written: Vec<&str> = third
        .iter()
        .filter(|d| d["state"] == "written")
        .map(|d| d["dt"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(written, ["2026-11-11"]);
    assert_eq!(mtime("2026-11-10"), before.0);
    assert_ne!(mtime("2026-11-11"), before.1);
    let n = duckdb(&format!("SELECT count(*) AS n FROM read_parquet('{glob}')"));
    let stored = json_of(&db, &cfg, &["query", "stats count(*) as n"]);
    assert_eq!(n[0]["n"].to_string(), stored[0]["n"].to_string());
    // A range: only those days.
    let some = export(
        &t,
        &cfg,
        &["--since", "2026-11-05", "--until", "2026-11-06"],
    );
    assert_eq!(some.len(), 2);
}

#[test]
fn athena_ddl_projects_the_day_partitions() {
    let out = run_ok(&[
        "export",
        "parquet",
        "s3://analytics/bedrock-usage/",
        "--athena-ddl",
    ]);
    let ddl = stdout(&out);
    assert!(ddl.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS bedrock_usage_calls ("));
    for part in [
        "PARTITIONED BY (`dt` string)",
        "STORED AS PARQUET",
        "LOCATION 's3://analytics/bedrock-usage/'",
        "'projection.enabled' = 'true'",
        "'projection.dt.type' = 'date'",
        "'storage.location.template' = 's3://analytics/bedrock-usage/dt=${dt}/'",
        "`cost_usd` decimal(18,12)",
        "`timestamp` timestamp",
    ] {
        assert!(ddl.contains(part), "{part} missing:\n{ddl}");
    }
    let err = run_expect(&["export", "parquet", "/tmp/x", "--athena-ddl"], 2);
    assert!(stderr(&err).contains("s3://BUCKET/PREFIX"));
    let err = run_expect(
        &[
            "export",
            "parquet",
            "/tmp/x",
            "--athena-ddl",
            "--table",
            "x; drop",
        ],
        2,
    );
    assert!(stderr(&err).contains("--table"));
}

#[test]
fn an_export_to_the_emulators_s3_lists_the_day_partitions_and_is_incremental() {
    use crate::aws_emulator::*;
    let region = "us-west-2";
    let conf = sdk(region);
    let client = s3_client(&conf);
    let bucket = unique("export");
    rt().block_on(async {
        client
            .create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                    .build(),
            )
            .send()
            .await
            .expect("bucket");
    });
    let t = TempDir::new("export-s3");
    let (ledger, jsonl) = demo_corpus(600, 5, (0, 0));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    let cfg = demo_config(&t);
    let target = format!("s3://{bucket}/warehouse/bedrock-usage");
    let db = t.db();
    let args = [
        "--db",
        s(&db),
        "--config",
        s(&cfg),
        "--format",
        "json",
        "export",
        "parquet",
        &target,
    ];
    let days: Value = serde_json::from_str(&stdout(&run_aws_ok(&args, region))).expect("json");
    let want: std::collections::BTreeSet<String> = ledger
        .iter()
        .map(|e| {
            format!(
                "warehouse/bedrock-usage/dt={}/calls.parquet",
                bedrock_usage_core::time::format_date(e.timestamp_ms.div_euclid(86_400_000))
            )
        })
        .collect();
    let listed: std::collections::BTreeSet<String> = rt().block_on(async {
        let out = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("warehouse/bedrock-usage/")
            .send()
            .await
            .expect("list");
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect()
    });
    let mut expected = want.clone();
    expected.insert("warehouse/bedrock-usage/_bedrock_usage_export.json".into());
    assert_eq!(listed, expected);
    assert_eq!(days.as_array().map(Vec::len), Some(want.len()));
    // The objects are Parquet: the file's magic at both ends.
    let first = want.iter().next().expect("a day").clone();
    let body = rt().block_on(async {
        client
            .get_object()
            .bucket(&bucket)
            .key(&first)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
    });
    assert!(body.starts_with(b"PAR1") && body.ends_with(b"PAR1"));
    // Again: the manifest in the bucket says every day is unchanged.
    let again: Value = serde_json::from_str(&stdout(&run_aws_ok(&args, region))).expect("json");
    assert!(
        again
            .as_array()
            .expect("days")
            .iter()
            .all(|d| d["state"] == "unchanged"),
        "{again}"
    );
}

/// `kill -9` during exports at random moments, then one more run: the directory holds exactly
/// what one uninterrupted export writes (every day's file, byte for byte), and no partial file
/// is where a reader looks.
#[test]
fn kill_9_during_export_then_rerun_gives_the_clean_export() {
    let t = TempDir::new("export-crash");
    let (_, jsonl) = demo_corpus(30_000, 13, (0, 0));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    let cfg = demo_config(&t);
    let db = t.db();
    let run_to = |dir: &std::path::Path| {
        run_ok(&[
            "--db",
            s(&db),
            "--config",
            s(&cfg),
            "export",
            "parquet",
            s(dir),
        ])
    };
    let clean = t.path("clean");
    run_to(&clean);
    let files = |dir: &std::path::Path| -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for day in std::fs::read_dir(dir).expect("dir").flatten() {
            let p = day.path();
            if p.is_dir() {
                for f in std::fs::read_dir(&p).expect("day").flatten() {
                    let name = format!(
                        "{}/{}",
                        day.file_name().to_string_lossy(),
                        f.file_name().to_string_lossy()
                    );
                    out.insert(name, std::fs::read(f.path()).expect("read"));
                }
            }
        }
        out
    };
    let want = files(&clean);
    assert_eq!(want.len(), 30);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut r = rng(seed);
    let crashed = t.path("crashed");
    let mut mid_run = 0;
    for _ in 0..6 {
        let mut child = bin()
            .args([
                "--db",
                s(&db),
                "--config",
                s(&cfg),
                "export",
                "parquet",
                s(&crashed),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(r.range(5, 300)));
        if child.try_wait().expect("wait").is_none() {
            mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever a reader finds is whole: every .parquet file there is a complete one.
        for (name, bytes) in files(&crashed) {
            if name.ends_with(".parquet") {
                assert_eq!(Some(&bytes), want.get(&name), "{name} (seed {seed})");
            }
        }
    }
    run_to(&crashed);
    let got: BTreeMap<String, Vec<u8>> = files(&crashed)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".parquet"))
        .collect();
    assert_eq!(got.len(), want.len(), "seed {seed}");
    assert!(got == want, "files differ after kills (seed {seed})");
    assert!(
        mid_run > 0,
        "no kill landed mid-export (seed {seed}): make the store larger"
    );
}
