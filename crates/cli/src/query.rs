//! `query`: CloudWatch Logs Insights queries, run locally over the store or straight over log
//! files. The language and its evaluation live in the core (`bedrock_usage_core::query`); this
//! module turns stored invocations or log lines into rows of fields, and prints the result.
//!
//! Over the store, every scalar field of the record is available under its Logs Insights name,
//! plus the fields bedrock-usage derives (snake_case names a record never has): `developer`,
//! `team`, `cost_center`, `model`, `cost_usd`, `cache_write_5m_tokens`, `cache_write_1h_tokens`.
//! Over files (`--from`), every field of each event is available, bodies included, flattened to
//! dotted names the way CloudWatch flattens JSON events.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bedrock_usage_core::money::NanoUsd;
use bedrock_usage_core::pricing::{normalize_model_id, LONG_CONTEXT_THRESHOLD};
use bedrock_usage_core::query::{
    closest, extract_fields, flatten_json, fmt_time, parse_query, FieldSet, Plan, Row, Table, Value,
};
use bedrock_usage_core::time::{parse_timestamp_ms, MS_PER_DAY};
use bedrock_usage_core::{Attributor, Config, PriceCatalog};

use crate::output::{emit, json_string, Format};
use crate::store::{Grain, Store, StoredInvocation};

/// Fields people reach for that Bedrock records do not have, and what they mean.
const HINTS: &[(&str, &str)] = &[
    ("usage.inputTokens", "input.inputTokenCount"),
    ("usage.outputTokens", "output.outputTokenCount"),
    ("usage.input_tokens", "input.inputTokenCount"),
    ("usage.output_tokens", "output.outputTokenCount"),
    ("inputTokens", "input.inputTokenCount"),
    ("outputTokens", "output.outputTokenCount"),
    ("inputTokenCount", "input.inputTokenCount"),
    ("outputTokenCount", "output.outputTokenCount"),
    ("cacheReadInputTokens", "input.cacheReadInputTokenCount"),
    ("cacheWriteInputTokens", "input.cacheWriteInputTokenCount"),
    ("userIdentity.arn", "identity.arn"),
    ("model_id", "modelId"),
    ("request_id", "requestId"),
];

/// The fields a stored invocation has (for suggestions).
const STORE_FIELDS: &[&str] = &[
    "@timestamp",
    "@message",
    "@logStream",
    "@log",
    "schemaType",
    "schemaVersion",
    "timestamp",
    "accountId",
    "identity.arn",
    "region",
    "inferenceRegion",
    "requestId",
    "operation",
    "modelId",
    "errorCode",
    "input.inputTokenCount",
    "input.cacheReadInputTokenCount",
    "input.cacheWriteInputTokenCount",
    "output.outputTokenCount",
    "developer",
    "team",
    "cost_center",
    "model",
    "cost_usd",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
];

pub struct QueryRequest<'a> {
    pub query: &'a str,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub from: &'a [PathBuf],
    pub limit: usize,
}

