//! Ingest: files, directories and stdin into the store, exactly once.
//!
//! The format is detected from the content, never the name: gzip by its magic bytes (then the
//! inner stream is detected again); JSON lines (one record per line, as delivered to S3 or
//! CloudWatch); CloudWatch Logs export-task lines (`TIMESTAMP {record}`); and the JSON document
//! that `aws logs filter-log-events` / `get-log-events` print (records inside
//! `events[].message`). Directories are walked in the S3 delivery layout, skipping the
//! `amazon-bedrock-logs-permission-check` object and the `HH/data/` body offloads.
//!
//! The pipeline: one stream thread per core takes the next input, reads (or inflates) it in
//! chunks of whole lines and parses each chunk while it is still in cache; the caller's thread is
//! the one writer, which puts each stream's chunks in order and commits records together with the
//! checkpoint that covers them. Memory is bounded by the chunk size and the channel, not by the
//! input.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use bedrock_usage_core::record::{parse_record, Invocation};
use flate2::read::MultiGzDecoder;

use crate::store::{Checkpoint, Store};

const CHUNK: usize = 1 << 20;
const FINGERPRINT_LEN: u64 = 4096;
const COMMIT_RECORDS: usize = 20_000;
const FLE_BATCH: usize = 5_000;

/// One bad piece of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    pub file: String,
    pub line: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub metadata_keys: Vec<String>,
    pub progress: bool,
    /// How many bad inputs are kept in full for the report (all are counted).
    pub max_examples: usize,
}

#[derive(Debug, Default, Clone)]
pub struct IngestSummary {
    /// Input streams read (files and stdin).
    pub files: u64,
    /// Files with nothing new since the last run.
    pub files_unchanged: u64,
    /// Files read on from a checkpoint.
    pub files_resumed: u64,
    pub records: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub bad: u64,
    pub bad_examples: Vec<BadInput>,
    /// Bytes of JSON read (after decompression).
    pub bytes: u64,
    pub elapsed: Duration,
}

impl IngestSummary {
    fn bad(&mut self, b: BadInput, max: usize) {
        self.bad += 1;
        if self.bad_examples.len() < max {
            self.bad_examples.push(b);
        }
    }
}

/// What to read and from where.
#[derive(Debug, Clone)]
struct Job {
    label: String,
    /// Checkpoint key: the canonical path; `None` for stdin.
    key: Option<String>,
    path: Option<PathBuf>,
    gzip: bool,
    size: u64,
    fingerprint: String,
    fingerprint_len: u64,
    offset: u64,
    lines: u64,
    records: u64,
}

/// Expands the command-line paths into input streams, in a stable order.
pub fn collect_inputs(
    paths: &[PathBuf],
    bad: &mut Vec<BadInput>,
) -> Vec<(String, Option<PathBuf>)> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(("-".to_string(), None));
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, 0, &mut out, bad),
            Ok(_) => out.push((p.display().to_string(), Some(p.clone()))),
            Err(e) => bad.push(BadInput {
                file: p.display().to_string(),
                line: None,
                reason: format!("cannot read: {e}"),
            }),
        }
    }
    out
}

