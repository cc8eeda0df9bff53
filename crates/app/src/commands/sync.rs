//! `sync`: pulls what is new from the CloudWatch Logs groups and S3 buckets of the config and
//! the command line, once or every `--interval` until a stop is asked for (`crate::shutdown`).

use std::collections::HashMap;
use std::time::Duration;

use bedrock_usage_aws::Backoff;
use bedrock_usage_core::config::{AwsAccess, Source};
use bedrock_usage_core::layout::parse_s3_url;
use bedrock_usage_core::time::{format_utc, parse_duration_ms, parse_when, Zone};

use crate::cli::AwsArgs;
use crate::context::Context;
use crate::error::{Error, Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{Cell, Format, Records};
use crate::publish::metrics::{self, PublishReport};
use crate::shutdown;
use crate::sources::iam_tags;
use crate::sources::remote::{self, SourceReport, SyncOptions};

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

pub fn run(ctx: &Context, a: &SyncArgs) -> Result<u8> {
    let cfg = &ctx.config;
    let mut sources = cfg.sources.clone();
    for g in a.log_groups {
        sources.push(Source::CloudWatch {
            log_group: g.clone(),
            log_streams: Vec::new(),
            log_stream_prefix: None,
            access: AwsAccess::default(),
        });
    }
    for u in a.s3 {
        let (bucket, prefix) = parse_s3_url(u).map_err(Error::Invalid)?;
        sources.push(Source::S3 {
            bucket,
            prefix,
            access: AwsAccess::default(),
        });
    }
    if sources.is_empty() {
        invalid!("nothing to sync: add [[sources.cloudwatch]] or [[sources.s3]] to the config (see docs/aws.md), or pass --log-group NAME / --s3 s3://BUCKET/PREFIX");
    }
    let now = ctx.clock.now_ms();
    let since = a
        .since
        .map(|s| parse_when(s, &Zone::utc(), now, false, "--since"))
        .transpose()?;
    let interval_ms = match a.interval {
        Some(i) => match parse_duration_ms(i) {
            Some(ms) if ms > 0 => ms,
            _ => invalid!("--interval: `{i}` is not a duration (90s, 5m, 1h)"),
        },
        None => cfg.sync.interval_ms,
    };
    if a.interval.is_some() && !a.watch {
        invalid!("--interval goes with --watch");
    }
    let publish = a.publish_metrics || cfg.sync.publish_metrics;
    let mut store = ctx.open_store()?;
    store.set_track_metrics(publish);
    let opts = SyncOptions {
        since,
        overrides: a.aws.access(),
        page_size: a.page_size,
        overlap_ms: cfg.sync.overlap_ms,
        metadata_keys: cfg.metadata_keys.clone(),
        progress: a.progress,
        backoff: Backoff::default(),
    };
    // Metrics go where the first source is (or `sync.metrics_region`).
    let mut metrics_access = sources[0].access().overridden_by(&opts.overrides);
    if let Some(r) = &cfg.sync.metrics_region {
        metrics_access.region = Some(r.clone());
    }
    let rt = remote::runtime()?;
    let stop = shutdown::install();
    let mut totals: HashMap<String, SourceReport> = HashMap::new();
    let mut failed_rounds: HashMap<String, u32> = HashMap::new();
    let mut skip_until: HashMap<String, u64> = HashMap::new();
    let mut round = 0u64;
    let mut connections = remote::Connections::new();
    let mut any_failed;
    loop {
        round += 1;
        // A source that keeps failing is tried less often: again after 1, 2, 4, then 8 rounds.
        let due: Vec<Source> = sources
            .iter()
            .filter(|s| skip_until.get(&s.label()).is_none_or(|&r| r <= round))
            .cloned()
            .collect();
        let reports = remote::sync_round(&rt, &mut *store, &due, &opts, &mut connections, stop);
        if reports.iter().any(|r| r.tally.inserted > 0) {
            super::store::seal_after_write(&*store, &ctx.db_path()?);
        }
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
                metrics::publish(
                    &conf,
                    &mut *store,
                    cfg,
                    &ctx.catalog,
                    &opts.backoff,
                    ctx.clock.now_ms(),
                )
                .await
            }))
        } else {
            None
        };
        if cfg.iam_tags {
            let r = rt.block_on(async {
                let conf = bedrock_usage_aws::connect(&metrics_access)
                    .await
                    .map_err(|f| f.message)?;
                iam_tags::refresh(&conf, &mut *store, ctx.clock.now_ms())
                    .await
                    .map_err(|e| e.to_string())
            });
            match r {
                Ok(t) if t.failed > 0 => {
                    any_failed = true;
                    let why = t.first_failure.map(|f| f.message).unwrap_or_default();
                    eprintln!("warning: the IAM tags of {} of {} users and roles could not be read ({why}); reports use the tags read before", t.failed, t.entities);
                }
                Ok(_) => {}
                Err(e) => {
                    any_failed = true;
                    eprintln!("warning: reading IAM tags: {e}");
                }
            }
        }
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
            print_reports(&reports, published.and_then(|p| p.ok()), ctx.format)?;
            return Ok(if any_failed {
                EXIT_CHECK_FAILED
            } else {
                EXIT_OK
            });
        }
        remote::merge(&mut totals, &reports);
        for r in &reports {
            let at = format_utc(ctx.clock.now_ms());
            match &r.error {
                Some(e) => eprintln!("{at} {}: failed: {e}", r.source),
                None if r.tally.inserted > 0 || r.tally.bad > 0 => eprintln!(
                    "{at} {}: {} new records ({} already stored, {} bad)",
                    r.source, r.tally.inserted, r.tally.duplicates, r.tally.bad
                ),
                None => {}
            }
        }
        if !ctx.config.budgets.is_empty()
            || !ctx.config.digests.is_empty()
            || ctx.config.alerts.anomaly.is_some()
        {
            // A failure here is reported and the watch goes on; the outbox keeps what was not
            // delivered for the next round.
            if let Err(e) = crate::alerts::check_in(ctx, &mut *store, false) {
                eprintln!("error: alerts check: {e}");
            }
        }
        if shutdown::requested() || shutdown::sleep(Duration::from_millis(interval_ms as u64)) {
            break;
        }
    }
    eprintln!("stopped after {round} rounds");
    let mut all: Vec<SourceReport> = totals.into_values().collect();
    all.sort_by(|a, b| a.source.cmp(&b.source));
    print_reports(&all, None, ctx.format)?;
    Ok(if any_failed {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}

fn print_reports(
    reports: &[SourceReport],
    published: Option<PublishReport>,
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
                    Cell::int(r.tally.records),
                    Cell::int(r.tally.inserted),
                    Cell::int(r.tally.duplicates),
                    Cell::int(r.tally.bad),
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
        r.tally.warn_bad(&format!("{}: ", r.source), "bad records");
    }
    Ok(())
}
