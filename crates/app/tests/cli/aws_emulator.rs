//! The AWS side of the tests: a moto server (a local AWS emulator), a proxy that injects faults,
//! and helpers that arrange the emulated account through the AWS SDK.
//!
//! The server: `BEDROCK_USAGE_TEST_AWS_ENDPOINT` if set, else one `moto_server` started on a free
//! port for this test process (and stopped when it ends). Without either, the tests fail and say
//! how to get it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bedrock_usage::sources::demo::{generate, render_jsonl, DemoOptions, LedgerEntry};
use bedrock_usage_core::time::{civil_from_days, MS_PER_DAY};

use crate::util::{bin, stderr, stdout};

pub const ACCOUNT: &str = "123456789012";

const HOW: &str = "the AWS tests need moto's server, a local AWS emulator: `pip install 'moto[server]'` \
(bash .ci/run does this), or run one yourself and set BEDROCK_USAGE_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT";

/// The emulator's endpoint, started on first use.
pub fn endpoint() -> &'static str {
    static MOTO: OnceLock<String> = OnceLock::new();
    MOTO.get_or_init(|| {
        if let Ok(e) = std::env::var("BEDROCK_USAGE_TEST_AWS_ENDPOINT") {
            wait_for(&e);
            return e;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A watchdog shell stops the server when this test process is gone.
        let script = format!(
            "command -v moto_server >/dev/null || exit 127; moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
            pid = std::process::id()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sh for moto_server ({e}); {HOW}"));
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(Some(st)) = child.try_wait() {
            panic!("moto_server is not installed ({st}); {HOW}");
        }
        let url = format!("http://127.0.0.1:{port}");
        wait_for(&url);
        url
    })
}

fn wait_for(url: &str) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            panic!("no AWS emulator answers at {url}; {HOW}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets the environment a user would have: credentials, region and the endpoint (no profile
/// files, no instance metadata).
pub fn aws_env(c: &mut Command, region: &str, endpoint: &str) {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", region)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

/// Runs the binary against the emulator (or `endpoint`).
pub fn run_aws(args: &[&str], region: &str, endpoint: &str) -> Output {
    let mut c = bin();
    aws_env(&mut c, region, endpoint);
    c.args(args).stdin(Stdio::null()).output().expect("run")
}

pub fn run_aws_ok(args: &[&str], region: &str) -> Output {
    let out = run_aws(args, region, endpoint());
    assert!(
        out.status.success(),
        "bedrock-usage {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    out
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn sdk(region: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests");
    rt().block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(endpoint())
            .credentials_provider(creds)
            .load(),
    )
}

pub fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    )
}

/// A unique name for this test's resources (the emulator is shared by every test).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `n` records over the three days before today (CloudWatch takes events up to 14 days old).
pub fn corpus(n: u64, seed: u64) -> (Vec<LedgerEntry>, Vec<Vec<u8>>) {
    let today = bedrock_usage::context::now_ms() / MS_PER_DAY;
    let opts = DemoOptions {
        seed,
        records: n,
        first_day: today - 3,
        days: 3,
        compress: bedrock_usage::cli::Compression::None,
        body_min: 0,
        body_max: 0,
    };
    let ledger = generate(&opts);
    let jsonl = render_jsonl(&opts, &ledger);
    let lines: Vec<Vec<u8>> = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(lines.len(), ledger.len());
    (ledger, lines)
}

/// Creates `group` and one stream and puts the records as events, in time order.
pub fn put_events(
    conf: &aws_config::SdkConfig,
    group: &str,
    ledger: &[LedgerEntry],
    lines: &[Vec<u8>],
) {
    put_events_at(conf, group, ledger, lines, None)
}

/// [`put_events`], with every event stamped `at` (epoch ms) if given: calls made just now, as
/// Bedrock delivers them.
pub fn put_events_at(
    conf: &aws_config::SdkConfig,
    group: &str,
    ledger: &[LedgerEntry],
    lines: &[Vec<u8>],
    at: Option<i64>,
) {
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;
    let client = aws_sdk_cloudwatchlogs::Client::new(conf);
    let stream = "aws/bedrock/modelinvocations";
    rt().block_on(async {
        let _ = client.create_log_group().log_group_name(group).send().await;
        let _ = client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await;
        let mut order: Vec<usize> = (0..ledger.len()).collect();
        order.sort_by_key(|&i| ledger[i].timestamp_ms);
        for chunk in order.chunks(500) {
            let events: Vec<InputLogEvent> = chunk
                .iter()
                .map(|&i| {
                    InputLogEvent::builder()
                        .timestamp(at.unwrap_or(ledger[i].timestamp_ms))
                        .message(String::from_utf8_lossy(&lines[i]))
                        .build()
                        .expect("event")
                })
                .collect();
            let out = client
                .put_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send()
                .await
                .expect("put_log_events");
            assert!(
                out.rejected_log_events_info().is_none(),
                "events rejected: {:?}",
                out.rejected_log_events_info()
            );
        }
    });
}

/// Creates `bucket` and writes the records as Bedrock does: gzip objects of `per_object` lines
/// under hour partitions, the permission-check object and a large-body offload under `data/`.
pub fn put_objects(
    conf: &aws_config::SdkConfig,
    bucket: &str,
    prefix: &str,
    region: &str,
    ledger: &[LedgerEntry],
    lines: &[Vec<u8>],
    per_object: usize,
) -> usize {
    let client = s3_client(conf);
    let base = format!("{prefix}AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/{region}/");
    rt().block_on(async {
        let mut req = client.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        if let Err(e) = req.send().await {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            // A bucket `aws setup` made already is fine.
            assert_eq!(e.code(), Some("BucketAlreadyOwnedByYou"), "create bucket: {e:?}");
        }
        let put = |key: String, body: Vec<u8>| {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
        };
        put(
            format!("{prefix}AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/amazon-bedrock-logs-permission-check"),
            b"permission check".to_vec(),
        )
        .await
        .expect("put");
        let mut objects = 0;
        for (n, chunk) in (0..ledger.len())
            .collect::<Vec<_>>()
            .chunks(per_object)
            .enumerate()
        {
            let ts = ledger[chunk[0]].timestamp_ms;
            let (y, m, d) = civil_from_days(ts / MS_PER_DAY);
            let h = ts % MS_PER_DAY / 3_600_000;
            let mut body = Vec::new();
            for &i in chunk {
                body.extend_from_slice(&lines[i]);
                body.push(b'\n');
            }
            let key = format!("{base}{y:04}/{m:02}/{d:02}/{h:02}/{ts}_{n:05}.json.gz");
            put(key, crate::util::gzip(&body)).await.expect("put");
            objects += 1;
            if n == 0 {
                put(
                    format!("{base}{y:04}/{m:02}/{d:02}/{h:02}/data/offload-{n}.json"),
                    b"{not a record: a large body offloaded by Bedrock".to_vec(),
                )
                .await
                .expect("put");
            }
        }
        objects
    })
}

/// A proxy in front of the emulator that answers a share of requests with a throttling error,
/// a 500, or a dropped connection, and forwards the rest.
pub struct FaultProxy {
    pub url: String,
    pub faults: Arc<AtomicU64>,
    pub forwarded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

impl FaultProxy {
    /// Faults on `per_mille` of the requests.
    pub fn start(upstream: &str, per_mille: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let faults = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, fw, st) = (faults.clone(), forwarded.clone(), stop.clone());
        std::thread::spawn(move || {
            let seq = AtomicU64::new(1);
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let n = seq.fetch_add(1, Ordering::SeqCst);
                let (up, f, fw) = (upstream.clone(), f.clone(), fw.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, per_mille, n, &f, &fw);
                });
            }
        });
        FaultProxy {
            url,
            faults,
            forwarded,
            stop,
        }
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// One request per connection (the answer says `Connection: close`).
fn serve(
    conn: TcpStream,
    upstream: &str,
    per_mille: u64,
    n: u64,
    faults: &AtomicU64,
    forwarded: &AtomicU64,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut target = false;
    let mut form = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("x-amz-target:") {
            target = true;
        }
        if lower.starts_with("content-type:") && lower.contains("x-www-form-urlencoded") {
            form = true;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let len = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            body.extend_from_slice(size.as_bytes());
            let mut chunk = vec![0; len + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if len == 0 {
                break;
            }
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body)?;
    }
    let mut client = conn;
    let r = mix(n) % 1000;
    if r < per_mille {
        faults.fetch_add(1, Ordering::SeqCst);
        match r % 3 {
            0 => {
                // Dropped: no answer at all.
                let _ = client.shutdown(std::net::Shutdown::Both);
            }
            1 => {
                client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            }
            _ => {
                let (status, ctype, body): (&str, &str, String) = if target {
                    (
                        "400 Bad Request",
                        "application/x-amz-json-1.1",
                        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into(),
                    )
                } else if form {
                    ("400 Bad Request", "text/xml", "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>".into())
                } else {
                    ("503 Slow Down", "application/xml", "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".into())
                };
                client.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nx-amzn-ErrorType: ThrottlingException\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )?;
            }
        }
        return Ok(());
    }
    forwarded.fetch_add(1, Ordering::SeqCst);
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    // The answer, with `Connection: close` (this proxy serves one request per connection).
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut out = String::new();
    for l in head.split("\r\n") {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    client.write_all(out.as_bytes())?;
    client.write_all(&answer[(split + 4).min(answer.len())..])?;
    Ok(())
}

/// Removes what `aws setup` makes as singletons of a region (logging configuration, dashboard,
/// alarms), so a test starts clean also on a long-running emulator
/// (`BEDROCK_USAGE_TEST_AWS_ENDPOINT`). Each test that calls it has a region of its own.
pub fn reset_region(region: &str) {
    let conf = sdk(region);
    rt().block_on(async {
        let _ = aws_sdk_bedrock::Client::new(&conf)
            .delete_model_invocation_logging_configuration()
            .send()
            .await;
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        let _ = cw
            .delete_dashboards()
            .dashboard_names("BedrockUsage")
            .send()
            .await;
        if let Ok(out) = cw
            .describe_alarms()
            .alarm_name_prefix("BedrockUsage-")
            .send()
            .await
        {
            let names: Vec<String> = out
                .metric_alarms()
                .iter()
                .filter_map(|a| a.alarm_name().map(str::to_string))
                .collect();
            if !names.is_empty() {
                let _ = cw.delete_alarms().set_alarm_names(Some(names)).send().await;
            }
        }
    });
}

/// Removes the budget `aws setup --budget` makes: one for the whole account, so only one test
/// may make it.
pub fn reset_budget() {
    let conf = sdk("us-east-1");
    rt().block_on(async {
        let _ = aws_sdk_budgets::Client::new(&conf)
            .delete_budget()
            .account_id(ACCOUNT)
            .budget_name("bedrock-usage-monthly")
            .send()
            .await;
    });
}
