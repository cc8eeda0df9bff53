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
use bedrock_usage_core::pricing::{normalize_model_id, InputBand};
use bedrock_usage_core::{NanoUsd, Tokens};

use super::bedrock_error;
use super::keys::Caller;
use super::redis::Shared;
use crate::context::Context;

/// How often the store's spend and the config are read again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The limits and budgets of one gateway process.
pub struct Limiter {
    ctx: RwLock<Arc<Context>>,
    /// The counts, in this process...
    ledger: Mutex<Ledger>,
    /// ...or in Redis (`gateway.redis_url`), shared by every replica.
    shared: Option<Shared>,
    db: PathBuf,
    /// The config file's modification time when it was last read.
    config_mtime: Mutex<Option<std::time::SystemTime>>,
    /// When Redis being unavailable was last logged (once a second at most).
    unavailable_logged: Mutex<Option<std::time::Instant>>,
}

/// What an admitted call holds.
enum Hold {
    Local(Reservation),
    Shared {
        checks: Vec<Check>,
        id: String,
        at_ms: i64,
    },
}

/// An admitted call's hold: settle it with what the call used; dropped unsettled, it is
/// released.
pub struct Ticket {
    limiter: Arc<Limiter>,
    hold: Option<Hold>,
    model_id: String,
    /// The region the call is made in (rates may differ by region).
    region: String,
}

impl Ticket {
    /// The call ended having used `tokens`; `request_id` is Bedrock's.
    pub fn settle(mut self, tokens: &Tokens, request_id: Option<&str>) {
        let Some(hold) = self.hold.take() else {
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
            .price(
                &model,
                &self.model_id,
                &self.region,
                day,
                tokens,
                InputBand::of(tokens),
            )
            .unwrap_or(NanoUsd(0));
        let counted = tokens.input + tokens.cache_write() + tokens.output;
        self.limiter.end(hold, counted, Some(actual), request_id);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.limiter.end(hold, 0, None, None);
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
    pub fn new(ctx: Context, db: PathBuf) -> crate::error::Result<Arc<Limiter>> {
        let mtime = ctx
            .config_path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let shared = match &ctx.config.gateway.redis_url {
            Some(url) => Some(
                Shared::new(url)
                    .map_err(|e| crate::error::Error::Invalid(format!("gateway.redis_url: {e}")))?,
            ),
            None => None,
        };
        Ok(Arc::new(Limiter {
            ctx: RwLock::new(Arc::new(ctx)),
            ledger: Mutex::new(Ledger::new()),
            shared,
            db,
            config_mtime: Mutex::new(mtime),
            unavailable_logged: Mutex::new(None),
        }))
    }

    /// Settles (`actual` given) or releases a hold.
    fn end(
        self: &Arc<Self>,
        hold: Hold,
        tokens: u64,
        actual: Option<NanoUsd>,
        request_id: Option<&str>,
    ) {
        let now = crate::context::now_ms();
        match hold {
            Hold::Local(r) => {
                let mut l = lock(&self.ledger);
                match actual {
                    Some(a) => l.settle(r, tokens, a, request_id, now),
                    None => l.release(r),
                }
            }
            Hold::Shared { checks, id, at_ms } => {
                let me = self.clone();
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    tracing::error!(
                        "A call ended outside the runtime: its hold in Redis lapses on its own"
                    );
                    return;
                };
                rt.spawn(async move {
                    let Some(sh) = &me.shared else { return };
                    if let Err(e) = sh.end(&checks, &id, at_ms, tokens, actual, now).await {
                        me.log_unavailable(&e.0);
                    }
                });
            }
        }
    }

    fn log_unavailable(&self, why: &str) {
        let mut last = lock(&self.unavailable_logged);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            tracing::error!(error = why, "Redis is unavailable: limits follow on_unavailable (hard budgets deny, rate limits allow unless set)");
        }
    }