/// Runs the query and prints it. Exit 2 (an error) for a query that does not parse.
pub fn run(
    store: Option<&Store>,
    config: &Config,
    catalog: &PriceCatalog,
    req: &QueryRequest,
    format: Format,
) -> Result<u8> {
    let parsed = match parse_query(req.query) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: {}", e.render(req.query));
            return Ok(crate::EXIT_ERROR);
        }
    };
    let plan = match Plan::new(parsed, req.limit) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return Ok(crate::EXIT_ERROR);
        }
    };
    let wanted = plan.input_fields();
    let mut seen: HashSet<String> = HashSet::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut scanned = 0u64;
    let mut bytes = 0u64;
    let mut bad = 0u64;
    let table = {
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
        if req.from.is_empty() {
            let store = store.context("no store to query")?;
            let mut exec = plan.start();
            let grain = plan
                .additive_stats(ROLLUP_DIMS, ROLLUP_SUMS)
                .and_then(|bin| {
                    [
                        (Grain::Day, MS_PER_DAY),
                        (Grain::Hour, 3_600_000),
                        (Grain::Quarter, crate::store::QUARTER_MS),
                    ]
                    .into_iter()
                    .find(|(_, step)| bin == i64::MAX || bin % step == 0)
                    .map(|(g, _)| g)
                });
            match grain {
                // A stats of sums over rollup dimensions: read the rollups, not the events.
                Some(g) => scan_rollups(
                    store,
                    config,
                    catalog,
                    req.since,
                    req.until,
                    g,
                    |row, weight| {
                        observe(&row, 0, weight);
                        exec.push_weighted(row, weight);
                    },
                )?,
                None => scan_store(
                    store,
                    config,
                    catalog,
                    (req.since, req.until),
                    &wanted,
                    plan.shows_default_columns(),
                    |row, size| {
                        observe(&row, size, 1);
                        exec.push(row)
                    },
                )?,
            }
            exec.finish()
        } else {
            let mut needed: Vec<&str> = wanted.iter().map(String::as_str).collect();
            needed.push("timestamp");
            let want_message = plan.shows_default_columns() || wanted.contains("@message");
            let rows = FileRows::new(
                req.from,
                req.since,
                req.until,
                FieldSet::new(needed),
                want_message,
            )?;
            let mut bad_lines = Vec::new();
            let t = plan.run(rows.filter_map(|r| match r {
                Ok((row, size)) => {
                    observe(&row, size, 1);
                    Some(row)
                }
                Err(e) => {
                    bad_lines.push(e);
                    None
                }
            }));
            bad = bad_lines.len() as u64;
            for b in bad_lines.iter().take(5) {
                eprintln!("warning: skipped: {b}");
            }
            t
        }
    };
    print(&table, format, scanned, bytes)?;
    // The results stay faithful (nulls); hints go to stderr.
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
                            .chain(STORE_FIELDS.iter().copied()),
                    )
                });
            match hint {
                Some(h) => eprintln!(
                    "warning: no event has the field `{w}`: it reads as null; did you mean `{h}`?"
                ),
                None => eprintln!("warning: no event has the field `{w}`: it reads as null"),
            }
        }
    }
    if table.truncated {
        eprintln!("warning: only the first {} rows are shown (add `| limit N` to the query, or --limit N)", table.rows.len());
    }
    if bad > 0 {
        eprintln!("warning: {bad} lines were not JSON events and were skipped");
    }
    Ok(crate::EXIT_OK)
}

/// Fields the store's rollups keep per group, and the fields they sum.
const ROLLUP_DIMS: &[&str] = &[
    "identity.arn",
    "modelId",
    "region",
    "operation",
    "developer",
    "team",
    "cost_center",
    "model",
];
const ROLLUP_SUMS: &[&str] = &[
    "input.inputTokenCount",
    "input.cacheReadInputTokenCount",
    "input.cacheWriteInputTokenCount",
    "output.outputTokenCount",
    "cost_usd",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
];

