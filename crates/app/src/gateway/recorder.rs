//! Writing what the gateway saw, off the request path: each finished call is sent to one
//! writer thread, which commits them in batches through the one writer (`pipeline::commit`),
//! every [`FLUSH_EVERY`] or [`BATCH`] calls, whichever comes first. A failed write is logged
//! at ERROR and retried with the next batch; nothing is dropped while the process lives.
//! On a stop the channel closes, the thread writes what is left and ends. What a `kill -9`
//! loses is the batch in flight: Bedrock's own invocation logs carry the same request ids, so
//! the next `sync` adds those calls, and only those.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bedrock_usage_core::Invocation;

use crate::sources::Tally;
use crate::store::FactWriter;

/// The most a recorded call waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Calls per transaction, at most.
pub const BATCH: usize = 2_000;
/// The origin every gateway record is stored with.
pub const ORIGIN: &str = "gateway";

/// The sending side, cloned into every request.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: Sender<Invocation>,
}

/// The writer thread; [`Writer::finish`] waits for it to write everything sent.
#[derive(Debug)]
pub struct Writer {
    handle: JoinHandle<u64>,
}

impl Recorder {
    /// Starts the writer on the store at `db`.
    pub fn start(
        db: PathBuf,
        metadata_keys: Vec<String>,
    ) -> crate::error::Result<(Recorder, Writer)> {
        let mut store = crate::store::open(&db)?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("gateway-recorder".into())
            .spawn(move || write_loop(&mut *store, rx, &metadata_keys))
            .map_err(crate::error::Error::Io)?;
        Ok((Recorder { tx }, Writer { handle }))
    }

    /// Queues a call for writing.
    pub fn record(&self, inv: Invocation) {
        if let Err(e) = self.tx.send(inv) {
            tracing::error!(request_id = %e.0.request_id, "Lost a call: the recorder has stopped");
        }
    }
}

impl Writer {
    /// Waits for every queued call to be written (the senders must be gone); returns how many
    /// calls were stored.
    pub fn finish(self) -> u64 {
        self.handle.join().unwrap_or(0)
    }
}

fn write_loop(store: &mut dyn FactWriter, rx: Receiver<Invocation>, keys: &[String]) -> u64 {
    let mut pending: Vec<Invocation> = Vec::new();
    let mut written = 0u64;
    let mut open = true;
    while open || !pending.is_empty() {
        if open {
            match rx.recv_timeout(FLUSH_EVERY) {
                Ok(inv) => pending.push(inv),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            let until = Instant::now() + FLUSH_EVERY;
            while open && pending.len() < BATCH && Instant::now() < until {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(inv) => pending.push(inv),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
        }
        if pending.is_empty() {
            continue;
        }
        let n = pending.len().min(BATCH);
        let origins = vec![ORIGIN; n];
        let mut tally = Tally::default();
        match crate::pipeline::commit(store, &pending[..n], &origins, &[], &[], keys, &mut tally) {
            Ok(()) => {
                written += tally.inserted;
                for c in &tally.conflict_examples {
                    tracing::warn!(conflict = %c, "A recorded call was stored before with other facts");
                }
                pending.drain(..n);
            }
            Err(e) => {
                tracing::error!(calls = pending.len(), error = %e, "Could not write recorded calls; retrying");
                if !open {
                    // Stopping, and the store refuses: say what is lost (sync brings it back).
                    if crate::shutdown::sleep(Duration::from_secs(1)) || pending.len() > BATCH * 50
                    {
                        tracing::error!(
                            calls = pending.len(),
                            "Stopped with calls unwritten; the next `sync` of Bedrock's logs adds them"
                        );
                        break;
                    }
                } else {
                    std::thread::sleep(FLUSH_EVERY);
                }
            }
        }
    }
    written
}
