//! The core's admission decisions alone, on one core: estimate, price bound, admit, settle, with
//! the checks of bench/limits.sh (a requests window, a tokens window, a concurrency cap and a
//! hard budget), at 1,000 calls a second of simulated time.
//!
//!   cargo run --release -p bedrock-usage-core --example limits_speed

use std::time::Instant;

use bedrock_usage_core::limits::{estimate, upper_cost, Check, Ledger};
use bedrock_usage_core::pricing::{normalize_model_id, PriceCatalog};
use bedrock_usage_core::NanoUsd;

fn main() {
    let catalog = PriceCatalog::embedded();
    let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let id = "anthropic.claude-3-haiku-20240307-v1:0";
    let checks = vec![
        Check::Requests {
            limit: "p".into(),
            key: "rpm/p/bench".into(),
            per_minute: 100_000_000,
        },
        Check::Tokens {
            limit: "p".into(),
            key: "tpm/p/bench".into(),
            per_minute: 1_000_000_000_000,
        },
        Check::Concurrent {
            limit: "p".into(),
            key: "conc/p/bench".into(),
            max: 100_000,
        },
        Check::Budget {
            budget: "cap".into(),
            key: "cap/bench/2026-12".into(),
            amount: NanoUsd(1_000_000 * 1_000_000_000),
            resets_ms: 0,
            period: "month".into(),
        },
    ];
    let mut ledger = Ledger::new();
    let n = 200_000;
    let start = Instant::now();
    for i in 0..n {
        let now = 1_764_633_600_000 + i; // 1,000 a second
        let model = normalize_model_id(id, &Default::default());
        let est = estimate(body, false, 64_000);
        let d = catalog
            .decide(&model, id, "us-east-1", 20_424, Default::default())
            .unwrap_or_else(|e| panic!("unpriced: {e:?}"));
        let cost = upper_cost(&d.rates, &est);
        let r = ledger
            .admit(checks.clone(), cost, now)
            .unwrap_or_else(|e| panic!("refused: {e:?}"));
        ledger.settle(r, 19, NanoUsd(11_750), Some(&format!("req-{i}")), now + 1);
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{n} calls: {:.2} us per call (estimate, price bound, admit, settle)",
        per / 1000.0
    );
}
