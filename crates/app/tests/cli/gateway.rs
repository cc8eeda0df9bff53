//! The gateway end to end: keys, a real client (boto3, with AWS_BEARER_TOKEN_BEDROCK and an
//! endpoint URL) through the gateway to the mock Bedrock, the store's records, refusals, and
//! exactly once against the mock's own invocation logs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mock_bedrock::{self, ACCESS_KEY, SECRET_KEY};
use crate::util::{run_ok, s, stderr, stdout, TempDir};

pub struct Gateway {
    child: Child,
    pub url: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Gateway {
    pub fn start(db: &Path, upstream: &str, extra: &[&str]) -> Gateway {
        Gateway::start_with_env(db, upstream, extra, &[])
    }

    /// With environment variables over the ones `start` sets.
    pub fn start_with_env(
        db: &Path,
        upstream: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let mut child = crate::util::bin()
            .args([
                "--db",
                s(db),
                "--log-level",
                "info",
                "gateway",
                "--listen",
                "127.0.0.1:0",
            ])
            .args([
                "--upstream",
                upstream,
                "--region",
                "us-east-1",
                "--drain-timeout",
                "5s",
            ])
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            // No STS here: the gateway says so and records its principal as a fixed name.
            .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway");
        let err = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the gateway did not start:\n{}", log.lock().unwrap()));
        Gateway { child, url, log }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> (i32, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (st.code().unwrap_or(-1), self.log.lock().unwrap().clone());
            }
            assert!(Instant::now() < until, "the gateway did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The store holds one call, with these tokens (input, output, cache read, write 5m, 1h).
fn assert_only_row_has_tokens(db: &Path, tokens: serde_json::Value) {
    let rows = bedrock_usage::store::open(db).unwrap().dump().unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["tokens"], tokens, "{}", rows[0]);
}

pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A plain HTTP client (inside a tokio runtime).
pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

pub fn create_key(db: &Path, developer: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--db",
        s(db),
        "--format",
        "json",
        "keys",
        "create",
        "--developer",
        developer,
    ];
    args.extend(extra);
    serde_json::from_str(&stdout(&run_ok(&args))).unwrap()
}

/// Runs a Python client; its stdout parsed as JSON.
fn python(script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("python3 (with boto3: pip install boto3)");
    assert!(
        out.status.success(),
        "python client failed (needs boto3 >= 1.39 and anthropic >= 2.16: \
         pip install 'boto3>=1.39' 'anthropic>=2.16'; .ci/run installs both):\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

const BOTO3_ALL_FOUR: &str = r#"
import json, os, boto3
from botocore.config import Config
c = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=os.environ["GW"],
                 config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
out = {}
r = c.invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
out["invoke"] = json.loads(r["body"].read())
out["invoke_type"] = r["contentType"]
r = c.invoke_model_with_response_stream(modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0-cache1h", body=json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
out["stream"] = [json.loads(e["chunk"]["bytes"]) for e in r["body"]]
r = c.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0",
               messages=[{"role": "user", "content": [{"text": "hi"}]}],
               requestMetadata={"developer": "mallory", "ticket": "T-7"})
out["converse"] = r["usage"]
r = c.converse_stream(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                      messages=[{"role": "user", "content": [{"text": "hi"}]}])
out["converse_stream"] = [list(e.keys())[0] for e in r["stream"]]
try:
    c.converse(modelId="throttle-model", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    out["throttle"] = "no error"
except c.exceptions.ThrottlingException as e:
    out["throttle"] = e.response["Error"]["Code"]
print(json.dumps(out))
"#;

const RAW_STATUS: &str = r#"
import json, os, urllib.request, urllib.error
req = urllib.request.Request(os.environ["GW"] + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
    data=b"{}", method="POST", headers={"content-type": "application/json", **json.loads(os.environ["H"])})
try:
    r = urllib.request.urlopen(req)
    print(json.dumps({"status": r.status}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "type": e.headers.get("x-amzn-ErrorType"), "message": json.loads(e.read())["message"]}))
"#;

fn raw(gw: &str, headers: serde_json::Value) -> serde_json::Value {
    python(RAW_STATUS, &[("GW", gw), ("H", &headers.to_string())])
}

#[test]
fn boto3_through_the_gateway_is_recorded_once_and_attributed_to_the_key() {
    let t = TempDir::new("gateway-boto3");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "alice", &["--team", "ml", "--label", "laptop"]);
    let key_text = key["key"].as_str().unwrap().to_string();
    assert_eq!(key["developer"], "alice");
    let gw = Gateway::start(&t.db(), &mock.url, &[]);

    let got = python(
        BOTO3_ALL_FOUR,
        &[("GW", &gw.url), ("AWS_BEARER_TOKEN_BEDROCK", &key_text)],
    );
    // The mock's answers reach the client as the mock sent them.
    assert_eq!(got["invoke"]["content"][0]["text"], "Hello from the mock.");
    assert_eq!(got["invoke_type"], "application/json");
    let kinds: Vec<&str> = got["stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got["converse"]["inputTokens"], 12);
    assert_eq!(
        got["converse_stream"],
        serde_json::json!([
            "messageStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ])
    );
    assert_eq!(got["throttle"], "ThrottlingException");
    assert_eq!(
        mock.unsigned(),
        0,
        "every upstream request carried the gateway's SigV4 signature"
    );

    // Bedrock was told who called: the key's developer, over what the client sent.
    let log = std::fs::read_to_string(&mock.log).unwrap();
    let served: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(served.len(), 5);
    for r in &served {
        assert_eq!(r["requestMetadata"]["developer"], "alice", "{r}");
        assert_eq!(r["requestMetadata"]["team"], "ml", "{r}");
    }
    assert_eq!(served[2]["requestMetadata"]["ticket"], "T-7");

    let (code, gw_log) = gw.stop();
    assert_eq!(code, 0, "{gw_log}");
    assert!(gw_log.contains("5 call(s) recorded"), "{gw_log}");
    assert!(
        !gw_log.contains(&key_text),
        "the key never appears in the log"
    );
    assert!(
        !gw_log.contains("Hello from the mock"),
        "no response text in the log"
    );

    // The store has the mock's token counts exactly, attributed to alice.
    let store = bedrock_usage::store::open(&t.db()).unwrap();
    let mut rows = store.dump().unwrap();
    rows.sort_by_key(|r| r["request_id"].as_str().unwrap_or("").to_string());
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let stream = rows
        .iter()
        .find(|r| r["operation"] == "InvokeModelWithResponseStream")
        .unwrap();
    // input, output, cache read, cache write 5m, 1h: the mock's counts and split exactly.
    assert_eq!(
        stream["tokens"],
        serde_json::json!([21, 34, 400, 100, 200]),
        "{stream}"
    );
    assert_eq!(stream["signal"], "developer=alice");
    for r in rows
        .iter()
        .filter(|r| r["model_id"] == "anthropic.claude-3-haiku-20240307-v1:0")
    {
        assert_eq!(r["tokens"], serde_json::json!([12, 7, 0, 0, 0]), "{r}");
    }
    let throttled = rows
        .iter()
        .find(|r| r["model_id"] == "throttle-model")
        .unwrap();
    assert_eq!(throttled["error_code"], "ThrottlingException");
    drop(store);

    // Bedrock's own logs of the same calls, synced later, add nothing and report no conflict.
    let out = run_ok(&["--db", s(&t.db()), "ingest", "--no-progress", s(&mock.log)]);
    let msg = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        msg.contains("nothing new: 5 records read were already stored"),
        "{msg}"
    );
    assert!(!msg.contains("conflict"), "{msg}");
    let report = crate::util::report_csv(&t.db(), None, &["--by", "developer"]);
    let alice = report
        .iter()
        .find(|r| r["developer"] == "alice")
        .unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(alice["calls"], "5", "{report:?}");
}

#[test]
fn bad_revoked_and_expired_keys_get_access_denied() {
    let t = TempDir::new("gateway-keys");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "bob", &[]);
    let id = key["id"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {}", key["key"].as_str().unwrap());
    let gw = Gateway::start(&t.db(), &mock.url, &[]);

    let none = raw(&gw.url, serde_json::json!({}));
    assert_eq!(none["status"], 403);
    assert_eq!(none["type"], "AccessDeniedException");
    assert!(none["message"]
        .as_str()
        .unwrap()
        .contains("AWS_BEARER_TOKEN_BEDROCK"));
    let junk = raw(
        &gw.url,
        serde_json::json!({"authorization": "Bearer bu_000000000000_00"}),
    );
    assert_eq!(junk["status"], 403);
    assert!(junk["message"].as_str().unwrap().contains("Unknown"));
    let ok = raw(&gw.url, serde_json::json!({"authorization": bearer}));
    assert_eq!(ok["status"], 200, "{ok}");

    // Revoked while the gateway runs: refused within a second or so.
    run_ok(&["--db", s(&t.db()), "keys", "revoke", &id]);
    std::thread::sleep(Duration::from_millis(2500));
    let revoked = raw(&gw.url, serde_json::json!({"authorization": bearer}));
    assert_eq!(revoked["status"], 403, "{revoked}");
    assert!(
        revoked["message"].as_str().unwrap().contains("revoked"),
        "{revoked}"
    );

    let list = stdout(&run_ok(&[
        "--db",
        s(&t.db()),
        "--format",
        "csv",
        "keys",
        "list",
    ]));
    assert!(list.contains(&id) && list.contains(",revoked"), "{list}");
    assert!(
        !list.contains(key["key"].as_str().unwrap()),
        "keys list never shows a key"
    );
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(mock.unsigned(), 0);
}

#[test]
fn plain_http_beyond_loopback_is_refused() {
    let t = TempDir::new("gateway-insecure");
    let out = crate::util::run_expect(
        &[
            "--db",
            s(&t.db()),
            "gateway",
            "--listen",
            "0.0.0.0:0",
            "--region",
            "us-east-1",
        ],
        2,
    );
    assert!(
        stderr(&out).contains("--insecure-listen"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreachable_upstream_is_a_bedrock_shaped_503() {
    let t = TempDir::new("gateway-down");
    let key = create_key(&t.db(), "carol", &[]);
    let gw = Gateway::start(&t.db(), "http://127.0.0.1:9", &[]);
    let r = raw(
        &gw.url,
        serde_json::json!({"authorization": format!("Bearer {}", key["key"].as_str().unwrap())}),
    );
    assert_eq!(r["status"], 503, "{r}");
    assert_eq!(r["type"], "ServiceUnavailableException");
    let (code, _) = gw.stop();
    assert_eq!(code, 0);
}

const CUT_STREAM: &str = r#"
import json, os, boto3
from botocore.config import Config
c = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=os.environ["GW"],
                 config=Config(retries={"total_max_attempts": 1, "mode": "standard"}), verify=False)
events, error = [], None
try:
    r = c.invoke_model_with_response_stream(modelId="anthropic.claude-3-haiku-20240307-v1:0-cut", body="{}")
    for e in r["body"]:
        events.append(json.loads(e["chunk"]["bytes"])["type"])
except Exception as e:
    error = type(e).__name__
print(json.dumps({"events": events, "error": error}))
"#;

#[test]
fn a_stream_cut_upstream_records_the_usage_that_arrived() {
    let t = TempDir::new("gateway-cut");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "dave", &[]);
    let gw = Gateway::start(&t.db(), &mock.url, &[]);
    let got = python(
        CUT_STREAM,
        &[
            ("GW", &gw.url),
            ("AWS_BEARER_TOKEN_BEDROCK", key["key"].as_str().unwrap()),
        ],
    );
    // The client sees the stream break (whether its parser yields the first event before the
    // error is its own affair).
    assert!(got["error"].is_string(), "{got}");
    assert!(got["events"].as_array().unwrap().len() <= 1, "{got}");
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("end=\"upstream-error\"") || log.contains("end=upstream-error"),
        "{log}"
    );
    // message_start's input and first output token: what had arrived when the stream broke.
    assert_only_row_has_tokens(&t.db(), serde_json::json!([12, 1, 0, 0, 0]));
}

#[test]
fn tls_serves_the_same_api() {
    let t = TempDir::new("gateway-tls");
    let (cert, key_pem) = (t.path("cert.pem"), t.path("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            s(&key_pem),
            "-out",
            s(&cert),
        ])
        .output()
        .expect("openssl (apt-get install openssl) makes the test certificate");
    assert!(made.status.success(), "{}", stderr(&made));
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "erin", &[]);
    let gw = Gateway::start(
        &t.db(),
        &mock.url,
        &["--tls-cert", s(&cert), "--tls-key", s(&key_pem)],
    );
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    let got = python(
        BOTO3_ALL_FOUR
            .replace(
                "config=Config(",
                "verify=os.environ['CERT'], config=Config(",
            )
            .as_str(),
        &[
            ("GW", &gw.url),
            ("CERT", s(&cert)),
            ("AWS_BEARER_TOKEN_BEDROCK", key["key"].as_str().unwrap()),
        ],
    );
    assert_eq!(got["invoke"]["content"][0]["text"], "Hello from the mock.");
    assert_eq!(got["converse"]["inputTokens"], 12);
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("5 call(s) recorded"), "{log}");
}

#[test]
fn kill_9_loses_only_what_the_logs_bring_back() {
    let t = TempDir::new("gateway-kill");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "frank", &[]);
    let mut gw = Gateway::start(&t.db(), &mock.url, &[]);
    let script = r#"
import json, os, boto3
c = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=os.environ["GW"])
for i in range(20):
    c.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}])
