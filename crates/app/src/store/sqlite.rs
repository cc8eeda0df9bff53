//! The SQLite store: one file in WAL mode, versioned migrations (`PRAGMA user_version`), facts
//! only (no bodies, no money).
//!
//! Rules kept here, pinned by the CLI tests:
//! - Exactly once: an invocation is identified by its requestId in its UTC day
//!   (`invocation_day_request` is unique), and across midnight within two hours (the writer
//!   looks the day before or after up); a record already stored is ignored, wherever and
//!   whenever it comes from (and one that differs is reported, with both places). Copies of a
//!   record carry its time, and a gateway's record and Bedrock's log of the same call are
//!   seconds apart; the same request id on days further apart is another call.
//! - Rollups change only for rows actually inserted, in the same transaction, so they always
//!   equal the sum of the stored invocations.
//! - A source's checkpoint (how far a file was read) and cursor (how far a `sync` source was
//!   read) are written in the same transaction as the rows they cover: a crash at any instant
//!   loses nothing and counts nothing twice.
//!
//! Rollups come at three grains (`rollup_q`, `rollup_h`, `rollup_d`: quarter hours, hours and
//! UTC days); which pieces of a range read which grain is decided by the core
//! (`bedrock_usage_core::rollup`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bedrock_usage_core::pricing::{InputBand, INPUT_BAND_EDGES, LONG_CONTEXT_THRESHOLD};
use bedrock_usage_core::rollup::{floor_to, pieces, Grain, Level, HOUR_MS, QUARTER_MS};
use bedrock_usage_core::time::MS_PER_DAY;
use bedrock_usage_core::{FactRow, FactSet, Identity, StoredInvocation, Tokens};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::private::{create_private_dir, make_private};

use super::{
    AlertOutbox, Batch, CheckResult, Checkpoint, FactReader, FactWriter, GatewayKey, IamTagSet,
    IamTagsRead, KeyStore, Maintenance, MetricOutbox, OutboxMessage, Position, QueuedMessage,
    Result, SourceId, StoreError, SyncState, WriteOutcome,
};

/// A rollup table of one grain (the same columns at every grain).
fn rollup_table(name: &str) -> String {
    format!(
        "CREATE TABLE {name} (
    bucket_ms INTEGER NOT NULL, identity_id INTEGER NOT NULL, model_ref INTEGER NOT NULL,
    region TEXT NOT NULL, operation TEXT NOT NULL, long_context INTEGER NOT NULL,
    calls INTEGER NOT NULL, errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL,
    PRIMARY KEY (bucket_ms, identity_id, model_ref, region, operation, long_context)
) WITHOUT ROWID;
"
    )
}

/// Migration 5: the `empty_calls` column, and every rollup rebuilt from the invocations (the one
/// exact source), quarter hours first, then hours and days from them.
fn rebuild_rollups_with_empty_calls() -> String {
    let floor = |col: &str, step: i64| {
        format!("(CASE WHEN {col} >= 0 THEN {col} / {step} * {step} ELSE (({col} + 1) / {step} - 1) * {step} END)")
    };
    let sums = "SUM(calls), SUM(errors), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(empty_calls)";
    let cols = "bucket_ms, identity_id, model_ref, region, operation, long_context, calls, errors, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, empty_calls";
    let mut sql = String::new();
    for t in ["rollup_q", "rollup_h", "rollup_d"] {
        sql.push_str(&format!(
            "ALTER TABLE {t} ADD COLUMN empty_calls INTEGER NOT NULL DEFAULT 0;\nDELETE FROM {t};\n"
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO rollup_q ({cols})
SELECT {}, identity_id, model_ref, region, operation,
       (input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens) > {LONG_CONTEXT_THRESHOLD},
       COUNT(*), SUM(error_code IS NOT NULL), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
       SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens),
       SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens = 0)
FROM invocation GROUP BY 1, 2, 3, 4, 5, 6;\n",
        floor("ts_ms", QUARTER_MS)
    ));
    for (t, step) in [("rollup_h", HOUR_MS), ("rollup_d", MS_PER_DAY)] {
        sql.push_str(&format!(
            "INSERT INTO {t} ({cols})
SELECT {}, identity_id, model_ref, region, operation, long_context, {sums}
FROM rollup_q GROUP BY 1, 2, 3, 4, 5, 6;\n",
            floor("bucket_ms", step)
        ));
    }
    sql
}

/// The input band of an invocation row, in SQL: how many of [`INPUT_BAND_EDGES`] its input
/// side is above (the same number [`InputBand::of`] gives).
fn band_sql() -> String {
    let side = "(input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens)";
    let terms: Vec<String> = INPUT_BAND_EDGES
        .iter()
        .map(|e| format!("({side} > {e})"))
        .collect();
    format!("({})", terms.join(" + "))
}

/// Migration 12: rollups keep calls apart by input band (every tier threshold a price list
/// uses) instead of one long-context flag, rebuilt from the invocations.
fn rebuild_rollups_by_input_band() -> String {
    let floor = |col: &str, step: i64| {
        format!("(CASE WHEN {col} >= 0 THEN {col} / {step} * {step} ELSE (({col} + 1) / {step} - 1) * {step} END)")
    };
    let sums = "SUM(calls), SUM(errors), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(empty_calls)";
    let cols = "bucket_ms, identity_id, model_ref, region, operation, input_band, calls, errors, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, empty_calls";
    let mut sql = String::new();
    for t in ["rollup_q", "rollup_h", "rollup_d"] {
        sql.push_str(&format!(
            "ALTER TABLE {t} RENAME COLUMN long_context TO input_band;\nDELETE FROM {t};\n"
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO rollup_q ({cols})
SELECT {}, identity_id, model_ref, region, operation, {},
       COUNT(*), SUM(error_code IS NOT NULL), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
       SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens),
       SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens = 0)
FROM invocation GROUP BY 1, 2, 3, 4, 5, 6;\n",
        floor("ts_ms", QUARTER_MS),
        band_sql()
    ));
    for (t, step) in [("rollup_h", HOUR_MS), ("rollup_d", MS_PER_DAY)] {
        sql.push_str(&format!(
            "INSERT INTO {t} ({cols})
SELECT {}, identity_id, model_ref, region, operation, input_band, {sums}
FROM rollup_q GROUP BY 1, 2, 3, 4, 5, 6;\n",
            floor("bucket_ms", step)
        ));
    }
    sql
}

fn rollup_name(g: Grain) -> &'static str {
    match g {
        Grain::Quarter => "rollup_q",
        Grain::Hour => "rollup_h",
        Grain::Day => "rollup_d",
    }
}

/// The facts of an invocation, the columns of its table in every schema.
const INVOCATION_FACTS: &str = "    ts_ms INTEGER NOT NULL,\n    identity_id INTEGER NOT NULL REFERENCES identity(id),\n    model_ref INTEGER NOT NULL REFERENCES model(id),\n    account_id TEXT NOT NULL,\n    region TEXT NOT NULL,\n    inference_region TEXT,\n    operation TEXT NOT NULL,\n    error_code TEXT,\n    input_tokens INTEGER NOT NULL,\n    output_tokens INTEGER NOT NULL,\n    cache_read_tokens INTEGER NOT NULL,\n    cache_write_5m_tokens INTEGER NOT NULL,\n    cache_write_1h_tokens INTEGER NOT NULL,\n    request_metadata TEXT";

/// A call's UTC day in SQL, as the unique index on (day, request id) names it; [`day_of`] is the
/// same number in Rust (both divide truncating).
const DAY_SQL: &str = "ts_ms / 86400000";

fn day_of(ts_ms: i64) -> i64 {
    ts_ms / MS_PER_DAY
}

/// How far apart two records of one call can be across midnight and still be found the same
/// (a gateway's record and Bedrock's log of a call are seconds apart; no call lasts an hour).
const ACROSS_MIDNIGHT_MS: i64 = 2 * HOUR_MS;

