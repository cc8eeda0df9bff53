//! The commands that reach AWS: `sync` (once or `--watch`), `aws setup` and `aws status`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bedrock_usage_aws::status::{ago, Check, Level};
use bedrock_usage_aws::{setup, Access, Backoff};
use bedrock_usage_core::config::{AwsAccess, Source};
use bedrock_usage_core::time::{format_utc, parse_duration_ms};
use bedrock_usage_core::Attributor;

use crate::cli::{Args, AwsArgs};
use crate::output::{Cell, Format, Records};
use crate::store::Store;
use crate::sync::{self, SourceReport, SyncOptions};
use crate::{load_catalog, load_config, store_path, EXIT_CHECK_FAILED, EXIT_OK};

impl AwsArgs {
    pub fn access(&self) -> Access {
        Access {
            profile: self.profile.clone(),
            region: self.region.clone(),
            role_arn: None,
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

/// `s3://bucket/prefix` -> (bucket, prefix ending in `/` or empty).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let Some(rest) = url.strip_prefix("s3://") else {
        bail!("`{url}`: an S3 location is written s3://BUCKET/PREFIX");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("`{url}`: no bucket name");
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

/// Set by SIGINT / SIGTERM: stop after the current batch. A second signal ends the process.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe); SA_RESETHAND puts the
        // default action back, so a second Ctrl-C ends the process at once.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub struct SyncArgs<'a> {
    pub since: Option<&'a str>,
    pub watch: bool,
    pub interval: Option<&'a str>,
    pub publish_metrics: bool,
    pub log_groups: &'a [String],
    pub s3: &'a [String],
    pub page_size: Option<i32>,
    pub progress: bool,
    pub aws: &'a AwsArgs,
}

pub fn cmd_sync(args: &Args, a: &SyncArgs) -> Result<u8> {
    let cfg = load_config(args.config.as_deref())?;
    let catalog = load_catalog(&cfg, None)?;
    let mut sources = cfg.config.sources.clone();
    for g in a.log_groups {
        sources.push(Source::CloudWatch {
            log_group: g.clone(),
            log_streams: Vec::new(),
            log_stream_prefix: None,
            access: AwsAccess::default(),
        });
    }
    for u in a.s3 {
        let (bucket, prefix) = parse_s3_url(u)?;
        sources.push(Source::S3 {
            bucket,
            prefix,
            access: AwsAccess::default(),
        });
    }
    if sources.is_empty() {
        bail!("nothing to sync: add [[sources.cloudwatch]] or [[sources.s3]] to the config (see docs/aws.md), or pass --log-group NAME / --s3 s3://BUCKET/PREFIX");
    }
    let now = crate::now_ms();
    let zone = bedrock_usage_core::time::Zone::utc();
    let since = a
        .since
        .map(|s| crate::report::parse_when(s, &zone, now, false, "--since"))
        .transpose()?;
    let interval_ms = match a.interval {
        Some(i) => match parse_duration_ms(i) {
            Some(ms) if ms > 0 => ms,
            _ => bail!("--interval: `{i}` is not a duration (90s, 5m, 1h)"),
        },
        None => cfg.config.sync.interval_ms,
    };
    if a.interval.is_some() && !a.watch {
        bail!("--interval goes with --watch");
    }
    let publish = a.publish_metrics || cfg.config.sync.publish_metrics;
    let mut store = Store::open(&store_path(args.db.as_deref())?)?;
    store.set_track_metrics(publish);
    let opts = SyncOptions {
        since,
        overrides: a.aws.access(),
        page_size: a.page_size,
        overlap_ms: cfg.config.sync.overlap_ms,
        metadata_keys: cfg.config.metadata_keys.clone(),
        progress: a.progress,
        max_examples: 10,
        backoff: Backoff::default(),
    };
    // Metrics go where the first source is (or `sync.metrics_region`).
    let mut metrics_access = sync::access_of(sources[0].access(), &opts.overrides);
    if let Some(r) = &cfg.config.sync.metrics_region {
        metrics_access.region = Some(r.clone());
    }
    let rt = sync::runtime()?;
    install_stop_handlers();
    let mut totals: HashMap<String, SourceReport> = HashMap::new();
    let mut failed_rounds: HashMap<String, u32> = HashMap::new();
    let mut skip_until: HashMap<String, u64> = HashMap::new();
    let mut round = 0u64;
    let mut connections = sync::Connections::new();
    let mut any_failed;
    loop {
        round += 1;
        // A source that keeps failing is tried less often: again after 1, 2, 4, then 8 rounds.
        let due: Vec<Source> = sources
            .iter()
            .filter(|s| skip_until.get(&s.label()).is_none_or(|&r| r <= round))
            .cloned()
            .collect();
        let reports = sync::sync_round(&rt, &mut store, &due, &opts, &mut connections, &STOP);
        any_failed = false;
        for r in &reports {
            if r.error.is_some() {
                any_failed = true;
                let n = failed_rounds.entry(r.source.clone()).or_insert(0);
                *n += 1;
                skip_until.insert(r.source.clone(), round + (1u64 << (*n).min(4)) / 2);
            } else {
                failed_rounds.remove(&r.source);
            }
        }
        let published = if publish {
            Some(rt.block_on(async {
                let conf = bedrock_usage_aws::connect(&metrics_access).await?;
                crate::metrics::publish(
                    &conf,
                    &mut store,
                    &cfg.config,
                    &catalog,
                    &opts.backoff,
                    crate::now_ms(),
                )
                .await
            }))
        } else {
            None
        };
        if let Some(Err(e)) = &published {
            any_failed = true;
            eprintln!("error: publishing metrics: {e} (the records stay queued and are published on the next sync)");
        }
        if let Some(Ok(p)) = &published {
            if p.too_old > 0 {
                eprintln!("note: {} records are older than CloudWatch accepts (two weeks) and were not published as metrics", p.too_old);
            }
            if p.unpriced > 0 {
                eprintln!("warning: {} records have no price; their CostUSD is missing from the metrics (see `bedrock-usage pricing unpriced`)", p.unpriced);
            }
        }
        if !a.watch {
            print_reports(&reports, published.and_then(|p| p.ok()), args.format)?;
            return Ok(if any_failed {
                EXIT_CHECK_FAILED
            } else {
                EXIT_OK
            });
        }
        sync::merge(&mut totals, &reports);
        for r in &reports {
            let at = format_utc(crate::now_ms());
            match &r.error {
                Some(e) => eprintln!("{at} {}: failed: {e}", r.source),
                None if r.inserted > 0 || r.bad > 0 => eprintln!(
                    "{at} {}: {} new records ({} already stored, {} bad)",
                    r.source, r.inserted, r.duplicates, r.bad
                ),
                None => {}
            }
        }
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        let until = Instant::now() + Duration::from_millis(interval_ms as u64);
        while Instant::now() < until && !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if STOP.load(Ordering::Relaxed) {
            break;
        }
    }
    eprintln!("stopped after {round} rounds");
    let mut all: Vec<SourceReport> = totals.into_values().collect();
    all.sort_by(|a, b| a.source.cmp(&b.source));
    print_reports(&all, None, args.format)?;
    Ok(if any_failed {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}

fn print_reports(
    reports: &[SourceReport],
    published: Option<crate::metrics::PublishReport>,
    format: Format,
) -> Result<()> {
    let rec = Records {
        fields: [
            "source",
            "records",
            "new",
            "already_stored",
            "bad",
            "pages_or_objects",
            "retries",
            "synced_to",
            "seconds",
            "status",
        ]
        .map(String::from)
        .to_vec(),
        rows: reports
            .iter()
            .map(|r| {
                vec![
                    Cell::text(&r.source),
                    Cell::int(r.records),
                    Cell::int(r.inserted),
                    Cell::int(r.duplicates),
                    Cell::int(r.bad),
                    Cell::int(r.units),
                    Cell::int(r.retries),
                    r.position.clone().map_or(Cell::Null, Cell::Text),
                    Cell::Number(format!("{:.2}", r.elapsed.as_secs_f64())),
                    Cell::text(match &r.error {
                        Some(e) => format!("FAILED: {e}"),
                        None => "ok".to_string(),
                    }),
                ]
            })
            .collect(),
    };
    rec.print(format)?;
    if let Some(p) = published {
        if matches!(format, Format::Table | Format::Markdown) {
            println!(
                "published metrics for {} records ({} minute rows, {} PutMetricData calls)",
                p.records, p.rows, p.calls
            );
        }
    }
    for r in reports {
        if r.bad > 0 {
            eprintln!(
                "warning: {}: {} bad records were skipped (the rest was stored){}:",
                r.source,
                r.bad,
                if r.bad as usize > r.bad_examples.len() {
                    format!("; the first {}", r.bad_examples.len())
                } else {
                    String::new()
                }
            );
            for b in &r.bad_examples {
                eprintln!("  {b}");
            }
        }
    }
    Ok(())
}

pub struct SetupArgs<'a> {
    pub dry_run: bool,
    pub log_group: Option<&'a str>,
    pub retention_days: i32,
    pub role_name: &'a str,
    pub s3: Option<&'a str>,
    pub dashboard: Option<&'a str>,
    pub alarm: Option<f64>,
    pub alarm_developers: &'a [String],
    pub alarm_topic: Option<&'a str>,
    pub budget: Option<f64>,
    pub budget_email: Option<&'a str>,
    pub aws: &'a AwsArgs,
}

/// Destinations default to the config's first CloudWatch and S3 sources; the call goes where
/// the first of them is (region, profile, endpoint), with the flags on top.
pub fn cmd_setup(args: &Args, a: &SetupArgs) -> Result<u8> {
    let cfg = load_config(args.config.as_deref())?;
    let mut base = AwsAccess::default();
    let mut log_group = a.log_group.map(str::to_string);
    let mut bucket = None;
    if let Some(u) = a.s3 {
        bucket = Some(parse_s3_url(u)?);
    }
    if log_group.is_none() && bucket.is_none() {
        for s in &cfg.config.sources {
            match s {
                Source::CloudWatch {
                    log_group: g,
                    access,
                    ..
                } if log_group.is_none() => {
                    log_group = Some(g.clone());
                    base = access.clone();
                }
                Source::S3 {
                    bucket: b,
                    prefix,
                    access,
                } if bucket.is_none() => {
                    bucket = Some((b.clone(), prefix.clone()));
                    if log_group.is_none() {
                        base = access.clone();
                    }
                }
                _ => {}
            }
        }
    }
    if log_group.is_none() && bucket.is_none() {
        bail!("where should Bedrock deliver? pass --log-group NAME and/or --s3 s3://BUCKET/PREFIX, or add a source to the config");
    }
    if let Some(d) = a.alarm {
        if !(d.is_finite() && d > 0.0) {
            bail!("--alarm: the threshold must be a positive number of USD");
        }
    }
    if let Some(d) = a.budget {
        if !(d.is_finite() && d > 0.0) {
            bail!("--budget: the amount must be a positive number of USD");
        }
    }
    if !(1..=3653).contains(&a.retention_days) {
        bail!("--retention-days: between 1 and 3653");
    }
    let spec = setup::Spec {
        log_group,
        retention_days: a.retention_days,
        role_name: a.role_name.to_string(),
        bucket: bucket.as_ref().map(|b| b.0.clone()),
        prefix: bucket.map(|b| b.1).unwrap_or_default(),
        dashboard: a.dashboard.map(str::to_string),
        alarm_daily_usd: a.alarm,
        alarm_developers: a.alarm_developers.to_vec(),
        alarm_topic: a.alarm_topic.map(str::to_string),
        budget_monthly_usd: a.budget,
        budget_email: a.budget_email.map(str::to_string),
    };
    let access = sync::access_of(&base, &a.aws.access());
    let rt = sync::runtime()?;
    let steps = rt.block_on(async {
        let conf = bedrock_usage_aws::connect(&access).await?;
        setup::run(&conf, &spec, !a.dry_run).await
    });
    let steps = match steps {
        Ok(s) => s,
        Err(f) => bail!(
            "aws setup stopped: {} (to fix: {})",
            f.message,
            bedrock_usage_aws::status::fix_for(&f, "the resource")
        ),
    };
    let rec = Records {
        fields: ["resource", "action", "detail"].map(String::from).to_vec(),
        rows: steps
            .iter()
            .map(|s| {
                vec![
                    Cell::text(&s.resource),
                    Cell::text(s.action.word(!a.dry_run)),
                    Cell::text(&s.detail),
                ]
            })
            .collect(),
    };
    rec.print(args.format)?;
    if matches!(args.format, Format::Table | Format::Markdown) {
        let changes = steps
            .iter()
            .filter(|s| s.action != setup::Action::Unchanged)
            .count();
        if a.dry_run {
            println!("dry run: {changes} changes planned, nothing changed");
        } else if changes == 0 {
            println!("nothing to change: the account is set up");
        } else {
            println!("{changes} changes made");
        }
    }
    Ok(EXIT_OK)
}

pub fn cmd_status(args: &Args, aws: &AwsArgs) -> Result<u8> {
    let cfg = load_config(args.config.as_deref())?;
    let over = aws.access();
    let sources = &cfg.config.sources;
    let base = sources
        .first()
        .map(|s| s.access().clone())
        .unwrap_or_default();
    let rt = sync::runtime()?;
    let mut checks: Vec<Check> = Vec::new();
    let base_access = sync::access_of(&base, &over);
    let logging = rt.block_on(async {
        match bedrock_usage_aws::connect(&base_access).await {
            Err(f) => {
                checks.push(Check::bad(
                    Level::Fail,
                    "credentials",
                    f.message.clone(),
                    bedrock_usage_aws::status::fix_for(&f, "the AWS configuration"),
                ));
                None
            }
            Ok(conf) => {
                let c = bedrock_usage_aws::status::credentials(&conf).await;
                let ok = c.level == Level::Ok;
                checks.push(c);
                if !ok {
                    return None;
                }
                let (c, l) = bedrock_usage_aws::status::logging(&conf).await;
                checks.push(c);
                l
            }
        }
    });
    if sources.is_empty() {
        checks.push(Check::bad(
            Level::Warn,
            "sources",
            "the config names no CloudWatch or S3 source, so `sync` has nothing to read",
            "add [[sources.cloudwatch]] log_group = \"...\" (or [[sources.s3]]) to the config; see docs/aws.md",
        ));
    }
    let mut newest_remote: Option<i64> = None;
    for s in sources {
        let access = sync::access_of(s.access(), &over);
        let c = rt.block_on(async {
            let conf = match bedrock_usage_aws::connect(&access).await {
                Ok(c) => c,
                Err(f) => {
                    return Check::bad(
                        Level::Fail,
                        format!("source {}", s.label()),
                        f.message.clone(),
                        bedrock_usage_aws::status::fix_for(&f, "the source's AWS settings"),
                    )
                }
            };
            match s {
                Source::CloudWatch { log_group, .. } => {
                    let (c, newest) = bedrock_usage_aws::status::log_group(&conf, log_group).await;
                    newest_remote = newest_remote.max(newest);
                    c
                }
                Source::S3 { bucket, prefix, .. } => {
                    bedrock_usage_aws::status::bucket(&conf, bucket, prefix).await
                }
            }
        });
        checks.push(c);
    }
    if let Some(l) = &logging {
        let read = |dest: &Source| match dest {
            Source::CloudWatch { log_group, .. } => l.log_group.as_deref() == Some(log_group),
            Source::S3 { bucket, .. } => l.bucket.as_deref() == Some(bucket),
        };
        if (l.log_group.is_some() || l.bucket.is_some()) && !sources.iter().any(read) {
            let dest = l
                .log_group
                .clone()
                .map(|g| format!("[[sources.cloudwatch]]\nlog_group = \"{g}\""))
                .or_else(|| {
                    l.bucket
                        .clone()
                        .map(|b| format!("[[sources.s3]]\nbucket = \"{b}\""))
                })
                .unwrap_or_default();
            checks.push(Check::bad(
                Level::Warn,
                "sources match logging",
                "Bedrock delivers somewhere no source of the config reads",
                format!("add to the config:\n{dest}"),
            ));
        }
    }
    checks.extend(store_checks(args, &cfg.config, newest_remote)?);
    let rec = Records {
        fields: ["check", "status", "detail", "to_fix"]
            .map(String::from)
            .to_vec(),
        rows: checks
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.name),
                    Cell::text(c.level.word()),
                    Cell::text(&c.detail),
                    c.fix.clone().map_or(Cell::Null, Cell::Text),
                ]
            })
            .collect(),
    };
    if matches!(args.format, Format::Table | Format::Markdown) {
        // Fixes are long: under the table, one per failed check.
        let short = Records {
            fields: rec.fields[..3].to_vec(),
            rows: rec.rows.iter().map(|r| r[..3].to_vec()).collect(),
        };
        short.print(args.format)?;
        for c in checks.iter().filter(|c| c.level != Level::Ok) {
            if let Some(f) = &c.fix {
                println!("\n{} ({}): {}", c.name, c.level.word(), f);
            }
        }
    } else {
        rec.print(args.format)?;
    }
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    Ok(if worst == Level::Fail {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}

/// What the store says: the newest record, each source's last sync, and the records from shared
/// principals that cannot be told apart.
fn store_checks(
    args: &Args,
    config: &bedrock_usage_core::Config,
    newest_remote: Option<i64>,
) -> Result<Vec<Check>> {
    let path = store_path(args.db.as_deref())?;
    if !path.exists() {
        return Ok(vec![Check::bad(
            Level::Warn,
            "store",
            format!("no store at {}", path.display()),
            "run `bedrock-usage sync` (or `ingest`)",
        )]);
    }
    let store = Store::open(&path)?;
    let now = crate::now_ms();
    let mut out = Vec::new();
    match store.newest_ms()? {
        None => out.push(Check::bad(
            Level::Warn,
            "store",
            "holds no records",
            "run `bedrock-usage sync`",
        )),
        Some(t) => {
            let behind = newest_remote.is_some_and(|r| r > t + 3_600_000);
            let detail = format!(
                "newest record {} ({}); {} records",
                format_utc(t),
                ago(now, t),
                store.invocation_count()?
            );
            out.push(if behind {
                Check::bad(
                    Level::Warn,
                    "store",
                    detail,
                    "the log group has newer events: run `bedrock-usage sync`",
                )
            } else {
                Check::ok("store", detail)
            });
        }
    }
    for (key, value, updated) in store.cursors()? {
        let pos = if key.starts_with("s3|") {
            let (y, m, d) = bedrock_usage_core::time::civil_from_days(value);
            format!("{y:04}-{m:02}-{d:02}")
        } else {
            format_utc(value)
        };
        out.push(Check::ok(
            format!("last sync {}", key.replace('|', " ")),
            format!("{} (read up to {pos})", ago(now, updated)),
        ));
    }
    let identities = store.identities()?;
    let attributor = Attributor::new(config, identities.iter());
    let facts = store.facts(None, None, crate::store::Grain::Day)?;
    let mut shared_calls = 0u64;
    let mut principals = std::collections::BTreeSet::new();
    for f in &facts.rows {
        let id = &facts.identities[f.identity];
        if attributor.attribute(id).is_shared() {
            shared_calls += f.calls;
            principals.insert(id.principal.clone());
        }
    }
    let pending = store.pending_metrics_count()?;
    if pending > 0 {
        out.push(Check::bad(
            Level::Warn,
            "metrics",
            format!("{pending} records wait for their CloudWatch metrics"),
            "run `bedrock-usage sync --publish-metrics`",
        ));
    }
    out.push(if shared_calls == 0 {
        Check::ok("shared principals", "every record is attributed to a developer")
    } else {
        Check::bad(
            Level::Warn,
            "shared principals",
            format!(
                "{shared_calls} records come from {} shared principal(s) that cannot be told apart: {}",
                principals.len(),
                principals.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "have each developer's client send requestMetadata {\"developer\": NAME}, or give each a session name (see docs/configuration.md)",
        )
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://logs/bedrock").ok(),
            Some(("logs".to_string(), "bedrock/".to_string()))
        );
        assert_eq!(
            parse_s3_url("s3://logs").ok(),
            Some(("logs".to_string(), String::new()))
        );
        assert!(parse_s3_url("logs/bedrock").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }
}
