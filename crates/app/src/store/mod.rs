//! The store seam: small traits by concern, which commands, the pipeline and the coming server
//! call, implemented by SQLite (`sqlite.rs`); a PostgreSQL backend later adds a file here and
//! touches no command.
//!
//! - [`FactWriter`]: facts with the checkpoints and cursors that cover them, in one transaction
//!   (a crash at any instant loses nothing and counts nothing twice).
//! - [`FactReader`]: facts back, from rollups or raw, identities, and what each source has read.
//! - [`MetricOutbox`]: records waiting for their CloudWatch metrics.
//!
//! Rules every backend keeps (pinned by the CLI tests): an invocation is identified by its
//! requestId and stored at most once; rollups change only for rows actually inserted, in the same
//! transaction; no bodies and no money are stored.

pub mod columns;
mod sqlite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bedrock_usage_core::rollup::Grain;
use bedrock_usage_core::{FactSet, Identity, Invocation, StoredInvocation};

pub use sqlite::{ChangeWatch, SqliteStore};

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store's directory {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot use the store {}{hint}", .path.display())]
    Prepare {
        path: PathBuf,
        /// What to do, when something can be said (starts with `; `).
        hint: &'static str,
        #[source]
        source: Box<StoreError>,
    },
    #[error("{} is an SQLite database but not a bedrock-usage store: pass --db with a store (or a new file name); nothing was changed in it", .path.display())]
    Foreign { path: PathBuf },
    #[error(
        "the store was written by a newer bedrock-usage (schema {found}, this one knows {known})"
    )]
    Newer { found: i64, known: usize },
    #[error("cannot write to the store {}{hint}", .path.display())]
    Write {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: Box<StoreError>,
    },
    #[error("the store is inconsistent: {0} (run `bedrock-usage store check`)")]
    Inconsistent(String),
    /// A column segment cannot be written or read (segments are derived: `store columns
    /// --rebuild` writes them again from the facts).
    #[error("column segment {}: {what}", .path.display())]
    Segment { path: PathBuf, what: String },
    #[error("column segments {}", .path.display())]
    SegmentIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Value(#[from] rusqlite::types::FromSqlError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How far a file (or an S3 object) has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The file's absolute path, or `s3://BUCKET/KEY`.
    pub path: String,
    /// Hash of the first `fingerprint_len` bytes of the file (an S3 object: its ETag), to tell a
    /// replaced file from a grown one.
    pub fingerprint: String,
    pub fingerprint_len: u64,
    pub size: u64,
    pub gzip: bool,
    /// Bytes consumed: of the file for plain files, of the decompressed stream for gzip.
    pub offset: u64,
    /// Lines consumed (for line numbers in messages on resume).
    pub lines: u64,
    pub complete: bool,
    /// Records seen in this source so far (inserted or duplicate).
    pub records: u64,
    /// The file's inode and modification time (ns) when planned: a file replaced or rewritten
    /// in place (same size, same head) is read again. 0: unknown (S3 objects, old checkpoints).
    pub inode: u64,
    pub mtime_ns: i64,
    /// A hash of the 4 KiB before `size`: a file that grew is read on only if what was read is
    /// still there. Empty: unknown.
    pub tail: String,
    /// The input was a whole document (a `filter-log-events` export, JSON text): never read on
    /// from a byte offset, always again from the start when it changed.
    pub document: bool,
}

/// Which CloudWatch streams of a group a source reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Streams {
    All,
    Names(Vec<String>),
    Prefix(String),
}

/// A `sync` source, as its cursor names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceId {
    /// A log group (region-qualified: one group name can exist in several regions).
    CloudWatch {
        region: String,
        group: String,
        streams: Streams,
    },
    S3 {
        bucket: String,
        prefix: String,
    },
}

/// How far a `sync` source has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// CloudWatch: every event before this instant (epoch ms) has been read.
    Time(i64),
    /// CloudWatch, inside a window `[from, to)`: every event before `from`, and the pages of the
    /// window before `token`, have been read.
    Page { from: i64, to: i64, token: String },
    /// S3: every date partition up to this UTC day has been listed.
    Day(i64),
}

