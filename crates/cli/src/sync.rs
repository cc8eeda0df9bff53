//! `sync`: keeps the store in step with the CloudWatch Logs groups and S3 buckets of the config,
//! exactly once.
//!
//! - CloudWatch Logs: `FilterLogEvents` over windows of up to a week from the source's cursor. The
//!   cursor moves only when a window is read to its end, in the same transaction as the window's
//!   last records, and never past `now - overlap`: records that reach CloudWatch late are read
//!   on the next round, and those read twice are ignored by requestId.
//! - S3: the delivery layout is listed from the day before the source's cursor (by date
//!   partition, with `StartAfter`); each object not yet read (by key and ETag) is fetched,
//!   inflated and parsed, and committed with its checkpoint (`s3://bucket/key`).
//!
//! A kill at any instant loses nothing and counts nothing twice: what was committed is covered by
//! its cursor or checkpoint, what was not is read again.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use bedrock_usage_aws::{logs, s3, Access, Backoff, Failure};
use bedrock_usage_core::config::{AwsAccess, Source};
use bedrock_usage_core::time::{civil_from_days, format_utc, MS_PER_DAY};
use bedrock_usage_core::Invocation;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ingest::{decompress, parse_lines, BadInput};
use crate::store::{Checkpoint, Store};

/// How a round of `sync` runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Where a source's first sync starts (epoch ms); later ones start from the cursor.
    pub since: Option<i64>,
    /// Command-line `--profile`, `--region`, `--endpoint-url` (over each source's settings).
    pub overrides: Access,
    /// Events or keys per page (default: the service's maximum).
    pub page_size: Option<i32>,
    pub overlap_ms: i64,
    pub metadata_keys: Vec<String>,
    pub progress: bool,
    pub max_examples: usize,
    /// How the per-call retries back off (after the SDK's own).
    pub backoff: Backoff,
}

