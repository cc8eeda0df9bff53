//! Limits at the gateway, end to end: hard budgets under 200 concurrent calls, rate and
//! concurrency limits, a raised budget and a new period without a restart, `GET /me` and the
//! `me` line, and what Claude Code shows when a budget refuses it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};

use crate::gateway::{claude_p, create_key, http_client, Gateway};
use crate::mock_bedrock;
use crate::util::{bin, s, stderr, stdout, TempDir};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1%3A0";

/// One call's answer: status, the error type header, Retry-After, the body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    error_type: String,
    retry_after: Option<String>,
    body: String,
}

/// `n` calls at once to `path` (after the gateway URL) with `body`.
fn calls_at_once(gw: &str, key: &str, path: &str, body: &'static str, n: usize) -> Vec<Answer> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = http_client();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let client = client.clone();
            let req = http::Request::post(format!("{gw}{path}"))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                .unwrap();
            tasks.push(tokio::spawn(async move {
                let resp = client.request(req).await.unwrap();
                let head = |n: &str| {
                    resp.headers()
                        .get(n)
                        .map(|v| v.to_str().unwrap_or("").to_string())
                };
                let status = resp.status().as_u16();
                let error_type = head("x-amzn-errortype").unwrap_or_default();
                let retry_after = head("retry-after");
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                Answer {
                    status,
                    error_type,
                    retry_after,
                    body: String::from_utf8_lossy(&body).into_owned(),
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

fn write_config(t: &TempDir, text: &str) -> PathBuf {
    let cfg = t.path("config.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn start(t: &TempDir, mock: &str, cfg: &Path, env: &[(&str, &str)]) -> Gateway {
    let mut e = vec![("BEDROCK_USAGE_CONFIG", s(cfg))];
    e.extend_from_slice(env);
    Gateway::start_with_env(&t.db(), mock, &[], &e)
}

/// The calls the store holds and their cost in nano-dollars, priced here from their tokens
/// (Claude 3 Haiku: $0.25/M input, $1.25/M output).
fn stored_haiku_spend(db: &Path) -> (usize, i64) {
    let rows = bedrock_usage::store::open(db).unwrap().dump().unwrap();
    let pico: i64 = rows
        .iter()
        .map(|r| {
            r["tokens"][0].as_i64().unwrap() * 250_000
                + r["tokens"][1].as_i64().unwrap() * 1_250_000
        })
        .sum();
    (rows.len(), pico / 1000)
}

fn me(gw: &str, key: &str, json: bool) -> std::process::Output {
    let mut c = bin();
    if json {
        c.args(["--format", "json"]);
    }
    c.args(["me", "--gateway", gw])
        .env("BEDROCK_USAGE_KEY", key)
        .env_remove("AWS_BEARER_TOKEN_BEDROCK")
        .output()
        .unwrap()
}

/// A body whose reservation is known: `max_tokens` 7, as many output tokens as the mock answers.
const SLOW_BODY: &str = r#"{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 7, "messages": [{"role": "user", "content": "hi"}]}"#;

#[test]
fn two_hundred_concurrent_calls_never_spend_past_a_hard_budget() {
    let t = TempDir::new("limits-budget");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "alice", &[]);
    let key = key["key"].as_str().unwrap();
    // The reservation of one call: its body's bytes at Claude 3 Haiku's dearest input-side
    // rate ($0.30/M, a cache write) plus 7 output tokens at $1.25/M, rounded up.
    let per_call_pico = SLOW_BODY.len() as i64 * 300_000 + 7 * 1_250_000;
    let estimate = (per_call_pico + 999) / 1000;
    // Room for ten reservations, not eleven.
    let amount_nano = 10 * estimate + estimate / 2;
    let amount = format!(
        "{}.{:09}",
        amount_nano / 1_000_000_000,
        amount_nano % 1_000_000_000
    );
    let amount = amount.trim_end_matches('0').to_string();
    let cfg = write_config(
        &t,
        &format!(
            "[[budgets]]\nname = \"alice-cap\"\ndeveloper = \"alice\"\nperiod = \"month\"\namount = \"{amount}\"\naction = \"block\"\n"
        ),
    );
    let gw = start(&t, &mock.url, &cfg, &[]);
    let slow = format!("/model/{HAIKU}-slow/invoke-with-response-stream");
    let answers = calls_at_once(&gw.url, key, &slow, SLOW_BODY, 200);
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(
        (1..=10).contains(&ok),
        "at most ten reservations fit: {ok} admitted"
    );
    for r in &refused {
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.error_type, "ServiceQuotaExceededException");
        assert!(
            r.body.contains("Budget `alice-cap` would be passed"),
            "{}",
            r.body
        );
        assert!(r.body.contains("It resets at "), "{}", r.body);
    }
    // Settled: what was spent is within the budget, and the reservations are gone.
    std::thread::sleep(Duration::from_millis(2_500));
    let v: serde_json::Value = serde_json::from_slice(&me(&gw.url, key, true).stdout).unwrap();
    let b = &v["limits"][0];
    assert_eq!(b["name"], "alice-cap", "{v}");
    assert_eq!(b["reserved_usd"], "0.000000", "{v}");
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    let (calls, spent) = stored_haiku_spend(&t.db());
    assert_eq!(calls, ok, "every admitted call recorded");
    // The mock answers 12 input and 7 output tokens: $0.00001175 a call.
    assert_eq!(spent, ok as i64 * 11_750);
    assert!(spent <= amount_nano);
    assert!(!log.contains(key), "a key in the log");

    // After settling, the unused part of the reservations is free again: a restarted gateway
    // (its spend read from the store) admits calls until the budget is really used.
    let gw = start(&t, &mock.url, &cfg, &[]);
    let quick = format!("/model/{HAIKU}/invoke");
    let again = calls_at_once(&gw.url, key, &quick, SLOW_BODY, 5);
    assert!(again.iter().all(|a| a.status == 200), "{again:?}");
    gw.stop();
}

#[test]
fn rate_and_concurrency_limits_admit_exactly_their_number() {
    let t = TempDir::new("limits-rate");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let alice = create_key(&t.db(), "alice", &["--team", "ml"]);
    let alice = alice["key"].as_str().unwrap();
    let bob = create_key(&t.db(), "bob", &["--team", "ml"]);
    let bob = bob["key"].as_str().unwrap();
    let cfg = write_config(
        &t,
        r#"
[[limits]]
name = "per-person"
team = "ml"
each_developer = true
requests_per_minute = 5
[[limits]]
name = "streams"
developer = "bob"
max_concurrent = 2
"#,
    );
    let gw = start(&t, &mock.url, &cfg, &[]);
    let quick = format!("/model/{HAIKU}/invoke");
    // 5 + 3 in a minute: exactly 5 admitted; the rest told when to come back.
    let a = calls_at_once(&gw.url, alice, &quick, "{}", 8);
    assert_eq!(a.iter().filter(|x| x.status == 200).count(), 5, "{a:?}");
    for r in a.iter().filter(|x| x.status != 200) {
        assert_eq!(r.status, 429);
        assert_eq!(r.error_type, "ThrottlingException");
        let secs: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=60).contains(&secs), "{r:?}");
        assert!(
            r.body
                .contains("Rate limit `per-person`: 5 requests a minute"),
            "{}",
            r.body
        );
    }
    // Each developer has a window of their own; bob may run two calls at a time, so of five
    // slow streams at once exactly two run.
    let slow = format!("/model/{HAIKU}-slow/invoke-with-response-stream");
    let b = calls_at_once(&gw.url, bob, &slow, "{}", 5);
    let ran = b.iter().filter(|x| x.status == 200).count();
    assert_eq!(ran, 2, "{b:?}");
    assert!(b
        .iter()
        .filter(|x| x.status != 200)
        .all(|x| x.status == 429 && x.body.contains("at most 2 call(s) at a time")));
    // `me` for bob: the refused calls counted nowhere, so 3 of his 5 requests are left.
    let out = me(&gw.url, bob, false);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with("bob · $"), "{line}");
    assert!(line.contains(" today · 3 req/min left"), "{line}");
    gw.stop();
}

#[test]
fn a_raised_budget_and_a_new_period_open_without_a_restart() {
    let t = TempDir::new("limits-raise");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "carol", &[]);
    let key = key["key"].as_str().unwrap();
    let budget = |amount: &str| {
        format!(
            "[[budgets]]\nname = \"carol-cap\"\ndeveloper = \"carol\"\nperiod = \"month\"\namount = \"{amount}\"\naction = \"block\"\n"
        )
    };
    let cfg = write_config(&t, &budget("0.0001"));
    let gw = start(&t, &mock.url, &cfg, &[]);
    let quick = format!("/model/{HAIKU}/invoke");
    // A call may reserve up to 64,000 output tokens when its body names none: refused.
    let r = calls_at_once(&gw.url, key, &quick, "{}", 1);
    assert_eq!(r[0].status, 400, "{r:?}");
    assert!(
        r[0].body.contains("$0.0000 of $0.0001 spent this month"),
        "{}",
        r[0].body
    );
    std::fs::write(&cfg, budget("1")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = calls_at_once(&gw.url, key, &quick, "{}", 1);
        if r[0].status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the raised budget never took effect: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, log) = gw.stop();
    assert!(log.contains("Read the config again"), "{log}");

    // Spent to the cent in December...
    std::fs::write(&cfg, budget("0.08")).unwrap();
    let gw = start(
        &t,
        &mock.url,
        &cfg,
        &[("BEDROCK_USAGE_NOW", "2026-12-20T12:00:00Z")],
    );
    // (the mock's call is $0.0000118; each call with no max_tokens reserves $0.08)
    let r = calls_at_once(&gw.url, key, &quick, "{}", 1);
    assert_eq!(r[0].status, 400, "{r:?}");
    assert!(
        r[0].body.contains("It resets at 2027-01-01T00:00:00"),
        "{}",
        r[0].body
    );
    gw.stop();
    // ...and open again in January.
    std::fs::write(&cfg, budget("0.09")).unwrap();
    let gw = start(
        &t,
        &mock.url,
        &cfg,
        &[("BEDROCK_USAGE_NOW", "2027-01-01T00:00:01Z")],
    );
    let r = calls_at_once(&gw.url, key, &quick, "{}", 1);
    assert_eq!(r[0].status, 200, "{r:?}");
    gw.stop();
}

