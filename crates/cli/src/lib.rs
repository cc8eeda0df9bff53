//! bedrock-usage, the binary's library: the commands over the pure core
//! (`bedrock-usage-core`), the SQLite store, the ingest pipeline and the output formats.
//! `main.rs` only parses arguments, calls [`run`] and maps errors to exit codes.

pub mod aws_cmd;
pub mod cli;
pub mod demo;
pub mod ingest;
pub mod metrics;
pub mod output;
pub mod progress;
pub mod query;
pub mod report;
pub mod store;
pub mod sync;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bedrock_usage_core::config::{Config, ConfigError};
use bedrock_usage_core::pricing::{
    normalize_model_id, Geography, PriceCatalog, Rates, LONG_CONTEXT_THRESHOLD,
};
use bedrock_usage_core::time::{format_date, parse_date, MS_PER_DAY};

use crate::cli::{Args, AwsCommand, Command, ConfigCommand, PricingCommand};
use crate::output::{emit, Cell, Format, Records, Table};
use crate::store::Store;

/// Exit statuses: 0 ok, 1 a failed check (bad input under --strict), 2 an error.
pub const EXIT_OK: u8 = 0;
pub const EXIT_CHECK_FAILED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

pub fn run(args: Args) -> Result<u8> {
    if args.format == Format::Aws && !matches!(args.command, Command::Query { .. }) {
        bail!("--format aws is the output of `query` only (the shape `aws logs get-query-results` prints)");
    }
    match &args.command {
        Command::Query {
            query,
            since,
            until,
            from,
            limit,
        } => {
            let cfg = load_config(args.config.as_deref())?;
            let catalog = load_catalog(&cfg, None)?;
            let now = now_ms();
            let zone = bedrock_usage_core::time::Zone::utc();
            let since = since
                .as_deref()
                .map(|s| report::parse_when(s, &zone, now, false, "--since"))
                .transpose()?;
            let until = until
                .as_deref()
                .map(|s| report::parse_when(s, &zone, now, true, "--until"))
                .transpose()?;
            let store = if from.is_empty() {
                Some(open_existing_store(args.db.as_deref())?)
            } else {
                None
            };
            let req = query::QueryRequest {
                query,
                since,
                until,
                from,
                limit: *limit,
            };
            query::run(store.as_ref(), &cfg.config, &catalog, &req, args.format)
        }
        Command::Ingest {
            paths,
            strict,
            no_progress,
        } => cmd_ingest(&args, paths, *strict, !*no_progress),
        Command::Report {
            by,
            since,
            until,
            tz,
            developer,
            team,
            model,
        } => {
            let cfg = load_config(args.config.as_deref())?;
            let catalog = load_catalog(&cfg, None)?;
            let store = open_existing_store(args.db.as_deref())?;
            let req = report::ReportRequest::from_args(
                by,
                since.as_deref(),
                until.as_deref(),
                tz,
                developer,
                team,
                model,
            )?;
            let r = report::build(&store, &cfg.config, &catalog, &req)?;
            report::print(&r, args.format, true)?;
            Ok(EXIT_OK)
        }
        Command::Pricing { catalog, command } => {
            let cfg = load_config(args.config.as_deref())?;
            let cat = load_catalog(&cfg, catalog.as_deref())?;
            match command {
                PricingCommand::List => pricing_list(&cat, args.format),
                PricingCommand::Show { model_id, date } => {
                    pricing_show(&cat, &cfg.config, model_id, date.as_deref(), args.format)
                }
                PricingCommand::Unpriced => {
                    let store = open_existing_store(args.db.as_deref())?;
                    pricing_unpriced(&store, &cfg.config, &cat, args.format)
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check(args.config.as_deref()),
        Command::Sync {
            since,
            watch,
            interval,
            publish_metrics,
            log_group,
            s3,
            page_size,
            no_progress,
            aws,
        } => aws_cmd::cmd_sync(
            &args,
            &aws_cmd::SyncArgs {
                since: since.as_deref(),
                watch: *watch,
                interval: interval.as_deref(),
                publish_metrics: *publish_metrics,
                log_groups: log_group,
                s3,
                page_size: *page_size,
                progress: !*no_progress,
                aws,
            },
        ),
        Command::Aws {
            command:
                AwsCommand::Setup {
                    dry_run,
                    log_group,
                    retention_days,
                    role_name,
                    s3,
                    dashboard,
                    alarm,
                    alarm_developer,
                    alarm_topic,
                    budget,
                    budget_email,
                    aws,
                },
        } => aws_cmd::cmd_setup(
            &args,
            &aws_cmd::SetupArgs {
                dry_run: *dry_run,
                log_group: log_group.as_deref(),
                retention_days: *retention_days,
                role_name,
                s3: s3.as_deref(),
                dashboard: dashboard.as_deref(),
                alarm: *alarm,
                alarm_developers: alarm_developer,
                alarm_topic: alarm_topic.as_deref(),
                budget: *budget,
                budget_email: budget_email.as_deref(),
                aws,
            },
        ),
        Command::Aws {
            command: AwsCommand::Status { aws },
        } => aws_cmd::cmd_status(&args, aws),
        Command::Demo {
            seed,
            write,
            records,
            month,
            compress,
            body_kb,
        } => {
            let opts = demo::DemoOptions::from_args(
                *seed,
                records.to_owned(),
                month,
                *compress,
                body_kb,
                write.is_some(),
            )?;
            match write {
                Some(dir) => demo::write_corpus(dir, &opts).map(|_| EXIT_OK),
                None => demo::run_demo(args.db.as_deref(), &opts, args.format),
            }
        }
    }
}

/// The configuration and where it came from.
pub struct LoadedConfig {
    pub config: Config,
    pub path: Option<PathBuf>,
}

pub fn load_config(path: Option<&Path>) -> Result<LoadedConfig> {
    let Some(path) = path else {
        return Ok(LoadedConfig {
            config: Config::defaults(),
            path: None,
        });
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let config = Config::parse(&text, &path.display().to_string())?;
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
    })
}

/// The embedded catalog, with the user's file (`--catalog`, else `[pricing] catalog`) merged in.
pub fn load_catalog(cfg: &LoadedConfig, override_path: Option<&Path>) -> Result<PriceCatalog> {
    let mut catalog = PriceCatalog::embedded();
    let path = match (override_path, &cfg.config.catalog_path) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Some(p)) => {
            // Relative to the config file.
            let base = cfg
                .path
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            Some(base.join(p))
        }
        (None, None) => None,
    };
    if let Some(p) = path {
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read the price catalog {}", p.display()))?;
        catalog.merge(PriceCatalog::parse(&text, &p.display().to_string())?);
    }
    Ok(catalog)
}