/// What one source's sync did.
#[derive(Debug, Default, Clone)]
pub struct SourceReport {
    pub source: String,
    pub records: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub bad: u64,
    pub bad_examples: Vec<BadInput>,
    /// Pages of events, or objects read.
    pub units: u64,
    pub retries: u64,
    /// Where the source stands now (cursor, as a time).
    pub position: Option<String>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl SourceReport {
    fn bad(&mut self, b: BadInput, max: usize) {
        self.bad += 1;
        if self.bad_examples.len() < max {
            self.bad_examples.push(b);
        }
    }
}

/// The SDK's view of a source's access settings, with the command-line overrides on top.
pub fn access_of(a: &AwsAccess, over: &Access) -> Access {
    Access {
        profile: a.profile.clone(),
        region: a.region.clone(),
        role_arn: a.role_arn.clone(),
        endpoint_url: a.endpoint_url.clone(),
    }
    .overridden_by(over)
}

/// A single-threaded runtime for the SDK's calls (the work is waiting, not computing).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// One round over every source. A failing source is reported and the others go on.
/// SDK configurations kept between rounds of `--watch`, one per distinct access (an assumed
/// role is assumed once, and its credentials are refreshed by the SDK before they expire).
pub type Connections = HashMap<Access, bedrock_usage_aws::SdkConfig>;

pub fn sync_round(
    rt: &tokio::runtime::Runtime,
    store: &mut Store,
    sources: &[Source],
    opts: &SyncOptions,
    connections: &mut Connections,
    stop: &AtomicBool,
) -> Vec<SourceReport> {
    let mut out = Vec::new();
    for src in sources {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        let mut rep = SourceReport {
            source: src.label(),
            ..SourceReport::default()
        };
        let bar = Spinner::new(opts.progress, &rep.source);
        let access = access_of(src.access(), &opts.overrides);
        let result = rt.block_on(async {
            let conf = match connections.get(&access) {
                Some(c) => c.clone(),
                None => {
                    let c = bedrock_usage_aws::connect(&access).await?;
                    connections.insert(access.clone(), c.clone());
                    c
                }
            };
            match src {
                Source::CloudWatch {
                    log_group,
                    log_streams,
                    log_stream_prefix,
                    ..
                } => {
                    let filter = logs::StreamFilter {
                        names: log_streams.clone(),
                        prefix: log_stream_prefix.clone(),
                    };
                    sync_cloudwatch(&conf, store, log_group, &filter, opts, stop, &mut rep, &bar)
                        .await
                }
                Source::S3 { bucket, prefix, .. } => {
                    sync_s3(&conf, store, bucket, prefix, opts, stop, &mut rep, &bar).await
                }
            }
        });
        bar.finish();
        if let Err(SyncError::Aws(f)) = &result {
            if f.kind == bedrock_usage_aws::Kind::Credentials {
                // Load the chain again next time: the keys may have been rotated.
                connections.remove(&access);
            }
        }
        if let Err(e) = result {
            let what = match src {
                Source::CloudWatch { log_group, .. } => format!("log group {log_group}"),
                Source::S3 { bucket, .. } => format!("bucket {bucket}"),
            };
            rep.error = Some(match e {
                SyncError::Aws(f) => format!(
                    "{} (to fix: {})",
                    f.message,
                    bedrock_usage_aws::status::fix_for(&f, &what)
                ),
                SyncError::Store(e) => format!("{e:#}"),
            });
        }
        rep.elapsed = started.elapsed();
        out.push(rep);
    }
    out
}

/// A failure of a sync or of publishing its metrics: from AWS, or from the store.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Aws(#[from] Failure),
    #[error("{0:#}")]
    Store(#[from] anyhow::Error),
}

/// The cursor key of a CloudWatch source (region-qualified: one group name can exist in several).
fn cloudwatch_key(region: &str, group: &str, f: &logs::StreamFilter) -> String {
    let which = if !f.names.is_empty() {
        format!("streams={}", f.names.join(","))
    } else if let Some(p) = &f.prefix {
        format!("prefix={p}")
    } else {
        "all".to_string()
    };
    format!("cloudwatch|{region}|{group}|{which}")
}

#[allow(clippy::too_many_arguments)]
async fn sync_cloudwatch(
    conf: &bedrock_usage_aws::SdkConfig,
    store: &mut Store,
    group: &str,
    filter: &logs::StreamFilter,
    opts: &SyncOptions,
    stop: &AtomicBool,
    rep: &mut SourceReport,
    bar: &Spinner,
) -> std::result::Result<(), SyncError> {
    let client = logs::Client::new(conf);
    let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
    let key = cloudwatch_key(&region, group, filter);
    let now = crate::now_ms();
    let start = match store.cursor(&key)? {
        Some(c) => c,
        None => match opts.since {
            Some(s) => s,
            None => {
                let info = bedrock_usage_aws::retry(
                    &opts.backoff,
                    || logs::describe_group(&client, group),
                    |_, _| rep.retries += 1,
                )
                .await?;
                match info {
                    Some(g) => g.creation_ms.unwrap_or(0),
                    None => {
                        return Err(Failure::new(
                            bedrock_usage_aws::Kind::NotFound,
                            "ResourceNotFoundException",
                            format!("reading log group {group}: no such log group in {region}"),
                        )
                        .into())
                    }
                }
            }
        },
    };
    let settle = now - opts.overlap_ms;
    let mut a = start;
    while a < now {
        // Windows of up to a week (ending at UTC midnight), so a first sync of a long history
        // keeps its progress when stopped, without a call per quiet day.
        let b = (a.div_euclid(MS_PER_DAY) + WINDOW_DAYS) * MS_PER_DAY;
        let b = b.min(now);
        let mut token: Option<String> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let page = bedrock_usage_aws::retry(
                &opts.backoff,
                || {
                    logs::filter_page(
                        &client,
                        group,
                        filter,
                        a,
                        b,
                        token.as_deref(),
                        opts.page_size,
                    )
                },
                |_, _| rep.retries += 1,
            )
            .await?;
            rep.units += 1;
            let mut records = Vec::with_capacity(page.events.len());
            for e in &page.events {
                match bedrock_usage_core::parse_record(e.message.as_bytes()) {
                    Ok(r) => records.push(r),
                    Err(err) => rep.bad(
                        BadInput {
                            file: format!("cloudwatch {group}"),
                            line: None,
                            reason: format!("event at {}: {err}", format_utc(e.timestamp_ms)),
                        },
                        opts.max_examples,
                    ),
                }
            }
            let last = page.next_token.is_none();
            // The window is done: the cursor moves to its end, but never past `now - overlap`.
            let cursors = if last {
                let c = b.min(settle).max(start);
                rep.position = Some(format_utc(c));
                vec![(key.clone(), c)]
            } else {
                Vec::new()
            };
            commit(store, &records, &[], &cursors, opts, rep)?;
            bar.update(rep);
            token = page.next_token;
            if last {
                break;
            }
        }
        a = b;
    }
    Ok(())
}

