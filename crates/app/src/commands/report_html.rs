//! `report --format html`: one self-contained document for finance. The report asked for, then
//! the same range by team, cost center, developer and model, each with an inline SVG chart and
//! its table, and spend over time. No scripts, no external files: it opens anywhere and prints
//! (or saves as PDF) on A4 or Letter. Every figure comes from [`report::build`], so each section's
//! total is the total of `report --format json` over the same range, to the cent.

use bedrock_usage_core::money::{group_thousands, NanoUsd};
use bedrock_usage_core::report::{GroupKey, UsageReport};
use bedrock_usage_core::time::{day_label, format_utc, MS_PER_DAY};

use crate::commands::report::{self, ReportRequest};
use crate::context::Context;
use crate::error::Result;
use crate::output::html_escape as esc;
use crate::store::FactReader;

/// The sections every document has, after the report asked for (when that is not one of them).
const SECTIONS: [(GroupKey, &str); 4] = [
    (GroupKey::Team, "By team"),
    (GroupKey::CostCenter, "By cost center"),
    (GroupKey::Developer, "By developer"),
    (GroupKey::Model, "By model"),
];

/// Bars a section's chart shows (the dearest rows; the table has them all).
const CHART_ROWS: usize = 12;

pub fn render(
    ctx: &Context,
    store: &dyn FactReader,
    req: &ReportRequest,
    top: Option<usize>,
) -> Result<String> {
    let build = |keys: Vec<GroupKey>| -> Result<UsageReport> {
        report::build(store, &ctx.config, &ctx.catalog, &with_keys(req, keys))
    };
    // `--top N` keeps each section's dearest rows (the totals count them all); the chart over
    // time keeps every period.
    let build_top = |keys: Vec<GroupKey>| -> Result<UsageReport> {
        let mut r = build(keys)?;
        if let Some(n) = top {
            r.keep_top(n);
        }
        Ok(r)
    };
    let data = store.time_range()?;
    let (from, to) = (
        req.since.or(data.map(|d| d.0)),
        req.until.or(data.map(|d| d.1 + 1)),
    );
    let period = match (from, to) {
        (Some(a), Some(b)) if b - a <= 62 * MS_PER_DAY => GroupKey::Day,
        (Some(a), Some(b)) if b - a <= 366 * MS_PER_DAY => GroupKey::Week,
        _ => GroupKey::Month,
    };
    let over_time = build(vec![period])?;
    let mut sections: Vec<(String, String, UsageReport)> = Vec::new();
    let standard = req.keys.len() == 1 && SECTIONS.iter().any(|(k, _)| *k == req.keys[0]);
    if !standard {
        let names: Vec<&str> = req.keys.iter().map(|k| k.cli_name()).collect();
        sections.push((
            format!("by-{}", names.join("-")),
            format!("By {}", names.join(", ")),
            build_top(req.keys.clone())?,
        ));
    }
    for (k, title) in SECTIONS {
        sections.push((
            format!("by-{}", k.cli_name()),
            title.to_string(),
            build_top(vec![k])?,
        ));
    }
    let total = &over_time.total;

    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let range = range_text(req, from, to);
    h.push_str(&format!(
        "<title>Claude on Bedrock: usage and cost, {}</title>\n",
        esc(&range)
    ));
    h.push_str(&format!("<style>\n{CSS}</style>\n</head>\n<body>\n"));
    h.push_str(&format!(
        "<header>\n<h1>Claude on Bedrock: usage and cost</h1>\n<p class=\"range\">{}</p>\n",
        esc(&range)
    ));
    h.push_str(&filters_text(req));
    h.push_str("</header>\n");

    h.push_str("<section class=\"summary\">\n");
    let cards = [
        ("Spend", cost_text(total), "total", micros_attr(total)),
        (
            "Saved by prompt caching",
            total.cache_saved.to_display(),
            "cache-saved",
            format!(" data-micros=\"{}\"", total.cache_saved.micros()),
        ),
        (
            "Calls",
            group_thousands(total.calls),
            "calls",
            String::new(),
        ),
        (
            "Tokens",
            group_thousands(total.tokens.total()),
            "tokens",
            String::new(),
        ),
    ];
    for (label, value, id, attr) in cards {
        h.push_str(&format!(
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value\" id=\"{id}\"{attr}>{}</div></div>\n",
            esc(&value)
        ));
    }
    h.push_str("</section>\n");
    if total.unpriced_calls > 0 {
        h.push_str(&format!(
            "<p class=\"note\">{} calls could not be priced and are not in the spend (see Warnings).</p>\n",
            group_thousands(total.unpriced_calls)
        ));
    }

    h.push_str(&format!(
        "<section id=\"over-time\"{}>\n<h2>Spend per {}</h2>\n",
        micros_attr(total),
        period.cli_name()
    ));
    h.push_str(&columns_svg(&over_time));
    h.push_str("</section>\n");

    for (id, title, r) in &sections {
        h.push_str(&format!(
            "<section id=\"{}\" class=\"breakdown\"{}>\n<h2>{}</h2>\n",
            esc(id),
            micros_attr(&r.total),
            esc(title)
        ));
        h.push_str(&bars_svg(r));
        h.push_str(&report::table(r).render_html("figures"));
        h.push_str("</section>\n");
    }

    h.push_str(&warnings(&sections));
    h.push_str(&format!(
        "<footer>Made by bedrock-usage {} at {} from the store's invocation records, priced from its catalog (cost exact to the micro-dollar, shown to the cent). Cache savings: cache tokens at the plain input rate, less what they cost.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        format_utc(ctx.clock.now_ms())
    ));
    Ok(h)
}

