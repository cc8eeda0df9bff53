//! `alerts check`: evaluates every budget, writes what is due to the store's outbox (once per
//! budget, scope, period and threshold: the outbox's key), then delivers what the outbox holds,
//! each channel on its own so a failing one does not hold up the others, with retries and
//! backoff. A message is marked sent only after its channel took it; a crash in between sends
//! it again on the next run with the same idempotency key (at least once, never zero times).

use std::collections::BTreeMap;
use std::time::Duration;

use bedrock_usage_core::budget::{self, Budget, DueKind};
use bedrock_usage_core::report::{Filters, GroupKey};
use bedrock_usage_core::rollup::{ceil_to, QUARTER_MS};
use bedrock_usage_core::time::{format_date, format_utc};
use bedrock_usage_core::NanoUsd;

use crate::commands::budget::{evaluate_all, Evaluated};
use crate::commands::report::{build, ReportRequest};
use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::output::{Cell, Records};
use crate::publish::channels;
use crate::store::{FactReader, OutboxMessage, QueuedMessage, Store};

/// The channel name of alerts whose budget names no channel: printed by `alerts check`.
pub const PRINTED: &str = "-";

/// Attempts per message in one run, and the pause before each retry.
const BACKOFF: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];

/// After a run's attempts fail, the next run tries again no sooner than this: a minute after
/// the first failed run, doubling per failed run, at most an hour.
fn next_try_ms(attempts: i64) -> i64 {
    let failed_runs = (attempts / (BACKOFF.len() as i64 + 1)).max(1);
    60_000i64
        .saturating_mul(1 << (failed_runs - 1).min(6))
        .min(3_600_000)
}

/// The three models that cost most in an alert's scope and period.
fn top_models(
    ctx: &Context,
    store: &dyn FactReader,
    b: &Budget,
    e: &Evaluated,
) -> Result<Vec<(String, NanoUsd)>> {
    let s = &b.scope;
    let mut developers: Vec<String> = s.developer.iter().cloned().collect();
    if s.each_developer {
        developers = vec![e.scope_value.clone()];
    }
    let req = ReportRequest {
        keys: vec![GroupKey::Model, GroupKey::CostCenter],
        since: Some(e.bounds.start_ms),
        until: Some(e.bounds.end_ms),
        zone: b.zone.clone(),
        filters: Filters {
            developers,
            teams: s.team.iter().cloned().collect(),
            models: s.model.iter().cloned().collect(),
        },
    };
    let r = build(store, &ctx.config, &ctx.catalog, &req)?;
    let mut by: BTreeMap<String, i64> = BTreeMap::new();
    for row in &r.rows {
        if s.cost_center.is_some() && s.cost_center != row.keys[1] {
            continue;
        }
        *by.entry(row.keys[0].clone().unwrap_or_default())
            .or_default() += row.figures.cost.0;
    }
    let mut v: Vec<(String, NanoUsd)> = by.into_iter().map(|(m, c)| (m, NanoUsd(c))).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(3);
    Ok(v)
}

