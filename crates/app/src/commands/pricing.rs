//! `pricing list | show MODEL_ID | unpriced`: the catalog, how one model id is priced and why,
//! and the model ids in the store that have no price.

use bedrock_usage_core::pricing::{normalize_model_id, Geography, Rates, LONG_CONTEXT_THRESHOLD};
use bedrock_usage_core::time::{format_date, parse_date};

use super::report;
use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{emit, Cell, Format, Records, Table};

/// `3.75` from pico-dollars per token (USD per million tokens, at least two decimals).
pub fn usd_per_million(pico: i64) -> String {
    let int = pico / 1_000_000;
    let frac = pico % 1_000_000;
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{int}.{f}")
}

fn rate_cells(r: &Rates) -> Vec<String> {
    vec![
        usd_per_million(r.input),
        usd_per_million(r.output),
        usd_per_million(r.cache_write_5m),
        r.cache_write_1h
            .map(usd_per_million)
            .unwrap_or_else(|| "-".into()),
        usd_per_million(r.cache_read),
    ]
}

/// `pricing list`.
pub fn list(ctx: &Context) -> Result<u8> {
    let (cat, format) = (&ctx.catalog, ctx.format);
    let today = ctx.clock.today();
    let headers = [
        "model",
        "name",
        "input",
        "output",
        "cache_write_5m",
        "cache_write_1h",
        "cache_read",
        "from",
        "regional_premium",
        "long_context",
        "origin",
        "confirmed",
        "source",
    ];
    let mut rows = Vec::new();
    let mut sources: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut unconfirmed = Vec::new();
    for e in cat.entries() {
        let current = e
            .rates
            .iter()
            .rev()
            .find(|r| r.from_day <= today)
            .or(e.rates.first());
        let Some(r) = current else { continue };
        let mut row = vec![e.key.clone(), e.name.clone()];
        row.extend(rate_cells(r));
        row.push(format_date(r.from_day));
        row.push(
            e.regional_premium
                .map(|p| format!("x{}", p.describe()))
                .unwrap_or_else(|| "-".into()),
        );
        row.push(
            e.long_context
                .map(|(i, o)| format!("in x{}, out x{}", i.describe(), o.describe()))
                .unwrap_or_else(|| "-".into()),
        );
        row.push(e.origin.clone());
        row.push(if e.confirmed { "yes" } else { "no" }.to_string());
        let source = e.source.clone().unwrap_or_else(|| "-".into());
        row.push(source.clone());
        sources.entry(source).or_default().push(e.key.clone());
        if !e.confirmed {
            unconfirmed.push(e.key.clone());
        }
        rows.push(row);
    }
    match format {
        Format::Table | Format::Markdown => {
            let t = Table {
                headers: [
                    "model",
                    "name",
                    "input",
                    "output",
                    "cache write 5m",
                    "cache write 1h",
                    "cache read",
                    "from",
                    "regional",
                    "long context",
                    "origin",
                    "confirmed",
                ]
                .map(String::from)
                .to_vec(),
                right: vec![
                    false, false, true, true, true, true, true, false, false, false, false, false,
                ],
                // The source is long: listed under the table.
                rows: rows
                    .into_iter()
                    .map(|mut r| {
                        r.pop();
                        r
                    })
                    .collect(),
                footer: None,
            };
            t.print(format)?;
            if format == Format::Table {
                let mut text = String::from("\nRates in USD per million tokens, on-demand, in force today. `regional`: multiple on geographic and in-region endpoints (not `global.`).\n\nSources:\n");
                for (source, keys) in &sources {
                    text.push_str(&format!("  {source}: {}\n", keys.join(", ")));
                }
                if !unconfirmed.is_empty() {
                    text.push_str(&format!(
                        "Unconfirmed (from secondary sources; override with a catalog file if your bill differs): {}\n",
                        unconfirmed.join(", ")
                    ));
                }
                emit(&text)?;
            }
        }
        Format::Json | Format::Csv | Format::Aws => {
            let rec = Records {
                fields: headers.map(String::from).to_vec(),
                rows: rows
                    .into_iter()
                    .map(|r| {
                        r.into_iter()
                            .enumerate()
                            .map(|(i, v)| {
                                if (2..=6).contains(&i) && v != "-" {
                                    Cell::Number(v)
                                } else if v == "-" {
                                    Cell::Null
                                } else {
                                    Cell::Text(v)
                                }
                            })
                            .collect()
                    })
                    .collect(),
            };
            rec.print(format)?;
        }
    }
    Ok(EXIT_OK)
}

