//! Sources: where invocation records come from. Each source owns how it is read and how its
//! progress is remembered (file checkpoints, `sync` cursors); all of them hand parsed records to
//! the one writer (`crate::pipeline`).
//!
//! - `lines`: the one reader of files and streams (format detection, chunks of lines, threads),
//!   used by `ingest` and `query --from`; `gzip` inflates for it.
//! - `files`: paths to inputs (the walk of the S3 delivery layout) and, for ingest, where each
//!   file starts from its checkpoint.
//! - `cloudwatch`, `s3`: the AWS sources of `sync`; `remote` runs a round over them.
//! - `iam_tags`: teams and cost centers from the tags of IAM users and roles.
//! - `demo`: the synthetic team month of `bedrock-usage demo`.

pub mod cloudwatch;
pub mod demo;
pub mod files;
pub mod gzip;
pub mod iam_tags;
pub mod lines;
pub mod remote;
pub mod s3;

use bedrock_usage_core::{parse_record, Invocation};

use crate::output::clean;

/// One bad piece of input, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    pub file: String,
    pub line: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // File names and reasons quote the data: never let it act on the terminal.
        let (file, reason) = (clean(&self.file), clean(&self.reason));
        match self.line {
            Some(l) => write!(f, "{file}:{l}: {reason}"),
            None => write!(f, "{file}: {reason}"),
        }
    }
}

/// What reading some records came to: the counts every source reports (ingest per run, sync per
/// source), and the first bad inputs in full.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub records: u64,
    pub inserted: u64,
    pub duplicates: u64,
    pub bad: u64,
    pub bad_examples: Vec<BadInput>,
    /// Records stored before with other facts under the same request id (kept as stored).
    pub conflicts: u64,
    pub conflict_examples: Vec<String>,
}

/// How many bad inputs are kept in full for the report (all are counted).
pub const MAX_EXAMPLES: usize = 10;

impl Tally {
    pub fn bad(&mut self, b: BadInput) {
        self.bad += 1;
        if self.bad_examples.len() < MAX_EXAMPLES {
            self.bad_examples.push(b);
        }
    }

    pub fn conflict(&mut self, what: String) {
        self.conflicts += 1;
        if self.conflict_examples.len() < MAX_EXAMPLES {
            self.conflict_examples.push(what);
        }
    }

    pub fn add(&mut self, o: &Tally) {
        self.conflicts += o.conflicts;
        self.records += o.records;
        self.inserted += o.inserted;
        self.duplicates += o.duplicates;
        self.bad += o.bad;
    }

    /// Prints the bad inputs kept, under a warning naming `what` was skipped, and the request
    /// ids stored before with other facts.
    pub fn warn_bad(&self, prefix: &str, what: &str) {
        if self.conflicts > 0 {
            eprintln!(
                "warning: {prefix}{} records repeat a stored request id with other facts (not counted again){}:",
                self.conflicts,
                if self.conflicts as usize > self.conflict_examples.len() {
                    format!("; the first {}", self.conflict_examples.len())
                } else {
                    String::new()
                }
            );
            for c in &self.conflict_examples {
                eprintln!("  {}", clean(c));
            }
        }
        if self.bad == 0 {
            return;
        }
        eprintln!(
            "warning: {prefix}{} {what} were skipped (the rest was {}){}:",
            self.bad,
            if what == "bad inputs" {
                "ingested"
            } else {
                "stored"
            },
            if self.bad as usize > self.bad_examples.len() {
                format!("; the first {}", self.bad_examples.len())
            } else {
                String::new()
            }
        );
        for b in &self.bad_examples {
            eprintln!("  {b}");
        }
    }
}

/// Events as invocation records (what ingest and sync store).
pub struct Records;

impl lines::EventParser for Records {
    type Item = Invocation;
    fn parse(&self, json: &[u8], _: Option<&str>, _: &str) -> Result<Option<Invocation>, String> {
        parse_record(json).map(Some).map_err(|e| e.to_string())
    }
}