/// The alert as JSON: the webhook body (schema in docs/budgets.md), rendered for other channels.
fn alert_json(
    e: &Evaluated,
    kind: DueKind,
    key: &str,
    top: &[(String, NanoUsd)],
    now_ms: i64,
) -> serde_json::Value {
    let b = e.budget;
    let st = &e.status;
    let period = format!("{} {}", b.period.name(), e.bounds.label);
    let who = &e.scope_value;
    let (kind_name, threshold, title) = match kind {
        DueKind::Threshold(t) => (
            "budget.threshold",
            Some(t),
            format!("Budget {}: {who} reached {t}%", b.name),
        ),
        DueKind::Forecast => (
            "budget.forecast",
            None,
            format!("Budget {}: {who} is forecast to go over", b.name),
        ),
    };
    let mut text = format!(
        "{who} has spent {} of the {} {} budget `{}` ({}), {} day(s) left.",
        st.spent.to_display(),
        st.amount.to_display(),
        b.period.name(),
        b.name,
        budget::percent_text(st.basis_points),
        st.days_left
    );
    if let Some(f) = st.forecast {
        text.push_str(&format!(
            " At the last week's rate: {} by the period's end.",
            f.to_display()
        ));
    }
    if b.action == budget::Action::Block && st.state == budget::State::Exceeded {
        text.push_str(" The gateway refuses further calls in this scope until the period ends.");
    }
    serde_json::json!({
        "kind": kind_name,
        "key": key,
        "budget": b.name,
        "scope": who,
        "period": period,
        "period_start": format_utc(e.bounds.start_ms),
        "period_end": format_utc(e.bounds.end_ms),
        "threshold_percent": threshold,
        "spent_usd": st.spent.to_decimal_micros(),
        "amount_usd": st.amount.to_decimal_micros(),
        "percent": budget::percent_text(st.basis_points),
        "forecast_usd": st.forecast.map(|f| f.to_decimal_micros()),
        "state": st.state.name(),
        "days_left": st.days_left,
        "action": match b.action { budget::Action::Alert => "alert", budget::Action::Block => "block" },
        "top_models": top.iter().map(|(m, c)| serde_json::json!({
            "model": m, "cost_usd": c.to_decimal_micros(), "cost_display": c.to_display(),
        })).collect::<Vec<_>>(),
        "spent_display": st.spent.to_display(),
        "amount_display": st.amount.to_display(),
        "forecast_display": st.forecast.map(|f| f.to_display()),
        "title": title,
        "text": text,
        "created": format_utc(now_ms),
    })
}

/// One outbox message per channel (the printed pseudo-channel when there is none), each body
/// with its channel's idempotency key.
fn per_channel(
    key: &str,
    channels: &[String],
    body: &serde_json::Value,
    now: i64,
) -> Vec<OutboxMessage> {
    let printed = [PRINTED.to_string()];
    let chans = if channels.is_empty() {
        &printed[..]
    } else {
        channels
    };
    chans
        .iter()
        .map(|ch| {
            let mut b = body.clone();
            b["idempotency_key"] = channels::idempotency_key(key, ch).into();
            OutboxMessage {
                key: key.to_string(),
                channel: ch.clone(),
                body: b.to_string(),
                created_ms: now,
            }
        })
        .collect()
}

/// `[alerts.anomaly]`: each developer whose spend today (in the alerts zone) is above the
/// factor times their median daily spend over the trailing days, and above the floor.
fn anomaly_messages(ctx: &Context, store: &dyn FactReader) -> Result<Vec<OutboxMessage>> {
    let Some(a) = &ctx.config.alerts.anomaly else {
        return Ok(Vec::new());
    };
    let now = ctx.clock.now_ms();
    let zone = &ctx.config.alerts.zone;
    let today = zone.local_day(now);
    let first = today - i64::from(a.days);
    let req = ReportRequest {
        keys: vec![GroupKey::Developer, GroupKey::Day],
        since: Some(zone.day_start_ms(first)),
        until: Some(ceil_to(now, QUARTER_MS).min(zone.day_start_ms(today + 1))),
        zone: zone.clone(),
        filters: Filters::default(),
    };
    let r = build(store, &ctx.config, &ctx.catalog, &req)?;
    let labels: Vec<String> = (first..=today).map(format_date).collect();
    // developer -> spend per day, oldest first, today last
    let mut by: BTreeMap<String, Vec<NanoUsd>> = BTreeMap::new();
    for row in &r.rows {
        let (Some(dev), Some(day)) = (&row.keys[0], &row.keys[1]) else {
            continue;
        };
        if let Some(i) = labels.iter().position(|l| l == day) {
            let v = by
                .entry(dev.clone())
                .or_insert_with(|| vec![NanoUsd(0); labels.len()]);
            v[i] = NanoUsd(v[i].0 + row.figures.cost.0);
        }
    }
    let day = &labels[labels.len() - 1];
    let mut out = Vec::new();
    for (dev, days) in by {
        let (today_spend, trailing) = days.split_last().unwrap_or((&NanoUsd(0), &[]));
        let Some(median) = budget::anomaly(*today_spend, trailing, a.factor_milli, a.floor) else {
            continue;
        };
        let key = format!("anomaly/{dev}/{day}");
        let factor = format!("{}.{:03}", a.factor_milli / 1000, a.factor_milli % 1000);
        let factor = factor.trim_end_matches('0').trim_end_matches('.');
        let text = format!(
            "{dev} has spent {} today ({day}), above {factor} times their median day of the last {} days ({}).",
            today_spend.to_display(),
            a.days,
            median.to_display()
        );
        let body = serde_json::json!({
            "kind": "anomaly.spend",
            "key": key,
            "developer": dev,
            "day": day,
            "spent_usd": today_spend.to_decimal_micros(),
            "median_usd": median.to_decimal_micros(),
            "factor": factor,
            "floor_usd": a.floor.to_decimal_micros(),
            "days": a.days,
            "title": format!("Spend anomaly: {dev}"),
            "link": ctx.config.serve.link(Some(&dev)),
            "text": text,
            "facts": [
                {"label": "Today", "value": today_spend.to_display()},
                {"label": format!("Median day, last {} days", a.days), "value": median.to_display()},
            ],
            "created": format_utc(now),
        });
        out.extend(per_channel(&key, &a.channels, &body, now));
    }
    Ok(out)
}

