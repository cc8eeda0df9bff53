//! `query` over the store's column segments (`store::columns`): the segments of the days in
//! range are read on every core, each through the core's `ColumnScan` (only the columns the
//! query names; its leading filters decided per distinct value; a `stats` fed one row per
//! distinct combination with its count), and the calls not in segments yet (each day's tail,
//! or a damaged segment's calls) are read from SQLite. The answer is the one the rows give.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use bedrock_usage_core::query::columnar::{top_bound, within, ColumnScan, Groups, Scanned};
use bedrock_usage_core::query::rows::StoreRows;
use bedrock_usage_core::query::{Execution, Plan, Row};
use bedrock_usage_core::time::MS_PER_DAY;
use bedrock_usage_core::{Attributor, StoredInvocation};

use crate::context::Context;
use crate::error::Result;
use crate::sources::lines;
use crate::store::columns::{self, Segment};
use crate::store::{FactReader, StoreError};

/// Reads the calls in `[since, until)` into `exec`, calling `observe(row, size, weight)` as the
/// row path does (`weight`: calls read).
#[allow(clippy::too_many_arguments)]
pub fn read(
    ctx: &Context,
    store: &dyn FactReader,
    db: &Path,
    plan: &Plan,
    wanted: &BTreeSet<String>,
    default_columns: bool,
    attributor: &Attributor,
    (since, until): (Option<i64>, Option<i64>),
    observe: &mut dyn FnMut(&Row, usize, u64),
    exec: &mut Execution,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let (lo, hi) = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
    let uid = store.store_uid()?;
    let listing = columns::list(&columns::dir_for(db), &uid)?;
    let last_id = store.last_call_id()?;
    // Segments to read (with the range when it cuts their day), and tails: (day, after id).
    let mut jobs: Vec<(&Segment, Option<(i64, i64)>)> = Vec::new();
    let mut tails: Vec<(i64, i64, u64)> = Vec::new();
    for (day, calls) in store.calls_per_day()? {
        let end = day.saturating_add(MS_PER_DAY);
        if end <= lo || day >= hi {
            continue;
        }
        let range = (lo > day || hi < end).then_some((lo.max(day), hi.min(end)));
        let (covered, chain_last) = listing.covered(day);
        let chain = match listing.days.get(&day) {
            Some(c) if covered <= calls => c.as_slice(),
            _ => &[],
        };
        for s in chain {
            if range.is_some_and(|(a, b)| s.max_ts < a || s.min_ts >= b) {
                continue;
            }
            jobs.push((s, range));
        }
        let after = if chain.is_empty() { 0 } else { chain_last };
        let behind = calls - if chain.is_empty() { 0 } else { covered };
        if behind > 0 {
            tails.push((day, after, behind));
        }
    }
    let scan = ColumnScan::new(plan, wanted, default_columns);
    let lookups = store.lookups()?;
    let new_rows = || {
        StoreRows::new(
            &ctx.catalog,
            attributor,
            &ctx.config.models,
            wanted,
            default_columns,
        )
    };
    let mut rows = new_rows();
    // `sort F | limit N`: a first pass over the sort column finds the N-th key overall; only
    // the segments with calls at or before it are read whole.
    let mut bound = None;
    let mut counted = false;
    if let Some((_, desc, n)) = scan.top() {
        let firsts = in_parallel(jobs.len(), &new_rows, |i, rows| {
            let (seg, range) = jobs[i];
            seg.load(scan.first_pass_columns(range.is_some()))
                .and_then(|cols| {
                    scan.top_keys(&cols, range, rows, &lookups).map_err(|what| {
                        StoreError::Segment {
                            path: seg.path.clone(),
                            what,
                        }
                    })
                })
        });
        let mut all: Vec<i128> = Vec::new();
        for got in firsts.iter().flatten() {
            all.extend_from_slice(&got.0);
        }
        bound = top_bound(&mut all, desc, n);
        let mut kept = Vec::new();
        for (job, got) in jobs.iter().zip(&firsts) {
            match got {
                Ok((keys, samples, in_range)) => {
                    observe(&Row::default(), 0, *in_range);
                    for inv in samples {
                        observe(&rows.invocation(inv).0, 0, 0);
                    }
                    if keys
                        .iter()
                        .any(|k| bound.is_none_or(|b| within(*k, b, desc)))
                    {
                        kept.push(*job);
                    }
                }
                // Read again below, where a segment that does not read is replaced by SQLite.
                Err(_) => kept.push(*job),
            }
        }
        jobs = kept;
        counted = true;
    }
    let stop = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let mut merged = Groups::default();
    // Without a `stats`: the calls that reach the plan, which takes them in the order they were
    // stored (as over the store's rows).
    // (id, call, read from SQLite: counts as scanned here)
    let mut numbered: Vec<(i64, StoredInvocation, bool)> = Vec::new();
    let groups_mode = scan.groups();
    // Calls read from SQLite: straight to a `stats`, else kept for the order.
    let from_rows = |id: i64,
                     inv: StoredInvocation,
                     rows: &mut StoreRows,
                     numbered: &mut Vec<(i64, StoredInvocation, bool)>,
                     observe: &mut dyn FnMut(&Row, usize, u64),
                     exec: &mut Execution| {
        if groups_mode {
            let (row, size) = rows.invocation(&inv);
            observe(&row, size, 1);
            exec.push(row);
        } else {
            numbered.push((id, inv, true));
        }
    };
    let mut failed: Result<()> = Ok(());
    let threads = lines::threads().min(jobs.len()).max(1);
    let jobs = &jobs;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<(usize, Result<Scanned, StoreError>)>(threads);
        let mut handles = Vec::new();
        for _ in 0..threads {
            let tx = tx.clone();
            let (jobs, scan, lookups, stop, next) = (&jobs, &scan, &lookups, &stop, &next);
            let new_rows = &new_rows;
            handles.push(s.spawn(move || {
                let mut rows = new_rows();
                // This thread's counts over all the segments it reads.
                let mut groups = Groups::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (seg, range) = jobs[i];
                    let got = seg.load(scan.columns(range.is_some())).and_then(|cols| {
                        scan.scan(&cols, range, &mut rows, lookups, &mut groups, bound)
                            .map_err(|what| StoreError::Segment {
                                path: seg.path.clone(),
                                what,
                            })
                    });
                    if tx.send((i, got)).is_err() {
                        break;
                    }
                }
                groups
            }));
        }
        drop(tx);
        // Results in the segments' order, whatever order the threads finish in.
        let mut waiting: BTreeMap<usize, Result<Scanned, StoreError>> = BTreeMap::new();
        let mut due = 0;
        for (i, got) in rx {
            waiting.insert(i, got);
            while let Some(got) = waiting.remove(&due) {
                let seg = jobs[due].0;
                due += 1;
                if stop.load(Ordering::Relaxed) || failed.is_err() {
                    continue;
                }
                let got = match got {
                    Ok(g) => g,
                    // A segment that does not read: its calls come from SQLite instead.
                    Err(e @ (StoreError::Segment { .. } | StoreError::SegmentIo { .. })) => {
                        warnings.push(format!(
                            "{e}; its calls were read from the store row by row (`bedrock-usage store columns --rebuild` writes the segments again)"
                        ));
                        let range = jobs[due - 1]
                            .1
                            .unwrap_or((seg.day_ms, seg.day_ms + MS_PER_DAY));
                        let by_id = last_id - seg.after < seg.rows as i64 * 4;
                        failed = store
                            .scan_calls(
                                range.0,
                                range.1,
                                (seg.after, seg.last),
                                by_id,
                                true,
                                &mut |id, inv| {
                                    from_rows(id, inv, &mut rows, &mut numbered, observe, exec);
                                    true
                                },
                            )
                            .map_err(Into::into);
                        continue;
                    }
                    Err(e) => {
                        failed = Err(e.into());
                        stop.store(true, Ordering::Relaxed);
                        continue;
                    }
                };
                if !counted {
                    observe(&Row::default(), 0, got.rows);
                    for inv in &got.samples {
                        observe(&rows.invocation(inv).0, 0, 0);
                    }
                }
                numbered.extend(got.calls.into_iter().map(|(id, inv)| (id, inv, false)));
            }
        }
        for h in handles {
            match h.join() {
                Ok(g) if merged.is_empty() => merged = g,
                Ok(g) => scan.merge(&mut merged, g),
                Err(_) => {
                    failed = Err(crate::error::Error::Invalid(
                        "a query thread panicked".into(),
                    ))
                }
            }
        }
    });
    failed?;
    let grouped = scan
        .grouped(merged, &lookups)
        .map_err(StoreError::Inconsistent)?;
    for (inv, n) in grouped {
        let (row, _) = rows.invocation(&inv);
        exec.push_repeated(row, n);
    }
    let mut behind = 0;
    for (day, after, n) in tails {
        behind += n;
        let range = (lo.max(day), hi.min(day + MS_PER_DAY));
        let by_id = last_id - after < n as i64 * 4;
        store.scan_calls(
            range.0,
            range.1,
            (after, i64::MAX),
            by_id,
            true,
            &mut |id, inv| {
                from_rows(id, inv, &mut rows, &mut numbered, observe, exec);
                true
            },
        )?;
    }
    // In id order, the calls of every day together: the order the rows come in from SQLite.
    numbered.sort_unstable_by_key(|c| c.0);
    for (_, inv, read_here) in &numbered {
        let (row, size) = rows.invocation(inv);
        observe(&row, size, *read_here as u64);
        if !exec.push(row) {
            break;
        }
    }
    if behind > 100_000 {
        warnings.push(format!(
            "{behind} calls are not in the store's column segments yet and were read row by row; `bedrock-usage store columns` writes them (ingest and sync do at their end)"
        ));
    }
    Ok(())
}

/// `f(i, state)` for each i in `0..n`, on every core (each thread with its own `state()`), the
/// results in order.
fn in_parallel<S, T: Send>(
    n: usize,
    state: &(dyn Fn() -> S + Sync),
    f: impl Fn(usize, &mut S) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let threads = lines::threads().min(n).max(1);
    let mut out: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut st = state();
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break got;
                        }
                        got.push((i, f(i, &mut st)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|x| x.0);
    out.into_iter().map(|x| x.1).collect()
}
