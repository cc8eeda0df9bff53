//! Robustness: mutated and truncated records never panic the parser, and a record it accepts is
//! whole (it has its identity and time), never a partial one.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test or a tool: a panic is its report

use bedrock_usage_core::parse_record;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_and_truncated_records_never_panic() {
    let text = include_str!("data/invocations.jsonl");
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let interesting = b"{}[]\":,\\0123456789eE.-+ntfu\x00\xff\xc3";
    let mut accepted = 0;
    for round in 0..20_000 {
        let base = lines[round % lines.len()];
        let mut m = base.to_vec();
        match rng.below(4) {
            0 => m.truncate(rng.below(m.len())),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(m.len());
                    m[i] = interesting[rng.below(interesting.len())];
                }
            }
            2 => {
                let i = rng.below(m.len());
                let j = (i + rng.below(64)).min(m.len());
                m.drain(i..j);
            }
            _ => {
                let i = rng.below(m.len());
                let ins: Vec<u8> = (0..1 + rng.below(8))
                    .map(|_| interesting[rng.below(interesting.len())])
                    .collect();
                m.splice(i..i, ins);
            }
        }
        if let Ok(inv) = parse_record(&m) {
            accepted += 1;
            assert!(
                !inv.request_id.trim().is_empty(),
                "accepted a record without requestId: {}",
                String::from_utf8_lossy(&m)
            );
            assert!(!inv.model_id.trim().is_empty());
            assert!(inv.tokens.cache_write_1h <= inv.tokens.cache_write());
        }
    }
    // Some mutations land in bodies or values and leave a valid record: both paths are exercised.
    assert!(accepted > 100, "only {accepted} mutated records parsed");
}
