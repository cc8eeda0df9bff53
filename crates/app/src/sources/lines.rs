//! The one reader of log files and streams, for `ingest` and `query --from` alike: the same
//! format detection, the same rule for each line, the same threads.
//!
//! The format is detected from the content, never the name: gzip by its magic bytes (then the
//! inner stream is detected again); JSON lines (one record per line, as delivered to S3 or
//! CloudWatch); CloudWatch Logs export-task lines (`TIMESTAMP {record}`, the core's
//! `layout::event_of_line`); and the JSON document that `aws logs filter-log-events` /
//! `get-log-events` print (records inside `events[].message`), which is streamed event by event.
//!
//! One reader thread per core takes the next input, reads (or inflates) it in chunks of whole
//! lines and parses each chunk with the caller's [`EventParser`] while it is still in cache; the
//! calling thread gets the parsed [`Piece`]s back in order (each input's pieces in order, and for
//! [`Order::InputByInput`] every input's before the next one's). Memory is bounded by the chunk
//! size and the queue, not by the input.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Condvar, Mutex};

use bedrock_usage_core::layout::event_of_line;
use flate2::read::MultiGzDecoder;

use super::gzip::{inflate_whole, is_gzip};
use super::BadInput;

const CHUNK: usize = 1 << 20;
/// Events of a `filter-log-events` document per piece.
const DOCUMENT_BATCH: usize = 5_000;

/// Turns one event (the JSON of a line, or of a document's `message`) into an item.
pub trait EventParser: Sync {
    type Item: Send;
    /// `stream` is the event's log stream where the input says (a `filter-log-events`
    /// document). `Ok(None)` leaves the event out (not an error: outside a time range).
    fn parse(
        &self,
        json: &[u8],
        stream: Option<&str>,
        label: &str,
    ) -> Result<Option<Self::Item>, String>;
}

/// One input stream: a file (read on from `offset` when resuming) or stdin.
#[derive(Debug, Clone)]
pub struct Input {
    /// As the user named it, for messages.
    pub label: String,
    /// `None`: stdin.
    pub path: Option<PathBuf>,
    /// Whether the file is gzip; `None`: find out from its first bytes.
    pub gzip: Option<bool>,
    pub size: u64,
    /// Where to start: bytes of the file, or of the decompressed stream for gzip.
    pub offset: u64,
    /// Lines before `offset` (so that line numbers in messages stay those of the file).
    pub lines: u64,
}

impl Input {
    /// An input read once from its start, its format found from its content (`None`: stdin).
    pub fn new(label: String, path: Option<PathBuf>) -> Input {
        Input {
            label,
            path,
            gzip: None,
            size: 0,
            offset: 0,
            lines: 0,
        }
    }
}

/// Parsed items of one chunk of an input, or of part of a document, with what a checkpoint
/// needs to cover them.
pub struct Piece<T> {
    pub input: usize,
    seq: u64,
    pub items: Vec<T>,
    /// Bad lines and events, with file and (absolute) line numbers.
    pub bad: Vec<BadInput>,
    /// Where the next piece starts (what a checkpoint may record); 0: no change.
    pub end_offset: u64,
    /// Lines consumed up to `end_offset`.
    pub lines: u64,
    /// Bytes of JSON read.
    pub bytes: u64,
    /// The last piece of its input.
    pub last: bool,
    /// The input was read to its end without error.
    pub complete: bool,
    /// The input is a whole document (never to be read on from a byte offset).
    pub document: bool,
}

impl<T> Piece<T> {
    fn new(input: usize, seq: u64) -> Piece<T> {
        Piece {
            input,
            seq,
            items: Vec::new(),
            bad: Vec::new(),
            end_offset: 0,
            lines: 0,
            bytes: 0,
            last: false,
            complete: false,
            document: false,
        }
    }
}

/// In which order pieces reach the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Each input's pieces in order, inputs interleaved as they are read (ingest: the writer
    /// commits whatever is ready).
    Interleaved,
    /// Input by input (a query's results must not depend on thread timing). Readers stay
    /// within `lead` inputs of the one being handed out, so memory stays flat when one input is
    /// much larger than the rest.
    InputByInput { lead: usize },
}

/// How many pieces may wait in the queue.
pub struct ReadOptions {
    pub order: Order,
    pub queue: usize,
    /// The longest line read as a record; a longer one is skipped (reported, never held in
    /// memory whole).
    pub max_record: usize,
}

