//! `report --format html`: the finance document. Every section's total and every row's cost
//! equal `report --format json` over the same range to the cent; the file needs nothing from
//! outside (no scripts, no links to fetch); and Chromium prints it to a PDF whose text shows
//! the same totals (read back with the Python `pypdf` package, which `.ci/run` installs).

use std::path::PathBuf;
use std::process::Command;

use bedrock_usage_core::NanoUsd;
use serde_json::Value;

use crate::util::*;

const RANGE: [&str; 6] = [
    "--since",
    "2026-11-01",
    "--until",
    "2026-11-30",
    "--tz",
    "Europe/Berlin",
];

/// The rows of `report --format json --by KEYS` over [`RANGE`].
fn json_rows(t: &TempDir, cfg: &std::path::Path, keys: &str) -> Vec<Value> {
    let mut args = vec!["report", "--by", keys];
    args.extend(RANGE);
    json_of(&t.db(), cfg, &args)
        .as_array()
        .expect("rows")
        .clone()
}

fn cost(row: &Value) -> Option<NanoUsd> {
    let c = &row["cost_usd"];
    (!c.is_null()).then(|| NanoUsd::parse_usd(&c.to_string()).expect("usd"))
}

/// The HTML of one `<section id="ID" ...>` up to its end.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start..].find("</section>").expect("section end") + start;
    &html[start..end]
}

/// A demo store of `n` calls (seed `seed`) with the demo config, and its `report --format html`
/// over [`RANGE`] with `extra` flags.
fn html_over_demo(name: &str, n: u64, seed: u64, extra: &[&str]) -> (TempDir, PathBuf, String) {
    let t = TempDir::new(name);
    let (_, jsonl) = demo_corpus(n, seed, (0, 1));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    let cfg = demo_config(&t);
    let db = t.db();
    let mut args = vec![
        "--db",
        s(&db),
        "--config",
        s(&cfg),
        "--format",
        "html",
        "report",
    ];
    args.extend(extra);
    args.extend(RANGE);
    let html = stdout(&run_ok(&args));
    (t, cfg, html)
}

fn attr_micros(tag_text: &str) -> i64 {
    let at = tag_text.find("data-micros=\"").expect("data-micros") + 13;
    let end = tag_text[at..].find('"').expect("quote") + at;
    tag_text[at..end].parse().expect("micros")
}