#[test]
fn claude_code_shows_the_budget_message_and_does_not_retry() {
    let t = TempDir::new("limits-claude");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "dave", &[]);
    let cfg = write_config(
        &t,
        "[[budgets]]\nname = \"dave-cap\"\ndeveloper = \"dave\"\nperiod = \"month\"\namount = \"0.01\"\naction = \"block\"\n",
    );
    let gw = start(&t, &mock.url, &cfg, &[]);
    let got = claude_p(
        &t,
        &gw.url,
        key["key"].as_str().unwrap(),
        &[(
            "ANTHROPIC_MODEL",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        )],
    );
    assert_eq!(got["is_error"], true, "{got}");
    let result = got["result"].as_str().unwrap();
    assert!(
        result.starts_with("API Error: 400 Budget `dave-cap` would be passed: $")
            && result.contains(" of $0.0100 spent this month, and this call could cost up to $"),
        "{result}"
    );
    let (_, log) = gw.stop();
    // Refused once per model Claude Code tries (it probes a few at start), never retried: a
    // retried 429 or 403 comes back ten times for the same model.
    let refusals = log.matches("Refused a request: limit").count();
    assert!((1..=12).contains(&refusals), "{refusals} refusals:\n{log}");
    let streams = log
        .lines()
        .filter(|l| l.contains("Refused a request: limit") && l.contains("dave"))
        .count();
    assert_eq!(streams, refusals);
}

