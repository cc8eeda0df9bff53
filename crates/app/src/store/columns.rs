//! Column segments beside the store: the stored calls of each UTC day, column by column, for
//! queries the rollups cannot answer (`bedrock_usage_core::query::columnar`). They are derived
//! data, never a second source of truth:
//!
//! - A segment (one file) holds the calls of one day whose ids are in `(after, last]`. Calls are
//!   only ever added to the store, each with an id above every id before it, so a day's
//!   segments, chained from id 0, hold exactly the calls of that day up to the last id of the
//!   chain, forever; the calls above it (the day's *tail*) are read from SQLite. A query is
//!   therefore exact whatever state the segments are in: missing, behind, or half written.
//! - A segment is written whole to a temporary name, synced and renamed: a killed writer
//!   leaves no partial segment. Each column carries a CRC-32; a damaged column is never read
//!   (the day is read from SQLite and `store check` names the file).
//! - Each segment names its store (`store_uid`); segments of another store are ignored.
//! - `seal` (at the end of `ingest`, `sync`, `demo`, and `store columns`) writes each day's
//!   tail as a new segment, or the whole day again when it has too many; one sealer at a time
//!   (a lock file), readers never wait.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bedrock_usage_core::query::columnar::{CallColumns, ColumnData, ColumnSet, ColumnsBuilder};
use bedrock_usage_core::time::{format_date, MS_PER_DAY};
use serde::{Deserialize, Serialize};

use super::{FactReader, Result, StoreError};

const MAGIC: &[u8; 8] = b"BUCOLS\0\x01";
/// The segment layout this build writes and reads.
const FORMAT: u32 = 1;
/// Calls per segment at most (a day with more has several).
pub const SEGMENT_ROWS: usize = 1 << 20;
/// A day with more segments than this is written again as few.
const MAX_PARTS: usize = 8;

/// Where a store's segments live: `<store>.columns/`.
pub fn dir_for(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".columns");
    PathBuf::from(s)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ColumnEntry {
    name: String,
    /// From the end of the header.
    offset: u64,
    len: u64,
    crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: u32,
    store: String,
    day_ms: i64,
    /// Calls with ids in `(after, last]`.
    after: i64,
    last: i64,
    rows: u64,
    min_ts: i64,
    max_ts: i64,
    columns: Vec<ColumnEntry>,
}

/// One segment file, its header read.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    pub day_ms: i64,
    pub after: i64,
    pub last: i64,
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Where the columns start in the file.
    body: u64,
    columns: Vec<ColumnEntry>,
}

impl Segment {
    /// Reads the columns in `cols`, each checked against its CRC.
    pub fn load(&self, cols: ColumnSet) -> Result<CallColumns> {
        let bad = |what: String| StoreError::Segment {
            path: self.path.clone(),
            what,
        };
        let file = File::open(&self.path).map_err(|source| StoreError::SegmentIo {
            path: self.path.clone(),
            source,
        })?;
        let mut out = CallColumns::new(self.rows as usize);
        for c in cols.iter() {
            let e = self
                .columns
                .iter()
                .find(|e| e.name == c.name())
                .ok_or_else(|| bad(format!("has no column {}", c.name())))?;
            let mut buf = vec![0u8; e.len as usize];
            file.read_exact_at(&mut buf, self.body + e.offset)
                .map_err(|x| bad(format!("column {} cannot be read: {x}", c.name())))?;
            if crc32fast::hash(&buf) != e.crc32 {
                return Err(bad(format!("column {} is damaged (CRC)", c.name())));
            }
            let d = ColumnData::decode(&buf).map_err(|x| bad(format!("{}: {x}", c.name())))?;
            out.set(c, d).map_err(bad)?;
        }
        Ok(out)
    }

    /// Reads every column and checks it (for `store check --full`).
    pub fn verify(&self) -> Result<()> {
        self.load(ColumnSet::ALL).map(|_| ())
    }
}

/// A segment's header and where its columns start.
fn read_header(path: &Path) -> std::result::Result<(Header, u64), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    file.read_exact_at(&mut head, 0)
        .map_err(|_| "shorter than a segment header".to_string())?;
    if &head[..8] != MAGIC {
        return Err("not a bedrock-usage column segment".into());
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if len > 1 << 20 {
        return Err("its header is too long".into());
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 12)
        .map_err(|_| "its header is cut short".to_string())?;
    let h: Header =
        serde_json::from_slice(&buf).map_err(|e| format!("its header is not readable: {e}"))?;
    if h.format != FORMAT {
        return Err(format!(
            "segment format {} (this build reads {FORMAT})",
            h.format
        ));
    }
    Ok((h, 12 + len as u64))
}

