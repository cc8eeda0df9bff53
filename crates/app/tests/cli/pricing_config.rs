use crate::util::*;

#[test]
fn config_check_reports_every_problem_at_once() {
    let t = TempDir::new("cfg-bad");
    let p = t.path("bad.toml");
    std::fs::write(
        &p,
        r#"
[attribution]
metadata_keys = [""]
[aliases]
"x" = "y"
"y" = "z"
[developers.alice]
team = "nope"
[teams.platform]
cost_center = "CC-1"
[models]
"arn:aws:bedrock:us-east-1:1:application-inference-profile/p" = "anthropic.claude-9-imaginary"
"#,
    )
    .expect("write");
    let err = stderr(&run_expect(&["--config", s(&p), "config", "check"], 2));
    for needle in [
        "metadata_keys",
        "aliases.\"x\"",
        "developers.alice.team",
        "problem(s)",
    ] {
        assert!(err.contains(needle), "missing {needle}:\n{err}");
    }
    // Valid TOML whose model mapping cannot be priced is a problem too.
    std::fs::write(&p, "[models]\n\"arn:aws:bedrock:us-east-1:1:application-inference-profile/p\" = \"anthropic.claude-9-imaginary\"\n").expect("write");
    let err = stderr(&run_expect(&["--config", s(&p), "config", "check"], 2));
    assert!(
        err.contains("cannot be priced") && err.contains("claude-9-imaginary"),
        "{err}"
    );
    // Unknown keys name the key and the place.
    std::fs::write(&p, "[attribution]\nmetadata_key = [\"dev\"]\n").expect("write");
    let err = stderr(&run_expect(&["--config", s(&p), "config", "check"], 2));
    assert!(
        err.contains("metadata_key") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn config_check_accepts_the_demo_config() {
    let t = TempDir::new("cfg-ok");
    let p = demo_config(&t);
    let out = stdout(&run_ok(&["--config", s(&p), "config", "check"]));
    assert!(out.contains(": ok") && out.contains("aliases: 3"), "{out}");
}

#[test]
fn pricing_show_explains_the_rules() {
    let out = stdout(&run_ok(&[
        "pricing",
        "show",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "--date",
        "2026-11-03",
    ]));
    assert!(
        out.contains("x1.1 applied")
            && out.contains("Claude Sonnet 4.5")
            && out.contains("3.30")
            && out.contains("above 200,000"),
        "{out}"
    );
    let out = stdout(&run_ok(&[
        "pricing",
        "show",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "--date",
        "2026-11-03",
    ]));
    assert!(out.contains("not applied") && out.contains("3.00"), "{out}");
    let out = run_expect(&["pricing", "show", "anthropic.claude-9-imaginary-v1:0"], 1);
    assert!(stdout(&out).contains("UNPRICED"), "{}", stdout(&out));
    let list = stdout(&run_ok(&["--format", "json", "pricing", "list"]));
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert!(v
        .as_array()
        .expect("array")
        .iter()
        .any(|m| m["model"] == "claude-opus-4-5" && m["input"] == 5.0));
}

#[test]
fn a_catalog_change_reprices_history() {
    let t = TempDir::new("cfg-reprice");
    ingest(&t.db(), &[&data("invocations.jsonl")]);
    let before = report_csv(&t.db(), None, &["--by", "model"]);
    let cost = |rows: &[std::collections::BTreeMap<String, String>], m: &str| {
        rows.iter()
            .find(|r| r["model"] == m)
            .map(|r| r["cost_usd"].clone())
            .expect("row")
    };
    assert_eq!(cost(&before, "claude-3-sonnet"), "0.008682");
    std::fs::write(
        t.path("prices.toml"),
        "[[model]]\nkey = \"claude-3-sonnet\"\n[[model.rates]]\nfrom = \"2024-01-01\"\ninput = \"6.00\"\noutput = \"30.00\"\ncache_write_5m = \"7.50\"\ncache_read = \"0.60\"\n",
    )
    .expect("write");
    std::fs::write(t.path("c.toml"), "[pricing]\ncatalog = \"prices.toml\"\n").expect("write");
    let after = report_csv(&t.db(), Some(&t.path("c.toml")), &["--by", "model"]);
    assert_eq!(cost(&after, "claude-3-sonnet"), "0.017364");
    assert_eq!(
        cost(&after, "claude-opus-4-1"),
        cost(&before, "claude-opus-4-1")
    );
}

#[test]
fn pricing_unpriced_names_unknown_models() {
    let t = TempDir::new("cfg-unpriced");
    let (_, jsonl) = demo_corpus(600, 9, (0, 1));
    std::fs::write(t.path("c.jsonl"), jsonl).expect("write");
    ingest(&t.db(), &[&t.path("c.jsonl")]);
    let out = stdout(&run_ok(&["--db", s(&t.db()), "pricing", "unpriced"]));
    assert!(
        out.contains("meta.llama3-1-70b-instruct-v1:0")
            && out.contains("application-inference-profile"),
        "{out}"
    );
    let cfg = demo_config(&t);
    let out = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&cfg),
        "pricing",
        "unpriced",
    ]));
    assert!(
        out.contains("meta.llama3-1-70b-instruct-v1:0")
            && !out.contains("application-inference-profile"),
        "{out}"
    );
}
