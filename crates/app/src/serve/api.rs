//! The JSON API: each endpoint answers what the matching command prints with `--format json`,
//! from the same functions. Query strings take the command's options by name
//! (`?by=developer,model&since=7d&tz=Europe/Berlin`); an unknown or bad parameter is a 400 that
//! names it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{viewer, ApiError, ServeState, Viewer};
use crate::commands::{budget, query as query_cmd, report};

type Params = Query<HashMap<String, String>>;

/// A JSON answer from text already rendered (the commands' own JSON).
fn json_text(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// Runs `f` on the blocking pool (the store is read synchronously).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request's worker stopped",
        ))
    })
}

/// The cache key of an answer: the endpoint, its parameters in order, and who asks.
fn cache_key(endpoint: &str, params: &HashMap<String, String>, who: &Viewer) -> String {
    let mut p: Vec<(&String, &String)> = params.iter().collect();
    p.sort();
    format!("{endpoint} {p:?} {who:?}")
}

/// Refuses parameters the endpoint does not take, naming the first.
fn only(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    match names.into_iter().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::parameter(
            k,
            format!(
                "unknown parameter `{k}`; this endpoint takes {}",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn list(params: &HashMap<String, String>, name: &str) -> Vec<String> {
    params
        .get(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

const REPORT_PARAMS: [&str; 9] = [
    "by",
    "since",
    "until",
    "tz",
    "developer",
    "team",
    "model",
    "top",
    "format",
];

/// The records as JSON, or as CSV (a download) with `format=csv`.
fn records_answer(
    rec: &crate::output::Records,
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Response, ApiError> {
    match params.get("format").map(String::as_str) {
        None | Some("json") => Ok(json_text(rec.to_json())),
        Some("csv") => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.csv\""),
                ),
            ],
            rec.to_csv(),
        )
            .into_response()),
        Some(other) => Err(ApiError::parameter(
            "format",
            format!("`{other}` is not a format: json or csv"),
        )),
    }
}

/// Builds and runs a report from query parameters; a developer's view sees only that developer.
fn run_report(
    s: &ServeState,
    params: &HashMap<String, String>,
    keys: Vec<String>,
    who: &Viewer,
) -> Result<bedrock_usage_core::report::UsageReport, ApiError> {
    let mut developers = list(params, "developer");
    if let Viewer::Developer(d) = who {
        if developers.iter().any(|x| x != d) {
            return Err(ApiError::parameter(
                "developer",
                format!("this key sees developer `{d}` only"),
            ));
        }
        developers = vec![d.clone()];
    }
    let (teams, models) = (list(params, "team"), list(params, "model"));
    let top = match params.get("top") {
        Some(t) => Some(
            t.parse::<usize>()
                .map_err(|_| ApiError::parameter("top", format!("`{t}` is not a whole number")))?,
        ),
        None => None,
    };
    let args = report::ReportArgs {
        by: &keys,
        since: params.get("since").map(String::as_str),
        until: params.get("until").map(String::as_str),
        tz: params.get("tz").map_or("UTC", String::as_str),
        developers: &developers,
        teams: &teams,
        models: &models,
        top,
        send: None,
    };
    let req = report::ReportRequest::from_args(&s.ctx, &args).map_err(ApiError::from_command)?;
    let store = open(&s.db)?;
    let mut r = match s.cache.version() {
        Some(v) => s.facts.report(v, &*store, &s.ctx, &req),
        None => report::build(&*store, &s.ctx.config, &s.ctx.catalog, &req),
    }
    .map_err(ApiError::from_command)?;
    if let Some(n) = top {
        r.keep_top(n);
    }
    Ok(r)
}

fn open(db: &std::path::Path) -> Result<Box<dyn crate::store::Store>, ApiError> {
    if !db.exists() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_store",
            "the store does not exist yet: run `bedrock-usage ingest` or `sync` first",
        ));
    }
    crate::store::open_read_only(db)
        .map_err(|e| ApiError::from_command(crate::error::Error::from(e)))
}