print(json.dumps({"done": 20}))
"#;
    python(
        script,
        &[
            ("GW", &gw.url),
            ("AWS_BEARER_TOKEN_BEDROCK", key["key"].as_str().unwrap()),
        ],
    );
    // At once: the last batch (up to 200 ms of calls) is likely still in memory.
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let recorded = bedrock_usage::store::open(&t.db())
        .unwrap()
        .invocation_count()
        .unwrap();
    assert!(recorded <= 20, "{recorded}");
    run_ok(&["--db", s(&t.db()), "store", "check"]);
    // Bedrock's logs of the same calls bring back exactly what was lost.
    let out = run_ok(&["--db", s(&t.db()), "ingest", "--no-progress", s(&mock.log)]);
    let msg = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!msg.contains("conflict"), "{msg}");
    let all = bedrock_usage::store::open(&t.db())
        .unwrap()
        .invocation_count()
        .unwrap();
    assert_eq!(all, 20, "recorded by the gateway: {recorded}; {msg}");
    let report = crate::util::report_csv(&t.db(), None, &["--by", "developer"]);
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["developer"], "frank");
    assert_eq!(report[0]["calls"], "20");
}

#[test]
fn a_thousand_concurrent_streams_are_relayed_whole_and_recorded_once_each() {
    use http_body_util::{BodyExt, Full};
    let t = TempDir::new("gateway-1000");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "grace", &[]);
    let gw = Gateway::start(&t.db(), &mock.url, &[]);
    let bearer = format!("Bearer {}", key["key"].as_str().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let expected = mock_bedrock::invoke_frames(
        serde_json::json!({"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}),
        12,
        7,
        0,
        0,
    )
    .concat();
    let bodies: Vec<Vec<u8>> = rt.block_on(async {
        let client = http_client();
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let client = client.clone();
            let req = http::Request::post(format!(
                "{}/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream",
                gw.url
            ))
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap();
            tasks.push(tokio::spawn(async move {
                let resp = client.request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                assert_eq!(
                    resp.headers()["content-type"],
                    "application/vnd.amazon.eventstream"
                );
                resp.into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    });
    for b in &bodies {
        assert!(
            b == &expected,
            "a stream reached the client altered ({} bytes, want {})",
            b.len(),
            expected.len()
        );
    }
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{}", log.lines().last().unwrap_or(""));
    assert!(
        log.contains("1000 call(s) recorded"),
        "{}",
        log.lines().last().unwrap_or("")
    );
    let report = crate::util::report_csv(&t.db(), None, &["--by", "developer"]);
    assert_eq!(report[0]["calls"], "1000", "{report:?}");
    assert_eq!(mock.unsigned(), 0);
}

#[test]
fn a_client_that_goes_away_mid_stream_cancels_and_its_usage_so_far_is_recorded() {
    use http_body_util::{BodyExt, Full};
    let t = TempDir::new("gateway-gone");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "heidi", &[]);
    let gw = Gateway::start(&t.db(), &mock.url, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = http_client();
        let req = http::Request::post(format!(
            "{}/model/anthropic.claude-3-haiku-20240307-v1%3A0-slow/invoke-with-response-stream",
            gw.url
        ))
        .header(
            "authorization",
            format!("Bearer {}", key["key"].as_str().unwrap()),
        )
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
        let mut body = client.request(req).await.unwrap().into_body();
        // The first event (message_start), then hang up.
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
        drop(client);
    });
    // The runtime's connection tasks close the socket as it shuts down.
    drop(rt);
    std::thread::sleep(Duration::from_millis(1000));
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("client-gone"), "{log}");
    assert_only_row_has_tokens(&t.db(), serde_json::json!([12, 1, 0, 0, 0]));
}

const ANTHROPIC_SDK: &str = r#"
import json
from anthropic import AnthropicBedrock
# base URL and key from ANTHROPIC_BEDROCK_BASE_URL and AWS_BEARER_TOKEN_BEDROCK, as users set them
c = AnthropicBedrock(aws_region="us-east-1", max_retries=0)
m = c.messages.create(model="us.anthropic.claude-sonnet-4-5-20250929-v1:0-cache1h", max_tokens=10,
                      messages=[{"role": "user", "content": "hi"}])
out = {"create": m.model_dump(mode="json")}
with c.messages.stream(model="anthropic.claude-3-haiku-20240307-v1:0", max_tokens=10,
                       messages=[{"role": "user", "content": "hi"}]) as s:
    out["stream_text"] = "".join(s.text_stream)
    out["stream_usage"] = s.get_final_message().usage.model_dump(mode="json")
print(json.dumps(out))
"#;

#[test]
fn the_anthropic_sdks_bedrock_client_through_the_gateway() {
    let t = TempDir::new("gateway-anthropic-sdk");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "dana", &["--team", "data"]);
    let gw = Gateway::start(&t.db(), &mock.url, &[]);
    let got = python(
        ANTHROPIC_SDK,
        &[
            ("ANTHROPIC_BEDROCK_BASE_URL", &gw.url),
            ("AWS_BEARER_TOKEN_BEDROCK", key["key"].as_str().unwrap()),
        ],
    );
    // messages.create: the mock's message, usage and 5m/1h split as the mock sent them.
    let create = &got["create"];
    assert_eq!(
        create["content"][0]["text"], "Hello from the mock.",
        "{got}"
    );
    assert_eq!(create["stop_reason"], "end_turn");
    let u = &create["usage"];
    assert_eq!(
        (
            &u["input_tokens"],
            &u["output_tokens"],
            &u["cache_read_input_tokens"],
            &u["cache_creation_input_tokens"]
        ),
        (&21.into(), &34.into(), &400.into(), &300.into()),
        "{u}"
    );
    assert_eq!(u["cache_creation"]["ephemeral_1h_input_tokens"], 200);
    // messages.stream: the SDK decoded every event the gateway relayed.
    assert_eq!(got["stream_text"], "Hello from the mock.");
    assert_eq!(got["stream_usage"]["input_tokens"], 12);
    assert_eq!(got["stream_usage"]["output_tokens"], 7);
    assert_eq!(mock.unsigned(), 0);

    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    let mut rows = bedrock_usage::store::open(&t.db()).unwrap().dump().unwrap();
    rows.sort_by_key(|r| r["request_id"].as_str().unwrap_or("").to_string());
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0]["operation"], "InvokeModel");
    assert_eq!(
        rows[0]["tokens"],
        serde_json::json!([21, 34, 400, 100, 200])
    );
    assert_eq!(rows[1]["operation"], "InvokeModelWithResponseStream");
    assert_eq!(rows[1]["tokens"], serde_json::json!([12, 7, 0, 0, 0]));
    for r in &rows {
        assert_eq!(r["signal"], "developer=dana", "{r}");
    }
}

