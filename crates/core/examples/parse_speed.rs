//! Parser throughput on one core: `cargo run --release -p bedrock-usage-core --example
//! parse_speed -- FILE...` (plain JSON lines). Used by bench/ingest.sh to separate parsing from
//! the rest of the pipeline.

fn main() {
    let mut bytes = 0usize;
    let mut records = 0usize;
    let mut bad = 0usize;
    let mut data = Vec::new();
    for path in std::env::args().skip(1) {
        data.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    }
    if std::env::var_os("BASELINE").is_some() {
        baseline(&data);
    }
    let start = std::time::Instant::now();
    let mut from = 0;
    for nl in memchr::memchr_iter(b'\n', &data).chain(std::iter::once(data.len())) {
        let line = &data[from..nl];
        from = nl + 1;
        if line.is_empty() {
            continue;
        }
        bytes += line.len() + 1;
        match bedrock_usage_core::parse_record(line) {
            Ok(r) => records += r.tokens.total() as usize % 2 + 1,
            Err(_) => bad += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{bytes} bytes, {records} records, {bad} bad in {secs:.3} s: {:.0} MB/s on one core",
        bytes as f64 / 1e6 / secs
    );
}

#[allow(dead_code)]
fn baseline(data: &[u8]) {
    let start = std::time::Instant::now();
    let mut n = 0;
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "baseline IgnoredAny: {n} in {secs:.3} s: {:.0} MB/s",
        data.len() as f64 / 1e6 / secs
    );
}