pub fn store_path(db: Option<&Path>) -> Result<PathBuf> {
    match db {
        Some(p) => Ok(p.to_path_buf()),
        None => store::default_path().context(
            "no data directory is known for this user: pass --db PATH or set BEDROCK_USAGE_DB",
        ),
    }
}

fn open_existing_store(db: Option<&Path>) -> Result<Store> {
    let path = store_path(db)?;
    if !path.exists() {
        bail!("no store at {}: run `bedrock-usage ingest PATH...` first (or `bedrock-usage demo --db {}` to try it)", path.display(), path.display());
    }
    Store::open(&path)
}

fn cmd_ingest(args: &Args, paths: &[PathBuf], strict: bool, progress: bool) -> Result<u8> {
    let cfg = load_config(args.config.as_deref())?;
    let path = store_path(args.db.as_deref())?;
    let mut store = Store::open(&path)?;
    let opts = ingest::IngestOptions {
        metadata_keys: cfg.config.metadata_keys.clone(),
        progress,
        max_examples: 10,
    };
    let s = ingest::ingest(&mut store, paths, &opts)?;
    print_ingest_summary(&s, args.format)?;
    Ok(if strict && s.bad > 0 {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}

pub fn print_ingest_summary(s: &ingest::IngestSummary, format: Format) -> Result<()> {
    let secs = s.elapsed.as_secs_f64();
    let mbps = if secs > 0.0 {
        s.bytes as f64 / 1e6 / secs
    } else {
        0.0
    };
    match format {
        Format::Json | Format::Csv | Format::Aws => {
            let rec = Records {
                fields: [
                    "files",
                    "files_unchanged",
                    "files_resumed",
                    "records",
                    "inserted",
                    "duplicates",
                    "bad",
                    "bytes",
                    "seconds",
                ]
                .map(String::from)
                .to_vec(),
                rows: vec![vec![
                    Cell::int(s.files),
                    Cell::int(s.files_unchanged),
                    Cell::int(s.files_resumed),
                    Cell::int(s.records),
                    Cell::int(s.inserted),
                    Cell::int(s.duplicates),
                    Cell::int(s.bad),
                    Cell::int(s.bytes),
                    Cell::Number(format!("{secs:.3}")),
                ]],
            };
            emit(&if format == Format::Csv {
                rec.to_csv()
            } else {
                rec.to_json()
            })?;
        }
        Format::Table | Format::Markdown => {
            let g = bedrock_usage_core::money::group_thousands;
            let mut text = if s.inserted == 0 && s.bad == 0 {
                format!(
                    "nothing new: {} records read were already stored; {} of {} files unchanged since the last run\n",
                    g(s.duplicates),
                    g(s.files_unchanged),
                    g(s.files)
                )
            } else {
                format!(
                    "ingested {} new records from {} files ({} already stored, {} files unchanged, {} resumed)\n",
                    g(s.inserted),
                    g(s.files),
                    g(s.duplicates),
                    g(s.files_unchanged),
                    g(s.files_resumed)
                )
            };
            text.push_str(&format!(
                "read {:.1} MB of JSON in {:.2} s ({:.0} MB/s)\n",
                s.bytes as f64 / 1e6,
                secs,
                mbps
            ));
            emit(&text)?;
        }
    }
    if s.bad > 0 {
        eprintln!(
            "warning: {} bad inputs were skipped (the rest was ingested){}:",
            s.bad,
            if s.bad as usize > s.bad_examples.len() {
                format!("; the first {}", s.bad_examples.len())
            } else {
                String::new()
            }
        );
        for b in &s.bad_examples {
            eprintln!("  {b}");
        }
    }
    Ok(())
}

fn config_check(path: Option<&Path>) -> Result<u8> {
    let Some(path) = path else {
        bail!("no configuration file: pass --config PATH or set BEDROCK_USAGE_CONFIG");
    };
    let cfg = match load_config(Some(path)) {
        Ok(c) => c,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {ce}");
                return Ok(EXIT_ERROR);
            }
            return Err(e);
        }
    };
    let mut problems = Vec::new();
    let catalog = match load_catalog(&cfg, None) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("`pricing.catalog`: {e:#}"));
            None
        }
    };
    if let Some(cat) = &catalog {
        let today = today_day();
        for (from, to) in &cfg.config.models {
            let m = normalize_model_id(to, &Default::default());
            if let Err(why) = cat.decide(&m, to, today, false) {
                problems.push(format!(
                    "`models.\"{from}\"` = `{to}`: cannot be priced: {why}"
                ));
            }
        }
    }
    if !problems.is_empty() {
        eprintln!("error: {}: {} problem(s):", path.display(), problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
        return Ok(EXIT_ERROR);
    }
    let c = &cfg.config;
    emit(&format!(
        "{}: ok\n  metadata keys read: {}\n  aliases: {}\n  developers: {} in {} teams with cost centers\n  application profiles mapped: {}\n  shared principals listed: {}\n  price catalog: embedded{}\n",
        path.display(),
        c.metadata_keys.join(", "),
        c.aliases.len(),
        c.developers.len(),
        c.team_cost_centers.len(),
        c.models.len(),
        c.shared_principals.len(),
        c.catalog_path.as_deref().map(|p| format!(" + {p}")).unwrap_or_default()
    ))?;
    Ok(EXIT_OK)
}

