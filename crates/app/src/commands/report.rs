//! `report`: checks the report flags, reads facts from the store, runs the core's report maths
//! and prints the result. Warnings (unpriced models, shared principals) go to stderr.

use bedrock_usage_core::attribution::IamTags;
use bedrock_usage_core::money::group_thousands;
use bedrock_usage_core::report::{Filters, GroupKey, ReportBuilder, ReportSpec, UsageReport};
use bedrock_usage_core::rollup::{report_grain, Grain};
use bedrock_usage_core::time::{format_utc, parse_range, Zone};
use bedrock_usage_core::FactSet;
use bedrock_usage_core::{Attributor, Config, PriceCatalog};

use crate::context::Context;
use crate::error::{Result, EXIT_OK};
use crate::invalid;
use crate::output::{clean, Cell, Format, Records, Table};
use crate::store::FactReader;

/// `report`: the flags as typed.
pub struct ReportArgs<'a> {
    pub by: &'a [String],
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub tz: &'a str,
    pub developers: &'a [String],
    pub teams: &'a [String],
    pub models: &'a [String],
    pub top: Option<usize>,
    /// `--send CHANNEL`.
    pub send: Option<&'a str>,
}

pub fn run(ctx: &Context, a: &ReportArgs) -> Result<u8> {
    let store = ctx.existing_store()?;
    let req = ReportRequest::from_args(ctx, a)?;
    if ctx.format == Format::Html {
        if a.send.is_some() {
            invalid!("--send sends the report's table: give it without --format html");
        }
        crate::output::emit(&crate::commands::report_html::render(
            ctx, &*store, &req, a.top,
        )?)?;
        return Ok(EXIT_OK);
    }
    let mut r = build(&*store, &ctx.config, &ctx.catalog, &req)?;
    if let Some(n) = a.top {
        r.keep_top(n);
    }
    if let Some(name) = a.send {
        if !ctx.config.channels.iter().any(|c| c.name == name) {
            invalid!(
                "--send: no channel is named `{name}` (known: {})",
                if ctx.config.channels.is_empty() {
                    "none; add [[channels]] to the config".to_string()
                } else {
                    ctx.config
                        .channels
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
    }
    print(&r, ctx.format, true)?;
    if r.rows.is_empty() {
        say_what_matches(ctx, &*store, &req.filters)?;
    }
    if let Some(name) = a.send {
        let now = ctx.clock.now_ms();
        let keys: Vec<&str> = req.keys.iter().map(|k| k.cli_name()).collect();
        let range = match (req.since, req.until) {
            (Some(s), Some(u)) => format!(", {} to {}", format_utc(s), format_utc(u)),
            (Some(s), None) => format!(", since {}", format_utc(s)),
            (None, Some(u)) => format!(", until {}", format_utc(u)),
            (None, None) => String::new(),
        };
        let title = format!("bedrock-usage report by {}{range}", keys.join(", "));
        let rows: serde_json::Value =
            serde_json::from_str(&records(&r).to_json()).unwrap_or_default();
        let alert = serde_json::json!({
            "kind": "report",
            "key": format!("report/{now}"),
            "title": title,
            "text": table(&r).render(),
            "rows": rows,
            "total_cost_usd": r.total.known_cost().map(|c| c.to_decimal_micros()),
            "created": format_utc(now),
        });
        crate::alerts::send_now(ctx, name, &alert)?;
        eprintln!("sent the report to `{name}`");
    }
    Ok(EXIT_OK)
}

/// A checked report request.
pub struct ReportRequest {
    pub keys: Vec<GroupKey>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub zone: Zone,
    pub filters: Filters,
}

impl ReportRequest {
    pub fn all_by(keys: Vec<GroupKey>) -> ReportRequest {
        ReportRequest {
            keys,
            since: None,
            until: None,
            zone: Zone::utc(),
            filters: Filters::default(),
        }
    }

    pub fn from_args(ctx: &Context, a: &ReportArgs) -> Result<ReportRequest> {
        let mut keys = Vec::new();
        for k in a.by.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match GroupKey::parse(k) {
                Some(g) if keys.contains(&g) => invalid!("--by: `{k}` is given twice"),
                Some(g) => keys.push(g),
                None => invalid!(
                    "--by: unknown key `{k}`; the keys are {}",
                    GroupKey::ALL
                        .iter()
                        .map(|k| k.cli_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        if keys.is_empty() {
            invalid!("--by: give at least one key");
        }
        let zone = Zone::named(a.tz)?;
        let (since, until) = parse_range(a.since, a.until, &zone, ctx.clock.now_ms())?;
        if let (Some(a), Some(b)) = (since, until) {
            if a >= b {
                invalid!("--since must be before --until");
            }
        }
        Ok(ReportRequest {
            keys,
            since,
            until,
            zone,
            filters: Filters {
                developers: a.developers.to_vec(),
                teams: a.teams.to_vec(),
                models: a.models.to_vec(),
            },
        })
    }
}

/// When filters match nothing, says so and lists the values they could have named.
fn say_what_matches(ctx: &Context, store: &dyn FactReader, f: &Filters) -> Result<()> {
    if f.developers.is_empty() && f.teams.is_empty() && f.models.is_empty() {
        return Ok(());
    }
    let identities = store.identities()?;
    let tags = store.iam_tags()?.tags;
    let attributor = Attributor::new(&ctx.config, &identities).with_iam_tags(&tags);
    let (mut devs, mut teams) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    for i in &identities {
        let a = attributor.attribute(i);
        devs.insert(a.developer);
        teams.extend(a.team);
    }
    let list = |s: &std::collections::BTreeSet<String>| {
        let v: Vec<String> = s.iter().take(20).map(|x| clean(x).into_owned()).collect();
        let more = s.len().saturating_sub(20);
        if more > 0 {
            format!("{} and {more} more", v.join(", "))
        } else if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    };
    for (flag, given, known) in [
        ("--developer", &f.developers, Some(&devs)),
        ("--team", &f.teams, Some(&teams)),
        ("--model", &f.models, None),
    ] {
        if given.is_empty() {
            continue;
        }
        match known {
            Some(k) => eprintln!(
                "note: no calls match {flag} {} in this range; known: {}",
                given.join(","),
                list(k)
            ),
            None => eprintln!(
                "note: no calls match {flag} {} in this range (see `bedrock-usage report --by model`)",
                given.join(",")
            ),
        }
    }
    Ok(())
}

/// Reads the facts the report needs and runs the report maths over them.
pub fn build(
    store: &dyn FactReader,
    config: &Config,
    catalog: &PriceCatalog,
    req: &ReportRequest,
) -> Result<UsageReport> {
    let grain = grain_for(req, store.time_range()?);
    let facts = store.facts(req.since, req.until, grain)?;
    let tags = store.iam_tags()?.tags;
    Ok(build_over(&facts, &tags, config, catalog, req))
}

/// The rollup grain `req` reads, given the store's data range.
pub fn grain_for(req: &ReportRequest, data: Option<(i64, i64)>) -> Grain {
    report_grain(&req.keys, &req.zone, data, req.since, req.until)
}

/// The report maths over facts already read (at [`grain_for`]'s grain and `req`'s range).
pub fn build_over(
    facts: &FactSet,
    tags: &IamTags,
    config: &Config,
    catalog: &PriceCatalog,
    req: &ReportRequest,
) -> UsageReport {
    let attributor = Attributor::new(config, &facts.identities).with_iam_tags(tags);
    let spec = ReportSpec {
        keys: req.keys.clone(),
        zone: req.zone.clone(),
        filters: req.filters.clone(),
    };
    let mut b = ReportBuilder::new(
        spec,
        catalog,
        &attributor,
        &facts.identities,
        &facts.model_ids,
        &config.models,
    );
    for r in &facts.rows {
        b.add(&facts.fact(r));
    }
    b.finish()
}

const FIGURES: [&str; 12] = [
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "total_tokens",
    "cost_usd",
    "cache_saved_usd",
    "unpriced_calls",
];

/// The report as records (JSON and CSV: exact values).
pub fn records(r: &UsageReport) -> Records {
    let mut fields: Vec<String> = r.keys.iter().map(|k| k.field_name().to_string()).collect();
    fields.extend(FIGURES.iter().map(|s| s.to_string()));
    let rows = r
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<Cell> = row
                .keys
                .iter()
                .map(|k| k.as_ref().map(Cell::text).unwrap_or(Cell::Null))
                .collect();
            let f = &row.figures;
            let t = &f.tokens;
            cells.extend([
                Cell::int(f.calls),
                Cell::int(f.errors),
                Cell::int(t.input),
                Cell::int(t.output),
                Cell::int(t.cache_read),
                Cell::int(t.cache_write()),
                Cell::int(t.cache_write_5m),
                Cell::int(t.cache_write_1h),
                Cell::int(t.total()),
                // Unknown (every call with tokens unpriced) is null, never 0.
                f.known_cost()
                    .map_or(Cell::Null, |c| Cell::Number(c.to_decimal_micros())),
                f.known_cost().map_or(Cell::Null, |_| {
                    Cell::Number(f.cache_saved.to_decimal_micros())
                }),
                Cell::int(f.unpriced_calls),
            ]);
            cells
        })
        .collect();
    Records { fields, rows }
}

/// The report as a table for people (with a totals row).
pub fn table(r: &UsageReport) -> Table {
    let any_unpriced = r.total.unpriced_calls > 0;
    let mut headers: Vec<String> = r.keys.iter().map(|k| k.cli_name().to_string()).collect();
    headers.extend(
        [
            "calls",
            "errors",
            "input",
            "output",
            "cache read",
            "cache write",
            "total tokens",
            "cost",
        ]
        .map(String::from),
    );
    if any_unpriced {
        headers.push("unpriced calls".into());
    }
    let mut right = vec![false; r.keys.len()];
    right.extend(std::iter::repeat_n(true, headers.len() - r.keys.len()));
    let figures = |f: &bedrock_usage_core::report::Figures| {
        let t = &f.tokens;
        let mut v = vec![
            group_thousands(f.calls),
            group_thousands(f.errors),
            group_thousands(t.input),
            group_thousands(t.output),
            group_thousands(t.cache_read),
            group_thousands(t.cache_write()),
            group_thousands(t.total()),
            // Never show $0 for calls nobody could price, nor a partial cost as whole.
            match (f.known_cost(), f.unpriced_calls) {
                (None, _) => "unpriced".to_string(),
                (Some(c), 0) => c.to_display(),
                (Some(c), n) => {
                    format!("{} + {} unpriced", c.to_display(), group_thousands(n))
                }
            },
        ];
        if any_unpriced {
            v.push(group_thousands(f.unpriced_calls));
        }
        v
    };
    let rows = r
        .rows
        .iter()
        .map(|row| {
            let mut v: Vec<String> = row
                .keys
                .iter()
                .map(|k| k.clone().unwrap_or_else(|| "-".into()))
                .collect();
            v.extend(figures(&row.figures));
            v
        })
        .collect();
    let mut footer = vec![String::new(); r.keys.len()];
    let all_rows = r.rows.len() + r.omitted;
    footer[0] = format!(
        "total ({all_rows} row{}{})",
        if all_rows == 1 { "" } else { "s" },
        if r.omitted > 0 {
            format!(", top {} shown", r.rows.len())
        } else {
            String::new()
        }
    );
    footer.extend(figures(&r.total));
    Table {
        headers,
        right,
        rows,
        footer: Some(footer),
    }
}

/// Prints the report to stdout and, with `warn`, its warnings to stderr.
pub fn print(r: &UsageReport, format: Format, warn: bool) -> Result<()> {
    match format {
        Format::Json | Format::Csv | Format::Aws => records(r).print(format)?,
        Format::Table | Format::Markdown | Format::Html => table(r).print(format)?,
    }
    if warn {
        print_warnings(r);
    }
    Ok(())
}

pub fn print_warnings(r: &UsageReport) {
    for w in warnings(r) {
        eprintln!("warning: {w}");
    }
}

/// What a report warns of (conflicting metadata, unpriced models, shared principals), one
/// sentence each: stderr for the command, a header for the API.
pub fn warnings(r: &UsageReport) -> Vec<String> {
    let mut out = Vec::new();
    for c in &r.conflicts {
        out.push(format!(
            "{} calls of `{}` say `developer = {}` in request metadata; counted as {} (metadata is believed only from shared principals: see `report --by developer,principal`)",
            group_thousands(c.calls),
            clean(&c.principal),
            clean(&c.claimed),
            clean(&c.developer)
        ));
    }
    for u in &r.unpriced {
        out.push(format!(
            "{} calls of `{}` are unpriced (not counted in cost): {}",
            group_thousands(u.calls),
            clean(&u.model_id),
            clean(&u.reason)
        ));
    }
    for s in &r.shared {
        out.push(format!(
            "{} calls came from the shared principal `{}` without a developer in request metadata; {}. Set requestMetadata `developer` in each container, give each developer an AWS session of their own (`bedrock-usage credentials`, docs/developers.md), or alias it in the config",
            group_thousands(s.calls),
            clean(&s.principal),
            clean(&s.reason)
        ));
    }
    out
}
