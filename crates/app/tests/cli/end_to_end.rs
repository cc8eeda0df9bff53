use std::collections::BTreeMap;

use bedrock_usage_core::pricing::normalize_model_id;
use bedrock_usage_core::time::MS_PER_DAY;
use bedrock_usage_core::{Config, NanoUsd, PriceCatalog};

use crate::util::*;

#[derive(Default, Debug)]
struct Expected {
    calls: u64,
    errors: u64,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cache_write_1h: u64,
    pico: i128,
    unpriced: u64,
}

/// `demo --write` a corpus in the S3 layout, ingest it, and check every figure of the report by
/// developer against totals computed here from the generator's ledger (not from the parser).
#[test]
fn report_by_developer_matches_the_generators_ledger() {
    let t = TempDir::new("e2e");
    let dir = t.path("corpus");
    run_ok(&[
        "demo",
        "--write",
        s(&dir),
        "--records",
        "4000",
        "--body-kb",
        "1-8",
        "--seed",
        "7",
    ]);
    let config_path = dir.join("bedrock-usage.toml");
    let ledger: Vec<bedrock_usage::sources::demo::LedgerEntry> =
        std::fs::read_to_string(dir.join("ledger.jsonl"))
            .expect("ledger")
            .lines()
            .map(|l| serde_json::from_str(l).expect("ledger line"))
            .collect();
    assert_eq!(ledger.len(), 4000);
    run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&config_path),
        "ingest",
        "--no-progress",
        s(&dir.join("AWSLogs")),
    ]);

    let config = Config::parse(bedrock_usage::sources::demo::DEMO_CONFIG, "demo").expect("config");
    let catalog = PriceCatalog::embedded();
    let mut want: BTreeMap<String, Expected> = BTreeMap::new();
    for e in &ledger {
        let x = want.entry(e.developer.clone()).or_default();
        let tokens = e.tokens();
        x.calls += 1;
        x.errors += e.error_code.is_some() as u64;
        x.input += e.input;
        x.output += e.output;
        x.cache_read += e.cache_read;
        x.cache_write += e.cache_write_5m + e.cache_write_1h;
        x.cache_write_1h += e.cache_write_1h;
        let model = normalize_model_id(&e.model_id, &config.models);
        match catalog.cost_pico(
            &model,
            &e.model_id,
            &e.region,
            e.timestamp_ms.div_euclid(MS_PER_DAY),
            &tokens,
        ) {
            Ok(p) => x.pico += p,
            Err(_) if tokens.total() == 0 => {}
            Err(_) => x.unpriced += 1,
        }
    }
    let got = report_csv(&t.db(), Some(&config_path), &["--by", "developer"]);
    assert_eq!(got.len(), want.len(), "developers: {got:?}");
    for row in &got {
        let dev = &row["developer"];
        let x = want
            .get(dev)
            .unwrap_or_else(|| panic!("unexpected developer {dev}"));
        let n = |k: &str| {
            row[k]
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{k} of {dev}"))
        };
        assert_eq!(n("calls"), x.calls, "{dev} calls");
        assert_eq!(n("errors"), x.errors, "{dev} errors");
        assert_eq!(n("input_tokens"), x.input, "{dev} input");
        assert_eq!(n("output_tokens"), x.output, "{dev} output");
        assert_eq!(n("cache_read_tokens"), x.cache_read, "{dev} cache read");
        assert_eq!(n("cache_write_tokens"), x.cache_write, "{dev} cache write");
        assert_eq!(
            n("cache_write_1h_tokens"),
            x.cache_write_1h,
            "{dev} 1h cache write"
        );
        assert_eq!(
            n("total_tokens"),
            x.input + x.output + x.cache_read + x.cache_write,
            "{dev} total"
        );
        assert_eq!(
            row["cost_usd"],
            NanoUsd::from_pico(x.pico).to_decimal_micros(),
            "{dev} cost"
        );
        assert_eq!(n("unpriced_calls"), x.unpriced, "{dev} unpriced");
    }
    // The demo's story holds: grace is only visible as the shared principal, heidi has unpriced
    // calls, and every developer of the team appears.
    assert!(want.contains_key("shared:code-server-multi-dev-ec2-role/i-0a1b2c3d4e5f67890"));
    assert!(want["heidi"].unpriced > 0);
    // JSON has the documented fields, with cost as a number.
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&config_path),
        "--format",
        "json",
        "report",
        "--by",
        "developer",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let first = &v.as_array().expect("array")[0];
    for f in [
        "developer",
        "calls",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "total_tokens",
        "cost_usd",
        "unpriced_calls",
    ] {
        assert!(first.get(f).is_some(), "missing {f} in {first}");
    }
    assert!(first["cost_usd"].is_number());
    assert!(
        stderr(&out).contains("shared principal"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_runs_end_to_end_and_is_repeatable() {
    let a = run_ok(&["demo", "--seed", "3", "--records", "800"]);
    let b = run_ok(&["demo", "--seed", "3", "--records", "800"]);
    let strip = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .filter(|l| !l.contains("ingested in"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&a), strip(&b));
    let text = stdout(&a);
    for needle in [
        "Usage and cost by developer",
        "By model",
        "alice",
        "shared:code-server-multi-dev-ec2-role",
        "Try next",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert!(stderr(&a).contains("unpriced"), "{}", stderr(&a));
}
