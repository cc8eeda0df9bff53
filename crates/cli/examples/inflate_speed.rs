//! Decompression alone, the floor for ingesting gzip: inflates every file given (zlib-rs through
//! flate2, the decompressor bedrock-usage uses) with one thread, then with one thread per core
//! over the files, and prints the throughput of the decompressed bytes.
//!
//! `cargo run --release -p bedrock-usage --example inflate_speed -- FILE...`

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

fn main() {
    let files: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let start = std::time::Instant::now();
    let total: u64 = files.iter().map(|f| inflate(f)).sum();
    let one = start.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let start = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match files.get(i) {
                    Some(f) => {
                        inflate(f);
                    }
                    None => return,
                }
            });
        }
    });
    let all = start.elapsed().as_secs_f64();
    println!(
        "inflated {:.1} MB from {} files: one thread {one:.2} s ({:.0} MB/s); {cores} threads {all:.2} s ({:.0} MB/s)",
        total as f64 / 1e6,
        files.len(),
        total as f64 / 1e6 / one,
        total as f64 / 1e6 / all
    );
}
