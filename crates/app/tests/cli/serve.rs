//! `serve`: the JSON API through `router(state)` without a socket (every endpoint equal to its
//! command's JSON, bad parameters named, auth on and off, a developer's key seeing only its
//! developer), `/metrics` read by the Python `prometheus_client` parser, and the binary on a
//! real port stopping on SIGTERM.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bedrock_usage::serve::{router, sha256, ServeState};
use clap::Parser;
use tower::ServiceExt;

use crate::util::*;

/// A demo store of `n` calls with the demo config plus an each-developer budget.
fn demo_store(t: &TempDir, n: u64, extra_config: &str) -> std::path::PathBuf {
    let (_, jsonl) = demo_corpus(n, 11, (0, 0));
    let f = t.path("calls.jsonl");
    std::fs::write(&f, jsonl).expect("write");
    ingest(&t.db(), &[&f]);
    let cfg = demo_config(t);
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("\n[[budgets]]\nname = \"per-person\"\neach_developer = true\nperiod = \"month\"\namount = \"100\"\n");
    text.push_str(extra_config);
    std::fs::write(&cfg, text).expect("config");
    cfg
}

fn state(t: &TempDir, cfg: &std::path::Path, open: bool, tokens: &[&str]) -> Arc<ServeState> {
    let args = bedrock_usage::cli::Args::try_parse_from([
        "bedrock-usage",
        "--db",
        s(&t.db()),
        "--config",
        s(cfg),
        "serve",
    ])
    .expect("args");
    let ctx = bedrock_usage::context::Context::build(&args).expect("context");
    let mut st = ServeState::new(ctx, open).expect("state");
    st.token_hashes = tokens.iter().map(|t| sha256(t.as_bytes())).collect();
    Arc::new(st)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn call(app: &axum::Router, method: &str, uri: &str, auth: Option<&str>, body: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    send(
        app,
        req.body(Body::from(body.to_string())).expect("request"),
    )
}

fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let resp = app.clone().oneshot(req).await.expect("answer");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    })
}

/// The command's `--format json` output, parsed.
fn command_json(t: &TempDir, cfg: &std::path::Path, args: &[&str], code: i32) -> serde_json::Value {
    let db = t.db();
    let mut full = vec!["--db", s(&db), "--config", s(cfg), "--format", "json"];
    full.extend_from_slice(args);
    let out = run_expect(&full, code);
    serde_json::from_str(&stdout(&out)).expect("json")
}