/// `GET /api/v1/report`: `report --format json` (`by` defaults to developer).
pub async fn report(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let who = viewer(&s, &headers)?;
    only(&params, &REPORT_PARAMS)?;
    let key = cache_key("report", &params, &who);
    let st = s.clone();
    s.cache
        .get(key, || {
            blocking(move || {
                let mut keys = list(&params, "by");
                if keys.is_empty() {
                    keys.push("developer".into());
                }
                let r = run_report(&st, &params, keys, &who)?;
                Ok(with_warnings(
                    records_answer(&report::records(&r), &params, "report")?,
                    &report::warnings(&r),
                ))
            })
        })
        .await
}

/// `GET /api/v1/timeseries?bin=day&by=model`: the report by period (`bin`: hour, day, week or month,
/// in `tz`) and any other keys.
pub async fn timeseries(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let who = viewer(&s, &headers)?;
    let mut known = REPORT_PARAMS.to_vec();
    known.push("bin");
    only(&params, &known)?;
    let bin = params.get("bin").map_or("day", String::as_str).to_string();
    if !["hour", "day", "week", "month"].contains(&bin.as_str()) {
        return Err(ApiError::parameter(
            "bin",
            format!("`{bin}` is not a bin: hour, day, week or month"),
        ));
    }
    let key = cache_key("timeseries", &params, &who);
    let st = s.clone();
    s.cache
        .get(key, || {
            blocking(move || {
                let mut keys = vec![bin.clone()];
                for k in list(&params, "by") {
                    if ["hour", "day", "week", "month"].contains(&k.as_str()) {
                        return Err(ApiError::parameter(
                            "by",
                            format!("`{k}` is a period: give it as `bin`"),
                        ));
                    }
                    keys.push(k);
                }
                let r = run_report(&st, &params, keys, &who)?;
                records_answer(&report::records(&r), &params, "timeseries")
            })
        })
        .await
}

/// Adds `X-Bedrock-Usage-Warnings`: the warnings as a JSON list of strings, in ASCII (other
/// characters as `\u` escapes, so any name fits a header).
fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    if warnings.is_empty() {
        return r;
    }
    let mut text = String::new();
    for c in serde_json::Value::from(warnings.to_vec())
        .to_string()
        .chars()
    {
        if c.is_ascii() && !c.is_ascii_control() {
            text.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                text.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    if let Ok(v) = text.parse() {
        r.headers_mut().insert("x-bedrock-usage-warnings", v);
    }
    r
}

/// The body of `POST /api/v1/query`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    pub query: String,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `POST /api/v1/query`: `query --format json` over the store; warnings in
/// `X-Bedrock-Usage-Warnings` (JSON list).
pub async fn query(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if let Viewer::Developer(_) = viewer(&s, &headers)? {
        return Err(ApiError::forbidden("a query over every call"));
    }
    let body: QueryBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body must be JSON {{\"query\": \"...\", \"since\": \"7d\", \"until\": ..., \"limit\": N}}: {e}"),
        )
    })?;
    blocking(move || {
        if !s.db.exists() {
            open(&s.db)?;
        }
        let mut ctx = s.ctx.clone();
        ctx.db = Some(s.db.clone());
        let args = query_cmd::QueryArgs {
            query: &body.query,
            since: body.since.as_deref(),
            until: body.until.as_deref(),
            from: &[],
            limit: body.limit.unwrap_or(10_000),
            max_record: 1 << 20,
            columns: true,
        };
        match query_cmd::execute(&ctx, &args).map_err(ApiError::from_command)? {
            Err(message) => Err(ApiError::parameter("query", message)),
            Ok(x) => Ok(with_warnings(
                json_text(query_cmd::json_rows(&x.table)),
                &x.warnings,
            )),
        }
    })
    .await
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

