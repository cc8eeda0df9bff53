//! The command line, as clap types: what a user can type. Values are checked and turned into
//! ready-to-use objects once, by `context::Context::build` and the commands, not here.

use std::path::PathBuf;

use bedrock_usage_core::config::AwsAccess;
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

    /// Diagnostics on stderr: `error`, `warn`, `info`, `debug`, `trace`, or a filter such as
    /// `bedrock_usage=debug` (default: none, or RUST_LOG).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,

    /// Whether `--db` was given on the command line itself (not through BEDROCK_USAGE_DB): the
    /// demo writes into a store only when told so there.
    #[arg(skip)]
    pub db_on_command_line: bool,
}

impl Args {
    /// Parses the process's arguments, noting where `--db` came from.
    pub fn from_command_line() -> Args {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().get_matches();
        let mut args = match Args::from_arg_matches(&matches) {
            Ok(a) => a,
            Err(e) => e.exit(),
        };
        let from_cli = |m: &clap::ArgMatches| {
            m.value_source("db") == Some(clap::parser::ValueSource::CommandLine)
        };
        args.db_on_command_line =
            from_cli(&matches) || matches.subcommand().is_some_and(|(_, m)| from_cli(m));
        args
    }
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
        /// The longest line read as a record, in MiB; a longer line is skipped and reported.
        #[arg(long, default_value_t = 64, value_name = "MIB")]
        max_record_mb: usize,
    },

    /// Pull new invocation logs from CloudWatch Logs and S3 into the store, exactly once.
    ///
    /// Reads every source of the config (`[[sources.cloudwatch]]`, `[[sources.s3]]`) and those
    /// given with --log-group / --s3, from where the last sync of each stopped (kept in the
    /// store with the records). CloudWatch is read again from a safety overlap back (records
    /// arrive late; the ones read twice are ignored by requestId); S3 is listed by date partition
    /// and each new object is read once. Credentials and region come from the standard AWS chain
    /// (environment, profiles, SSO, instance metadata, web identity); throttling, 5xx and dropped
    /// connections are retried with backoff. A source that fails is reported and the others go
    /// on; the exit status is then 1.
    ///
    /// Examples:
    ///   bedrock-usage sync --since 30d
    ///   bedrock-usage sync --log-group /aws/bedrock/model-invocations --region us-east-1
    ///   bedrock-usage sync --s3 s3://my-bedrock-logs/bedrock/ --profile prod
    ///   bedrock-usage sync --watch --interval 5m --publish-metrics
    #[command(verbatim_doc_comment)]
    Sync {
        /// Where a source's first sync starts: a date, an RFC 3339 time or a duration back
        /// (30d). Default: the log group's creation / the whole bucket prefix. Later syncs go on
        /// from where the last one stopped.
        #[arg(long)]
        since: Option<String>,
        /// Keep syncing every --interval until Ctrl-C / SIGTERM (stops after the current batch).
        /// With budgets configured, `alerts check` runs after every round.
        #[arg(long)]
        watch: bool,
        /// With --watch: the wait between rounds (90s, 5m, 1h). Default: `sync.interval` of the
        /// config, else 60s.
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
        /// Also put per-developer CloudWatch metrics (namespace BedrockUsage) for the new
        /// records; also on with `sync.publish_metrics = true` in the config.
        #[arg(long)]
        publish_metrics: bool,
        /// A CloudWatch Logs group to read besides the config's sources (repeatable).
        #[arg(long, value_name = "NAME")]
        log_group: Vec<String>,
        /// An S3 location to read besides the config's sources: s3://BUCKET/PREFIX (repeatable).
        #[arg(long = "s3", value_name = "S3_URL")]
        s3: Vec<String>,
        /// Events or keys per AWS page (default: the service's maximum).
        #[arg(long, value_name = "N")]
        page_size: Option<i32>,
        /// No progress spinner, even on a terminal.
        #[arg(long)]
        no_progress: bool,
        #[command(flatten)]
        aws: AwsArgs,
    },

    /// Set up and check the AWS side: invocation logging, delivery, dashboards, alarms.
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },

    /// Usage and cost, grouped and filtered.
    ///
    /// Money is computed now, from the price catalog, so a catalog change reprices history.
    ///
    /// Examples:
    ///   bedrock-usage report --by developer
    ///   bedrock-usage report --by team,model --since 7d
    ///   bedrock-usage report --by day --tz Europe/Berlin --developer alice --format csv
    ///   bedrock-usage report --by hour --since 1d
    ///   # the month for finance: one HTML file (by team, cost center, developer, model)
    ///   bedrock-usage report --format html --since 2026-11-01 --until 2026-11-30 > november.html
    #[command(verbatim_doc_comment)]
    Report {
        /// Group by these keys, comma-separated: developer, team, cost-center, model, principal,
        /// operation, region, hour, day, week, month.
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
        /// Time zone for hour, day, week and month boundaries and for dates in --since/--until
        /// (IANA name).
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
        /// Only the N rows that cost most (the total still counts every row).
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Also send the report to this channel of the config (`[[channels]]`): Slack gets the
        /// table, a webhook the rows as JSON. See docs/budgets.md.
        #[arg(long, value_name = "CHANNEL")]
        send: Option<String>,
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
        #[arg(required_unless_present = "query_file")]
        query: Option<String>,
        /// Read the query from this file (for queries longer than a command line; `-` for stdin
        /// is not allowed, it may be the input).
        #[arg(long, value_name = "PATH", conflicts_with = "query")]
        query_file: Option<PathBuf>,
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
        /// With --from: the longest line read as an event, in MiB (a longer one is skipped).
        #[arg(long, default_value_t = 64, value_name = "MIB")]
        max_record_mb: usize,
        /// Read the store's calls row by row from SQLite, not from its column segments (the
        /// answer is the same; for comparing and timing).
        #[arg(long)]
        no_columns: bool,
    },

    /// The price catalog: list it, explain a model id, find unpriced models in the store,
    /// import AWS's own prices, diff a catalog file, check against LiteLLM's map.
    Pricing {
        /// A price catalog file that replaces or adds entries (overrides `[pricing] catalog`).
        #[arg(long, value_name = "PATH", global = true)]
        catalog: Option<PathBuf>,
        #[command(subcommand)]
        command: PricingCommand,
    },

    /// AWS credentials for one developer: a role session named after them.
    ///
    /// Assumes --role-arn with the standard credential chain as the source (in a container: the
    /// instance role), with the session named after the developer (made valid for STS), session
    /// tags `developer`, `team` and `cost-center`, and the developer as the source identity.
    /// Bedrock's invocation logs, CloudTrail and the bill then name the developer, with no proxy.
    /// The credentials are cached in a private file (mode 0600, under the user's cache directory or
    /// BEDROCK_USAGE_CACHE_DIR) and reused until five minutes before they expire. Errors go to
    /// stderr with what to do, and the exit status is 2, which the SDKs surface.
    ///
    /// Examples (ROLE = arn:aws:iam::123456789012:role/BedrockDeveloper; docs/developers.md):
    ///   # ~/.aws/config in alice's container
    ///   [profile bedrock]
    ///   credential_process = bedrock-usage credentials --role-arn ROLE --developer alice
    ///
    ///   # Claude Code's ~/.claude/settings.json
    ///   "awsCredentialExport": "bedrock-usage credentials --role-arn ROLE --developer alice
    ///                           --output claude-code"
    ///
    ///   eval "$(bedrock-usage credentials --role-arn ROLE --developer alice --output env)"
    #[command(verbatim_doc_comment)]
    Credentials {
        /// The role to assume (see `aws setup --developer-role`).
        #[arg(long, value_name = "ARN")]
        role_arn: String,
        /// Who the session is for: its name, its `developer` tag and its source identity.
        #[arg(long, value_name = "NAME")]
        developer: String,
        /// The session's `team` tag (default: the developer's team in the config).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// The session's `cost-center` tag (default: from the config).
        #[arg(long, value_name = "CC")]
        cost_center: Option<String>,
        /// How long the credentials last (15m to 12h; the role's maximum session duration caps it).
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        duration: String,
        /// What to print: `process` (the JSON of a credential_process), `claude-code` (what Claude
        /// Code's awsCredentialExport reads), `env` (export lines for a shell).
        #[arg(long, value_enum, default_value_t = CredentialsOutput::Process)]
        output: CredentialsOutput,
        /// Ask STS for new credentials even if the cached ones are still good.
        #[arg(long)]
        refresh: bool,
        #[command(flatten)]
        aws: AwsArgs,
    },

    /// A Bedrock endpoint that knows every developer by their key and records every call.
    ///
    /// Serves the Bedrock runtime API (InvokeModel, InvokeModelWithResponseStream, Converse,
    /// ConverseStream, and whatever else is sent under /model/ or to the control plane) in front
    /// of Bedrock. Each request must carry a key from `keys create` as `Authorization: Bearer
    /// KEY` (what AWS_BEARER_TOKEN_BEDROCK makes Claude Code, boto3 and the Anthropic SDK send);
    /// it is signed again with the gateway's own AWS credentials, streamed to Bedrock and back
    /// untouched, and its token usage is read on the side and stored as the log ingest stores
    /// it, keyed by Bedrock's request id, so a call later synced from the logs counts once.
    /// Bedrock is told the developer (request metadata), so its own logs name them too.
    /// Listens on loopback unless told otherwise; beyond loopback it needs --tls-cert/--tls-key
    /// or --insecure-listen. SIGINT/SIGTERM: stop accepting, let open streams finish (up to
    /// --drain-timeout), write what was recorded, exit. See docs/gateway.md.
    ///
    /// Examples:
    ///   bedrock-usage keys create --developer alice --team ml
    ///   bedrock-usage gateway --region us-east-1
    ///   CLAUDE_CODE_USE_BEDROCK=1 ANTHROPIC_BEDROCK_BASE_URL=http://127.0.0.1:8750 \
    ///     AWS_BEARER_TOKEN_BEDROCK=bu_... claude
    #[command(verbatim_doc_comment)]
    Gateway {
        /// Address to listen on (default: `gateway.listen`, else 127.0.0.1:8750; port 0 picks a
        /// free port, printed at start).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The Bedrock runtime endpoint (default: `gateway.upstream`, else
        /// https://bedrock-runtime.REGION.amazonaws.com).
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// The region calls are signed for and recorded in (default: `gateway.region`, else the
        /// AWS chain's).
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// The AWS profile whose credentials sign upstream calls.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Sign each developer's calls with a session of this role named after them (so
        /// CloudTrail and the bill name them too).
        #[arg(long, value_name = "ARN")]
        assume_role_arn: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
        /// How long a stop waits for open streams (default: `gateway.drain_timeout`, else 30s).
        #[arg(long, value_name = "DURATION")]
        drain_timeout: Option<String>,
    },

    /// The JSON API and Prometheus metrics over the store.
    ///
    /// Endpoints (docs/serve.md): /api/v1/report, /api/v1/timeseries, POST /api/v1/query,
    /// /api/v1/budgets, /api/v1/unpriced, /api/v1/status, /api/v1/openapi.json, /metrics. On
    /// loopback (the default, 127.0.0.1:8760) no login is needed; elsewhere every request needs
    /// `Authorization: Bearer TOKEN` (BEDROCK_USAGE_SERVE_TOKENS or `[serve]
    /// access_token_sha256`), or a developer's gateway key, which sees that developer only.
    ///
    /// Example:
    ///   bedrock-usage serve --sync &
    ///   curl 'http://127.0.0.1:8760/api/v1/report?by=developer,model&since=7d'
    Serve {
        /// Address to listen on (default: `serve.listen`, else 127.0.0.1:8760; port 0 picks a
        /// free port, printed at start).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Also run `sync --watch` over the configured sources in this process (alerts are
        /// checked after every round).
        #[arg(long)]
        sync: bool,
        /// Check alerts every minute (with --sync: after every round instead).
        #[arg(long)]
        alerts: bool,
        /// Ask for an access token (or the login form) on loopback too: for a host that others
        /// log in to, where loopback is not private.
        #[arg(long)]
        require_login: bool,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Where you stand at the gateway, in one line: today's spend, your budgets, what is left of
    /// your rate limits. For a shell prompt or Claude Code's status line.
    ///
    /// Reads your key from BEDROCK_USAGE_KEY or AWS_BEARER_TOKEN_BEDROCK (Claude Code's), and the
    /// gateway from --gateway, else ANTHROPIC_BEDROCK_BASE_URL, else http://127.0.0.1:8750.
    /// `--format json` prints the gateway's whole answer (GET /me).
    ///
    /// Examples:
    ///   bedrock-usage me
    ///   bedrock-usage me --gateway https://bedrock-gw.internal:8750 --format json
    ///   # ~/.claude/settings.json: "statusLine": {"type": "command", "command": "bedrock-usage me"}
    #[command(verbatim_doc_comment)]
    Me {
        /// The gateway's URL.
        #[arg(long, value_name = "URL")]
        gateway: Option<String>,
    },

    /// Keys for the gateway: one per developer (or per machine), printed once, stored hashed.
    ///
    /// Examples:
    ///   bedrock-usage keys create --developer alice --team ml --expires 90d
    ///   bedrock-usage keys list
    ///   bedrock-usage keys revoke 3f9a1c02b7de
    #[command(verbatim_doc_comment)]
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },

    /// Budgets per developer, team, cost center or model: where each stands.
    ///
    /// Budgets are `[[budgets]]` in the config file (see docs/budgets.md). `budget status`
    /// exits 1 when any budget is exceeded, so cron or CI can act on it.
    ///
    /// Examples:
    ///   bedrock-usage budget status
    ///   bedrock-usage budget status --format json
    #[command(verbatim_doc_comment)]
    Budget {
        #[command(subcommand)]
        command: BudgetCommand,
    },

    /// Alerts: evaluate budgets, anomalies and digests; deliver what is due (Slack, e-mail, webhooks).
    ///
    /// Each (budget, scope, period, threshold) is sent once, and each forecast alert once per
    /// period: what is due goes to an outbox in the store first, then out. Run it from cron or
    /// a systemd timer; see docs/budgets.md.
    ///
    /// Examples:
    ///   bedrock-usage alerts check
    ///   bedrock-usage alerts check --dry-run
    ///   bedrock-usage alerts outbox --format json
    #[command(verbatim_doc_comment)]
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },

    /// Look after the store: check it, back it up.
    ///
    /// Copying the store's file while a command writes to it is not a backup (the copy can be
    /// torn, and WAL mode keeps recent commits in a second file): use `store backup`, which
    /// takes one consistent snapshot while other processes go on writing.
    ///
    /// Examples:
    ///   bedrock-usage store check
    ///   bedrock-usage store backup /backups/usage-$(date +%F).db
    #[command(verbatim_doc_comment)]
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },

    /// The stored calls for the warehouse: Parquet for Athena, Spark, Trino or DuckDB.
    ///
    /// Examples:
    ///   bedrock-usage export parquet exports/bedrock-usage
    ///   bedrock-usage export parquet exports/bedrock-usage --since 2026-11-01 --until 2026-11-30
    ///   bedrock-usage export parquet s3://analytics/bedrock-usage
    ///   bedrock-usage export parquet s3://analytics/bedrock-usage --athena-ddl
    #[command(verbatim_doc_comment)]
    Export {
        #[command(subcommand)]
        command: ExportCommand,
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
pub enum CredentialsOutput {
    Process,
    ClaudeCode,
    Env,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    None,
}

#[derive(Debug, Subcommand)]
pub enum PricingCommand {
    /// Every model in the catalog with its rates in force today (USD per million tokens), each
    /// with its source and whether it is confirmed.
    List {
        /// Every dated rate block, with the day each one ends.
        #[arg(long)]
        history: bool,
    },
    /// How a model id is priced: which entry and dated block, which rates, which rules apply
    /// and why.
    ///
    /// Example: `pricing show us.anthropic.claude-haiku-5-5 --date 2026-11-03 --input-tokens
    /// 100001` shows the tier above 100,000 input-side tokens and says it applies.
    Show {
        /// A modelId as it appears in the logs (plain id, profile id, or ARN).
        model_id: String,
        /// Price as of this date (YYYY-MM-DD). Default: today.
        #[arg(long)]
        date: Option<String>,
        /// The region the call was made in (some models cost more in some regions; an ARN
        /// names its own). GovCloud regions (`us-gov-west-1`) take the GovCloud premium.
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// A call's input side (input + cache read + cache write tokens): says which tier
        /// prices it.
        #[arg(long, value_name = "N")]
        input_tokens: Option<u64>,
    },
    /// Model ids in the store that have no price, with their call counts.
    Unpriced,
    /// Read AWS's own Bedrock prices (the Price List bulk offer file) and write them as an
    /// override catalog with effective dates.
    ///
    /// Maps usage types (`USE1-Claude4.6Sonnet-input-tokens`, the Marketplace
    /// `USE1-MP:USE1_InputTokenCount-Units` forms, cache read and write, 1-hour writes, global
    /// and geographic variants, long-context tiers) to catalog entries; a usage type it cannot
    /// map is listed with the reason, never guessed. The catalog goes to --output (or stdout,
    /// with the summary on stderr). Then: `pricing diff FILE`, and `[pricing] catalog = FILE`.
    ImportAws {
        /// The offer file (JSON), e.g. downloaded from the Price List endpoint.
        file: Option<PathBuf>,
        /// Download the current offer file from AWS's public Price List endpoint (no
        /// credentials needed) instead of reading FILE.
        #[arg(long)]
        api: bool,
        /// Where --api downloads from (a mirror, or a test server).
        #[arg(long, value_name = "URL", requires = "api")]
        offer_url: Option<String>,
        /// Write the catalog here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// What a catalog file changes against the embedded catalog, model by model and day by
    /// day (rates, premiums, tiers, region rates; models added).
    Diff {
        /// A catalog file (TOML, the format of `pricing import-aws` and `[pricing] catalog`).
        file: PathBuf,
    },
    /// Compare the catalog with a LiteLLM price map and print each difference (a second
    /// opinion, not a source of truth).
    ///
    /// The map is LiteLLM's `model_prices_and_context_window.json` (it ships in the `litellm`
    /// PyPI package as `model_prices_and_context_window_backup.json`).
    Check {
        /// The LiteLLM price map (JSON).
        litellm: PathBuf,
        /// Compare the rates in force on this date (YYYY-MM-DD). Default: today.
        #[arg(long)]
        date: Option<String>,
    },
}

/// HTTPS for the servers (`gateway`, `serve`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (keys and tokens then cross the
    /// network in clear text: only behind a TLS-terminating load balancer).
    #[arg(long)]
    pub insecure_listen: bool,
}

/// Where and as whom to call AWS (over the config's settings and the standard chain).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// The AWS profile (~/.aws/config) to use.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS region (default: the source's, else AWS_REGION / the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Another endpoint for every AWS service (a VPC endpoint, a local emulator).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

// Parsed once per run: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Turn on Bedrock's invocation logging and create what it delivers to (idempotent).
    ///
    /// Creates (or corrects) the log group with its retention, the IAM role Bedrock needs to
    /// write to it, the bucket and its policy, and the model-invocation logging configuration;
    /// optionally a CloudWatch dashboard, cost alarms and a monthly AWS Budget. Each step reads
    /// what is there first and changes only what differs: a second run changes nothing.
    /// Destinations default to the first CloudWatch and S3 sources of the config.
    ///
    /// Examples:
    ///   bedrock-usage aws setup --log-group /aws/bedrock/model-invocations --dry-run
    ///   bedrock-usage aws setup --s3 s3://my-bedrock-logs/bedrock/ --region eu-west-1
    ///   bedrock-usage aws setup --dashboard --alarm 200 --alarm-developer alice --budget 3000
    ///   bedrock-usage aws setup --developer-role BedrockDeveloper \
    ///       --trusted-role arn:aws:iam::123456789012:role/code-server-ec2-role
    #[command(verbatim_doc_comment)]
    Setup {
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Deliver to this CloudWatch Logs group.
        #[arg(long, value_name = "NAME")]
        log_group: Option<String>,
        /// Retention of the log group, in days.
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        retention_days: i32,
        /// The IAM role Bedrock assumes to write to the log group.
        #[arg(
            long,
            default_value = "BedrockUsageInvocationLogging",
            value_name = "NAME"
        )]
        role_name: String,
        /// Deliver to this S3 location: s3://BUCKET/PREFIX (bucket created if missing).
        #[arg(long = "s3", value_name = "S3_URL")]
        s3: Option<String>,
        /// Publish a CloudWatch dashboard (default name BedrockUsage): tokens, cache tokens and
        /// cost by developer and by model.
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "BedrockUsage")]
        dashboard: Option<String>,
        /// Alarm when a day's cost (all developers) passes this many USD, a decimal such as
        /// 25.50 (needs `sync --publish-metrics`).
        #[arg(long, value_name = "USD")]
        alarm: Option<String>,
        /// Also an alarm for this developer at the same threshold (repeatable).
        #[arg(long, value_name = "NAME", requires = "alarm")]
        alarm_developer: Vec<String>,
        /// An SNS topic ARN the alarms notify.
        #[arg(long, value_name = "ARN", requires = "alarm")]
        alarm_topic: Option<String>,
        /// A monthly AWS Budget on Amazon Bedrock of this many USD (a decimal: 500, 2500.50).
        #[arg(long, value_name = "USD")]
        budget: Option<String>,
        /// Who the budget emails (at 80% actual and 100% forecast).
        #[arg(long, value_name = "EMAIL", requires = "budget")]
        budget_email: Option<String>,
        /// Create or correct the role developers assume one session each (`bedrock-usage
        /// credentials`): trusted by --trusted-role, allowed to invoke Bedrock models only.
        #[arg(long, value_name = "NAME", requires = "trusted_role")]
        developer_role: Option<String>,
        /// With --developer-role: the role ARN that may assume it (the instance or container
        /// role the credentials helper runs as).
        #[arg(long, value_name = "ARN", requires = "developer_role")]
        trusted_role: Option<String>,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Check the AWS side: credentials, invocation logging, every source, the store.
    ///
    /// Each check that fails says what to do. Exit status 1 if any check failed.
    Status {
        #[command(flatten)]
        aws: AwsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// One Parquet file per UTC day, `DIR/dt=YYYY-MM-DD/calls.parquet` (Hive partitions): every
    /// stored call with its developer, team, cost center, model and exact cost (docs/export.md).
    /// Incremental: a day already exported and unchanged is not written again.
    Parquet {
        /// The directory to write (created if missing), or s3://BUCKET/PREFIX (each day's file
        /// put through the AWS SDK); with --athena-ddl, the s3:// location the table reads.
        target: String,
        /// From this UTC day (a date; default: the first stored call's).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Up to and including this UTC day (default: the last stored call's).
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Print Athena's CREATE EXTERNAL TABLE (partition projection on dt) for TARGET, an
        /// s3://BUCKET/PREFIX, instead of exporting.
        #[arg(long)]
        athena_ddl: bool,
        /// The table's name in --athena-ddl.
        #[arg(long, default_value = "bedrock_usage_calls", value_name = "NAME")]
        table: String,
        #[command(flatten)]
        aws: AwsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// The database's own check, the rollups against the invocations, and the column
    /// segments against both; exit 1 on a problem.
    Check {
        /// The full `integrity_check` (reads every page and index; slower on a large store),
        /// `foreign_key_check` (every call names a stored identity and model), and every
        /// column of every segment against its CRC.
        #[arg(long)]
        full: bool,
    },
    /// Write the calls not yet in the store's column segments (what `query` reads), and show
    /// each day's calls and how many are in segments.
    ///
    /// Segments live beside the store (`<store>.columns/`), one or more per UTC day. They are
    /// derived from the stored calls: `ingest`, `sync` and `demo` write them at their end, a
    /// query reads the calls not in segments from the store itself (so answers are exact in any
    /// state), and `--rebuild` writes every day again (after a damaged file, say).
    Columns {
        /// Write every day again, not only the calls not in segments.
        #[arg(long)]
        rebuild: bool,
    },
    /// A consistent copy of the store in a new file, safe while another process writes.
    Backup {
        /// Where to write the copy (must not exist).
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file (and the catalog it names); exit 2 on any problem.
    Check,
}

impl AwsArgs {
    /// The flags as AWS access settings (over each source's; see `AwsAccess::overridden_by`).
    pub fn access(&self) -> AwsAccess {
        AwsAccess {
            profile: self.profile.clone(),
            region: self.region.clone(),
            role_arn: None,
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// One row per budget (per developer for `each_developer`): scope, period, spent, percent,
    /// the forecast for the period's end, state (ok, warning, forecast-exceeded, exceeded) and
    /// days left. Exit 1 when any budget is exceeded.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Evaluate every budget, write what is due to the outbox, and deliver the outbox. Exit 1
    /// when a channel failed (its messages are kept and retried by the next run).
    Check {
        /// Print what would be sent, send nothing, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Every message in the outbox: its key, channel, when it fell due, attempts, when it was
    /// sent, the last error.
    Outbox,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it (once: only its hash is stored).
    ///
    /// The developer sets it as AWS_BEARER_TOKEN_BEDROCK. A running gateway accepts it within a
    /// second. `--format json` prints an object with `key`, `id`, `developer`.
    Create {
        /// Who the key's calls are attributed to.
        #[arg(long, value_name = "NAME")]
        developer: String,
        /// Their team (sent to Bedrock as request metadata; default: the config's).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// When the key stops working: a duration from now (90d, 12h) or a date.
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// A note for `keys list` (a machine, a purpose).
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
    },
    /// Every key: id, developer, team, label, created, expires, state. Never the key itself.
    List,
    /// Stop a key from working (a running gateway refuses it within a second).
    Revoke {
        /// The key's id (from `keys list`), or the whole key.
        id: String,
    },
}
