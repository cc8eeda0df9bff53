//! `budget status`: where every configured budget stands now. The spend is the report maths'
//! (the same integers `report` prints for the same scope and period); the budget maths
//! (periods, percent, forecast, state) is the core's.

use bedrock_usage_core::budget::{self, Bounds, Budget, Status};
use bedrock_usage_core::report::{Filters, GroupKey};
use bedrock_usage_core::rollup::{ceil_to, QUARTER_MS};
use bedrock_usage_core::NanoUsd;

use crate::commands::report::{build, ReportRequest};
use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{Cell, Records};
use crate::store::FactReader;

/// One budget for one scope value (a developer, for `each_developer`) at one moment.
pub struct Evaluated<'a> {
    pub budget: &'a Budget,
    /// The developer for `each_developer` budgets; the budget's scope described otherwise.
    pub scope_value: String,
    pub bounds: Bounds,
    pub status: Status,
    /// Calls in scope whose model has no price (their cost is not in `spent`).
    pub unpriced_calls: u64,
}

/// Spend per scope value over `[since, until)`: (developer or "" -> cost, unpriced calls).
fn spend(
    ctx: &Context,
    store: &dyn FactReader,
    b: &Budget,
    since: i64,
    until: Option<i64>,
) -> Result<Vec<(String, NanoUsd, u64)>> {
    let s = &b.scope;
    let req = ReportRequest {
        keys: vec![GroupKey::Developer, GroupKey::CostCenter],
        since: Some(since),
        until,
        zone: b.zone.clone(),
        filters: Filters {
            developers: s.developer.iter().cloned().collect(),
            teams: s.team.iter().cloned().collect(),
            models: s.model.iter().cloned().collect(),
        },
    };
    let r = build(store, &ctx.config, &ctx.catalog, &req)?;
    let mut by: std::collections::BTreeMap<String, (NanoUsd, u64)> = Default::default();
    for row in &r.rows {
        let cost_center = row.keys[1].as_deref();
        if s.cost_center.is_some() && s.cost_center.as_deref() != cost_center {
            continue;
        }
        let who = if s.each_developer {
            row.keys[0].clone().unwrap_or_default()
        } else {
            String::new()
        };
        let e = by.entry(who).or_default();
        e.0 = NanoUsd(e.0 .0 + row.figures.cost.0);
        e.1 += row.figures.unpriced_calls;
    }
    Ok(by.into_iter().map(|(k, (c, u))| (k, c, u)).collect())
}

/// Every budget's status at the context's clock.
pub fn evaluate_all<'a>(ctx: &'a Context, store: &dyn FactReader) -> Result<Vec<Evaluated<'a>>> {
    let now = ctx.clock.now_ms();
    let mut out = Vec::new();
    for b in &ctx.config.budgets {
        let bounds = b.period.around(&b.zone, now);
        // Spent so far: up to now (on the quarter hour after it, where the rollups end), so a
        // clock set back in time sees the spend of that moment.
        let until = ceil_to(now, QUARTER_MS).min(bounds.end_ms);
        let spent = spend(ctx, store, b, bounds.start_ms, Some(until))?;
        let recent = if b.forecast {
            let (from, _) = budget::forecast_window(&bounds, now);
            spend(ctx, store, b, from, Some(until))?
        } else {
            Vec::new()
        };
        let mut values: Vec<(String, NanoUsd, u64)> = spent;
        if b.scope.each_developer {
            // People the config names in scope count from zero, so they are listed too.
            for (dev, (team, cc)) in &ctx.config.developers {
                let in_scope = b
                    .scope
                    .team
                    .as_ref()
                    .is_none_or(|t| team.as_ref() == Some(t))
                    && b.scope
                        .cost_center
                        .as_ref()
                        .is_none_or(|c| cc.as_ref() == Some(c));
                if in_scope && !values.iter().any(|v| &v.0 == dev) {
                    values.push((dev.clone(), NanoUsd(0), 0));
                }
            }
            values.sort_by(|a, b| a.0.cmp(&b.0));
        } else if values.is_empty() {
            values.push((String::new(), NanoUsd(0), 0));
        }
        for (who, cost, unpriced) in values {
            let recent_cost = b.forecast.then(|| {
                recent
                    .iter()
                    .find(|r| r.0 == who)
                    .map_or(NanoUsd(0), |r| r.1)
            });
            let status = budget::evaluate(
                b.amount,
                &b.thresholds,
                b.period,
                &bounds,
                cost,
                recent_cost,
                now,
            );
            out.push(Evaluated {
                budget: b,
                scope_value: if b.scope.each_developer {
                    who
                } else {
                    b.scope.describe()
                },
                bounds: bounds.clone(),
                status,
                unpriced_calls: unpriced,
            });
        }
    }
    Ok(out)
}

/// `budget status`.
/// `budget status` as records: one row per budget (per person for `each_developer`).
pub fn records(all: &[Evaluated]) -> Records {
    let usd = |n: NanoUsd| Cell::Number(n.to_decimal_micros());
    let rows = all
        .iter()
        .map(|e| {
            let st = &e.status;
            vec![
                Cell::text(&e.budget.name),
                Cell::text(&e.scope_value),
                Cell::text(format!("{} {}", e.budget.period.name(), e.bounds.label)),
                usd(st.spent),
                usd(st.amount),
                Cell::text(budget::percent_text(st.basis_points)),
                st.forecast.map_or(Cell::Null, usd),
                Cell::text(st.state.name()),
                Cell::int(st.days_left as u64),
                Cell::text(match e.budget.action {
                    budget::Action::Alert => "alert",
                    budget::Action::Block => "block",
                }),
            ]
        })
        .collect();
    Records {
        fields: [
            "budget",
            "scope",
            "period",
            "spent_usd",
            "amount_usd",
            "percent",
            "forecast_usd",
            "state",
            "days_left",
            "action",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

pub fn status(ctx: &Context) -> Result<u8> {
    if ctx.config.budgets.is_empty() {
        invalid!(
            "no budgets are configured: add [[budgets]] to the config file (see docs/budgets.md)"
        );
    }
    let store = ctx.existing_store()?;
    let all = evaluate_all(ctx, &*store)?;
    records(&all).print(ctx.format)?;
    for e in all.iter().filter(|e| e.unpriced_calls > 0) {
        eprintln!(
            "warning: budget `{}` ({}): {} call(s) of unpriced models are not in its spend (see `bedrock-usage report --by model`)",
            e.budget.name, e.scope_value, e.unpriced_calls
        );
    }
    let exceeded = all
        .iter()
        .any(|e| e.status.state == budget::State::Exceeded);
    Ok(if exceeded { EXIT_CHECK_FAILED } else { EXIT_OK })
}