    /// Whether the checks may go ahead uncounted while Redis is away: only if every one of them
    /// says `on_unavailable = "allow"` (hard budgets never do).
    fn allowed_without_redis(ctx: &Context, checks: &[Check]) -> bool {
        checks.iter().all(|c| {
            let name = match c {
                Check::Requests { limit, .. }
                | Check::Tokens { limit, .. }
                | Check::Concurrent { limit, .. } => limit,
                Check::Budget { .. } => return false,
            };
            ctx.config
                .limits
                .iter()
                .find(|l| &l.name == name)
                .is_some_and(|l| l.on_unavailable == limits::OnUnavailable::Allow)
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

    /// A limit's checks for one instance of its scope.
    fn limit_checks(l: &limits::Limit, inst: &str) -> Vec<Check> {
        let mut out = Vec::new();
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
        out
    }

    /// Every check that covers the call, with the keys their counts live under.
    fn checks(ctx: &Context, c: &CallFacts, now: i64) -> Vec<Check> {
        let mut out = Vec::new();
        for l in &ctx.config.limits {
            if let Some(inst) = l.scope.instance(c) {
                out.extend(Self::limit_checks(l, &inst));
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
    pub async fn admit(
        self: &Arc<Self>,
        caller: &Caller,
        model_id: &str,
        region: &str,
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
            // The band of the largest input the body could be: rates never fall with size.
            let band = InputBand::of_side(est.input_tokens);
            match ctx.catalog.decide(&model, model_id, region, day, band) {
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
        let now = crate::context::now_ms();
        let admitted = match &self.shared {
            None => lock(&self.ledger).admit(checks, cost, now).map(Hold::Local),
            Some(sh) => {
                let id = call_id();
                match sh.admit(&checks, cost, &id, now).await {
                    Ok(Ok(())) => Ok(Hold::Shared {
                        checks,
                        id,
                        at_ms: now,
                    }),
                    Ok(Err(refused)) => Err(refused),
                    Err(e) => {
                        self.log_unavailable(&e.0);
                        if Self::allowed_without_redis(&ctx, &checks) {
                            return Ok(None);
                        }
                        tracing::info!(developer = %caller.developer, status = 503, "Refused a request: limits unavailable");
                        let mut r = bedrock_error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "ServiceUnavailableException",
                            "The gateway cannot check this call's budget or limits right now (their shared store is unavailable); try again shortly.",
                        );
                        r.headers_mut()
                            .insert("retry-after", HeaderValue::from_static("5"));
                        return Err(r);
                    }
                }
            }
        };
        match admitted {
            Ok(hold) => Ok(Some(Ticket {
                limiter: self.clone(),
                hold: Some(hold),
                model_id: model_id.to_string(),
                region: region.to_string(),
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
        let ids: Vec<(String, i64)> = lock(&self.ledger).unseen_ids().into_iter().collect();
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

    /// With Redis: seeds the budget counts Redis has not seen (a new period, a first start) with
    /// the store's spend. Without: [`Limiter::refresh`].
    pub async fn refresh_async(self: &Arc<Self>) -> crate::error::Result<()> {
        let me = self.clone();
        let Some(sh) = &self.shared else {
            return tokio::task::spawn_blocking(move || me.refresh())
                .await
                .unwrap_or(Ok(()));
        };
        let seeds = tokio::task::spawn_blocking(move || me.store_spend())
            .await
            .unwrap_or(Ok(Vec::new()))?;
        if let Err(e) = sh.seed(&seeds).await {
            self.log_unavailable(&e.0);
        }
        Ok(())
    }

    /// Every hard budget count's spend in the store: (key, spend, how long Redis keeps it).
    fn store_spend(&self) -> crate::error::Result<Vec<(String, NanoUsd, i64)>> {
        self.reload_config();
        let ctx = self.context();
        if !ctx.config.budgets.iter().any(|b| b.action == Action::Block) {
            return Ok(Vec::new());
        }
        let store = crate::store::open_read_only(&self.db)?;
        let now = ctx.clock.now_ms();
        let mut out = Vec::new();
        for e in crate::commands::budget::evaluate_all(&ctx, &*store)? {
            if e.budget.action != Action::Block {
                continue;
            }
            let inst = if e.budget.scope.each_developer {
                e.scope_value.clone()
            } else {
                "all".to_string()
            };
            out.push((
                budget_key(&e.budget.name, &inst, &e.bounds.label),
                e.status.spent,
                (e.bounds.end_ms - now).max(0) + 7 * 86_400_000,
            ));
        }
        Ok(out)
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
    pub async fn standing(&self, caller: &Caller) -> Vec<serde_json::Value> {
        let ctx = self.context();
        let now = ctx.clock.now_ms();
        let real_now = crate::context::now_ms();
        let facts = Self::facts(&ctx, caller, "", "");
        // Each entry and the checks whose counts it shows.
        let mut shown: Vec<(serde_json::Value, Vec<Check>)> = Vec::new();
        for l in &ctx.config.limits {
            // A limit on a model covers some of the caller's calls: shown all the same.
            let scope = limits::LimitScope {
                model: None,
                ..l.scope.clone()
            };
            let Some(inst) = scope.instance(&facts) else {
                continue;
            };
            let one = limits::Limit { scope, ..l.clone() };
            let checks = Self::limit_checks(&one, &inst);
            shown.push((
                serde_json::json!({"kind": "limit", "name": l.name, "model": l.scope.model}),
                checks,
            ));
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
            shown.push((
                serde_json::json!({
                    "kind": "budget",
                    "name": b.name,
                    "period": format!("{} {}", b.period.name(), bounds.label),
                    "amount_usd": b.amount.to_decimal_micros(),
                    "amount_display": b.amount.to_display(),
                    "resets": bedrock_usage_core::time::format_utc(bounds.end_ms),
                }),
                vec![Check::Budget {
                    budget: b.name.clone(),
                    key: budget_key(&b.name, &inst, &bounds.label),
                    amount: b.amount,
                    resets_ms: bounds.end_ms,
                    period: b.period.name().to_string(),
                }],
            ));
        }
        let all: Vec<Check> = shown.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
        let counts: Vec<(i64, i64)> = match &self.shared {
            Some(sh) => match sh.read(&all, real_now).await {
                Ok(v) => v,
                Err(e) => {
                    self.log_unavailable(&e.0);
                    return shown
                        .into_iter()
                        .map(|(mut v, _)| {
                            v["unavailable"] = true.into();
                            v
                        })
                        .collect();
                }
            },
            None => {
                let mut l = lock(&self.ledger);
                all.iter()
                    .map(|c| match c {
                        Check::Requests { key, .. } | Check::Tokens { key, .. } => {
                            (l.window(key, real_now) as i64, 0)
                        }
                        Check::Concurrent { key, .. } => (l.concurrent(key) as i64, 0),
                        Check::Budget { key, .. } => {
                            let s = l.budget(key);
                            (s.spent.0, s.reserved.0)
                        }
                    })
                    .collect()
            }
        };
        let mut at = counts.into_iter();
        let mut out = Vec::new();
        for (mut v, checks) in shown {
            for c in &checks {
                let (n, reserved) = at.next().unwrap_or((0, 0));
                let n_u = n.max(0) as u64;
                match c {
                    Check::Requests { per_minute, .. } => {
                        v["requests_per_minute"] = (*per_minute).into();
                        v["requests_left"] = per_minute.saturating_sub(n_u).into();
                    }
                    Check::Tokens { per_minute, .. } => {
                        v["tokens_per_minute"] = (*per_minute).into();
                        v["tokens_left"] = per_minute.saturating_sub(n_u).into();
                    }
                    Check::Concurrent { max, .. } => {
                        v["max_concurrent"] = (*max).into();
                        v["concurrent"] = n_u.into();
                    }
                    Check::Budget { amount, .. } => {
                        let spent = NanoUsd(n);
                        let left = NanoUsd((amount.0 - n - reserved).max(0));
                        v["spent_usd"] = spent.to_decimal_micros().into();
                        v["reserved_usd"] = NanoUsd(reserved).to_decimal_micros().into();
                        v["left_usd"] = left.to_decimal_micros().into();
                        v["percent"] = bedrock_usage_core::budget::percent_text(
                            bedrock_usage_core::budget::basis_points(spent, *amount),
                        )
                        .into();
                        v["spent_display"] = spent.to_display().into();
                    }
                }
            }
            out.push(v);
        }
        out
    }
}

/// A call's id in Redis: random, so replicas never collide.
fn call_id() -> String {
    let mut b = [0u8; 12];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn budget_key(name: &str, instance: &str, label: &str) -> String {
    format!("{name}/{instance}/{label}")
}