#[test]
fn every_endpoint_answers_what_its_command_prints() {
    let t = TempDir::new("serve-api");
    let cfg = demo_store(&t, 1500, "");
    let app = router(state(&t, &cfg, true, &[]));
    let get = |uri: &str| call(&app, "GET", uri, None, "");

    let r = get("/api/v1/report?by=developer,model&since=2026-11-01&until=2026-11-30");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        command_json(
            &t,
            &cfg,
            &[
                "report",
                "--by",
                "developer,model",
                "--since",
                "2026-11-01",
                "--until",
                "2026-11-30"
            ],
            0
        )
    );
    let r = get("/api/v1/report?by=team&tz=Europe/Berlin&top=2");
    assert_eq!(
        r.json(),
        command_json(
            &t,
            &cfg,
            &[
                "report",
                "--by",
                "team",
                "--tz",
                "Europe/Berlin",
                "--top",
                "2"
            ],
            0
        )
    );
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    // The default key is developer.
    assert_eq!(
        get("/api/v1/report").json(),
        command_json(&t, &cfg, &["report", "--by", "developer"], 0)
    );

    let r = get("/api/v1/timeseries?bin=week&by=model&tz=America/New_York");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        command_json(
            &t,
            &cfg,
            &["report", "--by", "week,model", "--tz", "America/New_York"],
            0
        )
    );
    assert!(r.json()[0].get("week").is_some(), "{}", r.body);
    let r = get("/api/v1/timeseries?bin=hour&tz=Asia/Kolkata");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        command_json(
            &t,
            &cfg,
            &["report", "--by", "hour", "--tz", "Asia/Kolkata"],
            0
        )
    );
    assert!(
        r.json()[0]["hour"]
            .as_str()
            .is_some_and(|h| h.ends_with(":00+05:30")),
        "{}",
        r.body
    );

    let q =
        "stats count(*) as calls, sum(input.inputTokenCount) as input by modelId | sort calls desc";
    let r = call(
        &app,
        "POST",
        "/api/v1/query",
        None,
        &serde_json::json!({"query": q, "since": "2026-11-01"}).to_string(),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        command_json(&t, &cfg, &["query", q, "--since", "2026-11-01"], 0)
    );
    let r = call(
        &app,
        "POST",
        "/api/v1/query",
        None,
        &serde_json::json!({"query": "fields nosuchfield | limit 1"}).to_string(),
    );
    assert!(
        r.headers["x-bedrock-usage-warnings"]
            .to_str()
            .unwrap_or("")
            .contains("nosuchfield"),
        "{:?}",
        r.headers
    );

    let r = get("/api/v1/budgets");
    let budgets = command_json(&t, &cfg, &["budget", "status"], 0);
    assert_eq!(r.json(), budgets);
    assert!(budgets.as_array().is_some_and(|a| a.len() > 3), "{budgets}");

    assert_eq!(
        get("/api/v1/unpriced").json(),
        command_json(&t, &cfg, &["pricing", "unpriced"], 0)
    );

    let st = get("/api/v1/status").json();
    assert_eq!(st["store"]["invocations"], 1500, "{st}");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));

    let api = get("/api/v1/openapi.json").json();
    assert_eq!(api["openapi"], "3.1.0");
    for p in [
        "/api/v1/report",
        "/api/v1/timeseries",
        "/api/v1/query",
        "/api/v1/budgets",
        "/api/v1/unpriced",
        "/api/v1/status",
        "/metrics",
    ] {
        assert!(api["paths"].get(p).is_some(), "openapi.json lacks {p}");
    }

    // Security headers on every answer; API answers are not cached.
    let r = get("/api/v1/report");
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(
            r.headers.get(h).and_then(|x| x.to_str().ok()),
            Some(v),
            "{h}"
        );
    }
    assert!(r.headers["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .contains("frame-ancestors 'none'"));
}

#[test]
fn bad_parameters_are_json_errors_that_name_them() {
    let t = TempDir::new("serve-bad");
    let cfg = demo_store(&t, 50, "");
    let app = router(state(&t, &cfg, true, &[]));
    let err = |method: &str, uri: &str, body: &str| {
        let r = call(&app, method, uri, None, body);
        let v = r.json();
        (
            r.status,
            v["error"]["code"].as_str().unwrap_or("").to_string(),
            v["error"]["parameter"].as_str().unwrap_or("").to_string(),
            v["error"]["message"].as_str().unwrap_or("").to_string(),
        )
    };
    let (st, code, p, m) = err("GET", "/api/v1/report?by=nope", "");
    assert_eq!(
        (st, code.as_str(), p.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_parameter", "by")
    );
    assert!(m.contains("unknown key `nope`"), "{m}");
    let (_, _, p, m) = err("GET", "/api/v1/report?bye=developer", "");
    assert_eq!(p, "bye", "{m}");
    assert!(m.contains("takes by, since"), "{m}");
    let (_, _, p, _) = err("GET", "/api/v1/report?since=yesterdayish", "");
    assert_eq!(p, "since");
    let (_, _, p, _) = err("GET", "/api/v1/report?tz=Mars/Olympus", "");
    assert_eq!(p, "tz");
    let (_, _, p, _) = err("GET", "/api/v1/report?top=ten", "");
    assert_eq!(p, "top");
    let (_, _, p, m) = err("GET", "/api/v1/timeseries?bin=fortnight", "");
    assert_eq!(p, "bin", "{m}");
    let (_, _, p, _) = err("GET", "/api/v1/timeseries?by=day", "");
    assert_eq!(p, "by");
    let (st, _, p, m) = err(
        "POST",
        "/api/v1/query",
        "{\"query\": \"stats count(* by x\"}",
    );
    assert_eq!((st, p.as_str()), (StatusCode::BAD_REQUEST, "query"), "{m}");
    let (st, code, _, _) = err("POST", "/api/v1/query", "{\"qery\": 1}");
    assert_eq!(
        (st, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
    let (st, code, _, _) = err("GET", "/api/v1/nothing", "");
    assert_eq!((st, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    // No store yet: a clear 503.
    let empty = TempDir::new("serve-nostore");
    let cfg2 = demo_config(&empty);
    let app2 = router(state(&empty, &cfg2, true, &[]));
    let r = call(&app2, "GET", "/api/v1/report", None, "");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "no_store");
}

#[test]
fn off_loopback_a_token_is_needed_and_a_developer_key_sees_its_developer_only() {
    let t = TempDir::new("serve-auth");
    let cfg = demo_store(&t, 800, "");
    let (key, stored) =
        bedrock_usage::gateway::keys::generate("alice", None, None, 0, None).expect("key");
    {
        let mut store = bedrock_usage::store::open(&t.db()).expect("store");
        store.add_key(&stored).expect("add key");
    }
    let app = router(state(&t, &cfg, false, &["operator-token-1"]));
    let r = call(&app, "GET", "/api/v1/report", None, "");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = call(&app, "GET", "/api/v1/report", Some("guess"), "");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        !r.body.contains("guess"),
        "a token is never echoed: {}",
        r.body
    );
    let r = call(
        &app,
        "GET",
        "/api/v1/report?by=developer",
        Some("operator-token-1"),
        "",
    );
    assert_eq!(r.status, StatusCode::OK);
    let everyone = r.json();
    assert!(
        everyone.as_array().is_some_and(|a| a.len() > 2),
        "{everyone}"
    );

    // alice's key: her rows only, whatever she asks for.
    let r = call(
        &app,
        "GET",
        "/api/v1/report?by=developer,model",
        Some(&key),
        "",
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rows = r.json();
    assert!(!rows.as_array().expect("rows").is_empty());
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .all(|x| x["developer"] == "alice"),
        "{rows}"
    );
    let r = call(&app, "GET", "/api/v1/report?developer=bob", Some(&key), "");
    assert_eq!(
        (r.status, r.json()["error"]["parameter"].clone()),
        (StatusCode::BAD_REQUEST, serde_json::json!("developer"))
    );
    let r = call(&app, "GET", "/api/v1/budgets", Some(&key), "");
    let b = r.json();
    assert!(
        b.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["scope"] == "alice"),
        "{b}"
    );
    for (m, uri) in [
        ("POST", "/api/v1/query"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/unpriced"),
    ] {
        let r = call(&app, m, uri, Some(&key), "{\"query\": \"stats count(*)\"}");
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}: {}", r.body);
    }
    // On loopback no login is needed.
    let open = router(state(&t, &cfg, true, &[]));
    assert_eq!(
        call(&open, "GET", "/api/v1/report", None, "").status,
        StatusCode::OK
    );
}

#[test]
fn metrics_parse_as_prometheus_text_and_fold_past_the_cap() {
    let t = TempDir::new("serve-metrics");
    let cfg = demo_store(&t, 1200, "\n[serve]\nmetrics_max_series = 4\n");
    let app = router(state(&t, &cfg, true, &[]));
    let r = call(&app, "GET", "/metrics", None, "");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/plain; version=0.0.4"));
    let f = t.path("metrics.txt");
    std::fs::write(&f, &r.body).expect("write");
    // The reference parser: every family and sample, as JSON.
    let script = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("the Python prometheus_client package is missing: pip install prometheus_client (.ci/run installs it)")
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    out[fam.name] = {"type": fam.type, "samples": [[s.name, s.labels, s.value] for s in fam.samples]}
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, s(&f)])
        .output()
        .expect("python3 (install it, with prometheus_client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fams: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let inv = &fams["bedrock_usage_invocations"];
    assert_eq!(inv["type"], "counter", "{fams}");
    let samples = inv["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 4, "capped at 4 series: {samples:?}");
    assert!(samples
        .iter()
        .any(|s| s[1]["developer"] == "other" && s[1]["model"] == "other"));
    let total: f64 = samples.iter().map(|s| s[2].as_f64().unwrap_or(0.0)).sum();
    assert_eq!(total, 1200.0, "every call is counted once, folded or not");
    assert!(
        fams["bedrock_usage_series_folded"]["samples"][0][2]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    let tokens = fams["bedrock_usage_tokens"]["samples"]
        .as_array()
        .expect("tokens");
    assert!(tokens.iter().any(|s| s[1]["type"] == "cache_read"));
    // The cost of each series kept equals the report's row, to the micro-dollar; the folded
    // one is their exact sum, rounded once.
    let report = report_csv(&t.db(), Some(&cfg), &["--by", "developer,model"]);
    // An all-unpriced row has no cost in the report and 0 in the metrics (its calls are in
    // bedrock_usage_unpriced_invocations_total).
    let usd = |v: &str| {
        if v.is_empty() {
            0
        } else {
            bedrock_usage_core::NanoUsd::parse_usd(v).expect("usd").0
        }
    };
    let mut folded_rows = 0i64;
    let mut want_total = 0i64;
    for line in r
        .body
        .lines()
        .filter(|l| l.starts_with("bedrock_usage_cost_usd_total{"))
    {
        let value = usd(line.rsplit(' ').next().unwrap_or("0"));
        if line.contains("developer=\"other\"") {
            continue;
        }
        let row = report
            .iter()
            .find(|row| {
                line.contains(&format!(
                    "developer=\"{}\",model=\"{}\"",
                    row["developer"], row["model"]
                ))
            })
            .unwrap_or_else(|| panic!("no report row for {line}"));
        assert_eq!(value, usd(&row["cost_usd"]), "{line}");
    }
    for row in &report {
        want_total += usd(&row["cost_usd"]);
        folded_rows += 1;
    }
    let got_total: i64 = r
        .body
        .lines()
        .filter(|l| l.starts_with("bedrock_usage_cost_usd_total{"))
        .map(|l| usd(l.rsplit(' ').next().unwrap_or("0")))
        .sum();
    assert!(
        (got_total - want_total).abs() <= 500 * folded_rows,
        "{got_total} vs {want_total}"
    );
    assert!(fams["bedrock_usage_budget_spent_ratio"]["samples"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
}

#[test]
fn the_server_listens_on_loopback_refuses_the_open_network_without_tokens_and_stops_on_sigterm() {
    let t = TempDir::new("serve-bin");
    let cfg = demo_store(&t, 100, "");
    let e = run_expect(
        &[
            "--db",
            s(&t.db()),
            "--config",
            s(&cfg),
            "serve",
            "--listen",
            "0.0.0.0:0",
        ],
        2,
    );
    assert!(stderr(&e).contains("access token"), "{}", stderr(&e));
    let (mut child, base) = start_serve(&t.db(), &cfg);
    let (status, body) = bedrock_usage::publish::http::get_blocking(
        &format!("{base}/api/v1/report?by=model"),
        &[],
        std::time::Duration::from_secs(10),
    )
    .expect("get");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // SAFETY: a plain kill(2) of the child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(0), "a SIGTERM is a clean stop");
}

#[test]
fn the_login_form_gives_a_session_cookie_that_sees_what_its_token_sees() {
    let t = TempDir::new("serve-login");
    let cfg = demo_store(&t, 400, "");
    let (key, stored) =
        bedrock_usage::gateway::keys::generate("alice", None, None, 0, None).expect("key");
    {
        let mut store = bedrock_usage::store::open(&t.db()).expect("store");
        store.add_key(&stored).expect("add key");
    }
    let app = router(state(&t, &cfg, false, &["operator-token-1"]));
    let form = |body: String| {
        send(
            &app,
            Request::builder()
                .method("POST")
                .uri("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("request"),
        )
    };
    let with_cookie = |uri: &str, cookie: &str| {
        send(
            &app,
            Request::builder()
                .uri(uri)
                .header("cookie", format!("theme=dark; {cookie}"))
                .body(Body::empty())
                .expect("request"),
        )
    };
    let page = call(&app, "GET", "/login?next=%2Fdevelopers%2Fbob", None, "");
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("value=\"/developers/bob\""),
        "{}",
        page.body
    );
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .contains("form-action 'self'"));
    // A wrong token: the form again (401), the token not echoed, no cookie.
    let r = form("token=guess-123&next=%2F".into());
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.body.contains("guess-123") && r.headers.get("set-cookie").is_none());
    // An operator's token: a cookie, back where they were going (never to another host).
    let r = form("token=operator-token-1&next=%2F%2Fevil.example%2F".into());
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/");
    let set = r.headers["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let op_cookie = set.split(';').next().expect("pair").to_string();
    assert!(!op_cookie.contains("operator-token-1"));
    let everyone = with_cookie("/api/v1/report?by=developer", &op_cookie);
    assert_eq!(everyone.status, StatusCode::OK, "{}", everyone.body);
    assert!(everyone.json().as_array().map_or(0, Vec::len) > 1);
    assert_eq!(
        with_cookie("/api/v1/status", &op_cookie).status,
        StatusCode::OK
    );
    // A developer's gateway key: their own page and their own figures only.
    let r = form(format!("token={}", key.replace('+', "%2B")));
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers["location"], "/developers/alice");
    let dev_cookie = r.headers["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let mine = with_cookie("/api/v1/report?by=developer", &dev_cookie);
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let rows = mine.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["developer"], "alice");
    assert_eq!(
        with_cookie("/api/v1/status", &dev_cookie).status,
        StatusCode::FORBIDDEN
    );
    // Logging out ends the session; a made-up cookie is nobody.
    let r = send(
        &app,
        Request::builder()
            .method("POST")
            .uri("/logout")
            .header("cookie", dev_cookie.clone())
            .body(Body::empty())
            .expect("request"),
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap_or("")
        .contains("Max-Age=0"));
    assert_eq!(
        with_cookie("/api/v1/report", &dev_cookie).status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie("/api/v1/report", "bedrock_usage_session=00ff").status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie("/api/v1/report", &op_cookie).status,
        StatusCode::OK
    );
}

#[test]
fn kept_answers_follow_the_store_and_are_never_another_viewers() {
    let t = TempDir::new("serve-cache");
    let cfg = demo_store(&t, 300, "");
    let (key, stored) =
        bedrock_usage::gateway::keys::generate("alice", None, None, 0, None).expect("key");
    {
        let mut store = bedrock_usage::store::open(&t.db()).expect("store");
        store.add_key(&stored).expect("add key");
    }
    let app = router(state(&t, &cfg, false, &["op"]));
    let calls = |a: &Answer| -> u64 {
        a.json()
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["calls"].as_u64().expect("calls"))
            .sum()
    };
    let first = call(&app, "GET", "/api/v1/report?by=developer", Some("op"), "");
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["x-bedrock-usage-cache"], "miss");
    let again = call(&app, "GET", "/api/v1/report?by=developer", Some("op"), "");
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["x-bedrock-usage-cache"], "hit");
    // The same question from a developer's key is theirs, not the operator's kept answer.
    let mine = call(&app, "GET", "/api/v1/report?by=developer", Some(&key), "");
    assert_eq!(mine.headers["x-bedrock-usage-cache"], "miss");
    assert_eq!(
        mine.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        mine.body
    );
    // Another process commits more calls: the next answer has them, not the kept one.
    let (_, more) = demo_corpus(200, 99, (0, 0));
    let f = t.path("more.jsonl");
    std::fs::write(&f, more).expect("write");
    ingest(&t.db(), &[&f]);
    let after = call(&app, "GET", "/api/v1/report?by=developer", Some("op"), "");
    assert_eq!(after.headers["x-bedrock-usage-cache"], "miss");
    assert_eq!(calls(&after), calls(&first) + 200);
    assert_eq!(
        after.json(),
        command_json(&t, &cfg, &["report", "--by", "developer"], 0)
    );
    // Errors are not kept: a bad parameter stays a 400 with its message.
    for _ in 0..2 {
        let r = call(&app, "GET", "/api/v1/report?by=nope", Some("op"), "");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.headers.get("x-bedrock-usage-cache").is_none());
    }
    // `cache_seconds = 0`: every answer computed.
    let cfg0 = t.path("nocache.toml");
    std::fs::write(
        &cfg0,
        std::fs::read_to_string(&cfg).expect("config") + "\n[serve]\ncache_seconds = 0\n",
    )
    .expect("config");
    let app = router(state(&t, &cfg0, false, &["op"]));
    for _ in 0..2 {
        let r = call(&app, "GET", "/api/v1/report?by=developer", Some("op"), "");
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.headers.get("x-bedrock-usage-cache").is_none());
    }
}
