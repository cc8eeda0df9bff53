//! Admission at the gateway: every `[[limits]]` entry and every hard budget (`action =
//! "block"`) that covers a call is checked, and held, before the call goes upstream; the hold is
//! settled to what the call used when it ends, or released when it fails. The decisions are the
//! core's (`bedrock_usage_core::limits`); this layer knows the caller, the catalog and the store.
//!
//! Hard budgets count the store's spend for the period (read again every [`REFRESH`], with the
//! config, so a raised budget takes effect without a restart), plus what this gateway settled
//! that the store does not show yet (by request id), plus the reservations of calls in flight.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bedrock_usage_core::budget::Action;
use bedrock_usage_core::limits::{
    self, budget_instance, estimate, upper_cost, CallFacts, Check, Ledger, Refused, Reservation,
};
use bedrock_usage_core::pricing::{is_long_context, normalize_model_id, LONG_CONTEXT_THRESHOLD};
use bedrock_usage_core::{NanoUsd, Tokens};

use super::bedrock_error;
use super::keys::Caller;
use crate::context::Context;

/// How often the store's spend and the config are read again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The limits and budgets of one gateway process.
pub struct Limiter {
    ctx: RwLock<Arc<Context>>,
    ledger: Mutex<Ledger>,
    db: PathBuf,
    /// The config file's modification time when it was last read.
    config_mtime: Mutex<Option<std::time::SystemTime>>,
}

/// An admitted call's hold: settle it with what the call used; dropped unsettled, it is
/// released.
pub struct Ticket {
    limiter: Arc<Limiter>,
    reservation: Option<Reservation>,
    model_id: String,
}