/// The days besides its own where a record's call may be stored already: the day before in
/// the first two hours of a day, the day after in the last two (none for most records).
fn days_beside(ts_ms: i64) -> (Option<i64>, Option<i64>) {
    let (day, into) = (day_of(ts_ms), ts_ms - day_of(ts_ms) * MS_PER_DAY);
    (
        (into.abs() < ACROSS_MIDNIGHT_MS).then_some(day - 1),
        (into.abs() > MS_PER_DAY - ACROSS_MIDNIGHT_MS).then_some(day + 1),
    )
}

/// The migrations, in order: version N is the schema after the first N.
fn migrations() -> [String; 14] {
    [
        // 1: the first schema.
        format!(
            r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identity (
    id INTEGER PRIMARY KEY,
    principal TEXT NOT NULL,
    signal_key TEXT NOT NULL DEFAULT '',
    signal TEXT NOT NULL DEFAULT '',
    UNIQUE (principal, signal_key, signal)
);
CREATE TABLE model (id INTEGER PRIMARY KEY, model_id TEXT NOT NULL UNIQUE);
CREATE TABLE invocation (
    request_id TEXT PRIMARY KEY,
{INVOCATION_FACTS}
) WITHOUT ROWID;
CREATE INDEX invocation_ts ON invocation (ts_ms);
{}{}CREATE TABLE source (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    fingerprint_len INTEGER NOT NULL,
    size INTEGER NOT NULL,
    gzip INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    records INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
"#,
            rollup_table("rollup_q"),
            rollup_table("rollup_d")
        ),
        // 2: hourly rollups, so that local days of whole-hour zones need not read quarter hours.
        format!(
            r#"{}
INSERT INTO rollup_h
SELECT bucket_ms / 3600000 * 3600000, identity_id, model_ref, region, operation, long_context,
       SUM(calls), SUM(errors), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
       SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens)
FROM rollup_q GROUP BY 1, 2, 3, 4, 5, 6;
"#,
            rollup_table("rollup_h")
        ),
        // 3: `sync` cursors (how far each AWS source was read) and the records whose CloudWatch
        // metrics are still to be published.
        r#"
CREATE TABLE sync_cursor (key TEXT PRIMARY KEY, value INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE metric_pending (request_id TEXT PRIMARY KEY) WITHOUT ROWID;
"#
        .to_string(),
        // 4: tags of the IAM users and roles seen in the logs (`attribution.iam_tags`), a JSON
        // object per entity, with when they were read.
        r#"
CREATE TABLE iam_tags (entity TEXT PRIMARY KEY, tags TEXT NOT NULL, read_ms INTEGER NOT NULL);
"#
        .to_string(),
        // 5: rollups count the calls with no tokens at all (never unpriced), rebuilt from the
        // stored invocations.
        rebuild_rollups_with_empty_calls(),
        // 6: what tells a changed file for sure: inode, modification time, a hash of what was
        // read last, and whether it was a whole document.
        r#"
ALTER TABLE source ADD COLUMN inode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE source ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE source ADD COLUMN tail TEXT NOT NULL DEFAULT '';
ALTER TABLE source ADD COLUMN document INTEGER NOT NULL DEFAULT 0;
"#
        .to_string(),
        // 7: a CloudWatch cursor inside a window: the window's end and the next page's token.
        r#"
ALTER TABLE sync_cursor ADD COLUMN window_end INTEGER;
ALTER TABLE sync_cursor ADD COLUMN token TEXT;
"#
        .to_string(),
        // 8: where each invocation was read from (files, objects, log groups), named once.
        r#"
CREATE TABLE origin (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
ALTER TABLE invocation ADD COLUMN origin_id INTEGER;
"#
        .to_string(),
        // 9: invocations in a rowid table (new rows append) with a unique index on the request
        // id, instead of a table clustered by request id: an insert touches a small index page,
        // not a page of whole rows, so a large store is written nearly as fast as a new one.
        format!(
            r#"
CREATE TABLE invocation_rows (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
{INVOCATION_FACTS},
    origin_id INTEGER
);
INSERT INTO invocation_rows (request_id, ts_ms, identity_id, model_ref, account_id, region, inference_region, operation, error_code,
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, request_metadata, origin_id)
SELECT request_id, ts_ms, identity_id, model_ref, account_id, region, inference_region, operation, error_code,
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, request_metadata, origin_id
FROM invocation ORDER BY ts_ms;
DROP TABLE invocation;
ALTER TABLE invocation_rows RENAME TO invocation;
CREATE INDEX invocation_ts ON invocation (ts_ms);
"#
        ),
        // 10: the gateway's keys: a hash of each secret (never the secret), who it names, and
        // when it expires or was revoked.
        r#"
CREATE TABLE gateway_key (
    id TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL,
    developer TEXT NOT NULL,
    team TEXT,
    label TEXT,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER
);
"#
        .to_string(),
        // 11: the alert outbox: one row per (alert key, channel), written once when the alert
        // falls due, marked sent when the channel took it.
        r#"
CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    last_error TEXT,
    UNIQUE (key, channel)
);
CREATE INDEX alert_outbox_unsent ON alert_outbox (next_ms) WHERE sent_ms IS NULL;
"#
        .to_string(),
        // 12: rollups by input band (tiers at 100k, 128k, 200k, ... input-side tokens), not by
        // one 200k long-context flag, rebuilt from the invocations.
        rebuild_rollups_by_input_band(),
        // 13: a name for this store, which its column segments carry (segments of another
        // store at the same path are never read).
        r#"
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_uid', lower(hex(randomblob(16))));
"#
        .to_string(),
        // 14: a call's request id is unique within its UTC day (`invocation_day_request`), not
        // across the whole table: a batch of calls of a few hours writes a few pages of the
        // index instead of nearly every page of a global one (its keys are random), and the
        // writer looks the day before and after up itself. The calls keep their ids (column
        // segments name them), and calls waiting for metrics are named by id too.
        format!(
            r#"
CREATE TABLE invocation_day (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
{INVOCATION_FACTS},
    origin_id INTEGER
);
INSERT INTO invocation_day (id, request_id, ts_ms, identity_id, model_ref, account_id, region, inference_region, operation, error_code,
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, request_metadata, origin_id)
SELECT id, request_id, ts_ms, identity_id, model_ref, account_id, region, inference_region, operation, error_code,
    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, request_metadata, origin_id
FROM invocation ORDER BY id;
CREATE TABLE metric_pending_id (request_id TEXT PRIMARY KEY, call_id INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO metric_pending_id (request_id, call_id)
SELECT p.request_id, i.id FROM metric_pending p JOIN invocation i ON i.request_id = p.request_id;
DROP TABLE metric_pending;
ALTER TABLE metric_pending_id RENAME TO metric_pending;
DROP TABLE invocation;
ALTER TABLE invocation_day RENAME TO invocation;
CREATE UNIQUE INDEX invocation_day_request ON invocation ({DAY_SQL}, request_id);
CREATE INDEX invocation_ts ON invocation (ts_ms);
"#
        ),
    ]
}

/// Ordered as the rollup tables' primary key, so a batch's upserts walk each B-tree in order.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
struct RollupKey {
    bucket_ms: i64,
    identity: i64,
    model: i64,
    region: String,
    operation: String,
    input_band: InputBand,
}

#[derive(Default, Clone, Copy)]
struct RollupDelta {
    calls: u64,
    errors: u64,
    /// Calls with no tokens at all.
    empty_calls: u64,
    tokens: Tokens,
}

pub struct SqliteStore {
    conn: Connection,
    /// The file, for messages.
    path: std::path::PathBuf,
    /// Newly inserted records are queued for CloudWatch metrics (`sync --publish-metrics`).
    track_metrics: bool,
    /// `principal \0 key \0 signal` -> identity id.
    identities: HashMap<String, i64>,
    key_buf: String,
    models: HashMap<String, i64>,
    origins: HashMap<String, i64>,
}

impl SqliteStore {
    /// Every identity with its id, in id order.
    fn read_model_ids(&self) -> Result<HashMap<i64, String>> {
        let mut st = self.conn.prepare("SELECT id, model_id FROM model")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn read_identities(&self) -> Result<Vec<(i64, Identity)>> {
        let mut st = self
            .conn
            .prepare("SELECT id, principal, signal_key, signal FROM identity ORDER BY id")?;
        let rows = st.query_map([], |r| {
            let key: String = r.get(2)?;
            Ok((
                r.get(0)?,
                Identity {
                    principal: r.get(1)?,
                    signal: if key.is_empty() {
                        None
                    } else {
                        Some((key, r.get(3)?))
                    },
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Opens the store for reading and writing, creating it (directory 0700, file 0600: it holds
    /// ARNs, e-mail addresses and request metadata) and bringing its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let fresh = !path.exists();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if fresh {
            make_private(path);
        }
        let prepare = |conn: &Connection| -> Result<()> {
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            set_wal(conn)?;
            // WAL + NORMAL: a committed transaction survives a killed process; on power loss
            // only the last few commits can roll back, and their checkpoints with them.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Not enforced per insert (two parent lookups a call): the writer takes identity
            // and model ids from those tables itself, and `store check` runs
            // `foreign_key_check`.
            conn.pragma_update(None, "foreign_keys", "OFF")?;
            // A checkpoint every 32 MB of WAL, not every 4 MB: fewer syncs, and a page written
            // by several batches is copied back once.
            conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
            conn.pragma_update(None, "cache_size", -65536)?;
            Ok(())
        };
        prepare(&conn).map_err(|e| prepare_error(path, e))?;
        tracing::debug!(store = %path.display(), "Opened the store");
        let mut store = SqliteStore::with(conn, path);
        store.migrate().map_err(|e| prepare_error(path, e))?;
        Ok(store)
    }

    /// Opens an existing store for reading only: no write lock is taken, so a report never waits
    /// behind an ingest (WAL lets readers go on while one process writes), and a store the user
    /// may only read can be reported on. A store at an older schema is upgraded first.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let version = (|| -> Result<i64> {
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            conn.pragma_update(None, "cache_size", -65536)?;
            let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if v == 0 {
                refuse_foreign(&conn, path)?;
            }
            Ok(v)
        })()
        .map_err(|e| prepare_error(path, e))?;
        let known = migrations().len() as i64;
        if version < known {
            drop(conn);
            SqliteStore::open(path)?;
            return SqliteStore::open_read_only(path);
        }
        if version > known {
            return Err(prepare_error(
                path,
                StoreError::Newer {
                    found: version,
                    known: known as usize,
                },
            ));
        }
        Ok(SqliteStore::with(conn, path))
    }

    fn with(conn: Connection, path: &Path) -> SqliteStore {
        SqliteStore {
            conn,
            path: path.to_path_buf(),
            track_metrics: false,
            identities: HashMap::new(),
            key_buf: String::new(),
            models: HashMap::new(),
            origins: HashMap::new(),
        }
    }

    /// Brings the schema up to date. The version is read and the migrations applied in one
    /// IMMEDIATE transaction, so two processes opening a new store at once migrate it once.
    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let migrations = migrations();
        if version as usize > migrations.len() {
            return Err(StoreError::Newer {
                found: version,
                known: migrations.len(),
            });
        }
        if version == 0 {
            refuse_foreign(&tx, &self.path)?;
        }
        for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn write_inner(&mut self, batch: &Batch, metadata_keys: &[String]) -> Result<WriteOutcome> {
        let Batch {
            records,
            origins,
            checkpoints,
            cursors,
        } = *batch;
        // IMMEDIATE: take the write lock first (waiting on another writer), never upgrade later.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = WriteOutcome::default();
        let mut quarter: BTreeMap<RollupKey, RollupDelta> = BTreeMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO invocation (request_id, ts_ms, identity_id, model_ref, account_id, region, inference_region, operation, error_code, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, request_metadata, origin_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            // The same call in the day before or after, near midnight ([`days_beside`]: a
            // gateway's record and Bedrock's log of it can fall either side); the same day is
            // the unique index's.
            let mut beside = tx.prepare_cached(&format!(
                "SELECT 1 FROM invocation WHERE {DAY_SQL} IN (?1, ?2) AND request_id = ?3"
            ))?;
            // In key order (day, request id), B-tree inserts touch each page once instead of
            // hopping around.
            let mut order: Vec<(usize, &bedrock_usage_core::Invocation)> =
                records.iter().enumerate().collect();
            order.sort_unstable_by(|a, b| {
                (day_of(a.1.timestamp_ms), &a.1.request_id)
                    .cmp(&(day_of(b.1.timestamp_ms), &b.1.request_id))
            });
            for (ix, inv) in order {
                let (sk, sv) = inv.metadata_signal(metadata_keys).unwrap_or(("", ""));
                let identity = identity_id(
                    &tx,
                    &mut self.identities,
                    &mut self.key_buf,
                    &inv.principal,
                    sk,
                    sv,
                )?;
                let model = model_ref(&tx, &mut self.models, &inv.model_id)?;
                let origin = match origins.get(ix) {
                    Some(name) => Some(origin_id(&tx, &mut self.origins, name)?),
                    None => None,
                };
                let t = &inv.tokens;
                let metadata = if inv.request_metadata.is_empty() {
                    None
                } else {
                    let map: serde_json::Map<String, serde_json::Value> = inv
                        .request_metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect();
                    Some(serde_json::Value::Object(map).to_string())
                };
                let elsewhere = match days_beside(inv.timestamp_ms) {
                    (None, None) => false,
                    (before, after) => beside.exists(params![before, after, inv.request_id])?,
                };
                let n = if elsewhere {
                    0
                } else {
                    insert.execute(params![
                        inv.request_id,
                        inv.timestamp_ms,
                        identity,
                        model,
                        inv.account_id,
                        inv.region,
                        inv.inference_region,
                        inv.operation,
                        inv.error_code,
                        t.input as i64,
                        t.output as i64,
                        t.cache_read as i64,
                        t.cache_write_5m as i64,
                        t.cache_write_1h as i64,
                        metadata,
                        origin,
                    ])?
                };
                if n == 0 {
                    out.duplicates += 1;
                    let origin_name = origins.get(ix).copied().unwrap_or("");
                    if let Some(what) = differs(&tx, inv, origin_name, identity, model)? {
                        out.conflicts.push((ix, what));
                    }
                    continue;
                }
                out.inserted += 1;
                if self.track_metrics {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO metric_pending (request_id, call_id) VALUES (?1, ?2)",
                    )?
                    .execute(params![&inv.request_id, tx.last_insert_rowid()])?;
                }
                let key = RollupKey {
                    bucket_ms: inv.timestamp_ms.div_euclid(QUARTER_MS) * QUARTER_MS,
                    identity,
                    model,
                    region: inv.region.clone(),
                    operation: inv.operation.clone(),
                    input_band: InputBand::of(t),
                };
                let d = quarter.entry(key).or_default();
                d.calls += 1;
                d.errors += inv.error_code.is_some() as u64;
                d.empty_calls += (t.total() == 0) as u64;
                d.tokens.add(t);
            }
        }
        let hourly = coarsen(&quarter, HOUR_MS);
        let daily = coarsen(&hourly, MS_PER_DAY);
        upsert_rollup(&tx, rollup_name(Grain::Quarter), &quarter)?;
        upsert_rollup(&tx, rollup_name(Grain::Hour), &hourly)?;
        upsert_rollup(&tx, rollup_name(Grain::Day), &daily)?;
        let now = crate::context::now_ms();
        let mut upsert_source = tx.prepare_cached(
            "INSERT INTO source (path, fingerprint, fingerprint_len, size, gzip, offset, lines, complete, records, updated_ms, inode, mtime_ns, tail, document) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (path) DO UPDATE SET fingerprint = excluded.fingerprint, fingerprint_len = excluded.fingerprint_len, size = excluded.size, gzip = excluded.gzip, offset = excluded.offset, lines = excluded.lines, complete = excluded.complete, records = excluded.records, updated_ms = excluded.updated_ms, inode = excluded.inode, mtime_ns = excluded.mtime_ns, tail = excluded.tail, document = excluded.document",
        )?;
        for c in checkpoints {
            upsert_source.execute(params![
                c.path,
                c.fingerprint,
                c.fingerprint_len as i64,
                c.size as i64,
                c.gzip,
                c.offset as i64,
                c.lines as i64,
                c.complete,
                c.records as i64,
                now,
                c.inode as i64,
                c.mtime_ns,
                c.tail,
                c.document
            ])?;
        }
        drop(upsert_source);
        for c in cursors {
            let (window_end, token) = match &c.position {
                Position::Page { to, token, .. } => (Some(*to), Some(token.as_str())),
                _ => (None, None),
            };
            tx.prepare_cached(
                "INSERT INTO sync_cursor (key, value, updated_ms, window_end, token) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms,
                   window_end = excluded.window_end, token = excluded.token",
            )?
            .execute(params![c.source.key(), c.position.value(), now, window_end, token])?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// The one integer a query returns.
    fn count(&self, sql: &str) -> Result<u64> {
        Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
    }
}

impl FactWriter for SqliteStore {
    fn put_iam_tags(&mut self, tags: &[(String, IamTagSet)], read_ms: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO iam_tags (entity, tags, read_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (entity) DO UPDATE SET tags = excluded.tags, read_ms = excluded.read_ms",
            )?;
            for (entity, set) in tags {
                let json = serde_json::to_string(set).unwrap_or_else(|_| "{}".into());
                st.execute(params![entity, json, read_ms])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn checkpoint(&self, path: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT path, fingerprint, fingerprint_len, size, gzip, offset, lines, complete, records, inode, mtime_ns, tail, document FROM source WHERE path = ?1",
            )?
            .query_row(
                [path],
                |r| {
                    Ok(Checkpoint {
                        path: r.get(0)?,
                        fingerprint: r.get(1)?,
                        fingerprint_len: r.get::<_, i64>(2)? as u64,
                        size: r.get::<_, i64>(3)? as u64,
                        gzip: r.get(4)?,
                        offset: r.get::<_, i64>(5)? as u64,
                        lines: r.get::<_, i64>(6)? as u64,
                        complete: r.get(7)?,
                        records: r.get::<_, i64>(8)? as u64,
                        inode: r.get::<_, i64>(9)? as u64,
                        mtime_ns: r.get(10)?,
                        tail: r.get(11)?,
                        document: r.get(12)?,
                    })
                },
            )
            .optional()?)
    }

    fn write(&mut self, batch: &Batch, metadata_keys: &[String]) -> Result<WriteOutcome> {
        let result = self.write_inner(batch, metadata_keys);
        if result.is_err() {
            // Ids handed out inside a rolled-back transaction must not be reused.
            self.identities.clear();
            self.models.clear();
            self.origins.clear();
        }
        result.map_err(|e| StoreError::Write {
            path: self.path.clone(),
            hint: hint_for(&e),
            source: Box::new(e),
        })
    }

    /// Sources (`path` keys) starting with `prefix` that were read completely, with their
    /// fingerprints.
    fn complete_sources(&self, prefix: &str) -> Result<HashMap<String, String>> {
        let mut st = self.conn.prepare(
            "SELECT path, fingerprint FROM source WHERE complete = 1 AND substr(path, 1, length(?1)) = ?1",
        )?;
        let rows = st.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn cursor(&self, source: &SourceId) -> Result<Option<Position>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value, window_end, token FROM sync_cursor WHERE key = ?1")?
            .query_row([source.key()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?
            .map(|(v, end, token)| source.position(v, end.zip(token))))
    }

    /// Queue newly inserted records for CloudWatch metrics from now on.
    fn set_track_metrics(&mut self, on: bool) {
        self.track_metrics = on;
    }
}

impl FactReader for SqliteStore {
    fn iam_tags(&self) -> Result<IamTagsRead> {
        let mut st = self
            .conn
            .prepare("SELECT entity, tags, read_ms FROM iam_tags")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = IamTagsRead::default();
        for row in rows {
            let (entity, json, read_ms) = row?;
            let set: IamTagSet = serde_json::from_str(&json).unwrap_or_default();
            out.read_ms.insert(entity.clone(), read_ms);
            out.tags.insert(entity, set);
        }
        Ok(out)
    }

    /// The first and last instants with data (bucket starts of the daily rollup), if any.
    fn time_range(&self) -> Result<Option<(i64, i64)>> {
        let r: (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT MIN(bucket_ms), MAX(bucket_ms) FROM rollup_d",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(r.0.zip(r.1.map(|m| m + MS_PER_DAY)))
    }

    /// Facts in `[since, until)` (epoch ms), from the coarsest rollup that is exact for them:
    /// at most `grain` in the middle, finer grains toward the edges, raw rows for the partial
    /// quarter hours at the very edges.
    fn facts(&self, since: Option<i64>, until: Option<i64>, grain: Grain) -> Result<FactSet> {
        let mut set = FactSet::default();
        let mut identity_index = HashMap::new();
        for (id, identity) in self.read_identities()? {
            identity_index.insert(id, set.identities.len());
            set.identities.push(identity);
        }
        let mut model_index = HashMap::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT id, model_id FROM model ORDER BY id")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                model_index.insert(r.get::<_, i64>(0)?, set.model_ids.len());
                set.model_ids.push(r.get(1)?);
            }
        }
        let mut strings: HashMap<String, usize> = HashMap::new();
        for (level, a, b) in pieces(since, until, grain) {
            let sql = if let Level::Raw = level {
                format!(
                    "SELECT ts_ms, identity_id, model_ref, region, operation, {},
                        1, error_code IS NOT NULL, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                        (input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens) = 0
                 FROM invocation WHERE ts_ms >= ?1 AND ts_ms < ?2",
                    band_sql()
                )
            } else {
                let table = match level {
                    Level::Rollup(g) => rollup_name(g),
                    Level::Raw => "invocation",
                };
                format!(
                    "SELECT bucket_ms, identity_id, model_ref, region, operation, input_band, calls, errors,
                            input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                            empty_calls
                     FROM {table} WHERE bucket_ms >= ?1 AND bucket_ms < ?2"
                )
            };
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query(params![a, b])?;
            while let Some(r) = rows.next()? {
                let region = intern(&mut strings, &mut set.strings, r.get_ref(3)?.as_str()?);
                let operation = intern(&mut strings, &mut set.strings, r.get_ref(4)?.as_str()?);
                let identity = *identity_index.get(&r.get::<_, i64>(1)?).ok_or_else(|| {
                    StoreError::Inconsistent(
                        "a fact names an identity the store does not have".into(),
                    )
                })?;
                let model = *model_index.get(&r.get::<_, i64>(2)?).ok_or_else(|| {
                    StoreError::Inconsistent("a fact names a model the store does not have".into())
                })?;
                set.rows.push(FactRow {
                    bucket_ms: r.get(0)?,
                    identity,
                    model,
                    region,
                    operation,
                    input_band: InputBand::from_stored(r.get(5)?),
                    calls: r.get::<_, i64>(6)? as u64,
                    errors: r.get::<_, i64>(7)? as u64,
                    empty_calls: r.get::<_, i64>(13)? as u64,
                    tokens: Tokens {
                        input: r.get::<_, i64>(8)? as u64,
                        output: r.get::<_, i64>(9)? as u64,
                        cache_read: r.get::<_, i64>(10)? as u64,
                        cache_write_5m: r.get::<_, i64>(11)? as u64,
                        cache_write_1h: r.get::<_, i64>(12)? as u64,
                    },
                });
            }
        }
        Ok(set)
    }

    /// Calls `f` for each stored invocation in `[since, until)`, in the order they were stored
    /// (id order), with its identity and model resolved (for queries over the store).
    /// `f` returns false to stop early.
    fn scan_invocations(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        f: &mut dyn FnMut(StoredInvocation) -> bool,
    ) -> Result<()> {
        let mut lookup = CallLookup::read(self)?;
        // Most of the store wanted: read the table in its own order, not through the time index
        // (which costs a seek into the table for every row).
        let most = match (since, until, self.time_range()?) {
            (None, None, _) | (_, _, None) => true,
            (s, u, Some((first, last))) => {
                let (lo, hi) = (
                    s.unwrap_or(first).max(first),
                    u.unwrap_or(i64::MAX).min(last + 1),
                );
                hi.saturating_sub(lo).saturating_mul(2) > (last + 1 - first)
            }
        };
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALL_COLUMNS} FROM invocation i {} WHERE i.ts_ms >= ?1 AND i.ts_ms < ?2{}",
            if most { "NOT INDEXED" } else { "" },
            // The table's own order is the ids'; through the index, sort them back to it.
            if most { "" } else { " ORDER BY i.id" }
        ))?;
        let mut rows = st.query(params![
            since.unwrap_or(i64::MIN),
            until.unwrap_or(i64::MAX)
        ])?;
        while let Some(r) = rows.next()? {
            if !f(lookup.call(self, r)?) {
                break;
            }
        }
        Ok(())
    }

    /// Every identity in the store (for attribution, which needs them all to tell shared
    /// principals).
    fn identities(&self) -> Result<Vec<Identity>> {
        Ok(self
            .read_identities()?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
    }

    /// The newest stored invocation's time (epoch ms).
    fn newest_ms(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT MAX(ts_ms) FROM invocation", [], |r| r.get(0))?)
    }

    fn store_uid(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'store_uid'", [], |r| {
                r.get(0)
            })?)
    }

    /// Calls per UTC day (from the daily rollups, which every stored call is in).
    fn calls_per_day(&self) -> Result<Vec<(i64, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT bucket_ms, SUM(calls) FROM rollup_d GROUP BY bucket_ms ORDER BY bucket_ms",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_call_id(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM invocation", [], |r| {
                r.get(0)
            })?)
    }

    /// Stored calls in `[since, until)` with ids in `(after, up_to]`, in id order, with their
    /// ids. `by_id`: read the ids' range of the table (few calls since `after`), else the day
    /// through the time index. `resolve`: with their identities and model ids (else only their
    /// store ids).
    fn scan_calls(
        &self,
        since: i64,
        until: i64,
        ids: (i64, i64),
        by_id: bool,
        resolve: bool,
        f: &mut dyn FnMut(i64, StoredInvocation) -> bool,
    ) -> Result<()> {
        let mut lookup = if resolve {
            Some(CallLookup::read(self)?)
        } else {
            None
        };
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS}, i.id FROM invocation i {} WHERE i.ts_ms >= ?1 AND i.ts_ms < ?2 AND i.id > ?3 AND i.id <= ?4 ORDER BY i.id",
            if by_id { "NOT INDEXED" } else { "INDEXED BY invocation_ts" }
        ))?;
        let mut rows = st.query(params![since, until, ids.0, ids.1])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(15)?;
            let call = match &mut lookup {
                Some(l) => l.call(self, r)?,
                None => call_of(r, Identity::default(), String::new())?,
            };
            if !f(id, call) {
                break;
            }
        }
        Ok(())
    }

    fn lookups(&self) -> Result<bedrock_usage_core::query::columnar::Lookups> {
        Ok(bedrock_usage_core::query::columnar::Lookups {
            identities: self.read_identities()?.into_iter().collect(),
            models: self.read_model_ids()?,
        })
    }

    fn invocation_count(&self) -> Result<u64> {
        self.count("SELECT COALESCE(SUM(calls), 0) FROM rollup_d")
    }

    fn known_request_ids(
        &self,
        request_ids: &[(String, i64)],
    ) -> Result<std::collections::HashSet<String>> {
        let mut found = std::collections::HashSet::new();
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT 1 FROM invocation WHERE {DAY_SQL} IN (?2, ?3, ?4) AND request_id = ?1"
        ))?;
        for (id, near_ms) in request_ids {
            let day = day_of(*near_ms);
            if st.exists(params![id, day - 1, day, day + 1])? {
                found.insert(id.clone());
            }
        }
        Ok(found)
    }

    fn cursors(&self) -> Result<Vec<SyncState>> {
        let mut st = self.conn.prepare(
            "SELECT key, value, updated_ms, window_end, token FROM sync_cursor ORDER BY key",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value, updated_ms, end, token) = row?;
            // A key this version does not know (written by a newer one) is left alone.
            if let Some(source) = SourceId::from_key(&key) {
                out.push(SyncState {
                    position: source.position(value, end.zip(token)),
                    source,
                    updated_ms,
                });
            }
        }
        Ok(out)
    }

    /// Every stored invocation with its identity facts, ordered by request id: what the store
    /// holds, for golden tests and debugging.
    fn dump(&self) -> Result<Vec<serde_json::Value>> {
        let mut st = self.conn.prepare(
            "SELECT i.request_id, i.ts_ms, d.principal, d.signal_key, d.signal, m.model_id, i.account_id, i.region, i.inference_region,
                    i.operation, i.error_code, i.input_tokens, i.output_tokens, i.cache_read_tokens, i.cache_write_5m_tokens,
                    i.cache_write_1h_tokens, i.request_metadata
             FROM invocation i JOIN identity d ON d.id = i.identity_id JOIN model m ON m.id = i.model_ref ORDER BY i.request_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(serde_json::json!({
                "request_id": r.get::<_, String>(0)?,
                "timestamp": bedrock_usage_core::time::format_utc(r.get(1)?),
                "principal": r.get::<_, String>(2)?,
                "signal": format!("{}={}", r.get::<_, String>(3)?, r.get::<_, String>(4)?),
                "model_id": r.get::<_, String>(5)?,
                "account_id": r.get::<_, String>(6)?,
                "region": r.get::<_, String>(7)?,
                "inference_region": r.get::<_, Option<String>>(8)?,
                "operation": r.get::<_, String>(9)?,
                "error_code": r.get::<_, Option<String>>(10)?,
                "tokens": [r.get::<_, i64>(11)?, r.get::<_, i64>(12)?, r.get::<_, i64>(13)?, r.get::<_, i64>(14)?, r.get::<_, i64>(15)?],
                "request_metadata": r.get::<_, Option<String>>(16)?,
            }))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl KeyStore for SqliteStore {
    fn add_key(&mut self, k: &GatewayKey) -> Result<()> {
        self.conn.execute(
            "INSERT INTO gateway_key (id, secret_sha256, developer, team, label, created_ms, expires_ms, revoked_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                k.id,
                &k.secret_sha256[..],
                k.developer,
                k.team,
                k.label,
                k.created_ms,
                k.expires_ms,
                k.revoked_ms
            ],
        )?;
        Ok(())
    }

    fn keys(&self) -> Result<Vec<GatewayKey>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, secret_sha256, developer, team, label, created_ms, expires_ms, revoked_ms FROM gateway_key ORDER BY created_ms, id",
        )?;
        let rows = st.query_map([], |r| {
            let hash: Vec<u8> = r.get(1)?;
            let mut secret_sha256 = [0u8; 32];
            if hash.len() == 32 {
                secret_sha256.copy_from_slice(&hash);
            }
            Ok(GatewayKey {
                id: r.get(0)?,
                secret_sha256,
                developer: r.get(2)?,
                team: r.get(3)?,
                label: r.get(4)?,
                created_ms: r.get(5)?,
                expires_ms: r.get(6)?,
                revoked_ms: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revoke_key(&mut self, id: &str, at_ms: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE gateway_key SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
            params![id, at_ms],
        )?;
        Ok(n > 0)
    }
}

impl AlertOutbox for SqliteStore {
    fn enqueue(&mut self, msgs: &[OutboxMessage]) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut added = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO alert_outbox (key, channel, body, created_ms, next_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
            )?;
            for m in msgs {
                added += st.execute(params![m.key, m.channel, m.body, m.created_ms])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn outbox(&self, unsent_due_by: Option<i64>) -> Result<Vec<QueuedMessage>> {
        let sql = if unsent_due_by.is_some() {
            "SELECT id, key, channel, body, created_ms, attempts, next_ms, sent_ms, last_error FROM alert_outbox WHERE sent_ms IS NULL AND next_ms <= ?1 ORDER BY id"
        } else {
            "SELECT id, key, channel, body, created_ms, attempts, next_ms, sent_ms, last_error FROM alert_outbox WHERE ?1 IS NULL ORDER BY id"
        };
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(params![unsent_due_by], |r| {
            Ok(QueuedMessage {
                id: r.get(0)?,
                key: r.get(1)?,
                channel: r.get(2)?,
                body: r.get(3)?,
                created_ms: r.get(4)?,
                attempts: r.get(5)?,
                next_ms: r.get(6)?,
                sent_ms: r.get(7)?,
                last_error: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn mark_sent(&mut self, id: i64, at_ms: i64, attempts: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE alert_outbox SET sent_ms = ?2, attempts = ?3, last_error = NULL WHERE id = ?1",
            params![id, at_ms, attempts],
        )?;
        Ok(())
    }

    fn mark_failed(&mut self, id: i64, error: &str, next_ms: i64, attempts: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE alert_outbox SET attempts = ?4, last_error = ?2, next_ms = ?3 WHERE id = ?1",
            params![id, error, next_ms, attempts],
        )?;
        Ok(())
    }
}

impl Maintenance for SqliteStore {
    fn check(&self, full: bool) -> Result<Vec<CheckResult>> {
        let mut out = Vec::new();
        let pragma = if full {
            "integrity_check"
        } else {
            "quick_check"
        };
        let mut st = self.conn.prepare(&format!("PRAGMA {pragma}"))?;
        let problems: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        let fine = problems.len() == 1 && problems[0] == "ok";
        out.push(CheckResult {
            name: format!("database ({pragma})"),
            ok: fine,
            detail: if fine {
                "ok".into()
            } else {
                problems
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        });
        // Every call names an identity and a model that exist (the writer does not have SQLite
        // check it per insert); a pass over every call, so with `--full`.
        if full {
            check_references(&self.conn, &mut out)?;
        }
        let sums = "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_5m_tokens), 0), COALESCE(SUM(cache_write_1h_tokens), 0)";
        let row = |sql: &str| -> Result<[i64; 7]> {
            Ok(self.conn.query_row(sql, [], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ])
            })?)
        };
        let rows = row(&format!(
            "SELECT COUNT(*), COALESCE(SUM(error_code IS NOT NULL), 0), {sums} FROM invocation"
        ))?;
        for g in Grain::ALL {
            let t = rollup_name(g);
            let r = row(&format!(
                "SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(errors), 0), {sums} FROM {t}"
            ))?;
            out.push(CheckResult {
                name: format!("rollups {t}"),
                ok: r == rows,
                detail: if r == rows {
                    format!("equal to the {} stored invocations", rows[0])
                } else {
                    format!("sums differ from the invocations (calls {} vs {}): the store was damaged or copied mid-write; restore a backup", r[0], rows[0])
                },
            });
        }
        Ok(out)
    }

    fn backup(&self, to: &Path) -> Result<()> {
        // VACUUM INTO reads one consistent snapshot (a read transaction: writers go on) and
        // writes a compact new database.
        self.conn
            .execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map(|_| ())
            .map_err(|e| StoreError::Write {
                path: to.to_path_buf(),
                hint: "",
                source: Box::new(StoreError::Sqlite(e)),
            })?;
        make_private(to);
        Ok(())
    }
}

impl MetricOutbox for SqliteStore {
    /// Up to `limit` records whose metrics are still to be published.
    fn pending_metrics(&self, limit: usize) -> Result<Vec<StoredInvocation>> {
        let mut lookup = CallLookup::read(self)?;
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALL_COLUMNS} FROM metric_pending p JOIN invocation i ON i.id = p.call_id ORDER BY p.request_id LIMIT ?1"
        ))?;
        let mut rows = st.query([limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(lookup.call(self, r)?);
        }
        Ok(out)
    }

    /// How many records wait for their metrics.
    fn pending_metrics_count(&self) -> Result<u64> {
        self.count("SELECT COUNT(*) FROM metric_pending")
    }

    /// Marks these records' metrics as published.
    fn clear_pending_metrics(&mut self, request_ids: &[&str]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut del = tx.prepare_cached("DELETE FROM metric_pending WHERE request_id = ?1")?;
            for id in request_ids {
                del.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The columns of a stored call, in the order [`CallLookup::call`] reads them.
const CALL_COLUMNS: &str =
    "i.request_id, i.ts_ms, i.identity_id, i.model_ref, i.account_id, i.region,
        i.inference_region, i.operation, i.error_code, i.input_tokens, i.output_tokens,
        i.cache_read_tokens, i.cache_write_5m_tokens, i.cache_write_1h_tokens, i.request_metadata";

/// Identities and models by id, read once: they are few, so stored calls look them up in memory
/// rather than joining them row by row.
struct CallLookup {
    ids: HashMap<i64, Identity>,
    models: HashMap<i64, String>,
}

impl CallLookup {
    fn read(store: &SqliteStore) -> Result<CallLookup> {
        Ok(CallLookup {
            ids: store.read_identities()?.into_iter().collect(),
            models: store.read_model_ids()?,
        })
    }

    /// The stored call of a row of [`CALL_COLUMNS`].
    fn call(&mut self, store: &SqliteStore, r: &rusqlite::Row) -> Result<StoredInvocation> {
        let (identity_id, model_ref): (i64, i64) = (r.get(2)?, r.get(3)?);
        if !self.ids.contains_key(&identity_id) || !self.models.contains_key(&model_ref) {
            // Written after the tables were read, by a writer going on meanwhile.
            *self = CallLookup::read(store)?;
        }
        let (Some(identity), Some(model_id)) =
            (self.ids.get(&identity_id), self.models.get(&model_ref))
        else {
            let request_id: String = r.get(0)?;
            return Err(StoreError::Inconsistent(format!(
                "invocation {request_id} names identity {identity_id} and model {model_ref}, which are not both stored"
            )));
        };
        call_of(r, identity.clone(), model_id.clone())
    }
}

/// A row of [`CALL_COLUMNS`] as a stored call, with its identity and model given (or left empty
/// for a reader that needs their ids only).
fn call_of(r: &rusqlite::Row, identity: Identity, model_id: String) -> Result<StoredInvocation> {
    Ok(StoredInvocation {
        request_id: r.get(0)?,
        timestamp_ms: r.get(1)?,
        identity,
        model_id,
        account_id: r.get(4)?,
        region: r.get(5)?,
        inference_region: r.get(6)?,
        operation: r.get(7)?,
        error_code: r.get(8)?,
        tokens: Tokens {
            input: r.get::<_, i64>(9)? as u64,
            output: r.get::<_, i64>(10)? as u64,
            cache_read: r.get::<_, i64>(11)? as u64,
            cache_write_5m: r.get::<_, i64>(12)? as u64,
            cache_write_1h: r.get::<_, i64>(13)? as u64,
        },
        request_metadata: r.get(14)?,
        identity_id: r.get(2)?,
        model_ref: r.get(3)?,
    })
}

/// Switches to WAL. Changing the journal mode needs the database to itself, and SQLite answers
/// "busy" at once (no busy handler) while another process is opening the same new store: retry
/// for a while.
fn set_wal(conn: &Connection) -> Result<()> {
    let mut attempt = 0;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 300 =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sums rollup deltas into coarser buckets.
fn coarsen(fine: &BTreeMap<RollupKey, RollupDelta>, step: i64) -> BTreeMap<RollupKey, RollupDelta> {
    let mut out: BTreeMap<RollupKey, RollupDelta> = BTreeMap::new();
    for (k, d) in fine {
        let mut ck = k.clone();
        ck.bucket_ms = floor_to(k.bucket_ms, step);
        let e = out.entry(ck).or_default();
        e.calls += d.calls;
        e.errors += d.errors;
        e.empty_calls += d.empty_calls;
        e.tokens.add(&d.tokens);
    }
    out
}

fn intern(index: &mut HashMap<String, usize>, table: &mut Vec<String>, s: &str) -> usize {
    if let Some(&i) = index.get(s) {
        return i;
    }
    table.push(s.to_string());
    index.insert(s.to_string(), table.len() - 1);
    table.len() - 1
}

fn identity_id(
    tx: &Transaction,
    cache: &mut HashMap<String, i64>,
    buf: &mut String,
    principal: &str,
    key: &str,
    signal: &str,
) -> Result<i64> {
    buf.clear();
    for (i, part) in [principal, key, signal].into_iter().enumerate() {
        if i > 0 {
            buf.push('\0');
        }
        buf.push_str(part);
    }
    if let Some(&id) = cache.get(buf.as_str()) {
        return Ok(id);
    }
    let k = buf.clone();
    tx.execute(
        "INSERT OR IGNORE INTO identity (principal, signal_key, signal) VALUES (?1, ?2, ?3)",
        params![principal, key, signal],
    )?;
    let id = tx.query_row(
        "SELECT id FROM identity WHERE principal = ?1 AND signal_key = ?2 AND signal = ?3",
        params![principal, key, signal],
        |r| r.get(0),
    )?;
    cache.insert(k, id);
    Ok(id)
}

fn origin_id(tx: &Transaction, cache: &mut HashMap<String, i64>, name: &str) -> Result<i64> {
    if let Some(&id) = cache.get(name) {
        return Ok(id);
    }
    tx.execute("INSERT OR IGNORE INTO origin (name) VALUES (?1)", [name])?;
    let id = tx.query_row("SELECT id FROM origin WHERE name = ?1", [name], |r| {
        r.get(0)
    })?;
    cache.insert(name.to_string(), id);
    Ok(id)
}

fn model_ref(tx: &Transaction, cache: &mut HashMap<String, i64>, model_id: &str) -> Result<i64> {
    if let Some(&id) = cache.get(model_id) {
        return Ok(id);
    }
    tx.execute(
        "INSERT OR IGNORE INTO model (model_id) VALUES (?1)",
        [model_id],
    )?;
    let id = tx.query_row(
        "SELECT id FROM model WHERE model_id = ?1",
        [model_id],
        |r| r.get(0),
    )?;
    cache.insert(model_id.to_string(), id);
    Ok(id)
}

fn upsert_rollup(
    tx: &Transaction,
    table: &str,
    deltas: &BTreeMap<RollupKey, RollupDelta>,
) -> Result<()> {
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO {table} (bucket_ms, identity_id, model_ref, region, operation, input_band, calls, errors, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, empty_calls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, errors = errors + excluded.errors,
           input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
           cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
           cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens,
           cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
           empty_calls = empty_calls + excluded.empty_calls"
    ))?;
    for (k, d) in deltas {
        st.execute(params![
            k.bucket_ms,
            k.identity,
            k.model,
            k.region,
            k.operation,
            k.input_band.0 as i64,
            d.calls as i64,
            d.errors as i64,
            d.tokens.input as i64,
            d.tokens.output as i64,
            d.tokens.cache_read as i64,
            d.tokens.cache_write_5m as i64,
            d.tokens.cache_write_1h as i64,
            d.empty_calls as i64,
        ])?;
    }
    Ok(())
}

/// How a record differs from the stored one with its request id, if it does (a duplicate that
/// is not a copy: two sources disagree, or a request id was reused).
///
/// A call the gateway recorded and Bedrock's log of it are the same call seen from two places:
/// their times differ (the gateway's clock, Bedrock's) and so may their principal (the log names
/// the gateway's role), so only their model and tokens must agree.
fn differs(
    tx: &Transaction,
    inv: &bedrock_usage_core::Invocation,
    origin: &str,
    identity: i64,
    model: i64,
) -> Result<Option<String>> {
    let day = day_of(inv.timestamp_ms);
    let stored: (i64, i64, i64, [i64; 5], Option<String>) = tx
        .prepare_cached(&format!(
            "SELECT ts_ms, identity_id, model_ref, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                    (SELECT name FROM origin WHERE id = invocation.origin_id)
             FROM invocation WHERE {DAY_SQL} IN (?2, ?3, ?4) AND request_id = ?1 LIMIT 1",
        ))?
        .query_row(params![&inv.request_id, day - 1, day, day + 1], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                r.get(8)?,
            ))
        })?;
    let t = &inv.tokens;
    let now = [
        t.input as i64,
        t.output as i64,
        t.cache_read as i64,
        t.cache_write_5m as i64,
        t.cache_write_1h as i64,
    ];
    let gateway = crate::gateway::recorder::ORIGIN;
    let seen_twice = origin == gateway || stored.4.as_deref() == Some(gateway);
    let what = if stored.3 != now {
        format!(
            "tokens (input, output, cache read, cache write 5m, 1h) {:?}, stored {:?}",
            now, stored.3
        )
    } else if stored.0 != inv.timestamp_ms && !seen_twice {
        format!(
            "timestamp {}, stored {}",
            bedrock_usage_core::time::format_utc(inv.timestamp_ms),
            bedrock_usage_core::time::format_utc(stored.0)
        )
    } else if stored.2 != model {
        format!("modelId `{}`", inv.model_id)
    } else if stored.1 != identity && !seen_twice {
        format!("principal `{}` (or its metadata)", inv.principal)
    } else {
        return Ok(None);
    };
    let place = stored
        .4
        .map_or_else(|| "an earlier run".to_string(), |o| format!("`{o}`"));
    Ok(Some(format!(
        "{what}; the stored copy, from {place}, is kept"
    )))
}

/// A store file that is a SQLite database but not a bedrock-usage store (schema 0 with tables of
/// its own) is refused, never added to.
fn refuse_foreign(conn: &Connection, path: &Path) -> Result<()> {
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    if tables > 0 {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A failure while opening, with the file named and, for the common ones, what to do.
fn prepare_error(path: &Path, e: StoreError) -> StoreError {
    match e {
        e @ (StoreError::Foreign { .. } | StoreError::Newer { .. }) => e,
        e => StoreError::Prepare {
            path: path.to_path_buf(),
            hint: hint_for(&e),
            source: Box::new(e),
        },
    }
}

/// What to do about an SQLite failure, where there is something to say.
pub(super) fn hint_for(e: &StoreError) -> &'static str {
    let code = match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
        _ => None,
    };
    match code {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "; it is not an SQLite database: pass --db with a bedrock-usage store, or a new file name"
        }
        Some(rusqlite::ErrorCode::DiskFull) => {
            "; the disk is full: free some space (nothing was half-written: run the command again)"
        }
        Some(rusqlite::ErrorCode::ReadOnly) | Some(rusqlite::ErrorCode::CannotOpen) => {
            "; check that the file and its directory may be written (and read)"
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            "; the file is damaged: run `bedrock-usage store check`, restore a backup (`store backup`)"
        }
        _ => "",
    }
}

/// Whether anyone has committed to a store since the last look: SQLite's `data_version` on one
/// read-only connection kept open (a few microseconds a look; readers' caches key on it).
pub struct ChangeWatch {
    conn: Connection,
}

impl ChangeWatch {
    pub fn open(path: &Path) -> Option<ChangeWatch> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
        Some(ChangeWatch { conn })
    }

    /// A number that changes whenever another connection commits (`None`: cannot tell).
    pub fn version(&self) -> Option<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .ok()
    }
}

