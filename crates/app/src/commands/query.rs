//! `query`: CloudWatch Logs Insights queries, run locally over the store or straight over log
//! files. The language and its evaluation live in the core (`bedrock_usage_core::query`), and so
//! does the mapping of invocations, rollup facts and log events to rows (`query::rows`); this
//! command picks where the rows come from (rollups, stored invocations, or files through the one
//! reader) and prints the result.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bedrock_usage_core::query::rows::{
    event_row, StoreRows, HINTS, LOG_STREAM, ROLLUP_DIMS, ROLLUP_SUMS, STORE_FIELDS,
};
use bedrock_usage_core::query::{
    closest, fmt_time, parse_query, FieldSet, Plan, Row, Table, Value,
};
use bedrock_usage_core::rollup::query_grain;
use bedrock_usage_core::time::{parse_range, Zone};
use bedrock_usage_core::Attributor;

use crate::context::Context;
use crate::error::{Error, Result, EXIT_ERROR, EXIT_OK};
use crate::invalid;
use crate::output::{emit, json_string, Format};
use crate::sources::files::collect_inputs;
use crate::sources::lines::{self, EventParser, Input, Order, ReadOptions};
use crate::sources::BadInput;
use crate::store::FactReader;

/// `query`: the flags as typed.
pub struct QueryArgs<'a> {
    pub query: &'a str,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub from: &'a [PathBuf],
    pub limit: usize,
    /// The longest line read as an event (bytes).
    pub max_record: usize,
    /// Read the store's column segments where they hold the calls.
    pub columns: bool,
}

