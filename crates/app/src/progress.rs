//! Progress on a terminal, on stderr, only when stderr is a terminal (never in a pipe or a log
//! file): a bar of files, records and throughput for ingest, a spinner per source for sync.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    files: u64,
}

impl Progress {
    pub fn new(enabled: bool, files: u64) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b =
                ProgressBar::with_draw_target(Some(files), ProgressDrawTarget::stderr_with_hz(8));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} files {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(125));
            b
        });
        Progress { bar, files }
    }

    pub fn update(&self, files_done: u64, records: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_position(files_done.min(self.files));
            let secs = b.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "· {} records · {:.0} MB · {:.0} MB/s",
                bedrock_usage_core::money::group_thousands(records),
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A spinner on stderr while a source syncs (only on a terminal).
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn new(enabled: bool, label: &str) -> Spinner {
        Spinner((enabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(125));
            b
        }))
    }

    /// Shows records read, records new and pages or objects so far.
    pub fn update(&self, records: u64, inserted: u64, units: u64) {
        if let Some(b) = &self.0 {
            b.set_message(format!(
                "· {} records ({} new) · {} pages/objects",
                bedrock_usage_core::money::group_thousands(records),
                bedrock_usage_core::money::group_thousands(inserted),
                units
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
