//! Golden tests over real records from public sources (tests/data/real-logs, copied from the
//! project's shared set; see its SOURCES.md): each file's records as read and stored, what was
//! reported about the rest, and its report, in tests/golden/real-logs/NAME.txt.

use crate::util::*;

#[test]
fn real_logs_read_as_their_golden_files_say() {
    let dir = data("real-logs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("real logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let name = f
            .file_stem()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let t = TempDir::new("real");
        let out = run_ok(&[
            "--db",
            s(&t.db()),
            "--format",
            "json",
            "ingest",
            "--no-progress",
            s(&f),
        ]);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
        let counts = &summary[0];
        // What stderr said of the records not stored, with the temp paths taken out.
        let warnings: String = stderr(&out)
            .lines()
            .map(|l| l.replace(s(&f), &format!("{name}.jsonl")))
            .map(|l| l + "\n")
            .collect();
        let report = stdout(&run_ok(&[
            "--db",
            s(&t.db()),
            "--format",
            "csv",
            "report",
            "--by",
            "developer,model,operation",
        ]));
        let text = format!(
            "# {name}: {} records read, {} stored, {} already stored, {} bad\n\n## stored\n{}\n## warnings\n{}\n## report --by developer,model,operation\n{}",
            counts["records"], counts["inserted"], counts["duplicates"], counts["bad"],
            dump(&t.db()),
            warnings,
            report
        );
        golden(&format!("real-logs/{name}.txt"), &text);
    }
}
