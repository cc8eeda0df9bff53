use crate::util::*;

fn sample_lines() -> Vec<String> {
    std::fs::read_to_string(data("invocations.jsonl"))
        .expect("samples")
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn reingest_adds_nothing_and_says_so() {
    let t = TempDir::new("once-again");
    ingest(&t.db(), &[&data("invocations.jsonl")]);
    let before = dump(&t.db());
    let out = ingest(
        &t.db(),
        &[&data("invocations.jsonl"), &data("filter-log-events.json")],
    );
    assert!(stdout(&out).contains("nothing new"), "{}", stdout(&out));
    assert_eq!(dump(&t.db()), before);
}

#[test]
fn grown_file_is_read_on_from_its_checkpoint() {
    let t = TempDir::new("once-grown");
    let lines = sample_lines();
    let log = t.path("bedrock.log");
    std::fs::write(&log, lines[..3].join("\n") + "\n").expect("write");
    ingest(&t.db(), &[&log]);
    assert_eq!(dump(&t.db()).matches("\"request_id\"").count(), 3);
    // The writer appends three records and is in the middle of a fourth.
    let seventh = lines[0].replace("5f0c2a1e-8d2b-4c1a-9a51-0c6b1f1e0a01", "grown-0007");
    let (head, tail) = seventh.split_at(60);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    use std::io::Write;
    write!(f, "{}\n{head}", lines[3..].join("\n")).expect("append");
    let out = ingest(&t.db(), &[&log]);
    assert_eq!(dump(&t.db()).matches("\"request_id\"").count(), 6);
    assert!(
        stderr(&out).contains("bedrock.log:7: incomplete last line"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("1 resumed"), "{}", stdout(&out));
    // The line is finished: the next run reads just it.
    writeln!(f, "{tail}").expect("append");
    let out = ingest(&t.db(), &[&log]);
    assert!(
        stdout(&out).contains("ingested 1 new records"),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("bad"), "{}", stderr(&out));
    let all = dump(&t.db());
    assert_eq!(all.matches("\"request_id\"").count(), 7);
    assert!(all.contains("grown-0007"));
}

#[test]
fn replaced_file_is_read_again_without_double_counting() {
    let t = TempDir::new("once-replaced");
    let lines = sample_lines();
    let log = t.path("rotating.log");
    std::fs::write(&log, lines[..3].join("\n") + "\n").expect("write");
    ingest(&t.db(), &[&log]);
    // Rotated: new content under the same name, overlapping one record already stored.
    std::fs::write(&log, lines[2..].join("\n") + "\n").expect("write");
    let out = ingest(&t.db(), &[&log]);
    assert!(
        stdout(&out).contains("ingested 3 new records"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("1 already stored"),
        "{}",
        stdout(&out)
    );
    golden("samples-store.json", &dump(&t.db()));
}

/// Kills ingests with SIGKILL at random moments, then finishes with one clean run: the store
/// must end exactly as after one uninterrupted run.
#[test]
fn kill_9_at_random_moments_then_rerun_gives_exact_totals() {
    let t = TempDir::new("once-crash");
    let (_, jsonl) = demo_corpus(6000, 11, (2, 16));
    let text = String::from_utf8(jsonl).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let corpus = t.path("corpus");
    std::fs::create_dir_all(&corpus).expect("mkdir");
    for (i, part) in lines.chunks(lines.len() / 6 + 1).enumerate() {
        let body = part.join("\n") + "\n";
        if i % 2 == 0 {
            std::fs::write(corpus.join(format!("part-{i}.jsonl")), body).expect("write");
        } else {
            std::fs::write(
                corpus.join(format!("part-{i}.json.gz")),
                gzip(body.as_bytes()),
            )
            .expect("write");
        }
    }
    let clean = t.path("clean.db");
    ingest(&clean, &[&corpus]);
    let want = report_csv(&clean, None, &["--by", "developer,model,day"]);
    let want_count = bedrock_usage::store::open(&clean)
        .expect("open")
        .invocation_count()
        .expect("count");
    assert_eq!(want_count, lines.len() as u64);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut r = rng(seed);
    let mut kills_mid_run = 0;
    for trial in 0..3 {
        let db = t.path(&format!("crash-{trial}.db"));
        for _ in 0..5 {
            let mut child = bin()
                .args(["--db", s(&db), "ingest", "--no-progress", s(&corpus)])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(std::time::Duration::from_millis(r.range(5, 400)));
            if child.try_wait().expect("wait").is_none() {
                kills_mid_run += 1;
            }
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        ingest(&db, &[&corpus]);
        let got = report_csv(&db, None, &["--by", "developer,model,day"]);
        assert_eq!(
            got, want,
            "trial {trial} (seed {seed}): reports differ after kills"
        );
        let count = bedrock_usage::store::open(&db)
            .expect("open")
            .invocation_count()
            .expect("count");
        assert_eq!(count, want_count, "trial {trial} (seed {seed})");
        assert_eq!(
            dump(&db),
            dump(&clean),
            "trial {trial} (seed {seed}): stored rows differ"
        );
    }
    assert!(
        kills_mid_run > 0,
        "no kill landed while an ingest was running (seed {seed}): make the corpus larger"
    );
}

/// An object still being uploaded (a cut gzip stream) is read as far as it goes; once whole, the
/// next run reads on from there and loses nothing.
#[test]
fn cut_gzip_completed_later_loses_nothing() {
    let t = TempDir::new("once-cutgz");
    let samples = std::fs::read_to_string(data("invocations.jsonl")).expect("samples");
    let gz = gzip(samples.as_bytes());
    let p = t.path("obj.json.gz");
    for cut in [gz.len() / 3, gz.len() * 3 / 4] {
        std::fs::write(&p, &gz[..cut]).expect("write");
        let out = ingest(&t.db(), &[&p]);
        assert!(
            stderr(&out).contains("truncated or corrupt gzip"),
            "{}",
            stderr(&out)
        );
    }
    std::fs::write(&p, &gz).expect("write");
    let out = ingest(&t.db(), &[&p]);
    assert!(!stderr(&out).contains("bad"), "{}", stderr(&out));
    golden("samples-store.json", &dump(&t.db()));
}

/// Two ingests of the same files at the same time (an overlapping cron job) end as one.
#[test]
fn concurrent_ingests_count_each_record_once() {
    let t = TempDir::new("once-concurrent");
    let (_, jsonl) = demo_corpus(1500, 23, (1, 4));
    let corpus = t.path("corpus");
    std::fs::create_dir_all(&corpus).expect("mkdir");
    let text = String::from_utf8(jsonl).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    for (i, part) in lines.chunks(lines.len() / 4 + 1).enumerate() {
        std::fs::write(corpus.join(format!("p{i}.jsonl")), part.join("\n") + "\n").expect("write");
    }
    let clean = t.path("clean.db");
    ingest(&clean, &[&corpus]);
    let db = t.path("shared.db");
    let spawn = || {
        bin()
            .args(["--db", s(&db), "ingest", "--no-progress", s(&corpus)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(dump(&db), dump(&clean));
    assert_eq!(
        report_csv(&db, None, &["--by", "developer,model"]),
        report_csv(&clean, None, &["--by", "developer,model"])
    );
}