impl Position {
    /// The time or day everything before which has been read.
    pub fn value(&self) -> i64 {
        match self {
            Position::Time(v) | Position::Day(v) | Position::Page { from: v, .. } => *v,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Position::Time(ms) => f.write_str(&bedrock_usage_core::time::format_utc(*ms)),
            Position::Page { from, to, .. } => write!(
                f,
                "{} (part of the window to {})",
                bedrock_usage_core::time::format_utc(*from),
                bedrock_usage_core::time::format_utc(*to)
            ),
            Position::Day(d) => f.write_str(&bedrock_usage_core::time::format_date(*d)),
        }
    }
}

/// A source's cursor, moved in the transaction of the records it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub source: SourceId,
    pub position: Position,
}

impl SourceId {
    /// The key the store files the cursor under (stable across versions: stores written by
    /// earlier versions keep their cursors).
    pub(crate) fn key(&self) -> String {
        match self {
            SourceId::CloudWatch {
                region,
                group,
                streams,
            } => {
                let which = match streams {
                    Streams::Names(n) => format!("streams={}", n.join(",")),
                    Streams::Prefix(p) => format!("prefix={p}"),
                    Streams::All => "all".to_string(),
                };
                format!("cloudwatch|{region}|{group}|{which}")
            }
            SourceId::S3 { bucket, prefix } => format!("s3|{bucket}|{prefix}"),
        }
    }

    /// The inverse of [`SourceId::key`]: the store's one place that reads keys back.
    pub(crate) fn from_key(key: &str) -> Option<SourceId> {
        let mut parts = key.splitn(4, '|');
        match parts.next()? {
            "cloudwatch" => {
                let region = parts.next()?.to_string();
                let group = parts.next()?.to_string();
                let which = parts.next()?;
                let streams = if which == "all" {
                    Streams::All
                } else if let Some(n) = which.strip_prefix("streams=") {
                    Streams::Names(n.split(',').map(String::from).collect())
                } else {
                    Streams::Prefix(which.strip_prefix("prefix=")?.to_string())
                };
                Some(SourceId::CloudWatch {
                    region,
                    group,
                    streams,
                })
            }
            "s3" => {
                let rest = key.strip_prefix("s3|")?;
                let (bucket, prefix) = rest.split_once('|')?;
                Some(SourceId::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.to_string(),
                })
            }
            _ => None,
        }
    }

    /// The position a stored value (and, inside a CloudWatch window, its end and page token)
    /// stands for.
    pub(crate) fn position(&self, value: i64, page: Option<(i64, String)>) -> Position {
        match (self, page) {
            (SourceId::CloudWatch { .. }, Some((to, token))) => Position::Page {
                from: value,
                to,
                token,
            },
            (SourceId::CloudWatch { .. }, None) => Position::Time(value),
            (SourceId::S3 { .. }, _) => Position::Day(value),
        }
    }
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.key().replace('|', " "))
    }
}

/// One transaction's worth of facts and what they cover.
#[derive(Debug, Default, Clone, Copy)]
pub struct Batch<'a> {
    pub records: &'a [Invocation],
    /// Where each record came from (a file, an S3 object, a log group), stored with it so that
    /// a later copy that differs can name both places; empty: not known.
    pub origins: &'a [&'a str],
    pub checkpoints: &'a [Checkpoint],
    pub cursors: &'a [Cursor],
}

/// What one write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    /// Records whose request id was stored already with other facts: (index in the batch's
    /// records, what differs). The stored copy is kept.
    pub conflicts: Vec<(usize, String)>,
}

/// A cursor as read back, with when it last moved (epoch ms).
#[derive(Debug, Clone)]
pub struct SyncState {
    pub source: SourceId,
    pub position: Position,
    pub updated_ms: i64,
}

/// The tags of one IAM user or role.
pub type IamTagSet = std::collections::BTreeMap<String, String>;

/// IAM tags as stored: by entity ARN, with when each entity was read.
#[derive(Debug, Default, Clone)]
pub struct IamTagsRead {
    pub tags: bedrock_usage_core::attribution::IamTags,
    pub read_ms: HashMap<String, i64>,
}

