//! The one error type of the commands, and the exit status each kind of error gives.
//!
//! Library layers have their own small enums (`store::StoreError`, the core's `ConfigError`,
//! `CatalogError`, `BadWhen`, the AWS layer's `Failure`); a command's error is one of them, or a
//! value it cannot use (`Invalid`), or a failed read or write. `main` prints the error with its
//! cause chain and exits with [`Error::exit_code`]: a closed stdout (`| head`) is a success,
//! everything else the error status.

use std::path::PathBuf;

use bedrock_usage_core::config::ConfigError;
use bedrock_usage_core::pricing::CatalogError;

use crate::store::StoreError;

/// Exit statuses: 0 ok, 1 a failed check (bad input under --strict, a failed status check), 2 an
/// error.
pub const EXIT_OK: u8 = 0;
pub const EXIT_CHECK_FAILED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value on the command line (or derived from it) that cannot be used; the message names
    /// the flag and the value.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    When(#[from] bedrock_usage_core::time::BadWhen),
    #[error(transparent)]
    Zone(#[from] bedrock_usage_core::time::UnknownZone),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file that cannot be read or written.
    #[error("{what} {}", .path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The AWS side failed; the message says what to do.
    #[error("{0}")]
    Aws(String),
    /// Writing the results (stdout) or another stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
            _ => EXIT_ERROR,
        }
    }

    /// The message with its causes, `outer: inner: innermost`.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

impl Error {
    /// An AWS failure: what failed (`stage`, then the failure) and what to do about `what`.
    pub fn aws(f: &bedrock_usage_aws::Failure, stage: &str, what: &str) -> Error {
        Error::Aws(format!(
            "{stage}{} (to fix: {})",
            f.message,
            bedrock_usage_aws::status::fix_for(f, what)
        ))
    }
}

/// `return Err(Error::Invalid(format!(...)))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Invalid(format!($($arg)*)))
    };
}
