use crate::util::*;

#[test]
fn bad_input_is_reported_and_the_rest_is_ingested() {
    let t = TempDir::new("bad");
    let samples = std::fs::read_to_string(data("invocations.jsonl")).expect("samples");
    let lines: Vec<&str> = samples.lines().collect();
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mixed = [
        lines[0],
        "garbage that is not json",
        r#"{"schemaType":"CloudTrail","requestId":"x"}"#,
        lines[1],
        r#"{"requestId":"bad-type","timestamp":"2026-11-03T00:00:00Z","modelId":"m","input":{"inputTokenCount":"12"}}"#,
        &lines[2][..lines[2].len() / 2],
        lines[3],
    ]
    .join("\n")
        + "\n";
    std::fs::write(dir.join("mixed.jsonl"), mixed).expect("write");
    std::fs::write(
        dir.join("image.png"),
        [0x89u8, b'P', b'N', b'G', 0, 0, 0, 13, 1, 2, 3],
    )
    .expect("write");
    let gz = gzip(samples.as_bytes());
    std::fs::write(dir.join("cut.json.gz"), &gz[..gz.len() * 2 / 3]).expect("write");
    let missing = t.path("no-such-file.jsonl");
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "ingest",
        "--no-progress",
        s(&dir),
        s(&missing),
    ]);
    let err = stderr(&out);
    for needle in [
        "mixed.jsonl:2: invalid JSON at column 1",
        "mixed.jsonl:3: not an invocation record: schemaType is `CloudTrail`",
        "mixed.jsonl:5: field `input.inputTokenCount`: expected a non-negative integer, found a string",
        "mixed.jsonl:6: invalid JSON",
        "image.png: not a Bedrock invocation log: the content is binary data",
        "cut.json.gz: truncated or corrupt gzip stream",
        "no-such-file.jsonl: cannot read",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
    // Only whole records are stored, and each equals the sample it came from.
    let stored = dump(&t.db());
    let all: Vec<serde_json::Value> = serde_json::from_str(&stored).expect("json");
    let reference: Vec<serde_json::Value> = {
        let t2 = TempDir::new("bad-ref");
        ingest(&t2.db(), &[&data("invocations.jsonl")]);
        serde_json::from_str(&dump(&t2.db())).expect("json")
    };
    assert!(all.len() >= 3, "{stored}");
    for row in &all {
        assert!(
            reference.contains(row),
            "a stored row is not a whole sample record: {row}"
        );
    }
    // --strict: the same input exits 1 (and stores nothing twice).
    let out = run_expect(
        &[
            "--db",
            s(&t.db()),
            "ingest",
            "--no-progress",
            "--strict",
            s(&dir),
        ],
        1,
    );
    assert!(stderr(&out).contains("bad inputs were skipped"));
    assert_eq!(dump(&t.db()), stored);
}