fn with_keys(req: &ReportRequest, keys: Vec<GroupKey>) -> ReportRequest {
    ReportRequest {
        keys,
        since: req.since,
        until: req.until,
        zone: req.zone.clone(),
        filters: req.filters.clone(),
    }
}

/// `2026-11-01 to 2026-11-30 (Europe/Berlin)`: local dates, the last one included.
fn range_text(req: &ReportRequest, from: Option<i64>, to: Option<i64>) -> String {
    let z = &req.zone;
    let day = |ms: i64| day_label(z.local_day(ms));
    let whole = |ms: i64| z.day_start_ms(z.local_day(ms)) == ms;
    let start = |ms: i64| {
        if whole(ms) {
            day(ms)
        } else {
            z.format_local_minute(ms)
        }
    };
    let end = |ms: i64| {
        if whole(ms) {
            day(ms - 1)
        } else {
            z.format_local_minute(ms)
        }
    };
    let what = match (req.since, req.until) {
        (None, None) => "every stored call: ",
        _ => "",
    };
    match (from, to) {
        (Some(a), Some(b)) => format!("{what}{} to {} ({})", start(a), end(b), z.name()),
        _ => "no calls are stored".to_string(),
    }
}

fn filters_text(req: &ReportRequest) -> String {
    let f = &req.filters;
    let mut parts = Vec::new();
    for (name, v) in [
        ("developers", &f.developers),
        ("teams", &f.teams),
        ("models", &f.models),
    ] {
        if !v.is_empty() {
            parts.push(format!("{name} {}", v.join(", ")));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"filters\">Only {}.</p>\n",
            esc(&parts.join("; "))
        )
    }
}

fn cost_text(f: &bedrock_usage_core::report::Figures) -> String {
    match f.known_cost() {
        None => "unpriced".into(),
        Some(c) => c.to_display(),
    }
}

fn micros_attr(f: &bedrock_usage_core::report::Figures) -> String {
    match f.known_cost() {
        None => String::new(),
        Some(c) => format!(" data-micros=\"{}\"", c.micros()),
    }
}

/// A bar's length in `0..=full` for `v` of `max` (integers: money is never a float).
fn scale(v: NanoUsd, max: NanoUsd, full: i64) -> i64 {
    if max.0 <= 0 || v.0 <= 0 {
        return 0;
    }
    (v.0 as i128 * full as i128 / max.0 as i128) as i64
}