/// A query's answer, with what was read and what to warn about.
pub struct Executed {
    pub table: Table,
    pub scanned: u64,
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// Runs the query and prints it. Exit 2 (an error) for a query that does not parse.
pub fn run(ctx: &Context, a: &QueryArgs) -> Result<u8> {
    match execute(ctx, a)? {
        Err(message) => {
            eprintln!("error: {message}");
            Ok(EXIT_ERROR)
        }
        Ok(x) => {
            print(&x.table, ctx.format, x.scanned, x.bytes)?;
            // The results stay faithful (nulls); hints go to stderr.
            for w in &x.warnings {
                eprintln!("warning: {w}");
            }
            Ok(EXIT_OK)
        }
    }
}

/// Runs the query: `Ok(Err(message))` when it does not parse or plan (the message shows where).
pub fn execute(ctx: &Context, a: &QueryArgs) -> Result<std::result::Result<Executed, String>> {
    let (since, until) = parse_range(a.since, a.until, &Zone::utc(), ctx.clock.now_ms())?;
    if let (Some(a), Some(b)) = (since, until) {
        if a >= b {
            invalid!("--since must be before --until");
        }
    }
    let store = if a.from.is_empty() {
        Some(ctx.existing_store()?)
    } else {
        None
    };
    let parsed = match parse_query(a.query) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e.render(a.query))),
    };
    let plan = match Plan::new(parsed, a.limit) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.message)),
    };
    let wanted = plan.input_fields();
    let mut seen: HashSet<String> = HashSet::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut scanned = 0u64;
    let mut bytes = 0u64;
    let mut bad: Vec<BadInput> = Vec::new();
    let mut observe = |row: &Row, size: usize, weight: u64| {
        scanned += weight;
        bytes += size as u64;
        for w in &wanted {
            if !seen.contains(w) && row.0.contains_key(w) {
                seen.insert(w.clone());
            }
        }
        if names.len() < 5000 && scanned <= 200 {
            names.extend(row.0.keys().cloned());
        }
    };
    let mut exec = plan.start();
    let mut read_warnings = Vec::new();
    match &store {
        Some(store) => {
            let store: &dyn FactReader = &**store;
            let tags = store.iam_tags()?.tags;
            let grain = plan
                .additive_stats(ROLLUP_DIMS, ROLLUP_SUMS)
                .and_then(query_grain);
            match grain {
                // A stats of sums over rollup dimensions: read the rollups, not the events.
                Some(g) => {
                    let facts = store.facts(since, until, g)?;
                    let attributor =
                        Attributor::new(&ctx.config, &facts.identities).with_iam_tags(&tags);
                    let mut rows = StoreRows::new(
                        &ctx.catalog,
                        &attributor,
                        &ctx.config.models,
                        &wanted,
                        false,
                    );
                    for r in &facts.rows {
                        let row = rows.fact(&facts, r);
                        observe(&row, 0, r.calls);
                        exec.push_weighted(row, r.calls);
                    }
                }
                None => {
                    let default_columns = plan.shows_default_columns();
                    let identities = if StoreRows::need_attribution(&wanted, default_columns) {
                        store.identities()?
                    } else {
                        Vec::new()
                    };
                    let attributor = Attributor::new(&ctx.config, &identities).with_iam_tags(&tags);
                    let mut rows = StoreRows::new(
                        &ctx.catalog,
                        &attributor,
                        &ctx.config.models,
                        &wanted,
                        default_columns,
                    );
                    if a.columns {
                        super::query_columns::read(
                            ctx,
                            store,
                            &ctx.db_path()?,
                            &plan,
                            &wanted,
                            default_columns,
                            &attributor,
                            (since, until),
                            &mut observe,
                            &mut exec,
                            &mut read_warnings,
                        )?;
                    } else {
                        store.scan_invocations(since, until, &mut |inv| {
                            let (row, size) = rows.invocation(&inv);
                            observe(&row, size, 1);
                            exec.push(row)
                        })?;
                    }
                }
            }
        }
        None => {
            let mut needed: Vec<&str> = wanted.iter().map(String::as_str).collect();
            needed.push("timestamp");
            let parser = FileEvents {
                fields: FieldSet::new(needed),
                want_message: plan.shows_default_columns() || wanted.contains("@message"),
                full: AtomicU64::new(0),
                since,
                until,
            };
            let mut walk_bad = Vec::new();
            let mut notes = Vec::new();
            let inputs: Vec<Input> = collect_inputs(a.from, &mut walk_bad, &mut notes)
                .into_iter()
                .map(|(label, path)| Input::new(label, path))
                .collect();
            if let Some(b) = walk_bad.first() {
                return Err(Error::Invalid(b.to_string()));
            }
            for n in &notes {
                eprintln!("note: {n}");
            }
            let threads = lines::threads();
            lines::read_all(
                &inputs,
                &parser,
                ReadOptions {
                    order: Order::InputByInput {
                        lead: 2 * threads + 2,
                    },
                    queue: 64,
                    max_record: a.max_record,
                },
                |p| -> Result<bool> {
                    bad.extend(p.bad);
                    for (row, size) in p.items {
                        observe(&row, size, 1);
                        if !exec.push(row) {
                            return Ok(false); // a `limit` is full
                        }
                    }
                    Ok(true)
                },
            )?;
        }
    }
    let table = exec.finish();
    let mut warnings = read_warnings;
    if scanned > 0 {
        for w in wanted.iter().filter(|w| !seen.contains(*w)) {
            let hint = HINTS
                .iter()
                .find(|(k, _)| k == w)
                .map(|(_, v)| *v)
                .or_else(|| {
                    closest(
                        w,
                        names
                            .iter()
                            .map(String::as_str)
                            .chain(STORE_FIELDS.iter().copied())
                            // Never the very field asked for.
                            .filter(|n| *n != w.as_str()),
                    )
                });
            warnings.push(match hint {
                Some(h) => {
                    format!("no event has the field `{w}`: it reads as null; did you mean `{h}`?")
                }
                None => format!("no event has the field `{w}`: it reads as null"),
            });
        }
    }
    if table.truncated {
        warnings.push(format!(
            "only the first {} rows are shown (add `| limit N` to the query, or --limit N)",
            table.rows.len()
        ));
    }
    for b in bad.iter().take(5) {
        warnings.push(format!("skipped: {b}"));
    }
    if !bad.is_empty() {
        warnings.push(format!(
            "{} lines were not JSON events and were skipped",
            bad.len()
        ));
    }
    Ok(Ok(Executed {
        table,
        scanned,
        bytes,
        warnings,
    }))
}