/// Pre-aggregated rows from the rollups (exact at any `--since`/`--until`: see `Store::facts`),
/// each with the number of calls it stands for.
fn scan_rollups(
    store: &Store,
    config: &Config,
    catalog: &PriceCatalog,
    since: Option<i64>,
    until: Option<i64>,
    grain: Grain,
    mut f: impl FnMut(Row, u64),
) -> Result<()> {
    let facts = store.facts(since, until, grain)?;
    let attributor = Attributor::new(config, &facts.identities);
    let who: Vec<_> = facts
        .identities
        .iter()
        .map(|i| attributor.attribute(i))
        .collect();
    let models: Vec<_> = facts
        .model_ids
        .iter()
        .map(|m| normalize_model_id(m, &config.models))
        .collect();
    for r in &facts.rows {
        let a = &who[r.identity];
        let m = &models[r.model];
        let raw = &facts.model_ids[r.model];
        let t = &r.tokens;
        let mut row = Row::default();
        row.set("@timestamp", Value::Time(r.bucket_ms));
        let principal = &facts.identities[r.identity].principal;
        if !principal.is_empty() {
            row.set("identity.arn", Value::Str(principal.clone()));
        }
        row.set("modelId", Value::Str(raw.clone()));
        row.set("region", Value::Str(facts.strings[r.region].clone()));
        row.set("operation", Value::Str(facts.strings[r.operation].clone()));
        row.set("developer", Value::Str(a.developer.clone()));
        if let Some(team) = &a.team {
            row.set("team", Value::Str(team.clone()));
        }
        if let Some(cc) = &a.cost_center {
            row.set("cost_center", Value::Str(cc.clone()));
        }
        row.set(
            "model",
            Value::Str(m.key.clone().unwrap_or_else(|| raw.clone())),
        );
        row.set("input.inputTokenCount", Value::Num(t.input as f64));
        row.set(
            "input.cacheReadInputTokenCount",
            Value::Num(t.cache_read as f64),
        );
        row.set(
            "input.cacheWriteInputTokenCount",
            Value::Num(t.cache_write() as f64),
        );
        row.set("output.outputTokenCount", Value::Num(t.output as f64));
        row.set("cache_write_5m_tokens", Value::Num(t.cache_write_5m as f64));
        row.set("cache_write_1h_tokens", Value::Num(t.cache_write_1h as f64));
        let cost = catalog
            .decide(m, raw, r.bucket_ms.div_euclid(MS_PER_DAY), r.long_context)
            .ok()
            .and_then(|d| d.rates.cost_pico(t))
            .map(NanoUsd::from_pico);
        if let Some(c) = cost {
            row.set("cost_usd", Value::Num(c.0 as f64 / 1e9));
        }
        f(row, r.calls);
    }
    Ok(())
}