fn walk(
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, Option<PathBuf>)>,
    bad: &mut Vec<BadInput>,
) {
    if depth > 64 {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            bad.push(BadInput {
                file: dir.display().to_string(),
                line: None,
                reason: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name == "amazon-bedrock-logs-permission-check" {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {
                if name == "data" && is_hour_partition(dir) {
                    continue; // S3-offloaded bodies, not records
                }
                walk(&p, depth + 1, out, bad);
            }
            Ok(_) => out.push((p.display().to_string(), Some(p))),
            Err(e) => bad.push(BadInput {
                file: p.display().to_string(),
                line: None,
                reason: format!("cannot read: {e}"),
            }),
        }
    }
}

/// `.../YYYY/MM/DD/HH`: the hour partition of the S3 delivery layout.
fn is_hour_partition(dir: &Path) -> bool {
    let parts: Vec<String> = dir
        .components()
        .rev()
        .take(4)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let all_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 4
        && all_digits(&parts[0], 2)
        && all_digits(&parts[1], 2)
        && all_digits(&parts[2], 2)
        && all_digits(&parts[3], 4)
}

/// A hash of a prefix of the file (it tells a replaced file from a grown one), and whether the
/// file starts with the gzip magic bytes: one read of the file's head.
fn head_of(path: &Path, len: u64) -> io::Result<(String, u64, bool)> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(len as usize);
    (&mut f).take(len.max(2)).read_to_end(&mut buf)?;
    let gzip = buf.starts_with(&[0x1f, 0x8b]);
    buf.truncate(len as usize);
    // FNV-1a, a word at a time.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = buf.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok((format!("{h:016x}"), buf.len() as u64, gzip))
}

/// Decides where to start each file from its checkpoint. Returns the jobs to run and the number
/// of files left as they were.
fn plan(
    store: &Store,
    inputs: Vec<(String, Option<PathBuf>)>,
    summary: &mut IngestSummary,
    max: usize,
) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (label, path) in inputs {
        let Some(path) = path else {
            jobs.push(Job {
                label,
                key: None,
                path: None,
                gzip: false,
                size: 0,
                fingerprint: String::new(),
                fingerprint_len: 0,
                offset: 0,
                lines: 0,
                records: 0,
            });
            continue;
        };
        let prepared = (|| -> io::Result<(String, u64)> {
            Ok((
                // Absolute, not canonical: resolving every symlink costs a system call per path
                // component, and a file reached by two paths is still counted once (by request id).
                std::path::absolute(&path)?.display().to_string(),
                std::fs::metadata(&path)?.len(),
            ))
        })();
        let (key, size) = match prepared {
            Ok(x) => x,
            Err(e) => {
                summary.bad(
                    BadInput {
                        file: label,
                        line: None,
                        reason: format!("cannot read: {e}"),
                    },
                    max,
                );
                continue;
            }
        };
        let ck = store.checkpoint(&key)?;
        let fp_len = ck
            .as_ref()
            .map(|c| c.fingerprint_len)
            .unwrap_or(FINGERPRINT_LEN);
        let (fp, got, gzip) = match head_of(&path, fp_len) {
            Ok(x) => x,
            Err(e) => {
                summary.bad(
                    BadInput {
                        file: label,
                        line: None,
                        reason: format!("cannot read: {e}"),
                    },
                    max,
                );
                continue;
            }
        };
        let mut job = Job {
            label: label.clone(),
            key: Some(key),
            path: Some(path.clone()),
            gzip,
            size,
            fingerprint: String::new(),
            fingerprint_len: 0,
            offset: 0,
            lines: 0,
            records: 0,
        };
        match ck {
            Some(c) if got == c.fingerprint_len && fp == c.fingerprint && c.gzip == job.gzip => {
                if c.complete && c.size == job.size {
                    summary.files_unchanged += 1;
                    continue;
                }
                if job.gzip && job.size >= c.size || !job.gzip && job.size >= c.offset {
                    job.offset = c.offset;
                    job.lines = c.lines;
                    job.records = c.records;
                    if !job.gzip && job.size == c.offset {
                        summary.files_unchanged += 1;
                        continue;
                    }
                    if c.offset > 0 {
                        summary.files_resumed += 1;
                    }
                }
                job.fingerprint = c.fingerprint;
                job.fingerprint_len = c.fingerprint_len;
            }
            _ => {
                // New, replaced or truncated: read from the start (the request ids make a re-read
                // harmless). Fingerprint the full prefix from now on.
                let (fp, got, _) = match head_of(&path, FINGERPRINT_LEN) {
                    Ok(x) => x,
                    Err(e) => {
                        summary.bad(
                            BadInput {
                                file: label,
                                line: None,
                                reason: format!("cannot read: {e}"),
                            },
                            max,
                        );
                        continue;
                    }
                };
                job.fingerprint = fp;
                job.fingerprint_len = got;
            }
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// Chunk buffers, recycled: a fresh multi-megabyte buffer per chunk would cost page faults on
/// every small file of an S3 layout.
#[derive(Default)]
struct BufPool(Mutex<Vec<Vec<u8>>>);

impl BufPool {
    fn get(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK + (64 << 10)))
    }
    fn put(&self, mut v: Vec<u8>) {
        v.clear();
        if let Ok(mut p) = self.0.lock() {
            if p.len() < 16 {
                p.push(v);
            }
        }
    }
}

/// A piece of a stream: whole lines.
struct Chunk {
    job: usize,
    seq: u64,
    data: Vec<u8>,
    start_offset: u64,
    /// The stream ended without a newline after this chunk's last line.
    unterminated: bool,
}

/// Parsed records of one chunk, or of part of a document.
struct Parsed {
    job: usize,
    seq: u64,
    records: Vec<Invocation>,
    bad: Vec<BadInput>,
    /// Where the next chunk starts (what a checkpoint may record); 0: no change.
    end_offset: u64,
    /// Lines consumed up to `end_offset` (bad-line numbers are relative to the chunk's start
    /// until the writer, which knows where the chunk starts, makes them absolute).
    lines: u64,
    bytes: u64,
    /// The last message of its stream.
    last: bool,
    /// The stream was read to its end without error.
    complete: bool,
}

/// Runs an ingest of `paths` into `store`.
pub fn ingest(store: &mut Store, paths: &[PathBuf], opts: &IngestOptions) -> Result<IngestSummary> {
    let started = Instant::now();
    let mut summary = IngestSummary::default();
    let mut walk_bad = Vec::new();
    let inputs = collect_inputs(paths, &mut walk_bad);
    for b in walk_bad {
        summary.bad(b, opts.max_examples);
    }
    let jobs = plan(store, inputs, &mut summary, opts.max_examples)?;
    summary.files = jobs.len() as u64 + summary.files_unchanged;
    let jobs = Arc::new(jobs);
    let progress = crate::progress::Progress::new(opts.progress, jobs.len() as u64);

    // One stream thread per core: each reads (or inflates) a file and parses its chunks itself,
    // while they are still in its cache; the calling thread is the one writer.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(1);
    // Parsed records are small; a deep queue lets parsing go on while the writer commits.
    let (done_tx, done_rx) = mpsc::sync_channel::<Parsed>(1024);
    let next_job = Arc::new(Mutex::new(0usize));
    let pool = Arc::new(BufPool::default());

    let result = std::thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            let (jobs, next_job, done_tx, pool) = (
                jobs.clone(),
                next_job.clone(),
                done_tx.clone(),
                pool.clone(),
            );
            s.spawn(move || loop {
                let i = {
                    let Ok(mut n) = next_job.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= jobs.len() {
                    return;
                }
                if read_stream(i, &jobs[i], &done_tx, &pool).is_err() {
                    return; // the writer hung up
                }
            });
        }
        drop(done_tx);
        write_all(store, &jobs, done_rx, opts, &mut summary, &progress)
    });
    progress.finish();
    result?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads one stream, cutting it into chunks of whole lines, or parses a whole document.
