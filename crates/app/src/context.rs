//! The one checked context of a run, built once from the command line (ripgrep's low-level
//! arguments to high-level arguments): the configuration, the price catalog, where the store is,
//! the clock and the output format. Commands take a `&Context` and never load the config again.

use std::path::{Path, PathBuf};

use bedrock_usage_core::{Config, PriceCatalog};

use crate::cli::{Args, Command};
use crate::error::{Error, Result};
use crate::output::Format;
use crate::store::{self, Store};

/// The wall clock, in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where "now" comes from: the wall clock (a run reads it as it goes: `--watch` runs for days),
/// or a fixed instant from `BEDROCK_USAGE_NOW` (an RFC 3339 time), for tests and for "where
/// did the budgets stand then".
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    fixed: Option<i64>,
}

/// The variable that fixes the clock.
pub const NOW_VAR: &str = "BEDROCK_USAGE_NOW";

impl Clock {
    /// The wall clock, unless `BEDROCK_USAGE_NOW` is set (then that instant, or an error that
    /// names the variable when it is not a time).
    pub fn from_env() -> Result<Clock> {
        match std::env::var(NOW_VAR) {
            Err(_) => Ok(Clock::default()),
            Ok(v) => bedrock_usage_core::time::parse_timestamp_ms(v.trim())
                .map(|ms| Clock { fixed: Some(ms) })
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{NOW_VAR}=`{v}`: not an RFC 3339 time (2026-12-01T09:00:00Z)"
                    ))
                }),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.fixed.unwrap_or_else(now_ms)
    }

    /// Today's UTC day number.
    pub fn today(&self) -> i64 {
        self.now_ms()
            .div_euclid(bedrock_usage_core::time::MS_PER_DAY)
    }
}

/// The configuration and where it came from.
pub struct LoadedConfig {
    pub config: Config,
    pub path: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Context {
    pub config: Config,
    /// The config file, if one was given.
    pub config_path: Option<PathBuf>,
    /// The embedded catalog with the user's file merged in.
    pub catalog: PriceCatalog,
    /// The store's file as given (`--db`, `BEDROCK_USAGE_DB`); see [`Context::db_path`].
    pub db: Option<PathBuf>,
    pub format: Format,
    pub clock: Clock,
    /// `--db` was given on the command line (not only in the environment).
    pub db_on_command_line: bool,
}

impl Context {
    /// Checks the arguments and loads what every command needs, once.
    pub fn build(args: &Args) -> Result<Context> {
        if args.format == Format::Aws && !matches!(args.command, Command::Query { .. }) {
            return Err(Error::Invalid("--format aws is the output of `query` only (the shape `aws logs get-query-results` prints)".into()));
        }
        if args.format == Format::Html && !matches!(args.command, Command::Report { .. }) {
            return Err(Error::Invalid("--format html is the output of `report` only (one self-contained document: `bedrock-usage report --format html --since 2026-11-01 --until 2026-11-30 > november.html`)".into()));
        }
        let loaded = load_config(args.config.as_deref())?;
        let catalog_override = match &args.command {
            Command::Pricing { catalog, .. } => catalog.as_deref(),
            _ => None,
        };
        let catalog = load_catalog(&loaded, catalog_override)?;
        Ok(Context {
            config: loaded.config,
            config_path: loaded.path,
            catalog,
            db: args.db.clone(),
            format: args.format,
            clock: Clock::from_env()?,
            db_on_command_line: args.db_on_command_line,
        })
    }

    /// The store's file: `--db`, else the default in the user's data directory.
    pub fn db_path(&self) -> Result<PathBuf> {
        store_path(self.db.as_deref())
    }

    /// The store, created if it does not exist yet (for the commands that write).
    pub fn open_store(&self) -> Result<Box<dyn Store>> {
        Ok(store::open(&self.db_path()?)?)
    }

    /// The store, which must exist, opened for reading only (for the commands that read: they
    /// never wait behind a writer).
    pub fn existing_store(&self) -> Result<Box<dyn Store>> {
        let path = self.db_path()?;
        if !path.exists() {
            let p = path.display();
            return Err(Error::Invalid(format!("no store at {p}: run `bedrock-usage ingest PATH...` first (or `bedrock-usage demo --db {p}` to try it)")));
        }
        Ok(store::open_read_only(&path)?)
    }
}

pub fn load_config(path: Option<&Path>) -> Result<LoadedConfig> {
    let Some(path) = path else {
        return Ok(LoadedConfig {
            config: Config::defaults(),
            path: None,
        });
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        what: "cannot read the config file",
        path: path.to_path_buf(),
        source,
    })?;
    let config = Config::parse(&text, &path.display().to_string())?;
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
    })
}

/// The embedded catalog, with the user's file (`--catalog`, else `[pricing] catalog`, relative
/// to the config file) merged in.
pub fn load_catalog(cfg: &LoadedConfig, override_path: Option<&Path>) -> Result<PriceCatalog> {
    let mut catalog = PriceCatalog::embedded();
    let path = match (override_path, &cfg.config.catalog_path) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Some(p)) => {
            let base = cfg
                .path
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            Some(base.join(p))
        }
        (None, None) => None,
    };
    if let Some(p) = path {
        let text = std::fs::read_to_string(&p).map_err(|source| Error::File {
            what: "cannot read the price catalog",
            path: p.clone(),
            source,
        })?;
        catalog.merge(PriceCatalog::parse(&text, &p.display().to_string())?);
    }
    Ok(catalog)
}

fn store_path(db: Option<&Path>) -> Result<PathBuf> {
    match db {
        Some(p) => Ok(p.to_path_buf()),
        None => store::default_path().ok_or_else(|| {
            Error::Invalid(
                "no data directory is known for this user: pass --db PATH or set BEDROCK_USAGE_DB"
                    .into(),
            )
        }),
    }
}
