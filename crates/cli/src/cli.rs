//! The command line, as clap types: what a user can type. Values are checked and turned into
//! ready-to-use objects by the commands (`lib.rs`), not here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Format;

/// Who spent what on Claude through AWS Bedrock.
///
/// bedrock-usage reads Bedrock model-invocation logs (files, S3 delivery folders, CloudWatch
/// exports), attributes every call to a developer and team (also behind a shared IAM role),
/// prices every token class from a maintained catalog, and reports usage and cost exactly.
///
/// Start with `bedrock-usage demo`: a synthetic month for a team of eight, end to end, no AWS
/// account needed.
#[derive(Debug, Parser)]
#[command(
    name = "bedrock-usage",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Args {
    /// The store (a SQLite file). Default: bedrock-usage/usage.db in your data directory
    /// (~/.local/share on Linux).
    #[arg(long, global = true, env = "BEDROCK_USAGE_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// The configuration file (TOML): aliases, teams, cost centers, model mappings, prices.
    /// See docs/configuration.md.
    #[arg(long, global = true, env = "BEDROCK_USAGE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read invocation logs into the store, exactly once.
    ///
    /// Takes files, directories (walked recursively, in the S3 delivery layout or any other) and
    /// `-` for stdin. The format is detected from the content: JSON lines, gzip, CloudWatch Logs
    /// export-task files, or the JSON printed by `aws logs filter-log-events`. A record already
    /// stored (same requestId) is never counted twice; a file that grew since the last run is read
    /// on from where it was left. Bad lines are reported with file and line, and the rest is
    /// still ingested.
    ///
    /// Examples:
    ///   bedrock-usage ingest ./AWSLogs
    ///   aws s3 sync s3://my-bedrock-logs/AWSLogs ./AWSLogs && bedrock-usage ingest ./AWSLogs
    ///   aws logs filter-log-events --log-group-name bedrock-logs | bedrock-usage ingest -
    #[command(verbatim_doc_comment)]
    Ingest {
        /// Files, directories, or `-` for stdin.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Exit with status 1 if any input was bad (the good records are still stored).
        #[arg(long)]
        strict: bool,
        /// No progress bar, even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },

    /// Usage and cost, grouped and filtered.
    ///
    /// Money is computed now, from the price catalog, so a catalog change reprices history.
    ///
    /// Examples:
    ///   bedrock-usage report --by developer
    ///   bedrock-usage report --by team,model --since 7d
    ///   bedrock-usage report --by day --tz Europe/Berlin --developer alice --format csv
    #[command(verbatim_doc_comment)]
    Report {
        /// Group by these keys, comma-separated: developer, team, cost-center, model, principal,
        /// operation, region, day, week, month.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "developer",
            value_name = "KEY[,KEY...]"
        )]
        by: Vec<String>,
        /// From this time: a date (2026-11-01, local midnight in --tz), an RFC 3339 time, or a
        /// duration back from now (30m, 12h, 7d, 2w).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Up to this time: a date (that whole day is included), an RFC 3339 time (excluded), or a
        /// duration back from now.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// Time zone for day, week and month boundaries and for dates in --since/--until (IANA
        /// name).
        #[arg(long, default_value = "UTC", value_name = "ZONE")]
        tz: String,
        /// Only these developers (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', value_name = "NAME")]
        developer: Vec<String>,
        /// Only these teams.
        #[arg(long, value_delimiter = ',', value_name = "TEAM")]
        team: Vec<String>,
        /// Only models whose normalized key contains this (sonnet, claude-opus-4-5) or whose raw
        /// modelId is this.
        #[arg(long, value_delimiter = ',', value_name = "MODEL")]
        model: Vec<String>,
    },

    /// Run a CloudWatch Logs Insights query locally, over the store or straight over log files.
    ///
    /// Queries written for the CloudWatch console run pasted unchanged. Over the store (the
    /// default) every scalar field of the record is available under its Logs Insights name
    /// (`identity.arn`, `modelId`, `input.inputTokenCount`, `requestMetadata.developer`, ...),
    /// plus `developer`, `team`, `cost_center`, `model`, `cost_usd`. With --from, the query runs
    /// over the files themselves, nothing stored, and every field is available, bodies included.
    /// See docs/query.md for the language and its differences from CloudWatch.
    ///
    /// Examples:
    ///   bedrock-usage query 'stats sum(input.inputTokenCount) as input by identity.arn, modelId'
    ///   bedrock-usage query 'filter modelId like /opus/ | stats count(*) by bin(1h)' --since 1d
    ///   bedrock-usage query --from ./AWSLogs 'filter ispresent(errorCode) | stats count(*) by errorCode'
    ///   bedrock-usage --format aws query 'stats count(*) by operation'
    #[command(verbatim_doc_comment)]
    Query {
        /// The query, in the Logs Insights language.
        query: String,
        /// From this time (as for `report`: a date, an RFC 3339 time, or a duration like 7d).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Up to this time (a date includes that whole day).
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// Run over this file, directory or `-` (stdin) instead of the store; repeat for more.
        #[arg(long, value_name = "PATH")]
        from: Vec<PathBuf>,
        /// Rows shown when the query has no `limit` (CloudWatch: 10000).
        #[arg(long, default_value_t = bedrock_usage_core::query::DEFAULT_LIMIT)]
        limit: usize,
    },

    /// The price catalog: list it, explain a model id, or find unpriced models in the store.
    Pricing {
        /// A price catalog file that replaces or adds entries (overrides `[pricing] catalog`).
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
        #[command(subcommand)]
        command: PricingCommand,
    },

    /// Check the configuration file and report every problem at once.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },

    /// A synthetic month for a team of eight, end to end: generate, ingest, report.
    ///
    /// Without --write: generates a realistic month (IAM users, SSO sessions, containers behind
    /// one shared instance role with and without request metadata, every current Claude model,
    /// prompt caching, streaming, errors), ingests it into a throwaway store (or --db), and prints
    /// the reports by developer and by model.
    ///
    /// With --write DIR: writes a corpus in the S3 delivery layout under DIR/AWSLogs (realistic
    /// 5-100 KB bodies), a config for it (DIR/bedrock-usage.toml) and the generator's own ledger
    /// (DIR/ledger.jsonl), for benchmarks and experiments.
    Demo {
        /// Seed of the generator: the same seed gives the same month.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write a corpus here instead of running the demo.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
        /// How many invocation records (default: 6000 for the demo, 10000 with --write).
        #[arg(long)]
        records: Option<u64>,
        /// The month to generate (YYYY-MM).
        #[arg(long, default_value = "2026-11")]
        month: String,
        /// With --write: gzip the objects (as Bedrock delivers them) or write plain JSON lines.
        #[arg(long, value_enum, default_value_t = Compression::Gzip)]
        compress: Compression,
        /// With --write: body size in KB, as MIN-MAX.
        #[arg(long, default_value = "5-100", value_name = "MIN-MAX")]
        body_kb: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    None,
}

#[derive(Debug, Subcommand)]
pub enum PricingCommand {
    /// Every model in the catalog with its current rates (USD per million tokens).
    List,
    /// How a model id is priced: which entry, which rates, which rules apply and why.
    Show {
        /// A modelId as it appears in the logs (plain id, profile id, or ARN).
        model_id: String,
        /// Price as of this date (YYYY-MM-DD). Default: today.
        #[arg(long)]
        date: Option<String>,
    },
    /// Model ids in the store that have no price, with their call counts.
    Unpriced,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file (and the catalog it names); exit 2 on any problem.
    Check,
}