/// Rows of stored invocations, with the derived fields, each with the size of its `@message`,
/// handed to `f` until it returns false. Only the fields in `wanted` are built (and the default
/// columns `@timestamp` and `@message` when the query shows them).
fn scan_store(
    store: &Store,
    config: &Config,
    catalog: &PriceCatalog,
    (since, until): (Option<i64>, Option<i64>),
    wanted: &BTreeSet<String>,
    default_columns: bool,
    mut f: impl FnMut(Row, usize) -> bool,
) -> Result<()> {
    let want = |name: &str| {
        (default_columns && (name == "@timestamp" || name == "@message")) || wanted.contains(name)
    };
    let want_message = want("@message");
    let want_metadata = wanted.iter().any(|w| w.starts_with("requestMetadata."));
    let want_cost = want("cost_usd");
    let want_attribution = want("developer") || want("team") || want("cost_center");
    let identities = if want_attribution {
        store.identities()?
    } else {
        Vec::new()
    };
    let attributor = Attributor::new(config, &identities);
    let mut attributions = HashMap::new();
    let mut models = HashMap::new();
    store.scan_invocations(since, until, |inv| {
        let mut row = Row::default();
        let mut put = |name: &str, v: &dyn Fn() -> Value| {
            if want(name) {
                row.set(name, v());
            }
        };
        let t = inv.tokens;
        put("@timestamp", &|| Value::Time(inv.timestamp_ms));
        put("@logStream", &|| {
            Value::Str("aws/bedrock/modelinvocations".into())
        });
        put("@log", &|| {
            Value::Str(format!("{}:bedrock-usage", inv.account_id))
        });
        put("schemaType", &|| Value::Str("ModelInvocationLog".into()));
        put("schemaVersion", &|| Value::Str("1.0".into()));
        put("timestamp", &|| {
            Value::Str(bedrock_usage_core::time::format_utc(inv.timestamp_ms))
        });
        put("accountId", &|| Value::Str(inv.account_id.clone()));
        if !inv.identity.principal.is_empty() {
            put("identity.arn", &|| {
                Value::Str(inv.identity.principal.clone())
            });
        }
        put("region", &|| Value::Str(inv.region.clone()));
        if let Some(r) = &inv.inference_region {
            put("inferenceRegion", &|| Value::Str(r.clone()));
        }
        put("requestId", &|| Value::Str(inv.request_id.clone()));
        put("operation", &|| Value::Str(inv.operation.clone()));
        put("modelId", &|| Value::Str(inv.model_id.clone()));
        if let Some(e) = &inv.error_code {
            put("errorCode", &|| Value::Str(e.clone()));
        }
        put("input.inputTokenCount", &|| Value::Num(t.input as f64));
        put("input.cacheReadInputTokenCount", &|| {
            Value::Num(t.cache_read as f64)
        });
        put("input.cacheWriteInputTokenCount", &|| {
            Value::Num(t.cache_write() as f64)
        });
        put("output.outputTokenCount", &|| Value::Num(t.output as f64));
        put("cache_write_5m_tokens", &|| {
            Value::Num(t.cache_write_5m as f64)
        });
        put("cache_write_1h_tokens", &|| {
            Value::Num(t.cache_write_1h as f64)
        });
        if want_attribution {
            let a = attributions
                .entry(inv.identity_id)
                .or_insert_with(|| attributor.attribute(&inv.identity));
            put("developer", &|| Value::Str(a.developer.clone()));
            if let Some(team) = &a.team {
                put("team", &|| Value::Str(team.clone()));
            }
            if let Some(cc) = &a.cost_center {
                put("cost_center", &|| Value::Str(cc.clone()));
            }
        }
        if want("model") || want_cost {
            let m = models
                .entry(inv.model_ref)
                .or_insert_with(|| normalize_model_id(&inv.model_id, &config.models));
            put("model", &|| {
                Value::Str(m.key.clone().unwrap_or_else(|| inv.model_id.clone()))
            });
            if want_cost {
                let day = inv.timestamp_ms.div_euclid(MS_PER_DAY);
                let cost = catalog
                    .decide(
                        m,
                        &inv.model_id,
                        day,
                        t.input_side() > LONG_CONTEXT_THRESHOLD,
                    )
                    .ok()
                    .and_then(|d| d.rates.cost_pico(&t))
                    .map(NanoUsd::from_pico);
                if let Some(c) = cost {
                    put("cost_usd", &|| Value::Num(c.0 as f64 / 1e9));
                }
            }
        }
        if want_metadata {
            if let Some(Ok(serde_json::Value::Object(md))) = inv
                .request_metadata
                .as_deref()
                .map(serde_json::from_str::<serde_json::Value>)
            {
                for (k, v) in md {
                    if let serde_json::Value::String(s) = v {
                        let name = format!("requestMetadata.{k}");
                        if want(&name) {
                            row.set(&name, Value::Str(s));
                        }
                    }
                }
            }
        }
        let mut size = 0;
        if want_message {
            let message = message_of(&inv);
            size = message.len();
            row.set("@message", Value::Str(message));
        }
        f(row, size)
    })
}