#[test]
fn the_html_report_matches_the_json_report_to_the_cent_and_prints_to_pdf() {
    let (t, cfg, html) = html_over_demo("report-html", 3000, 33, &["--by", "team,model"]);
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..100]);
    // Self-contained: nothing to run, nothing to fetch.
    for bad in [
        "<script", " src=", " href=", "http://", "https://", "@import",
    ] {
        assert!(!html.contains(bad), "the document contains `{bad}`");
    }
    assert!(html.contains("2026-11-01 to 2026-11-30 (Europe/Berlin)"));

    let total_json: NanoUsd = json_rows(&t, &cfg, "developer")
        .iter()
        .filter_map(cost)
        .fold(NanoUsd(0), |a, c| NanoUsd(a.0 + c.0));
    // The JSON's rows are each rounded to the micro-dollar; the document's totals are summed
    // exactly, then rounded once: the same to the cent, within a micro-dollar per row.
    let near = |exact: i64, rows: &NanoUsd, n: usize, what: &str| {
        assert!(
            (exact - rows.micros()).unsigned_abs() <= n as u64,
            "{what}: {exact} against the rows' {}",
            rows.micros()
        );
        assert_eq!(
            NanoUsd(exact * 1000).to_display(),
            rows.to_display(),
            "{what}"
        );
    };
    let summary = &html[html.find("id=\"total\"").expect("total card")..];
    let total_exact = attr_micros(summary);
    near(total_exact, &total_json, 20, "total");

    for (id, keys) in [
        ("by-team-model", "team,model"),
        ("by-team", "team"),
        ("by-cost-center", "cost-center"),
        ("by-developer", "developer"),
        ("by-model", "model"),
    ] {
        let sec = section(&html, id);
        let rows = json_rows(&t, &cfg, keys);
        let sum = rows
            .iter()
            .filter_map(cost)
            .fold(NanoUsd(0), |a, c| NanoUsd(a.0 + c.0));
        assert_eq!(attr_micros(sec), total_exact, "{id}");
        near(total_exact, &sum, rows.len(), id);
        // Each row's cost, to the cent, in its table; the footer says the total.
        let body = &sec[sec.find("<tbody>").expect("table")..];
        assert_eq!(body.matches("<tr>").count(), rows.len() + 1, "{id}");
        for r in &rows {
            if let Some(c) = cost(r) {
                assert!(
                    body.contains(&c.to_display()),
                    "{id}: {} missing",
                    c.to_display()
                );
            }
        }
        let foot = &sec[sec.find("<tfoot>").expect("footer")..];
        assert!(foot.contains(&total_json.to_display()), "{id}: {foot}");
    }
    assert!(section(&html, "warnings").contains("shared principal"));

    // Printed by Chromium to PDF, the text shows the same totals.
    let file = t.path("november.html");
    std::fs::write(&file, &html).expect("write html");
    let pdf = t.path("november.pdf");
    let st = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): install Debian's chromium (apt-get install chromium; .ci/run does)"));
    assert!(
        pdf.exists(),
        "chromium made no PDF: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let text = Command::new("python3")
        .args([
            "-c",
            "import sys, pypdf\nr = pypdf.PdfReader(sys.argv[1])\nprint('\\n'.join(p.extract_text() for p in r.pages))",
        ])
        .arg(&pdf)
        .output()
        .expect("python3");
    assert!(
        text.status.success(),
        "reading the PDF failed (pip install pypdf; .ci/run does): {}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8_lossy(&text.stdout);
    // The summary card, the chart's section and the five tables' footers.
    let shown = text.matches(&total_json.to_display()).count();
    assert!(
        shown >= 6,
        "the PDF shows the total {} {shown} times:\n{text}",
        total_json.to_display()
    );
    for r in json_rows(&t, &cfg, "team") {
        if let Some(c) = cost(&r) {
            assert!(
                text.contains(&c.to_display()),
                "the PDF lacks {}",
                c.to_display()
            );
        }
    }
}

#[test]
fn with_top_each_section_keeps_its_dearest_rows_and_the_chart_every_day() {
    let (t, cfg, html) = html_over_demo("report-html-top", 2000, 8, &["--top", "2"]);
    let models = section(&html, "by-model");
    let body =
        &models[models.find("<tbody>").expect("table")..models.find("</tbody>").expect("end")];
    assert_eq!(body.matches("<tr>").count(), 2, "the two dearest models");
    // The footer still counts every model's calls; the chart has a column for each day.
    let all = json_rows(&t, &cfg, "model");
    let calls: u64 = all
        .iter()
        .map(|r| r["calls"].as_u64().expect("calls"))
        .sum();
    assert!(section(&html, "by-model").contains(&bedrock_usage_core::money::group_thousands(calls)));
    let chart = section(&html, "over-time");
    assert_eq!(
        chart.matches("<rect").count(),
        30,
        "a column per day of November"
    );
    let days: Vec<&str> = chart
        .match_indices("<title>2026-11-")
        .map(|(i, _)| &chart[i + 7..i + 17])
        .collect();
    let mut sorted = days.clone();
    sorted.sort_unstable();
    assert_eq!(days, sorted, "days in order");
}

#[test]
fn html_is_refused_where_it_means_nothing_and_with_send() {
    let out = run_expect(&["--format", "html", "pricing", "list"], 2);
    assert!(stderr(&out).contains("--format html is the output of `report` only"));
    let t = TempDir::new("report-html-send");
    let (_, jsonl) = demo_corpus(50, 3, (0, 1));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    let out = run_expect(
        &[
            "--db",
            s(&t.db()),
            "--format",
            "html",
            "report",
            "--send",
            "x",
        ],
        2,
    );
    assert!(stderr(&out).contains("--send"), "{}", stderr(&out));
}
