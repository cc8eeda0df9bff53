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
    pub fn file(label: String, path: PathBuf) -> Input {
        Input {
            label,
            path: Some(path),
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
    let lead = match opts.order {
        Order::InputByInput { lead } => Some(lead.max(1)),
        Order::Interleaved => None,
    };
    std::thread::scope(|s| {
        for _ in 0..threads().min(inputs.len().max(1)) {
            let (tx, next, gate) = (tx.clone(), &next, &gate);
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
                    if read_input(i, input, parser, &tx, &mut pool).is_err() {
                        return; // the caller stopped reading
                    }
                }
            });
        }
        drop(tx);
        let result = deliver(inputs.len(), rx, opts.order, &gate, &mut consume);
        // Release readers waiting at the gate; the dropped receiver stops the others.
        gate.set(usize::MAX / 2, true);
        result
    })
}

/// Puts pieces in order and hands them out.
fn deliver<T, E>(
    inputs: usize,
    rx: mpsc::Receiver<Piece<T>>,
    order: Order,
    gate: &Gate,
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
            let last = p.last;
            if !consume(p)? {
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
    tx: &SyncSender<Piece<P::Item>>,
    pool: &mut Vec<Vec<u8>>,
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
    // Detect the format at the start of a stream.
    if input.offset == 0 {
        let _ = fill(&mut reader, &mut buf, 64 << 10);
        let first = buf.iter().position(|b| !b.is_ascii_whitespace());
        match first.map(|i| buf[i]) {
            None => {}
            Some(b'{') if is_log_events_document(&buf) => {
                let head = std::mem::take(&mut buf);
                return read_document(
                    ix,
                    input,
                    parser,
                    io::Cursor::new(head).chain(reader),
                    gz,
                    tx,
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
    let mut offset = input.offset;
    let mut line = input.lines;
    let mut want = CHUNK;
    loop {
        let r = fill(&mut reader, &mut buf, want);
        let at_end = !matches!(r, Ok(false));
        // Cut after the last newline; keep the rest for the next chunk. At a clean end
        // everything goes (an unfinished last line is judged by the parser); after a read error
        // only whole lines do, so that a resumed read starts at a line boundary.
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

/// `{"events": [...` (possibly pretty-printed, possibly after other keys) rather than a record.
/// Looks at the start of the first line only (a record line can be megabytes long).
fn is_log_events_document(head: &[u8]) -> bool {
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

/// Streams the output of `aws logs filter-log-events` (or `get-log-events`): the events are the
/// `message` strings of `events`, parsed as they come.
fn read_document<P: EventParser>(
    ix: usize,
    input: &Input,
    parser: &P,
    reader: impl Read,
    gzip: bool,
    tx: &SyncSender<Piece<P::Item>>,
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
    struct Sink<'a, P: EventParser> {
        ix: usize,
        label: &'a str,
        parser: &'a P,
        tx: &'a SyncSender<Piece<P::Item>>,
        piece: Piece<P::Item>,
        seq: u64,
        events: u64,
        gone: bool,
    }
    impl<P: EventParser> Sink<'_, P> {
        fn bad(&mut self, reason: String) {
            self.piece.bad.push(BadInput {
                file: self.label.to_string(),
                line: None,
                reason,
            });
        }
        fn flush(&mut self) {
            self.seq += 1;
            let p = std::mem::replace(&mut self.piece, Piece::new(self.ix, self.seq));
            if self.tx.send(p).is_err() {
                self.gone = true;
            }
        }
    }
    struct Doc<'s, 'a, P: EventParser>(&'s RefCell<Sink<'a, P>>);
    struct Events<'s, 'a, P: EventParser>(&'s RefCell<Sink<'a, P>>);
    impl<'de, P: EventParser> DeserializeSeed<'de> for Doc<'_, '_, P> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, P: EventParser> Visitor<'de> for Doc<'_, '_, P> {
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
    impl<'de, P: EventParser> DeserializeSeed<'de> for Events<'_, '_, P> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, P: EventParser> Visitor<'de> for Events<'_, '_, P> {
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
                    None => s.bad(format!("events[{n}]: no `message`")),
                    Some(m) => {
                        s.piece.bytes += m.len() as u64;
                        match s.parser.parse(m.as_bytes(), ev.stream.as_deref(), s.label) {
                            Ok(Some(item)) => s.piece.items.push(item),
                            Ok(None) => {}
                            Err(e) => s.bad(format!("events[{n}].message: {e}")),
                        }
                    }
                }
                if s.piece.items.len() >= DOCUMENT_BATCH {
                    s.flush();
                    if s.gone {
                        return Err(serde::de::Error::custom("reading stopped"));
                    }
                }
            }
            Ok(())
        }
    }
    let sink = RefCell::new(Sink {
        ix,
        label: &input.label,
        parser,
        tx,
        piece: Piece::new(ix, 0),
        seq: 0,
        events: 0,
        gone: false,
    });
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, reader));
    let result = Doc(&sink).deserialize(&mut de).and_then(|_| de.end());
    let mut s = sink.into_inner();
    if s.gone {
        return Err(());
    }
    s.piece.last = true;
    match result {
        Ok(()) => {
            // Read whole: a plain file is checkpointed at its end (a gzip one by `complete`).
            if !gzip {
                s.piece.end_offset = input.size;
            }
            s.piece.complete = true;
        }
        Err(e) => s.bad(format!("not a valid `aws logs filter-log-events` document at line {}, column {}: {e}; the events before it were read", e.line(), e.column())),
    }
    let p = s.piece;
    tx.send(p).map_err(|_| ())
}