/// Writing facts with the checkpoints and cursors that cover them.
pub trait FactWriter {
    /// Replaces the stored tags of these IAM users and roles (read at `read_ms`).
    fn put_iam_tags(&mut self, tags: &[(String, IamTagSet)], read_ms: i64) -> Result<()>;
    /// Stores the batch's records (ignoring those already stored), its checkpoints and cursors,
    /// in one transaction. `metadata_keys` decides which request-metadata key names a developer.
    fn write(&mut self, batch: &Batch, metadata_keys: &[String]) -> Result<WriteOutcome>;
    /// A file's (or object's) checkpoint.
    fn checkpoint(&self, path: &str) -> Result<Option<Checkpoint>>;
    /// Sources (checkpoint paths) starting with `prefix` read completely, with their
    /// fingerprints.
    fn complete_sources(&self, prefix: &str) -> Result<HashMap<String, String>>;
    /// A `sync` source's cursor, if set.
    fn cursor(&self, source: &SourceId) -> Result<Option<Position>>;
    /// Queue newly inserted records for CloudWatch metrics from now on.
    fn set_track_metrics(&mut self, on: bool);
}

/// Reading facts back.
pub trait FactReader {
    /// The IAM tags read so far (`attribution.iam_tags`).
    fn iam_tags(&self) -> Result<IamTagsRead>;
    /// The first and last instants with data, if any.
    fn time_range(&self) -> Result<Option<(i64, i64)>>;
    /// Facts in `[since, until)`, from the coarsest rollup that is exact for them (at most
    /// `grain`; see `bedrock_usage_core::rollup`).
    fn facts(&self, since: Option<i64>, until: Option<i64>, grain: Grain) -> Result<FactSet>;
    /// Calls `f` for each stored invocation in `[since, until)`, in the order they were stored,
    /// until it returns false.
    fn scan_invocations(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        f: &mut dyn FnMut(StoredInvocation) -> bool,
    ) -> Result<()>;
    /// Every identity in the store (attribution needs them all to tell shared principals).
    fn identities(&self) -> Result<Vec<Identity>>;
    /// This store's name, which its column segments carry.
    fn store_uid(&self) -> Result<String>;
    /// Calls per UTC day (the day's start, epoch ms), oldest first.
    fn calls_per_day(&self) -> Result<Vec<(i64, u64)>>;
    /// The highest id of a stored call (0 for none). Calls are only ever added, with ids
    /// above every id before them.
    fn last_call_id(&self) -> Result<i64>;
    /// Calls `f` with each stored call in `[since, until)` whose id is in `(ids.0, ids.1]`, in
    /// id order, until it returns false. `by_id`: few calls have ids above `ids.0`, read those;
    /// else read the time range. `resolve`: with each call's identity and model id (else only
    /// their store ids, `identity_id` and `model_ref`).
    fn scan_calls(
        &self,
        since: i64,
        until: i64,
        ids: (i64, i64),
        by_id: bool,
        resolve: bool,
        f: &mut dyn FnMut(i64, StoredInvocation) -> bool,
    ) -> Result<()>;
    /// Identities and models by id, for reading column segments.
    fn lookups(&self) -> Result<bedrock_usage_core::query::columnar::Lookups>;
    /// The newest stored invocation's time.
    fn newest_ms(&self) -> Result<Option<i64>>;
    fn invocation_count(&self) -> Result<u64>;
    /// Which of `request_ids` the store holds, each given with a time near its call's (within
    /// a day: a request id is looked up in its day and the days either side).
    fn known_request_ids(
        &self,
        request_ids: &[(String, i64)],
    ) -> Result<std::collections::HashSet<String>>;
    /// Every `sync` cursor, by source.
    fn cursors(&self) -> Result<Vec<SyncState>>;
    /// Every stored invocation, ordered by request id: what the store holds, for golden tests
    /// and debugging.
    fn dump(&self) -> Result<Vec<serde_json::Value>>;
}

/// Records whose CloudWatch metrics are still to be published.
pub trait MetricOutbox {
    /// Up to `limit` queued records.
    fn pending_metrics(&self, limit: usize) -> Result<Vec<StoredInvocation>>;
    fn pending_metrics_count(&self) -> Result<u64>;
    /// Takes these records off the queue.
    fn clear_pending_metrics(&mut self, request_ids: &[&str]) -> Result<()>;
}

