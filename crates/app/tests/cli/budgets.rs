//! Budgets and alerts over a simulated month (the clock fixed with BEDROCK_USAGE_NOW): the
//! figures of `budget status` against independently computed integers and against `report`,
//! period boundaries in a non-UTC zone, and `alerts check` delivering each alert exactly once to
//! a signed webhook receiver in the test binary, through restarts, a failing channel and a
//! `kill -9` between a send and its mark.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{bin, run_ok, s, stderr, stdout, TempDir};

/// Claude 3 Haiku: $0.25 per million input tokens, so a call of 1,000,000 input tokens costs
/// exactly $0.25.
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const QUARTER_USD: i64 = 250_000_000; // nano-dollars

/// One invocation-log line: `developer` called Haiku with 1M input tokens at `ts`.
fn call(id: &str, ts: &str, developer: &str) -> String {
    serde_json::json!({
        "schemaType": "ModelInvocationLog", "schemaVersion": "1.0", "timestamp": ts,
        "accountId": "123456789012", "region": "us-east-1", "requestId": id,
        "operation": "InvokeModel", "modelId": HAIKU,
        "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/shared/box"},
        "requestMetadata": {"developer": developer},
        "input": {"inputContentType": "application/json", "inputTokenCount": 1_000_000},
        "output": {"outputContentType": "application/json", "outputTokenCount": 0},
    })
    .to_string()
}

fn ingest_lines(t: &TempDir, name: &str, lines: &[String]) {
    let f = t.path(name);
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    run_ok(&["--db", s(&t.db()), "ingest", "--no-progress", s(&f)]);
}

/// Runs the CLI with the config and the clock at `now`.
fn at(t: &TempDir, cfg: &Path, now: &str, args: &[&str]) -> Output {
    bin()
        .args(["--db", s(&t.db()), "--config", s(cfg)])
        .args(args)
        .env("BEDROCK_USAGE_NOW", now)
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

fn status_json(t: &TempDir, cfg: &Path, now: &str) -> (i32, Vec<serde_json::Value>) {
    let out = at(t, cfg, now, &["--format", "json", "budget", "status"]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        stderr(&out)
    );
    (
        out.status.code().unwrap(),
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out))),
    )
}

/// Nano-dollars from a decimal of at most six decimals (`12.345678`), a JSON number or string
/// (a number of six decimals or fewer reads back exactly).
fn nano(v: &serde_json::Value) -> i64 {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => panic!("not a decimal: {other}"),
    };
    let (w, f) = s.split_once('.').unwrap_or((&s, "0"));
    assert!(f.len() <= 6, "{s}");
    w.parse::<i64>().unwrap() * 1_000_000_000 + format!("{f:0<6}").parse::<i64>().unwrap() * 1000
}

