//! The price catalog against its sources: `pricing show` golden for every model and id form on
//! either side of each dated change, `pricing import-aws` over an offer file made here from the
//! Price List schema (and over HTTP with --api), `pricing diff`, `pricing check` over a small
//! LiteLLM-format map.

use std::io::{Read, Write};

use crate::util::*;
use bedrock_usage_core::pricing::PriceCatalog;
use bedrock_usage_core::time::{format_date, parse_date};
use serde_json::{json, Value};

/// One real Bedrock model id per catalog entry (the plain in-region form).
const IDS: &[(&str, &str)] = &[
    ("claude-instant-v1", "anthropic.claude-instant-v1"),
    ("claude-v1", "anthropic.claude-v1"),
    ("claude-v2", "anthropic.claude-v2:1"),
    ("claude-3-haiku", "anthropic.claude-3-haiku-20240307-v1:0"),
    (
        "claude-3-5-haiku",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
    ),
    ("claude-3-sonnet", "anthropic.claude-3-sonnet-20240229-v1:0"),
    (
        "claude-3-5-sonnet",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
    ),
    (
        "claude-3-7-sonnet",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
    ),
    ("claude-sonnet-4", "anthropic.claude-sonnet-4-20250514-v1:0"),
    (
        "claude-sonnet-4-5",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
    ("claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"),
    ("claude-sonnet-5", "anthropic.claude-sonnet-5"),
    ("claude-sonnet-5-5", "anthropic.claude-sonnet-5-5"),
    ("claude-3-opus", "anthropic.claude-3-opus-20240229-v1:0"),
    ("claude-opus-4", "anthropic.claude-opus-4-20250514-v1:0"),
    ("claude-opus-4-1", "anthropic.claude-opus-4-1-20250805-v1:0"),
    ("claude-opus-4-5", "anthropic.claude-opus-4-5-20251101-v1:0"),
    ("claude-opus-4-6", "anthropic.claude-opus-4-6-v1"),
    ("claude-opus-4-7", "anthropic.claude-opus-4-7"),
    ("claude-opus-4-8", "anthropic.claude-opus-4-8"),
    ("claude-opus-5", "anthropic.claude-opus-5"),
    ("claude-opus-5-5", "anthropic.claude-opus-5-5"),
    (
        "claude-haiku-4-5",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
    ),
    ("claude-haiku-5-5", "anthropic.claude-haiku-5-5"),
    ("claude-fable-5", "anthropic.claude-fable-5"),
    ("claude-fable-5-1", "anthropic.claude-fable-5-1"),
    ("claude-mythos-preview", "anthropic.claude-mythos-preview"),
    ("claude-mythos-5", "anthropic.claude-mythos-5"),
    ("claude-mythos-5-1", "anthropic.claude-mythos-5-1"),
];

/// Every form a log can name the model in.
fn forms(plain: &str) -> Vec<String> {
    vec![
        plain.to_string(),
        format!("global.{plain}"),
        format!("us.{plain}"),
        format!("eu.{plain}"),
        format!("apac.{plain}"),
        format!("us-gov.{plain}"),
        format!("arn:aws:bedrock:us-east-1::foundation-model/{plain}"),
        format!("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{plain}"),
        format!("arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{plain}"),
    ]
}

/// `pricing show --format json` as one line: the rates of every class, or why unpriced.
fn show_line(args: &[&str]) -> String {
    let mut full = vec!["--format", "json", "pricing", "show"];
    full.extend_from_slice(args);
    let out = bin().args(&full).output().expect("run");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{full:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let mut line = args.join(" ");
    match v["rates_usd_per_million"].as_array() {
        Some(rates) if !rates.is_empty() => {
            for r in rates {
                line.push_str(&format!(
                    " | {}: {}/{}/{}/{}/{}",
                    r["class"].as_str().unwrap_or("?"),
                    r["input"].as_str().unwrap_or("?"),
                    r["output"].as_str().unwrap_or("?"),
                    r["cache_write_5m"].as_str().unwrap_or("?"),
                    r["cache_write_1h"].as_str().unwrap_or("?"),
                    r["cache_read"].as_str().unwrap_or("?"),
                ));
            }
            if let Some(p) = v["premium"].as_str() {
                line.push_str(&format!(" | premium: {p}"));
            }
            if let Some(s) = v["input_side"].as_str() {
                line.push_str(&format!(" | {s}"));
            }
        }
        _ => line.push_str(&format!(" | {}", v["price"].as_str().unwrap_or("?"))),
    }
    line
}

#[test]
fn pricing_show_golden_for_every_model_and_id_form_on_either_side_of_each_change() {
    let catalog = PriceCatalog::embedded();
    let keys: Vec<&str> = catalog.entries().map(|e| e.key.as_str()).collect();
    for k in &keys {
        assert!(
            IDS.iter().any(|(key, _)| key == k),
            "catalog entry `{k}` has no id in this test: add one to IDS"
        );
    }
    let mut lines = Vec::new();
    // The changes the issue names, first.
    for args in [
        &["global.anthropic.claude-sonnet-5", "--date", "2026-08-31"][..],
        &["global.anthropic.claude-sonnet-5", "--date", "2026-09-02"],
        &[
            "global.anthropic.claude-opus-4-6-v1",
            "--date",
            "2026-03-12",
            "--input-tokens",
            "250000",
        ],
        &[
            "global.anthropic.claude-opus-4-6-v1",
            "--date",
            "2026-03-13",
            "--input-tokens",
            "250000",
        ],
        &[
            "us.anthropic.claude-sonnet-4-6",
            "--date",
            "2026-03-12",
            "--input-tokens",
            "250000",
        ],
        &[
            "us.anthropic.claude-sonnet-4-6",
            "--date",
            "2026-03-13",
            "--input-tokens",
            "250000",
        ],
        &["global.anthropic.claude-sonnet-5-5", "--date", "2026-10-06"],
        &["global.anthropic.claude-sonnet-5-5", "--date", "2026-10-08"],
        &[
            "global.anthropic.claude-haiku-5-5",
            "--date",
            "2026-11-03",
            "--input-tokens",
            "100000",
        ],
        &[
            "global.anthropic.claude-haiku-5-5",
            "--date",
            "2026-11-03",
            "--input-tokens",
            "100001",
        ],
        &[
            "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "--date",
            "2026-11-03",
        ],
        &[
            "anthropic.claude-instant-v1",
            "--date",
            "2026-11-03",
            "--region",
            "ap-northeast-1",
        ],
        &[
            "anthropic.claude-instant-v1",
            "--date",
            "2026-11-03",
            "--region",
            "eu-central-1",
        ],
        &[
            "anthropic.claude-3-haiku-20240307-v1:0",
            "--date",
            "2026-11-03",
            "--region",
            "us-gov-west-1",
        ],
    ] {
        lines.push(show_line(args));
    }
    for (key, plain) in IDS {
        let e = catalog
            .entry(key)
            .unwrap_or_else(|| panic!("IDS names `{key}`, which the catalog does not have"));
        // Every form on the day the newest block starts.
        let newest = format_date(e.blocks.last().map_or(0, |b| b.base.from_day));
        for id in forms(plain) {
            lines.push(show_line(&[&id, "--date", &newest]));
        }
        // Either side of every block start (the day before the first: unpriced).
        for b in &e.blocks {
            let day = b.base.from_day;
            for d in [day - 1, day] {
                lines.push(show_line(&[plain, "--date", &format_date(d)]));
            }
        }
    }
    let text = lines.join("\n") + "\n";
    // Spot checks that would fail on a wrong catalog, whatever the golden file says.
    for want in [
        "global.anthropic.claude-sonnet-5 --date 2026-09-02 | standard: 2.00/10.00/2.50/4.00/0.20",
        "global.anthropic.claude-opus-4-6-v1 --date 2026-03-12 --input-tokens 250000 | standard: 5.00/25.00/6.25/10.00/0.50 | above 200,000: 10.00/37.50/12.50/20.00/1.00",
        "global.anthropic.claude-sonnet-5-5 --date 2026-10-08 | standard: 2.00/10.00/2.50/4.00/0.10",
        "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0 --date 2026-11-03 | standard: 3.60/18.00/4.50/7.20/0.36",
        "--input-tokens 100001 | standard: 0.10/0.50/0.125/0.20/0.01 | above 100,000: 0.50/2.50/0.625/1.00/0.05 | premium: x1.1 on geographic and in-region endpoints; not applied: this is a global profile | 100,001 tokens: priced at the `above 100,000` rates",
        "anthropic.claude-instant-v1 --date 2026-11-03 --region ap-northeast-1 | standard: 2.23/7.55",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    assert!(
        !text.contains("global.anthropic.claude-opus-4-6-v1 --date 2026-03-13 --input-tokens 250000 | standard: 5.00/25.00/6.25/10.00/0.50 | above"),
        "Opus 4.6 has no long-context rates from 2026-03-13:\n{text}"
    );
    golden("pricing/show.txt", &text);
}

/// An AWS Price List offer file for Amazon Bedrock, in the bulk format's schema: products by
/// SKU with attributes, and on-demand terms with effective dates and price dimensions.
fn offer_file() -> Value {
    let mut products = serde_json::Map::new();
    let mut terms = serde_json::Map::new();
    let mut n = 0;
    let mut add =
        |usage: &str, region: &str, model: Option<&str>, prices: &[(&str, &str, &str, &str)]| {
            n += 1;
            let sku = format!("SKU{n:04}");
            let mut attrs = json!({
                "servicecode": "AmazonBedrock",
                "regionCode": region,
                "usagetype": usage,
                "operation": "Usage",
            });
            if let Some(m) = model {
                attrs["model"] = json!(m);
            }
            products.insert(
                sku.clone(),
                json!({"sku": sku, "productFamily": "Amazon Bedrock", "attributes": attrs}),
            );
            let mut offers = serde_json::Map::new();
            for (i, (date, unit, usd, description)) in prices.iter().enumerate() {
                let code = format!("{sku}.TERM{i}");
                offers.insert(
                    code.clone(),
                    json!({
                        "offerTermCode": format!("TERM{i}"),
                        "sku": sku,
                        "effectiveDate": format!("{date}T00:00:00Z"),
                        "priceDimensions": {
                            format!("{code}.DIM"): {
                                "rateCode": format!("{code}.DIM"),
                                "description": description,
                                "beginRange": "0", "endRange": "Inf",
                                "unit": unit,
                                "pricePerUnit": {"USD": usd}
                            }
                        },
                        "termAttributes": {}
                    }),
                );
            }
            terms.insert(sku, Value::Object(offers));
        };
    let k = "1K tokens";
    // Sonnet 4.6 in us-east-1: regional and global, every class.
    for (class, regional, global) in [
        ("input-tokens", "0.0033000000", "0.0030000000"),
        ("output-tokens", "0.0165000000", "0.0150000000"),
        ("cache-write-input-tokens", "0.0041250000", "0.0037500000"),
        (
            "cache-write-1h-input-tokens",
            "0.0066000000",
            "0.0060000000",
        ),
        ("cache-read-input-tokens", "0.0003300000", "0.0003000000"),
    ] {
        add(
            &format!("USE1-Claude4.6Sonnet-{class}"),
            "us-east-1",
            None,
            &[("2026-03-13", k, regional, "per 1K tokens")],
        );
        add(
            &format!("USE1-Claude4.6Sonnet-{class}-global"),
            "us-east-1",
            None,
            &[("2026-03-13", k, global, "per 1K tokens")],
        );
    }
    // In GovCloud: +20%.
    add(
        "UGW1-Claude4.6Sonnet-input-tokens",
        "us-gov-west-1",
        None,
        &[("2026-03-13", k, "0.0036000000", "")],
    );
    add(
        "UGW1-Claude4.6Sonnet-output-tokens",
        "us-gov-west-1",
        None,
        &[("2026-03-13", k, "0.0180000000", "")],
    );
    // Sonnet 5.5: the cache-read cut as a second term.
    add(
        "USE1-Claude5.5Sonnet-input-tokens-global",
        "us-east-1",
        None,
        &[("2026-09-28", k, "0.0020000000", "")],
    );
    add(
        "USE1-Claude5.5Sonnet-output-tokens-global",
        "us-east-1",
        None,
        &[("2026-09-28", k, "0.0100000000", "")],
    );
    add(
        "USE1-Claude5.5Sonnet-cache-read-input-tokens-global",
        "us-east-1",
        None,
        &[
            ("2026-09-28", k, "0.0002000000", ""),
            ("2026-10-07", k, "0.0001000000", ""),
        ],
    );
    // Haiku 5.5 through the Marketplace forms, with its tier above 100,000 tokens.
    let mp = |usd: &str| {
        (
            ("2026-10-08"),
            "Units",
            usd.to_string(),
            "USD per 1M tokens".to_string(),
        )
    };
    for (usage, usd) in [
        ("USE1-MP:USE1_InputTokenCount_Global-Units", "0.1000000000"),
        ("USE1-MP:USE1_OutputTokenCount_Global-Units", "0.5000000000"),
        (
            "USE1-MP:USE1_InputTokenCount_Global_Above100K-Units",
            "0.5000000000",
        ),
        (
            "USE1-MP:USE1_OutputTokenCount_Global_Above100K-Units",
            "2.5000000000",
        ),
    ] {
        let (d, u, p, desc) = mp(usd);
        add(
            usage,
            "us-east-1",
            Some("Claude Haiku 5.5"),
            &[(d, u, &p, &desc)],
        );
    }
    // Claude Instant: dearer in Tokyo.
    add(
        "USE1-ClaudeInstant-input-tokens",
        "us-east-1",
        None,
        &[("2023-09-28", k, "0.0008000000", "")],
    );
    add(
        "USE1-ClaudeInstant-output-tokens",
        "us-east-1",
        None,
        &[("2023-09-28", k, "0.0024000000", "")],
    );
    add(
        "APN1-ClaudeInstant-input-tokens",
        "ap-northeast-1",
        None,
        &[("2023-09-28", k, "0.0022300000", "")],
    );
    add(
        "APN1-ClaudeInstant-output-tokens",
        "ap-northeast-1",
        None,
        &[("2023-09-28", k, "0.0075500000", "")],
    );
    // What cannot be mapped: batch, an unknown word, a unit that says no size, no family.
    add(
        "USE1-Claude4.6Sonnet-batch-input-tokens",
        "us-east-1",
        None,
        &[("2026-03-13", k, "0.0015", "")],
    );
    add(
        "USE1-Claude4.6Sonnet-priority-input-tokens",
        "us-east-1",
        None,
        &[("2026-03-13", k, "0.0040", "")],
    );
    add(
        "USE1-Claude4.6Sonnet-flex-output-tokens",
        "us-east-1",
        None,
        &[("2026-03-13", "Units", "0.01", "flex tier")],
    );
    add(
        "USE1-ClaudeNext-input-tokens",
        "us-east-1",
        None,
        &[("2026-03-13", k, "0.001", "")],
    );
    // Another provider's product: skipped, and counted.
    add(
        "USE1-TitanTextLite-input-tokens",
        "us-east-1",
        None,
        &[("2024-01-01", k, "0.0003", "")],
    );
    json!({
        "formatVersion": "v1.0",
        "disclaimer": "This pricing list is for informational purposes only.",
        "offerCode": "AmazonBedrock",
        "version": "20261201000000",
        "publicationDate": "2026-12-01T00:00:00Z",
        "products": products,
        "terms": {"OnDemand": terms}
    })
}

#[test]
fn import_aws_maps_usage_types_lists_the_rest_and_diff_shows_the_changes() {
    let t = TempDir::new("import-aws");
    let offer = t.path("index.json");
    std::fs::write(
        &offer,
        serde_json::to_vec_pretty(&offer_file()).expect("json"),
    )
    .expect("write");
    let out_toml = t.path("aws.toml");
    let out = run_ok(&["pricing", "import-aws", s(&offer), "--output", s(&out_toml)]);
    let say = stdout(&out);
    for want in [
        "claude-haiku-5-5",
        "claude-instant-v1",
        "claude-sonnet-4-6",
        "claude-sonnet-5-5",
        "1 product(s) of other providers skipped",
        "USE1-Claude4.6Sonnet-batch-input-tokens (SKU",
        "batch inference: not an on-demand price",
        "unknown word `priority`",
        "unknown word `flex`",
        "`ClaudeNext`: no model family and version in it",
        "4 usage type(s) not mapped",
    ] {
        assert!(say.contains(want), "missing `{want}` in:\n{say}");
    }
    let text = std::fs::read_to_string(&out_toml).expect("written");
    let imported = PriceCatalog::parse(&text, "aws.toml").expect("a valid catalog");
    let day = |d: &str| parse_date(d).expect("date");
    let s46 = imported.entry("claude-sonnet-4-6").expect("sonnet 4.6");
    let b = s46.block_on(day("2026-11-03")).expect("block");
    assert_eq!(
        (
            b.base.input,
            b.base.cache_write_1h,
            b.regional_premium.map(|p| p.describe()),
            b.govcloud_premium.map(|p| p.describe())
        ),
        (
            3_000_000,
            Some(6_000_000),
            Some("1.1".to_string()),
            Some("1.2".to_string())
        ),
        "{text}"
    );
    let s55 = imported.entry("claude-sonnet-5-5").expect("sonnet 5.5");
    assert_eq!(s55.blocks.len(), 2, "{text}");
    assert_eq!(
        s55.block_on(day("2026-10-06"))
            .and_then(|b| b.base.cache_read),
        Some(200_000)
    );
    assert_eq!(
        s55.block_on(day("2026-10-07"))
            .and_then(|b| b.base.cache_read),
        Some(100_000)
    );
    let inst = imported.entry("claude-instant-v1").expect("instant");
    let b = inst.block_on(day("2026-11-03")).expect("block");
    assert_eq!(
        b.regions.get("ap-northeast-1").map(|r| (r.input, r.output)),
        Some((2_230_000, 7_550_000))
    );

    // The imported file priced through the CLI: the Haiku 5.5 tier from the Marketplace rows.
    let line = show_line(&[
        "--catalog",
        s(&out_toml),
        "global.anthropic.claude-haiku-5-5",
        "--date",
        "2026-11-03",
        "--input-tokens",
        "100001",
    ]);
    assert!(line.contains("above 100,000: 0.50/2.50"), "{line}");

    // diff against the embedded catalog: Sonnet 4.6's import has no long-context block before
    // 2026-03-13 (it starts there), Haiku 5.5's lacks cache rates the embedded one has.
    let d = stdout(&run_ok(&[
        "--format",
        "csv",
        "pricing",
        "diff",
        s(&out_toml),
    ]));
    assert!(d.starts_with("model,from,what,embedded,file"), "{d}");
    assert!(
        d.contains("claude-sonnet-4-6,2026-02-17,rates,priced,none in force"),
        "{d}"
    );
    assert!(
        d.contains("claude-haiku-5-5,2026-10-08,cache_write_1h,0.20,\n"),
        "{d}"
    );
    assert!(
        d.contains("claude-opus-4-6,,model,in the catalog,\"not in the file (kept"),
        "{d}"
    );
    // A file that changes nothing says so.
    let same = t.path("same.toml");
    std::fs::write(&same, PriceCatalog::embedded_text()).expect("write");
    let d = stdout(&run_ok(&["pricing", "diff", s(&same)]));
    assert!(d.contains("changes nothing"), "{d}");
}

/// Serves `body` once over HTTP on loopback; returns the URL.
fn serve_once(body: Vec<u8>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/offers/v1.0/aws/AmazonBedrock/current/index.json",
        l.local_addr().expect("addr")
    );
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&body);
        }
    });
    url
}

