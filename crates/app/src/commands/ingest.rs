//! `ingest PATH... | -`: reads invocation logs into the store, exactly once (the file pipeline
//! is `crate::pipeline::ingest`), and says what it did.

use std::path::PathBuf;

use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_OK};
use crate::output::{emit, Cell, Format, Records};
use crate::pipeline::{self, IngestOptions, IngestSummary};

pub fn run(
    ctx: &Context,
    paths: &[PathBuf],
    strict: bool,
    progress: bool,
    max_record: usize,
) -> Result<u8> {
    let mut store = ctx.open_store()?;
    let opts = IngestOptions {
        metadata_keys: ctx.config.metadata_keys.clone(),
        progress,
        max_record,
    };
    let s = pipeline::ingest(&mut *store, paths, &opts)?;
    // Also when nothing was new: a run killed while writing segments left calls to write.
    super::store::seal_after_write(&*store, &ctx.db_path()?);
    for n in &s.notes {
        eprintln!("note: {n}");
    }
    print_summary(&s, ctx.format)?;
    // Nothing at all could be read (a mistyped path, an empty directory): a failure a cron job
    // must see, not a warning it hides.
    if s.readable == 0 && s.files_unchanged == 0 {
        eprintln!(
            "error: nothing could be read from {} ({} bad inputs)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            s.tally.bad
        );
        return Ok(EXIT_ERROR);
    }
    Ok(if strict && s.tally.bad > 0 {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}

/// The summary on stdout (a sentence for people, one object for pipes); bad inputs on stderr.
pub fn print_summary(s: &IngestSummary, format: Format) -> Result<()> {
    let t = &s.tally;
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
                    Cell::int(t.records),
                    Cell::int(t.inserted),
                    Cell::int(t.duplicates),
                    Cell::int(t.bad),
                    Cell::int(s.bytes),
                    Cell::Number(format!("{secs:.3}")),
                ]],
            };
            rec.print(format)?;
        }
        Format::Table | Format::Markdown | Format::Html => {
            let g = bedrock_usage_core::money::group_thousands;
            let mut text = if t.inserted == 0 && t.bad == 0 {
                format!(
                    "nothing new: {} records read were already stored; {} of {} files unchanged since the last run\n",
                    g(t.duplicates),
                    g(s.files_unchanged),
                    g(s.files)
                )
            } else {
                format!(
                    "ingested {} new records from {} files ({} already stored, {} files unchanged, {} resumed)\n",
                    g(t.inserted),
                    g(s.files),
                    g(t.duplicates),
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
    t.warn_bad("", "bad inputs");
    Ok(())
}
