//! A round of `sync` over the AWS sources (`cloudwatch`, `s3`): connections kept between rounds,
//! a failing source reported while the others go on, and what each source did.
//!
//! A kill at any instant loses nothing and counts nothing twice: what was committed is covered by
//! its cursor or checkpoint, what was not is read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bedrock_usage_aws::{logs, Access, Backoff, Failure};
use bedrock_usage_core::config::Source;

use super::Tally;
use crate::progress::Spinner;
use crate::store::{Store, StoreError};

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
    /// How the per-call retries back off (after the SDK's own).
    pub backoff: Backoff,
}

/// What one source's sync did.
#[derive(Debug, Default, Clone)]
pub struct SourceReport {
    pub source: String,
    pub tally: Tally,
    /// Pages of events, or objects read.
    pub units: u64,
    pub retries: u64,
    /// Where the source stands now (cursor, as a time).
    pub position: Option<String>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// A single-threaded runtime for the SDK's calls (the work is waiting, not computing).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// SDK configurations kept between rounds of `--watch`, one per distinct access (an assumed
/// role is assumed once, and its credentials are refreshed by the SDK before they expire).
pub type Connections = HashMap<Access, bedrock_usage_aws::SdkConfig>;

/// One round over every source. A failing source is reported and the others go on.
pub fn sync_round(
    rt: &tokio::runtime::Runtime,
    store: &mut dyn Store,
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
        let access = src.access().overridden_by(&opts.overrides);
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
                    super::cloudwatch::sync(
                        &conf, store, log_group, &filter, opts, stop, &mut rep, &bar,
                    )
                    .await
                }
                Source::S3 { bucket, prefix, .. } => {
                    super::s3::sync(&conf, store, bucket, prefix, opts, stop, &mut rep, &bar).await
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
                SyncError::Store(e) => e.to_string(),
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
    #[error(transparent)]
    Store(#[from] StoreError),
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
        t.tally.add(&r.tally);
        t.units += r.units;
        t.retries += r.retries;
        t.elapsed += r.elapsed;
        t.position = r.position.clone().or(t.position.take());
        t.error = r.error.clone();
    }
}
