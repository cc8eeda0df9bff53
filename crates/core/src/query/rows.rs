//! Rows for the query language: what a stored invocation, a rollup fact or a log event looks like
//! to a Logs Insights query. Over the store, every scalar field of the record is there under its
//! Logs Insights name, plus the fields bedrock-usage derives (snake_case names a record never
//! has): `developer`, `team`, `cost_center`, `model`, `cost_usd`, `cache_write_5m_tokens`,
//! `cache_write_1h_tokens`. Over files every field of the event is there, bodies included,
//! flattened to dotted names the way CloudWatch flattens JSON events.

use std::collections::{BTreeSet, HashMap};

use crate::attribution::{Attribution, Attributor};
use crate::facts::{FactRow, FactSet, StoredInvocation};
use crate::pricing::{normalize_model_id, InputBand, ModelName, PriceCatalog};
use crate::query::{extract_fields, flatten_json, FieldSet, Row, Value};
use crate::time::{format_utc, parse_record_timestamp_ms, MS_PER_DAY};

/// Fields people reach for that Bedrock records do not have, and what they mean.
pub const HINTS: &[(&str, &str)] = &[
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
pub const STORE_FIELDS: &[&str] = &[
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

/// Fields the store's rollups keep per group, and the fields they sum: a `stats` of sums over
/// these can be answered from the rollups.
pub const ROLLUP_DIMS: &[&str] = &[
    "identity.arn",
    "modelId",
    "region",
    "operation",
    "developer",
    "team",
    "cost_center",
    "model",
];
pub const ROLLUP_SUMS: &[&str] = &[
    "input.inputTokenCount",
    "input.cacheReadInputTokenCount",
    "input.cacheWriteInputTokenCount",
    "output.outputTokenCount",
    "cost_usd",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
];

/// The log stream Bedrock writes to, as `@logStream` of stored invocations and of file lines.
pub const LOG_STREAM: &str = "aws/bedrock/modelinvocations";

/// Turns stored invocations and rollup facts into rows, attributing and pricing them (cached
/// per identity and per model).
pub struct StoreRows<'a> {
    catalog: &'a PriceCatalog,
    attributor: &'a Attributor<'a>,
    app_profiles: &'a HashMap<String, String>,
    wanted: &'a BTreeSet<String>,
    default_columns: bool,
    /// What the rows need beyond plain fields, decided once.
    need: Needs,
    attributions: HashMap<i64, Attribution>,
    models: HashMap<i64, ModelName>,
}

#[derive(Debug, Clone, Copy)]
struct Needs {
    attribution: bool,
    model: bool,
    cost: bool,
    metadata: bool,
    message: bool,
}

/// Money in a row: dollars as a query number (rows hold numbers as the language does; the sum
/// was exact up to here).
fn usd(n: crate::money::NanoUsd) -> Value {
    Value::Num(n.0 as f64 / 1e9)
}

impl<'a> StoreRows<'a> {
    /// Rows holding only the fields in `wanted` (and `@timestamp`, `@message` when the query
    /// shows its default columns).
    pub fn new(
        catalog: &'a PriceCatalog,
        attributor: &'a Attributor<'a>,
        app_profiles: &'a HashMap<String, String>,
        wanted: &'a BTreeSet<String>,
        default_columns: bool,
    ) -> StoreRows<'a> {
        let w = |n: &str| wants(wanted, default_columns, n);
        let need = Needs {
            attribution: StoreRows::need_attribution(wanted, default_columns),
            model: w("model"),
            cost: w("cost_usd"),
            metadata: wanted.iter().any(|w| w.starts_with("requestMetadata.")),
            message: w("@message"),
        };
        StoreRows {
            catalog,
            attributor,
            app_profiles,
            wanted,
            default_columns,
            need,
            attributions: HashMap::new(),
            models: HashMap::new(),
        }
    }

    pub fn wants(&self, name: &str) -> bool {
        wants(self.wanted, self.default_columns, name)
    }

    /// Whether rows for `wanted` need attribution (and so every identity of the store).
    pub fn need_attribution(wanted: &BTreeSet<String>, default_columns: bool) -> bool {
        ["developer", "team", "cost_center"]
            .iter()
            .any(|n| wants(wanted, default_columns, n))
    }

    /// One stored invocation as a row, with the size of its `@message` (0 when not shown).
    pub fn invocation(&mut self, inv: &StoredInvocation) -> (Row, usize) {
        let mut row = Row::default();
        let (wanted, default_columns) = (self.wanted, self.default_columns);
        let want = |n: &str| wants(wanted, default_columns, n);
        let mut put = |name: &str, v: &dyn Fn() -> Value| {
            if want(name) {
                row.set(name, v());
            }
        };
        let t = inv.tokens;
        put("@timestamp", &|| Value::Time(inv.timestamp_ms));
        put("@logStream", &|| Value::Str(LOG_STREAM.into()));
        put("@log", &|| {
            Value::Str(format!("{}:bedrock-usage", inv.account_id))
        });
        put("schemaType", &|| Value::Str("ModelInvocationLog".into()));
        put("schemaVersion", &|| Value::Str("1.0".into()));
        put("timestamp", &|| Value::Str(format_utc(inv.timestamp_ms)));
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
        put_tokens(&mut put, &t);
        let need = self.need;
        if need.attribution {
            let a = self
                .attributions
                .entry(inv.identity_id)
                .or_insert_with(|| self.attributor.attribute(&inv.identity));
            put_attribution(&mut put, a);
        }
        let want_cost = need.cost;
        if need.model || want_cost {
            let m = self
                .models
                .entry(inv.model_ref)
                .or_insert_with(|| normalize_model_id(&inv.model_id, self.app_profiles));
            put("model", &|| {
                Value::Str(m.key.clone().unwrap_or_else(|| inv.model_id.clone()))
            });
            if want_cost {
                let day = inv.timestamp_ms.div_euclid(MS_PER_DAY);
                if let Ok(c) =
                    self.catalog
                        .price(m, &inv.model_id, &inv.region, day, &t, InputBand::of(&t))
                {
                    put("cost_usd", &|| usd(c));
                }
            }
        }
        if need.metadata {
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
        if need.message {
            let message = message_of(inv);
            size = message.len();
            row.set("@message", Value::Str(message));
        }
        (row, size)
    }

    /// A rollup fact as a pre-aggregated row (it stands for `r.calls` calls), with the rollup
    /// fields the plan reads.
    pub fn fact(&mut self, facts: &FactSet, r: &FactRow) -> Row {
        let raw = &facts.model_ids[r.model];
        let identity = &facts.identities[r.identity];
        let t = &r.tokens;
        let mut row = Row::default();
        let (wanted, default_columns) = (self.wanted, self.default_columns);
        let want = |n: &str| wants(wanted, default_columns, n);
        let mut put = |n: &str, v: &dyn Fn() -> Value| {
            if want(n) {
                row.set(n, v());
            }
        };
        put("@timestamp", &|| Value::Time(r.bucket_ms));
        if !identity.principal.is_empty() {
            put("identity.arn", &|| Value::Str(identity.principal.clone()));
        }
        put("modelId", &|| Value::Str(raw.clone()));
        put("region", &|| Value::Str(facts.strings[r.region].clone()));
        put("operation", &|| {
            Value::Str(facts.strings[r.operation].clone())
        });
        if self.need.attribution {
            let a = self
                .attributions
                .entry(r.identity as i64)
                .or_insert_with(|| self.attributor.attribute(identity));
            put_attribution(&mut put, a);
        }
        if self.need.model || self.need.cost {
            let m = self
                .models
                .entry(r.model as i64)
                .or_insert_with(|| normalize_model_id(raw, self.app_profiles));
            put("model", &|| {
                Value::Str(m.key.clone().unwrap_or_else(|| raw.clone()))
            });
            if self.need.cost {
                let day = r.bucket_ms.div_euclid(MS_PER_DAY);
                if let Ok(c) =
                    self.catalog
                        .price(m, raw, &facts.strings[r.region], day, t, r.input_band)
                {
                    put("cost_usd", &|| usd(c));
                }
            }
        }
        put_tokens(&mut put, t);
        row
    }
}

fn wants(wanted: &BTreeSet<String>, default_columns: bool, name: &str) -> bool {
    (default_columns && (name == "@timestamp" || name == "@message")) || wanted.contains(name)
}

fn put_tokens(put: &mut dyn FnMut(&str, &dyn Fn() -> Value), t: &crate::record::Tokens) {
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
}

fn put_attribution(put: &mut dyn FnMut(&str, &dyn Fn() -> Value), a: &Attribution) {
    put("developer", &|| Value::Str(a.developer.clone()));
    if let Some(team) = &a.team {
        put("team", &|| Value::Str(team.clone()));
    }
    if let Some(cc) = &a.cost_center {
        put("cost_center", &|| Value::Str(cc.clone()));
    }
}

/// The record without its bodies, as `@message` of a stored invocation.
pub fn message_of(inv: &StoredInvocation) -> String {
    let mut m = serde_json::Map::new();
    let s = |v: &str| serde_json::Value::String(v.to_string());
    m.insert("schemaType".into(), s("ModelInvocationLog"));
    m.insert("schemaVersion".into(), s("1.0"));
    m.insert("timestamp".into(), s(&format_utc(inv.timestamp_ms)));
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

/// How a log event (the JSON of one line or one `message`) becomes a row: every field flattened
/// (`full`: for the first events, so that hints can name real fields), or only the fields the
/// query reads; `@timestamp` from the record's `timestamp`, `@message` when wanted.
pub fn event_row(
    message: &[u8],
    fields: &FieldSet,
    full: bool,
    want_message: bool,
    stream: &str,
    log: &str,
) -> Result<Row, String> {
    let mut row = Row::default();
    let full = full
        && match serde_json::from_slice::<serde_json::Value>(message) {
            Ok(v) if v.is_object() => {
                flatten_json(&v, "", &mut row);
                true
            }
            Ok(_) => return Err("not a JSON object".into()),
            // A body nested deeper than serde's limit: read the fields the query needs, as the
            // record parser does (a body's depth must not matter).
            Err(e) if e.to_string().contains("recursion limit") => false,
            Err(e) => return Err(format!("not JSON: {e}")),
        };
    if !full {
        extract_fields(message, fields, &mut row).map_err(|e| e.to_string())?;
    }
    let ts = match row.get("timestamp") {
        Value::Str(t) => parse_record_timestamp_ms(t),
        _ => None,
    };
    if let Some(t) = ts {
        row.set("@timestamp", Value::Time(t));
    }
    if want_message {
        let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
        row.set("@message", Value::Str(text.to_string()));
    }
    row.set("@logStream", Value::Str(stream.to_string()));
    row.set("@log", Value::Str(log.to_string()));
    Ok(row)
}