/// `[[digests]]`: the report of each period that ended, with the change against the period
/// before, once per period when due.
fn digest_messages(ctx: &Context, store: &dyn FactReader) -> Result<Vec<OutboxMessage>> {
    let now = ctx.clock.now_ms();
    let zone = &ctx.config.alerts.zone;
    let mut out = Vec::new();
    for d in &ctx.config.digests {
        let Some((done, before)) = budget::digest_due(d.every, d.hour, zone, now) else {
            continue;
        };
        let keys: Vec<GroupKey> = d.by.iter().filter_map(|k| GroupKey::parse(k)).collect();
        let report = |b: &budget::Bounds| {
            build(
                store,
                &ctx.config,
                &ctx.catalog,
                &ReportRequest {
                    keys: keys.clone(),
                    since: Some(b.start_ms),
                    until: Some(b.end_ms),
                    zone: zone.clone(),
                    filters: Filters::default(),
                },
            )
        };
        let mut r = report(&done)?;
        let prev = report(&before)?;
        r.keep_top(d.top);
        let label = |k: &[Option<String>]| {
            k.iter()
                .map(|v| v.clone().unwrap_or_else(|| "-".into()))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for row in &r.rows {
            let was = prev
                .rows
                .iter()
                .find(|p| p.keys == row.keys)
                .map_or(NanoUsd(0), |p| p.figures.cost);
            let change = budget::change_basis_points(was, row.figures.cost);
            let change_text = change.map_or("new".to_string(), |c| {
                format!(
                    "{}{}",
                    if c >= 0 { "+" } else { "-" },
                    budget::percent_text(c.abs())
                )
            });
            lines.push(format!(
                "{}: {} ({change_text})",
                label(&row.keys),
                row.figures.cost.to_display()
            ));
            rows.push(serde_json::json!({
                "keys": row.keys,
                "cost_usd": row.figures.cost.to_decimal_micros(),
                "previous_cost_usd": was.to_decimal_micros(),
                "change_percent": change.map(budget::percent_text),
                "calls": row.figures.calls,
            }));
        }
        let total = r.total.cost;
        let total_change = budget::change_basis_points(prev.total.cost, total);
        let title = format!("{} digest: {} {}", d.name, d.every.name(), done.label);
        let text = format!(
            "{} spent {} in all{} by {}; top {}:\n{}",
            done.label,
            total.to_display(),
            total_change.map_or(String::new(), |c| format!(
                " ({}{} against {})",
                if c >= 0 { "+" } else { "-" },
                budget::percent_text(c.abs()),
                before.label
            )),
            d.by.join(", "),
            r.rows.len(),
            lines.join("\n")
        );
        let key = format!("digest/{}/{}", d.name, done.label);
        let body = serde_json::json!({
            "kind": "digest",
            "key": key,
            "digest": d.name,
            "period": format!("{} {}", d.every.name(), done.label),
            "period_start": format_utc(done.start_ms),
            "period_end": format_utc(done.end_ms),
            "by": d.by,
            "total_cost_usd": total.to_decimal_micros(),
            "previous_total_cost_usd": prev.total.cost.to_decimal_micros(),
            "rows": rows,
            "link": ctx.config.serve.link(None),
            "title": title,
            "text": text,
            "facts": [
                {"label": "Spent", "value": total.to_display()},
                {"label": format!("Before ({})", before.label), "value": prev.total.cost.to_display()},
            ],
            "created": format_utc(now),
        });
        out.extend(per_channel(&key, &d.channels, &body, now));
    }
    Ok(out)
}

/// What is due now, one message per (alert, channel).
fn due_messages(ctx: &Context, store: &dyn FactReader) -> Result<Vec<OutboxMessage>> {
    let now = ctx.clock.now_ms();
    let mut out = anomaly_messages(ctx, store)?;
    out.extend(digest_messages(ctx, store)?);
    for e in evaluate_all(ctx, store)? {
        // The key names the person for `each_developer`, else `all`: the budget's name already
        // says whose spend it is, and a key must not change when its description does.
        let scope_key = if e.budget.scope.each_developer {
            e.scope_value.as_str()
        } else {
            "all"
        };
        let dues = budget::due(&e.budget.name, scope_key, &e.bounds, &e.status);
        if dues.is_empty() {
            continue;
        }
        let top = top_models(ctx, store, e.budget, &e)?;
        for d in dues {
            let mut body = alert_json(&e, d.kind, &d.key, &top, now);
            let developer = if e.budget.scope.each_developer {
                Some(e.scope_value.as_str())
            } else {
                e.budget.scope.developer.as_deref()
            };
            body["link"] = ctx.config.serve.link(developer).into();
            out.extend(per_channel(&d.key, &e.budget.channels, &body, now));
        }
    }
    Ok(out)
}

/// One message's delivery outcome.
struct Outcome {
    id: i64,
    channel: String,
    result: std::result::Result<(), String>,
    attempts: i64,
}

/// Delivers every unsent message that is due: each channel's messages in order, the channels
/// side by side; each result is marked in the store as soon as it is known.
fn deliver(ctx: &Context, store: &mut dyn Store) -> Result<Vec<Outcome>> {
    let queued = store.outbox(Some(ctx.clock.now_ms()))?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_channel: BTreeMap<String, Vec<QueuedMessage>> = BTreeMap::new();
    for q in queued {
        by_channel.entry(q.channel.clone()).or_default().push(q);
    }
    let mut outcomes = Vec::new();
    // Printed alerts need no network.
    if let Some(printed) = by_channel.remove(PRINTED) {
        for q in printed {
            let v: serde_json::Value = serde_json::from_str(&q.body).unwrap_or_default();
            println!("{}", v["text"].as_str().unwrap_or(&q.key));
            store.mark_sent(q.id, ctx.clock.now_ms(), q.attempts + 1)?;
            outcomes.push(Outcome {
                id: q.id,
                channel: PRINTED.into(),
                result: Ok(()),
                attempts: q.attempts + 1,
            });
        }
    }
    if by_channel.is_empty() {
        return Ok(outcomes);
    }
    let rt = crate::sources::remote::runtime()?;
    let poster = {
        let _g = rt.enter();
        channels_poster()?
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    for (name, msgs) in by_channel {
        let channel = ctx.config.channels.iter().find(|c| c.name == name).cloned();
        let tx = tx.clone();
        let poster = poster.clone();
        let clock = ctx.clock;
        let timeout = Duration::from_millis(ctx.config.alerts.timeout_ms.max(1) as u64);
        rt.spawn(async move {
            // Once a message failed every attempt, the channel is down for this run: its other
            // messages wait for the next run rather than each taking its own attempts.
            let mut down: Option<String> = None;
            for q in msgs {
                let mut attempts = q.attempts;
                let result = match (&channel, &down) {
                    (_, Some(why)) => Err(format!("not tried: {why}")),
                    (None, None) => Err(format!(
                        "no channel is named `{name}` in the config any more"
                    )),
                    (Some(ch), None) => {
                        let alert: serde_json::Value =
                            serde_json::from_str(&q.body).unwrap_or_default();
                        let idem = channels::idempotency_key(&q.key, &q.channel);
                        let (r, n) = attempt(&poster, ch, &alert, &idem, clock, timeout).await;
                        attempts += n;
                        if let Err(e) = &r {
                            down = Some(e.clone());
                        }
                        r
                    }
                };
                let _ = tx.send(Outcome {
                    id: q.id,
                    channel: name.clone(),
                    result,
                    attempts,
                });
            }
        });
    }
    drop(tx);
    rt.block_on(async {
        while let Some(o) = rx.recv().await {
            let now = ctx.clock.now_ms();
            let marked = match &o.result {
                Ok(()) => store.mark_sent(o.id, now, o.attempts),
                Err(e) => store.mark_failed(o.id, e, now + next_try_ms(o.attempts), o.attempts),
            };
            marked?;
            outcomes.push(o);
        }
        Ok::<(), crate::store::StoreError>(())
    })?;
    Ok(outcomes)
}

/// Up to three attempts, with the pauses of [`BACKOFF`] between them: the last result and the
/// number of attempts made.
async fn attempt(
    poster: &crate::publish::http::Poster,
    ch: &bedrock_usage_core::budget::Channel,
    alert: &serde_json::Value,
    idempotency: &str,
    clock: crate::context::Clock,
    timeout: Duration,
) -> (std::result::Result<(), String>, i64) {
    let mut r = Err(String::new());
    let mut n = 0;
    for pause in std::iter::once(None).chain(BACKOFF.iter().map(Some)) {
        if let Some(p) = pause {
            tokio::time::sleep(*p).await;
        }
        n += 1;
        r = channels::send(poster, ch, alert, idempotency, clock.now_ms(), timeout).await;
        if r.is_ok() {
            break;
        }
    }
    (r, n)
}

fn channels_poster() -> Result<crate::publish::http::Poster> {
    crate::publish::http::Poster::new().map_err(crate::error::Error::Invalid)
}

/// `alerts check [--dry-run]`.
pub fn check(ctx: &Context, dry_run: bool) -> Result<u8> {
    let mut store = ctx.open_store()?;
    check_in(ctx, &mut *store, dry_run)
}

/// `alerts check` on an open store (`sync --watch` runs it after every round).
pub fn check_in(ctx: &Context, store: &mut dyn Store, dry_run: bool) -> Result<u8> {
    let due = due_messages(ctx, &*store)?;
    if dry_run {
        let known: std::collections::HashSet<(String, String)> = store
            .outbox(None)?
            .into_iter()
            .map(|q| (q.key, q.channel))
            .collect();
        let new: Vec<&OutboxMessage> = due
            .iter()
            .filter(|m| !known.contains(&(m.key.clone(), m.channel.clone())))
            .collect();
        for m in &new {
            let v: serde_json::Value = serde_json::from_str(&m.body).unwrap_or_default();
            println!(
                "would send to {}: {}",
                m.channel,
                v["text"].as_str().unwrap_or(&m.key)
            );
        }
        eprintln!(
            "{} alert message(s) due, {} not sent before; nothing sent (--dry-run)",
            due.len(),
            new.len()
        );
        return Ok(EXIT_OK);
    }
    let added = store.enqueue(&due)?;
    let outcomes = deliver(ctx, store)?;
    let sent = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let mut failed: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for o in &outcomes {
        if let Err(e) = &o.result {
            let f = failed.entry(o.channel.as_str()).or_insert((0, e.as_str()));
            f.0 += 1;
        }
    }
    eprintln!(
        "alerts: {} message(s) due, {added} new; {sent} sent{}",
        due.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", outcomes.len() - sent)
        }
    );
    for (ch, (n, why)) in &failed {
        eprintln!(
            "error: channel `{ch}`: {n} message(s) not delivered: {why}; they are kept and tried again by the next `alerts check`"
        );
    }
    Ok(if failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    })
}

