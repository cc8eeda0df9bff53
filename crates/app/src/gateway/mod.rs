//! `bedrock-usage gateway`: a Bedrock runtime endpoint in front of Bedrock that knows every
//! developer by their key, tells Bedrock who called, and records every call in the store the
//! moment it ends, as the same fact the log ingest stores (so the call counts once when Bedrock's
//! own log of it is synced later: both carry the upstream `x-amzn-RequestId`).
//!
//! Rules kept here (docs/gateway.md says them to users):
//! - Prompts and responses are never stored or logged. The response reaches the client as it
//!   arrives, byte for byte; only a copy goes to the meter (`body`), which keeps token counts.
//! - A key never appears in a log or an error; only its id does.
//! - The authenticated developer wins over request metadata a client sends.
//!
//! Layout: [`router`] (shared by `main` and the tests) dispatches to [`invoke`] for
//! `/model/{id}/{operation}` and [`forward`] for anything else; `keys` checks keys, `upstream`
//! signs and sends, `body` meters the response, `recorder` writes batches, `server` listens
//! (plain or TLS) and drains on a stop.

pub mod body;
pub mod keys;
pub mod limits;
pub mod recorder;
pub mod redis;
pub mod server;
pub mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;

use bedrock_usage_core::meter::{Meter, Metered, Operation};
use bedrock_usage_core::{Invocation, Tokens};

use body::{End, MeteredBody};
use keys::{Caller, KeyRing};
use recorder::Recorder;
use upstream::{Upstream, UpstreamError};

/// Everything a request needs, shared by all of them.
pub struct Gateway {
    pub keys: Arc<KeyRing>,
    pub upstream: Upstream,
    pub recorder: Recorder,
    /// The ARN Bedrock sees as the caller (the gateway's own, or the developer's role
    /// session), recorded as each call's principal.
    pub principal: Principal,
    pub account_id: String,
    pub max_request_bytes: usize,
    /// Calls whose responses are still streaming.
    pub open: AtomicU64,
    /// `[[limits]]` and hard budgets, decided at admission.
    pub limits: Arc<limits::Limiter>,
}

/// Who Bedrock sees.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Every call is the gateway's own identity.
    Fixed(String),
    /// `assume_role_arn`: `arn:aws:sts::ACCOUNT:assumed-role/ROLE/` + the developer's session.
    PerDeveloper(String),
}

impl Principal {
    fn for_developer(&self, developer: &str) -> String {
        match self {
            Principal::Fixed(p) => p.clone(),
            Principal::PerDeveloper(prefix) => format!(
                "{prefix}{}",
                bedrock_usage_core::attribution::sts_name(developer)
                    .unwrap_or_else(|| "developer".into())
            ),
        }
    }
}

/// The gateway's routes.
pub fn router(state: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/me", get(me))
        .route("/model/{model}/{action}", any(invoke))
        .fallback(forward)
        .with_state(state)
}

async fn healthz(State(g): State<Arc<Gateway>>) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        format!(
            "{{\"status\":\"ok\",\"keys\":{},\"open_streams\":{}}}",
            g.keys.count(),
            g.open.load(Ordering::Relaxed)
        ),
    )
        .into_response()
}

/// `GET /me`: the caller's spend today, this week and this month (in `[alerts] timezone`), and
/// every limit and hard budget that covers them with what is left.
async fn me(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let caller = match authenticate(&g, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let limiter = g.limits.clone();
    let dev = caller.clone();
    let spend = tokio::task::spawn_blocking(move || limiter.spend_of(&dev)).await;
    let spend = match spend {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "GET /me: cannot read the store");
            return bedrock_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "the gateway cannot read its store",
            );
        }
        Err(_) => {
            return bedrock_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "the gateway could not answer",
            )
        }
    };
    let body = serde_json::json!({
        "developer": caller.developer,
        "team": caller.team,
        "key": caller.key_id,
        "spend": spend,
        "limits": g.limits.standing(&caller).await,
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A Bedrock-shaped error: the `x-amzn-ErrorType` header the SDKs read, and `{"message": ...}`.
pub fn bedrock_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut r = (
        status,
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(error_type) {
        h.insert("x-amzn-errortype", v);
    }
    r
}

// The refusal is the response itself, built once per refused request.
#[allow(clippy::result_large_err)]
fn authenticate(g: &Gateway, headers: &HeaderMap) -> Result<Caller, Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    g.keys
        .check(auth, crate::context::now_ms())
        .map_err(|refusal| {
            tracing::info!(
                reason = refusal.reason(),
                status = 403,
                "Refused a request: key"
            );
            bedrock_error(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                refusal.message(),
            )
        })
}

async fn read_body(g: &Gateway, body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, g.max_request_bytes)
        .await
        .map_err(|e| {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"));
            if too_big {
                bedrock_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "ValidationException",
                    &format!(
                        "The request body is larger than the gateway's limit of {} MiB (gateway.max_request_mb).",
                        g.max_request_bytes >> 20
                    ),
                )
            } else {
                bedrock_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    &format!("Could not read the request body: {e}"),
                )
            }
        })
}

