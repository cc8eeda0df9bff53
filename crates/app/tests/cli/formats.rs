use crate::util::*;

fn samples() -> String {
    std::fs::read_to_string(data("invocations.jsonl")).expect("samples")
}

#[test]
fn json_lines() {
    let t = TempDir::new("fmt-jsonl");
    ingest(&t.db(), &[&data("invocations.jsonl")]);
    golden("samples-store.json", &dump(&t.db()));
}

#[test]
fn crlf_and_blank_lines() {
    let t = TempDir::new("fmt-crlf");
    let text = samples().replace('\n', "\r\n\r\n");
    std::fs::write(t.path("crlf.log"), text).expect("write");
    ingest(&t.db(), &[&t.path("crlf.log")]);
    golden("samples-store.json", &dump(&t.db()));
}

#[test]
fn gzip_detected_by_magic_not_name() {
    let t = TempDir::new("fmt-gz");
    std::fs::write(t.path("no-extension"), gzip(samples().as_bytes())).expect("write");
    ingest(&t.db(), &[&t.path("no-extension")]);
    golden("samples-store.json", &dump(&t.db()));
}

#[test]
fn multi_member_gzip() {
    let t = TempDir::new("fmt-gz2");
    let text = samples();
    let (a, b) = text.split_at(text.find("\n{\"schemaType\"").expect("split") + 1);
    let mut both = gzip(a.as_bytes());
    both.extend(gzip(b.as_bytes()));
    std::fs::write(t.path("two.json.gz"), both).expect("write");
    ingest(&t.db(), &[&t.path("two.json.gz")]);
    golden("samples-store.json", &dump(&t.db()));
}

#[test]
fn cloudwatch_export_task_lines() {
    let t = TempDir::new("fmt-export");
    let text: String = samples()
        .lines()
        .map(|l| format!("2026-11-03T02:14:07.123Z {l}\n"))
        .collect();
    std::fs::write(t.path("000000"), gzip(text.as_bytes())).expect("write");
    ingest(&t.db(), &[&t.path("000000")]);
    golden("samples-store.json", &dump(&t.db()));
}

#[test]
fn s3_delivery_layout() {
    let t = TempDir::new("fmt-s3");
    let hour =
        t.path("AWSLogs/123456789012/BedrockModelInvocationLogs/ap-southeast-1/2026/11/03/02");
    std::fs::create_dir_all(hour.join("data")).expect("mkdir");
    std::fs::write(
        hour.join("20261103T021407Z_3f1d.json.gz"),
        gzip(samples().as_bytes()),
    )
    .expect("write");
    // The offloaded body and the permission check are not records and must be skipped silently.
    std::fs::write(
        hour.join("data/7a6b5c4d_input.json.gz"),
        gzip(b"{\"messages\":[]}"),
    )
    .expect("write");
    std::fs::write(
        t.path(
            "AWSLogs/123456789012/BedrockModelInvocationLogs/amazon-bedrock-logs-permission-check",
        ),
        b"",
    )
    .expect("write");
    let out = ingest(&t.db(), &[&t.path("AWSLogs")]);
    assert!(!stderr(&out).contains("bad"), "{}", stderr(&out));
    golden("samples-store.json", &dump(&t.db()));
}

#[test]
fn filter_log_events_output() {
    let t = TempDir::new("fmt-fle");
    ingest(&t.db(), &[&data("filter-log-events.json")]);
    golden("filter-log-events-store.json", &dump(&t.db()));
    // Compact (one line) output is detected too, and gives the same records.
    let t2 = TempDir::new("fmt-fle2");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data("filter-log-events.json")).expect("read"),
    )
    .expect("json");
    std::fs::write(t2.path("compact.json"), v.to_string()).expect("write");
    ingest(&t2.db(), &[&t2.path("compact.json")]);
    assert_eq!(dump(&t2.db()), dump(&t.db()));
}

#[test]
fn stdin_plain_and_gzip() {
    let t = TempDir::new("fmt-stdin");
    let out = run_with_stdin(&["--db", s(&t.db()), "ingest", "-"], samples().as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    golden("samples-store.json", &dump(&t.db()));
    let t2 = TempDir::new("fmt-stdin-gz");
    let out = run_with_stdin(
        &["--db", s(&t2.db()), "ingest", "-"],
        &gzip(samples().as_bytes()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    golden("samples-store.json", &dump(&t2.db()));
}

/// A record longer than a read chunk (a multi-megabyte body) is read whole, by ingest and by
/// query over files.
#[test]
fn lines_longer_than_a_chunk() {
    let t = TempDir::new("fmt-long");
    let samples = std::fs::read_to_string(data("invocations.jsonl")).expect("samples");
    let mut lines: Vec<String> = samples.lines().map(String::from).collect();
    let filler = "x".repeat(3 << 20);
    lines[0] = lines[0].replace(
        "Summarise the deploy log below.",
        &format!("Summarise {filler}"),
    );
    std::fs::write(t.path("long.jsonl"), lines.join("\n") + "\n").expect("write");
    let out = ingest(&t.db(), &[&t.path("long.jsonl")]);
    assert!(!stderr(&out).contains("bad"), "{}", stderr(&out));
    golden("samples-store.json", &dump(&t.db()));
    let out = run_ok(&[
        "--format",
        "csv",
        "query",
        "--from",
        s(&t.path("long.jsonl")),
        "stats count(*) as n, sum(input.inputTokenCount) as i",
    ]);
    assert_eq!(stdout(&out), "n,i\n6,43289\n");
}

/// Two gzip members of exactly the same size: the whole-file inflater must read both (the size
/// in the file's last trailer matches the first member, which must not fool it).
#[test]
fn equal_sized_gzip_members_are_both_read() {
    let t = TempDir::new("fmt-gz-equal");
    let samples = std::fs::read_to_string(data("invocations.jsonl")).expect("samples");
    let lines: Vec<&str> = samples.lines().collect();
    let a = lines[..3].join("\n") + "\n";
    let b = lines[3..].join("\n") + "\n";
    let width = a.len().max(b.len());
    let pad = |s: &str| format!("{s}{}\n", " ".repeat(width - s.len()));
    let mut both = gzip(pad(&a).as_bytes());
    both.extend(gzip(pad(&b).as_bytes()));
    std::fs::write(t.path("two-equal.gz"), both).expect("write");
    ingest(&t.db(), &[&t.path("two-equal.gz")]);
    golden("samples-store.json", &dump(&t.db()));
    let out = run_ok(&[
        "--format",
        "csv",
        "query",
        "--from",
        s(&t.path("two-equal.gz")),
        "stats count(*) as n",
    ]);
    assert_eq!(stdout(&out), "n\n6\n");
}