/// Events read with every field flattened, for hints about unknown fields.
const FULL_ROWS: u64 = 20;

/// Log events of files as query rows: every field for the first events (so that hints can name
/// real fields), then only the fields the query reads; events outside `--since`/`--until` are
/// left out.
struct FileEvents {
    fields: FieldSet,
    want_message: bool,
    full: AtomicU64,
    since: Option<i64>,
    until: Option<i64>,
}

impl EventParser for FileEvents {
    /// A row with the size of its event in bytes.
    type Item = (Row, usize);

    fn parse(
        &self,
        json: &[u8],
        stream: Option<&str>,
        label: &str,
    ) -> std::result::Result<Option<(Row, usize)>, String> {
        let full = self.full.fetch_add(1, Ordering::Relaxed) < FULL_ROWS;
        let row = event_row(
            json,
            &self.fields,
            full,
            self.want_message,
            stream.unwrap_or(LOG_STREAM),
            label,
        )?;
        let inside = match row.get("@timestamp") {
            Value::Time(t) => {
                self.since.is_none_or(|s| *t >= s) && self.until.is_none_or(|u| *t < u)
            }
            _ => self.since.is_none() && self.until.is_none(),
        };
        Ok(inside.then_some((row, json.len())))
    }
}

fn json_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Num(_) => v.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => json_string(s),
        Value::Time(t) => json_string(&fmt_time(*t)),
    }
}

/// The rows as `query --format json` prints them (nulls left out).
pub fn json_rows(t: &Table) -> String {
    let mut out = String::from("[");
    for (i, row) in t.rows.iter().enumerate() {
        out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
        let fields: Vec<String> = t
            .columns
            .iter()
            .zip(row)
            .filter(|(_, v)| !v.is_null())
            .map(|(c, v)| format!("{}: {}", json_string(c), json_value(v)))
            .collect();
        out.push_str(&fields.join(", "));
        out.push('}');
    }
    out.push_str(if t.rows.is_empty() { "]\n" } else { "\n]\n" });
    out
}

pub fn print(t: &Table, format: Format, scanned: u64, bytes: u64) -> Result<()> {
    match format {
        Format::Json => emit(&json_rows(t))?,
        Format::Aws => {
            let results: Vec<serde_json::Value> = t
                .rows
                .iter()
                .map(|row| {
                    serde_json::Value::Array(
                        t.columns
                            .iter()
                            .zip(row)
                            .filter(|(_, v)| !v.is_null())
                            .map(|(c, v)| serde_json::json!({ "field": c, "value": v.to_string() }))
                            .collect(),
                    )
                })
                .collect();
            let doc = serde_json::json!({
                "results": results,
                "statistics": { "recordsMatched": t.rows.len() as f64, "recordsScanned": scanned as f64, "bytesScanned": bytes as f64 },
                "status": "Complete",
            });
            emit(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
        }
        Format::Csv => {
            let rec = crate::output::Records {
                fields: t.columns.clone(),
                rows: t
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| match v {
                                Value::Num(_) => crate::output::Cell::Number(v.to_string()),
                                _ => crate::output::Cell::text(v.to_string()),
                            })
                            .collect()
                    })
                    .collect(),
            };
            rec.print(format)?;
        }
        Format::Table | Format::Markdown | Format::Html => {
            let right: Vec<bool> = (0..t.columns.len())
                .map(|i| {
                    !t.rows.is_empty()
                        && t.rows
                            .iter()
                            .all(|r| matches!(r[i], Value::Num(_) | Value::Null))
                })
                .collect();
            crate::output::Table {
                headers: t.columns.clone(),
                right,
                rows: t
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|v| v.to_string()).collect())
                    .collect(),
                footer: None,
            }
            .print(format)?;
            if format == Format::Table {
                eprintln!(
                    "{} row{}; {} records scanned ({:.1} MB)",
                    t.rows.len(),
                    if t.rows.len() == 1 { "" } else { "s" },
                    scanned,
                    bytes as f64 / 1e6
                );
            }
        }
    }
    Ok(())
}
