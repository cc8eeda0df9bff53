//! Files: command-line paths to input streams (directories walked in a stable order, in the S3
//! delivery layout or any other), and for ingest, where each file starts: one read of its head
//! gives a fingerprint (a hash of the first 4 KiB) and whether it is gzip, and with its
//! checkpoint this decides: skip (unchanged), read on from the checkpoint (grown), or read from
//! the start (new or replaced).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bedrock_usage_core::layout;

use super::gzip::is_gzip;
use super::lines::Input;
use super::BadInput;
use crate::store::{Checkpoint, FactWriter, StoreError};

const FINGERPRINT_LEN: u64 = 4096;

/// Expands the command-line paths into input streams (label, path; `None` for stdin), in a
/// stable order. Paths that cannot be read are reported in `bad`; what is passed over on purpose
/// (special files in a directory, a directory reached again through a link) in `notes`.
pub fn collect_inputs(
    paths: &[PathBuf],
    bad: &mut Vec<BadInput>,
    notes: &mut Vec<String>,
) -> Vec<(String, Option<PathBuf>)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(("-".to_string(), None));
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                seen.insert(dir_id(&m));
                walk(p, 0, &mut out, bad, notes, &mut seen)
            }
            // A file, or a pipe or device named on the command line (`<(zcat f.gz)`): read.
            Ok(_) => out.push((p.display().to_string(), Some(p.clone()))),
            Err(e) => bad.push(cannot_read(p, e, "cannot read")),
        }
    }
    out
}

/// What identifies a directory, to notice one reached again through a symbolic link.
#[cfg(unix)]
fn dir_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn dir_id(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn cannot_read(p: &Path, e: io::Error, what: &str) -> BadInput {
    BadInput {
        file: p.display().to_string(),
        line: None,
        reason: format!("{what}: {e}"),
    }
}

/// Walks `dir` in name order, leaving out what the delivery layout says holds no records,
/// special files (pipes, sockets, devices: they are not logs, and reading one can block for
/// ever) and directories already walked (a symbolic-link loop).
fn walk(
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, Option<PathBuf>)>,
    bad: &mut Vec<BadInput>,
    notes: &mut Vec<String>,
    seen: &mut HashSet<(u64, u64)>,
) {
    if depth > 64 {
        notes.push(format!(
            "{}: deeper than 64 directories, not walked",
            dir.display()
        ));
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            bad.push(cannot_read(dir, e, "cannot read directory"));
            return;
        }
    };
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if layout::is_skipped(&[name.as_str()]) {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {
                if name == "data" {
                    let parts: Vec<String> = p
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                    if layout::is_offload_dir(&parts) {
                        continue; // S3-offloaded bodies, not records
                    }
                }
                if !seen.insert(dir_id(&m)) {
                    notes.push(format!(
                        "{}: a directory already walked (a symbolic-link loop?), skipped",
                        p.display()
                    ));
                    continue;
                }
                walk(&p, depth + 1, out, bad, notes, seen);
            }
            Ok(m) if m.is_file() => out.push((p.display().to_string(), Some(p))),
            Ok(_) => notes.push(format!(
                "{}: not a regular file (a pipe, socket or device), skipped; name it on the command line to read it",
                p.display()
            )),
            Err(e) => bad.push(cannot_read(&p, e, "cannot read")),
        }
    }
}

/// A hash of a prefix of the file (it tells a replaced file from a grown one), and whether the
/// file starts with the gzip magic bytes: one read of the file's head.
fn head_of(path: &Path, len: u64) -> io::Result<(String, u64, bool)> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(len as usize);
    (&mut f).take(len.max(2)).read_to_end(&mut buf)?;
    let gzip = is_gzip(&buf);
    buf.truncate(len as usize);
    Ok((fnv(&buf), buf.len() as u64, gzip))
}

/// FNV-1a, a word at a time, as 16 hex digits.
fn fnv(buf: &[u8]) -> String {
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
    format!("{h:016x}")
}

/// What to do with a file whose head is as its checkpoint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Unchanged,
    /// It grew, and what was read is still there: read on from the checkpoint.
    ReadOn,
    /// In doubt, read again from the start: duplicates cost nothing, a missed record does.
    FromStart,
}

/// Unchanged, grown or changed, from what tells for sure: the inode (replaced), the modification
/// time (rewritten in place), a hash of the bytes before the size read last time (something
/// other than an append), and the layout (a document is never read on from a byte offset).
/// Checkpoints of earlier versions have no inode, time or tail (0, empty): those checks pass.
fn decide(
    c: &Checkpoint,
    size: u64,
    inode: u64,
    mtime_ns: i64,
    tail_now: impl FnOnce() -> String,
) -> Decision {
    let same_file = c.inode == 0 || c.inode == inode;
    let untouched = c.mtime_ns == 0 || c.mtime_ns == mtime_ns;
    if !same_file {
        return Decision::FromStart;
    }
    if size == c.size && untouched && (c.complete || (!c.gzip && size == c.offset)) {
        return Decision::Unchanged;
    }
    if c.document || size < c.size || (size == c.size && !untouched) {
        return Decision::FromStart;
    }
    if !c.tail.is_empty() && tail_now() != c.tail {
        return Decision::FromStart;
    }
    if c.gzip || size >= c.offset {
        Decision::ReadOn
    } else {
        Decision::FromStart
    }
}

