//! Answers kept while the store is unchanged. A dashboard opened by a team asks the same few
//! questions again and again; each answer is computed once, then served again for up to
//! `[serve] cache_seconds` (default 5) as long as no one has committed to the store (SQLite's
//! `data_version`, [`crate::store::ChangeWatch`]). The age bound is what keeps relative ranges
//! (`since=7d`) and budget forecasts current. Requests for the same key while it is being
//! computed wait for that one computation instead of starting their own. Only successful
//! answers are kept; the key holds the viewer, so a developer's answer is never another's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::OnceCell;

use super::ApiError;
use crate::store::ChangeWatch;

/// `hit` (a kept answer) or `miss` (computed for this request).
pub const CACHE_HEADER: &str = "x-bedrock-usage-cache";

/// Keys kept at most; past it the cache starts again empty.
const MAX_ENTRIES: usize = 512;

#[derive(Clone)]
struct Kept {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

struct Entry {
    version: i64,
    made: Instant,
    cell: Arc<OnceCell<Kept>>,
}

pub struct AnswerCache {
    ttl: Duration,
    db: std::path::PathBuf,
    watch: Mutex<Option<ChangeWatch>>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl AnswerCache {
    pub fn new(db: std::path::PathBuf, seconds: u64) -> AnswerCache {
        AnswerCache {
            ttl: Duration::from_secs(seconds),
            db,
            watch: Mutex::new(None),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The store's change counter, opening the watch when the store has appeared (`None`
    /// when the cache is off or the store cannot tell).
    pub fn version(&self) -> Option<i64> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            *w = ChangeWatch::open(&self.db);
        }
        w.as_ref().and_then(ChangeWatch::version)
    }

    /// The answer for `key`: kept, being computed (then waited for), or computed now by
    /// `compute`.
    pub async fn get<F, Fut>(&self, key: String, compute: F) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Response, ApiError>>,
    {
        if self.ttl.is_zero() {
            return compute().await;
        }
        let Some(version) = self.version() else {
            return compute().await;
        };
        let cell = {
            let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = m
                .get(&key)
                .is_some_and(|e| e.version == version && e.made.elapsed() < self.ttl);
            if !fresh {
                if m.len() >= MAX_ENTRIES {
                    m.clear();
                }
                m.insert(
                    key.clone(),
                    Entry {
                        version,
                        made: Instant::now(),
                        cell: Arc::new(OnceCell::new()),
                    },
                );
            }
            m.get(&key).map(|e| e.cell.clone())
        };
        let Some(cell) = cell else {
            return compute().await;
        };
        let computed = std::sync::atomic::AtomicBool::new(false);
        let kept = cell
            .get_or_try_init(|| async {
                computed.store(true, std::sync::atomic::Ordering::Relaxed);
                let r = compute().await?;
                if r.status() != StatusCode::OK {
                    return Err(Uncacheable(r));
                }
                let (parts, body) = r.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
                    Uncacheable(
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                            .into_response(),
                    )
                })?;
                Ok(Kept {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            })
            .await;
        match kept {
            Ok(k) => {
                let mut r = (k.status, k.body.clone()).into_response();
                *r.headers_mut() = k.headers.clone();
                let how = if computed.load(std::sync::atomic::Ordering::Relaxed) {
                    "miss"
                } else {
                    "hit"
                };
                r.headers_mut()
                    .insert(CACHE_HEADER, axum::http::HeaderValue::from_static(how));
                Ok(r)
            }
            Err(Uncacheable(r)) => Ok(r),
        }
    }
}

/// An answer that is not kept (an error, or not a 200), passed through as it is.
struct Uncacheable(Response);

impl From<ApiError> for Uncacheable {
    fn from(e: ApiError) -> Uncacheable {
        Uncacheable(e.into_response())
    }
}

/// Rows a kept fact set may hold at most (an hourly month of a large team is about 350,000).
const MAX_FACT_ROWS: usize = 2_000_000;
/// Fact sets kept at most.
const MAX_FACT_SETS: usize = 32;

/// What reports read from the store, kept while it is unchanged: the data range, the IAM tags,
/// and each (since, until, grain)'s facts. Different questions over the same range (each
/// developer's page, another split) then cost only the report maths, not the store read. A
/// fact set depends on nothing but the store's content, so it is kept until the next commit.
#[derive(Default)]
pub struct FactCache {
    inner: Mutex<FactsAt>,
}

#[derive(Default)]
struct FactsAt {
    version: Option<i64>,
    range: Option<Option<(i64, i64)>>,
    tags: Option<Arc<bedrock_usage_core::attribution::IamTags>>,
    sets: HashMap<FactKey, Arc<Mutex<Option<Arc<bedrock_usage_core::FactSet>>>>>,
}

type FactKey = (Option<i64>, Option<i64>, bedrock_usage_core::rollup::Grain);

impl FactCache {
    /// The state for store `version`, emptied when the store has changed since.
    fn at(&self, version: i64) -> std::sync::MutexGuard<'_, FactsAt> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.version != Some(version) {
            *g = FactsAt {
                version: Some(version),
                ..FactsAt::default()
            };
        }
        g
    }

    /// The report `req` over `store` (at `version`), from kept facts where it can.
    pub fn report(
        &self,
        version: i64,
        store: &dyn crate::store::FactReader,
        ctx: &crate::context::Context,
        req: &crate::commands::report::ReportRequest,
    ) -> crate::error::Result<bedrock_usage_core::report::UsageReport> {
        use crate::commands::report;
        let (range, tags) = {
            let g = self.at(version);
            (g.range, g.tags.clone())
        };
        let range = match range {
            Some(r) => r,
            None => {
                let r = store.time_range()?;
                self.at(version).range = Some(r);
                r
            }
        };
        let tags = match tags {
            Some(t) => t,
            None => {
                let t = Arc::new(store.iam_tags()?.tags);
                self.at(version).tags = Some(t.clone());
                t
            }
        };
        let grain = report::grain_for(req, range);
        let slot = {
            let mut g = self.at(version);
            if g.sets.len() >= MAX_FACT_SETS {
                g.sets.clear();
            }
            g.sets
                .entry((req.since, req.until, grain))
                .or_default()
                .clone()
        };
        // One read per key: others asking for the same facts meanwhile wait for it.
        let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
        let facts = match kept.as_ref() {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(store.facts(req.since, req.until, grain)?);
                if f.rows.len() <= MAX_FACT_ROWS {
                    *kept = Some(f.clone());
                }
                f
            }
        };
        drop(kept);
        Ok(report::build_over(
            &facts,
            &tags,
            &ctx.config,
            &ctx.catalog,
            req,
        ))
    }
}