/// Errs only when the pipeline is gone.
fn read_stream(
    job_ix: usize,
    job: &Job,
    done: &SyncSender<Parsed>,
    pool: &BufPool,
) -> Result<(), ()> {
    let fail = |reason: String, offset: u64, seq: u64| {
        done.send(Parsed {
            job: job_ix,
            seq,
            records: Vec::new(),
            bad: vec![BadInput {
                file: String::new(),
                line: None,
                reason,
            }],
            end_offset: offset,
            lines: 0,
            bytes: 0,
            last: true,
            complete: false,
        })
        .map_err(|_| ())
    };
    let mut reader: Box<dyn Read + Send> = match &job.path {
        None => Box::new(io::stdin()),
        Some(p) => match File::open(p) {
            Ok(mut f) => {
                if job.gzip {
                    let mut d: Box<dyn Read + Send> = match inflate_whole(p, job.size) {
                        Some(bytes) => Box::new(io::Cursor::new(bytes)),
                        None => Box::new(MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f))),
                    };
                    if job.offset > 0 {
                        // Inflate and drop what a previous run already stored.
                        match io::copy(&mut (&mut d).take(job.offset), &mut io::sink()) {
                            Ok(n) if n == job.offset => {}
                            Ok(_) | Err(_) => {
                                return fail(
                                    "the file changed since it was last read and cannot be resumed"
                                        .into(),
                                    job.offset,
                                    0,
                                )
                            }
                        }
                    }
                    d
                } else {
                    if job.offset > 0 && f.seek(SeekFrom::Start(job.offset)).is_err() {
                        return fail("cannot seek to the checkpoint".into(), job.offset, 0);
                    }
                    Box::new(f)
                }
            }
            Err(e) => return fail(format!("cannot read: {e}"), job.offset, 0),
        },
    };
    // A stdin stream may itself be gzip.
    let mut buf: Vec<u8> = pool.get();
    let mut eof = fill(&mut reader, &mut buf, 2);
    if job.path.is_none() && buf.starts_with(&[0x1f, 0x8b]) {
        let head = std::mem::take(&mut buf);
        reader = Box::new(MultiGzDecoder::new(io::Cursor::new(head).chain(reader)));
        eof = fill(&mut reader, &mut buf, 2);
    }
    if let Err(e) = &eof {
        return fail(read_error(job, e), job.offset, 0);
    }
    // Detect the format at the start of a stream.
    if job.offset == 0 {
        let _ = fill(&mut reader, &mut buf, 64 << 10);
        let first = buf.iter().position(|b| !b.is_ascii_whitespace());
        match first.map(|i| buf[i]) {
            None => {}
            Some(b'{') if is_log_events_document(&buf) => {
                return read_document(
                    job_ix,
                    job,
                    io::Cursor::new(std::mem::take(&mut buf)).chain(reader),
                    done,
                );
            }
            Some(b'{') | Some(b'0'..=b'9') => {}
            Some(_) => {
                let what = if buf
                    .iter()
                    .take(512)
                    .any(|&b| b == 0 || (b < 0x20 && !b.is_ascii_whitespace()))
                {
                    "binary data"
                } else {
                    "text that is not JSON"
                };
                return fail(format!("not a Bedrock invocation log: the content is {what} (expected JSON lines, gzip, a CloudWatch export or `aws logs filter-log-events` output)"), 0, 0);
            }
        }
    }
    let mut seq = 0u64;
    let mut offset = job.offset;
    let mut want = CHUNK;
    loop {
        let r = fill(&mut reader, &mut buf, want);
        let at_end = !matches!(r, Ok(false));
        // Cut after the last newline; keep the rest for the next chunk.
        // At a clean end everything goes (an unfinished last line is judged by the parser); after a
        // read error only whole lines do, so that a resumed read starts at a line boundary.
        let cut = match (at_end && r.is_ok(), memchr::memrchr(b'\n', &buf)) {
            (true, _) => buf.len(),
            (false, Some(i)) => i + 1,
            (false, None) if at_end => 0,
            (false, None) => {
                // A line longer than a chunk: read on.
                want = buf.len() + CHUNK;
                continue;
            }
        };
        want = CHUNK;
        let mut rest = pool.get();
        rest.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        let data = std::mem::replace(&mut buf, rest);
        let unterminated = at_end && !data.is_empty() && !data.ends_with(b"\n") && r.is_ok();
        if !data.is_empty() {
            let len = data.len() as u64;
            let chunk = Chunk {
                job: job_ix,
                seq,
                data,
                start_offset: offset,
                unterminated,
            };
            // Parse here, while the chunk is still in this core's cache.
            let parsed = parse_chunk(&chunk);
            pool.put(chunk.data);
            done.send(parsed).map_err(|_| ())?;
            seq += 1;
            offset += len;
        }
        if at_end {
            return match r {
                // The end: no offset of its own (the chunks carry theirs; an unfinished last line
                // may have held the checkpoint back).
                Ok(_) => done
                    .send(Parsed {
                        job: job_ix,
                        seq,
                        records: Vec::new(),
                        bad: Vec::new(),
                        end_offset: 0,
                        lines: 0,
                        bytes: 0,
                        last: true,
                        complete: true,
                    })
                    .map_err(|_| ()),
                Err(e) => {
                    let mut reason = read_error(job, &e);
                    if !buf.is_empty() {
                        reason.push_str(&format!(
                            " ({} bytes of an unfinished line dropped)",
                            buf.len()
                        ));
                    }
                    fail(reason, offset, seq)
                }
            };
        }
    }
}

