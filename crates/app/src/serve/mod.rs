//! `bedrock-usage serve`: the JSON API under `/api/v1/` and `/metrics`, as one
//! `fn router(state) -> Router` shared by `main` and the tests. Handlers read the store through
//! `crate::store::FactReader` only (opened read-only per request, so they never wait behind the
//! writer), on the blocking pool.
//!
//! Who may see what: on loopback no login is needed; listening anywhere else needs an access
//! token (`Authorization: Bearer TOKEN`, matched by its SHA-256 against
//! `BEDROCK_USAGE_SERVE_TOKENS` and `[serve] access_token_sha256`), or a session cookie from the
//! login form ([`login`]). A developer's gateway key opens that developer's own usage only.
//! Tokens are never logged or echoed.

pub mod api;
pub mod cache;
pub mod login;
pub mod metrics;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::context::Context;

/// The environment variable with the operators' access tokens (comma-separated).
pub const TOKENS_ENV: &str = "BEDROCK_USAGE_SERVE_TOKENS";

/// What a running server knows.
pub struct ServeState {
    pub ctx: Context,
    pub db: PathBuf,
    /// SHA-256 of every operator access token.
    pub token_hashes: Vec<[u8; 32]>,
    /// No login needed (listening on loopback).
    pub open: bool,
    /// Browser sessions from the login form.
    pub sessions: login::Sessions,
    /// Answers kept while the store is unchanged (`[serve] cache_seconds`).
    pub cache: cache::AnswerCache,
    /// What reports read, kept while the store is unchanged.
    pub facts: cache::FactCache,
}

impl ServeState {
    /// The state for `ctx`: tokens from [`TOKENS_ENV`] and the config; `open` when the server
    /// listens on loopback only.
    pub fn new(ctx: Context, open: bool) -> crate::error::Result<ServeState> {
        let db = ctx.db_path()?;
        let mut token_hashes: Vec<[u8; 32]> = ctx
            .config
            .serve
            .access_token_sha256
            .iter()
            .filter_map(|h| hex32(h))
            .collect();
        if let Ok(v) = std::env::var(TOKENS_ENV) {
            token_hashes.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| sha256(t.as_bytes())),
            );
        }
        let cache = cache::AnswerCache::new(db.clone(), ctx.config.serve.cache_seconds);
        Ok(ServeState {
            ctx,
            cache,
            facts: cache::FactCache::default(),
            db,
            token_hashes,
            open,
            sessions: login::Sessions::default(),
        })
    }
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Sees everything.
    Operator,
    /// A gateway key: this developer's own usage only.
    Developer(String),
}

/// An API error: a status, a stable code, a message, and the parameter it is about.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub parameter: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            parameter: None,
        }
    }
    pub fn parameter(name: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
            parameter: Some(name.to_string()),
        }
    }
    /// A command's error: `--NAME: message` names the parameter.
    pub fn from_command(e: crate::error::Error) -> ApiError {
        match e {
            crate::error::Error::Invalid(m) => {
                if let Some(rest) = m.strip_prefix("--") {
                    if let Some((name, msg)) = rest.split_once(": ") {
                        if !name.contains(' ') {
                            return ApiError::parameter(&name.replace('-', "_"), msg.to_string());
                        }
                    }
                }
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m)
            }
            crate::error::Error::When(w) => {
                let name = w.flag.trim_start_matches('-').replace('-', "_");
                ApiError::parameter(
                    &name,
                    format!("`{}` is not a date (2026-11-01), an RFC 3339 time (2026-11-01T09:00:00Z) or a duration (30m, 12h, 7d, 2w)", w.value),
                )
            }
            crate::error::Error::Zone(z) => ApiError::parameter("tz", z.to_string()),
            other => {
                tracing::error!(error = %other, "An API request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                )
            }
        }
    }
    fn forbidden(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a developer's key sees that developer's own usage only; {what} needs an operator's access token"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        if let Some(p) = &self.parameter {
            body["error"]["parameter"] = serde_json::Value::String(p.clone());
        }
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Who the request is from, or why it may not be answered.
pub fn viewer(state: &ServeState, headers: &HeaderMap) -> Result<Viewer, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let Some(auth) = auth else {
        // A browser logged in through the form.
        if let Some(who) = login::session_id(headers)
            .and_then(|id| state.sessions.get(&id, state.ctx.clock.now_ms()))
        {
            return Ok(who);
        }
        return if state.open {
            Ok(Viewer::Operator)
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an access token is needed: send `Authorization: Bearer TOKEN` (an operator's token, or a developer's gateway key), or log in at /login",
            ))
        };
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the Authorization header must be `Bearer TOKEN`",
            )
        })?;
    token_viewer(state, token)
}

/// Who an operator's access token or a developer's gateway key is.
pub fn token_viewer(state: &ServeState, token: &str) -> Result<Viewer, ApiError> {
    let presented = sha256(token.as_bytes());
    if state
        .token_hashes
        .iter()
        .any(|h| bool::from(presented.ct_eq(h)))
    {
        return Ok(Viewer::Operator);
    }
    // A developer's gateway key, checked against the store's keys (by hash and dates).
    let store = crate::store::open_read_only(&state.db)
        .map_err(|e| ApiError::from_command(crate::error::Error::from(e)))?;
    let keys = store
        .keys()
        .map_err(|e| ApiError::from_command(crate::error::Error::from(e)))?;
    let ring = crate::gateway::keys::KeyRing::new(keys);
    match ring.check(Some(&format!("Bearer {token}")), state.ctx.clock.now_ms()) {
        Ok(caller) => Ok(Viewer::Developer(caller.developer)),
        Err(why) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "the token is not an access token nor a valid gateway key ({})",
                why.reason()
            ),
        )),
    }
}

/// Security headers on every answer: no sniffing, no framing, no referrer, a strict CSP, and
/// no caching of API answers.
async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/") || req.uri().path() == "/metrics";
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: see /api/v1/openapi.json",
    )
}

/// The server's routes.
pub fn router(state: Arc<ServeState>) -> Router {
    Router::new()
        .route("/api/v1/report", get(api::report))
        .route("/api/v1/timeseries", get(api::timeseries))
        .route("/api/v1/query", post(api::query))
        .route("/api/v1/budgets", get(api::budgets))
        .route("/api/v1/unpriced", get(api::unpriced))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(api::dashboard))
        .route("/developers/{name}", get(api::dashboard))
        .route("/assets/app.js", get(api::app_js))
        .route("/assets/app.css", get(api::app_css))
        .route("/favicon.ico", get(api::icon))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}