/// How a channel's deliveries stand, from the outbox (`aws status`).
pub struct ChannelHealth {
    pub name: String,
    /// Messages sent so far, and when the last one went.
    pub sent: usize,
    pub last_sent_ms: Option<i64>,
    /// Messages not delivered yet, and the last error among them (a failing channel).
    pub waiting: usize,
    pub last_error: Option<String>,
}

/// Every configured channel (and any the outbox still names), in the config's order.
pub fn channel_health(ctx: &Context, store: &dyn Store) -> Result<Vec<ChannelHealth>> {
    let mut out: Vec<ChannelHealth> = ctx
        .config
        .channels
        .iter()
        .map(|c| ChannelHealth {
            name: c.name.clone(),
            sent: 0,
            last_sent_ms: None,
            waiting: 0,
            last_error: None,
        })
        .collect();
    for q in store.outbox(None)? {
        if q.channel == PRINTED {
            continue;
        }
        let i = match out.iter().position(|h| h.name == q.channel) {
            Some(i) => i,
            None => {
                out.push(ChannelHealth {
                    name: q.channel.clone(),
                    sent: 0,
                    last_sent_ms: None,
                    waiting: 0,
                    last_error: Some(format!(
                        "no channel is named `{}` in the config any more",
                        q.channel
                    )),
                });
                out.len() - 1
            }
        };
        let h = &mut out[i];
        match q.sent_ms {
            Some(t) => {
                h.sent += 1;
                h.last_sent_ms = h.last_sent_ms.max(Some(t));
            }
            None => {
                h.waiting += 1;
                if q.last_error.is_some() {
                    h.last_error = q.last_error;
                }
            }
        }
    }
    Ok(out)
}

