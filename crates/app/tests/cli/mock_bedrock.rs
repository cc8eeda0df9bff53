//! A mock Bedrock runtime for the gateway's tests: InvokeModel and
//! InvokeModelWithResponseStream (real event-stream framing, base64 `chunk` events), Converse
//! and ConverseStream, with behaviour chosen by the model id (`throttle` -> 429, `fail` -> 500,
//! `cache1h` -> cache writes split 5m/1h, `cut` -> a stream cut after its first event, `slow` -> 300 ms between events, `hang` -> no
//! answer for 30 s). It recomputes
//! every request's SigV4 signature with the test credentials over the body it received, and
//! writes, for every call it served, the invocation-log record Bedrock would write (same
//! requestId, the request metadata it received).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bedrock_usage_core::eventstream::Message;
use bedrock_usage_core::meter::base64_encode;
use serde_json::json;

pub const ACCESS_KEY: &str = "AKIDGATEWAYTEST";
pub const SECRET_KEY: &str = "gateway-test-secret";

struct Mock {
    /// The mock's own signer, to recompute each request's signature with the test secret.
    signer: bedrock_usage_aws::signer::Signer,
    url: Mutex<String>,
    log: Mutex<std::fs::File>,
    next: AtomicU64,
    unsigned: AtomicU64,
    /// The access key id each request was signed with, in order.
    access_keys: Mutex<Vec<String>>,
}

/// A running mock: its URL, and the log file it writes.
pub struct Running {
    pub url: String,
    pub log: PathBuf,
    state: Arc<Mock>,
    _rt: tokio::runtime::Runtime,
}

impl Running {
    /// Requests that were not signed as the gateway must sign them.
    pub fn unsigned(&self) -> u64 {
        self.state.unsigned.load(Ordering::SeqCst)
    }

    /// The access key id each request was signed with, in the order they arrived.
    pub fn access_keys(&self) -> Vec<String> {
        self.state.access_keys.lock().unwrap().clone()
    }
}

pub fn start(log: PathBuf) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .load(),
    );
    let state = Arc::new(Mock {
        signer: bedrock_usage_aws::signer::Signer::new(&sdk, "us-east-1", None).unwrap(),
        url: Mutex::new(String::new()),
        log: Mutex::new(std::fs::File::create(&log).unwrap()),
        next: AtomicU64::new(1),
        unsigned: AtomicU64::new(0),
        access_keys: Mutex::new(Vec::new()),
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    *state.url.lock().unwrap() = url.clone();
    let app = Router::new()
        .route("/model/{model}/{action}", post(serve))
        .with_state(state.clone());
    // No Nagle: a stream's small frames leave as they are written, as Bedrock's do.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    Running {
        url,
        log,
        state,
        _rt: rt,
    }
}

/// The usage the mock answers for a model: (input, output, cache read, cache write, 1h part).
fn usage_for(model: &str) -> (u64, u64, u64, u64, u64) {
    if model.contains("cache1h") {
        (21, 34, 400, 300, 200)
    } else {
        (12, 7, 0, 0, 0)
    }
}

fn credentials() -> aws_sdk_s3::config::Credentials {
    aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "mock")
}