/// `PRAGMA foreign_key_check`: every call names a stored identity and model.
fn check_references(conn: &Connection, out: &mut Vec<CheckResult>) -> Result<()> {
    let mut st = conn.prepare("PRAGMA foreign_key_check")?;
    let orphans: Vec<(String, i64)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    out.push(CheckResult {
            name: "references (foreign_key_check)".into(),
            ok: orphans.is_empty(),
            detail: match orphans.first() {
                None => "every call names a stored identity and model".into(),
                Some((table, rowid)) => format!(
                    "{} rows name a missing parent (first: {table} row {rowid}): the store was damaged; restore a backup",
                    orphans.len()
                ),
            },
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::os::raw::c_int) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn common_failures_say_what_to_do() {
        assert!(hint_for(&failure(rusqlite::ffi::SQLITE_FULL)).contains("the disk is full"));
        assert!(hint_for(&failure(rusqlite::ffi::SQLITE_NOTADB)).contains("not an SQLite database"));
        assert!(hint_for(&failure(rusqlite::ffi::SQLITE_READONLY)).contains("may be written"));
        assert!(hint_for(&failure(rusqlite::ffi::SQLITE_CORRUPT)).contains("store check"));
        // And the message names the file.
        let e = StoreError::Write {
            path: "/data/usage.db".into(),
            hint: hint_for(&failure(rusqlite::ffi::SQLITE_FULL)),
            source: Box::new(failure(rusqlite::ffi::SQLITE_FULL)),
        };
        assert!(e
            .to_string()
            .starts_with("cannot write to the store /data/usage.db; the disk is full"));
    }

    /// A store at schema `version` (the first `version` migrations) holding `rows` (SQL), in a
    /// directory of its own: (the directory, the store's path).
    fn old_store(
        tag: &str,
        version: usize,
        rows: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("old.db");
        let conn = Connection::open(&path).expect("open");
        for sql in migrations().iter().take(version) {
            conn.execute_batch(sql).expect("old migration");
        }
        conn.pragma_update(None, "user_version", version as i64)
            .expect("version");
        conn.execute_batch(rows).expect("rows");
        (dir, path)
    }

    #[test]
    fn a_store_of_schema_11_is_rebuilt_by_input_band() {
        let (dir, path) = old_store("bu-band", 11,
                "INSERT INTO identity (id, principal) VALUES (1, 'arn:aws:iam::1:user/a');
                 INSERT INTO model (id, model_id) VALUES (1, 'global.anthropic.claude-haiku-5-5');
                 INSERT INTO invocation (request_id, ts_ms, identity_id, model_ref, account_id, region, operation,
                    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens)
                 VALUES ('r1', 1764633600000, 1, 1, '1', 'us-east-1', 'InvokeModel', 1000, 10, 99000, 0, 0),
                        ('r2', 1764633600000, 1, 1, '1', 'us-east-1', 'InvokeModel', 1000, 10, 99001, 0, 0),
                        ('r3', 1764633600000, 1, 1, '1', 'us-east-1', 'InvokeModel', 250000, 10, 0, 0, 0);",
        );
        let store = SqliteStore::open(&path).expect("migrated");
        let mut st = store
            .conn
            .prepare("SELECT input_band, calls FROM rollup_d ORDER BY input_band")
            .expect("prepare");
        let got: Vec<(i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("rows");
        // 100,000 input-side tokens: band 0; 100,001: band 1; 250,000: above 100k, 128k, 200k.
        assert_eq!(got, vec![(0, 1), (1, 1), (3, 1)]);
        drop(st);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_request_id_is_one_call_in_its_day_and_across_midnight_within_two_hours() {
        let dir = std::env::temp_dir().join(format!("bu-day-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = SqliteStore::open(&dir.join("s.db")).expect("store");
        let rec = |id: &str, ts: &str, input: u64| {
            bedrock_usage_core::record::parse_record(format!(
                r#"{{"timestamp":"{ts}","accountId":"1","region":"us-east-1","requestId":"{id}","operation":"InvokeModel","modelId":"m","identity":{{"arn":"arn:aws:iam::1:user/a"}},"input":{{"inputTokenCount":{input}}},"output":{{"outputTokenCount":1}}}}"#
            ).as_bytes())
            .expect("record")
        };
        let mut write = |recs: Vec<bedrock_usage_core::Invocation>| {
            let b = Batch {
                records: &recs,
                origins: &[],
                checkpoints: &[],
                cursors: &[],
            };
            let o = store.write(&b, &[]).expect("write");
            (o.inserted, o.duplicates, o.conflicts.len())
        };
        assert_eq!(
            write(vec![
                rec("a", "2026-11-30T23:30:00Z", 5),
                rec("b", "2026-11-30T12:00:00Z", 5)
            ]),
            (2, 0, 0)
        );
        // The same day, or across midnight within two hours: the same calls, stored once (their
        // times differ, which is reported).
        assert_eq!(
            write(vec![
                rec("a", "2026-12-01T00:30:00Z", 5),
                rec("b", "2026-11-30T01:00:00Z", 5)
            ]),
            (0, 2, 2)
        );
        assert_eq!(write(vec![rec("a", "2026-12-01T01:29:00Z", 6)]), (0, 1, 1));
        // Further apart: other calls that reuse the id.
        assert_eq!(
            write(vec![
                rec("a", "2026-12-01T02:00:00Z", 5),
                rec("b", "2026-12-03T12:00:00Z", 5)
            ]),
            (2, 0, 0)
        );
        // ...and the gateway's question finds each near its time only.
        let near = |id: &str, ts: &str| {
            let ms = bedrock_usage_core::time::parse_timestamp_ms(ts).expect("ts");
            store
                .known_request_ids(&[(id.to_string(), ms)])
                .expect("known")
                .len()
        };
        assert_eq!(near("a", "2026-12-01T10:00:00Z"), 1);
        assert_eq!(near("b", "2026-11-20T10:00:00Z"), 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_of_schema_13_keeps_its_call_ids_and_pending_metrics() {
        let (dir, path) = old_store("bu-v13", 13,
                "INSERT INTO identity (id, principal) VALUES (1, 'arn:aws:iam::1:user/a');
                 INSERT INTO model (id, model_id) VALUES (1, 'm');
                 INSERT INTO invocation (id, request_id, ts_ms, identity_id, model_ref, account_id, region, operation,
                    input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens)
                 VALUES (7, 'r7', 1764633600000, 1, 1, '1', 'us-east-1', 'InvokeModel', 1, 1, 0, 0, 0),
                        (9, 'r9', 1764633600001, 1, 1, '1', 'us-east-1', 'InvokeModel', 2, 1, 0, 0, 0);
                 INSERT INTO metric_pending (request_id) VALUES ('r9');",
        );
        let store = SqliteStore::open(&path).expect("migrated");
        let ids: Vec<(i64, String)> = store
            .conn
            .prepare("SELECT id, request_id FROM invocation ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("rows");
        assert_eq!(ids, vec![(7, "r7".to_string()), (9, "r9".to_string())]);
        let pending = store.pending_metrics(10).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].request_id, "r9");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