/// Claude Code's `claude` program: $CLAUDE_CODE_BIN, the copy .ci/run installs, or PATH.
fn claude_code() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CLAUDE_CODE_BIN") {
        return p.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let cached = Path::new(&home).join(".cache/bedrock-usage/npm/node_modules/.bin/claude");
    if cached.exists() {
        return cached;
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("claude"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "Claude Code is not installed: npm install --prefix ~/.cache/bedrock-usage/npm \
                 @anthropic-ai/claude-code (.ci/run does), or set CLAUDE_CODE_BIN"
            )
        })
}

/// `claude -p PROMPT --output-format json` through the gateway with the three environment
/// variables of docs/gateway.md, in a home of its own; its JSON result.
pub fn claude_p(t: &TempDir, gw: &str, key: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let home = t.path("claude-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new("timeout")
        .arg("180") // a guard against a hang, not a measure
        .arg(claude_code())
        .args(["-p", "say hi", "--output-format", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CLAUDE_CODE_USE_BEDROCK", "1")
        .env("ANTHROPIC_BEDROCK_BASE_URL", gw)
        .env("AWS_BEARER_TOKEN_BEDROCK", key)
        .env("AWS_REGION", "us-east-1")
        .env(
            "ANTHROPIC_MODEL",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0-cache1h",
        )
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .envs(extra.iter().copied())
        .current_dir(t.path(""))
        .stdin(Stdio::null())
        .output()
        .expect("run claude");
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "claude -p did not print its JSON result ({e}): status {:?}\n{}\n{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        )
    })
}

#[test]
fn claude_code_through_the_gateway_gets_the_mocks_answer_and_is_recorded_once() {
    let t = TempDir::new("gateway-claude-code");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "carol", &["--team", "platform"]);
    let gw = Gateway::start(&t.db(), &mock.url, &[]);

    let got = claude_p(&t, &gw.url, key["key"].as_str().unwrap(), &[]);
    assert_eq!(got["is_error"], false, "{got}");
    assert_eq!(got["result"], "Hello from the mock.", "{got}");
    // Claude Code read the stream's usage as the mock sent it.
    let u = &got["usage"];
    assert_eq!(u["input_tokens"], 21, "{got}");
    assert_eq!(u["output_tokens"], 34);
    assert_eq!(u["cache_read_input_tokens"], 400);
    assert_eq!(u["cache_creation_input_tokens"], 300);
    assert_eq!(u["cache_creation"]["ephemeral_1h_input_tokens"], 200);
    assert_eq!(mock.unsigned(), 0);

    // A revoked key: Claude Code shows the gateway's message. (It treats any 403 from Bedrock
    // as expired AWS credentials and retries it, 10 times by default; docs/gateway.md says so.)
    let id = key["id"].as_str().unwrap();
    run_ok(&["--db", s(&t.db()), "keys", "revoke", id]);
    std::thread::sleep(Duration::from_millis(1500)); // the gateway re-reads its keys every second
    let refused = claude_p(
        &t,
        &gw.url,
        key["key"].as_str().unwrap(),
        &[("CLAUDE_CODE_MAX_RETRIES", "0")],
    );
    assert_eq!(refused["is_error"], true, "{refused}");
    assert_eq!(refused["api_error_status"], 403, "{refused}");
    let msg = refused["result"].as_str().unwrap();
    assert!(msg.contains("revoked"), "{msg}");
    assert!(msg.contains("AWS_BEARER_TOKEN_BEDROCK"), "{msg}");

    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    // Every call the mock served (Claude Code's main call and the ones it makes at start) is in
    // the store once, with the mock's counts, attributed to carol.
    let served = std::fs::read_to_string(&mock.log).unwrap().lines().count();
    assert!(served >= 1);
    let rows = bedrock_usage::store::open(&t.db()).unwrap().dump().unwrap();
    assert_eq!(rows.len(), served, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["signal"], "developer=carol", "{r}");
    }
    let main_call = rows
        .iter()
        .find(|r| r["operation"] == "InvokeModelWithResponseStream")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(
        main_call["tokens"],
        serde_json::json!([21, 34, 400, 100, 200]),
        "{main_call}"
    );
    let out = run_ok(&["--db", s(&t.db()), "ingest", "--no-progress", s(&mock.log)]);
    let msg = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        msg.contains(&format!(
            "nothing new: {served} records read were already stored"
        )),
        "{msg}"
    );
}