/// Recomputes the request's SigV4 signature with the test secret, over the headers it says it
/// signed and the body that arrived; counts the requests whose signature does not match.
fn check_signature(m: &Mock, uri: &axum::http::Uri, headers: &HeaderMap, body: &[u8]) {
    let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let auth = text("authorization");
    let key_id = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("");
    m.access_keys.lock().unwrap().push(key_id.to_string());
    let ok = (|| {
        let signed = auth.split("SignedHeaders=").nth(1)?.split(',').next()?;
        let d = text("x-amz-date");
        let iso = format!(
            "{}-{}-{}T{}:{}:{}Z",
            d.get(0..4)?,
            d.get(4..6)?,
            d.get(6..8)?,
            d.get(9..11)?,
            d.get(11..13)?,
            d.get(13..15)?
        );
        let ms = bedrock_usage_core::time::parse_timestamp_ms(&iso)?;
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
        let pairs: Vec<(&str, &str)> = signed
            .split(';')
            .filter(|n| {
                *n != "x-amz-date" && *n != "x-amz-content-sha256" && *n != "x-amz-security-token"
            })
            .map(|n| (n, text(n)))
            .collect();
        let full = format!(
            "{}{}",
            m.url.lock().unwrap(),
            uri.path_and_query()?.as_str()
        );
        let add = m
            .signer
            .sign(&credentials(), "POST", &full, &pairs, body, at)
            .ok()?;
        let want = add.iter().find(|(n, _)| *n == "authorization")?.1.clone();
        Some(want == auth)
    })()
    .unwrap_or(false);
    if !ok {
        m.unsigned.fetch_add(1, Ordering::SeqCst);
    }
}

async fn serve(
    State(m): State<Arc<Mock>>,
    Path((model, action)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    check_signature(&m, &uri, &headers, &body);
    if model.contains("hang") {
        // No answer for a long while: the gateway's upstream timeout is what ends the call.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    let n = m.next.fetch_add(1, Ordering::SeqCst);
    let request_id = format!("mock-{n:06}-0000-4000-8000-000000000000");
    let operation = match action.as_str() {
        "invoke" => "InvokeModel",
        "invoke-with-response-stream" => "InvokeModelWithResponseStream",
        "converse" => "Converse",
        "converse-stream" => "ConverseStream",
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let metadata: serde_json::Value = if operation.starts_with("Converse") {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|b| b.get("requestMetadata").cloned())
            .unwrap_or(json!({}))
    } else {
        headers
            .get("x-amzn-bedrock-request-metadata")
            .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
            .unwrap_or(json!({}))
    };
    let (input, output, read, write, h1) = usage_for(&model);
    let error = if model.contains("throttle") {
        Some((
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ))
    } else if model.contains("fail") {
        Some((500, "InternalServerException", "The model failed."))
    } else {
        None
    };
    {
        let mut rec = json!({
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
            // Bedrock logs a call at its own time: the gateway's record of it is seconds away.
            "timestamp": bedrock_usage_core::time::format_utc(bedrock_usage::context::now_ms()), "accountId": "123456789012",
            "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/gateway/bedrock-usage"},
            "region": "us-east-1", "requestId": request_id, "operation": operation,
            "modelId": model, "requestMetadata": metadata,
            "input": {"inputContentType": "application/json", "inputTokenCount": if error.is_some() {0} else {input},
                      "cacheReadInputTokenCount": if error.is_some() {0} else {read},
                      "cacheWriteInputTokenCount": if error.is_some() {0} else {write}},
            "output": {"outputContentType": "application/json", "outputTokenCount": if error.is_some() {0} else {output},
                       "outputBodyJson": {"usage": {"cache_creation": {"ephemeral_5m_input_tokens": write - h1, "ephemeral_1h_input_tokens": h1}}}},
        });
        if let Some((_, code, _)) = error {
            rec["errorCode"] = json!(code);
        }
        let mut f = m.log.lock().unwrap();
        writeln!(f, "{rec}").unwrap();
    }
    if let Some((status, code, message)) = error {
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header(
                "x-amzn-errortype",
                format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            )
            .header("x-amzn-requestid", &request_id)
            .body(Body::from(json!({"message": message}).to_string()))
            .unwrap();
    }
    let usage = json!({
        "input_tokens": input, "output_tokens": output,
        "cache_read_input_tokens": read, "cache_creation_input_tokens": write,
        "cache_creation": {"ephemeral_5m_input_tokens": write - h1, "ephemeral_1h_input_tokens": h1},
    });
    let builder = Response::builder().header("x-amzn-requestid", &request_id);
    match operation {
        "InvokeModel" => builder
            .header("content-type", "application/json")
            .header("x-amzn-bedrock-input-token-count", input.to_string())
            .header("x-amzn-bedrock-output-token-count", output.to_string())
            .header("x-amzn-bedrock-cache-read-input-token-count", read.to_string())
            .header("x-amzn-bedrock-cache-write-input-token-count", write.to_string())
            .body(Body::from(
                json!({"id": "msg_1", "type": "message", "role": "assistant",
                       "content": [{"type": "text", "text": "Hello from the mock."}],
                       "stop_reason": "end_turn", "usage": usage}).to_string(),
            ))
            .unwrap(),
        "Converse" => builder
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hello from the mock."}]}},
                       "stopReason": "end_turn",
                       "usage": {"inputTokens": input, "outputTokens": output, "cacheReadInputTokens": read,
                                 "cacheWriteInputTokens": write, "totalTokens": input + output + read + write},
                       "metrics": {"latencyMs": 5}}).to_string(),
            ))
            .unwrap(),
        _ => {
            let frames = if operation == "ConverseStream" {
                converse_frames(input, output, read, write)
            } else {
                invoke_frames(usage.clone(), input, output, read, write)
            };
            let cut = model.contains("cut");
            let stream = async_stream(frames, cut, model.contains("slow"));
            builder
                .header("content-type", "application/vnd.amazon.eventstream")
                .header("x-amzn-bedrock-content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

fn chunk(ev: serde_json::Value) -> Vec<u8> {
    let b = base64_encode(ev.to_string().as_bytes());
    Message::event("chunk", json!({ "bytes": b }).to_string().as_bytes()).encode()
}

pub fn invoke_frames(
    usage: serde_json::Value,
    input: u64,
    output: u64,
    read: u64,
    write: u64,
) -> Vec<Vec<u8>> {
    let mut start_usage = usage;
    start_usage["output_tokens"] = json!(1);
    vec![
        chunk(
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude", "usage": start_usage}}),
        ),
        chunk(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        chunk(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello from the mock."}}),
        ),
        chunk(json!({"type": "content_block_stop", "index": 0})),
        chunk(
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}}),
        ),
        chunk(
            json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": input, "outputTokenCount": output, "invocationLatency": 9, "firstByteLatency": 3,
            "cacheReadInputTokenCount": read, "cacheWriteInputTokenCount": write}}),
        ),
    ]
}

