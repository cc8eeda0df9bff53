use crate::util::*;

/// Any reordering, duplication or split of a corpus across files and runs (and stdin) gives the
/// same store and the same reports as one clean ingest.
#[test]
fn reordering_duplication_and_splitting_give_identical_reports() {
    let t = TempDir::new("prop");
    let (_, jsonl) = demo_corpus(700, 5, (0, 1));
    let text = String::from_utf8(jsonl).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let reference = t.path("reference.jsonl");
    std::fs::write(&reference, &text).expect("write");
    let ref_db = t.path("ref.db");
    ingest(&ref_db, &[&reference]);
    let keys = ["--by", "developer,model,day,operation,region"];
    let want = report_csv(&ref_db, None, &keys);
    let want_dump = dump(&ref_db);
    for seed in 1..=4u64 {
        let mut r = rng(seed);
        // Shuffle, then duplicate about a quarter of the lines at random places.
        let mut v: Vec<&str> = lines.clone();
        for i in (1..v.len()).rev() {
            v.swap(i, r.range(0, i as u64) as usize);
        }
        for _ in 0..v.len() / 4 {
            let from = r.range(0, v.len() as u64 - 1) as usize;
            let to = r.range(0, v.len() as u64) as usize;
            let line = v[from];
            v.insert(to, line);
        }
        // Split into 2-6 files, some gzipped; a few lines go through stdin.
        let k = r.range(2, 6) as usize;
        let dir = t.path(&format!("split-{seed}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut files = Vec::new();
        for (i, part) in v.chunks(v.len() / k + 1).enumerate() {
            let body = part.join("\n") + "\n";
            let p = dir.join(format!("f{i}"));
            if r.chance(500) {
                std::fs::write(&p, gzip(body.as_bytes())).expect("write");
            } else {
                std::fs::write(&p, body).expect("write");
            }
            files.push(p);
        }
        let db = t.path(&format!("prop-{seed}.db"));
        // Run 1: some files; run 2: stdin with a random sample; run 3: everything again.
        let some: Vec<&std::path::Path> = files
            .iter()
            .filter(|_| r.chance(500))
            .map(|p| p.as_path())
            .collect();
        if !some.is_empty() {
            ingest(&db, &some);
        }
        let sample: String = v
            .iter()
            .filter(|_| r.chance(200))
            .map(|l| format!("{l}\n"))
            .collect();
        let out = run_with_stdin(&["--db", s(&db), "ingest", "-"], sample.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
        let all: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
        ingest(&db, &all);
        assert_eq!(
            report_csv(&db, None, &keys),
            want,
            "seed {seed}: report differs"
        );
        assert_eq!(dump(&db), want_dump, "seed {seed}: store differs");
    }
}