/// `pricing show MODEL_ID [--date]`.
pub fn show(ctx: &Context, model_id: &str, date: Option<&str>) -> Result<u8> {
    let (cat, config, format) = (&ctx.catalog, &ctx.config, ctx.format);
    let day = match date {
        Some(d) => match parse_date(d) {
            Some(day) => day,
            None => invalid!("--date: `{d}` is not a date (YYYY-MM-DD)"),
        },
        None => ctx.clock.today(),
    };
    let m = normalize_model_id(model_id, &config.models);
    let mut lines: Vec<(String, String)> = vec![
        ("model id".into(), model_id.into()),
        ("form".into(), m.form.describe().into()),
    ];
    if let Some(t) = &m.mapped_to {
        lines.push(("mapped by config to".into(), t.clone()));
    }
    lines.push((
        "geography".into(),
        match &m.geography {
            Geography::Global => "global (a `global.` cross-region profile)".into(),
            Geography::Geo(g) => format!("{g} (a geographic cross-region profile)"),
            Geography::InRegion => "in-region".into(),
        },
    ));
    lines.push((
        "normalized".into(),
        m.key
            .clone()
            .unwrap_or_else(|| "(no model name in the id)".into()),
    ));
    let standard = cat.decide(&m, model_id, day, false);
    let long = cat.decide(&m, model_id, day, true);
    let mut rate_rows = Vec::new();
    let priced = match &standard {
        Ok(d) => {
            let entry = cat.entry(&d.key);
            lines.push((
                "catalog entry".into(),
                format!(
                    "{} ({}), rates from {}",
                    d.name,
                    entry.map(|e| e.origin.as_str()).unwrap_or("?"),
                    format_date(d.rates.from_day)
                ),
            ));
            lines.push((
                "regional premium".into(),
                match (entry.and_then(|e| e.regional_premium), &m.geography) {
                    (None, _) => "none for this model (before the 4.5 generation)".into(),
                    (Some(p), Geography::Global) => format!("x{} for geographic and in-region endpoints; not applied: this is a global profile", p.describe()),
                    (Some(p), _) => format!("x{} applied: this is not a `global.` profile", p.describe()),
                },
            ));
            lines.push((
                "long context".into(),
                match entry.and_then(|e| e.long_context) {
                    None => "no long-context rates for this model".into(),
                    Some((i, o)) => format!(
                        "above {} input-side tokens (input + cache read + cache write): input and cache x{}, output x{}",
                        bedrock_usage_core::money::group_thousands(LONG_CONTEXT_THRESHOLD),
                        i.describe(),
                        o.describe()
                    ),
                },
            ));
            rate_rows.push(("standard".to_string(), d.rates.clone()));
            if let Ok(l) = &long {
                if l.long_context.is_some() {
                    rate_rows.push(("long context".to_string(), l.rates.clone()));
                }
            }
            true
        }
        Err(why) => {
            lines.push(("price".into(), format!("UNPRICED: {why}")));
            false
        }
    };
    match format {
        Format::Json => {
            let mut obj = serde_json::Map::new();
            for (k, v) in &lines {
                obj.insert(k.replace(' ', "_"), serde_json::Value::String(v.clone()));
            }
            obj.insert("date".into(), serde_json::Value::String(format_date(day)));
            let rates: Vec<serde_json::Value> = rate_rows
                .iter()
                .map(|(k, r)| {
                    let c = rate_cells(r);
                    serde_json::json!({"class": k, "input": c[0], "output": c[1], "cache_write_5m": c[2], "cache_write_1h": c[3], "cache_read": c[4]})
                })
                .collect();
            obj.insert(
                "rates_usd_per_million".into(),
                serde_json::Value::Array(rates),
            );
            emit(&(serde_json::to_string_pretty(&serde_json::Value::Object(obj))? + "\n"))?;
        }
        _ => {
            let w = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            let mut text: String = lines
                .iter()
                .map(|(k, v)| format!("{k:w$}  {v}\n"))
                .collect();
            if !rate_rows.is_empty() {
                text.push_str(&format!(
                    "\nrates on {} (USD per million tokens, rules applied):\n",
                    format_date(day)
                ));
                let t = Table {
                    headers: [
                        "",
                        "input",
                        "output",
                        "cache write 5m",
                        "cache write 1h",
                        "cache read",
                    ]
                    .map(String::from)
                    .to_vec(),
                    right: vec![false, true, true, true, true, true],
                    rows: rate_rows
                        .iter()
                        .map(|(k, r)| std::iter::once(k.clone()).chain(rate_cells(r)).collect())
                        .collect(),
                    footer: None,
                };
                text.push_str(&t.render());
            }
            emit(&text)?;
        }
    }
    Ok(if priced { EXIT_OK } else { EXIT_CHECK_FAILED })
}

/// `pricing unpriced`.
pub fn unpriced(ctx: &Context) -> Result<u8> {
    let store = ctx.existing_store()?;
    let format = ctx.format;
    let req = report::ReportRequest::all_by(vec![bedrock_usage_core::report::GroupKey::Model]);
    let r = report::build(&*store, &ctx.config, &ctx.catalog, &req)?;
    let rec = Records {
        fields: ["model_id", "calls", "reason"].map(String::from).to_vec(),
        rows: r
            .unpriced
            .iter()
            .map(|u| {
                vec![
                    Cell::text(&u.model_id),
                    Cell::int(u.calls),
                    Cell::text(&u.reason),
                ]
            })
            .collect(),
    };
    match format {
        Format::Json | Format::Aws | Format::Csv => rec.print(format)?,
        Format::Table | Format::Markdown => {
            if rec.rows.is_empty() {
                emit("every model in the store is priced\n")?;
            } else {
                let t = Table {
                    headers: ["model id", "calls", "why"].map(String::from).to_vec(),
                    right: vec![false, true, false],
                    rows: r
                        .unpriced
                        .iter()
                        .map(|u| {
                            vec![
                                u.model_id.clone(),
                                bedrock_usage_core::money::group_thousands(u.calls),
                                u.reason.clone(),
                            ]
                        })
                        .collect(),
                    footer: None,
                };
                t.print(format)?;
            }
        }
    }
    Ok(EXIT_OK)
}
