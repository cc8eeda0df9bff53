use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("bu-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
    pub fn db(&self) -> PathBuf {
        self.0.join("usage.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bedrock-usage"));
    c.env_remove("BEDROCK_USAGE_DB")
        .env_remove("BEDROCK_USAGE_CONFIG");
    c
}

/// Runs the binary; panics with its output if the exit status is not `code`.
pub fn run_expect(args: &[&str], code: i32) -> Output {
    let out = bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bedrock-usage");
    assert_eq!(
        out.status.code(),
        Some(code),
        "bedrock-usage {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    out
}

pub fn run_ok(args: &[&str]) -> Output {
    run_expect(args, 0)
}

pub fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

pub fn ingest(db: &Path, paths: &[&Path]) -> Output {
    let mut args = vec!["--db", s(db), "ingest", "--no-progress"];
    args.extend(paths.iter().map(|p| s(p)));
    run_ok(&args)
}

/// The store's contents as pretty JSON (ordered by request id).
pub fn dump(db: &Path) -> String {
    let store = bedrock_usage::store::open(db).expect("open store");
    let rows = store.dump().expect("dump");
    serde_json::to_string_pretty(&rows).expect("json") + "\n"
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if want != got {
        panic!(
            "{} differs (- expected, + got):\n{}(rerun with UPDATE_GOLDEN=1 if the change is intended)",
            path.display(),
            bedrock_usage_core::diff::line_diff(&want, got)
        );
    }
}

/// `report --format csv` as rows of field -> value.
pub fn report_csv(
    db: &Path,
    config: Option<&Path>,
    extra: &[&str],
) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut args = vec!["--db", s(db)];
    if let Some(c) = config {
        args.extend(["--config", s(c)]);
    }
    args.extend(["--format", "csv", "report"]);
    args.extend(extra);
    let out = run_ok(&args);
    parse_csv(&stdout(&out))
}

/// `report` on `db` with `config` in the table format, as the user sees it.
pub fn report_run(db: &Path, config: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--db", s(db), "--config", s(config), "report"];
    args.extend(extra);
    run_ok(&args)
}

pub fn parse_csv(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

/// A demo corpus as JSON lines with small bodies, and the generator's ledger.
pub fn demo_corpus(
    records: u64,
    seed: u64,
    body_kb: (u64, u64),
) -> (Vec<bedrock_usage::sources::demo::LedgerEntry>, Vec<u8>) {
    let opts = bedrock_usage::sources::demo::DemoOptions {
        seed,
        records,
        first_day: bedrock_usage_core::time::parse_date("2026-11-01").expect("date"),
        days: 30,
        compress: bedrock_usage::cli::Compression::None,
        body_min: body_kb.0 * 1024,
        body_max: body_kb.1 * 1024,
    };
    let ledger = bedrock_usage::sources::demo::generate(&opts);
    let jsonl = bedrock_usage::sources::demo::render_jsonl(&opts, &ledger);
    (ledger, jsonl)
}

/// The demo config, written next to a test's store.
pub fn demo_config(t: &TempDir) -> PathBuf {
    let p = t.path("bedrock-usage.toml");
    std::fs::write(&p, bedrock_usage::sources::demo::DEMO_CONFIG).expect("config");
    p
}

/// A seeded generator for tests (SplitMix64 from the demo).
pub fn rng(seed: u64) -> bedrock_usage::sources::demo::Rng {
    bedrock_usage::sources::demo::Rng::new(seed)
}

/// `serve` on a free loopback port over `db` and `config`: the child and its `http://ADDR`.
pub fn start_serve(db: &Path, config: &Path) -> (std::process::Child, String) {
    start_serve_with(db, config, None)
}

/// [`start_serve`]; with `login_token`, `--require-login` with that operator token.
pub fn start_serve_with(
    db: &Path,
    config: &Path,
    login_token: Option<&str>,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut cmd = bin();
    cmd.args([
        "--db",
        s(db),
        "--config",
        s(config),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ])
    .env_remove("BEDROCK_USAGE_SERVE_TOKENS");
    if let Some(t) = login_token {
        cmd.arg("--require-login")
            .env("BEDROCK_USAGE_SERVE_TOKENS", t);
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("serve");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();
    (child, format!("http://{addr}"))
}

/// The JSON a command prints with `--format json` on `db` with `config`.
pub fn json_of(db: &Path, config: &Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--db", s(db), "--config", s(config), "--format", "json"];
    full.extend_from_slice(args);
    serde_json::from_str(&stdout(&run_ok(&full))).expect("json")
}