#[test]
fn budget_status_figures_are_the_reports_and_the_forecast_is_exact() {
    let t = TempDir::new("budget-status");
    // alice: one call a day on Dec 1, 2, 3 ($0.75); bob: five calls on Dec 2 ($1.25); carol
    // is configured but has not called. November does not count in December.
    december(&t);
    ingest_lines(
        &t,
        "november.jsonl",
        &[call("nov", "2026-11-30T10:00:00Z", "alice")],
    );
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        r#"
[attribution]
shared_principals = ["arn:aws:sts::123456789012:assumed-role/shared/*"]
[developers]
alice = { team = "ml" }
bob = { team = "ml" }
carol = { team = "ml" }
[[budgets]]
name = "people"
team = "ml"
each_developer = true
period = "month"
amount = "1"
[[budgets]]
name = "ml"
team = "ml"
period = "month"
amount = "10.50"
forecast = false
"#,
    )
    .unwrap();
    let now = "2026-12-04T00:00:00Z";
    let (code, rows) = status_json(&t, &cfg, now);
    assert_eq!(code, 1, "bob is over: exit 1 ({rows:#?})");
    let row = |b: &str, scope: &str| {
        rows.iter()
            .find(|r| r["budget"] == b && r["scope"] == scope)
            .unwrap_or_else(|| panic!("no row {b}/{scope}: {rows:#?}"))
            .clone()
    };
    let alice = row("people", "alice");
    assert_eq!(nano(&alice["spent_usd"]), 3 * QUARTER_USD);
    assert_eq!(alice["percent"], "75.00%");
    // Three days of the period passed, all in the window: 0.75 + 0.75 * 28 / 3 = 7.75.
    let left_ms: i128 = 28 * 86_400_000;
    let window_ms: i128 = 3 * 86_400_000;
    let want = 3 * QUARTER_USD as i128 + 3 * QUARTER_USD as i128 * left_ms / window_ms;
    assert_eq!(nano(&alice["forecast_usd"]) as i128, want);
    assert_eq!(alice["state"], "forecast-exceeded");
    assert_eq!(alice["days_left"], 28);
    let bob = row("people", "bob");
    assert_eq!(nano(&bob["spent_usd"]), 5 * QUARTER_USD);
    assert_eq!(bob["state"], "exceeded");
    assert_eq!(bob["percent"], "125.00%");
    let carol = row("people", "carol");
    assert_eq!(nano(&carol["spent_usd"]), 0);
    assert_eq!(carol["state"], "ok");
    let team = row("ml", "team ml");
    assert_eq!(nano(&team["spent_usd"]), 8 * QUARTER_USD);
    assert_eq!(team["forecast_usd"], serde_json::Value::Null);
    // 2.00 / 10.50 = 19.047...%: rounded down to a hundredth.
    assert_eq!(team["percent"], "19.04%");
    assert_eq!(team["state"], "ok");

    // The same integers as `report` over the same period.
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&cfg),
        "--format",
        "json",
        "report",
        "--by",
        "developer",
        "--since",
        "2026-12-01",
        "--until",
        "2026-12-31",
    ]);
    let report: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report.len(), 2, "{report:?}");
    for r in &report {
        let dev = r["developer"].as_str().unwrap();
        let b = row("people", dev);
        assert_eq!(nano(&r["cost_usd"]), nano(&b["spent_usd"]), "{dev}");
    }

    // Before a day of the period has passed there is no forecast.
    let (_, early) = status_json(&t, &cfg, "2026-12-01T12:00:00Z");
    let a = early
        .iter()
        .find(|r| r["scope"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(a["forecast_usd"], serde_json::Value::Null);
    assert_eq!(nano(&a["spent_usd"]), QUARTER_USD);

    // Table output for people, with no budget exceeded at the start of November: exit 0.
    let out = at(&t, &cfg, "2026-11-30T12:00:00Z", &["budget", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("month 2026-11"), "{}", stdout(&out));
}

#[test]
fn periods_follow_the_configured_zone() {
    let t = TempDir::new("budget-zone");
    // 23:30 UTC on Nov 30 is Dec 1 in Berlin; 22:30 UTC on Dec 31 is still Dec 31 there.
    ingest_lines(
        &t,
        "calls.jsonl",
        &[
            call("z1", "2026-11-30T22:30:00Z", "dana"),
            call("z2", "2026-11-30T23:30:00Z", "dana"),
            call("z3", "2026-12-31T22:30:00Z", "dana"),
            call("z4", "2026-12-31T23:30:00Z", "dana"),
        ],
    );
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        r#"
[alerts]
timezone = "Europe/Berlin"
[[budgets]]
name = "dana"
developer = "dana"
period = "month"
amount = "1"
"#,
    )
    .unwrap();
    let (_, rows) = status_json(&t, &cfg, "2026-12-31T22:45:00Z");
    assert_eq!(rows[0]["period"], "month 2026-12");
    assert_eq!(nano(&rows[0]["spent_usd"]), 2 * QUARTER_USD, "{rows:#?}");
    let (_, rows) = status_json(&t, &cfg, "2026-11-30T22:59:00Z");
    assert_eq!(rows[0]["period"], "month 2026-11");
    assert_eq!(nano(&rows[0]["spent_usd"]), QUARTER_USD, "{rows:#?}");
}

#[test]
fn bad_budget_config_names_every_field() {
    let t = TempDir::new("budget-bad-config");
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        r#"
[[channels]]
name = "hook"
type = "webhook"
url = "https://example.com/h"
[[channels]]
name = "pager"
type = "pagerduty"
[[channels]]
name = "topic"
type = "sns"
topic_arn = "arn:aws:sqs:us-east-1:123456789012:alerts"
smtp_url = "smtp://127.0.0.1:25"
[serve]
public_url = "usage.example.com"
[[budgets]]
name = "a"
period = "month"
amount = "1e3"
[[budgets]]
name = "b"
period = "fortnight"
amount = 25.5
thresholds = [50, 1001]
channels = ["nope"]
[[budgets]]
name = "c"
period = "day"
amount = "-5"
action = "shout"
"#,
    )
    .unwrap();
    let out = bin()
        .args(["--config", s(&cfg), "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    for want in [
        "`channels[0] (hook).secret`: missing",
        "`channels[1] (pager).type` = `pagerduty`",
        "`channels[2] (topic).topic_arn` = `arn:aws:sqs:us-east-1:123456789012:alerts`: not an SNS topic ARN",
        "`channels[2] (topic).smtp_url`: not a field of a sns channel",
        "`serve.public_url` = `usage.example.com`: not an http:// or https:// URL",
        "`budgets[0] (a).amount`",
        "`budgets[1] (b).period` = `fortnight`",
        "`budgets[1] (b).amount` = 25.5",
        "never a float",
        "`budgets[1] (b).thresholds`: `1001`",
        "`budgets[1] (b).channels`: no channel is named `nope`",
        "`budgets[2] (c).amount`",
        "`budgets[2] (c).action` = `shout`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // An unknown field in a budget is named too.
    std::fs::write(
        &cfg,
        "[[budgets]]\nname = \"x\"\nperiod = \"day\"\namount = \"1\"\nscope = \"developer\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["--config", s(&cfg), "config", "check"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("scope"), "{}", stderr(&out));
}

// ---- alerts check against a webhook receiver ----

const SECRET: &str = "test-webhook-secret";

#[derive(Clone, Debug)]
struct Got {
    idempotency: String,
    body: serde_json::Value,
}

/// A webhook receiver: checks each request's signature, records it, and answers as told
/// (`fail_next` 500s first; `hang` never answers).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    bad_signatures: Arc<Mutex<u32>>,
    fail_next: Arc<Mutex<u32>>,
    hang: Arc<Mutex<bool>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        use axum::http::{HeaderMap, StatusCode};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(0));
        let fail_next = Arc::new(Mutex::new(0));
        let hang = Arc::new(Mutex::new(false));
        let (g, b, f, h) = (got.clone(), bad.clone(), fail_next.clone(), hang.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (g, b, f, h) = (g.clone(), b.clone(), f.clone(), h.clone());
                async move {
                    let head = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let ts = head("x-bedrock-usage-timestamp");
                    let want =
                        bedrock_usage::publish::channels::signature(SECRET.as_bytes(), &ts, &body);
                    if head("x-bedrock-usage-signature") != want {
                        *b.lock().unwrap() += 1;
                        return StatusCode::UNAUTHORIZED;
                    }
                    g.lock().unwrap().push(Got {
                        idempotency: head("x-bedrock-usage-idempotency-key"),
                        body: serde_json::from_slice(&body).unwrap_or_default(),
                    });
                    if *h.lock().unwrap() {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let mut f = f.lock().unwrap();
                    if *f > 0 {
                        *f -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            got,
            bad_signatures: bad,
            fail_next,
            hang,
            _rt: rt,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .got()
            .iter()
            .map(|g| g.body["key"].as_str().unwrap_or("").to_string())
            .collect();
        k.sort();
        k
    }
}

fn alerts_config(t: &TempDir, hook: &str, other_hook: Option<&str>, amount: &str) -> PathBuf {
    let cfg = t.path("config.toml");
    let mut text = format!(
        r#"
[alerts]
timeout = "2s"
[developers]
alice = {{ team = "ml" }}
bob = {{ team = "ml" }}
[[channels]]
name = "hook"
type = "webhook"
url = "{hook}"
secret_env = "TEST_HOOK_SECRET"
"#
    );
    if let Some(o) = other_hook {
        text.push_str(&format!(
            "[[channels]]\nname = \"broken\"\ntype = \"webhook\"\nurl = \"{o}\"\nsecret = \"x\"\n"
        ));
    }
    text.push_str(&format!(
        r#"
[[budgets]]
name = "people"
team = "ml"
each_developer = true
period = "month"
amount = "{amount}"
channels = [{}]
"#,
        if other_hook.is_some() {
            "\"hook\", \"broken\""
        } else {
            "\"hook\""
        }
    ));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn alerts_check(t: &TempDir, cfg: &Path, now: &str) -> Output {
    bin()
        .args(["--db", s(&t.db()), "--config", s(cfg), "alerts", "check"])
        .env("BEDROCK_USAGE_NOW", now)
        .env("TEST_HOOK_SECRET", SECRET)
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

fn december(t: &TempDir) {
    let mut lines = Vec::new();
    for d in 1..=3 {
        lines.push(call(
            &format!("a{d}"),
            &format!("2026-12-0{d}T10:00:00Z"),
            "alice",
        ));
    }
    for i in 0..5 {
        lines.push(call(&format!("b{i}"), "2026-12-02T11:00:00Z", "bob"));
    }
    ingest_lines(t, "december.jsonl", &lines);
}

/// alice at 75% (50% crossed, forecast over), bob at 125% (50, 80, 100 crossed).
const DECEMBER_KEYS: [&str; 5] = [
    "budget/people/alice/2026-12/50%",
    "budget/people/alice/2026-12/forecast",
    "budget/people/bob/2026-12/100%",
    "budget/people/bob/2026-12/50%",
    "budget/people/bob/2026-12/80%",
];

#[test]
fn each_alert_is_delivered_once_across_runs_and_a_raised_budget_sends_nothing_new() {
    let t = TempDir::new("alerts-once");
    let r = Receiver::start();
    december(&t);
    let cfg = alerts_config(&t, &r.url, None, "1");
    let now = "2026-12-04T00:00:00Z";
    // --dry-run sends and writes nothing.
    let dry = bin()
        .args([
            "--db",
            s(&t.db()),
            "--config",
            s(&cfg),
            "alerts",
            "check",
            "--dry-run",
        ])
        .env("BEDROCK_USAGE_NOW", now)
        .env("TEST_HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stderr(&dry).contains("5 alert message(s) due, 5 not sent before"),
        "{}",
        stderr(&dry)
    );
    assert!(r.got().is_empty());

    for _ in 0..3 {
        let out = alerts_check(&t, &cfg, now);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(r.keys(), DECEMBER_KEYS);
    assert_eq!(*r.bad_signatures.lock().unwrap(), 0);
    let bob100 = r
        .got()
        .into_iter()
        .find(|g| g.body["key"] == "budget/people/bob/2026-12/100%")
        .unwrap();
    assert_eq!(bob100.body["kind"], "budget.threshold");
    assert_eq!(bob100.body["threshold_percent"], 100);
    assert_eq!(bob100.body["spent_usd"], "1.250000");
    assert_eq!(bob100.body["top_models"][0]["model"], "claude-3-haiku");
    assert_eq!(bob100.idempotency, bob100.body["idempotency_key"]);
    assert!(
        bob100.body["text"]
            .as_str()
            .unwrap()
            .starts_with("bob has spent $1.25 of the $1.00 month budget"),
        "{}",
        bob100.body["text"]
    );

    // Raising the budget does not send again what was sent: bob's 50% stays sent (62.5% of $2
    // now). What is new is new: under $2, bob is no longer over but forecast to go over.
    let cfg = alerts_config(&t, &r.url, None, "2");
    let out = alerts_check(&t, &cfg, "2026-12-05T00:00:00Z");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut want: Vec<String> = DECEMBER_KEYS.map(String::from).to_vec();
    want.push("budget/people/bob/2026-12/forecast".into());
    want.sort();
    assert_eq!(r.keys(), want);

    // A new period re-arms the thresholds.
    ingest_lines(
        &t,
        "january.jsonl",
        &(0..5)
            .map(|i| call(&format!("j{i}"), "2027-01-02T09:00:00Z", "bob"))
            .collect::<Vec<_>>(),
    );
    let cfg = alerts_config(&t, &r.url, None, "1");
    let out = alerts_check(&t, &cfg, "2027-01-03T00:00:00Z");
    assert!(out.status.success(), "{}", stderr(&out));
    let jan: Vec<String> = r
        .keys()
        .into_iter()
        .filter(|k| k.contains("2027-01"))
        .collect();
    // bob is over again (and no forecast alert once exceeded); alice has not spent.
    assert_eq!(
        jan,
        [
            "budget/people/bob/2027-01/100%",
            "budget/people/bob/2027-01/50%",
            "budget/people/bob/2027-01/80%",
        ]
    );
}

#[test]
fn a_failing_channel_is_retried_and_does_not_hold_up_the_others() {
    let t = TempDir::new("alerts-failing");
    let r = Receiver::start();
    december(&t);
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let cfg = alerts_config(&t, &r.url, Some(&closed), "1");
    // The good receiver fails its first two answers: the retries within the run get through.
    *r.fail_next.lock().unwrap() = 2;
    let out = alerts_check(&t, &cfg, "2026-12-04T00:00:00Z");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("channel `broken`: 5 message(s) not delivered"),
        "{err}"
    );
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains(SECRET));
    let mut delivered = r.keys();
    delivered.dedup();
    assert_eq!(delivered, DECEMBER_KEYS, "the good channel got everything");
    let outbox = outbox(&t, &cfg);
    let broken: Vec<&serde_json::Value> =
        outbox.iter().filter(|m| m["channel"] == "broken").collect();
    assert_eq!(broken.len(), 5);
    // The first message was tried three times; the channel being down, the rest of its
    // messages wait for the next run instead of each taking three attempts of their own.
    assert_eq!(broken[0]["attempts"], 3, "{:?}", broken[0]);
    for m in &broken {
        assert_eq!(m["sent"], serde_json::Value::Null);
        assert!(
            m["last_error"].as_str().unwrap().contains("cannot connect"),
            "{m}"
        );
    }
    assert_eq!(
        outbox_attempts(&t, &cfg, "hook"),
        5 + 2,
        "two 500s, then all five"
    );
    // A run before the retry time does not try again; one after it does.
    let out = alerts_check(&t, &cfg, "2026-12-04T00:00:30Z");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(outbox_attempts(&t, &cfg, "broken"), 3);
    let out = alerts_check(&t, &cfg, "2026-12-04T00:05:00Z");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outbox_attempts(&t, &cfg, "broken"), 6);

    // A channel that does not answer times out (`[alerts] timeout`) and is reported.
    let t2 = TempDir::new("alerts-hang");
    let hung = Receiver::start();
    *hung.hang.lock().unwrap() = true;
    december(&t2);
    let cfg2 = alerts_config(&t2, &hung.url, None, "1");
    let out = alerts_check(&t2, &cfg2, "2026-12-04T00:00:00Z");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no answer within 2s"),
        "{}",
        stderr(&out)
    );
}

fn outbox(t: &TempDir, cfg: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(cfg),
        "--format",
        "json",
        "alerts",
        "outbox",
    ]);
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn outbox_attempts(t: &TempDir, cfg: &Path, channel: &str) -> u64 {
    outbox(t, cfg)
        .iter()
        .filter(|m| m["channel"] == channel)
        .map(|m| m["attempts"].as_u64().unwrap())
        .sum()
}

#[test]
fn kill_9_between_a_send_and_its_mark_repeats_it_once_with_the_same_key() {
    let t = TempDir::new("alerts-kill");
    let r = Receiver::start();
    december(&t);
    let cfg = alerts_config(&t, &r.url, None, "1");
    // The receiver takes the first message and never answers: the sender is killed while it
    // waits, so that message was received but never marked sent.
    *r.hang.lock().unwrap() = true;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bedrock-usage"))
        .args(["--db", s(&t.db()), "--config", s(&cfg), "alerts", "check"])
        .env("BEDROCK_USAGE_NOW", "2026-12-04T00:00:00Z")
        .env("TEST_HOOK_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.got().is_empty() {
        assert!(Instant::now() < deadline, "the receiver got nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = r.got()[0].clone();
    *r.hang.lock().unwrap() = false;

    let out = alerts_check(&t, &cfg, "2026-12-04T00:01:00Z");
    assert!(out.status.success(), "{}", stderr(&out));
    let got = r.got();
    let mut keys = r.keys();
    keys.dedup();
    assert_eq!(keys, DECEMBER_KEYS, "every alert arrived");
    let repeats: Vec<&Got> = got
        .iter()
        .filter(|g| g.body["key"] == first.body["key"])
        .collect();
    assert_eq!(repeats.len(), 2, "the interrupted one came once more");
    assert_eq!(
        repeats[1].idempotency, first.idempotency,
        "with the same key"
    );
    assert_eq!(got.len(), 6, "and nothing else twice");
}

#[test]
fn sync_watch_runs_the_alerts_after_every_round() {
    use crate::aws_emulator::{aws_env, endpoint, rt, sdk, unique};
    let region = "us-west-1";
    let conf = sdk(region);
    let group = format!("/aws/bedrock/{}", unique("budget-watch"));
    let now = bedrock_usage::context::now_ms() - 5_000;
    let ts = bedrock_usage_core::time::format_utc(now);
    rt().block_on(async {
        use aws_sdk_cloudwatchlogs::types::InputLogEvent;
        let c = aws_sdk_cloudwatchlogs::Client::new(&conf);
        let stream = "aws/bedrock/modelinvocations";
        c.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap();
        c.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(stream)
            .send()
            .await
            .unwrap();
        let events = (0..5)
            .map(|i| {
                InputLogEvent::builder()
                    .timestamp(now)
                    .message(call(&format!("w{i}"), &ts, "bob"))
                    .build()
                    .unwrap()
            })
            .collect();
        c.put_log_events()
            .log_group_name(&group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .unwrap();
    });
    let t = TempDir::new("budget-watch");
    let r = Receiver::start();
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[sources.cloudwatch]]
log_group = "{group}"
[[channels]]
name = "hook"
type = "webhook"
url = "{}"
secret = "{SECRET}"
[[budgets]]
name = "bob-daily"
developer = "bob"
period = "day"
amount = "1"
forecast = false
channels = ["hook"]
"#,
            r.url
        ),
    )
    .unwrap();
    let mut c = bin();
    aws_env(&mut c, region, endpoint());
    let child = c
        .args(["--db", s(&t.db()), "--config", s(&cfg)])
        .args([
            "sync",
            "--watch",
            "--interval",
            "1s",
            "--since",
            "1d",
            "--no-progress",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while r.keys().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no alerts from sync --watch: {:?}",
            r.keys()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few more rounds: nothing is sent twice.
    std::thread::sleep(Duration::from_millis(3500));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let day = &ts[..10];
    assert_eq!(
        r.keys(),
        ["100%", "50%", "80%"].map(|t| format!("budget/bob-daily/all/{day}/{t}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_developers_spend_far_above_their_usual_day_is_an_anomaly_once_a_day() {
    let t = TempDir::new("alerts-anomaly");
    let r = Receiver::start();
    // Dec 1-14: alice and bob $0.25 a day each. Dec 15: alice $2.50 (ten calls), bob $0.25.
    let mut lines = Vec::new();
    for d in 1..=15 {
        let ts = format!("2026-12-{d:02}T09:00:00Z");
        lines.push(call(&format!("b{d}"), &ts, "bob"));
        let n = if d == 15 { 10 } else { 1 };
        for i in 0..n {
            lines.push(call(&format!("a{d}-{i}"), &ts, "alice"));
        }
    }
    ingest_lines(&t, "calls.jsonl", &lines);
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[alerts.anomaly]
factor = "3"
floor = "1"
days = 14
channels = ["hook"]
[[channels]]
name = "hook"
type = "webhook"
url = "{}"
secret_env = "TEST_HOOK_SECRET"
"#,
            r.url
        ),
    )
    .unwrap();
    for now in ["2026-12-15T18:00:00Z", "2026-12-15T20:00:00Z"] {
        let out = alerts_check(&t, &cfg, now);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(r.keys(), ["anomaly/alice/2026-12-15"]);
    let a = &r.got()[0].body;
    assert_eq!(a["kind"], "anomaly.spend");
    assert_eq!(a["spent_usd"], "2.500000");
    assert_eq!(a["median_usd"], "0.250000");
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .starts_with("alice has spent $2.50 today (2026-12-15), above 3 times"),
        "{a}"
    );
    // The next day (no spend yet) nothing is unusual, and the 15th is not sent again.
    let out = alerts_check(&t, &cfg, "2026-12-16T12:00:00Z");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(r.keys().len(), 1);
}

#[test]
fn report_send_delivers_the_report_to_a_channel() {
    let t = TempDir::new("report-send");
    let r = Receiver::start();
    december(&t);
    let cfg = alerts_config(&t, &r.url, None, "1");
    let db = t.db();
    let args = [
        "--db",
        s(&db),
        "--config",
        s(&cfg),
        "report",
        "--by",
        "developer",
        "--send",
        "hook",
    ];
    let out = bin()
        .args(args)
        .env("TEST_HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("sent the report to `hook`"));
    let got = r.got();
    assert_eq!(got.len(), 1);
    let b = &got[0].body;
    assert_eq!(b["kind"], "report");
    assert_eq!(b["total_cost_usd"], "2.000000");
    let rows = b["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(b["text"].as_str().unwrap().contains("alice"), "{b}");
    // The table printed is the table sent.
    assert_eq!(
        stdout(&out).trim_end(),
        b["text"].as_str().unwrap().trim_end()
    );
    // An unknown channel is refused before anything is printed.
    let mut bad = args.to_vec();
    let last = bad.len() - 1;
    bad[last] = "nope";
    let out = bin().args(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no channel is named `nope` (known: hook)"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_weekly_digest_reports_the_week_that_ended_once_with_its_change() {
    let t = TempDir::new("alerts-digest");
    let r = Receiver::start();
    december(&t); // the week of Nov 30: alice $0.75, bob $1.25
    ingest_lines(
        &t,
        "before.jsonl",
        &[call("n24", "2026-11-24T10:00:00Z", "alice")], // the week before: alice $0.25
    );
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[channels]]
name = "hook"
type = "webhook"
url = "{}"
secret_env = "TEST_HOOK_SECRET"
[[digests]]
name = "weekly"
every = "week"
hour = 9
by = ["developer"]
top = 5
channels = ["hook"]
"#,
            r.url
        ),
    )
    .unwrap();
    // Monday 08:00 is before the hour: nothing; 10:00 and 11:00: the digest, once.
    for now in [
        "2026-12-07T08:00:00Z",
        "2026-12-07T10:00:00Z",
        "2026-12-07T11:00:00Z",
    ] {
        let out = alerts_check(&t, &cfg, now);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(r.keys(), ["digest/weekly/week of 2026-11-30"]);
    let d = &r.got()[0].body;
    assert_eq!(d["kind"], "digest");
    assert_eq!(d["total_cost_usd"], "2.000000");
    assert_eq!(d["previous_total_cost_usd"], "0.250000");
    let rows = d["rows"].as_array().unwrap();
    assert_eq!(rows[0]["keys"], serde_json::json!(["bob"]), "{d}");
    assert_eq!(rows[0]["change_percent"], serde_json::Value::Null);
    assert_eq!(rows[1]["keys"], serde_json::json!(["alice"]));
    assert_eq!(rows[1]["change_percent"], "200.00%");
    let text = d["text"].as_str().unwrap();
    assert!(
        text.contains("spent $2.00 in all (+700.00% against week of 2026-11-23)"),
        "{text}"
    );
    assert!(text.contains("bob: $1.25 (new)"), "{text}");
    // A day later the digest is no longer due, and nothing is sent again.
    let out = alerts_check(&t, &cfg, "2026-12-08T10:00:00Z");
    assert!(out.status.success());
    assert_eq!(r.keys().len(), 1);
}

/// bob's monthly budget of $1 (December's calls take him to $1.25), alerting at 100% only.
fn bob_at_100(channels: &str) -> String {
    format!(
        "[[budgets]]\nname = \"bob\"\ndeveloper = \"bob\"\nperiod = \"month\"\namount = \"1\"\n\
         forecast = false\nthresholds = [100]\nchannels = [{channels}]\n"
    )
}

/// A local SMTP server (Python's aiosmtpd, which .ci/run installs) that writes every message it
/// receives as a JSON line to `out`; stopped when the returned child is killed.
fn smtp_server(out: &Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = r#"
import asyncio, json, sys, time
from aiosmtpd.controller import Controller
class H:
    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "content": envelope.content.decode("utf-8", "replace")}) + "\n")
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
while True:
    time.sleep(1)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string(), s(out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the SMTP test server did not start: pip install aiosmtpd (.ci/run does)"
    );
    (child, port)
}

#[test]
fn e_mail_alerts_arrive_through_a_local_smtp_server() {
    let t = TempDir::new("alerts-email");
    let inbox = t.path("inbox.jsonl");
    let (mut smtp, port) = smtp_server(&inbox);
    december(&t);
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[channels]]
name = "mail"
type = "email"
smtp_url = "smtp://127.0.0.1:{port}"
from = "bedrock-usage@example.com"
to = ["platform@example.com", "finance@example.com"]
{}"#,
            bob_at_100(r#""mail""#)
        ),
    )
    .unwrap();
    for now in ["2026-12-04T00:00:00Z", "2026-12-04T01:00:00Z"] {
        let out = alerts_check(&t, &cfg, now);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let _ = smtp.kill();
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&inbox)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 1, "one message, once: {got:?}");
    let m = &got[0];
    assert_eq!(m["from"], "bedrock-usage@example.com");
    assert_eq!(
        m["to"],
        serde_json::json!(["platform@example.com", "finance@example.com"])
    );
    let content = m["content"].as_str().unwrap();
    assert!(
        content.contains("Subject: Budget bob: all reached 100%")
            || content.contains("Subject: Budget bob:"),
        "{content}"
    );
    assert!(
        content.contains("X-Bedrock-Usage-Idempotency-Key: "),
        "{content}"
    );
    assert!(content.contains("Content-Type: text/html"), "{content}");
    assert!(
        content.contains("has spent $1.25 of the $1.00 month budget"),
        "{content}"
    );
}

