use std::collections::BTreeMap;

use bedrock_usage_core::time::{day_label, parse_timestamp_ms, Zone};

use crate::util::*;

fn setup(name: &str) -> (TempDir, Vec<bedrock_usage::sources::demo::LedgerEntry>) {
    let t = TempDir::new(name);
    let (ledger, jsonl) = demo_corpus(3000, 21, (0, 1));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    (t, ledger)
}

fn sum(rows: &[BTreeMap<String, String>], k: &str) -> u64 {
    rows.iter()
        .map(|r| r[k].parse::<u64>().expect("number"))
        .sum()
}

/// The store answers from daily and quarter-hour rollups and raw rows at the edges; at any
/// boundary the result must equal the ledger filtered by time.
#[test]
fn time_ranges_are_exact_at_any_boundary() {
    let (t, ledger) = setup("rep-range");
    let ranges = [
        ("2026-11-03T07:13:27.500Z", "2026-11-17T22:01:00Z"),
        ("2026-11-10T10:00:00Z", "2026-11-10T10:05:00Z"),
        ("2026-11-10T10:14:59.999Z", "2026-11-10T10:15:00.001Z"),
        ("2026-11-05T00:00:00Z", "2026-11-08T00:00:00Z"),
        ("2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("2026-11-20T23:59:59Z", "2026-11-21T00:15:00Z"),
    ];
    for (a, b) in ranges {
        let lo = parse_timestamp_ms(a).expect("ts");
        let hi = parse_timestamp_ms(b).expect("ts");
        let inside: Vec<_> = ledger
            .iter()
            .filter(|e| e.timestamp_ms >= lo && e.timestamp_ms < hi)
            .collect();
        let rows = report_csv(
            &t.db(),
            None,
            &["--by", "developer", "--since", a, "--until", b],
        );
        assert_eq!(sum(&rows, "calls"), inside.len() as u64, "{a}..{b}");
        assert_eq!(
            sum(&rows, "cache_read_tokens"),
            inside.iter().map(|e| e.cache_read).sum::<u64>(),
            "{a}..{b}"
        );
        assert_eq!(
            sum(&rows, "output_tokens"),
            inside.iter().map(|e| e.output).sum::<u64>(),
            "{a}..{b}"
        );
    }
}

#[test]
fn local_days_and_dates_in_a_time_zone() {
    let (t, ledger) = setup("rep-tz");
    for tz in ["America/New_York", "Asia/Kolkata", "UTC"] {
        let zone = Zone::named(tz).expect("zone");
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for e in &ledger {
            *want
                .entry(day_label(zone.local_day(e.timestamp_ms)))
                .or_default() += 1;
        }
        let rows = report_csv(&t.db(), None, &["--by", "day", "--tz", tz]);
        let got: BTreeMap<String, u64> = rows
            .iter()
            .map(|r| (r["day"].clone(), r["calls"].parse().expect("n")))
            .collect();
        assert_eq!(got, want, "{tz}");
    }
    // Hours: each real local hour once, labelled with its offset (Kolkata's start at :30 UTC).
    for tz in ["Asia/Kolkata", "Europe/Berlin", "UTC"] {
        let zone = Zone::named(tz).expect("zone");
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for e in &ledger {
            *want
                .entry(zone.format_local_minute(zone.hour_start_ms(e.timestamp_ms)))
                .or_default() += 1;
        }
        let rows = report_csv(&t.db(), None, &["--by", "hour", "--tz", tz]);
        let got: BTreeMap<String, u64> = rows
            .iter()
            .map(|r| (r["hour"].clone(), r["calls"].parse().expect("n")))
            .collect();
        assert!(got.len() > 24, "{tz}: {} hours", got.len());
        assert_eq!(got, want, "{tz}");
    }
    // Dates in --since/--until are local midnights; a date --until includes that whole day.
    let zone = Zone::named("Asia/Kolkata").expect("zone");
    let lo = zone.day_start_ms(bedrock_usage_core::time::parse_date("2026-11-10").expect("d"));
    let hi = zone.day_start_ms(bedrock_usage_core::time::parse_date("2026-11-13").expect("d"));
    let rows = report_csv(
        &t.db(),
        None,
        &[
            "--by",
            "developer",
            "--since",
            "2026-11-10",
            "--until",
            "2026-11-12",
            "--tz",
            "Asia/Kolkata",
        ],
    );
    assert_eq!(
        sum(&rows, "calls"),
        ledger
            .iter()
            .filter(|e| e.timestamp_ms >= lo && e.timestamp_ms < hi)
            .count() as u64
    );
}

#[test]
fn filters_and_formats() {
    let (t, ledger) = setup("rep-filter");
    let rows = report_csv(
        &t.db(),
        None,
        &[
            "--by",
            "developer,model",
            "--developer",
            "alice,bob",
            "--model",
            "opus",
        ],
    );
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            r["developer"] == "alice"
                || r["developer"] == "bob@example.com"
                || r["developer"] == "bob",
            "{r:?}"
        );
        assert!(r["model"].contains("opus"), "{r:?}");
    }
    let alice_opus = ledger
        .iter()
        .filter(|e| e.person == "alice" && e.model_id.contains("opus"))
        .count() as u64;
    let got: u64 = rows
        .iter()
        .filter(|r| r["developer"] == "alice")
        .map(|r| r["calls"].parse::<u64>().expect("n"))
        .sum();
    assert_eq!(got, alice_opus);
    let table = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "report",
        "--by",
        "team,cost-center",
    ]));
    assert!(
        table.contains("total (") && table.contains("team"),
        "{table}"
    );
    let md = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "--format",
        "markdown",
        "report",
        "--by",
        "month",
    ]));
    assert!(md.starts_with("| month |") && md.contains("|---|"), "{md}");
    let err = stderr(&run_expect(
        &["--db", s(&t.db()), "report", "--by", "colour"],
        2,
    ));
    assert!(
        err.contains("unknown key `colour`") && err.contains("cost-center"),
        "{err}"
    );
    let err = stderr(&run_expect(
        &["--db", s(&t.db()), "report", "--since", "last tuesday"],
        2,
    ));
    assert!(
        err.contains("--since: `last tuesday` is not a date"),
        "{err}"
    );
    let err = stderr(&run_expect(
        &["--db", s(&t.db()), "report", "--tz", "Mars/Olympus"],
        2,
    ));
    assert!(err.contains("unknown time zone `Mars/Olympus`"), "{err}");
}

#[test]
fn missing_store_is_a_clear_error() {
    let t = TempDir::new("rep-missing");
    let err = stderr(&run_expect(&["--db", s(&t.path("nope.db")), "report"], 2));
    assert!(
        err.contains("no store at") && err.contains("ingest"),
        "{err}"
    );
}

#[test]
fn closed_pipe_is_not_an_error() {
    let (t, _) = setup("rep-pipe");
    let mut child = bin()
        .args([
            "--db",
            s(&t.db()),
            "--format",
            "csv",
            "report",
            "--by",
            "developer,model,day,region,operation",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
}