/// The wall clock, in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn today_day() -> i64 {
    now_ms().div_euclid(MS_PER_DAY)
}

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

fn pricing_list(cat: &PriceCatalog, format: Format) -> Result<u8> {
    let today = today_day();
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
    ];
    let mut rows = Vec::new();
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
                ]
                .map(String::from)
                .to_vec(),
                right: vec![
                    false, false, true, true, true, true, true, false, false, false, false,
                ],
                rows,
                footer: None,
            };
            let mut text = if format == Format::Table {
                t.render()
            } else {
                t.render_markdown()
            };
            if format == Format::Table {
                text.push_str("\nRates in USD per million tokens, on-demand, in force today. `regional`: multiple on geographic and in-region endpoints (not `global.`).\n");
            }
            emit(&text)?;
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
            emit(&if format == Format::Csv {
                rec.to_csv()
            } else {
                rec.to_json()
            })?;
        }
    }
    Ok(EXIT_OK)
}

fn pricing_show(
    cat: &PriceCatalog,
    config: &Config,
    model_id: &str,
    date: Option<&str>,
    format: Format,
) -> Result<u8> {
    let day = match date {
        Some(d) => {
            parse_date(d).with_context(|| format!("--date: `{d}` is not a date (YYYY-MM-DD)"))?
        }
        None => today_day(),
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

fn pricing_unpriced(
    store: &Store,
    config: &Config,
    cat: &PriceCatalog,
    format: Format,
) -> Result<u8> {
    let req = report::ReportRequest::all_by(vec![bedrock_usage_core::report::GroupKey::Model]);
    let r = report::build(store, config, cat, &req)?;
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
        Format::Json | Format::Aws => emit(&rec.to_json())?,
        Format::Csv => emit(&rec.to_csv())?,
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
                emit(&if format == Format::Table {
                    t.render()
                } else {
                    t.render_markdown()
                })?;
            }
        }
    }
    Ok(EXIT_OK)
}