/// The store's segments: per day, the chain from id 0 (in id order), and files that are not
/// part of any chain (left over, of another store, or unreadable), with why.
#[derive(Debug, Default)]
pub struct Listing {
    pub days: BTreeMap<i64, Vec<Segment>>,
    pub stray: Vec<(PathBuf, String)>,
}

impl Listing {
    /// Calls in a day's chain and the chain's last id.
    pub fn covered(&self, day_ms: i64) -> (u64, i64) {
        match self.days.get(&day_ms) {
            Some(chain) => (
                chain.iter().map(|s| s.rows).sum(),
                chain.last().map(|s| s.last).unwrap_or(0),
            ),
            None => (0, 0),
        }
    }
}

/// Lists the segments of the store named `uid` in `dir` (none when it does not exist).
pub fn list(dir: &Path, uid: &str) -> Result<Listing> {
    let mut out = Listing::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(StoreError::SegmentIo {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut by_day: BTreeMap<i64, Vec<Segment>> = BTreeMap::new();
    for e in entries {
        let path = e
            .map_err(|source| StoreError::SegmentIo {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().is_none_or(|x| x != "cols") {
            continue;
        }
        match read_header(&path) {
            Ok((h, _)) if h.store != uid => out
                .stray
                .push((path, "belongs to another store".to_string())),
            Ok((h, body)) => by_day.entry(h.day_ms).or_default().push(Segment {
                path,
                day_ms: h.day_ms,
                after: h.after,
                last: h.last,
                rows: h.rows,
                min_ts: h.min_ts,
                max_ts: h.max_ts,
                body,
                columns: h.columns,
            }),
            // Vanished meanwhile (a sealer replaced it): not ours to report.
            Err(_) if !path.exists() => {}
            Err(why) => out.stray.push((path, why)),
        }
    }
    for (day, mut segs) in by_day {
        // The chain from id 0: at each step the segment that reaches furthest.
        segs.sort_by_key(|s| (s.after, std::cmp::Reverse(s.last)));
        let mut chain: Vec<Segment> = Vec::new();
        let mut at = 0i64;
        for s in segs {
            if s.after == at && s.last > at {
                at = s.last;
                chain.push(s);
            } else {
                out.stray
                    .push((s.path, "overlaps another segment of its day".to_string()));
            }
        }
        if !chain.is_empty() {
            out.days.insert(day, chain);
        }
    }
    Ok(out)
}

/// What one `seal` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sealed {
    pub days: u64,
    pub calls: u64,
    pub segments: u64,
    pub removed: u64,
}

/// Writes the calls not yet in segments (`rebuild`: every day again), so that queries read
/// columns. Waits for another sealer of the same store.
pub fn seal(store: &dyn FactReader, db: &Path, rebuild: bool) -> Result<Sealed> {
    let dir = dir_for(db);
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::SegmentIo {
        path: dir.clone(),
        source,
    })?;
    let _lock = Lock::take(&dir.join(".lock"))?;
    let uid = store.store_uid()?;
    let listing = list(&dir, &uid)?;
    let mut done = Sealed::default();
    let days = store.calls_per_day()?;
    let last_id = store.last_call_id()?;
    for &(day, calls) in &days {
        let (covered, chain_last) = listing.covered(day);
        let chain = listing.days.get(&day).map(Vec::as_slice).unwrap_or(&[]);
        if covered == calls && !rebuild {
            continue;
        }
        // Behind by a tail: add it, unless the day has many segments already (or more calls
        // in segments than in the store, which only a foreign file can cause).
        let whole = rebuild || covered > calls || chain.len() >= MAX_PARTS;
        let after = if whole { 0 } else { chain_last };
        let tail = calls.saturating_sub(if whole { 0 } else { covered });
        let by_id = last_id.saturating_sub(after) < (tail as i64).saturating_mul(4);
        let (calls, written) = write_day(store, &dir, &uid, day, after, by_id)?;
        done.days += 1;
        done.calls += calls;
        done.segments += written.len() as u64;
        if whole {
            // The old chain, but not a file the new one replaced under the same name.
            for s in chain.iter().filter(|s| !written.contains(&s.path)) {
                remove(&s.path)?;
                done.removed += 1;
            }
        }
    }
    // Left-overs: overlapped chains, days no longer stored, another store's files.
    let listing = list(&dir, &uid)?;
    for (path, _) in &listing.stray {
        remove(path)?;
        done.removed += 1;
    }
    for (day, chain) in &listing.days {
        if days.binary_search_by_key(day, |d| d.0).is_err() {
            for s in chain {
                remove(&s.path)?;
                done.removed += 1;
            }
        }
    }
    Ok(done)
}

/// Writes the calls of `day` with ids above `after` as segments; (calls, the files written).
fn write_day(
    store: &dyn FactReader,
    dir: &Path,
    uid: &str,
    day: i64,
    after: i64,
    by_id: bool,
) -> Result<(u64, Vec<PathBuf>)> {
    let mut b = ColumnsBuilder::default();
    let (mut from, mut last) = (after, after);
    let (mut calls, mut segments) = (0u64, Vec::new());
    let mut failed: Option<StoreError> = None;
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    store.scan_calls(
        day,
        day + MS_PER_DAY,
        (after, i64::MAX),
        by_id,
        false,
        &mut |id, inv| {
            if let Err(e) = b.push(id, &inv) {
                failed = Some(StoreError::Segment {
                    path: dir.to_path_buf(),
                    what: e,
                });
                return false;
            }
            min_ts = min_ts.min(inv.timestamp_ms);
            max_ts = max_ts.max(inv.timestamp_ms);
            last = id;
            if b.rows() >= SEGMENT_ROWS {
                let full = std::mem::take(&mut b);
                let h = (from, last, min_ts, max_ts);
                match write_segment(dir, uid, day, h, full) {
                    Ok((n, path)) => {
                        calls += n;
                        segments.push(path);
                    }
                    Err(e) => {
                        failed = Some(e);
                        return false;
                    }
                }
                from = last;
                (min_ts, max_ts) = (i64::MAX, i64::MIN);
            }
            true
        },
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    if b.rows() > 0 {
        let (n, path) = write_segment(dir, uid, day, (from, last, min_ts, max_ts), b)?;
        calls += n;
        segments.push(path);
    }
    Ok((calls, segments))
}

/// Writes one segment whole under a temporary name, syncs it and renames it into place.
fn write_segment(
    dir: &Path,
    uid: &str,
    day: i64,
    (after, last, min_ts, max_ts): (i64, i64, i64, i64),
    b: ColumnsBuilder,
) -> Result<(u64, PathBuf)> {
    let rows = b.rows() as u64;
    let mut body = Vec::new();
    let mut entries = Vec::new();
    for (c, d) in b.finish() {
        let start = body.len();
        d.encode(&mut body);
        entries.push((c, start, body.len() - start));
    }
    let header = Header {
        format: FORMAT,
        store: uid.to_string(),
        day_ms: day,
        after,
        last,
        rows,
        min_ts,
        max_ts,
        columns: entries
            .iter()
            .map(|(c, start, len)| ColumnEntry {
                name: c.name().to_string(),
                offset: *start as u64,
                len: *len as u64,
                crc32: crc32fast::hash(&body[*start..*start + *len]),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| StoreError::Segment {
        path: dir.to_path_buf(),
        what: format!("its header cannot be written: {e}"),
    })?;
    let name = format!(
        "{}_{after}_{last}.cols",
        format_date(day.div_euclid(MS_PER_DAY))
    );
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let io = |source| StoreError::SegmentIo {
        path: path.clone(),
        source,
    };
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&(json.len() as u32).to_le_bytes())?;
        f.write_all(&json)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok((rows, path))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::SegmentIo {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// An exclusive lock on a file, held until dropped (released by the kernel if the process
/// dies).
struct Lock(File);

impl Lock {
    fn take(path: &Path) -> Result<Lock> {
        let io = |source| StoreError::SegmentIo {
            path: path.to_path_buf(),
            source,
        };
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this File owns, for as long as it lives.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor this File owns.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The segments' state against the store, for `store check` and `store columns`.
#[derive(Debug, Default)]
pub struct Status {
    pub days: u64,
    pub calls: u64,
    pub in_columns: u64,
    pub segments: u64,
    /// Days with calls not (all) in segments: (day, calls, in segments).
    pub behind: Vec<(i64, u64, u64)>,
    /// Segment files that are not read, with why.
    pub stray: Vec<(PathBuf, String)>,
    /// Segments whose columns do not check (`full` only).
    pub damaged: Vec<(PathBuf, String)>,
}

pub fn status(store: &dyn FactReader, db: &Path, full: bool) -> Result<Status> {
    let uid = store.store_uid()?;
    let listing = list(&dir_for(db), &uid)?;
    let mut st = Status {
        stray: listing.stray.clone(),
        ..Status::default()
    };
    for (day, calls) in store.calls_per_day()? {
        let (covered, _) = listing.covered(day);
        st.days += 1;
        st.calls += calls;
        st.in_columns += covered.min(calls);
        if covered != calls {
            st.behind.push((day, calls, covered));
        }
    }
    for chain in listing.days.values() {
        st.segments += chain.len() as u64;
        if full {
            for s in chain {
                if let Err(e) = s.verify() {
                    st.damaged.push((s.path.clone(), e.to_string()));
                }
            }
        }
    }
    Ok(st)
}