const INVOKE_AND_WHO: &str = r#"
import json, os, boto3
from botocore.config import Config
out = {"keys": []}
for key in json.loads(os.environ["KEYS"]):
    os.environ["AWS_BEARER_TOKEN_BEDROCK"] = key
    c = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=os.environ["GW"],
                     config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    c.invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=b"{}")
print(json.dumps(out))
"#;

const WHO_SIGNED: &str = r#"
import json, os, boto3
# moto answers GetCallerIdentity by the access key id alone: the role session it was issued for.
out = []
for key_id in json.loads(os.environ["IDS"]):
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=os.environ["STS"],
                       aws_access_key_id=key_id, aws_secret_access_key="x")
    out.append(sts.get_caller_identity()["Arn"])
print(json.dumps(out))
"#;

#[test]
fn assume_role_arn_signs_each_developers_calls_with_a_session_named_after_them() {
    let t = TempDir::new("gateway-assume-role");
    let sts = crate::aws_emulator::endpoint();
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let alice = create_key(&t.db(), "alice", &[]);
    let bob = create_key(&t.db(), "bob", &[]);
    let role = "arn:aws:iam::123456789012:role/bedrock-developer";
    let gw = Gateway::start_with_env(
        &t.db(),
        &mock.url,
        &["--assume-role-arn", role],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDGATEWAYBASE"),
            ("AWS_SECRET_ACCESS_KEY", "base-secret"),
            ("AWS_ENDPOINT_URL_STS", sts),
        ],
    );
    let keys = serde_json::json!([alice["key"], bob["key"], alice["key"]]);
    python(
        INVOKE_AND_WHO,
        &[("GW", &gw.url), ("KEYS", &keys.to_string())],
    );
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");

    // Three calls, signed with two role sessions (alice's is cached), never the base key.
    let ids = mock.access_keys();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], ids[2], "one cached session per developer");
    assert_ne!(ids[0], ids[1]);
    assert!(!ids.contains(&"AKIDGATEWAYBASE".to_string()), "{ids:?}");
    let who = python(
        WHO_SIGNED,
        &[
            ("STS", sts),
            ("IDS", &serde_json::json!([ids[0], ids[1]]).to_string()),
        ],
    );
    assert_eq!(
        who,
        serde_json::json!([
            "arn:aws:sts::123456789012:assumed-role/bedrock-developer/alice",
            "arn:aws:sts::123456789012:assumed-role/bedrock-developer/bob"
        ])
    );
    // The store names the same principal for each call.
    let rows = bedrock_usage::store::open(&t.db()).unwrap().dump().unwrap();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let mut principals: Vec<&str> = rows
        .iter()
        .map(|r| r["principal"].as_str().unwrap_or(""))
        .collect();
    principals.sort_unstable();
    assert_eq!(
        principals,
        [
            "arn:aws:sts::123456789012:assumed-role/bedrock-developer/alice",
            "arn:aws:sts::123456789012:assumed-role/bedrock-developer/alice",
            "arn:aws:sts::123456789012:assumed-role/bedrock-developer/bob"
        ],
        "{rows:#?}"
    );
}