/// The default longest record: 64 MiB (Bedrock puts bodies over 100 KB in S3, so a real
/// record is far smaller).
pub const MAX_RECORD: usize = 64 << 20;

/// Parsed records in flight (read, not yet handed out) may not pass this many, for
/// [`Order::Interleaved`]: memory stays flat whatever the input (a piece of slim records holds
/// thousands of them), while pieces of few large records still queue deep enough for the readers
/// to stay ahead of the writer.
const MAX_IN_FLIGHT: usize = 64 * 1024;

/// Records in flight, and a wait for room.
struct Budget {
    used: Mutex<(usize, bool)>,
    freed: Condvar,
}

impl Budget {
    fn acquire(&self, n: usize) {
        let Ok(mut g) = self.used.lock() else { return };
        // One piece always goes, however large, so that nothing waits for ever.
        while !g.1 && g.0 > 0 && g.0 + n > MAX_IN_FLIGHT {
            g = match self.freed.wait(g) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
        g.0 += n;
    }
    fn release(&self, n: usize) {
        if let Ok(mut g) = self.used.lock() {
            g.0 = g.0.saturating_sub(n);
        }
        self.freed.notify_all();
    }
    fn stop(&self) {
        if let Ok(mut g) = self.used.lock() {
            g.1 = true;
        }
        self.freed.notify_all();
    }
}

/// Where a reader sends its pieces: the queue, after room in the budget (if any).
struct Out<'a, T> {
    tx: SyncSender<Piece<T>>,
    budget: Option<&'a Budget>,
}

impl<T> Out<'_, T> {
    fn send(&self, p: Piece<T>) -> Result<(), ()> {
        if let Some(b) = self.budget {
            b.acquire(p.items.len());
        }
        self.tx.send(p).map_err(|_| ())
    }
}

/// How far the caller has consumed (inputs handed out whole), for [`Order::InputByInput`].
struct Gate {
    consumed: Mutex<(usize, bool)>,
    moved: Condvar,
}

impl Gate {
    /// Waits until input `i` may be read (or the caller stopped: false).
    fn wait_for(&self, i: usize, lead: usize) -> bool {
        let Ok(mut g) = self.consumed.lock() else {
            return false;
        };
        while !g.1 && i >= g.0 + lead {
            g = match self.moved.wait(g) {
                Ok(g) => g,
                Err(_) => return false,
            };
        }
        !g.1
    }
    fn set(&self, consumed: usize, stopped: bool) {
        if let Ok(mut g) = self.consumed.lock() {
            *g = (consumed, stopped || g.1);
        }
        self.moved.notify_all();
    }
}

/// Threads to read with: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(1)
}