fn upstream_failure(g: &Gateway, e: UpstreamError) -> Response {
    match e {
        UpstreamError::Connect(why) => {
            tracing::warn!(upstream = g.upstream.runtime_url(), error = %why, "Cannot reach Bedrock");
            bedrock_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "The bedrock-usage gateway cannot reach Bedrock; try again shortly.",
            )
        }
        UpstreamError::Timeout(d) => {
            tracing::warn!(
                upstream = g.upstream.runtime_url(),
                timeout_s = d.as_secs(),
                "Bedrock did not answer in time"
            );
            bedrock_error(
                StatusCode::GATEWAY_TIMEOUT,
                "ServiceUnavailableException",
                &format!(
                    "Bedrock did not answer the bedrock-usage gateway within {}s.",
                    d.as_secs()
                ),
            )
        }
        UpstreamError::Other(why) => {
            tracing::warn!(upstream = g.upstream.runtime_url(), error = %why, "The connection to Bedrock failed");
            bedrock_error(
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailableException",
                "The connection from the bedrock-usage gateway to Bedrock failed; try again.",
            )
        }
        UpstreamError::Signing(why) => {
            tracing::error!(error = %why, "Cannot sign for Bedrock: the gateway's own AWS credentials failed");
            bedrock_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "The bedrock-usage gateway's own AWS credentials failed; its operator must act.",
            )
        }
    }
}

/// The request metadata Bedrock is told: the client's, with the authenticated developer (and
/// team) over any the client set.
fn merged_metadata(
    client: Option<&serde_json::Map<String, serde_json::Value>>,
    caller: &Caller,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = client.cloned().unwrap_or_default();
    m.insert("developer".into(), caller.developer.clone().into());
    match &caller.team {
        Some(t) => {
            m.insert("team".into(), t.clone().into());
        }
        None => {
            m.remove("team");
        }
    }
    m
}

