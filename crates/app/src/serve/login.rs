//! The login form for browsers off loopback: `GET /login` shows it, `POST /login` takes an
//! operator's access token or a developer's gateway key and answers with a session cookie
//! (`HttpOnly; Secure; SameSite=Strict`, 12 hours), `POST /logout` ends the session. The
//! server keeps only the SHA-256 of each session id, in memory (a restart logs everyone out;
//! each replica has its own sessions). Tokens are never logged, echoed or stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{sha256, token_viewer, ServeState, Viewer};

/// The session cookie's name.
pub const COOKIE: &str = "bedrock_usage_session";
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Sessions kept at most (the oldest are dropped past it).
const MAX_SESSIONS: usize = 10_000;

/// Live sessions by the SHA-256 of their id: who, and until when.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], (Viewer, i64)>>);

impl Sessions {
    /// A new session for `who`; its id (32 random bytes, hex), which only the cookie holds.
    pub fn create(&self, who: Viewer, now_ms: i64) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, until)| *until > now_ms);
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| *k) {
                m.remove(&oldest);
            }
        }
        m.insert(sha256(id.as_bytes()), (who, now_ms + SESSION_MS));
        Ok(id)
    }

    pub fn get(&self, id: &str, now_ms: i64) -> Option<Viewer> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&sha256(id.as_bytes()))
            .filter(|(_, until)| *until > now_ms)
            .map(|(v, _)| v.clone())
    }

    pub fn remove(&self, id: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&sha256(id.as_bytes()));
    }
}

/// The session id in the request's cookies, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

const PAGE: &str = include_str!("assets/login.html");

fn page(status: StatusCode, message: &str, next: &str) -> Response {
    let html = PAGE
        .replace("{message}", &crate::output::html_escape(message))
        .replace("{next}", &crate::output::html_escape(next));
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// Where to go after logging in: a path on this server only (never `//host` or a URL).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

/// `GET /login?next=/developers/alice`.
pub async fn form(
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    page(
        StatusCode::OK,
        "",
        &safe_next(q.get("next").map(String::as_str)),
    )
}

/// `application/x-www-form-urlencoded` fields.
fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// `POST /login` with `token` (and `next`): a session cookie and a redirect, or the form again.
pub async fn login(State(s): State<Arc<ServeState>>, body: axum::body::Bytes) -> Response {
    let f = form_fields(&body);
    let next = safe_next(f.get("next").map(String::as_str));
    let token = f.get("token").map(|t| t.trim()).unwrap_or("");
    if token.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "Give an access token or your gateway key.",
            &next,
        );
    }
    let state = s.clone();
    let token = token.to_string();
    let who = tokio::task::spawn_blocking(move || token_viewer(&state, &token)).await;
    let who = match who {
        Ok(Ok(w)) => w,
        Ok(Err(_)) | Err(_) => {
            return page(
                StatusCode::UNAUTHORIZED,
                "That is not an access token nor a valid gateway key.",
                &next,
            )
        }
    };
    let to = match &who {
        // A developer's view is their own page.
        Viewer::Developer(d) if !next.starts_with("/developers/") => {
            format!("/developers/{}", percent_path(d))
        }
        _ => next,
    };
    let id = match s.sessions.create(who, s.ctx.clock.now_ms()) {
        Ok(id) => id,
        Err(_) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "No randomness for a session id.",
                &to,
            )
        }
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        SESSION_MS / 1000
    );
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: the session ends and the cookie is cleared.
pub async fn logout(State(s): State<Arc<ServeState>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        s.sessions.remove(&id);
    }
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "bedrock_usage_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

fn percent_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_decode_and_next_stays_on_this_server() {
        let f = form_fields(b"token=bu_a%2Bb+c&next=%2Fdevelopers%2Falice&bad=%zz%4");
        assert_eq!(f["token"], "bu_a+b c");
        assert_eq!(f["next"], "/developers/alice");
        assert_eq!(f["bad"], "%zz%4");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(
            safe_next(Some("/developers/bob?since=7d")),
            "/developers/bob?since=7d"
        );
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let id = s.create(Viewer::Operator, 1_000).expect("id");
        assert_eq!(id.len(), 64);
        assert_eq!(s.get(&id, 2_000), Some(Viewer::Operator));
        assert_eq!(s.get(&id, 1_000 + SESSION_MS), None);
        assert_eq!(s.get("nope", 2_000), None);
        s.remove(&id);
        assert_eq!(s.get(&id, 2_000), None);
    }
}