/// The record without its bodies, as `@message` of a stored invocation.
fn message_of(inv: &StoredInvocation) -> String {
    let mut m = serde_json::Map::new();
    let s = |v: &str| serde_json::Value::String(v.to_string());
    m.insert("schemaType".into(), s("ModelInvocationLog"));
    m.insert("schemaVersion".into(), s("1.0"));
    m.insert(
        "timestamp".into(),
        s(&bedrock_usage_core::time::format_utc(inv.timestamp_ms)),
    );
    m.insert("accountId".into(), s(&inv.account_id));
    m.insert(
        "identity".into(),
        serde_json::json!({ "arn": inv.identity.principal }),
    );
    m.insert("region".into(), s(&inv.region));
    if let Some(r) = &inv.inference_region {
        m.insert("inferenceRegion".into(), s(r));
    }
    m.insert("requestId".into(), s(&inv.request_id));
    m.insert("operation".into(), s(&inv.operation));
    m.insert("modelId".into(), s(&inv.model_id));
    if let Some(e) = &inv.error_code {
        m.insert("errorCode".into(), s(e));
    }
    if let Some(Ok(md)) = inv
        .request_metadata
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        m.insert("requestMetadata".into(), md);
    }
    let t = &inv.tokens;
    m.insert(
        "input".into(),
        serde_json::json!({ "inputTokenCount": t.input, "cacheReadInputTokenCount": t.cache_read, "cacheWriteInputTokenCount": t.cache_write() }),
    );
    m.insert(
        "output".into(),
        serde_json::json!({ "outputTokenCount": t.output }),
    );
    serde_json::Value::Object(m).to_string()
}

/// A row with the size of its event in bytes, or why a line is not an event.
type EventResult = Result<(Row, usize), String>;

/// Events of log files, one row per record: read by one thread per core, a file each, and
/// handed out in the order of the files (so results do not depend on thread timing).
struct FileRows {
    rx: std::sync::mpsc::Receiver<(usize, Vec<EventResult>, bool)>,
    /// The file being handed out; readers stay within a few files of it, so memory does not grow
    /// with the input when one file is much larger than the rest.
    consumed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    files: usize,
    next: usize,
    pending: HashMap<usize, (std::collections::VecDeque<Vec<EventResult>>, bool)>,
    batch: std::vec::IntoIter<EventResult>,
}

/// How a line becomes a row: every field for the first events (so that hints can name real
/// fields), then only the fields the query reads.
struct EventReader {
    fields: FieldSet,
    want_message: bool,
    full: std::sync::atomic::AtomicU64,
    since: Option<i64>,
    until: Option<i64>,
}

/// Events read with every field flattened, for hints about unknown fields.
const FULL_ROWS: u64 = 20;

impl EventReader {
    /// Drops events outside `--since`/`--until` (bad lines are kept, to be reported).
    fn keep(&self, r: EventResult) -> Option<EventResult> {
        if let Ok((row, _)) = &r {
            let ts = match row.get("@timestamp") {
                Value::Time(t) => Some(*t),
                _ => None,
            };
            let inside = match ts {
                Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u),
                None => self.since.is_none() && self.until.is_none(),
            };
            if !inside {
                return None;
            }
        }
        Some(r)
    }

    fn row(&self, message: &[u8], stream: &str, log: &str) -> Result<(Row, usize), String> {
        let mut row = Row::default();
        if self.full.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < FULL_ROWS {
            let v: serde_json::Value =
                serde_json::from_slice(message).map_err(|e| format!("not JSON: {e}"))?;
            if !v.is_object() {
                return Err("not a JSON object".into());
            }
            flatten_json(&v, "", &mut row);
        } else {
            extract_fields(message, &self.fields, &mut row).map_err(|e| e.to_string())?;
        }
        let ts = match row.get("timestamp") {
            Value::Str(t) => parse_timestamp_ms(t),
            _ => None,
        };
        if let Some(t) = ts {
            row.set("@timestamp", Value::Time(t));
        }
        if self.want_message {
            let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
            row.set("@message", Value::Str(text.to_string()));
        }
        row.set("@logStream", Value::Str(stream.to_string()));
        row.set("@log", Value::Str(log.to_string()));
        Ok((row, message.len()))
    }
}

