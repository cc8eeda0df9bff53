//! The CloudWatch Logs source of `sync`: `FilterLogEvents` over windows of up to a week from
//! the source's cursor. The cursor moves only when a window is read to its end, in the same
//! transaction as the window's last records, and never past `now - overlap`: records that reach
//! CloudWatch late are read on the next round, and those read twice are ignored by requestId.

use std::sync::atomic::{AtomicBool, Ordering};

use bedrock_usage_aws::{logs, Failure};
use bedrock_usage_core::time::{format_utc, MS_PER_DAY};

use super::lines::EventParser;
use super::remote::{SourceReport, SyncError, SyncOptions};
use super::{BadInput, Records};
use crate::pipeline::commit;
use crate::progress::Spinner;
use crate::store::{Cursor, Position, SourceId, Store, Streams};

/// The cursor's name for a log group in a region (one group name can exist in several).
fn source_id(region: &str, group: &str, f: &logs::StreamFilter) -> SourceId {
    let streams = if !f.names.is_empty() {
        Streams::Names(f.names.clone())
    } else if let Some(p) = &f.prefix {
        Streams::Prefix(p.clone())
    } else {
        Streams::All
    };
    SourceId::CloudWatch {
        region: region.to_string(),
        group: group.to_string(),
        streams,
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn sync(
    conf: &bedrock_usage_aws::SdkConfig,
    store: &mut dyn Store,
    group: &str,
    filter: &logs::StreamFilter,
    opts: &SyncOptions,
    stop: &AtomicBool,
    rep: &mut SourceReport,
    bar: &Spinner,
) -> std::result::Result<(), SyncError> {
    let client = logs::Client::new(conf);
    let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
    let source = source_id(&region, group, filter);
    let now = crate::context::now_ms();
    // Where the last sync stopped: a time (every event before it read), or a page inside a
    // window (its next token), so that a sync stopped mid-window keeps its progress.
    let (start, mut resume) = match store.cursor(&source)? {
        Some(Position::Page { from, to, token }) => (from, Some((to, token))),
        Some(c) => (c.value(), None),
        None => (
            match opts.since {
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
            None,
        ),
    };
    rep.position = Some(format_utc(start));
    let settle = now - opts.overlap_ms;
    let mut a = start;
    while a < now {
        // Windows of up to a week (ending at UTC midnight), so a first sync of a long history
        // keeps its progress when stopped, without a call per quiet day. A resumed window keeps
        // its end: the token belongs to it.
        let (b, mut token) = match resume.take() {
            Some((to, t)) => (to, Some(t)),
            None => (
                ((a.div_euclid(MS_PER_DAY) + WINDOW_DAYS) * MS_PER_DAY).min(now),
                None,
            ),
        };
        let mut resumed = token.is_some();
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
            .await;
            let page = match page {
                // A saved token no longer accepted (they expire): the window again from its
                // start; what is read twice is ignored by request id.
                Err(f) if resumed && f.kind == bedrock_usage_aws::Kind::Invalid => {
                    tracing::info!(
                        log_group = group,
                        "Saved page token refused: reading the window again"
                    );
                    (token, resumed) = (None, false);
                    continue;
                }
                r => r?,
            };
            resumed = false;
            rep.units += 1;
            tracing::debug!(
                log_group = group,
                events = page.events.len(),
                more = page.next_token.is_some(),
                "Read a page of events"
            );
            let mut records = Vec::with_capacity(page.events.len());
            for e in &page.events {
                match Records.parse(e.message.as_bytes(), None, group) {
                    Ok(r) => records.extend(r),
                    Err(err) => rep.tally.bad(BadInput {
                        file: format!("cloudwatch {group}"),
                        line: None,
                        reason: format!("event at {}: {err}", format_utc(e.timestamp_ms)),
                    }),
                }
            }
            // Done with the window: the cursor moves to its end, but never past
            // `now - overlap`. Inside it: to the next page, with the records of this one.
            let position = match &page.next_token {
                None => Position::Time(b.min(settle).max(start)),
                Some(t) => Position::Page {
                    from: a,
                    to: b,
                    token: t.clone(),
                },
            };
            rep.position = Some(position.to_string());
            let origin = format!("cloudwatch {region} {group}");
            commit(
                store,
                &records,
                &vec![origin.as_str(); records.len()],
                &[],
                &[Cursor {
                    source: source.clone(),
                    position,
                }],
                &opts.metadata_keys,
                &mut rep.tally,
            )?;
            bar.update(rep.tally.records, rep.tally.inserted, rep.units);
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        a = b;
    }
    Ok(())
}

/// The length of a CloudWatch window, in days.
const WINDOW_DAYS: i64 = 7;