/// The inode and modification time (ns) of a file.
#[cfg(unix)]
fn file_version(m: &std::fs::Metadata) -> (u64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec())
}

#[cfg(not(unix))]
fn file_version(m: &std::fs::Metadata) -> (u64, i64) {
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    (0, t)
}

/// A hash of the (up to) 4 KiB before `size`.
fn tail_of(path: &Path, size: u64) -> io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let from = size.saturating_sub(FINGERPRINT_LEN);
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity((size - from) as usize);
    f.take(size - from).read_to_end(&mut buf)?;
    Ok(fnv(&buf))
}

/// A file to read and the checkpoint it will leave (`None` for stdin: nothing to resume).
pub struct Planned {
    pub input: Input,
    pub checkpoint: Option<Checkpoint>,
}

/// What planning found.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files with nothing new since the last run.
    pub unchanged: u64,
    /// Files read on from a checkpoint.
    pub resumed: u64,
}

/// Decides where to start each input from its checkpoint.
pub fn plan(
    store: &dyn FactWriter,
    inputs: Vec<(String, Option<PathBuf>)>,
    plan: &mut Plan,
    bad: &mut dyn FnMut(BadInput),
    notes: &mut Vec<String>,
) -> Result<Vec<Planned>, StoreError> {
    let mut out = Vec::new();
    for (label, path) in inputs {
        let Some(path) = path else {
            out.push(Planned {
                input: Input::new(label, None),
                checkpoint: None,
            });
            continue;
        };
        let fail = |e: io::Error| BadInput {
            file: label.clone(),
            line: None,
            reason: format!("cannot read: {e}"),
        };
        let prepared = (|| -> io::Result<(String, std::fs::Metadata)> {
            Ok((
                // Absolute, not canonical: resolving every symlink costs a system call per path
                // component, and a file reached by two paths is still counted once (by request id).
                std::path::absolute(&path)?.display().to_string(),
                std::fs::metadata(&path)?,
            ))
        })();
        let key_size = match prepared {
            Ok((_, m)) if !m.is_file() => {
                // A pipe (`<(cat f)`) or a device: read once, as it comes; there is no file to
                // come back to, so no checkpoint.
                notes.push(format!(
                    "{label}: not a regular file: read once, with no checkpoint to resume from"
                ));
                out.push(Planned {
                    input: Input::new(label, Some(path)),
                    checkpoint: None,
                });
                continue;
            }
            Ok((key, m)) => Ok((key, m)),
            Err(e) => Err(e),
        };
        let (key, meta) = match key_size {
            Ok(x) => x,
            Err(e) => {
                bad(fail(e));
                continue;
            }
        };
        let size = meta.len();
        let (inode, mtime_ns) = file_version(&meta);
        let ck = store.checkpoint(&key)?;
        let fp_len = ck
            .as_ref()
            .map(|c| c.fingerprint_len)
            .unwrap_or(FINGERPRINT_LEN);
        let (fp, got, gzip) = match head_of(&path, fp_len) {
            Ok(x) => x,
            Err(e) => {
                bad(fail(e));
                continue;
            }
        };
        let tail = match tail_of(&path, size) {
            Ok(t) => t,
            Err(e) => {
                bad(fail(e));
                continue;
            }
        };
        let mut next = Checkpoint {
            path: key,
            fingerprint: String::new(),
            fingerprint_len: 0,
            size,
            gzip,
            offset: 0,
            lines: 0,
            complete: false,
            records: 0,
            inode,
            mtime_ns,
            tail,
            document: false,
        };
        let decision = match &ck {
            Some(c) if got == c.fingerprint_len && fp == c.fingerprint && c.gzip == gzip => {
                decide(c, size, inode, mtime_ns, || {
                    tail_of(&path, c.size).unwrap_or_default()
                })
            }
            _ => Decision::FromStart,
        };
        match (decision, ck) {
            (Decision::Unchanged, _) => {
                plan.unchanged += 1;
                continue;
            }
            (Decision::ReadOn, Some(c)) => {
                next.offset = c.offset;
                next.lines = c.lines;
                next.records = c.records;
                if c.offset > 0 {
                    plan.resumed += 1;
                }
                next.fingerprint = c.fingerprint;
                next.fingerprint_len = c.fingerprint_len;
            }
            _ => {
                // New, replaced, rewritten or truncated: read from the start (the request ids
                // make a re-read harmless). Fingerprint the full prefix from now on.
                let (fp, got, _) = match head_of(&path, FINGERPRINT_LEN) {
                    Ok(x) => x,
                    Err(e) => {
                        bad(fail(e));
                        continue;
                    }
                };
                next.fingerprint = fp;
                next.fingerprint_len = got;
            }
        }
        out.push(Planned {
            input: Input {
                label,
                path: Some(path),
                gzip: Some(gzip),
                size,
                offset: next.offset,
                lines: next.lines,
            },
            checkpoint: Some(next),
        });
    }
    Ok(out)
}