/// Reads every input with one thread per core and hands the parsed pieces to `consume` on the
/// calling thread, in `opts.order`, until all are read or `consume` returns `Ok(false)` (or an
/// error, which is returned).
pub fn read_all<P: EventParser, E>(
    inputs: &[Input],
    parser: &P,
    opts: ReadOptions,
    mut consume: impl FnMut(Piece<P::Item>) -> Result<bool, E>,
) -> Result<(), E> {
    let (tx, rx) = mpsc::sync_channel::<Piece<P::Item>>(opts.queue.max(1));
    let next = Mutex::new(0usize);
    let gate = Gate {
        consumed: Mutex::new((0, false)),
        moved: Condvar::new(),
    };
    let max_record = opts.max_record.max(CHUNK);
    let lead = match opts.order {
        Order::InputByInput { lead } => Some(lead.max(1)),
        Order::Interleaved => None,
    };
    let budget = Budget {
        used: Mutex::new((0, false)),
        freed: Condvar::new(),
    };
    // Input by input, the gate bounds how far readers go (and pieces may wait out of order).
    let budget = lead.is_none().then_some(&budget);
    std::thread::scope(|s| {
        for _ in 0..threads().min(inputs.len().max(1)) {
            let (next, gate) = (&next, &gate);
            let tx = Out {
                tx: tx.clone(),
                budget,
            };
            s.spawn(move || {
                let mut pool = Vec::new();
                loop {
                    let i = {
                        let Ok(mut n) = next.lock() else { return };
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(input) = inputs.get(i) else { return };
                    if let Some(lead) = lead {
                        if !gate.wait_for(i, lead) {
                            return;
                        }
                    }
                    if read_input(i, input, parser, &tx, &mut pool, max_record).is_err() {
                        return; // the caller stopped reading
                    }
                }
            });
        }
        drop(tx);
        let result = deliver(inputs.len(), rx, opts.order, &gate, budget, &mut consume);
        // Release readers waiting at the gate or for room; the dropped receiver stops the
        // others.
        gate.set(usize::MAX / 2, true);
        if let Some(b) = budget {
            b.stop();
        }
        result
    })
}

/// Puts pieces in order and hands them out.
fn deliver<T, E>(
    inputs: usize,
    rx: mpsc::Receiver<Piece<T>>,
    order: Order,
    gate: &Gate,
    budget: Option<&Budget>,
    consume: &mut impl FnMut(Piece<T>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut pending: HashMap<usize, BTreeMap<u64, Piece<T>>> = HashMap::new();
    let mut next_seq = vec![0u64; inputs];
    let mut current = 0usize;
    for p in rx {
        let input = p.input;
        pending.entry(input).or_default().insert(p.seq, p);
        let mut ready = match order {
            Order::Interleaved => input,
            Order::InputByInput { .. } => current,
        };
        loop {
            let Some(p) = pending
                .get_mut(&ready)
                .and_then(|m| m.remove(&next_seq[ready]))
            else {
                break;
            };
            next_seq[ready] += 1;
            let (last, items) = (p.last, p.items.len());
            let more = consume(p)?;
            if let Some(b) = budget {
                b.release(items);
            }
            if !more {
                return Ok(());
            }
            if last {
                pending.remove(&ready);
                if let Order::InputByInput { .. } = order {
                    current += 1;
                    gate.set(current, false);
                    ready = current;
                }
            }
        }
    }
    Ok(())
}

/// Reads one input, cutting it into chunks of whole lines, or streams a whole document.
/// Errs only when the caller stopped reading.
fn read_input<P: EventParser>(
    ix: usize,
    input: &Input,
    parser: &P,
    tx: &Out<'_, P::Item>,
    pool: &mut Vec<Vec<u8>>,
    max_record: usize,
) -> Result<(), ()> {
    let fail = |reason: String, offset: u64, seq: u64| {
        let mut p = Piece::new(ix, seq);
        p.bad.push(BadInput {
            file: input.label.clone(),
            line: None,
            reason,
        });
        p.end_offset = offset;
        p.last = true;
        tx.send(p).map_err(|_| ())
    };
    let mut buf = pool
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(CHUNK + (64 << 10)));
    buf.clear();
    let mut gzip = input.gzip;
    let mut reader: Box<dyn Read + Send> = match &input.path {
        None => Box::new(io::stdin()),
        Some(p) => match File::open(p) {
            Ok(mut f) => {
                if gzip == Some(false)
                    && input.offset > 0
                    && f.seek(SeekFrom::Start(input.offset)).is_err()
                {
                    return fail("cannot seek to the checkpoint".into(), input.offset, 0);
                }
                Box::new(f)
            }
            Err(e) => return fail(format!("cannot read: {e}"), input.offset, 0),
        },
    };
    if gzip.is_none() {
        // Not known from a checkpoint's planning (stdin, `query --from`): look.
        if let Err(e) = fill(&mut reader, &mut buf, 2) {
            return fail(format!("cannot read: {e}"), input.offset, 0);
        }
        gzip = Some(is_gzip(&buf));
    }
    if gzip == Some(true) {
        let whole = input.path.as_deref().and_then(|p| {
            let size = match input.size {
                0 => std::fs::metadata(p).map_or(0, |m| m.len()),
                n => n,
            };
            inflate_whole(p, size)
        });
        let head = std::mem::take(&mut buf);
        let mut d: Box<dyn Read + Send> = match whole {
            Some(bytes) => Box::new(io::Cursor::new(bytes)),
            None => Box::new(MultiGzDecoder::new(BufReader::with_capacity(
                1 << 20,
                io::Cursor::new(head).chain(reader),
            ))),
        };
        if input.offset > 0 {
            // Inflate and drop what a previous run already stored.
            match io::copy(&mut (&mut d).take(input.offset), &mut io::sink()) {
                Ok(n) if n == input.offset => {}
                Ok(_) | Err(_) => {
                    return fail(
                        "the file changed since it was last read and cannot be resumed".into(),
                        input.offset,
                        0,
                    )
                }
            }
        }
        reader = d;
    }
    let gz = gzip == Some(true);
    tracing::debug!(file = %input.label, gzip = gz, offset = input.offset, "Reading");
    let eof = fill(&mut reader, &mut buf, 2);
    if let Err(e) = &eof {
        return fail(read_error(gz, e), input.offset, 0);
    }
    // A UTF-8 byte-order mark (PowerShell writes one) is not part of the first record.
    let mut bom = 0u64;
    if input.offset == 0 {
        let _ = fill(&mut reader, &mut buf, 3);
        if buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
            bom = 3;
        }
    }
    // Detect the format at the start of a stream.
    if input.offset == 0 {
        let _ = fill(&mut reader, &mut buf, 64 << 10);
        let first = buf.iter().position(|b| !b.is_ascii_whitespace());
        match first.map(|i| buf[i]) {
            None => {}
            Some(b'{' | b'[') if layout_of(&buf) != Layout::Lines => {
                let layout = layout_of(&buf);
                let head = std::mem::take(&mut buf);
                let reader = io::Cursor::new(head).chain(reader);
                return if layout == Layout::Document {
                    read_document(ix, input, parser, reader, gz, tx)
                } else {
                    read_json_text(ix, input, parser, reader, gz, tx)
                };
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
    let mut offset = input.offset + bom;
    let mut line = input.lines;
    let mut want = CHUNK;
    // The bytes of `buf` already known to hold no newline (a long line is searched once, not
    // again at every chunk: linear time).
    let mut searched = 0usize;
    loop {
        let r = fill(&mut reader, &mut buf, want);
        let at_end = !matches!(r, Ok(false));
        let found = memchr::memrchr(b'\n', &buf[searched.min(buf.len())..]).map(|i| i + searched);
        // Cut after the last newline; keep the rest for the next chunk. At a clean end
        // everything goes (an unfinished last line is judged by the parser); after a read error
        // only whole lines do, so that a resumed read starts at a line boundary.
        let cut = match (at_end && r.is_ok(), found) {
            (true, _) => buf.len(),
            (false, Some(i)) => i + 1,
            (false, None) if at_end => 0,
            (false, None) if buf.len() >= max_record => {
                // Longer than any record may be: skipped to its end, never held whole.
                let (skipped, eof) = match skip_line(&mut reader, &mut buf) {
                    Ok(x) => x,
                    Err(e) => return fail(read_error(gz, &e), offset, seq),
                };
                let mut p = Piece::new(ix, seq);
                p.bad.push(BadInput {
                    file: input.label.clone(),
                    line: Some(line + 1),
                    reason: format!(
                        "a line of {} bytes, longer than the longest record read ({} MiB), was skipped (`--max-record-mb` reads longer ones)",
                        skipped,
                        max_record >> 20
                    ),
                });
                offset += skipped;
                line += 1;
                p.lines = 1;
                p.end_offset = offset;
                tx.send(p).map_err(|_| ())?;
                seq += 1;
                (searched, want) = (0, CHUNK);
                if eof {
                    let mut p = Piece::new(ix, seq);
                    p.last = true;
                    p.complete = true;
                    return tx.send(p).map_err(|_| ());
                }
                continue;
            }
            (false, None) => {
                // A line longer than a chunk: read on.
                searched = buf.len();
                want = buf.len() + CHUNK;
                continue;
            }
        };
        (searched, want) = (0, CHUNK);
        if cut > 0 {
            let chunk = &buf[..cut];
            let unterminated = at_end && r.is_ok() && !chunk.ends_with(b"\n");
            // Parse here, while the chunk is still in this core's cache.
            let mut p = parse_chunk(chunk, offset, line, unterminated, &input.label, parser);
            p.input = ix;
            p.seq = seq;
            line += p.lines;
            offset += cut as u64;
            tx.send(p).map_err(|_| ())?;
            seq += 1;
            buf.drain(..cut);
        }
        if at_end {
            return match r {
                // The end: no offset of its own (the chunks carry theirs; an unfinished last line
                // may have held the checkpoint back).
                Ok(_) => {
                    pool.push(buf);
                    let mut p = Piece::new(ix, seq);
                    p.last = true;
                    p.complete = true;
                    tx.send(p).map_err(|_| ())
                }
                Err(e) => {
                    let mut reason = read_error(gz, &e);
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

fn read_error(gzip: bool, e: &io::Error) -> String {
    if gzip || e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::InvalidInput {
        format!("truncated or corrupt gzip stream: {e}; the records before it were read")
    } else {
        format!("read error: {e}")
    }
}

/// Parses the lines of a chunk that starts at `start_offset` after `lines_before` lines. With
/// `unterminated` (the stream ended without a newline after the last line), a last line that
/// does not parse is held back: the checkpoint stays before it, so that a later run reads it
/// again once it is whole.
fn parse_chunk<P: EventParser>(
    data: &[u8],
    start_offset: u64,
    lines_before: u64,
    unterminated: bool,
    label: &str,
    parser: &P,
) -> Piece<P::Item> {
    let mut p = Piece::new(0, 0);
    p.items = Vec::with_capacity(data.len() / 4096 + 1);
    p.end_offset = start_offset + data.len() as u64;
    p.bytes = data.len() as u64;
    let mut line_no = 0u64;
    let mut pos = 0usize;
    let bad = |p: &mut Piece<P::Item>, n: u64, reason: String| {
        p.bad.push(BadInput {
            file: label.to_string(),
            line: Some(lines_before + n),
            reason,
        })
    };
    while pos < data.len() {
        let line_start = pos;
        let nl = memchr::memchr(b'\n', &data[pos..]).map(|i| pos + i);
        let line_end = nl.unwrap_or(data.len());
        pos = line_end + 1;
        line_no += 1;
        let json = match event_of_line(&data[line_start..line_end]) {
            Ok(None) => continue,
            Ok(Some(j)) => j,
            Err(e) => {
                bad(&mut p, line_no, e.to_string());
                continue;
            }
        };
        match parser.parse(json, None, label) {
            Ok(Some(item)) => p.items.push(item),
            Ok(None) => {}
            Err(e) if nl.is_none() && unterminated => {
                bad(
                    &mut p,
                    line_no,
                    format!("incomplete last line (no newline at the end of the file): {e}"),
                );
                p.end_offset = start_offset + line_start as u64;
                line_no -= 1;
                break;
            }
            Err(e) => bad(&mut p, line_no, e),
        }
    }
    p.lines = line_no;
    p
}

/// Parses whole lines held in memory (an S3 object): the items, the bad lines (numbered from
/// 1) and the number of lines.
pub fn parse_bytes<P: EventParser>(
    data: &[u8],
    label: &str,
    parser: &P,
) -> (Vec<P::Item>, Vec<BadInput>, u64) {
    let p = parse_chunk(data, 0, 0, false, label, parser);
    (p.items, p.bad, p.lines)
}

/// Drops the rest of a line: `buf` (no newline in it) and what follows up to and including the
/// next newline; what comes after that stays in `buf`. Returns the bytes dropped and whether the
/// stream ended first.
fn skip_line(r: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<(u64, bool)> {
    let mut skipped = buf.len() as u64;
    loop {
        buf.clear();
        let eof = fill(r, buf, CHUNK)?;
        if let Some(i) = memchr::memchr(b'\n', buf) {
            buf.drain(..=i);
            return Ok((skipped + i as u64 + 1, false));
        }
        skipped += buf.len() as u64;
        if eof {
            buf.clear();
            return Ok((skipped, true));
        }
    }
}

/// Reads until `buf` holds at least `want` bytes or the stream ends. `Ok(true)` at the end.
/// (`read_to_end` on a `Take` fills spare capacity without zeroing it first.)
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
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

/// How a stream that starts with JSON is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One record per line (what Bedrock delivers).
    Lines,
    /// A document of the AWS CLI: `aws logs filter-log-events` / `get-log-events` (records in
    /// `events[].message`) or `aws logs get-query-results` (records in the `@message` of each
    /// row of `results`).
    Document,
    /// JSON text that is not one record a line: pretty-printed records one after another, or an
    /// array of records or of Logs Insights rows with `@message` (the console's JSON export).
    Text,
}

/// Keys a document of the AWS CLI starts with (it prints them in this order).
const DOCUMENT_KEYS: &[&str] = &[
    "events",
    "searchedLogStreams",
    "nextToken",
    "nextForwardToken",
    "nextBackwardToken",
    "queryLanguage",
    "results",
    "statistics",
    "status",
];

/// Decides the layout from the head of a stream that starts (after white space) with `{` or
/// `[`: the first key of a top-level object tells a document from a record; a `{` alone on the
/// first line (pretty-printed, which a delivered record never is) or a `[` is JSON text.
fn layout_of(head: &[u8]) -> Layout {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let first = &head[start..];
    if first.first() == Some(&b'[') {
        return Layout::Text;
    }
    let after = first.get(1..).unwrap_or(&[]);
    let key = after
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| after[i] == b'"')
        .and_then(|i| {
            let rest = &after[i + 1..];
            memchr::memchr(b'"', rest).map(|j| &rest[..j])
        })
        .and_then(|k| std::str::from_utf8(k).ok());
    if key.is_some_and(|k| DOCUMENT_KEYS.contains(&k)) {
        return Layout::Document;
    }
    let line = &first[..memchr::memchr(b'\n', first).unwrap_or(first.len())];
    if line.trim_ascii() == b"{" {
        return Layout::Text;
    }
    Layout::Lines
}

/// Reads JSON text: whole JSON values one after another, whatever the line breaks. A top-level
/// array is read element by element; an element (or a top-level value) that is an object with
/// `@message` (a Logs Insights row) is the record in that message, any other is a record itself.
fn read_json_text<P: EventParser>(
    ix: usize,
    input: &Input,
    parser: &P,
    reader: impl Read,
    gzip: bool,
    tx: &Out<'_, P::Item>,
) -> Result<(), ()> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    struct Elements<'s, 'a, P: EventParser>(&'s mut Sink<'a, P>);
    impl<'de, P: EventParser> Visitor<'de> for Elements<'_, '_, P> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                self.0.value(&raw);
                if self.0.gone {
                    return Err(serde::de::Error::custom("reading stopped"));
                }
            }
            Ok(())
        }
    }
    let mut sink = Sink::new(ix, &input.label, parser, tx);
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let starts_array = {
        use std::io::BufRead;
        match reader.fill_buf() {
            Ok(head) => head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['),
            Err(_) => false,
        }
    };
    let result = if starts_array {
        let mut de = serde_json::Deserializer::from_reader(reader);
        (&mut de)
            .deserialize_seq(Elements(&mut sink))
            .and_then(|_| de.end())
    } else {
        let mut values = serde_json::Deserializer::from_reader(reader).into_iter::<Box<RawValue>>();
        loop {
            match values.next() {
                None => break Ok(()),
                Some(Ok(raw)) => {
                    sink.value(&raw);
                    if sink.gone {
                        return Err(());
                    }
                }
                Some(Err(e)) => break Err(e),
            }
        }
    };
    sink.finish(
        result.map_err(|e| {
            format!(
                "not valid JSON at line {}, column {}: {e}; the values before it were read",
                e.line(),
                e.column()
            )
        }),
        input,
        gzip,
    )
}

/// Where the records of JSON text and documents go: items in pieces of [`DOCUMENT_BATCH`].
struct Sink<'a, P: EventParser> {
    ix: usize,
    label: &'a str,
    parser: &'a P,
    tx: &'a Out<'a, P::Item>,
    piece: Piece<P::Item>,
    seq: u64,
    values: u64,
    gone: bool,
}

impl<'a, P: EventParser> Sink<'a, P> {
    fn new(ix: usize, label: &'a str, parser: &'a P, tx: &'a Out<'a, P::Item>) -> Self {
        Sink {
            ix,
            label,
            parser,
            tx,
            piece: Piece::new(ix, 0),
            seq: 0,
            values: 0,
            gone: false,
        }
    }

    fn bad(&mut self, reason: String) {
        self.piece.bad.push(BadInput {
            file: self.label.to_string(),
            line: None,
            reason,
        });
    }

    /// One event's JSON (`stream`: its log stream, where the input says); `place` names it in
    /// messages.
    fn event(&mut self, json: &[u8], stream: Option<&str>, place: &dyn Fn() -> String) {
        self.piece.bytes += json.len() as u64;
        match self.parser.parse(json, stream, self.label) {
            Ok(Some(item)) => self.piece.items.push(item),
            Ok(None) => {}
            Err(e) => self.bad(format!("{}: {e}", place())),
        }
        if self.piece.items.len() + self.piece.bad.len() >= DOCUMENT_BATCH {
            self.seq += 1;
            let p = std::mem::replace(&mut self.piece, Piece::new(self.ix, self.seq));
            if self.tx.send(p).is_err() {
                self.gone = true;
            }
        }
    }

    /// A whole JSON value of JSON text: a Logs Insights row (its `@message`) or a record.
    fn value(&mut self, raw: &serde_json::value::RawValue) {
        #[derive(serde::Deserialize)]
        struct Row {
            #[serde(rename = "@message", default)]
            message: Option<String>,
        }
        let n = self.values;
        self.values += 1;
        let text = raw.get();
        match serde_json::from_str::<Row>(text)
            .ok()
            .and_then(|r| r.message)
        {
            Some(m) => self.event(m.as_bytes(), None, &|| {
                format!("JSON value {} (@message)", n + 1)
            }),
            None => self.event(text.as_bytes(), None, &|| format!("JSON value {}", n + 1)),
        }
    }

    /// The last piece: complete, or with why the input stopped.
    fn finish(self, result: Result<(), String>, input: &Input, gzip: bool) -> Result<(), ()> {
        if self.gone {
            return Err(());
        }
        let mut p = self.piece;
        p.last = true;
        p.document = true;
        match result {
            Ok(()) => {
                // Read whole: a plain file is checkpointed at its end (a gzip one by `complete`).
                if !gzip {
                    p.end_offset = input.size;
                }
                p.complete = true;
            }
            Err(reason) => p.bad.push(BadInput {
                file: input.label.clone(),
                line: None,
                reason,
            }),
        }
        self.tx.send(p).map_err(|_| ())
    }
}

/// Streams a document of the AWS CLI: `aws logs filter-log-events` (or `get-log-events`), whose
/// records are the `message` strings of `events`, or `aws logs get-query-results`, whose records
/// are the `@message` fields of the rows of `results`; parsed as they come.
fn read_document<P: EventParser>(
    ix: usize,
    input: &Input,
    parser: &P,
    reader: impl Read,
    gzip: bool,
    tx: &Out<'_, P::Item>,
) -> Result<(), ()> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "logStreamName")]
        stream: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Field {
        field: String,
        #[serde(default)]
        value: Option<String>,
    }
    /// Which array of the document is being read.
    #[derive(Clone, Copy)]
    enum Part {
        Events,
        Results,
    }
    struct Doc<'s, 'a, P: EventParser>(&'s RefCell<Sink<'a, P>>);
    struct Rows<'s, 'a, P: EventParser>(&'s RefCell<Sink<'a, P>>, Part);
    impl<'de, P: EventParser> DeserializeSeed<'de> for Doc<'_, '_, P> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, P: EventParser> Visitor<'de> for Doc<'_, '_, P> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object with `events` or `results`")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<String>()? {
                match k.as_str() {
                    "events" => map.next_value_seed(Rows(self.0, Part::Events))?,
                    "results" => map.next_value_seed(Rows(self.0, Part::Results))?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    impl<'de, P: EventParser> DeserializeSeed<'de> for Rows<'_, '_, P> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, P: EventParser> Visitor<'de> for Rows<'_, '_, P> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of events or result rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0u64;
            loop {
                let mut s = self.0.borrow_mut();
                match self.1 {
                    Part::Events => {
                        let Some(ev) = seq.next_element::<Event>()? else {
                            break;
                        };
                        match ev.message {
                            None => s.bad(format!("events[{n}]: no `message`")),
                            Some(m) => s.event(m.as_bytes(), ev.stream.as_deref(), &|| {
                                format!("events[{n}].message")
                            }),
                        }
                    }
                    Part::Results => {
                        let Some(row) = seq.next_element::<Vec<Field>>()? else {
                            break;
                        };
                        match row.into_iter().find(|f| f.field == "@message").and_then(|f| f.value) {
                            None => s.bad(format!("results[{n}]: no `@message` (the query must return @message, as `fields @message` does)")),
                            Some(m) => s.event(m.as_bytes(), None, &|| format!("results[{n}].@message")),
                        }
                    }
                }
                n += 1;
                if s.gone {
                    return Err(serde::de::Error::custom("reading stopped"));
                }
            }
            Ok(())
        }
    }
    let sink = RefCell::new(Sink::new(ix, &input.label, parser, tx));
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, reader));
    let result = Doc(&sink).deserialize(&mut de).and_then(|_| de.end());
    sink.into_inner().finish(
        result.map_err(|e| format!("not a valid `aws logs filter-log-events` document at line {}, column {}: {e}; the events before it were read", e.line(), e.column())),
        input,
        gzip,
    )
}
