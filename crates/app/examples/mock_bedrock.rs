//! The tests' mock Bedrock runtime as a program of its own, for the gateway benchmark
//! (bench/gateway.sh) and for trying a client by hand:
//!
//! ```text
//! cargo run --example mock_bedrock -- /tmp/mock-log.jsonl
//! ```
//!
//! It prints its URL on the first line of stdout and serves until it is killed. Requests must be
//! signed with the test credentials (AWS_ACCESS_KEY_ID=AKIDGATEWAYTEST,
//! AWS_SECRET_ACCESS_KEY=gateway-test-secret), as the gateway signs them; it counts the others
//! and prints the count to stderr every 10 s when there are any.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a tool: a panic is its report

#[allow(dead_code)]
#[path = "../tests/cli/mock_bedrock.rs"]
mod mock_bedrock;

fn main() {
    let log = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mock-bedrock-log.jsonl"));
    let mock = mock_bedrock::start(log);
    println!("{}", mock.url);
    let mut reported = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(10));
        let n = mock.unsigned();
        if n != reported {
            eprintln!("mock_bedrock: {n} request(s) not signed with the test credentials");
            reported = n;
        }
    }
}