/// `/model/{id}/{action}`: the four billed operations are metered and recorded; any other
/// action (`count-tokens`, `async-invoke`, ...) is forwarded as is.
async fn invoke(State(g): State<Arc<Gateway>>, req: Request) -> Response {
    let started = Instant::now();
    let started_ms = crate::context::now_ms();
    let (parts, body) = req.into_parts();
    let caller = match authenticate(&g, &parts.headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = parts.uri.path().to_string();
    let mut segs = path.trim_start_matches('/').splitn(3, '/');
    let (_, raw_model, action) = (
        segs.next(),
        segs.next().unwrap_or(""),
        segs.next().unwrap_or(""),
    );
    let model_id = percent_decode(raw_model);
    let Some(op) = Operation::from_action(action).filter(|_| parts.method == http::Method::POST)
    else {
        let body = match read_body(&g, body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        return pass(&g, &caller, &parts, body, true).await;
    };
    let mut body = match read_body(&g, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut extra: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let metadata: serde_json::Map<String, serde_json::Value>;
    if op.is_converse() {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(mut obj)) => {
                metadata = merged_metadata(
                    obj.get("requestMetadata").and_then(|v| v.as_object()),
                    &caller,
                );
                obj.insert("requestMetadata".into(), metadata.clone().into());
                body = Bytes::from(serde_json::Value::Object(obj).to_string());
            }
            // Not an object: Bedrock will say what is wrong with it.
            _ => metadata = merged_metadata(None, &caller),
        }
    } else {
        let client: Option<serde_json::Map<String, serde_json::Value>> = parts
            .headers
            .get("x-amzn-bedrock-request-metadata")
            .and_then(|v| serde_json::from_slice(v.as_bytes()).ok());
        metadata = merged_metadata(client.as_ref(), &caller);
        if let Ok(v) =
            HeaderValue::from_str(&serde_json::Value::Object(metadata.clone()).to_string())
        {
            extra.push((
                HeaderName::from_static("x-amzn-bedrock-request-metadata"),
                v,
            ));
        }
    }
    // Admission: every limit and hard budget that covers the call holds its share until the
    // call ends (dropped with the ticket on a failure before that).
    let ticket = if g.limits.active() {
        match g
            .limits
            .admit(
                &caller,
                &model_id,
                g.upstream.signer.region(),
                &body,
                op.is_converse(),
            )
            .await
        {
            Ok(t) => t,
            Err(refusal) => return refusal,
        }
    } else {
        None
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path.as_str(), |p| p.as_str())
        .to_string();
    let resp = match g
        .upstream
        .send(
            &caller.developer,
            &parts.method,
            &path_and_query,
            &parts.headers,
            &extra,
            body,
            true,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return upstream_failure(&g, e),
    };
    let (rparts, incoming) = resp.into_parts();
    let status = rparts.status.as_u16();
    let mut meter = Meter::new(op);
    meter.head(status, &|name: &str| {
        rparts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    });
    let request_id = rparts
        .headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let head_ms = started.elapsed().as_secs_f64() * 1000.0;
    let template = Invocation {
        request_id: request_id.clone().unwrap_or_default(),
        timestamp_ms: started_ms,
        account_id: g.account_id.clone(),
        region: g.upstream.signer.region().to_string(),
        inference_region: None,
        operation: op.name().to_string(),
        model_id: model_id.clone(),
        principal: g.principal.for_developer(&caller.developer),
        request_metadata: metadata
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
        error_code: None,
        tokens: Tokens::default(),
        input_body_in_s3: false,
        output_body_in_s3: false,
    };
    let gw = g.clone();
    g.open.fetch_add(1, Ordering::Relaxed);
    let finish: body::Finish = Box::new(move |m: Metered, end: End| {
        gw.open.fetch_sub(1, Ordering::Relaxed);
        let t = m.tokens;
        tracing::info!(
            developer = %caller.developer,
            key = %caller.key_id,
            model = %template.model_id,
            operation = op.name(),
            status,
            request_id = request_id.as_deref().unwrap_or("-"),
            first_byte_ms = format!("{head_ms:.2}"),
            total_ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            input = t.input,
            output = t.output,
            cache_read = t.cache_read,
            cache_write = t.cache_write(),
            end = end.as_str(),
            error = m.error_code.as_deref().unwrap_or("-"),
            "Call"
        );
        if let Some(hold) = ticket {
            hold.settle(&t, request_id.as_deref());
        }
        if request_id.is_none() {
            // Without Bedrock's request id the call could be counted twice once its log is
            // synced; the log will count it.
            tracing::warn!(developer = %caller.developer, model = %template.model_id, "Bedrock's answer had no x-amzn-RequestId: left to the log ingest");
            return;
        }
        gw.recorder.record(Invocation {
            error_code: m.error_code,
            tokens: t,
            ..template
        });
    });
    relay(
        &rparts,
        Body::new(MeteredBody::new(incoming, meter, finish)),
    )
}

/// Bedrock's status and headers (all but hop-by-hop ones) over `body`.
fn relay(upstream: &http::response::Parts, body: Body) -> Response {
    let mut out = Response::new(body);
    *out.status_mut() = upstream.status;
    for (name, value) in &upstream.headers {
        if upstream::returned(name) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// Any other path (`GET /inference-profiles`, `/foundation-models`, ...): authenticated, then
/// forwarded and answered as Bedrock answers it, not recorded (nothing is billed).
async fn forward(State(g): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let caller = match authenticate(&g, &parts.headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = match read_body(&g, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    pass(&g, &caller, &parts, body, false).await
}

async fn pass(
    g: &Gateway,
    caller: &Caller,
    parts: &http::request::Parts,
    body: Bytes,
    runtime: bool,
) -> Response {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match g
        .upstream
        .send(
            &caller.developer,
            &parts.method,
            pq,
            &parts.headers,
            &[],
            body,
            runtime,
        )
        .await
    {
        Ok(resp) => {
            tracing::info!(developer = %caller.developer, method = %parts.method, path = parts.uri.path(), status = resp.status().as_u16(), "Forwarded");
            let (rparts, incoming) = resp.into_parts();
            relay(&rparts, Body::new(incoming))
        }
        Err(e) => upstream_failure(g, e),
    }
}

use bedrock_usage_core::layout::percent_decode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_decoded() {
        assert_eq!(
            percent_decode("anthropic.claude-3-haiku-20240307-v1%3A0"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            percent_decode("arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x"),
            "arn:aws:bedrock:us-east-1:1:inference-profile/us.x"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }

    #[test]
    fn the_authenticated_developer_wins() {
        let caller = Caller {
            key_id: "k".into(),
            developer: "alice".into(),
            team: None,
        };
        let client: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"developer":"mallory","team":"x","ticket":"T-1"}"#).unwrap();
        let m = merged_metadata(Some(&client), &caller);
        assert_eq!(m["developer"], "alice");
        assert!(
            m.get("team").is_none(),
            "a team the key does not name is not kept"
        );
        assert_eq!(m["ticket"], "T-1");
    }
}