/// `GET /api/v1/budgets`: `budget status --format json` (a developer's key: their rows).
pub async fn budgets(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let who = viewer(&s, &headers)?;
    only(&params, &["format"])?;
    let key = cache_key("budgets", &params, &who);
    let s2 = s.clone();
    s2.cache
        .get(key, || {
            blocking(move || {
                let store = open(&s.db)?;
                let all = budget::evaluate_all(&s.ctx, &*store).map_err(ApiError::from_command)?;
                let mine: Vec<_> = all
                    .into_iter()
                    .filter(|e| match &who {
                        Viewer::Operator => true,
                        Viewer::Developer(d) => {
                            e.budget.scope.each_developer && &e.scope_value == d
                        }
                    })
                    .collect();
                records_answer(&budget::records(&mine), &params, "budgets")
            })
        })
        .await
}

/// `GET /api/v1/unpriced`: `pricing unpriced --format json`.
pub async fn unpriced(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    if let Viewer::Developer(_) = viewer(&s, &headers)? {
        return Err(ApiError::forbidden("the list of unpriced models"));
    }
    only(&params, &[])?;
    blocking(move || {
        let store = open(&s.db)?;
        let req = report::ReportRequest::all_by(vec![bedrock_usage_core::report::GroupKey::Model]);
        let r = report::build(&*store, &s.ctx.config, &s.ctx.catalog, &req)
            .map_err(ApiError::from_command)?;
        Ok(json_text(
            crate::commands::pricing::unpriced_records(&r).to_json(),
        ))
    })
    .await
}

/// `GET /api/v1/status`: the version, the store, and how far each source is synced.
pub async fn status(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    if let Viewer::Developer(_) = viewer(&s, &headers)? {
        return Err(ApiError::forbidden("the server's status"));
    }
    only(&params, &[])?;
    blocking(move || {
        let store = open(&s.db)?;
        let err = |e| ApiError::from_command(crate::error::Error::from(e));
        let now = s.ctx.clock.now_ms();
        let bytes: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = s.db.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok().map(|m| m.len())
            })
            .sum();
        let range = store.time_range().map_err(err)?;
        let sources: Vec<serde_json::Value> = store
            .cursors()
            .map_err(err)?
            .iter()
            .map(|c| {
                serde_json::json!({
                    "source": c.source.to_string(),
                    "position": c.position.to_string(),
                    "synced": bedrock_usage_core::time::format_utc(c.updated_ms),
                    "seconds_since_sync": (now - c.updated_ms).max(0) / 1000,
                })
            })
            .collect();
        let body = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "store": {
                "path": s.db.display().to_string(),
                "bytes": bytes,
                "invocations": store.invocation_count().map_err(err)?,
                "first": range.map(|r| bedrock_usage_core::time::format_utc(r.0)),
                "last": store.newest_ms().map_err(err)?.map(bedrock_usage_core::time::format_utc),
            },
            "sources": sources,
        });
        Ok(json_text(serde_json::to_string_pretty(&body)? + "\n"))
    })
    .await
}

/// `GET /api/v1/openapi.json`: the API described (OpenAPI 3.1).
pub async fn openapi() -> Response {
    json_text(OPENAPI.to_string())
}

const OPENAPI: &str = include_str!("openapi.json");

/// The dashboard's files, inside the binary (no CDN: it works on an offline network).
const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// `GET /` and `GET /developers/NAME`: the dashboard page (its data comes from the API, with
/// the API's access rules).
pub async fn dashboard() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// A file of the dashboard.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The tab's icon (an SVG: a bar chart).
pub async fn icon() -> Response {
    asset(
        "image/svg+xml",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1d2330\"/><rect x=\"3\" y=\"8\" width=\"2\" height=\"5\" fill=\"#3b6fd4\"/><rect x=\"7\" y=\"4\" width=\"2\" height=\"9\" fill=\"#e0803c\"/><rect x=\"11\" y=\"6\" width=\"2\" height=\"7\" fill=\"#3aa57a\"/></svg>",
    )
}