/// boto3 (it comes with moto) against the emulator: `setup NAME` makes a topic and a queue
/// subscribed to it and prints both; `read QUEUE_URL` prints every message the queue holds.
fn sns_helper(args: &[&str]) -> String {
    let script = r#"
import boto3, json, sys
sns, sqs = boto3.client("sns"), boto3.client("sqs")
if sys.argv[1] == "setup":
    topic = sns.create_topic(Name=sys.argv[2])["TopicArn"]
    url = sqs.create_queue(QueueName=sys.argv[2])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    print(json.dumps({"topic": topic, "queue": url}))
else:
    got = []
    while True:
        r = sqs.receive_message(QueueUrl=sys.argv[2], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not r.get("Messages"):
            break
        for m in r["Messages"]:
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=sys.argv[2], ReceiptHandle=m["ReceiptHandle"])
    print(json.dumps(got))
"#;
    let mut c = Command::new("python3");
    crate::aws_emulator::aws_env(&mut c, "us-east-1", crate::aws_emulator::endpoint());
    let out = c
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 (boto3 comes with moto: pip install 'moto[server]')");
    assert!(out.status.success(), "boto3: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn sns_alerts_reach_a_subscribed_queue_once_and_aws_status_names_a_failing_channel() {
    let t = TempDir::new("alerts-sns");
    let name = crate::aws_emulator::unique("alerts");
    let made: serde_json::Value = serde_json::from_str(&sns_helper(&["setup", &name])).unwrap();
    let topic = made["topic"].as_str().unwrap();
    december(&t);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let cfg = t.path("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[serve]
public_url = "https://usage.example.com/"
[alerts]
timeout = "5s"
[[channels]]
name = "topic"
type = "sns"
topic_arn = "{topic}"
[[channels]]
name = "broken"
type = "webhook"
url = "{closed}"
secret = "x"
{}"#,
            bob_at_100(r#""topic", "broken""#)
        ),
    )
    .unwrap();
    let check = |now: &str| {
        let mut c = bin();
        crate::aws_emulator::aws_env(&mut c, "us-east-1", crate::aws_emulator::endpoint());
        c.args(["--db", s(&t.db()), "--config", s(&cfg), "alerts", "check"])
            .env("BEDROCK_USAGE_NOW", now)
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    for now in ["2026-12-04T00:00:00Z", "2026-12-04T01:00:00Z"] {
        let out = check(now);
        // The broken webhook fails the run; SNS is delivered all the same.
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("channel `broken`"),
            "{}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("channel `topic`"),
            "{}",
            stderr(&out)
        );
    }
    let got: Vec<serde_json::Value> =
        serde_json::from_str(&sns_helper(&["read", made["queue"].as_str().unwrap()])).unwrap();
    assert_eq!(got.len(), 1, "one message, once: {got:?}");
    let n = &got[0];
    assert_eq!(n["Type"], "Notification");
    assert_eq!(n["TopicArn"], topic);
    assert!(
        n["Subject"].as_str().unwrap().starts_with("Budget bob:"),
        "{n}"
    );
    let alert: serde_json::Value = serde_json::from_str(n["Message"].as_str().unwrap()).unwrap();
    assert_eq!(alert["kind"], "budget.threshold");
    assert_eq!(alert["key"], "budget/bob/all/2026-12/100%");
    assert_eq!(alert["spent_usd"], "1.250000");
    assert_eq!(alert["link"], "https://usage.example.com/developers/bob");
    assert_eq!(
        n["MessageAttributes"]["idempotency_key"]["Value"], alert["idempotency_key"],
        "{n}"
    );

    // `aws status` names the failing channel, with its error, and says the other one works.
    let mut c = bin();
    crate::aws_emulator::aws_env(&mut c, "us-east-1", crate::aws_emulator::endpoint());
    let out = c
        .args([
            "--db",
            s(&t.db()),
            "--config",
            s(&cfg),
            "--format",
            "json",
            "aws",
            "status",
        ])
        .env("BEDROCK_USAGE_NOW", "2026-12-04T01:00:00Z")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["check"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {rows:?}"))
            .clone()
    };
    let broken = row("channel broken");
    assert_eq!(broken["status"], "FAIL", "{broken}");
    assert!(
        broken["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 message(s) not delivered: "),
        "{broken}"
    );
    assert!(broken["detail"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));
    let sns = row("channel topic");
    assert_eq!(sns["status"], "ok", "{sns}");
    assert!(
        sns["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 sent, the last "),
        "{sns}"
    );
}