fn converse_frames(input: u64, output: u64, read: u64, write: u64) -> Vec<Vec<u8>> {
    vec![
        Message::event("messageStart", br#"{"role":"assistant"}"#).encode(),
        Message::event("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"Hello from the mock."}}"#).encode(),
        Message::event("contentBlockStop", br#"{"contentBlockIndex":0}"#).encode(),
        Message::event("messageStop", br#"{"stopReason":"end_turn"}"#).encode(),
        Message::event(
            "metadata",
            json!({"usage": {"inputTokens": input, "outputTokens": output, "cacheReadInputTokens": read,
                             "cacheWriteInputTokens": write, "totalTokens": input + output + read + write},
                   "metrics": {"latencyMs": 5}}).to_string().as_bytes(),
        )
        .encode(),
    ]
}

/// The frames one by one, a little apart (as a model streams); `cut` ends the body with an error
/// after the first frame.
fn async_stream(
    frames: Vec<Vec<u8>>,
    cut: bool,
    slow: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(frames.into_iter().enumerate(), move |mut it| async move {
        let (i, f) = it.next()?;
        // A little apart, so that what was sent before a cut has left the mock.
        let gap = if slow {
            300
        } else if cut {
            50
        } else {
            2
        };
        tokio::time::sleep(std::time::Duration::from_millis(gap)).await;
        if cut && i == 1 {
            return Some((Err(std::io::Error::other("cut")), it));
        }
        Some((Ok(Bytes::from(f)), it))
    })
}
