//! `GET /metrics`: the store's totals in the Prometheus text format (0.0.4): invocations,
//! errors, tokens by type, cost and unpriced calls by developer and model; each budget's spent
//! ratio; seconds since each source's last sync. Series are bounded: past
//! `[serve] metrics_max_series` (developer, model) pairs, the cheapest are folded into
//! `developer="other", model="other"`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use bedrock_usage_core::record::Tokens;
use bedrock_usage_core::report::{Figures, GroupKey};
use bedrock_usage_core::NanoUsd;

use super::{viewer, ApiError, ServeState, Viewer};
use crate::commands::{budget, report};

/// A label value escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Default, Clone)]
struct Sums {
    calls: u64,
    errors: u64,
    unpriced: u64,
    tokens: Tokens,
    cost: NanoUsd,
}

impl Sums {
    fn add(&mut self, f: &Figures) {
        self.calls += f.calls;
        self.errors += f.errors;
        self.unpriced += f.unpriced_calls;
        self.tokens.add(&f.tokens);
        self.cost = NanoUsd(self.cost.0 + f.cost.0);
    }
}

/// The metrics page of the store at `s.db`.
pub fn render(s: &ServeState) -> Result<String, ApiError> {
    let store = crate::store::open_read_only(&s.db)
        .map_err(|e| ApiError::from_command(crate::error::Error::from(e)))?;
    let req = report::ReportRequest::all_by(vec![GroupKey::Developer, GroupKey::Model]);
    let r = report::build(&*store, &s.ctx.config, &s.ctx.catalog, &req)
        .map_err(ApiError::from_command)?;
    let cap = s.ctx.config.serve.metrics_max_series.max(1);
    let mut rows: Vec<(String, String, Figures)> = r
        .rows
        .iter()
        .map(|row| {
            let k = |i: usize| {
                row.keys
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "unknown".into())
            };
            (k(0), k(1), row.figures.clone())
        })
        .collect();
    rows.sort_by(|a, b| b.2.cost.cmp(&a.2.cost).then(b.2.calls.cmp(&a.2.calls)));
    let mut series: BTreeMap<(String, String), Sums> = BTreeMap::new();
    let keep = if rows.len() > cap {
        cap - 1
    } else {
        rows.len()
    };
    for (i, (d, m, f)) in rows.iter().enumerate() {
        let key = if i < keep {
            (d.clone(), m.clone())
        } else {
            ("other".to_string(), "other".to_string())
        };
        series.entry(key).or_default().add(f);
    }
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let l = |d: &str, m: &str| format!("developer=\"{}\",model=\"{}\"", label(d), label(m));
    family(
        &mut out,
        "bedrock_usage_invocations_total",
        "counter",
        "Bedrock invocations in the store, by developer and model.",
    );
    for ((d, m), v) in &series {
        let _ = writeln!(
            out,
            "bedrock_usage_invocations_total{{{}}} {}",
            l(d, m),
            v.calls
        );
    }
    family(
        &mut out,
        "bedrock_usage_errors_total",
        "counter",
        "Invocations that ended with an error.",
    );
    for ((d, m), v) in &series {
        let _ = writeln!(
            out,
            "bedrock_usage_errors_total{{{}}} {}",
            l(d, m),
            v.errors
        );
    }
    family(
        &mut out,
        "bedrock_usage_tokens_total",
        "counter",
        "Tokens by type: input, output, cache_read, cache_write_5m, cache_write_1h.",
    );
    for ((d, m), v) in &series {
        let t = &v.tokens;
        for (ty, n) in [
            ("input", t.input),
            ("output", t.output),
            ("cache_read", t.cache_read),
            ("cache_write_5m", t.cache_write_5m),
            ("cache_write_1h", t.cache_write_1h),
        ] {
            let _ = writeln!(
                out,
                "bedrock_usage_tokens_total{{{},type=\"{ty}\"}} {n}",
                l(d, m)
            );
        }
    }
    family(
        &mut out,
        "bedrock_usage_cost_usd_total",
        "counter",
        "Cost of the priced invocations in USD (exact to the micro-dollar).",
    );
    for ((d, m), v) in &series {
        let _ = writeln!(
            out,
            "bedrock_usage_cost_usd_total{{{}}} {}",
            l(d, m),
            v.cost.to_decimal_micros()
        );
    }
    family(
        &mut out,
        "bedrock_usage_unpriced_invocations_total",
        "counter",
        "Invocations of models the catalog cannot price (not in the cost).",
    );
    for ((d, m), v) in &series {
        let _ = writeln!(
            out,
            "bedrock_usage_unpriced_invocations_total{{{}}} {}",
            l(d, m),
            v.unpriced
        );
    }
    family(
        &mut out,
        "bedrock_usage_series_folded",
        "gauge",
        "(developer, model) pairs folded into `other` by [serve] metrics_max_series.",
    );
    let _ = writeln!(out, "bedrock_usage_series_folded {}", rows.len() - keep);
    if !s.ctx.config.budgets.is_empty() {
        let all = budget::evaluate_all(&s.ctx, &*store).map_err(ApiError::from_command)?;
        family(
            &mut out,
            "bedrock_usage_budget_spent_ratio",
            "gauge",
            "Spend of each budget's current period over its amount (1 = all of it).",
        );
        for e in &all {
            let bp = e.status.basis_points;
            let _ = writeln!(
                out,
                "bedrock_usage_budget_spent_ratio{{budget=\"{}\",scope=\"{}\"}} {}.{:04}",
                label(&e.budget.name),
                label(&e.scope_value),
                bp / 10_000,
                bp % 10_000
            );
        }
    }
    let now = s.ctx.clock.now_ms();
    let cursors = store
        .cursors()
        .map_err(|e| ApiError::from_command(crate::error::Error::from(e)))?;
    family(
        &mut out,
        "bedrock_usage_source_seconds_since_sync",
        "gauge",
        "Seconds since each source was last read by `sync`.",
    );
    for c in &cursors {
        let _ = writeln!(
            out,
            "bedrock_usage_source_seconds_since_sync{{source=\"{}\"}} {}",
            label(&c.source.to_string()),
            (now - c.updated_ms).max(0) / 1000
        );
    }
    Ok(out)
}

/// `GET /metrics` (an operator's view only).
pub async fn metrics(
    State(s): State<Arc<ServeState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Viewer::Developer(_) = viewer(&s, &headers)? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a developer's key sees that developer's own usage only; /metrics needs an operator's access token",
        ));
    }
    if !s.db.exists() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_store",
            "the store does not exist yet: run `bedrock-usage ingest` or `sync` first",
        ));
    }
    let text = tokio::task::spawn_blocking(move || render(&s))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the metrics worker stopped",
            ))
        })?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
