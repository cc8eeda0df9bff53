//! Decompression alone, the floor for ingesting gzip: inflates every file given, streaming with
//! zlib-rs (flate2) and whole with libdeflate (what bedrock-usage uses for objects up to 16 MiB),
//! each with one thread and then one thread per core, and prints the throughput of the
//! decompressed bytes.
//!
//! `cargo run --release -p bedrock-usage --example inflate_speed -- FILE...`

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test or a tool: a panic is its report

use std::io::Read;

fn inflate(path: &std::path::Path) -> u64 {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut d = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match d.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k as u64,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

fn whole(path: &std::path::Path) -> u64 {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    match bedrock_usage::sources::gzip::inflate_whole(path, size) {
        Some(v) => v.len() as u64,
        None => inflate(path),
    }
}

/// Seconds to run `f` over every file, on `threads` threads.
fn timed(
    files: &[std::path::PathBuf],
    threads: usize,
    f: fn(&std::path::Path) -> u64,
) -> (u64, f64) {
    let start = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match files.get(i) {
                    Some(p) => {
                        total.fetch_add(f(p), std::sync::atomic::Ordering::Relaxed);
                    }
                    None => return,
                }
            });
        }
    });
    (total.into_inner(), start.elapsed().as_secs_f64())
}

fn main() {
    let files: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    for (name, f) in [
        ("zlib-rs streaming", inflate as fn(&std::path::Path) -> u64),
        ("libdeflate whole", whole),
    ] {
        let (total, one) = timed(&files, 1, f);
        let (_, all) = timed(&files, cores, f);
        println!(
            "{name}: inflated {:.1} MB from {} files: one thread {one:.2} s ({:.0} MB/s); {cores} threads {all:.2} s ({:.0} MB/s)",
            total as f64 / 1e6,
            files.len(),
            total as f64 / 1e6 / one,
            total as f64 / 1e6 / all
        );
    }
}
