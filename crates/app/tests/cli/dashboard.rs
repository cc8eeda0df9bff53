//! The dashboard in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs) by a small client here: load it over a demo
//! store, check the figures shown equal the API's, switch the split, change the range, open a
//! developer's page, download a CSV, no console errors; screenshots saved (to
//! `BEDROCK_USAGE_SCREENSHOTS` when set: docs/images/ is made that way).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// One HTTP/1.1 request with a JSON body to a loopback server; the JSON answer.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut length: Option<usize> = None;
    let mut chunked = false;
    r.read_line(&mut line).expect("status line");
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header");
        if h.trim().is_empty() {
            break;
        }
        let l = h.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().ok();
        }
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).expect("body");
    } else {
        r.read_to_end(&mut body).expect("body");
    }
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&body)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = TcpStream::connect(("127.0.0.1", self.port)).map(|mut s| {
            let _ = s.write_all(format!("DELETE /session/{} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", self.session).as_bytes());
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chromedriver ({e}): install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)"));
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1500"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = http(port, "POST", "/session", Some(&caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Driver {
            child,
            port,
            session,
        }
    }
    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let v = http(
            self.port,
            method,
            &format!("/session/{}/{what}", self.session),
            body.as_ref(),
        );
        if v["value"].get("error").is_some() {
            panic!("WebDriver {what}: {v}");
        }
        v["value"].clone()
    }
    fn go(&self, url: &str) {
        self.cmd("POST", "url", Some(json!({"url": url})));
        self.wait_loaded();
    }
    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }
    fn wait_loaded(&self) {
        let start = Instant::now();
        loop {
            // During a navigation a script may find no page yet: that is "not loaded".
            let v = http(
                self.port,
                "POST",
                &format!("/session/{}/execute/sync", self.session),
                Some(&json!({"script": "return document.body && document.body.dataset.loaded || ''", "args": []})),
            )["value"]
                .clone();
            if v == "yes" {
                return;
            }
            assert!(
                v != "error",
                "the dashboard shows an error: {}",
                self.js("return document.querySelector('#error').textContent")
            );
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the dashboard did not load"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// Clicks the element `css` matches, as a user would, then waits for the page to settle.
    fn click(&self, css: &str) {
        self.js("document.body.dataset.loaded = ''");
        self.click_and_go(css);
        self.wait_loaded();
    }
    /// Clicks the element `css` matches where the click leaves the page (a form's submit).
    fn click_and_go(&self, css: &str) {
        let e = self.cmd(
            "POST",
            "element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string();
        self.cmd("POST", &format!("element/{id}/click"), Some(json!({})));
    }
    fn screenshot(&self, name: &str, t: &TempDir) {
        let b64 = self.cmd("GET", "screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or(""));
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = std::env::var_os("BEDROCK_USAGE_SCREENSHOTS")
            .map_or_else(|| t.0.clone(), std::path::PathBuf::from);
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
    fn console_errors(&self) -> Vec<String> {
        let v = self.cmd("POST", "se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Money shown as `$12.345678` (exact) to micro-dollars.
fn micros(s: &str) -> i64 {
    let t = s.trim().trim_start_matches('$');
    if t.is_empty() || t == "unpriced" {
        return 0;
    }
    bedrock_usage_core::NanoUsd::parse_usd(t)
        .expect("usd")
        .micros()
}

fn api(base: &str, path: &str) -> (u16, String) {
    let (st, body) = bedrock_usage::publish::http::get_blocking(
        &format!("{base}{path}"),
        &[],
        Duration::from_secs(20),
    )
    .expect("get");
    (st, String::from_utf8_lossy(&body).into_owned())
}

fn api_total(base: &str, query: &str) -> i64 {
    let (_, body) = api(base, &format!("/api/v1/report?by=developer{query}"));
    let rows: Value = serde_json::from_str(&body).expect("json");
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r["cost_usd"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| r["cost_usd"].to_string())
        })
        .filter(|c| c != "null")
        .map(|c| {
            bedrock_usage_core::NanoUsd::parse_usd(&c)
                .expect("usd")
                .micros()
        })
        .sum()
}

#[test]
fn the_dashboard_in_chromium_shows_the_api_figures_and_navigates() {
    let t = TempDir::new("dashboard");
    run_ok(&["--db", s(&t.db()), "demo"]);
    let cfg = demo_config(&t);
    let (mut server, base) = start_serve(&t.db(), &cfg);
    let d = Driver::start();

    // The front page: the total and every developer row equal the API's.
    d.go(&format!("{base}/"));
    let shown = d.js("return document.querySelector('#total-cost').dataset.micros");
    let want = api_total(&base, "");
    assert_eq!(
        shown.as_str().and_then(|s| s.parse::<i64>().ok()),
        Some(want)
    );
    let rows = d.js("return [...document.querySelectorAll('#developers tbody tr')].map(tr => [tr.cells[0].textContent, tr.cells[4].textContent])");
    let (_, body) = api(&base, "/api/v1/report?by=developer");
    let by_dev: Value = serde_json::from_str(&body).expect("json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(
        rows.len(),
        by_dev.as_array().map_or(0, Vec::len),
        "one row per developer"
    );
    for r in rows {
        let name = r[0].as_str().unwrap_or("");
        let api_row = by_dev
            .as_array()
            .and_then(|a| a.iter().find(|x| x["developer"] == name))
            .unwrap_or_else(|| panic!("{name} not in the API"));
        let api_cost = match &api_row["cost_usd"] {
            Value::Null => String::new(),
            v => v.as_str().map_or_else(|| v.to_string(), String::from),
        };
        assert_eq!(
            micros(r[1].as_str().unwrap_or("")),
            micros(&api_cost),
            "{name}"
        );
    }
    // What caching saved: the API's cache_saved_usd summed over the models.
    let (_, body) = api(&base, "/api/v1/report?by=model");
    let saved: i64 = serde_json::from_str::<Value>(&body)
        .expect("json")
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| !r["cache_saved_usd"].is_null())
        .map(|r| micros(&r["cache_saved_usd"].to_string()))
        .sum();
    assert!(saved > 0, "the demo caches");
    assert_eq!(
        d.js("return document.querySelector('#cache-saved').dataset.micros")
            .as_str()
            .and_then(|s| s.parse::<i64>().ok()),
        Some(saved)
    );
    // Each top developer has a trend line; the warnings name the shared principal.
    assert_eq!(
        d.js("return document.querySelectorAll('#developers svg.spark polyline').length")
            .as_u64(),
        Some(rows.len() as u64)
    );
    let warnings = d.js("return document.querySelector('#warnings').textContent");
    assert!(
        warnings.as_str().unwrap_or("").contains("shared principal"),
        "{warnings}"
    );
    assert!(
        d.js("return document.querySelectorAll('#chart rect').length")
            .as_u64()
            .unwrap_or(0)
            > 10,
        "the chart has bars"
    );
    d.screenshot("dashboard.png", &t);

    // Split by model: the legend names models.
    d.js("document.querySelector('#by').value = 'model'");
    d.click("#apply");
    let legend = d.js("return document.querySelector('#legend').textContent");
    assert!(
        legend.as_str().unwrap_or("").contains("claude-"),
        "{legend}"
    );
    assert!(d
        .js("return location.search")
        .as_str()
        .unwrap_or("")
        .contains("by=model"));

    // A range: the total follows it.
    d.js("document.querySelector('#since').value = '2026-11-10'; document.querySelector('#until').value = '2026-11-16'");
    d.click("#apply");
    let shown = d.js("return document.querySelector('#total-cost').dataset.micros");
    let want_week = api_total(&base, "&since=2026-11-10&until=2026-11-16&tz=UTC");
    assert_eq!(
        shown.as_str().and_then(|s| s.parse::<i64>().ok()),
        Some(want_week)
    );
    assert!(want_week < want && want_week > 0);

    // A developer's page, opened by clicking their name.
    let first = d.js("return document.querySelector('#developers tbody a').textContent");
    let first = first.as_str().unwrap_or("").to_string();
    d.click("#developers tbody a");
    assert!(d
        .js("return location.pathname")
        .as_str()
        .unwrap_or("")
        .starts_with("/developers/"));
    let devs = d.js("return [...document.querySelectorAll('#developers tbody tr')].map(tr => tr.cells[0].textContent)");
    assert_eq!(
        devs,
        json!([first]),
        "the developer's page shows that developer only"
    );
    d.screenshot("developer.png", &t);

    // CSV downloads: the link is the API's CSV, which equals `report --format csv`.
    let href = d.js("return document.querySelector('#csv-models').getAttribute('href')");
    let (st, csv) = api(&base, href.as_str().unwrap_or(""));
    assert_eq!(st, 200);
    assert!(csv.starts_with("model,calls,"), "{csv}");
    let dev_q = format!("--developer={first}");
    let cli = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "--config",
        s(&cfg),
        "--format",
        "csv",
        "report",
        "--by",
        "model",
        "--since",
        "2026-11-10",
        "--until",
        "2026-11-16",
        &dev_q,
    ]));
    assert_eq!(csv, cli);

    let errors = d.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(d);
    // SAFETY: a plain kill(2) of the child we started.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    assert_eq!(server.wait().expect("wait").code(), Some(0));
}

#[test]
fn with_login_required_the_browser_logs_in_through_the_form_and_out() {
    let t = TempDir::new("dashboard-login");
    run_ok(&["--db", s(&t.db()), "demo"]);
    let cfg = demo_config(&t);
    let token = "operator-token-for-the-login-test";
    let (mut server, base) = start_serve_with(&t.db(), &cfg, Some(token));
    let (st, _) = api(&base, "/api/v1/report");
    assert_eq!(st, 401, "no token, no figures");
    let d = Driver::start();

    // The dashboard sends a browser without a session to the form, and back after it.
    d.cmd(
        "POST",
        "url",
        Some(json!({"url": format!("{base}/?by=model")})),
    );
    let start = Instant::now();
    while !d
        .js("return location.pathname")
        .as_str()
        .unwrap_or("")
        .eq("/login")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no redirect to /login"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A wrong token: the form again, saying so, and never echoing it.
    d.js("document.querySelector('#token').value = 'wrong-token'; document.querySelector('form').submit()");
    let start = Instant::now();
    while d.js("return document.querySelector('#message') ? document.querySelector('#message').textContent : ''").as_str().unwrap_or("").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no message for a wrong token");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!d
        .js("return document.documentElement.outerHTML")
        .as_str()
        .unwrap_or("")
        .contains("wrong-token"));
    d.js(&format!("document.querySelector('#token').value = '{token}'; document.querySelector('form').submit()"));
    let start = Instant::now();
    while d.js("return location.pathname").as_str().unwrap_or("") != "/" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not back at the dashboard"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.wait_loaded();
    assert!(d
        .js("return location.search")
        .as_str()
        .unwrap_or("")
        .contains("by=model"));
    let shown = d.js("return document.querySelector('#total-cost').dataset.micros");
    let (_, body) = bedrock_usage::publish::http::get_blocking(
        &format!("{base}/api/v1/report?by=developer"),
        &[("authorization", format!("Bearer {token}"))],
        Duration::from_secs(20),
    )
    .expect("get");
    let want: i64 = serde_json::from_slice::<Value>(&body)
        .expect("json")
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| !r["cost_usd"].is_null())
        .map(|r| micros(&r["cost_usd"].to_string()))
        .sum();
    assert_eq!(
        shown.as_str().and_then(|s| s.parse::<i64>().ok()),
        Some(want)
    );
    // The session cookie: HttpOnly, Secure, SameSite=Strict, and not the token.
    let cookies = d.cmd("GET", "cookie", None);
    let c = cookies
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "bedrock_usage_session"))
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"))
        .clone();
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["secure"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert!(!c["value"].as_str().unwrap_or("").contains(token));
    d.screenshot("login-dashboard.png", &t);

    // Log out: the session ends; the dashboard asks for the form again.
    d.click_and_go("#logout");
    // The logout answers with a redirect; the browser may still be on its way there.
    let start = Instant::now();
    while d.js("return location.pathname") != json!("/login") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "logging out did not lead to the form: {}",
            d.js("return location.pathname")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.cmd("POST", "url", Some(json!({"url": format!("{base}/")})));
    let start = Instant::now();
    while d.js("return location.pathname").as_str().unwrap_or("") != "/login" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still in after logging out"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let errors: Vec<String> = d
        .console_errors()
        .into_iter()
        .filter(|e| !e.contains("401"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(d);
    // SAFETY: a plain kill(2) of the child we started.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    assert_eq!(server.wait().expect("wait").code(), Some(0));
}
