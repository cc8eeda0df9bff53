//! The S3 source of `sync`: the delivery layout is listed from the day before the source's
//! cursor (by date partition, with `StartAfter`); each object not yet read (by key and ETag) is
//! fetched, inflated and parsed by the one reader's line rules, and committed with its
//! checkpoint (`s3://bucket/key`).

use std::sync::atomic::{AtomicBool, Ordering};

use bedrock_usage_aws::s3;
use bedrock_usage_core::layout::{self, day_path};
use bedrock_usage_core::time::MS_PER_DAY;

use super::gzip::decompress;
use super::lines::parse_bytes;
use super::remote::{SourceReport, SyncError, SyncOptions};
use super::{BadInput, Records};
use crate::pipeline::commit;
use crate::progress::Spinner;
use crate::store::{Checkpoint, Cursor, Position, SourceId, Store};

/// Objects fetched at once.
const S3_PARALLEL: usize = 16;

#[allow(clippy::too_many_arguments)]
pub async fn sync(
    conf: &bedrock_usage_aws::SdkConfig,
    store: &mut dyn Store,
    bucket: &str,
    prefix: &str,
    opts: &SyncOptions,
    stop: &AtomicBool,
    rep: &mut SourceReport,
    bar: &Spinner,
) -> std::result::Result<(), SyncError> {
    let client = s3::client(conf);
    let source = SourceId::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    };
    let now = crate::context::now_ms();
    let from_day = match store.cursor(&source)? {
        // One day back: objects for a day keep arriving after it ends.
        Some(day) => Some(day.value() - 1),
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
                .filter(|o| !layout::is_skipped_key(&o.key))
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
    let cursor = Cursor {
        source,
        position: Position::Day(day),
    };
    commit(
        store,
        &[],
        &[],
        &[],
        &[cursor],
        &opts.metadata_keys,
        &mut rep.tally,
    )?;
    Ok(())
}

/// Fetches `objects` at once, then commits their records with their checkpoints.
#[allow(clippy::too_many_arguments)]
async fn read_objects(
    client: &s3::Client,
    store: &mut dyn Store,
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
            bar.update(rep.tally.records, rep.tally.inserted, rep.units);
        }
    }
    commit_objects(store, bucket, objects, arrived, opts, rep)?;
    bar.update(rep.tally.records, rep.tally.inserted, rep.units);
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
    store: &mut dyn Store,
    bucket: &str,
    objects: &[s3::Object],
    arrived: Vec<(usize, Vec<u8>)>,
    opts: &SyncOptions,
    rep: &mut SourceReport,
) -> Result<(), crate::store::StoreError> {
    if arrived.is_empty() {
        return Ok(());
    }
    let mut records = Vec::new();
    let mut checkpoints = Vec::new();
    // Where each record came from: its object.
    let mut origins: Vec<String> = Vec::new();
    for (i, body) in arrived {
        let o = &objects[i];
        let label = format!("s3://{bucket}/{}", o.key);
        tracing::debug!(object = %label, bytes = body.len(), "Read an object");
        let (data, gzip) = match decompress(body) {
            Ok(d) => d,
            Err(reason) => {
                rep.tally.bad(BadInput {
                    file: label,
                    line: None,
                    reason,
                });
                continue;
            }
        };
        let len = data.len() as u64;
        let (recs, bad, lines) = parse_bytes(&data, &label, &Records);
        for b in bad {
            rep.tally.bad(b);
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
            inode: 0,
            mtime_ns: 0,
            tail: String::new(),
            document: false,
        });
        rep.units += 1;
        let key = checkpoints
            .last()
            .map(|c| c.path.clone())
            .unwrap_or_default();
        origins.extend(std::iter::repeat_n(key, recs.len()));
        records.extend(recs);
    }
    let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
    commit(
        store,
        &records,
        &origins,
        &checkpoints,
        &[],
        &opts.metadata_keys,
        &mut rep.tally,
    )
}