fn read_error(job: &Job, e: &io::Error) -> String {
    if job.gzip
        || e.kind() == io::ErrorKind::UnexpectedEof
        || e.kind() == io::ErrorKind::InvalidInput
    {
        format!("truncated or corrupt gzip stream: {e}; the records before it were read")
    } else {
        format!("read error: {e}")
    }
}

/// Gzip objects up to this size are inflated whole with libdeflate (about 2.5x faster than
/// streaming zlib here); larger ones, multi-member ones and broken ones are streamed.
const WHOLE_GZIP_MAX: u64 = 16 << 20;
const WHOLE_GZIP_OUT_MAX: usize = 64 << 20;

/// The decompressed content of a small gzip file (every member), or `None` to stream it instead
/// (too large, or broken: the streaming reader then reads what it can and reports where it
/// stopped).
pub fn inflate_whole(path: &Path, size: u64) -> Option<Vec<u8>> {
    if !(18..=WHOLE_GZIP_MAX).contains(&size) {
        return None;
    }
    inflate_bytes(&std::fs::read(path).ok()?)
}

/// Inflates every gzip member of `gz` (up to 64 MiB out), or `None` if it is broken or larger.
pub fn inflate_bytes(gz: &[u8]) -> Option<Vec<u8>> {
    let n = gz.len();
    if n < 18 {
        return None;
    }
    // The last member's size: a good first guess for the whole (usually one member).
    let last = u32::from_le_bytes([gz[n - 4], gz[n - 3], gz[n - 2], gz[n - 1]]) as usize;
    let decompressor = Inflater::new()?;
    let mut out: Vec<u8> = Vec::with_capacity(last.clamp(64 << 10, WHOLE_GZIP_OUT_MAX));
    let mut pos = 0;
    while pos < n {
        let (used, written) = loop {
            match decompressor.member(&gz[pos..], out.spare_capacity_mut()) {
                Member::Done { used, written } => break (used, written),
                Member::NoRoom if out.capacity() < WHOLE_GZIP_OUT_MAX => {
                    out.reserve(out.capacity().max(64 << 10))
                }
                Member::NoRoom | Member::Bad => return None,
            }
        };
        // SAFETY: libdeflate wrote exactly `written` bytes into the spare capacity.
        unsafe { out.set_len(out.len() + written) };
        pos += used;
    }
    Some(out)
}