impl FileRows {
    fn new(
        paths: &[PathBuf],
        since: Option<i64>,
        until: Option<i64>,
        fields: FieldSet,
        want_message: bool,
    ) -> Result<FileRows> {
        let mut bad = Vec::new();
        let inputs = crate::ingest::collect_inputs(paths, &mut bad);
        if let Some(b) = bad.first() {
            bail!("{b}");
        }
        let reader = std::sync::Arc::new(EventReader {
            fields,
            want_message,
            full: std::sync::atomic::AtomicU64::new(0),
            since,
            until,
        });
        let files = inputs.len();
        let inputs = std::sync::Arc::new(inputs);
        let next_file = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(1);
        let lead = 2 * threads + 2;
        for _ in 0..threads {
            let (inputs, next_file, tx, reader, consumed) = (
                inputs.clone(),
                next_file.clone(),
                tx.clone(),
                reader.clone(),
                consumed.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = Vec::with_capacity((1 << 20) + (64 << 10));
                loop {
                    let i = next_file.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((label, path)) = inputs.get(i) else {
                        return;
                    };
                    while i >= consumed.load(std::sync::atomic::Ordering::Relaxed) + lead {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    let mut send =
                        |rows: Vec<EventResult>, done: bool| tx.send((i, rows, done)).is_ok();
                    if let Err(e) = read_events(label, path, &reader, &mut send, &mut buf) {
                        if !send(vec![Err(format!("{e:#}"))], true) {
                            return;
                        }
                    } else if !send(Vec::new(), true) {
                        return; // the query stopped reading
                    }
                }
            });
        }
        Ok(FileRows {
            rx,
            consumed,
            files,
            next: 0,
            pending: HashMap::new(),
            batch: Vec::new().into_iter(),
        })
    }
}

/// Reads one input's events, sending rows in batches; errs if the input cannot be read at all.
/// `buf` is the calling thread's chunk buffer, reused from file to file.
fn read_events(
    label: &str,
    path: &Option<PathBuf>,
    reader: &EventReader,
    send: &mut dyn FnMut(Vec<EventResult>, bool) -> bool,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut r: Box<dyn Read> = match path {
        Some(p) => {
            Box::new(std::fs::File::open(p).with_context(|| format!("cannot read {label}"))?)
        }
        None => Box::new(std::io::stdin()),
    };
    buf.clear();
    crate::ingest::fill(&mut r, buf, 64 << 10).with_context(|| format!("cannot read {label}"))?;
    let whole = match path {
        Some(p) if buf.starts_with(&[0x1f, 0x8b]) => std::fs::metadata(p)
            .ok()
            .and_then(|m| crate::ingest::inflate_whole(p, m.len())),
        _ => None,
    };
    if let Some(bytes) = whole {
        r = Box::new(std::io::Cursor::new(bytes));
        buf.clear();
        crate::ingest::fill(&mut r, buf, 64 << 10)
            .with_context(|| format!("cannot read {label}"))?;
    } else if buf.starts_with(&[0x1f, 0x8b]) {
        let head = std::mem::take(buf);
        r = Box::new(flate2::bufread::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(1 << 18, std::io::Cursor::new(head).chain(r)),
        ));
        buf.reserve(1 << 20);
        crate::ingest::fill(&mut r, buf, 64 << 10)
            .with_context(|| format!("{label}: a broken gzip stream"))?;
    }
    let mut batch = Vec::with_capacity(256);
    if crate::ingest::is_log_events_document(buf) {
        r.read_to_end(buf)
            .with_context(|| format!("cannot read {label}"))?;
        let doc: serde_json::Value = serde_json::from_slice(buf).with_context(|| {
            format!("{label}: not a valid `aws logs filter-log-events` document")
        })?;
        for (i, ev) in doc
            .get("events")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(msg) = ev.get("message").and_then(|m| m.as_str()) else {
                batch.push(Err(format!("{label}: events[{i}] has no message")));
                continue;
            };
            let stream = ev
                .get("logStreamName")
                .and_then(|s| s.as_str())
                .unwrap_or("aws/bedrock/modelinvocations");
            if let Some(r) = reader.keep(
                reader
                    .row(msg.as_bytes(), stream, label)
                    .map_err(|e| format!("{label}: events[{i}]: {e}")),
            ) {
                batch.push(r);
            }
        }
        send(batch, false);
        return Ok(());
    }
    // Whole lines out of 1 MiB chunks, parsed in place.
    let mut n = 0usize;
    let mut want = 1 << 20;
    loop {
        let r_end = crate::ingest::fill(&mut r, buf, want);
        let at_end = !matches!(r_end, Ok(false));
        let cut = match memchr::memrchr(b'\n', buf) {
            _ if at_end => buf.len(),
            Some(i) => i + 1,
            None => {
                // A line longer than a chunk: read on.
                want = buf.len() + (1 << 20);
                continue;
            }
        };
        want = 1 << 20;
        let chunk = &buf[..cut];
        let mut from = 0;
        for end in memchr::memchr_iter(b'\n', chunk)
            .chain((cut > 0 && chunk[cut - 1] != b'\n').then_some(cut))
        {
            let line = &chunk[from..end];
            from = end + 1;
            n += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            // An export-task line: a timestamp, a space, then the record.
            let body = if text[0].is_ascii_digit() {
                memchr::memchr(b' ', text)
                    .map(|i| &text[i + 1..])
                    .unwrap_or(text)
            } else {
                text
            };
            if let Some(r) = reader.keep(
                reader
                    .row(body, "aws/bedrock/modelinvocations", label)
                    .map_err(|e| format!("{label}:{n}: {e}")),
            ) {
                batch.push(r);
            }
            if batch.len() >= 256
                && !send(
                    std::mem::replace(&mut batch, Vec::with_capacity(256)),
                    false,
                )
            {
                return Ok(());
            }
        }
        buf.drain(..cut);
        if let Err(e) = r_end {
            batch.push(Err(format!("{label}: {e}")));
            break;
        }
        if at_end {
            break;
        }
    }
    send(batch, false);
    Ok(())
}

