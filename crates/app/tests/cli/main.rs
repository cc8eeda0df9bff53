//! The one integration-test binary of bedrock-usage: the CLI run as a user runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test or a tool: a panic is its report

// Helpers: temp dirs, running the binary, fixtures.
mod util;
// A mock Bedrock runtime (event streams, SigV4 checks, the logs it would write).
mod mock_bedrock;
// The gateway: keys, boto3 through it to the mock, records, refusals, exactly once.
mod gateway;
// Limits at the gateway: hard budgets under concurrency, rate limits, /me, Claude Code.
mod limits;
// Budgets and alerts over a simulated month: figures, zones, delivery exactly once.
mod budgets;

// Every input format is read into the same stored values (golden).
mod formats;
// Exactly once: re-runs, grown files, kill -9 at random moments.
mod exactly_once;
// Column segments: answers equal the rows' in every state; kill -9; store check.
mod columns;
// Bad input is reported with file and line; the rest is ingested; nothing partial is stored.
mod bad_input;
// demo --write, ingest, report: every figure equals the generator's own ledger.
mod end_to_end;
// Any reordering, duplication or split of a corpus across files and runs gives identical reports.
mod property;
// Report flags: time ranges at any boundary, time zones, filters, formats.
mod report;
// One reader: ingest and query --from read the same records from the same file.
mod readers;
// Nothing silently lost: pipes, FIFOs, link loops, pretty JSON, BOMs, Logs Insights files.
mod hardening;
// Real records from public sources, golden.
mod real_logs;
// pricing and config commands.
mod pricing_config;
// The catalog against its sources: golden show, import-aws, diff, LiteLLM check.
mod pricing_sources;
// serve: the JSON API, auth, /metrics, the server binary.
mod serve;
// report --format html: totals equal the JSON to the cent, printed to PDF by Chromium.
mod report_html;
// export parquet: DuckDB reads what the report says; incremental; Athena DDL.
mod export;
// The dashboard in headless Chromium over WebDriver.
mod dashboard;
// Logs Insights queries: the golden suite, store/file equivalence, errors and hints.
mod queries;
// The AWS side against moto: sync from CloudWatch Logs and S3, faults, kills, setup, status,
// metrics.
mod aws;
mod aws_emulator;
// One AWS session per developer: the credentials helper, the developer role, IAM tags.
mod credentials;
