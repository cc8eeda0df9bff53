//! `demo`: a synthetic month for a team of eight, end to end: generate it
//! (`sources::demo`), ingest it into a throwaway store (or `--db`), report; or, with `--write`,
//! write the corpus for benchmarks and experiments.

use std::path::PathBuf;

use bedrock_usage_core::time::civil_from_days;

use super::report;
use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::output::Format;
use crate::pipeline::{self, IngestOptions};
use crate::sources::demo::{generate, render_jsonl, DemoOptions, DEMO_CONFIG};

/// The demo: generate a month, ingest it, report.
pub fn run(ctx: &Context, opts: &DemoOptions) -> Result<u8> {
    let format = ctx.format;
    let temp = std::env::temp_dir().join(format!("bedrock-usage-demo-{}", std::process::id()));
    std::fs::create_dir_all(&temp).map_err(|source| Error::File {
        what: "cannot create",
        path: temp.clone(),
        source,
    })?;
    let cleanup = TempDir(temp.clone());
    let ledger = generate(opts);
    let buf = render_jsonl(opts, &ledger);
    let log = temp.join("invocations.jsonl");
    std::fs::write(&log, &buf).map_err(|source| Error::File {
        what: "cannot write",
        path: log.clone(),
        source,
    })?;
    // A store of the user's only when `--db` is on this command line: a BEDROCK_USAGE_DB in the
    // environment names the real store, which must not gain a synthetic month of spend.
    let kept = ctx.db.clone().filter(|_| ctx.db_on_command_line);
    let db_path: PathBuf = kept.clone().unwrap_or_else(|| temp.join("usage.db"));
    let config_path = kept.as_ref().map(|db| db.with_extension("toml"));
    if let Some(p) = &config_path {
        std::fs::write(p, DEMO_CONFIG).map_err(|source| Error::File {
            what: "cannot write the demo config",
            path: p.clone(),
            source,
        })?;
    }
    let config = bedrock_usage_core::Config::parse(DEMO_CONFIG, "demo config")?;
    let catalog = bedrock_usage_core::PriceCatalog::embedded();
    let mut store = crate::store::open(&db_path)?;
    let opts_ingest = IngestOptions {
        metadata_keys: config.metadata_keys.clone(),
        progress: false,
        max_record: crate::sources::lines::MAX_RECORD,
    };
    let summary = pipeline::ingest(&mut *store, &[log], &opts_ingest)?;
    super::store::seal_after_write(&*store, &db_path);
    let (y, m, _) = civil_from_days(opts.first_day);
    if format == Format::Table {
        println!(
            "bedrock-usage demo: {} invocations of a team of eight in {y:04}-{m:02} (seed {}), ingested in {:.2} s\n",
            bedrock_usage_core::money::group_thousands(summary.tally.inserted),
            opts.seed,
            summary.elapsed.as_secs_f64()
        );
        println!("Usage and cost by developer:\n");
    }
    let by_dev =
        report::ReportRequest::all_by(vec![bedrock_usage_core::report::GroupKey::Developer]);
    report::print(
        &report::build(&*store, &config, &catalog, &by_dev)?,
        format,
        false,
    )?;
    if format == Format::Table {
        println!("\nBy model:\n");
    }
    let by_model = report::ReportRequest::all_by(vec![bedrock_usage_core::report::GroupKey::Model]);
    let model_report = report::build(&*store, &config, &catalog, &by_model)?;
    report::print(&model_report, format, false)?;
    if format == Format::Table {
        println!(
            "\nThe `shared:` row is grace's traffic: her container calls through the shared instance role\n\
             without a `developer` in request metadata, so no one can tell it apart (see the warning).\n\
             heidi's `meta.llama3-1-70b-instruct-v1:0` calls are unpriced: the catalog prices Claude models only.\n"
        );
        let same = format!(
            "--seed {} --records {} --month {y:04}-{m:02}",
            opts.seed, opts.records
        );
        match (&kept, &config_path) {
            (Some(db), Some(cfg)) => println!(
                "\nThe store {} holds this month, and its config is {}:\n  \
                 bedrock-usage --db {} --config {} report --by team,model\n  \
                 bedrock-usage --db {} --config {} query 'stats sum(cost_usd) as cost by developer | sort cost desc'",
                db.display(),
                cfg.display(),
                db.display(),
                cfg.display(),
                db.display(),
                cfg.display()
            ),
            _ => println!(
                "\nTry next (the same month, the same figures):\n  \
                 bedrock-usage demo --db /tmp/demo.db {same}     # keep it in a store (and its config beside it)\n  \
                 bedrock-usage demo --write /tmp/demo {same} --body-kb 0-0     # the corpus in the S3 layout, with its config\n  \
                 bedrock-usage --db /tmp/demo/usage.db --config /tmp/demo/bedrock-usage.toml ingest /tmp/demo/AWSLogs\n  \
                 bedrock-usage --db /tmp/demo/usage.db --config /tmp/demo/bedrock-usage.toml report --by developer"
            ),
        }
        println!("  bedrock-usage pricing show us.anthropic.claude-sonnet-4-5-20250929-v1:0\n");
    }
    report::print_warnings(&model_report);
    drop(store);
    drop(cleanup);
    Ok(EXIT_OK)
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