/// A libdeflate decompressor, freed on drop.
struct Inflater(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

enum Member {
    Done { used: usize, written: usize },
    NoRoom,
    Bad,
}

impl Inflater {
    fn new() -> Option<Inflater> {
        // SAFETY: a plain allocation; null (out of memory) is handled.
        std::ptr::NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() })
            .map(Inflater)
    }

    /// Inflates the gzip member at the start of `input` into `out`.
    fn member(&self, input: &[u8], out: &mut [std::mem::MaybeUninit<u8>]) -> Member {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: the pointers and lengths describe live buffers; libdeflate writes at most
        // `out.len()` bytes to `out` and reads at most `input.len()` bytes.
        let r = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        match r {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS => Member::Done { used, written },
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Member::NoRoom,
            _ => Member::Bad,
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// Reads until `buf` holds at least `want` bytes or the stream ends. `Ok(true)` at the end.
/// (`read_to_end` on a `Take` fills spare capacity without zeroing it first.)
pub(crate) fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    while buf.len() < want {
        let need = want - buf.len();
        buf.reserve(need);
        match r.take(need as u64).read_to_end(buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// `{"events": [...` (possibly pretty-printed, possibly after other keys) rather than a record.
/// Looks at the start of the first line only (a record line can be megabytes long).
pub(crate) fn is_log_events_document(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let first = &head[start..];
    let line = &first[..memchr::memchr(b'\n', first).unwrap_or(first.len())];
    if line.iter().all(|b| b.is_ascii_whitespace() || *b == b'{') {
        // `{` alone on its line: pretty-printed, which a delivered record never is.
        return true;
    }
    let compact: Vec<u8> = line
        .iter()
        .take(64)
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .take(40)
        .collect();
    [
        &b"{\"events\":"[..],
        b"{\"searchedLogStreams\":",
        b"{\"nextToken\":",
        b"{\"nextForwardToken\":",
    ]
    .iter()
    .any(|p| compact.starts_with(p))
}

/// Parses the output of `aws logs filter-log-events` (or `get-log-events`): records are the
/// `message` strings of `events`. Streams the document; events are parsed as they come.
fn read_document(
    job_ix: usize,
    job: &Job,
    reader: impl Read,
    done: &SyncSender<Parsed>,
) -> Result<(), ()> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(default)]
        message: Option<String>,
    }
    struct Sink<'a> {
        job: usize,
        done: &'a SyncSender<Parsed>,
        seq: u64,
        batch: Vec<Invocation>,
        bad: Vec<BadInput>,
        events: u64,
        bytes: u64,
        end_offset: u64,
        gone: bool,
    }
    impl Sink<'_> {
        fn flush(&mut self, last: bool, complete: bool, reason: Option<String>) {
            if let Some(r) = reason {
                self.bad.push(BadInput {
                    file: String::new(),
                    line: None,
                    reason: r,
                });
            }
            let p = Parsed {
                job: self.job,
                seq: self.seq,
                records: std::mem::take(&mut self.batch),
                bad: std::mem::take(&mut self.bad),
                end_offset: self.end_offset,
                lines: 0,
                bytes: std::mem::take(&mut self.bytes),
                last,
                complete,
            };
            self.seq += 1;
            if self.done.send(p).is_err() {
                self.gone = true;
            }
        }
    }
    struct Doc<'s, 'a>(&'s RefCell<Sink<'a>>);
    struct Events<'s, 'a>(&'s RefCell<Sink<'a>>);
    impl<'de> DeserializeSeed<'de> for Doc<'_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Doc<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object with `events`")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<String>()? {
                if k == "events" {
                    map.next_value_seed(Events(self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Events<'_, '_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Events<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of events")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(ev) = seq.next_element::<Event>()? {
                let mut s = self.0.borrow_mut();
                let n = s.events;
                s.events += 1;
                match ev.message {
                    None => s.bad.push(BadInput {
                        file: String::new(),
                        line: None,
                        reason: format!("events[{n}]: no `message`"),
                    }),
                    Some(m) => {
                        s.bytes += m.len() as u64;
                        match parse_record(m.as_bytes()) {
                            Ok(r) => s.batch.push(r),
                            Err(e) => s.bad.push(BadInput {
                                file: String::new(),
                                line: None,
                                reason: format!("events[{n}].message: {e}"),
                            }),
                        }
                    }
                }
                if s.batch.len() >= FLE_BATCH {
                    s.flush(false, false, None);
                    if s.gone {
                        return Err(serde::de::Error::custom("ingest stopped"));
                    }
                }
            }
            Ok(())
        }
    }
    let sink = RefCell::new(Sink {
        job: job_ix,
        done,
        seq: 0,
        batch: Vec::new(),
        bad: Vec::new(),
        events: 0,
        bytes: 0,
        end_offset: 0,
        gone: false,
    });
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, reader));
    let result = Doc(&sink).deserialize(&mut de).and_then(|_| de.end());
    let mut s = sink.into_inner();
    if s.gone {
        return Err(());
    }
    match result {
        Ok(()) => {
            // Read whole: a plain file is checkpointed at its end (a gzip one by `complete`).
            if !job.gzip {
                s.end_offset = job.size;
            }
            s.flush(true, true, None)
        }
        Err(e) => s.flush(true, false, Some(format!("not a valid `aws logs filter-log-events` document at line {}, column {}: {e}; the events before it were read", e.line(), e.column()))),
    }
    if s.gone {
        Err(())
    } else {
        Ok(())
    }
}

