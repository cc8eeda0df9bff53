//! Fills a store with N synthetic invocations of the demo team (no JSON, straight through the
//! store's write path), for the report benchmark: `cargo run --release -p bedrock-usage
//! --example fill_store -- DB N`. Request ids are made time-ordered so that SQLite appends.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test or a tool: a panic is its report

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().unwrap_or_else(|| "bench/out/10m.db".into());
    let n: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let mut store = bedrock_usage::store::open(std::path::Path::new(&db))?;
    let keys = bedrock_usage_core::Config::defaults().metadata_keys;
    let batch = 200_000u64;
    let start = std::time::Instant::now();
    let mut done = 0u64;
    let mut b = 0u64;
    while done < n {
        let records = batch.min(n - done);
        let opts = bedrock_usage::sources::demo::DemoOptions {
            seed: 1000 + b,
            records,
            first_day: bedrock_usage_core::time::parse_date("2026-11-01").expect("date"),
            days: 30,
            compress: bedrock_usage::cli::Compression::None,
            body_min: 0,
            body_max: 0,
        };
        let ledger = bedrock_usage::sources::demo::generate(&opts);
        let invs: Vec<_> = ledger
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut inv = e.to_invocation();
                inv.request_id = format!("b{b:05}-{i:07}-{}", &e.request_id[..8]);
                inv
            })
            .collect();
        for chunk in invs.chunks(50_000) {
            let batch = bedrock_usage::store::Batch {
                records: chunk,
                ..Default::default()
            };
            store.write(&batch, &keys)?;
        }
        done += records;
        b += 1;
        eprintln!(
            "{done} invocations stored ({:.0}/s)",
            done as f64 / start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