/// One check of `store check`.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Keeping a store sound: checks and backups.
pub trait Maintenance {
    /// The database's own check (`quick_check`, or the full `integrity_check`), and the rollups
    /// against the invocations they sum.
    fn check(&self, full: bool) -> Result<Vec<CheckResult>>;
    /// A consistent copy of the store at `to` (a new file), safe while another process writes.
    fn backup(&self, to: &Path) -> Result<()>;
}

/// A whole store.
/// A gateway key as stored: the SHA-256 of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayKey {
    /// The key's public part (shown by `keys list`, named by `keys revoke`).
    pub id: String,
    pub secret_sha256: [u8; 32],
    pub developer: String,
    pub team: Option<String>,
    pub label: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// The gateway's keys.
pub trait KeyStore {
    fn add_key(&mut self, key: &GatewayKey) -> Result<()>;
    /// Every key, revoked and expired ones too, oldest first.
    fn keys(&self) -> Result<Vec<GatewayKey>>;
    /// Revokes a key at `at_ms`; false when no key has this id. Revoking twice keeps the first
    /// time.
    fn revoke_key(&mut self, id: &str, at_ms: i64) -> Result<bool>;
}

/// An alert message to deliver: its key (what makes it happen once), the channel it goes to
/// and the alert as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub key: String,
    pub channel: String,
    pub body: String,
    pub created_ms: i64,
}

/// A message in the outbox, with its delivery so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: i64,
    pub key: String,
    pub channel: String,
    pub body: String,
    pub created_ms: i64,
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_ms: i64,
    pub sent_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// Alerts to deliver: written once per (key, channel), marked sent when delivered. A crash
/// between a send and its mark sends that message again (never zero times).
pub trait AlertOutbox {
    /// Adds the messages whose (key, channel) is not in the outbox yet, in one transaction;
    /// how many were new.
    fn enqueue(&mut self, msgs: &[OutboxMessage]) -> Result<usize>;
    /// With `Some(now)`: the unsent messages due by then, oldest first. With `None`: every
    /// message.
    fn outbox(&self, unsent_due_by: Option<i64>) -> Result<Vec<QueuedMessage>>;
    /// Delivered at `at_ms`, after `attempts` attempts in all.
    fn mark_sent(&mut self, id: i64, at_ms: i64, attempts: i64) -> Result<()>;
    /// Not delivered after `attempts` attempts in all: the last error, and when to try again.
    fn mark_failed(&mut self, id: i64, error: &str, next_ms: i64, attempts: i64) -> Result<()>;
}

pub trait Store:
    FactWriter + FactReader + MetricOutbox + Maintenance + KeyStore + AlertOutbox + Send
{
}

impl<T: FactWriter + FactReader + MetricOutbox + Maintenance + KeyStore + AlertOutbox + Send> Store
    for T
{
}

/// Opens (creating and migrating as needed) the store at `path`.
pub fn open(path: &Path) -> Result<Box<dyn Store>> {
    Ok(Box::new(SqliteStore::open(path)?))
}

/// Opens an existing store for reading: no write lock, never waiting behind a writer.
pub fn open_read_only(path: &Path) -> Result<Box<dyn Store>> {
    Ok(Box::new(SqliteStore::open_read_only(path)?))
}

/// The default store: `bedrock-usage/usage.db` in the user's data directory.
pub fn default_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("bedrock-usage").join("usage.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_keys_read_back() {
        for s in [
            SourceId::CloudWatch {
                region: "us-east-1".into(),
                group: "/aws/bedrock/x".into(),
                streams: Streams::All,
            },
            SourceId::CloudWatch {
                region: "eu-west-1".into(),
                group: "g".into(),
                streams: Streams::Names(vec!["a".into(), "b".into()]),
            },
            SourceId::CloudWatch {
                region: "eu-west-1".into(),
                group: "g".into(),
                streams: Streams::Prefix("aws/".into()),
            },
            SourceId::S3 {
                bucket: "logs".into(),
                prefix: "bedrock/".into(),
            },
        ] {
            assert_eq!(SourceId::from_key(&s.key()), Some(s.clone()), "{}", s.key());
        }
        assert_eq!(SourceId::from_key("other|x"), None);
    }
}