impl Ticket {
    /// The call ended having used `tokens`; `request_id` is Bedrock's.
    pub fn settle(mut self, tokens: &Tokens, request_id: Option<&str>) {
        let Some(r) = self.reservation.take() else {
            return;
        };
        let ctx = self.limiter.context();
        let model = normalize_model_id(&self.model_id, &ctx.config.models);
        let day = ctx
            .clock
            .now_ms()
            .div_euclid(bedrock_usage_core::time::MS_PER_DAY);
        let actual = ctx
            .catalog
            .price(&model, &self.model_id, day, tokens, is_long_context(tokens))
            .unwrap_or(NanoUsd(0));
        let counted = tokens.input + tokens.cache_write() + tokens.output;
        lock(&self.limiter.ledger).settle(r, counted, actual, request_id, crate::context::now_ms());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            lock(&self.limiter.ledger).release(r);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The refusal as Bedrock would shape it. Rate limits are 429 `ThrottlingException` with
/// `Retry-After` (SDKs and Claude Code wait and retry); a spent budget is 400
/// `ServiceQuotaExceededException` with `x-should-retry: false`, which neither boto3 nor Claude
/// Code retries, so the developer sees the message at once.
pub fn refusal_response(r: &Refused) -> Response {
    let mut resp = match r {
        Refused::Rate { .. } | Refused::Concurrent { .. } => bedrock_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            &r.message(),
        ),
        Refused::Budget { .. } => bedrock_error(
            StatusCode::BAD_REQUEST,
            "ServiceQuotaExceededException",
            &r.message(),
        ),
    };
    let h = resp.headers_mut();
    match r {
        Refused::Rate { retry_after_ms, .. } => {
            let secs = ((retry_after_ms + 999) / 1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                h.insert("retry-after", v);
            }
        }
        Refused::Concurrent { .. } => {
            h.insert("retry-after", HeaderValue::from_static("1"));
        }
        Refused::Budget { .. } => {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
    }
    resp
}

impl Limiter {
    pub fn new(ctx: Context, db: PathBuf) -> Arc<Limiter> {
        let mtime = ctx
            .config_path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        Arc::new(Limiter {
            ctx: RwLock::new(Arc::new(ctx)),
            ledger: Mutex::new(Ledger::new()),
            db,
            config_mtime: Mutex::new(mtime),
        })
    }

    pub fn context(&self) -> Arc<Context> {
        self.ctx.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether any limit or hard budget is configured (without, admission is skipped).
    pub fn active(&self) -> bool {
        let c = self.context();
        !c.config.limits.is_empty() || c.config.budgets.iter().any(|b| b.action == Action::Block)
    }

    fn facts<'a>(
        ctx: &'a Context,
        caller: &'a Caller,
        model_id: &'a str,
        label: &'a str,
    ) -> CallFacts<'a> {
        let configured = ctx.config.developers.get(&caller.developer);
        let team = configured
            .and_then(|(t, _)| t.as_deref())
            .or(caller.team.as_deref());
        let cost_center = configured
            .and_then(|(_, c)| c.as_deref())
            .or_else(|| team.and_then(|t| ctx.config.team_cost_centers.get(t).map(String::as_str)));
        CallFacts {
            developer: &caller.developer,
            team,
            cost_center,
            key_id: &caller.key_id,
            model_id,
            model_label: label,
        }
    }

    /// Every check that covers the call, with the keys their counts live under.
    fn checks(ctx: &Context, c: &CallFacts, now: i64) -> Vec<Check> {
        let mut out = Vec::new();
        for l in &ctx.config.limits {
            let Some(inst) = l.scope.instance(c) else {
                continue;
            };
            if let Some(n) = l.requests_per_minute {
                out.push(Check::Requests {
                    limit: l.name.clone(),
                    key: format!("rpm/{}/{inst}", l.name),
                    per_minute: n,
                });
            }
            if let Some(n) = l.tokens_per_minute {
                out.push(Check::Tokens {
                    limit: l.name.clone(),
                    key: format!("tpm/{}/{inst}", l.name),
                    per_minute: n,
                });
            }
            if let Some(n) = l.max_concurrent {
                out.push(Check::Concurrent {
                    limit: l.name.clone(),
                    key: format!("conc/{}/{inst}", l.name),
                    max: n,
                });
            }
        }
        for b in ctx
            .config
            .budgets
            .iter()
            .filter(|b| b.action == Action::Block)
        {
            let Some(inst) = budget_instance(&b.scope, c) else {
                continue;
            };
            let bounds = b.period.around(&b.zone, now);
            out.push(Check::Budget {
                budget: b.name.clone(),
                key: budget_key(&b.name, &inst, &bounds.label),
                amount: b.amount,
                resets_ms: bounds.end_ms,
                period: b.period.name().to_string(),
            });
        }
        out
    }

    /// Admits the call or answers the refusal. `Ok(None)`: nothing covers it.
    // The refusal is the response itself.
    #[allow(clippy::result_large_err)]
    pub fn admit(
        self: &Arc<Self>,
        caller: &Caller,
        model_id: &str,
        body: &[u8],
        converse: bool,
    ) -> Result<Option<Ticket>, Response> {
        let ctx = self.context();
        let model = normalize_model_id(model_id, &ctx.config.models);
        let label = model.key.clone().unwrap_or_else(|| model_id.to_string());
        let facts = Self::facts(&ctx, caller, model_id, &label);
        let now = ctx.clock.now_ms();
        let checks = Self::checks(&ctx, &facts, now);
        if checks.is_empty() {
            return Ok(None);
        }
        let budgets = checks.iter().any(|c| matches!(c, Check::Budget { .. }));
        let mut cost = NanoUsd(0);
        if budgets {
            let est = estimate(body, converse, ctx.config.gateway.default_max_tokens);
            let day = now.div_euclid(bedrock_usage_core::time::MS_PER_DAY);
            let long = est.input_tokens > LONG_CONTEXT_THRESHOLD;
            match ctx.catalog.decide(&model, model_id, day, long) {
                Ok(d) => cost = upper_cost(&d.rates, &est),
                Err(why) => {
                    tracing::info!(developer = %caller.developer, model = model_id, "Refused a request: a hard budget covers a model without a price");
                    return Err(bedrock_error(
                        StatusCode::BAD_REQUEST,
                        "ValidationException",
                        &format!("A hard budget covers this call, but its model cannot be priced ({why}), so the budget cannot bound it. Ask for the model to be priced (docs/pricing.md)."),
                    ));
                }
            }
        }
        let admitted = lock(&self.ledger).admit(checks, cost, crate::context::now_ms());
        match admitted {
            Ok(r) => Ok(Some(Ticket {
                limiter: self.clone(),
                reservation: Some(r),
                model_id: model_id.to_string(),
            })),
            Err(refused) => {
                let (status, which) = match &refused {
                    Refused::Rate { limit, .. } | Refused::Concurrent { limit, .. } => (429, limit),
                    Refused::Budget { budget, .. } => (400, budget),
                };
                tracing::info!(developer = %caller.developer, key = %caller.key_id, status, limit = %which, "Refused a request: limit");
                Err(refusal_response(&refused))
            }
        }
    }

    /// Reads the config again when its file changed, then the store's spend of every hard
    /// budget (after the request ids it holds, so a call is never counted zero times).
    pub fn refresh(&self) -> crate::error::Result<()> {
        self.reload_config();
        let ctx = self.context();
        if !ctx.config.budgets.iter().any(|b| b.action == Action::Block) {
            return Ok(());
        }
        let store = crate::store::open_read_only(&self.db)?;
        let ids: Vec<String> = lock(&self.ledger).unseen_ids().into_iter().collect();
        let seen = store.known_request_ids(&ids)?;
        let mut spend: HashMap<String, NanoUsd> = HashMap::new();
        for e in crate::commands::budget::evaluate_all(&ctx, &*store)? {
            if e.budget.action != Action::Block {
                continue;
            }
            let inst = if e.budget.scope.each_developer {
                e.scope_value.clone()
            } else {
                "all".to_string()
            };
            spend.insert(
                budget_key(&e.budget.name, &inst, &e.bounds.label),
                e.status.spent,
            );
        }
        lock(&self.ledger).rebase(&spend, &seen);
        Ok(())
    }

    fn reload_config(&self) {
        let ctx = self.context();
        let Some(path) = ctx.config_path.clone() else {
            return;
        };
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if *lock(&self.config_mtime) == mtime {
            return;
        }
        *lock(&self.config_mtime) = mtime;
        let loaded = crate::context::load_config(Some(&path))
            .and_then(|l| crate::context::load_catalog(&l, None).map(|c| (l, c)));
        match loaded {
            Ok((l, catalog)) => {
                let next = Context {
                    config: l.config,
                    config_path: l.path,
                    catalog,
                    ..(*ctx).clone()
                };
                *self.ctx.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
                tracing::info!(config = %path.display(), "Read the config again: limits and budgets updated");
            }
            Err(e) => {
                tracing::error!(config = %path.display(), error = %e, "The changed config is invalid; keeping the limits and budgets in force");
            }
        }
    }

    /// The caller's spend today, this week and this month (calendar periods in `[alerts]
    /// timezone`), from the store, plus what this gateway settled that the store does not show
    /// yet is not added: the recorder writes within a second.
    pub fn spend_of(&self, caller: &Caller) -> crate::error::Result<serde_json::Value> {
        use bedrock_usage_core::budget::Period;
        let ctx = self.context();
        let store = crate::store::open_read_only(&self.db)?;
        let zone = ctx.config.alerts.zone.clone();
        let now = ctx.clock.now_ms();
        let mut out = serde_json::Map::new();
        for (name, p) in [
            ("today", Period::Day),
            ("week", Period::Week),
            ("month", Period::Month),
        ] {
            let bounds = p.around(&zone, now);
            let req = crate::commands::report::ReportRequest {
                keys: Vec::new(),
                since: Some(bounds.start_ms),
                until: None,
                zone: zone.clone(),
                filters: bedrock_usage_core::report::Filters {
                    developers: vec![caller.developer.clone()],
                    ..Default::default()
                },
            };
            let r = crate::commands::report::build(&*store, &ctx.config, &ctx.catalog, &req)?;
            out.insert(
                name.into(),
                serde_json::json!({
                    "period": bounds.label,
                    "cost_usd": r.total.cost.to_decimal_micros(),
                    "cost_display": r.total.cost.to_display(),
                    "calls": r.total.calls,
                }),
            );
        }
        Ok(out.into())
    }

    /// Where the caller stands: each limit and hard budget that covers them (for `/me`).
    pub fn standing(&self, caller: &Caller) -> Vec<serde_json::Value> {
        let ctx = self.context();
        let now = ctx.clock.now_ms();
        let real_now = crate::context::now_ms();
        let facts = Self::facts(&ctx, caller, "", "");
        let mut ledger = lock(&self.ledger);
        let mut out = Vec::new();
        for l in &ctx.config.limits {
            // Limits on a model cover some calls only: shown all the same.
            let scope = limits::LimitScope {
                model: None,
                ..l.scope.clone()
            };
            let Some(inst) = scope.instance(&facts) else {
                continue;
            };
            let mut v =
                serde_json::json!({"kind": "limit", "name": l.name, "model": l.scope.model});
            if let Some(n) = l.requests_per_minute {
                let used = ledger.window(&format!("rpm/{}/{inst}", l.name), real_now);
                v["requests_per_minute"] = n.into();
                v["requests_left"] = n.saturating_sub(used).into();
            }
            if let Some(n) = l.tokens_per_minute {
                let used = ledger.window(&format!("tpm/{}/{inst}", l.name), real_now);
                v["tokens_per_minute"] = n.into();
                v["tokens_left"] = n.saturating_sub(used).into();
            }
            if let Some(n) = l.max_concurrent {
                v["max_concurrent"] = n.into();
                v["concurrent"] = ledger.concurrent(&format!("conc/{}/{inst}", l.name)).into();
            }
            out.push(v);
        }
        for b in ctx
            .config
            .budgets
            .iter()
            .filter(|b| b.action == Action::Block)
        {
            let scope = bedrock_usage_core::budget::Scope {
                model: None,
                ..b.scope.clone()
            };
            let Some(inst) = budget_instance(&scope, &facts) else {
                continue;
            };
            let bounds = b.period.around(&b.zone, now);
            let s = ledger.budget(&budget_key(&b.name, &inst, &bounds.label));
            let left = NanoUsd((b.amount.0 - s.spent.0 - s.reserved.0).max(0));
            out.push(serde_json::json!({
                "kind": "budget",
                "name": b.name,
                "period": format!("{} {}", b.period.name(), bounds.label),
                "amount_usd": b.amount.to_decimal_micros(),
                "spent_usd": s.spent.to_decimal_micros(),
                "reserved_usd": s.reserved.to_decimal_micros(),
                "left_usd": left.to_decimal_micros(),
                "percent": bedrock_usage_core::budget::percent_text(
                    bedrock_usage_core::budget::basis_points(s.spent, b.amount)),
                "resets": bedrock_usage_core::time::format_utc(bounds.end_ms),
                "amount_display": b.amount.to_display(),
                "spent_display": s.spent.to_display(),
            }));
        }
        out
    }
}

fn budget_key(name: &str, instance: &str, label: &str) -> String {
    format!("{name}/{instance}/{label}")
}