impl Iterator for FileRows {
    type Item = EventResult;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            if self.next >= self.files {
                return None;
            }
            // The next batch of the current file, waiting for it if needed.
            let entry = self.pending.entry(self.next).or_default();
            if let Some(b) = entry.0.pop_front() {
                self.batch = b.into_iter();
                continue;
            }
            if entry.1 {
                self.pending.remove(&self.next);
                self.next += 1;
                self.consumed
                    .store(self.next, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            match self.rx.recv() {
                Ok((i, rows, done)) => {
                    let e = self.pending.entry(i).or_default();
                    if !rows.is_empty() {
                        e.0.push_back(rows);
                    }
                    e.1 |= done;
                }
                Err(_) => return None,
            }
        }
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

pub fn print(t: &Table, format: Format, scanned: u64, bytes: u64) -> Result<()> {
    match format {
        Format::Json => {
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
            emit(&out)?;
        }
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
                            .map(|v| crate::output::Cell::text(v.to_string()))
                            .collect()
                    })
                    .collect(),
            };
            emit(&rec.to_csv())?;
        }
        Format::Table | Format::Markdown => {
            let right: Vec<bool> = (0..t.columns.len())
                .map(|i| {
                    !t.rows.is_empty()
                        && t.rows
                            .iter()
                            .all(|r| matches!(r[i], Value::Num(_) | Value::Null))
                })
                .collect();
            let table = crate::output::Table {
                headers: t.columns.clone(),
                right,
                rows: t
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|v| v.to_string()).collect())
                    .collect(),
                footer: None,
            };
            emit(&if format == Format::Table {
                table.render()
            } else {
                table.render_markdown()
            })?;
            if format == Format::Table {
                eprintln!(
                    "{} rows; {} records scanned ({:.1} MB)",
                    t.rows.len(),
                    scanned,
                    bytes as f64 / 1e6
                );
            }
        }
    }
    Ok(())
}