/// Spend per period as columns, with the dearest period's cost and the first and last labels.
fn columns_svg(r: &UsageReport) -> String {
    let (w, hgt, pad) = (720i64, 160i64, 4i64);
    if r.rows.is_empty() {
        return "<p class=\"note\">No calls in this range.</p>\n".into();
    }
    let max = r
        .rows
        .iter()
        .map(|x| x.figures.cost)
        .max()
        .unwrap_or_default();
    let n = r.rows.len() as i64;
    let step = (w / n).max(1);
    let bar = (step - pad).max(1);
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {}\" width=\"100%\" role=\"img\" aria-label=\"spend per period\">\n",
        hgt + 36
    );
    for (i, row) in r.rows.iter().enumerate() {
        let bh = scale(row.figures.cost, max, hgt - 16);
        let label = row.keys[0].clone().unwrap_or_default();
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{bh}\" class=\"bar\"><title>{}: {}</title></rect>\n",
            i as i64 * step,
            hgt - bh,
            esc(&label),
            esc(&cost_text(&row.figures))
        ));
    }
    s.push_str(&format!(
        "<text x=\"0\" y=\"11\" class=\"axis\">{}</text>\n",
        esc(&max.to_display())
    ));
    let first = r.rows[0].keys[0].clone().unwrap_or_default();
    let last = r.rows[r.rows.len() - 1].keys[0].clone().unwrap_or_default();
    s.push_str(&format!(
        "<text x=\"0\" y=\"{}\" class=\"axis\">{}</text>\n",
        hgt + 16,
        esc(&first)
    ));
    if r.rows.len() > 1 {
        s.push_str(&format!(
            "<text x=\"{w}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text>\n",
            hgt + 16,
            esc(&last)
        ));
    }
    s + "</svg>\n"
}

/// The dearest rows as horizontal bars, labelled with their cost.
fn bars_svg(r: &UsageReport) -> String {
    let mut rows: Vec<_> = r.rows.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.figures.cost));
    rows.truncate(CHART_ROWS);
    if rows.is_empty() {
        return String::new();
    }
    let (label_w, bar_w, line) = (220i64, 380i64, 20i64);
    let max = rows[0].figures.cost;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 720 {}\" width=\"100%\" role=\"img\" aria-label=\"cost by row\">\n",
        rows.len() as i64 * line + 4
    );
    for (i, row) in rows.iter().enumerate() {
        let y = i as i64 * line;
        let name = row
            .keys
            .iter()
            .map(|k| k.clone().unwrap_or_else(|| "(none)".into()))
            .collect::<Vec<_>>()
            .join(" · ");
        let short: String = if name.chars().count() > 32 {
            name.chars().take(31).collect::<String>() + "…"
        } else {
            name.clone()
        };
        let len = scale(row.figures.cost, max, bar_w);
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" class=\"label\" text-anchor=\"end\">{}</text>\n<rect x=\"{label_w}\" y=\"{}\" width=\"{len}\" height=\"{}\" class=\"bar\"/>\n<text x=\"{}\" y=\"{}\" class=\"value\">{}</text>\n",
            label_w - 6,
            y + 14,
            esc(&short),
            y + 3,
            line - 6,
            label_w + len + 6,
            y + 14,
            esc(&cost_text(&row.figures))
        ));
    }
    s + "</svg>\n"
}

/// The report's warnings (unpriced models, shared principals, conflicting metadata), as the
/// command says them on stderr.
fn warnings(sections: &[(String, String, UsageReport)]) -> String {
    let Some((_, _, r)) = sections.iter().find(|s| s.0 == "by-developer") else {
        return String::new();
    };
    let items = report::warnings(r);
    let mut s = String::from("<section id=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
    if items.is_empty() {
        s.push_str("<li>none: every call is priced and attributed to a developer</li>\n");
    }
    for i in items {
        s.push_str(&format!("<li>{}</li>\n", esc(&i)));
    }
    s + "</ul>\n</section>\n"
}

const CSS: &str = r#"body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; margin: 24px auto; max-width: 960px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.range, .filters { margin: 2px 0; color: #4a5568; }
.summary { display: flex; gap: 12px; margin: 16px 0; }
.card { flex: 1; border: 1px solid #d8dde6; border-radius: 6px; padding: 8px 12px; }
.card .label { color: #4a5568; font-size: 12px; }
.card .value { font-size: 20px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin-top: 6px; }
th, td { padding: 3px 6px; border-bottom: 1px solid #eef1f5; text-align: left; white-space: nowrap; }
td:first-child { white-space: normal; overflow-wrap: anywhere; max-width: 240px; }
th { background: #f4f6f9; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; border-top: 2px solid #1d2430; }
svg.chart { max-width: 720px; display: block; }
svg .bar { fill: #3b6fd8; }
svg text { font-size: 11px; fill: #1d2430; }
svg .axis { fill: #4a5568; }
.note { color: #8a5a00; }
code { font-size: 12px; }
footer { margin-top: 28px; color: #4a5568; font-size: 11px; }
@page { margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; }
  section { break-inside: avoid-page; }
  section.breakdown { break-inside: auto; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  svg .bar { fill: #3b6fd8; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;
