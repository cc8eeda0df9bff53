//! The one writer: every source's records reach the store here, in batches that carry the
//! checkpoints and cursors covering them, so that what is committed is exactly what is covered
//! (a crash at any instant loses nothing and counts nothing twice).
//!
//! [`commit`] is the one write path (files and `sync` alike); [`ingest`] runs the file
//! pipeline: inputs planned from their checkpoints, read by the one reader
//! (`sources::lines`), put back in each input's order and committed every
//! [`COMMIT_RECORDS`] records or [`COMMIT_FILES`] files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bedrock_usage_core::Invocation;

use crate::progress::Progress;
use crate::sources::files::{self, Planned};
use crate::sources::lines::{self, Order, ReadOptions};
use crate::sources::{Records, Tally};
use crate::store::{Batch, Checkpoint, Cursor, FactWriter, StoreError};

/// Records per transaction.
pub const COMMIT_RECORDS: usize = 20_000;
/// Files per transaction (each file's checkpoint is a row too).
pub const COMMIT_FILES: usize = 512;

/// Stores `records` (each from the place `origins` names at its index) with the checkpoints and
/// cursors that cover them, in one transaction, and counts what happened in `tally`.
pub fn commit(
    store: &mut dyn FactWriter,
    records: &[Invocation],
    origins: &[&str],
    checkpoints: &[Checkpoint],
    cursors: &[Cursor],
    metadata_keys: &[String],
    tally: &mut Tally,
) -> Result<(), StoreError> {
    if records.is_empty() && checkpoints.is_empty() && cursors.is_empty() {
        return Ok(());
    }
    let out = store.write(
        &Batch {
            records,
            origins,
            checkpoints,
            cursors,
        },
        metadata_keys,
    )?;
    tracing::debug!(
        records = records.len(),
        checkpoints = checkpoints.len(),
        cursors = cursors.len(),
        inserted = out.inserted,
        duplicates = out.duplicates,
        "Committed a batch"
    );
    tally.records += records.len() as u64;
    tally.inserted += out.inserted;
    tally.duplicates += out.duplicates;
    for (ix, what) in out.conflicts {
        tally.conflict(format!(
            "{}: requestId `{}` was stored before with other facts: here {what}",
            origins.get(ix).copied().unwrap_or("?"),
            records[ix].request_id
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub metadata_keys: Vec<String>,
    pub progress: bool,
    /// The longest line read as a record (bytes).
    pub max_record: usize,
}

#[derive(Debug, Default, Clone)]
pub struct IngestSummary {
    /// Input streams read (files and stdin).
    pub files: u64,
    /// Files with nothing new since the last run.
    pub files_unchanged: u64,
    /// Files read on from a checkpoint.
    pub files_resumed: u64,
    pub tally: Tally,
    /// What was passed over on purpose, or read in a special way (for people, on stderr).
    pub notes: Vec<String>,
    /// Inputs that could be read at all (opened, whatever they held).
    pub readable: u64,
    /// Bytes of JSON read (after decompression).
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Runs an ingest of `paths` into `store`.
pub fn ingest(
    store: &mut dyn FactWriter,
    paths: &[PathBuf],
    opts: &IngestOptions,
) -> Result<IngestSummary, StoreError> {
    let started = Instant::now();
    let mut summary = IngestSummary::default();
    let mut walk_bad = Vec::new();
    let inputs = files::collect_inputs(paths, &mut walk_bad, &mut summary.notes);
    for b in walk_bad {
        summary.tally.bad(b);
    }
    let mut plan = files::Plan::default();
    let mut notes = Vec::new();
    let planned = files::plan(
        &*store,
        inputs,
        &mut plan,
        &mut |b| summary.tally.bad(b),
        &mut notes,
    )?;
    summary.notes.extend(notes);
    summary.files_unchanged = plan.unchanged;
    summary.files_resumed = plan.resumed;
    summary.files = planned.len() as u64 + plan.unchanged;
    let progress = Progress::new(opts.progress, planned.len() as u64);
    let (inputs, mut state): (Vec<lines::Input>, Vec<Option<Checkpoint>>) = planned
        .into_iter()
        .map(|Planned { input, checkpoint }| (input, checkpoint))
        .unzip();

    let mut batch: Vec<Invocation> = Vec::new();
    // The input each record of the batch came from.
    let mut batch_inputs: Vec<u32> = Vec::new();
    let mut dirty: Vec<usize> = Vec::new();
    let mut finished = 0u64;
    // Records dated more than a day ahead: stored (they are what the log says), and said.
    let future = crate::context::now_ms() + bedrock_usage_core::time::MS_PER_DAY;
    let (mut future_count, mut future_max) = (0u64, i64::MIN);
    let mut flush = |batch: &mut Vec<Invocation>,
                     batch_inputs: &mut Vec<u32>,
                     dirty: &mut Vec<usize>,
                     state: &[Option<Checkpoint>],
                     summary: &mut IngestSummary|
     -> Result<(), StoreError> {
        let cks: Vec<Checkpoint> = dirty.iter().filter_map(|&i| state[i].clone()).collect();
        let origins: Vec<&str> = batch_inputs
            .iter()
            .map(|&i| inputs[i as usize].label.as_str())
            .collect();
        let r = commit(
            store,
            batch,
            &origins,
            &cks,
            &[],
            &opts.metadata_keys,
            &mut summary.tally,
        );
        batch.clear();
        batch_inputs.clear();
        dirty.clear();
        r
    };
    lines::read_all(
        &inputs,
        &Records,
        ReadOptions {
            order: Order::Interleaved,
            // Deep, so that readers stay ahead of the writer while it commits; the reader's budget
            // of records in flight bounds memory (a deep queue alone once held a whole large file
            // parsed: 670 MB at a million records).
            queue: 1024,
            max_record: opts.max_record,
        },
        |p| -> Result<bool, StoreError> {
            let input = p.input;
            // An input that could not be opened ends with one piece that says so and nothing else.
            let unreadable = p.last
                && !p.complete
                && p.items.is_empty()
                && p.bytes == 0
                && p.bad
                    .iter()
                    .any(|b| b.line.is_none() && b.reason.starts_with("cannot read"));
            for b in p.bad {
                summary.tally.bad(b);
            }
            summary.bytes += p.bytes;
            if let Some(ck) = &mut state[input] {
                ck.records += p.items.len() as u64;
                if p.end_offset > 0 {
                    ck.offset = p.end_offset;
                }
                ck.lines += p.lines;
                ck.document |= p.document;
                if p.last {
                    ck.complete = p.complete && (ck.gzip || ck.offset == ck.size);
                }
            }
            if p.last {
                finished += 1;
                if !unreadable {
                    summary.readable += 1;
                }
            }
            for r in p.items.iter().filter(|r| r.timestamp_ms > future) {
                future_count += 1;
                future_max = future_max.max(r.timestamp_ms);
            }
            batch_inputs.extend(std::iter::repeat_n(input as u32, p.items.len()));
            batch.extend(p.items);
            if !dirty.contains(&input) {
                dirty.push(input);
            }
            progress.update(
                finished,
                summary.tally.records + batch.len() as u64,
                summary.bytes,
            );
            if batch.len() >= COMMIT_RECORDS || dirty.len() >= COMMIT_FILES {
                flush(
                    &mut batch,
                    &mut batch_inputs,
                    &mut dirty,
                    &state,
                    &mut summary,
                )?;
            }
            Ok(true)
        },
    )?;
    flush(
        &mut batch,
        &mut batch_inputs,
        &mut dirty,
        &state,
        &mut summary,
    )?;
    if future_count > 0 {
        summary.notes.push(format!(
            "{future_count} records are dated more than a day in the future (the latest {}): check the clock of what wrote them",
            bedrock_usage_core::time::format_utc(future_max)
        ));
    }
    progress.finish();
    summary.elapsed = started.elapsed();
    Ok(summary)
}