/// Parses the lines of a chunk: JSON records, or CloudWatch export lines (`TIMESTAMP {record}`).
/// Bad lines are reported with their line numbers (the file name is filled in by the writer).
fn parse_chunk(c: &Chunk) -> Parsed {
    let data = &c.data;
    let mut records = Vec::with_capacity(data.len() / 4096 + 1);
    let mut bad = Vec::new();
    let mut line_no = 0u64;
    let mut pos = 0usize;
    let mut end_offset = c.start_offset + data.len() as u64;
    while pos < data.len() {
        let line_start = pos;
        let nl = memchr::memchr(b'\n', &data[pos..]).map(|i| pos + i);
        let line_end = nl.unwrap_or(data.len());
        pos = line_end + 1;
        line_no += 1;
        let mut line = &data[line_start..line_end];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let Some(start) = line.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        let mut body = &line[start..];
        if body[0].is_ascii_digit() {
            // An export-task line: a timestamp, a space, then the record.
            match memchr::memchr(b' ', body) {
                Some(sp) => body = &body[sp + 1..],
                None => {
                    bad.push(BadInput {
                        file: String::new(),
                        line: Some(line_no),
                        reason:
                            "not a record: the line starts with a number and has no record after it"
                                .into(),
                    });
                    continue;
                }
            }
        }
        match parse_record(body) {
            Ok(r) => records.push(r),
            Err(e) if nl.is_none() && c.unterminated => {
                // The file may still be being written: the checkpoint stays before this line, so
                // a later run reads it again once it is whole.
                bad.push(BadInput {
                    file: String::new(),
                    line: Some(line_no),
                    reason: format!(
                        "incomplete last line (no newline at the end of the file): {e}"
                    ),
                });
                end_offset = c.start_offset + line_start as u64;
                line_no -= 1;
                break;
            }
            Err(e) => bad.push(BadInput {
                file: String::new(),
                line: Some(line_no),
                reason: e.to_string(),
            }),
        }
    }
    Parsed {
        job: c.job,
        seq: c.seq,
        records,
        bad,
        end_offset,
        lines: line_no,
        bytes: data.len() as u64,
        last: false,
        complete: false,
    }
}

