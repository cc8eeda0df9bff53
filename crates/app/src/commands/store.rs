//! `store check`, `store columns` and `store backup`: is the store sound, its column segments
//! written, and a copy that is.

use std::path::Path;
use std::time::Instant;

use bedrock_usage_core::money::group_thousands;
use bedrock_usage_core::time::{format_date, MS_PER_DAY};

use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{Cell, Records};
use crate::store::columns;
use crate::store::{CheckResult, FactReader};

/// `store check`: exit 1 if any check failed.
pub fn check(ctx: &Context, full: bool) -> Result<u8> {
    let store = ctx.existing_store()?;
    let mut checks = store.check(full)?;
    checks.push(columns_check(&*store, &ctx.db_path()?, full)?);
    Records {
        fields: ["check", "status", "detail"].map(String::from).to_vec(),
        rows: checks
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.name),
                    Cell::text(if c.ok { "ok" } else { "FAIL" }),
                    Cell::text(&c.detail),
                ]
            })
            .collect(),
    }
    .print(ctx.format)?;
    Ok(if checks.iter().all(|c| c.ok) {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    })
}

/// `store backup PATH`.
pub fn backup(ctx: &Context, to: &Path) -> Result<u8> {
    if to.exists() {
        invalid!("{} exists: a backup goes to a new file", to.display());
    }
    let store = ctx.existing_store()?;
    store.backup(to)?;
    eprintln!("backed up to {}", to.display());
    Ok(EXIT_OK)
}

/// The column segments against the stored calls: consistent (every call in a segment),
/// rebuildable (calls not in segments yet, left-over files), or damaged (a column that does not
/// match its CRC: `--full` only).
fn columns_check(store: &dyn FactReader, db: &Path, full: bool) -> Result<CheckResult> {
    let st = columns::status(store, db, full)?;
    let name = "column segments".to_string();
    if let Some((_, why)) = st.damaged.first() {
        return Ok(CheckResult {
            name,
            ok: false,
            detail: format!(
                "damaged: {} of {} segments ({why}); queries read those calls from the store instead; `bedrock-usage store columns --rebuild` writes them again",
                st.damaged.len(),
                st.segments,
            ),
        });
    }
    let mut detail = format!(
        "{} of {} calls in {} segments over {} days",
        group_thousands(st.in_columns),
        group_thousands(st.calls),
        st.segments,
        st.days
    );
    if st.behind.is_empty() && st.stray.is_empty() {
        detail = format!("consistent: {detail}");
    } else {
        let days: Vec<String> = st
            .behind
            .iter()
            .take(3)
            .map(|(d, _, _)| format_date(d.div_euclid(MS_PER_DAY)))
            .collect();
        let mut why = Vec::new();
        if !st.behind.is_empty() {
            why.push(format!(
                "{} {} calls not in segments ({}{})",
                st.behind.len(),
                if st.behind.len() == 1 {
                    "day has"
                } else {
                    "days have"
                },
                days.join(", "),
                if st.behind.len() > 3 { ", ..." } else { "" }
            ));
        }
        if let Some((p, w)) = st.stray.first() {
            why.push(format!(
                "{} {} not read ({}: {w})",
                st.stray.len(),
                if st.stray.len() == 1 {
                    "file is"
                } else {
                    "files are"
                },
                p.display()
            ));
        }
        detail = format!(
            "rebuildable: {detail}; {}; `bedrock-usage store columns` writes them (queries are exact meanwhile: they read those calls from the store)",
            why.join("; ")
        );
    }
    Ok(CheckResult {
        name,
        ok: true,
        detail,
    })
}

/// `store columns [--rebuild]`.
pub fn columns(ctx: &Context, rebuild: bool) -> Result<u8> {
    let store = ctx.existing_store()?;
    let db = ctx.db_path()?;
    let t = Instant::now();
    let done = columns::seal(&*store, &db, rebuild)?;
    eprintln!(
        "wrote {} calls of {} days in {} segments ({} files removed) in {:.1} s",
        group_thousands(done.calls),
        done.days,
        done.segments,
        done.removed,
        t.elapsed().as_secs_f64()
    );
    let st = columns::status(&*store, &db, false)?;
    let listing = columns::list(&columns::dir_for(&db), &store.store_uid()?)?;
    let mut rows = Vec::new();
    for (day, calls) in store.calls_per_day()? {
        let (covered, _) = listing.covered(day);
        let segments = listing.days.get(&day).map(Vec::len).unwrap_or(0);
        rows.push(vec![
            Cell::text(format_date(day.div_euclid(MS_PER_DAY))),
            Cell::int(calls),
            Cell::int(covered),
            Cell::int(segments as u64),
        ]);
    }
    Records {
        fields: ["day", "calls", "in_segments", "segments"]
            .map(String::from)
            .to_vec(),
        rows,
    }
    .print(ctx.format)?;
    Ok(if st.behind.is_empty() {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    })
}

/// Writes the calls not yet in column segments after a command stored some: a failure is a
/// warning (the calls are stored; queries read them row by row until segments are written).
pub fn seal_after_write(store: &dyn FactReader, db: &Path) {
    let t = Instant::now();
    match columns::seal(store, db, false) {
        Ok(done) if t.elapsed().as_secs() >= 2 => eprintln!(
            "note: wrote {} calls of {} days to the column segments in {:.1} s",
            group_thousands(done.calls),
            done.days,
            t.elapsed().as_secs_f64()
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: the column segments were not written: {e}; queries read those calls row by row until `bedrock-usage store columns` writes them"
        ),
    }
}