/// `alerts outbox`.
pub fn outbox(ctx: &Context) -> Result<u8> {
    let store = ctx.existing_store()?;
    let opt_time = |v: Option<i64>| v.map_or(Cell::Null, |t| Cell::text(format_utc(t)));
    let rows = store
        .outbox(None)?
        .into_iter()
        .map(|q| {
            vec![
                Cell::text(&q.key),
                Cell::text(&q.channel),
                Cell::text(format_utc(q.created_ms)),
                Cell::int(q.attempts.max(0) as u64),
                opt_time(q.sent_ms),
                if q.sent_ms.is_none() {
                    Cell::text(format_utc(q.next_ms))
                } else {
                    Cell::Null
                },
                q.last_error.map_or(Cell::Null, Cell::Text),
            ]
        })
        .collect();
    Records {
        fields: [
            "key",
            "channel",
            "due",
            "attempts",
            "sent",
            "next_try",
            "last_error",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
    .print(ctx.format)?;
    Ok(EXIT_OK)
}

/// Sends one message to a channel now, outside the outbox (`report --send`): the same attempts
/// and backoff as `alerts check`; the error names the channel.
pub fn send_now(ctx: &Context, name: &str, alert: &serde_json::Value) -> Result<()> {
    let Some(ch) = ctx.config.channels.iter().find(|c| c.name == name) else {
        return Err(crate::error::Error::Invalid(format!(
            "no channel is named `{name}`"
        )));
    };
    let rt = crate::sources::remote::runtime()?;
    let timeout = Duration::from_millis(ctx.config.alerts.timeout_ms.max(1) as u64);
    let key = alert["key"].as_str().unwrap_or("").to_string();
    let idem = channels::idempotency_key(&key, name);
    let r = rt.block_on(async {
        let poster = channels_poster()?;
        let (r, _) = attempt(&poster, ch, alert, &idem, ctx.clock, timeout).await;
        Ok::<_, crate::error::Error>(r)
    })?;
    r.map_err(|e| crate::error::Error::Invalid(format!("sending to channel `{name}`: {e}")))
}