/// A `redis-server` on a free loopback port, stopped when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
}

impl Redis {
    fn start(t: &TempDir) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir", s(&t.path(""))])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server ({e}): the shared-limits tests need it: apt-get install redis-server (.ci/run does)")
            });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn two_gateways_sharing_redis_enforce_one_budget_and_one_rate_limit() {
    let t = TempDir::new("limits-redis");
    let mut redis = Redis::start(&t);
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    // Two replicas, each with a store of its own (as on two machines), one Redis.
    let db_b = t.path("replica-b.db");
    let erin = create_key(&t.db(), "erin", &[]);
    let erin = erin["key"].as_str().unwrap().to_string();
    let frank = create_key(&t.db(), "frank", &[]);
    let frank = frank["key"].as_str().unwrap().to_string();
    let per_call_pico = SLOW_BODY.len() as i64 * 300_000 + 7 * 1_250_000;
    let estimate = (per_call_pico + 999) / 1000;
    let amount_nano = 10 * estimate + estimate / 2;
    // erin already spent about five reservations' worth this month (a synced log record): Redis
    // is seeded with it from the store, so only five more fit.
    let input_tokens = 5 * estimate * 1000 / 250_000;
    let log = t.path("erin.jsonl");
    std::fs::write(
        &log,
        serde_json::json!({
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
            "timestamp": bedrock_usage_core::time::format_utc(bedrock_usage::context::now_ms() - 1000),
            "accountId": "123456789012", "region": "us-east-1", "requestId": "erin-before",
            "operation": "InvokeModel", "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/shared/box"},
            "requestMetadata": {"developer": "erin"},
            "input": {"inputContentType": "application/json", "inputTokenCount": input_tokens},
            "output": {"outputContentType": "application/json", "outputTokenCount": 0},
        })
        .to_string()
            + "\n",
    )
    .unwrap();
    crate::util::run_ok(&["--db", s(&t.db()), "ingest", "--no-progress", s(&log)]);
    std::fs::copy(t.db(), &db_b).unwrap();
    let cfg = write_config(
        &t,
        &format!(
            r#"
[gateway]
redis_url = "{}"
[[budgets]]
name = "erin-cap"
developer = "erin"
period = "month"
amount = "0.{:09}"
action = "block"
[[limits]]
name = "frank-rate"
developer = "frank"
requests_per_minute = 5
"#,
            redis.url, amount_nano
        ),
    );
    let a = start(&t, &mock.url, &cfg, &[]);
    let b = {
        let mut e = vec![("BEDROCK_USAGE_CONFIG", s(&cfg))];
        e.push(("BEDROCK_USAGE_DB", s(&db_b)));
        Gateway::start_with_env(&db_b, &mock.url, &[], &e)
    };
    // 100 slow calls at once at each replica: ten reservations fit in all.
    let slow = format!("/model/{HAIKU}-slow/invoke-with-response-stream");
    let (ua, ub, ea, eb) = (a.url.clone(), b.url.clone(), erin.clone(), erin.clone());
    let (sa, sb) = (slow.clone(), slow.clone());
    let ta = std::thread::spawn(move || calls_at_once(&ua, &ea, &sa, SLOW_BODY, 100));
    let tb = std::thread::spawn(move || calls_at_once(&ub, &eb, &sb, SLOW_BODY, 100));
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    let ok_a = ra.iter().filter(|x| x.status == 200).count();
    let ok_b = rb.iter().filter(|x| x.status == 200).count();
    assert!(
        (1..=5).contains(&(ok_a + ok_b)),
        "one budget for both replicas, the store's spend in it: {ok_a} + {ok_b} admitted"
    );
    assert!(ra
        .iter()
        .chain(&rb)
        .filter(|x| x.status != 200)
        .all(|x| x.status == 400 && x.body.contains("Budget `erin-cap` would be passed")));

    // One rate limit: 4 calls at each replica, 5 admitted in all.
    let quick = format!("/model/{HAIKU}/invoke");
    let fa = calls_at_once(&a.url, &frank, &quick, "{}", 4);
    let fb = calls_at_once(&b.url, &frank, &quick, "{}", 4);
    let admitted = fa.iter().chain(&fb).filter(|x| x.status == 200).count();
    assert_eq!(admitted, 5, "{fa:?} {fb:?}");

    // /me at either replica sees the shared counts.
    let v: serde_json::Value = serde_json::from_slice(&me(&b.url, &frank, true).stdout).unwrap();
    assert_eq!(v["limits"][0]["requests_left"], 0, "{v}");

    // Redis gone: the rate limit allows (its default), the hard budget denies.
    redis.kill();
    let f = calls_at_once(&a.url, &frank, &quick, "{}", 1);
    assert_eq!(f[0].status, 200, "{f:?}");
    let e = calls_at_once(&a.url, &erin, &quick, SLOW_BODY, 1);
    assert_eq!(e[0].status, 503, "{e:?}");
    assert_eq!(e[0].error_type, "ServiceUnavailableException");
    let (_, log) = a.stop();
    assert!(
        log.contains("ERROR") && log.contains("Redis is unavailable"),
        "{log}"
    );
    assert!(
        !log.contains(&erin) && !log.contains(&frank),
        "a key in the log"
    );
    b.stop();
}
