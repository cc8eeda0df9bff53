//! `pricing list | show MODEL_ID | unpriced`: the catalog, how one model id is priced and why,
//! and the model ids in the store that have no price. `import-aws`, `diff` and `check` are in
//! `pricing_sources`.

use bedrock_usage_core::money::group_thousands;
use bedrock_usage_core::pricing::{
    is_govcloud, normalize_model_id, Geography, InputBand, Premium, RateBlock, Rates, Ratio,
    TierRates, INPUT_BAND_EDGES,
};
use bedrock_usage_core::time::{format_date, parse_date};

use super::report;
use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{emit, Cell, Format, Records, Table};

pub use bedrock_usage_core::pricing_sources::usd_per_million;

fn rate_cells(r: &Rates) -> Vec<String> {
    vec![
        usd_per_million(r.input),
        usd_per_million(r.output),
        r.cache_write_5m
            .map(usd_per_million)
            .unwrap_or_else(|| "-".into()),
        r.cache_write_1h
            .map(usd_per_million)
            .unwrap_or_else(|| "-".into()),
        r.cache_read
            .map(usd_per_million)
            .unwrap_or_else(|| "-".into()),
    ]
}

/// A block's rules in a few words, for the list.
fn rules_summary(b: &RateBlock) -> (String, String, String, String) {
    let premium = |p: Option<Ratio>| {
        p.map(|p| format!("x{}", p.describe()))
            .unwrap_or_else(|| "-".into())
    };
    let tiers = if b.tiers.is_empty() {
        "-".to_string()
    } else {
        b.tiers
            .iter()
            .map(|t| match &t.rates {
                TierRates::Multiple { input, output } => format!(
                    ">{}: in x{}, out x{}",
                    group_thousands(t.above),
                    input.describe(),
                    output.describe()
                ),
                TierRates::Absolute(r) => format!(
                    ">{}: {}/{}",
                    group_thousands(t.above),
                    usd_per_million(r.input),
                    usd_per_million(r.output)
                ),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let regions = if b.regions.is_empty() {
        "-".to_string()
    } else {
        b.regions.keys().cloned().collect::<Vec<_>>().join(", ")
    };
    (
        premium(b.regional_premium),
        premium(b.govcloud_premium),
        tiers,
        regions,
    )
}

/// `pricing list [--history]`.
pub fn list(ctx: &Context, history: bool) -> Result<u8> {
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
        "until",
        "regional_premium",
        "govcloud_premium",
        "tiers",
        "region_rates",
        "origin",
        "confirmed",
        "source",
    ];
    let mut rows = Vec::new();
    let mut sources: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut unconfirmed = Vec::new();
    for e in cat.entries() {
        let current = e.block_on(today).or(e.blocks.first());
        let shown: Vec<(usize, &RateBlock)> = if history {
            e.blocks.iter().enumerate().collect()
        } else {
            e.blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| current.is_some_and(|c| std::ptr::eq(*b, c)))
                .collect()
        };
        for (i, b) in shown {
            let until = e
                .blocks
                .get(i + 1)
                .map(|n| format_date(n.base.from_day - 1))
                .unwrap_or_else(|| "-".into());
            let (regional, gov, tiers, regions) = rules_summary(b);
            let mut row = vec![e.key.clone(), e.name.clone()];
            row.extend(rate_cells(&b.base));
            row.extend([
                format_date(b.base.from_day),
                until,
                regional,
                gov,
                tiers,
                regions,
            ]);
            row.push(e.origin.clone());
            row.push(if b.confirmed { "yes" } else { "no" }.to_string());
            let source = b.source.clone().unwrap_or_else(|| "-".into());
            row.push(source.clone());
            let keys = sources.entry(source).or_default();
            if !keys.contains(&e.key) {
                keys.push(e.key.clone());
            }
            if !b.confirmed && !unconfirmed.contains(&e.key) {
                unconfirmed.push(e.key.clone());
            }
            rows.push(row);
        }
    }
    match format {
        Format::Table | Format::Markdown | Format::Html => {
            // The source is long: listed under the table; GovCloud and regions in the notes.
            let keep = [0usize, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14];
            let t = Table {
                headers: keep
                    .iter()
                    .map(|&i| {
                        [
                            "model",
                            "name",
                            "input",
                            "output",
                            "cache write 5m",
                            "cache write 1h",
                            "cache read",
                            "from",
                            "until",
                            "regional",
                            "govcloud",
                            "tiers",
                            "region rates",
                            "origin",
                            "confirmed",
                        ][i]
                            .to_string()
                    })
                    .collect(),
                right: keep.iter().map(|&i| (2..=6).contains(&i)).collect(),
                rows: rows
                    .iter()
                    .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
                    .collect(),
                footer: None,
            };
            t.print(format)?;
            if format == Format::Table {
                let mut text = format!("\nRates in USD per million tokens, on-demand, {}. `regional`: multiple on geographic and in-region endpoints (not `global.`); in AWS GovCloud the model's GovCloud multiple applies instead. `pricing show MODEL_ID` explains one id; --history lists every dated block.\n", if history { "every dated block" } else { "the block in force today" });
                let with_regions: Vec<String> = rows
                    .iter()
                    .filter(|r| r[12] != "-")
                    .map(|r| format!("{} ({})", r[0], r[12]))
                    .collect();
                if !with_regions.is_empty() {
                    text.push_str(&format!(
                        "Rates of their own by request region: {}\n",
                        with_regions.join("; ")
                    ));
                }
                text.push_str("\nSources:\n");
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

/// What `pricing show` is asked.
pub struct ShowArgs<'a> {
    pub model_id: &'a str,
    pub date: Option<&'a str>,
    pub region: Option<&'a str>,
    pub input_tokens: Option<u64>,
}

/// `pricing show MODEL_ID [--date] [--region] [--input-tokens]`.
pub fn show(ctx: &Context, args: &ShowArgs) -> Result<u8> {
    let (cat, config, format) = (&ctx.catalog, &ctx.config, ctx.format);
    let model_id = args.model_id;
    let day = match args.date {
        Some(d) => match parse_date(d) {
            Some(day) => day,
            None => invalid!("--date: `{d}` is not a date (YYYY-MM-DD)"),
        },
        None => ctx.clock.today(),
    };
    // The region in an ARN is where the call was made; else the flag; else none in particular.
    let arn_region = model_id
        .trim()
        .strip_prefix("arn:")
        .and_then(|r| r.split(':').nth(2))
        .filter(|r| !r.is_empty());
    let region = args.region.or(arn_region).unwrap_or("");
    let m = normalize_model_id(model_id, &config.models);
    let mut lines: Vec<(String, String)> = vec![
        ("model id".into(), model_id.into()),
        ("form".into(), m.form.describe().into()),
    ];
    if let Some(t) = &m.mapped_to {
        lines.push(("mapped by config to".into(), t.clone()));
    }
    let gov = is_govcloud(&m, model_id, region);
    lines.push((
        "geography".into(),
        match &m.geography {
            Geography::Global => "global (a `global.` cross-region profile)".into(),
            Geography::Geo(g) if gov => {
                format!("{g} (AWS GovCloud, a geographic cross-region profile)")
            }
            Geography::Geo(g) => format!("{g} (a geographic cross-region profile)"),
            Geography::InRegion if gov => "in-region, in AWS GovCloud".into(),
            Geography::InRegion => "in-region".into(),
        },
    ));
    if !region.is_empty() {
        lines.push(("request region".into(), region.to_string()));
    }
    lines.push((
        "normalized".into(),
        m.key
            .clone()
            .unwrap_or_else(|| "(no model name in the id)".into()),
    ));
    let standard = cat.decide(&m, model_id, region, day, InputBand(0));
    let mut rate_rows = Vec::new();
    let priced = match &standard {
        Ok(d) => {
            let entry = cat.entry(&d.key);
            let block = entry.and_then(|e| e.block_on(day));
            let until = entry
                .zip(block)
                .and_then(|(e, b)| {
                    e.blocks
                        .iter()
                        .find(|n| n.base.from_day > b.base.from_day)
                        .map(|n| format!(" until {}", format_date(n.base.from_day - 1)))
                })
                .unwrap_or_default();
            lines.push((
                "catalog entry".into(),
                format!(
                    "{} ({}), rates from {}{until}",
                    d.name,
                    entry.map(|e| e.origin.as_str()).unwrap_or("?"),
                    format_date(d.rates.from_day)
                ),
            ));
            lines.push((
                "source".into(),
                format!(
                    "{} ({})",
                    d.source.as_deref().unwrap_or("not named"),
                    if d.confirmed {
                        "confirmed"
                    } else {
                        "unconfirmed: secondary sources"
                    }
                ),
            ));
            lines.push((
                "premium".into(),
                match (d.premium, block.and_then(|b| b.regional_premium), &m.geography) {
                    (Some(Premium::GovCloud(p)), _, _) => format!("x{} applied: AWS GovCloud", p.describe()),
                    (Some(Premium::Regional(p)), _, _) => format!("x{} applied: a geographic or in-region endpoint, not `global.`", p.describe()),
                    (None, Some(p), Geography::Global) => format!("x{} on geographic and in-region endpoints; not applied: this is a global profile", p.describe()),
                    (None, _, _) => "none for this model on this day".into(),
                },
            ));
            if let Some(r) = &d.region_rates {
                lines.push(("region rates".into(), format!("{r} has rates of its own")));
            } else if let Some(b) = block.filter(|b| !b.regions.is_empty()) {
                lines.push((
                    "region rates".into(),
                    format!(
                        "{} have rates of their own; {} uses the model's (--region to choose)",
                        b.regions.keys().cloned().collect::<Vec<_>>().join(", "),
                        if region.is_empty() {
                            "this call"
                        } else {
                            region
                        }
                    ),
                ));
            }
            let tiers = block.map(|b| b.tiers.clone()).unwrap_or_default();
            lines.push((
                "tiers".into(),
                if tiers.is_empty() {
                    "none: one rate whatever the input size".into()
                } else {
                    tiers
                        .iter()
                        .map(|t| t.describe())
                        .collect::<Vec<_>>()
                        .join("; ")
                        + " (input side = input + cache read + cache write)"
                },
            ));
            rate_rows.push(("standard".to_string(), d.rates.clone()));
            for t in &tiers {
                let band = INPUT_BAND_EDGES
                    .iter()
                    .position(|&e| e == t.above)
                    .map(|i| InputBand(i as u8 + 1))
                    .unwrap_or_default();
                if let Ok(x) = cat.decide(&m, model_id, region, day, band) {
                    rate_rows.push((format!("above {}", group_thousands(t.above)), x.rates));
                }
            }
            if let Some(n) = args.input_tokens {
                let band = InputBand::of_side(n);
                let label = tiers
                    .iter()
                    .rev()
                    .find(|t| band.above(t.above))
                    .map(|t| format!("above {}", group_thousands(t.above)))
                    .unwrap_or_else(|| "standard".into());
                lines.push((
                    "input side".into(),
                    format!(
                        "{} tokens: priced at the `{label}` rates",
                        group_thousands(n)
                    ),
                ));
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

/// The models of a report that have no price, as records (model id, calls, why).
pub fn unpriced_records(r: &bedrock_usage_core::report::UsageReport) -> Records {
    Records {
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
    }
}

/// `pricing unpriced`.
pub fn unpriced(ctx: &Context) -> Result<u8> {
    let store = ctx.existing_store()?;
    let format = ctx.format;
    let req = report::ReportRequest::all_by(vec![bedrock_usage_core::report::GroupKey::Model]);
    let r = report::build(&*store, &ctx.config, &ctx.catalog, &req)?;
    let rec = unpriced_records(&r);
    match format {
        Format::Json | Format::Aws | Format::Csv => rec.print(format)?,
        Format::Table | Format::Markdown | Format::Html => {
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