#[test]
fn import_aws_api_downloads_the_offer_file() {
    let url = serve_once(serde_json::to_vec(&offer_file()).expect("json"));
    let out = run_ok(&["pricing", "import-aws", "--api", "--offer-url", &url]);
    let text = stdout(&out);
    assert!(text.contains("key = \"claude-sonnet-5-5\""), "{text}");
    assert!(
        stderr(&out).contains("4 usage type(s) not mapped"),
        "{}",
        stderr(&out)
    );
    let bad = run_expect(&["pricing", "import-aws"], 2);
    assert!(stderr(&bad).contains("--api"), "{}", stderr(&bad));
}

#[test]
fn pricing_check_prints_each_difference_with_a_litellm_map() {
    let t = TempDir::new("litellm-check");
    let map = json!({
        "sample_spec": {"litellm_provider": "openai"},
        "anthropic.claude-sonnet-4-5-20250929-v1:0": {"litellm_provider": "bedrock", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05},
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0": {"litellm_provider": "bedrock_converse", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05, "input_cost_per_token_above_200k_tokens": 6e-06},
        "bedrock/ap-northeast-1/anthropic.claude-instant-v1": {"litellm_provider": "bedrock", "input_cost_per_token": 2.23e-06, "output_cost_per_token": 7.55e-06},
        "bedrock/us-east-1/1-month-commitment/anthropic.claude-v1": {"litellm_provider": "bedrock"},
        "us.anthropic.claude-sonnet-5": {"litellm_provider": "bedrock_converse", "input_cost_per_token": 2.2e-06, "cache_read_input_token_cost": 2.2e-07},
        "anthropic.claude-3-haiku-20240307-v1:0": {"litellm_provider": "bedrock", "input_cost_per_token": 2.5e-07, "cache_read_input_token_cost": 2.5e-08},
        "anthropic.claude-imaginary-9": {"litellm_provider": "bedrock", "input_cost_per_token": 1e-06},
        "claude-sonnet-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 9e-06},
    });
    let f = t.path("map.json");
    std::fs::write(&f, serde_json::to_vec(&map).expect("json")).expect("write");
    let out = stdout(&run_ok(&[
        "--format",
        "csv",
        "pricing",
        "check",
        s(&f),
        "--date",
        "2026-11-03",
    ]));
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows[0], "litellm_key,field,catalog,litellm");
    // LiteLLM misses the regional premium on a plain id and has other cache rates for Claude 3
    // Haiku; an id the catalog does not know is unpriced. Nothing else differs.
    let mut got: Vec<&str> = rows[1..].to_vec();
    got.sort();
    assert_eq!(
        got,
        vec![
            "anthropic.claude-3-haiku-20240307-v1:0,cache_read,0.03,0.025",
            "anthropic.claude-imaginary-9,input,unpriced (no catalog entry for model `claude-imaginary-9`),1.00",
            "anthropic.claude-sonnet-4-5-20250929-v1:0,input,3.30,3.00",
            "anthropic.claude-sonnet-4-5-20250929-v1:0,output,16.50,15.00",
        ],
        "{out}"
    );
    let table = stdout(&run_ok(&[
        "pricing",
        "check",
        s(&f),
        "--date",
        "2026-11-03",
    ]));
    assert!(
        table.contains("6 Bedrock Claude entries compared on 2026-11-03")
            && table.contains("4 difference(s)")
            && table.contains("1 entries not compared"),
        "{table}"
    );
    let bad = t.path("bad.json");
    std::fs::write(&bad, "{\"a\": [1,").expect("write");
    let e = run_expect(&["pricing", "check", s(&bad)], 2);
    assert!(
        stderr(&e).contains("bad.json") && stderr(&e).contains("line 1"),
        "{}",
        stderr(&e)
    );
}