const FAIL_AND_HANG: &str = r#"
import json, os, boto3
from botocore.config import Config
c = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=os.environ["GW"],
                 config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60))
out = {}
for name, model in [("fail", "anthropic.claude-3-haiku-20240307-v1:0-fail"),
                    ("hang", "anthropic.claude-3-haiku-20240307-v1:0-hang")]:
    try:
        c.invoke_model(modelId=model, body=b"{}")
        out[name] = "no error"
    except c.exceptions.ClientError as e:
        out[name] = {"code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                     "message": e.response["Error"]["Message"]}
print(json.dumps(out))
"#;

#[test]
fn upstream_errors_pass_through_and_a_silent_upstream_is_a_504() {
    let t = TempDir::new("gateway-fail-hang");
    let mock = mock_bedrock::start(t.path("mock-log.jsonl"));
    let key = create_key(&t.db(), "erin", &[]);
    let cfg = t.path("config.toml");
    std::fs::write(&cfg, "[gateway]\nupstream_timeout = \"1s\"\n").unwrap();
    let gw = Gateway::start(&t.db(), &mock.url, &["--config", s(&cfg)]);
    let got = python(
        FAIL_AND_HANG,
        &[
            ("GW", &gw.url),
            ("AWS_BEARER_TOKEN_BEDROCK", key["key"].as_str().unwrap()),
        ],
    );
    // Bedrock's own 500 reaches the client as Bedrock sent it.
    assert_eq!(got["fail"]["status"], 500, "{got}");
    assert_eq!(got["fail"]["code"], "InternalServerException");
    assert_eq!(got["fail"]["message"], "The model failed.");
    // No response head within upstream_timeout: a Bedrock-shaped 504.
    assert_eq!(got["hang"]["status"], 504, "{got}");
    assert_eq!(got["hang"]["code"], "ServiceUnavailableException");
    assert!(
        got["hang"]["message"]
            .as_str()
            .unwrap()
            .contains("within 1s"),
        "{got}"
    );
    let (code, log) = gw.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("Bedrock did not answer in time"), "{log}");
    // The failed call is recorded with its error; the one that never answered has no request
    // id, so it is left to the logs.
    let rows = bedrock_usage::store::open(&t.db()).unwrap().dump().unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["error_code"], "InternalServerException");
}