/// Parses whole JSON lines held in memory (an S3 object, a batch of log-event messages): the
/// records, the bad lines (numbered from 1, file names left empty) and the number of lines.
pub(crate) fn parse_lines(data: Vec<u8>) -> (Vec<Invocation>, Vec<BadInput>, u64) {
    let p = parse_chunk(&Chunk {
        job: 0,
        seq: 0,
        data,
        start_offset: 0,
        unterminated: false,
    });
    (p.records, p.bad, p.lines)
}

/// The content of an object that may be gzip (several members or one), decompressed; an error
/// says how far a broken stream could be read.
pub(crate) fn decompress(data: Vec<u8>) -> std::result::Result<(Vec<u8>, bool), String> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok((data, false));
    }
    if let Some(out) = inflate_bytes(&data) {
        return Ok((out, true));
    }
    let mut out = Vec::new();
    match MultiGzDecoder::new(&data[..]).read_to_end(&mut out) {
        Ok(_) => Ok((out, true)),
        Err(e) => Err(format!(
            "broken gzip after {} decompressed bytes: {e}",
            out.len()
        )),
    }
}

/// The writer: puts parsed pieces back in stream order, commits records with their checkpoints.
fn write_all(
    store: &mut Store,
    jobs: &[Job],
    rx: Receiver<Parsed>,
    opts: &IngestOptions,
    summary: &mut IngestSummary,
    progress: &crate::progress::Progress,
) -> Result<()> {
    let mut pending: HashMap<usize, BTreeMap<u64, Parsed>> = HashMap::new();
    let mut next_seq = vec![0u64; jobs.len()];
    let mut state: Vec<Checkpoint> = jobs
        .iter()
        .map(|j| Checkpoint {
            path: j.key.clone().unwrap_or_default(),
            fingerprint: j.fingerprint.clone(),
            fingerprint_len: j.fingerprint_len,
            size: j.size,
            gzip: j.gzip,
            offset: j.offset,
            lines: j.lines,
            complete: false,
            records: j.records,
        })
        .collect();
    let mut batch: Vec<Invocation> = Vec::new();
    let mut dirty: Vec<usize> = Vec::new();
    let mut finished = 0u64;
    let commit = |store: &mut Store,
                  batch: &mut Vec<Invocation>,
                  dirty: &mut Vec<usize>,
                  state: &[Checkpoint],
                  summary: &mut IngestSummary|
     -> Result<()> {
        let cks: Vec<Checkpoint> = dirty
            .iter()
            .filter(|&&i| jobs[i].key.is_some())
            .map(|&i| state[i].clone())
            .collect();
        if batch.is_empty() && cks.is_empty() {
            return Ok(());
        }
        let out = store.write(batch, &cks, &opts.metadata_keys)?;
        summary.inserted += out.inserted;
        summary.duplicates += out.duplicates;
        batch.clear();
        dirty.clear();
        Ok(())
    };
    for p in rx {
        let job = p.job;
        pending.entry(job).or_default().insert(p.seq, p);
        while let Some(p) = pending.get_mut(&job).and_then(|m| m.remove(&next_seq[job])) {
            next_seq[job] += 1;
            let label = &jobs[job].label;
            let base_line = state[job].lines;
            for mut b in p.bad {
                b.file = label.clone();
                b.line = b.line.map(|l| l + base_line);
                summary.bad(b, opts.max_examples);
            }
            summary.records += p.records.len() as u64;
            summary.bytes += p.bytes;
            let ck = &mut state[job];
            ck.records += p.records.len() as u64;
            if p.end_offset > 0 {
                ck.offset = p.end_offset;
            }
            ck.lines += p.lines;
            if p.last {
                ck.complete = p.complete && (ck.gzip || ck.offset == ck.size);
                finished += 1;
            }
            batch.extend(p.records);
            if !dirty.contains(&job) {
                dirty.push(job);
            }
            progress.update(finished, summary.records, summary.bytes);
        }
        if batch.len() >= COMMIT_RECORDS || dirty.len() >= 512 {
            commit(store, &mut batch, &mut dirty, &state, summary)?;
        }
    }
    commit(store, &mut batch, &mut dirty, &state, summary)?;
    Ok(())
}