/// The length of a CloudWatch window, in days.
const WINDOW_DAYS: i64 = 7;

fn commit(
    store: &mut Store,
    records: &[Invocation],
    checkpoints: &[Checkpoint],
    cursors: &[(String, i64)],
    opts: &SyncOptions,
    rep: &mut SourceReport,
) -> Result<()> {
    let out = store.write_with_cursors(records, checkpoints, cursors, &opts.metadata_keys)?;
    rep.records += records.len() as u64;
    rep.inserted += out.inserted;
    rep.duplicates += out.duplicates;
    Ok(())
}

/// `YYYY/MM/DD` of a day number.
fn day_path(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}/{m:02}/{d:02}")
}

/// Objects fetched at once.
const S3_PARALLEL: usize = 16;

#[allow(clippy::too_many_arguments)]
async fn sync_s3(
    conf: &bedrock_usage_aws::SdkConfig,
    store: &mut Store,
    bucket: &str,
    prefix: &str,
    opts: &SyncOptions,
    stop: &AtomicBool,
    rep: &mut SourceReport,
    bar: &Spinner,
) -> std::result::Result<(), SyncError> {
    let client = s3::client(conf);
    let key = format!("s3|{bucket}|{prefix}");
    let now = crate::now_ms();
    let from_day = match store.cursor(&key)? {
        // One day back: objects for a day keep arriving after it ends.
        Some(day) => Some(day - 1),
        None => opts.since.map(|s| s.div_euclid(MS_PER_DAY)),
    };
    let roots = s3::date_roots(&client, bucket, prefix, &opts.backoff, &mut rep.retries).await?;
    // Without date partitions (a prefix inside one, or another layout): list everything.
    let listings: Vec<(String, Option<String>)> = if roots.is_empty() {
        vec![(prefix.to_string(), None)]
    } else {
        roots
            .iter()
            .map(|r| (r.clone(), from_day.map(|d| format!("{r}{}", day_path(d)))))
            .collect()
    };
    let done = store.complete_sources(&format!("s3://{bucket}/"))?;
    for (list_prefix, start_after) in listings {
        let mut token: Option<String> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let page = bedrock_usage_aws::retry(
                &opts.backoff,
                || {
                    s3::list_page(
                        &client,
                        bucket,
                        &list_prefix,
                        start_after.as_deref(),
                        None,
                        token.as_deref(),
                        opts.page_size,
                    )
                },
                |_, _| rep.retries += 1,
            )
            .await?;
            let todo: Vec<s3::Object> = page
                .objects
                .into_iter()
                .filter(|o| !s3::is_skipped(&o.key))
                .filter(|o| {
                    done.get(&format!("s3://{bucket}/{}", o.key))
                        .is_none_or(|etag| *etag != o.etag)
                })
                .collect();
            read_objects(&client, store, bucket, &todo, opts, rep, stop, bar).await?;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    let day = (now - opts.overlap_ms).div_euclid(MS_PER_DAY);
    rep.position = Some(day_path(day));
    commit(store, &[], &[], &[(key, day)], opts, rep)?;
    Ok(())
}

/// Fetches `objects` at once, then commits their records with their checkpoints.
#[allow(clippy::too_many_arguments)]
async fn read_objects(
    client: &s3::Client,
    store: &mut Store,
    bucket: &str,
    objects: &[s3::Object],
    opts: &SyncOptions,
    rep: &mut SourceReport,
    stop: &AtomicBool,
    bar: &Spinner,
) -> std::result::Result<(), SyncError> {
    // A sliding window: up to S3_PARALLEL fetches in flight, a new one started as each ends;
    // what has arrived is committed every COMMIT_OBJECTS objects, in any order (each object
    // carries its own checkpoint). After a failure or a stop no new fetch starts, and what
    // arrived is still committed.
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut arrived: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut first_error = None;
    loop {
        while tasks.len() < S3_PARALLEL
            && next < objects.len()
            && first_error.is_none()
            && !stop.load(Ordering::Relaxed)
        {
            let (client, bucket, key, backoff, i) = (
                client.clone(),
                bucket.to_string(),
                objects[next].key.clone(),
                opts.backoff,
                next,
            );
            tasks.spawn(async move {
                let mut retries = 0u64;
                let r = bedrock_usage_aws::retry(
                    &backoff,
                    || s3::get(&client, &bucket, &key),
                    |_, _| retries += 1,
                )
                .await;
                (i, r, retries)
            });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let Ok((i, r, retries)) = joined else {
            continue;
        };
        rep.retries += retries;
        match r {
            Ok(b) => arrived.push((i, b)),
            Err(f) => {
                first_error.get_or_insert(f);
            }
        }
        if arrived.len() >= COMMIT_OBJECTS {
            commit_objects(
                store,
                bucket,
                objects,
                std::mem::take(&mut arrived),
                opts,
                rep,
            )?;
            bar.update(rep);
        }
    }
    commit_objects(store, bucket, objects, arrived, opts, rep)?;
    bar.update(rep);
    match first_error {
        Some(f) => Err(f.into()),
        None => Ok(()),
    }
}

/// Objects committed together.
const COMMIT_OBJECTS: usize = 32;

/// Parses fetched objects (`(index into objects, body)`) and commits their records with their
/// checkpoints in one transaction.
fn commit_objects(
    store: &mut Store,
    bucket: &str,
    objects: &[s3::Object],
    arrived: Vec<(usize, Vec<u8>)>,
    opts: &SyncOptions,
    rep: &mut SourceReport,
) -> Result<()> {
    if arrived.is_empty() {
        return Ok(());
    }
    let mut records = Vec::new();
    let mut checkpoints = Vec::new();
    for (i, body) in arrived {
        let o = &objects[i];
        let label = format!("s3://{bucket}/{}", o.key);
        let (data, gzip) = match decompress(body) {
            Ok(d) => d,
            Err(reason) => {
                rep.bad(
                    BadInput {
                        file: label,
                        line: None,
                        reason,
                    },
                    opts.max_examples,
                );
                continue;
            }
        };
        let len = data.len() as u64;
        let (recs, bad, lines) = parse_lines(data);
        for mut b in bad {
            b.file = label.clone();
            rep.bad(b, opts.max_examples);
        }
        checkpoints.push(Checkpoint {
            path: label,
            fingerprint: o.etag.clone(),
            fingerprint_len: 0,
            size: o.size,
            gzip,
            offset: len,
            lines,
            complete: true,
            records: recs.len() as u64,
        });
        rep.units += 1;
        records.extend(recs);
    }
    commit(store, &records, &checkpoints, &[], opts, rep)
}

/// A spinner on stderr while a source syncs (only on a terminal).
struct Spinner(Option<ProgressBar>);

impl Spinner {
    fn new(enabled: bool, label: &str) -> Spinner {
        Spinner((enabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(125));
            b
        }))
    }

    fn update(&self, rep: &SourceReport) {
        if let Some(b) = &self.0 {
            b.set_message(format!(
                "· {} records ({} new) · {} pages/objects",
                bedrock_usage_core::money::group_thousands(rep.records),
                bedrock_usage_core::money::group_thousands(rep.inserted),
                rep.units
            ));
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Per-source totals of a run of rounds (for `--watch`'s final summary).
pub fn merge(total: &mut HashMap<String, SourceReport>, round: &[SourceReport]) {
    for r in round {
        let t = total
            .entry(r.source.clone())
            .or_insert_with(|| SourceReport {
                source: r.source.clone(),
                ..SourceReport::default()
            });
        t.records += r.records;
        t.inserted += r.inserted;
        t.duplicates += r.duplicates;
        t.bad += r.bad;
        t.units += r.units;
        t.retries += r.retries;
        t.elapsed += r.elapsed;
        t.position = r.position.clone().or(t.position.take());
        t.error = r.error.clone();
    }
}
